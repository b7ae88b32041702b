"""Tests of the on-disk results store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import merkit.store as S
from merkit import _io
from merkit import metrics as M
from merkit.store import (
    EMBEDDINGS_DIR,
    GRID_FILE,
    HISTORY_COLUMNS,
    HISTORY_FILE,
    PREDICTION_COLUMNS,
    RESULT_COLUMNS,
    RUN_FILE,
    SKIPPED_FILE,
    SUMMARY_FILE,
    SUMMARY_TABLE_FILE,
    TGSR_BLOCKS_FILE,
    ResultStore,
    embeddings_path,
    fold_paths,
    list_parts,
    params_to_json,
    read_embeddings,
    read_fold,
    read_grid,
    read_history,
    read_tgsr_blocks,
    read_tgsr_grouping,
    result_key,
    write_embeddings,
    write_fold,
    write_grid_part,
    write_history,
    write_run_info,
    write_skipped,
    write_summary,
    write_summary_table,
    write_tgsr_blocks,
)


def unit(task="Exp.9", method="svm", params=None, seed=0, selection="none", shift=0, n=30):
    rng = np.random.default_rng(seed + 100 * shift)
    yt = rng.integers(0, 3, n)
    yp = np.where(rng.random(n) < 0.6, yt, rng.integers(0, 3, n))
    return dict(
        protocol="cdmer",
        task=task,
        source="CASME2",
        target="SMIC_VIS",
        method=method,
        params=params or {"C": 1.0},
        seed=seed,
        selection=selection,
        y_true=yt,
        y_pred=yp,
        clip=[f"{i + 1:04d}" for i in range(n)],
    )


def test_add_and_read_back(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "runs")
    u = unit()
    row = store.add(**u, extra={"seconds": 0.5})
    res = store.results()
    assert list(res.columns) == [*RESULT_COLUMNS, "seconds"]
    assert len(res) == 1
    r = res.iloc[0]
    assert r["params"] == '{"C":1.0}' and r["seed"] == 0 and r["n_test"] == 30
    assert r["mean_f1"] == pytest.approx(M.uf1(u["y_true"], u["y_pred"]))
    assert r["uar"] == pytest.approx(M.uar(u["y_true"], u["y_pred"]))
    assert r["accuracy"] == pytest.approx(100 * M.accuracy(u["y_true"], u["y_pred"]))
    assert row["mean_f1"] == r["mean_f1"] and r["seconds"] == 0.5
    preds = store.predictions()
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    assert len(preds) == 30
    assert preds["clip"].tolist()[:2] == ["0001", "0002"]  # ids stay strings
    np.testing.assert_array_equal(preds["y_true"], u["y_true"])
    np.testing.assert_array_equal(preds["sample"], np.arange(30))
    assert preds["y_pred"].dtype == np.int64
    assert (tmp_path / "runs" / "results.csv").is_file()
    assert sorted(os.listdir(tmp_path / "runs")) == ["predictions.csv", "results.csv"]  # no temp


def test_one_row_per_key_newer_wins(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.add(**unit(seed=0))
    store.add(**unit(seed=1))
    store.add(**unit(params={"C": 0.1}))
    store.add(**unit(task="Exp.10"))
    assert len(store) == 4
    newer = unit(seed=1, shift=7)
    store.add(**newer)  # same key as the second unit: replaces it in both files
    res = store.results()
    assert len(res) == 4
    r = res[(res.seed == 1)].iloc[0]
    assert r["mean_f1"] == pytest.approx(M.uf1(newer["y_true"], newer["y_pred"]))
    preds = store.predictions()
    assert len(preds) == 4 * 30
    np.testing.assert_array_equal(preds[preds.seed == 1]["y_pred"], newer["y_pred"])
    # params are canonical: key order and int/float spelling of the same dict
    assert params_to_json({"b": 1, "a": np.float64(0.5)}) == '{"a":0.5,"b":1}'
    assert result_key("cdmer", "Exp.9", "svm", "none", {"C": 1.0}, 0) in store
    assert result_key("cdmer", "Exp.9", "svm", "none", {"C": 2.0}, 0) not in store


def test_selected_rows_ignore_params_in_key(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.add(**unit(selection="oracle", params={"k": 5}))
    store.add(**unit(selection="oracle", params={"k": 9}, shift=3))
    res = store.results()
    assert len(res) == 1 and json.loads(res.iloc[0]["params"]) == {"k": 9}
    assert len(store.predictions()) == 30
    store.add(**unit(selection="ds-kmm", params={"k": 5}))
    assert len(store) == 2


def test_batch_and_recompute(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    recs = [ResultStore.make_record(**unit(task=t, seed=s)) for t in ("Exp.9", "Exp.10")
            for s in range(3)]  # fmt: skip
    recs.append(ResultStore.make_record(**unit(task="Exp.9", seed=0, shift=5)))  # dup key
    store.add_records(recs)
    res = store.results()
    assert len(res) == 6
    last = unit(task="Exp.9", seed=0, shift=5)
    r = res[(res.task == "Exp.9") & (res.seed == 0)].iloc[0]
    assert r["mean_f1"] == pytest.approx(M.uf1(last["y_true"], last["y_pred"]))
    # metrics are recomputable from the stored predictions
    again = store.recompute()
    merged = res.merge(again, on=["protocol", "task", "method", "selection", "params", "seed"])
    assert len(merged) == 6
    for m in ("mean_f1", "uar", "accuracy", "n_test"):
        np.testing.assert_allclose(merged[f"{m}_x"], merged[f"{m}_y"], rtol=1e-12)


def test_labels_are_stored_and_used(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    yt = np.array([0, 0, 2, 2])
    yp = np.array([0, 1, 2, 2])
    store.add(protocol="p", task="t", method="m", y_true=yt, y_pred=yp, labels=[0, 1, 2])
    r = store.results().iloc[0]
    assert r["labels"] == "[0, 1, 2]"
    assert r["mean_f1"] == pytest.approx(M.uf1(yt, yp, labels=[0, 1, 2]))
    assert store.recompute().iloc[0]["mean_f1"] == pytest.approx(r["mean_f1"])


def test_fold_column_and_errors(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    u = unit(n=4)
    store.add(**{**u, "task": "loso"}, fold=["s1", "s1", "s2", "s2"], sample=[9, 8, 7, 6])
    p = store.predictions()
    assert p["fold"].tolist() == ["s1", "s1", "s2", "s2"]
    assert p["sample"].tolist() == [9, 8, 7, 6]
    with pytest.raises(ValueError, match="fold needs 4 entries"):
        store.add(**u, fold=["s1"])
    with pytest.raises(ValueError, match="y_true has 4 labels, y_pred 3"):
        store.add(**{**u, "y_pred": u["y_pred"][:3]})
    with pytest.raises(ValueError, match="clashes"):
        store.add(**u, extra={"uar": 1})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.add(**{**u, "params": {"f": object()}})
    (tmp_path / "other").mkdir()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other" / "results.csv", index=False)
    with pytest.raises(ValueError, match="not a merkit results file"):
        ResultStore(tmp_path / "other").results()


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path, monkeypatch) -> None:
    store = ResultStore(tmp_path)
    store.add(**unit())
    before = (tmp_path / "results.csv").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.add(**unit(seed=5))
    assert (tmp_path / "results.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "results.csv"]


def test_empty_store(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "new")
    assert store.results().empty and store.predictions().empty
    assert len(store) == 0 and store.keys() == set()
    assert store.recompute().empty


# ----------------------------------------------------------------- incremental writes
def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_parts_read_like_merged_files(tmp_path: Path) -> None:
    """Writes go to parts (newer wins per key); reading them equals the merged files."""
    inc = ResultStore(tmp_path / "inc", compact_below=0, max_parts=1000)
    ref = ResultStore(tmp_path / "ref")  # small store: merged after every write
    batches = [
        [ResultStore.make_record(**unit(task="Exp.1", n=3000))],  # merged: larger than parts
        [ResultStore.make_record(**unit(seed=s), extra={"seconds": 0.5}) for s in range(3)],
        [ResultStore.make_record(**unit(task="Exp.10"), extra={"score": 0.25})],
        [ResultStore.make_record(**unit(seed=1, shift=7))],  # replaces seed 1 of batch 1
        [ResultStore.make_record(**unit(selection="oracle", params={"k": 3}))],
        [ResultStore.make_record(**unit(selection="oracle", params={"k": 9}, shift=2))],
    ]
    for b in batches:
        inc.add_records(b)
        ref.add_records(b)
    parts = sorted(p.name for p in (tmp_path / "inc" / "parts").iterdir())
    assert len(parts) == 10 and parts[:2] == ["00000001.predictions.csv", "00000001.results.csv"]
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == [
        "predictions.csv", "results.csv"]  # fmt: skip
    res, ref_res = inc.results(), ref.results()
    _same(res.drop(columns="created"), ref_res.drop(columns="created"))
    assert len(res) == 6 and res["seconds"].tolist()[:3] == ["", "0.5", "0.5"]  # as merged
    assert json.loads(res.iloc[-1]["params"]) == {"k": 9}
    newer = unit(seed=1, shift=7)
    _same(inc.predictions(), ref.predictions())
    p = inc.predictions()
    assert len(p) == 3000 + 5 * 30
    np.testing.assert_array_equal(p[(p.seed == 1) & (p.task == "Exp.9")]["y_pred"],
                                  newer["y_pred"])  # fmt: skip
    assert inc.keys() == ref.keys() and len(inc) == 6
    _same(inc.recompute(), ref.recompute())
    before = inc.results()
    inc.compact()
    assert sorted(p.name for p in (tmp_path / "inc").iterdir()) == [
        "predictions.csv", "results.csv"]  # fmt: skip
    _same(inc.results(), before)
    _same(inc.predictions(), ref.predictions())


def test_merge_policy_doubles(tmp_path: Path) -> None:
    """Parts merge when they outgrow predictions.csv or reach max_parts."""
    store = ResultStore(tmp_path, compact_below=0, max_parts=3)
    store.add(**unit(seed=0))  # no predictions.csv yet: the first part outgrows it
    assert not (tmp_path / "parts").exists() and len(store) == 1
    store.add(**unit(seed=1))  # a part as large as the main file: merged
    assert not (tmp_path / "parts").exists()
    store.add(**unit(seed=2, n=5))  # small parts stay until there are 3
    store.add(**unit(seed=3, n=5))
    assert len(list((tmp_path / "parts").iterdir())) == 4
    store.add(**unit(seed=4, n=5))
    assert not (tmp_path / "parts").exists()
    assert len(pd.read_csv(tmp_path / "results.csv")) == 5
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 2 * 30 + 3 * 5


def test_uncommitted_part_is_ignored(tmp_path: Path, monkeypatch) -> None:
    """A crash between the predictions part and its results part (the commit) loses that
    write only; the next write and the merge go on from there."""
    store = ResultStore(tmp_path, compact_below=0)
    store.add(**unit(seed=0, n=300))
    before_res, before_pred = store.results(), store.predictions()
    real = ResultStore.make_record(**unit(seed=0, shift=9))  # would replace seed 0
    writes = []

    def crash_on_commit(path, df, **kwargs):
        if path.name.endswith(".results.csv"):
            raise KeyboardInterrupt("killed")
        writes.append(path.name)
        return orig(path, df, **kwargs)

    orig = _io.atomic_write_csv
    monkeypatch.setattr(_io, "atomic_write_csv", crash_on_commit)
    with pytest.raises(KeyboardInterrupt):
        store.add_records([real])
    monkeypatch.setattr(_io, "atomic_write_csv", orig)
    assert writes == ["00000001.predictions.csv"]
    _same(store.results(), before_res)
    _same(store.predictions(), before_pred)  # the orphan predictions are not read
    store.add(**unit(seed=1))  # numbered after the orphan
    assert (tmp_path / "parts" / "00000002.results.csv").is_file()
    assert len(store) == 2 and len(store.predictions()) == 330
    store.compact()
    assert not (tmp_path / "parts").exists() and len(store.predictions()) == 330


def test_crash_during_merge_keeps_every_row(tmp_path: Path, monkeypatch) -> None:
    """Killed after the merged files are written but while parts are being removed: the
    leftover (newest) parts re-apply the same rows."""
    store = ResultStore(tmp_path, compact_below=0, max_parts=100)
    store.add(**unit(seed=0, n=300))
    assert not (tmp_path / "parts").exists()
    for shift in (1, 2, 3):  # three versions of one key, then another key
        store.add(**unit(seed=5, shift=shift, n=4))
    store.add(**unit(seed=6, n=4))
    want_res, want_pred = store.results(), store.predictions()
    real_unlink = Path.unlink
    removed: list[str] = []

    def dies_on_third(self, missing_ok=False):
        if len(removed) == 3:
            raise KeyboardInterrupt("killed")
        removed.append(self.name)
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        store.compact()
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert removed == ["00000001.results.csv", "00000001.predictions.csv",
                       "00000002.results.csv"]  # fmt: skip
    _same(store.results(), want_res)
    _same(store.predictions(), want_pred)
    newest = unit(seed=5, shift=3, n=4)
    p = store.predictions()
    np.testing.assert_array_equal(p[p.seed == 5]["y_pred"], newest["y_pred"])
    store.compact()
    _same(store.results(), want_res)
    _same(store.predictions(), want_pred)


def test_half_written_file_never_replaces_the_old(tmp_path: Path, monkeypatch) -> None:
    """A crash while a file is being written (here: after half of its rows) leaves the old
    complete file and no temporary file."""
    store = ResultStore(tmp_path)
    store.add(**unit(seed=0))
    files = {f: (tmp_path / f).read_text() for f in ("results.csv", "predictions.csv")}
    real = pd.DataFrame.to_csv

    def half_then_crash(self, fh=None, *a, **k):
        text = real(self, None, *a, **k)
        fh.write(text[: len(text) // 2])
        fh.flush()
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        store.add(**unit(seed=1))
    monkeypatch.setattr(pd.DataFrame, "to_csv", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "results.csv"]
    assert {f: (tmp_path / f).read_text() for f in files} == files
    assert len(store) == 1


_KILL_SCRIPT = """
import sys
import numpy as np
from merkit.store import ResultStore
store = ResultStore(sys.argv[1], compact_below=1 << 16, max_parts=4)
for i in range(100000):
    rng = np.random.default_rng(i)
    y = rng.integers(0, 3, 400)
    recs = [ResultStore.make_record(protocol="p", task="t", method="m", params={"i": i % 37},
                                    seed=0, y_true=y, y_pred=rng.permutation(y))]
    store.add_records(recs)
    if i == 10:
        print("ready", flush=True)
"""


def test_killed_writer_leaves_a_consistent_store(tmp_path: Path) -> None:
    """SIGKILL a process that keeps writing (parts and merges): every results row that
    can be read has its complete predictions, and the metrics recompute from them."""

    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.7)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    store = ResultStore(tmp_path)
    res = store.results()
    assert 11 <= len(res) <= 37
    again = store.recompute()
    assert len(again) == len(res) and (again["n_test"] == 400).all()
    merged = res.merge(again, on=["protocol", "task", "method", "selection", "params", "seed"])
    np.testing.assert_allclose(merged["mean_f1_x"], merged["mean_f1_y"], rtol=1e-12)
    store.compact()  # also removes the temporary file of a write the kill interrupted
    assert len(store) == len(res)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "results.csv"]


_WRITER_SCRIPT = """
import sys
import numpy as np
from merkit.store import ResultStore
store = ResultStore(sys.argv[1], compact_below=1 << 14, max_parts=3)
for i in range(40):
    rng = np.random.default_rng(i)
    y = rng.integers(0, 3, 200)
    store.add_records([ResultStore.make_record(protocol="p", task=sys.argv[2], method="m",
                                               params={"i": i}, seed=0, y_true=y,
                                               y_pred=rng.permutation(y))])
print("done", flush=True)
"""


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    """Two processes writing one store at once (as parallel `merkit train` folds into one
    --out do): part numbers, merges and stale-file removal are serialised by the
    directory lock, so neither crashes and every row of both is stored once."""

    procs = [subprocess.Popen([sys.executable, "-c", _WRITER_SCRIPT, str(tmp_path), task],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for task in ("a", "b")]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0 and out.strip() == "done", err
    store = ResultStore(tmp_path)
    res = store.results()
    assert len(res) == 80 and res.groupby("task").size().to_dict() == {"a": 40, "b": 40}
    assert len(store.predictions()) == 80 * 200


def test_parts_folder_removed_while_listed_reads_as_no_parts(tmp_path, monkeypatch) -> None:
    """A reader lists ``parts/`` while another process's merge removes it: no parts (the
    merged file holds them), not a FileNotFoundError."""

    parts = tmp_path / "parts"
    parts.mkdir()
    (parts / "00000001.grid.csv").write_text("a\n1\n")
    assert list(list_parts(parts, ("grid",))) == [1]
    real = Path.iterdir

    def vanished(self):
        if self == parts:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", vanished)
    assert list_parts(parts, ("grid",)) == {}
    assert list_parts(tmp_path / "never", ("grid",)) == {}


# ------------------------------------------------------------------ per-run files
def grid_row(task: str, c: float, version: int = 0) -> dict:
    """A grid row as the grid runner writes it (12 target predictions)."""
    rng = np.random.default_rng(int(1000 * c) + 7 * version + 31 * int(task[4:]))
    return {
        "protocol": "cdmer", "task": task, "source": "CASME2", "target": "SMIC_VIS",
        "method": "svm", "selection": "none", "params": json.dumps({"C": c}), "seed": 0,
        "data": "ab12>cd34", "mean_f1": rng.random(), "uar": rng.random(),
        "accuracy": 100 * rng.random(), "n_test": 12, "labels": "", "classes": "",
        "created": "2024-05-01T00:00:00+00:00", "seconds": round(rng.random(), 4),
        "published_params": json.dumps({"C": c}), "criteria": '["entropy"]',
        "entropy": -rng.random(), "class_entropy": np.nan if version == 0 else rng.random(),
        "y_pred": json.dumps(rng.integers(0, 3, 12).tolist(), separators=(",", ":")),
    }  # fmt: skip


def test_grid_parts_merge_and_read(tmp_path: Path, monkeypatch) -> None:
    """Grid rows written as parts read like the merged grid.csv: the newest row of a key
    at the place its key first appeared, same columns and dtypes; the merge removes the
    parts."""

    monkeypatch.setattr(S, "merge_due", lambda *args: False)  # merge only when asked
    first = [grid_row(t, c) for t in ("Exp.9", "Exp.10") for c in (0.01, 1.0)]
    update = [grid_row("Exp.9", 1.0, version=1), grid_row("Exp.11", 0.01)]
    S.write_grid_part(tmp_path, first)
    S.write_grid_part(tmp_path, update)
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        "00000001.grid.csv", "00000002.grid.csv"]  # fmt: skip
    assert not (tmp_path / S.GRID_FILE).exists()
    got = S.read_grid(tmp_path)
    assert got[["task", "params"]].values.tolist() == [
        ["Exp.9", '{"C": 0.01}'], ["Exp.9", '{"C": 1.0}'], ["Exp.10", '{"C": 0.01}'],
        ["Exp.10", '{"C": 1.0}'], ["Exp.11", '{"C": 0.01}']]  # fmt: skip
    assert got["mean_f1"].iloc[1] == update[0]["mean_f1"]  # the newer version of the key
    assert got["class_entropy"].isna().tolist() == [True, False, True, True, True]
    assert got["y_pred"].iloc[1] == update[0]["y_pred"] and got["seed"].dtype == np.int64
    assert [S.grid_key(r) for r in got.to_dict("records")][1] == S.grid_key(update[0])
    assert ResultStore(tmp_path).grid().equals(got)
    S.merge_grid(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [S.GRID_FILE]
    pd.testing.assert_frame_equal(S.read_grid(tmp_path), got, check_exact=True)
    assert S.read_grid(tmp_path / "none").empty


def test_small_grid_is_merged_at_each_write(tmp_path: Path) -> None:

    write_grid_part(tmp_path, [grid_row("Exp.9", 0.01)])
    write_grid_part(tmp_path, [grid_row("Exp.9", 0.01, version=1), grid_row("Exp.9", 1.0)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [GRID_FILE]
    assert len(read_grid(tmp_path)) == 2


def test_tgsr_blocks_round_trip(tmp_path: Path) -> None:

    store = ResultStore(tmp_path)
    assert store.tgsr_blocks() is None and store.tgsr_grouping() == ("spatial", {})
    path = write_tgsr_blocks(tmp_path, [1, 2, 4, 8], {"Exp.9": [0, 3, 40]})
    assert path == tmp_path / TGSR_BLOCKS_FILE
    assert path.read_text() == '{"levels": [1, 2, 4, 8], "tasks": {\n  "Exp.9": [0, 3, 40]\n}}\n'
    write_tgsr_blocks(tmp_path, (1, 2, 4, 8), {"Exp.10": [5], "Exp.9": [1]})  # kept + replaced
    assert read_tgsr_blocks(path) == ((1, 2, 4, 8), {"Exp.9": [1], "Exp.10": [5]})
    assert read_tgsr_grouping(path) == ("spatial", {})
    write_tgsr_blocks(tmp_path, [1, 2], {"Exp.3": [0, 4]})  # other levels: a new file
    assert store.tgsr_blocks() == ((1, 2), {"Exp.3": [0, 4]})
    write_tgsr_blocks(tmp_path, [1, 2], {"Exp.3": [2]}, grouping="authors",
                      groups={"Exp.3": [7, 8]})  # fmt: skip
    assert read_tgsr_blocks(path) == ((1, 2), {"Exp.3": [2]})  # other grouping: replaced
    write_tgsr_blocks(tmp_path, [1, 2], {"Exp.4": [1]}, grouping="authors",
                      groups={"Exp.4": [0]})  # fmt: skip
    assert read_tgsr_grouping(path) == ("authors", {"Exp.3": [7, 8], "Exp.4": [0]})
    assert store.tgsr_grouping() == ("authors", {"Exp.3": [7, 8], "Exp.4": [0]})
    assert json.loads(path.read_text())["tasks"] == {"Exp.3": [2], "Exp.4": [1]}
    path.write_text("{broken")
    write_tgsr_blocks(tmp_path, [1, 2], {"Exp.1": [3]})  # an unreadable old file is replaced
    assert read_tgsr_blocks(path) == ((1, 2), {"Exp.1": [3]})


def history_block(fold: str, seed: int, loss: float, epochs: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"epoch": np.arange(1, epochs + 1), "loss": loss / np.arange(1, 4)[:epochs],
                         "accuracy": np.linspace(0.3, 0.9, epochs), "lr": 1e-3}).assign(
        protocol="loso", task="CASME2", method="ststnet", seed=seed, fold=fold)  # fmt: skip


def test_history_round_trip(tmp_path: Path) -> None:

    path = tmp_path / HISTORY_FILE
    assert write_history(path, []).empty and not path.exists()
    write_history(path, [history_block("01", 0, 4.0), history_block("02", 0, 3.0)])
    got = write_history(path, [history_block("01", 0, 2.0, epochs=2), history_block("01", 1, 1.0)])
    assert got.columns.tolist() == list(HISTORY_COLUMNS)
    back = read_history(path)
    assert back.equals(ResultStore(tmp_path).history())
    assert back[["fold", "seed"]].drop_duplicates().values.tolist() == [["02", 0], ["01", 0],
                                                                        ["01", 1]]  # fmt: skip
    assert back["fold"].tolist()[:3] == ["02"] * 3  # text, leading zero kept
    assert back.loc[(back.fold == "01") & (back.seed == 0), "loss"].tolist() == [2.0, 1.0]
    assert back["epoch"].dtype == np.int64 and len(back) == 8
    assert ResultStore(tmp_path / "other").history() is None


def test_embeddings_round_trip(tmp_path: Path) -> None:

    path = embeddings_path(tmp_path, "loso", "CASME2", "ststnet", 3)
    assert path == tmp_path / EMBEDDINGS_DIR / "loso__CASME2__ststnet__seed3.npz"
    z = np.arange(12, dtype=np.float32).reshape(4, 3)
    write_embeddings(path, z=z, y_true=np.array([0, 1, 2, 1]), y_pred=np.array([0, 1, 1, 1]),
                     sample_id=np.array(["s1/a", "s1/b", "s2/a", "s2/b"]),
                     classes=np.array(["neg", "pos", "sur"]),
                     fold=np.array(["s1", "s1", "s2", "s2"]))  # fmt: skip
    e = read_embeddings(path)
    np.testing.assert_array_equal(e["z"], z)
    assert e["y_pred"].tolist() == [0, 1, 1, 1] and e["classes"] == ["neg", "pos", "sur"]
    assert e["name"] == {"protocol": "loso", "task": "CASME2", "model": "ststnet", "seed": 3}
    assert not e["multilabel"] and ResultStore(tmp_path).embedding_files() == [path]
    with np.load(path) as f:
        assert f["fold"].tolist() == ["s1", "s1", "s2", "s2"]


def test_fold_files_round_trip(tmp_path: Path) -> None:

    base = tmp_path / "folds" / "run-1" / "seed0" / "sub01"
    assert read_fold(base) is None
    preds = pd.DataFrame({"seed": 0, "fold": "01", "sample": [4, 7],
                          "subject": ["01", "01"], "clip": ["0001", "0002"], "y_true": [1, 2],
                          "y_pred": [1, 0]})  # fmt: skip
    hist = history_block("01", 0, 1.0).drop(columns=["protocol", "task", "method"])
    write_fold(base, preds, hist, np.array([4, 7]), np.ones((2, 5), dtype=np.float32))
    csv, hist_path, npz = fold_paths(base)
    assert [p.name for p in (csv, hist_path, npz)] == ["sub01.csv", "sub01.history.csv",
                                                       "sub01.npz"]  # fmt: skip
    got, h, (sample, z) = read_fold(base)
    pd.testing.assert_frame_equal(got, preds)
    assert h["loss"].tolist() == hist["loss"].tolist() and sample.tolist() == [4, 7]
    assert z.shape == (2, 5)
    hist_path.unlink()
    npz.unlink()
    assert read_fold(base)[1:] == (None, None)


def test_run_files(tmp_path: Path, caplog) -> None:
    skipped = pd.DataFrame({"dataset": ["SMIC"], "subject": [""], "clip": ["s1_ne_01"],
                            "reason": ["frames missing"]})  # fmt: skip
    assert write_skipped(tmp_path, skipped) == tmp_path / SKIPPED_FILE
    assert "1 clip(s) left out" in caplog.text
    assert pd.read_csv(tmp_path / SKIPPED_FILE, keep_default_na=False).equals(skipped)
    assert write_skipped(tmp_path, skipped.iloc[:0]) is None  # a stale list goes
    assert not (tmp_path / SKIPPED_FILE).exists()
    write_run_info(tmp_path, {"seeds": [0, 1], "out": tmp_path, "model": "fr"})
    assert json.loads((tmp_path / RUN_FILE).read_text()) == {
        "model": "fr", "out": str(tmp_path), "seeds": [0, 1]}  # fmt: skip
    assert (tmp_path / RUN_FILE).read_text().startswith('{\n  "model": "fr"')
    write_summary_table(tmp_path, pd.DataFrame({"uf1": [0.5]}))
    assert (tmp_path / SUMMARY_TABLE_FILE).read_text() == "uf1\n0.5\n"
    write_summary(tmp_path / "new", "# summary\n")
    assert (tmp_path / "new" / SUMMARY_FILE).read_text() == "# summary\n"


def test_has_parts(tmp_path: Path) -> None:
    store = ResultStore(tmp_path, compact_below=0)
    assert not store.has_parts()
    store.add(**unit(seed=0, n=300))
    store.add(**unit(seed=1))
    assert store.has_parts()
    store.compact()
    assert not store.has_parts()
