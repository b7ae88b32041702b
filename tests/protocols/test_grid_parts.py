"""Incremental ``grid.csv``: each flush writes only its new or updated rows as a part."""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit import store
from merkit.protocols import grid as grid_run
from merkit.protocols.runner import run_grid
from merkit.store import GRID_FILE, grid_key, merge_grid, read_grid, write_grid_part

SVM_GRID = {"svm": [{"C": 0.001}, {"C": 0.05}, {"C": 1.0}]}
TGSR_GRID = {"tgsr": [{"kappa": k, "xi": x, "group_size": 2} for k in (1, 2)
                      for x in (0.001, 50.0)]}  # fmt: skip


def grid_row(task: str, c: float, version: int = 0, **more) -> dict:
    """A grid row as :func:`run_grid` builds it (65 target predictions)."""
    rng = np.random.default_rng(zlib.crc32(f"{task} {c} {version}".encode()))
    pred = rng.integers(0, 3, 65)
    crit = {"entropy": -rng.random(), "class_entropy": rng.random() if version else np.nan}
    return {
        "protocol": "cdmer", "task": task, "source": "CASME2", "target": "SMIC_VIS",
        "method": "svm", "selection": "none", "params": json.dumps({"C": c}), "seed": 0,
        "data": "ab12>cd34", "mean_f1": rng.random(), "uar": rng.random(),
        "accuracy": 100 * rng.random(), "n_test": 65, "labels": "",
        "classes": '["negative","positive","surprise"]', "created": "2024-05-01T00:00:00+00:00",
        "seconds": round(rng.random(), 4), "published_params": json.dumps({"C": c}),
        "criteria_seconds": 0.01 * version, "criteria": json.dumps(sorted(crit)), **crit,
        "y_pred": json.dumps(pred.tolist(), separators=(",", ":")), **more,
    }  # fmt: skip


def whole_file(directory: Path, rows: dict) -> None:
    """The former writer: every row rewritten into ``grid.csv`` at each flush."""
    directory.mkdir(parents=True, exist_ok=True)
    store._grid_frame(rows.values()).to_csv(directory / GRID_FILE, index=False)


def part_names(directory: Path) -> list[str]:
    parts = directory / "parts"
    return sorted(p.name for p in parts.iterdir()) if parts.is_dir() else []


@pytest.fixture
def unmerged(monkeypatch):
    """Grid parts are merged only when asked (merge_grid, the end of run_grid); the
    results' parts follow the store's policy as usual."""
    real = store.merge_due
    monkeypatch.setattr(store, "GRID_COMPACT_BELOW", -1)  # marks the grid's calls

    def grid_never(main_bytes, part_bytes, n_parts, compact_below, max_parts) -> bool:
        if compact_below == -1:
            return False
        return real(main_bytes, part_bytes, n_parts, compact_below, max_parts)

    monkeypatch.setattr(store, "merge_due", grid_never)


def flushes() -> list[list[dict]]:
    """Rows of four flushes: new points, then updates of earlier keys among new ones."""
    first = [grid_row(t, c) for t in ("Exp.9", "Exp.10") for c in (0.001, 0.05, 1.0)]
    return [
        first[:4],
        first[4:] + [grid_row("Exp.9", 0.001, version=1)],  # updates the very first row
        [grid_row("Exp.9", 10.0), grid_row("Exp.10", 0.05, version=1, reverse=0.25)],
        [grid_row("Exp.10", 0.05, version=2, reverse=0.5, iwcv=0.75)],  # newest of a key
    ]


def test_parts_read_like_the_whole_file_merged_or_not(tmp_path, unmerged) -> None:
    inc, ref = tmp_path / "inc", tmp_path / "ref"
    rows: dict = {}  # what run_grid keeps in memory
    for batch in flushes():
        for r in batch:
            rows[grid_key(r)] = r
        inc.mkdir(exist_ok=True)
        write_grid_part(inc, batch)
        whole_file(ref, rows)
        pd.testing.assert_frame_equal(read_grid(inc), read_grid(ref), check_exact=True)
    assert part_names(inc) == [f"0000000{i}.grid.csv" for i in (1, 2, 3, 4)]
    assert not (inc / GRID_FILE).exists()
    got = read_grid(inc)
    assert len(got) == 7 and got.columns.tolist() == read_grid(ref).columns.tolist()
    assert got["params"].tolist() == ['{"C": 0.001}', '{"C": 0.05}', '{"C": 1.0}'] * 2 + [
        '{"C": 10.0}']  # fmt: skip
    # an updated key keeps its place and takes its newest values
    newest = grid_row("Exp.10", 0.05, version=2, reverse=0.5, iwcv=0.75)
    row = got.iloc[4]
    assert (row["task"], row["reverse"], row["iwcv"]) == ("Exp.10", 0.5, 0.75)
    assert row["y_pred"] == newest["y_pred"] and row["mean_f1"] == newest["mean_f1"]
    assert got.iloc[0]["class_entropy"] == grid_row("Exp.9", 0.001, 1)["class_entropy"]
    assert got["reverse"].isna().sum() == 6 and got["reverse"].dtype == float
    # merging writes the very file the former writer wrote, and reads the same
    merge_grid(inc)
    assert sorted(p.name for p in inc.iterdir()) == [GRID_FILE]
    assert (inc / GRID_FILE).read_text() == (ref / GRID_FILE).read_text()
    pd.testing.assert_frame_equal(read_grid(inc), got, check_exact=True)
    # parts over a merged grid.csv: updated rows keep their place in it
    more = [grid_row("Exp.9", 0.05, version=3), grid_row("Exp.9", 20.0)]
    for r in more:
        rows[grid_key(r)] = r
    write_grid_part(inc, more)
    whole_file(ref, rows)
    assert part_names(inc) == ["00000001.grid.csv"]
    pd.testing.assert_frame_equal(read_grid(inc), read_grid(ref), check_exact=True)
    assert read_grid(inc)["params"].iloc[[1, -1]].tolist() == ['{"C": 0.05}', '{"C": 20.0}']


def test_merge_policy(tmp_path, monkeypatch) -> None:
    """Small grids merge at every write; larger ones when the parts outgrow grid.csv or
    reach the part limit."""
    write_grid_part(tmp_path, [grid_row("Exp.9", 1.0)])  # default: < 4 MiB, merged
    assert sorted(p.name for p in tmp_path.iterdir()) == [GRID_FILE]
    monkeypatch.setattr(store, "GRID_COMPACT_BELOW", 0)
    monkeypatch.setattr(store, "GRID_MAX_PARTS", 3)
    write_grid_part(tmp_path, [grid_row("Exp.9", c) for c in (2.0, 3.0)])  # outgrows
    assert part_names(tmp_path) == [] and len(read_grid(tmp_path)) == 3
    write_grid_part(tmp_path, [grid_row("Exp.9", 4.0)])
    write_grid_part(tmp_path, [grid_row("Exp.9", 5.0)])
    assert part_names(tmp_path) == ["00000001.grid.csv", "00000002.grid.csv"]
    write_grid_part(tmp_path, [grid_row("Exp.9", 6.0)])  # the third part
    assert not (tmp_path / "parts").exists()
    assert len(pd.read_csv(tmp_path / GRID_FILE)) == 6


def _state(directory: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    files = [directory / GRID_FILE, *sorted((directory / "parts").iterdir())]
    return read_grid(directory), {f.name: f.read_text() for f in files if f.is_file()}


def test_crash_before_a_part_commits_keeps_the_previous_grid(tmp_path, unmerged,
                                                             monkeypatch) -> None:  # fmt: skip
    """Killed after a part's rows are written but before its rename (the commit): the grid
    reads as before, the next write goes on, and a leftover temporary file is ignored and
    then removed by the merge."""
    batches = flushes()
    write_grid_part(tmp_path, batches[0])
    merge_grid(tmp_path)
    write_grid_part(tmp_path, batches[1])
    before, files = _state(tmp_path)
    real = os.replace
    renamed: list[str] = []

    def crash_on_rename(src, dst):
        if Path(dst).name.endswith(".grid.csv"):
            assert len(pd.read_csv(src)) == 2  # the part's rows are complete on disk
            raise KeyboardInterrupt("killed")
        renamed.append(Path(dst).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_rename)
    with pytest.raises(KeyboardInterrupt):
        write_grid_part(tmp_path, batches[2])
    monkeypatch.setattr(os, "replace", real)
    assert renamed == []
    got, now = _state(tmp_path)
    assert now == files  # no new part, nothing else touched
    pd.testing.assert_frame_equal(got, before, check_exact=True)
    # a SIGKILL at the same point leaves the temporary file: never read as a part
    (tmp_path / "parts" / ".00000002.grid.csv.x1y2.tmp").write_text("protocol,task\ncdmer,Ex")
    (tmp_path / ".grid.csv.x3y4.tmp").write_text("protocol,task\n")
    pd.testing.assert_frame_equal(read_grid(tmp_path), before, check_exact=True)
    write_grid_part(tmp_path, batches[2])
    assert part_names(tmp_path)[-1] == "00000002.grid.csv"
    want = read_grid(tmp_path)
    assert len(want) == len(before) + 1
    merge_grid(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [GRID_FILE]
    pd.testing.assert_frame_equal(read_grid(tmp_path), want, check_exact=True)


def test_crash_during_merge_keeps_every_row(tmp_path, unmerged, monkeypatch) -> None:
    """Killed after the merged grid.csv is in place, while the parts are being removed:
    the leftover (newer) parts re-apply the same rows."""
    for batch in flushes():
        write_grid_part(tmp_path, batch)
    want = read_grid(tmp_path)
    real_unlink = Path.unlink
    removed: list[str] = []

    def dies_on_third(self, missing_ok=False):
        if len(removed) == 2:
            raise KeyboardInterrupt("killed")
        removed.append(self.name)
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        merge_grid(tmp_path)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert removed == ["00000001.grid.csv", "00000002.grid.csv"]
    assert part_names(tmp_path) == ["00000003.grid.csv", "00000004.grid.csv"]
    pd.testing.assert_frame_equal(read_grid(tmp_path), want, check_exact=True)
    merge_grid(tmp_path)
    assert part_names(tmp_path) == []
    pd.testing.assert_frame_equal(read_grid(tmp_path), want, check_exact=True)


def test_half_written_part_never_appears(tmp_path, unmerged, monkeypatch) -> None:
    """A crash while a part is being written leaves the files as they were."""
    write_grid_part(tmp_path, flushes()[0])
    before, files = _state(tmp_path)
    real = pd.DataFrame.to_csv

    def half_then_crash(self, fh=None, *a, **k):
        text = real(self, None, *a, **k)
        fh.write(text[: len(text) // 2])
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        write_grid_part(tmp_path, flushes()[1])
    monkeypatch.setattr(pd.DataFrame, "to_csv", real)
    got, now = _state(tmp_path)
    assert now == files and sorted(p.name for p in tmp_path.iterdir()) == ["parts"]
    pd.testing.assert_frame_equal(got, before, check_exact=True)


def test_run_grid_flushes_only_new_and_updated_rows(domains, tmp_path, unmerged,
                                                    monkeypatch) -> None:  # fmt: skip
    """Through run_grid: every part holds only the rows of its flush (new points, or the
    TGSR points that gained ``reverse``); an interrupted run leaves parts that read like
    the merged file and resume; a finished run leaves grid.csv alone."""
    real_part = grid_run.write_grid_part
    parts: list[list[tuple]] = []

    def recording(directory, rows):
        rows = list(rows)
        parts.append([grid_key(r) for r in rows])
        return real_part(directory, rows)

    real_job = grid_run.run_path_job
    fits: list[str] = []

    def dies_after_four(job, *args):
        if len(fits) == 4:
            raise KeyboardInterrupt("killed")
        fits.extend(u.params_json for u in job.units)
        return real_job(job, *args)

    monkeypatch.setattr(grid_run, "write_grid_part", recording)
    monkeypatch.setattr(grid_run, "run_path_job", dies_after_four)
    with pytest.raises(KeyboardInterrupt):
        run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, progress=False, flush_every=1)
    keys = [k for p in parts for k in p]
    assert len(keys) == len(set(keys)) == 4  # each point written once: no row rewritten
    assert len(part_names(tmp_path)) == len(parts)
    copy = tmp_path.parent / "merged"
    shutil.copytree(tmp_path, copy)
    merge_grid(copy)
    assert part_names(copy) == [] and (copy / GRID_FILE).is_file()
    pd.testing.assert_frame_equal(read_grid(tmp_path), read_grid(copy), check_exact=True)
    assert {grid_key(r) for r in read_grid(tmp_path).to_dict("records")} == set(keys)
    monkeypatch.setattr(grid_run, "run_path_job", real_job)
    parts.clear()
    run = run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, progress=False)
    assert (run.resumed, run.computed) == (4, 2) and [len(p) for p in parts] == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        GRID_FILE, "predictions.csv", "results.csv"]  # fmt: skip
    pd.testing.assert_frame_equal(read_grid(tmp_path), run.grid, check_exact=True)
    # TGSR points gaining "reverse" later: the part holds those rows only, newest wins
    parts.clear()
    run_grid(domains, "tgsr", grid=TGSR_GRID, tasks=["C->V"], store=tmp_path, progress=False,
             criteria=["class_entropy"])  # fmt: skip
    assert [len(p) for p in parts] == [4]
    parts.clear()
    more = run_grid(domains, "tgsr", grid=TGSR_GRID, tasks=["C->V"], store=tmp_path,
                    progress=False, criteria=["class_entropy", "reverse"])  # fmt: skip
    assert more.criteria_only == 4 and [len(p) for p in parts] == [4]
    disk = read_grid(tmp_path)
    assert len(disk) == 6 + 4 and disk["method"].tolist() == ["svm"] * 6 + ["tgsr"] * 4
    tg = disk[disk["method"] == "tgsr"].set_index("params").loc[more.grid["params"]]
    tg = tg.reset_index()  # file order = order of the fits; run.grid is in unit order
    assert np.isfinite(tg["reverse"]).all()
    assert (tg["criteria"] == '["class_entropy", "reverse"]').all()
    pd.testing.assert_frame_equal(tg[more.grid.columns], more.grid, check_exact=True)
