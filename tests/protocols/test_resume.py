"""Killed runs resume with only the missing points; what a run leaves in its folder."""

from __future__ import annotations

import inspect
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.adapt import make_method
from merkit.data.features_io import cdmer_lbptop_layout, load_cdmer_dir, tgsr_authors_groups
from merkit.data.schema import FeatureSet
from merkit.protocols import grid as grid_run
from merkit.protocols import runner
from merkit.protocols.cdmer import get_task
from merkit.protocols.runner import run_cdmer, run_grid
from merkit.protocols.units import task_data
from merkit.store import (
    TGSR_BLOCKS_FILE,
    ResultStore,
    grid_key,
    read_grid,
    read_tgsr_blocks,
    read_tgsr_grouping,
)

CLASSES = ("negative", "positive", "surprise")
METRICS = ["mean_f1", "uar", "accuracy"]
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cdmer_lbptop_r3p8"


def domain(name: str, n: int, shift: float, seed: int, d: int = 6) -> FeatureSet:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = np.eye(3, d)[y] * 1.2 + rng.normal(size=(n, d)) + shift
    table = pd.DataFrame({"dataset": name, "subject": [f"{name}/{i % 5}" for i in range(n)],
                          "clip": [f"{name.lower()}_{i:03d}" for i in range(n)],
                          "label": [CLASSES[v] for v in y], "y": y})  # fmt: skip
    return FeatureSet(X, table, name=name, classes=CLASSES)


def domains() -> dict[str, FeatureSet]:
    return {"CASME2": domain("CASME2", 40, 0.0, 1), "SMIC_VIS": domain("SMIC_VIS", 25, -0.7, 3)}


SVM_GRID = {"svm": [{"C": float(c)} for c in np.geomspace(1e-3, 10, 30)]}
TGSR_GRID = {"tgsr": [{"kappa": k, "xi": x, "group_size": 2} for k in (1, 2, 3)
                      for x in (0.001, 0.5, 50.0)]}  # fmt: skip

_KILLED = (
    """
from __future__ import annotations
import sys, time
import numpy as np
import pandas as pd
from merkit.data.schema import FeatureSet
from merkit.protocols import grid as grid_run
from merkit.protocols import runner
CLASSES = ("negative", "positive", "surprise")
"""
    + inspect.getsource(domain)
    + inspect.getsource(domains)
    + """
real = grid_run.run_path_job
def slow(*args):  # long enough to be killed half-way
    time.sleep(0.08)
    return real(*args)
grid_run.run_path_job = slow
grid = {"svm": [{"C": float(c)} for c in np.geomspace(1e-3, 10, 30)]}
runner.run_grid(domains(), "svm", grid=grid, store=sys.argv[1], progress=False, flush_every=1)
"""
)


def _counting(monkeypatch, module, name: str) -> list:
    """The first argument of every call of ``module.name`` (a unit, or a grid job)."""
    calls: list = []
    real = getattr(module, name)

    def counted(*args):
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(module, name, counted)
    return calls


def _same_points(a: pd.DataFrame, b: pd.DataFrame, crit=("reverse", "class_entropy")) -> None:
    cols = ["task", "method", "params", "y_pred", *METRICS]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True),
                                  b[cols].reset_index(drop=True), check_exact=True)  # fmt: skip
    pd.testing.assert_frame_equal(a[list(crit)].reset_index(drop=True),
                                  b[list(crit)].reset_index(drop=True), rtol=1e-12)  # fmt: skip


def test_sigkilled_grid_resumes_with_the_missing_points(tmp_path, monkeypatch) -> None:
    """SIGKILL a grid process half-way; the re-run fits only the points it had not stored
    and ends with the grid of an uninterrupted run."""
    store = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(store)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(read_grid(store)) >= 8:
                break
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the grid finished before it was killed"
    before = {grid_key(r) for r in read_grid(store).to_dict("records")}
    before &= ResultStore(store).keys()  # points stored in both files
    assert 8 <= len(before) < 60
    jobs = _counting(monkeypatch, grid_run, "run_path_job")
    run = run_grid(domains(), "svm", grid=SVM_GRID, store=store, progress=False)
    assert (run.resumed, run.computed) == (len(before), 60 - len(before))
    calls = [u for job in jobs for u in job.units]
    assert len(calls) == run.computed  # nothing stored was fitted again
    assert {u.key for u in calls}.isdisjoint(before)
    monkeypatch.undo()
    fresh = run_grid(domains(), "svm", grid=SVM_GRID, store=tmp_path / "fresh", progress=False)
    _same_points(run.grid, fresh.grid)
    pd.testing.assert_frame_equal(
        run.selected[["task", "selection", "params", *METRICS]],
        fresh.selected[["task", "selection", "params", *METRICS]],
    )
    n_preds = len(ResultStore(tmp_path / "fresh").predictions())
    assert len(ResultStore(store).predictions()) == n_preds == (30 + 4) * (25 + 40)


def test_interrupted_parallel_grid_resumes(tmp_path, monkeypatch) -> None:
    """Interrupted while storing (loky, 2 workers, TGSR fast path): the re-run computes
    only the points that were not stored."""
    grid = {**TGSR_GRID, "svm": SVM_GRID["svm"][:6]}
    real = ResultStore.add_records
    flushes: list[int] = []

    def dies_on_second_flush(self, records):  # the first flush follows the first job
        records = list(records)
        if flushes:
            raise KeyboardInterrupt("killed")
        flushes.append(len(records))
        return real(self, records)

    monkeypatch.setattr(ResultStore, "add_records", dies_on_second_flush)
    with pytest.raises(KeyboardInterrupt):
        run_grid(domains(), ["tgsr", "svm"], grid=grid, store=tmp_path, progress=False,
                 n_jobs=2, flush_every=1)  # fmt: skip
    monkeypatch.undo()
    stored = len(read_grid(tmp_path))
    assert stored == len(ResultStore(tmp_path)) == sum(flushes) and 0 < stored < 30
    run = run_grid(domains(), ["tgsr", "svm"], grid=grid, store=tmp_path, progress=False)
    assert run.computed == 30 - stored  # stored TGSR points may still lack "reverse":
    assert run.resumed + run.criteria_only == stored  # that is computed from their predictions
    fresh = run_grid(domains(), ["tgsr", "svm"], grid=grid, store=tmp_path / "f", progress=False)
    _same_points(run.grid, fresh.grid)


def test_interrupted_run_cdmer_resumes(tmp_path, monkeypatch) -> None:
    params = SVM_GRID["svm"][:5]
    real = ResultStore.add_records

    def dies_on_fourth_flush(self, records):
        if len(ResultStore(self.directory)) >= 3:
            raise KeyboardInterrupt("killed")
        return real(self, records)

    monkeypatch.setattr(ResultStore, "add_records", dies_on_fourth_flush)
    with pytest.raises(KeyboardInterrupt):
        run_cdmer(domains(), "svm", params=params, store=tmp_path, progress=False, flush_every=1)
    monkeypatch.undo()
    assert len(ResultStore(tmp_path)) == 3
    calls = _counting(monkeypatch, runner, "run_unit_shared")
    out = run_cdmer(domains(), "svm", params=params, store=tmp_path, progress=False)
    assert len(calls) == 10 - 3 and len(out) == 10
    monkeypatch.undo()
    fresh = run_cdmer(domains(), "svm", params=params, progress=False)
    cols = ["task", "params", *METRICS]
    pd.testing.assert_frame_equal(out[cols], fresh[cols], check_exact=True)


# ----------------------------------------------------------------- tgsr_blocks.json
def test_tgsr_blocks_file_of_run_cdmer_and_run_grid(tmp_path) -> None:
    params = [{"kappa": 1, "group_size": 2}, {"kappa": 2, "group_size": 2}]
    res = run_cdmer(domains(), "tgsr", params=params, tasks=["C->V"], store=tmp_path,
                    progress=False)  # fmt: skip
    best = json.loads(res.loc[res["mean_f1"].idxmax(), "params"])
    levels, blocks = read_tgsr_blocks(tmp_path / TGSR_BLOCKS_FILE)
    assert levels == (1, 2, 4, 8) and list(blocks) == ["Exp.9"]
    assert len(blocks["Exp.9"]) == best["kappa"]
    td = task_data(get_task("C->V"), domains())
    est = make_method("tgsr", **best).fit(
        np.vstack([td.Xs, td.Xt]),
        np.r_[td.ys, -np.ones(len(td.Xt), dtype=int)],
        sample_domain=np.r_[np.ones(len(td.Xs), dtype=int), -np.ones(len(td.Xt), dtype=int)],
    )
    assert blocks["Exp.9"] == est.selected_blocks_.tolist()
    # a grid run adds its tasks (oracle point), keeping the other entries
    run = run_grid(domains(), "tgsr", grid=TGSR_GRID, tasks=["V->C"], store=tmp_path,
                   progress=False, criteria=["class_entropy"])  # fmt: skip
    oracle = run.selected.set_index("selection").loc["oracle", "params"]
    _, blocks = read_tgsr_blocks(tmp_path / TGSR_BLOCKS_FILE)
    assert sorted(blocks) == ["Exp.10", "Exp.9"]
    assert len(blocks["Exp.10"]) == json.loads(oracle)["kappa"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "grid.csv", "predictions.csv", "results.csv", TGSR_BLOCKS_FILE]  # fmt: skip


def test_tgsr_blocks_of_the_real_features(tmp_path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"CDMER reference features not found at {SHARED}")
    grid = {"tgsr": [{"kappa": 60, "xi": 1.0}]}
    # the true facial blocks: the selected groups are the blocks drawn
    feats = load_cdmer_dir(SHARED, tgsr_groups="spatial")
    run_grid(feats, "tgsr", grid=grid, tasks=["C->V"], store=tmp_path / "s", progress=False,
             criteria=["class_entropy"])  # fmt: skip
    levels, blocks = read_tgsr_blocks(tmp_path / "s" / TGSR_BLOCKS_FILE)
    assert levels == (1, 2, 4, 8) and len(blocks["Exp.9"]) == 60
    assert set(blocks["Exp.9"]) <= set(range(85))
    assert read_tgsr_grouping(tmp_path / "s" / TGSR_BLOCKS_FILE) == ("spatial", {})
    # the authors' column runs (default): 60 runs, drawn as the blocks their columns reach
    feats = load_cdmer_dir(SHARED)
    run_grid(feats, "tgsr", grid=grid, tasks=["C->V"], store=tmp_path, progress=False,
             criteria=["class_entropy"])  # fmt: skip
    grouping, runs = read_tgsr_grouping(tmp_path / TGSR_BLOCKS_FILE)
    assert grouping == "authors" and len(runs["Exp.9"]) == 60
    _, blocks = read_tgsr_blocks(tmp_path / TGSR_BLOCKS_FILE)
    reach = cdmer_lbptop_layout()[0][np.isin(tgsr_authors_groups(), runs["Exp.9"])]
    assert blocks["Exp.9"] == np.unique(reach).tolist()


def test_tgsr_blocks_file_of_column_runs_names_the_blocks_they_reach(tmp_path) -> None:
    # benchmark-style features on the 1 + 2x2 grid (5 blocks x 3 planes x 2 bins, stored
    # level by plane) grouped as the TGSR authors did: 5 runs of 6 contiguous columns
    from merkit.results.report import build_report

    blocks = cdmer_lbptop_layout(levels=(1, 2), n_bins=2)[0]
    runs = tgsr_authors_groups(levels=(1, 2), n_bins=2)
    assert blocks.tolist()[6:18] == [1, 1, 3, 3, 2, 2, 4, 4] + [1, 1, 3, 3]  # column-major
    assert runs.tolist()[6:18] == [1] * 6 + [2] * 6

    def grouped(fs: FeatureSet, groups) -> FeatureSet:
        return FeatureSet(fs.X, fs.table, name=fs.name, classes=fs.classes, blocks=blocks,
                          levels=(1, 2), column_groups=groups,
                          grouping="authors" if groups is not None else None)  # fmt: skip

    raw = {"CASME2": domain("CASME2", 40, 0.0, 1, d=30),
           "SMIC_VIS": domain("SMIC_VIS", 25, -0.7, 3, d=30)}  # fmt: skip
    feats = {k: grouped(v, runs) for k, v in raw.items()}
    run_cdmer(feats, "tgsr", params={"kappa": 2, "xi": 0.1}, tasks=["C->V"], store=tmp_path,
              progress=False)  # fmt: skip
    grouping, sel = read_tgsr_grouping(tmp_path / TGSR_BLOCKS_FILE)
    levels, drawn = read_tgsr_blocks(tmp_path / TGSR_BLOCKS_FILE)
    assert grouping == "authors" and len(sel["Exp.9"]) == 2 and levels == (1, 2)
    assert drawn["Exp.9"] == np.unique(blocks[np.isin(runs, sel["Exp.9"])]).tolist()
    assert len(drawn["Exp.9"]) > 2  # a run of this layout reaches several blocks
    _, md = build_report(tmp_path, n_boot=20)
    text = md.read_text()
    assert "TGSR's groups were the 'authors' grouping (the TGSR authors' runs" in text
    # the same features grouped by their facial blocks: the selected groups are drawn
    spatial = {k: grouped(v, None) for k, v in raw.items()}
    run_cdmer(spatial, "tgsr", params={"kappa": 2, "xi": 0.1}, tasks=["C->V"],
              store=tmp_path / "s", progress=False)  # fmt: skip
    assert read_tgsr_grouping(tmp_path / "s" / TGSR_BLOCKS_FILE) == ("spatial", {})
    assert len(read_tgsr_blocks(tmp_path / "s" / TGSR_BLOCKS_FILE)[1]["Exp.9"]) == 2
