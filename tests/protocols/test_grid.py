"""Grid runs through the CDMER runner: every grid point a unit, oracle and label-free picks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.adapt import make_method, published_grid, published_names
from merkit.adapt.criteria import reverse_validation
from merkit.adapt.selection import evaluate_unlabelled
from merkit.data.features_io import load_cdmer_dir
from merkit.protocols import grid as grid_run
from merkit.protocols.cdmer import TASKS
from merkit.protocols.grid import grid_points
from merkit.protocols.runner import run_grid
from merkit.protocols.units import WorkUnit, run_unit, task_data
from merkit.store import GRID_FILE, ResultStore, read_grid

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cdmer_lbptop_r3p8"
METRICS = ["mean_f1", "uar", "accuracy"]
CRIT = ["reverse", "class_entropy", "entropy"]


SVM_GRID = {"svm": [{"C": 0.001}, {"C": 0.05}, {"C": 1.0}]}
TGSR_GRID = {"tgsr": [{"kappa": k, "xi": x, "group_size": 2} for k in (1, 2, 3)
                      for x in (0.001, 0.5, 50.0)]}  # fmt: skip


def test_grid_points_and_published_names() -> None:
    assert grid_points("tca", "published", 40, 25) == [{"n_components": k} for k in range(1, 65)]
    assert grid_points("sa", "published", 40, 25)[-1] == {"n_components": 24}
    assert grid_points("tca", "default", 40, 25) == [{"n_components": 20}]
    assert grid_points("drls", "default", 40, 25) == [{"lam": 1.0, "mu": 0.1}]
    assert len(grid_points("tgsr", "published", 130, 71)) == 85 * 271 == 23035
    assert grid_points("svm", {"svm": {"C": 2}}, 4, 4) == [{"C": 2}]
    with pytest.raises(ValueError, match="no entry for method 'tca'"):
        grid_points("tca", {"svm": [{}]}, 4, 4)
    with pytest.raises(ValueError, match="'published', 'default' or a mapping"):
        grid_points("svm", "best", 4, 4)
    # a mapping may name a method's published or default points
    mixed = {"tca": "published", "drls": "default", "sa": [{"n_components": 3}]}
    assert grid_points("tca", mixed, 40, 25) == grid_points("tca", "published", 40, 25)
    assert grid_points("drls", mixed, 40, 25) == [{"lam": 1.0, "mu": 0.1}]
    assert grid_points("sa", mixed, 40, 25) == [{"n_components": 3}]
    with pytest.raises(ValueError, match="grid entry of 'tca' is 'all': give a list of "
                                         "parameter dicts, 'published' or 'default'"):  # fmt: skip
        grid_points("tca", {"tca": "all"}, 4, 4)
    assert published_names("ulsif", {"weighting__lam": 10.0}) == {"lambda": 10.0}
    assert published_names("tca", '{"n_components":24}') == {"k": 24}
    assert published_names("tgsr", {"kappa": 85, "xi": 0.003}) == {"kappa": 85, "xi": 0.003}
    assert published_names("drfs_t", {"lam": 0.1, "mu": 0.005}) == {"lambda": 0.1, "mu": 0.005}


def test_grid_rows_selections_and_store(domains, tmp_path) -> None:
    run = run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, progress=False)
    g = run.grid
    assert len(g) == 6 and run.computed == 6 and run.resumed == 0
    assert g["params"].tolist() == ['{"C":0.001}', '{"C":0.05}', '{"C":1.0}'] * 2
    assert g["task"].tolist() == ["Exp.9"] * 3 + ["Exp.10"] * 3
    assert g["published_params"].tolist() == g["params"].tolist()  # svm: same names
    assert (g["selection"] == "none").all()
    # each grid row = the plain runner's unit, criteria = selection's evaluate_unlabelled
    for r in g.itertuples():
        task = next(t for t in TASKS if t.name == r.task)
        ref = run_unit(WorkUnit(task, "svm", r.params), domains)
        assert json.loads(r.y_pred) == ref.y_pred.tolist()
        src, tgt = domains[task.source], domains[task.target]
        vals, pred = evaluate_unlabelled("svm", r.params, src.X, src.y, tgt.X, CRIT)
        for c in CRIT:
            assert getattr(r, c) == pytest.approx(vals[c], abs=1e-12)
        assert json.loads(r.criteria) == sorted(CRIT)
    assert g["mean_f1"].nunique() > 2  # the grid points differ
    # grid.csv on disk = the returned rows
    disk = read_grid(tmp_path)
    pd.testing.assert_frame_equal(
        disk[["task", "params", *METRICS, *CRIT]],
        g[["task", "params", *METRICS, *CRIT]],
        check_dtype=False,
    )
    # selections: oracle = best mean-F1, each criterion = its own max, default = C 1
    s = run.selected.set_index(["task", "selection"])
    assert sorted(run.selected["selection"].unique()) == sorted(
        ["oracle", "reverse", "class_entropy", "entropy", "default"])  # fmt: skip
    for task, grp in g.groupby("task"):
        assert s.loc[(task, "oracle"), "mean_f1"] == pytest.approx(grp["mean_f1"].max())
        assert s.loc[(task, "default"), "params"] == '{"C":1.0}'
        for c in CRIT:
            best = grp.loc[grp[c] == grp[c].max(), "params"].tolist()
            assert s.loc[(task, c), "params"] in best
            assert s.loc[(task, c), "score"] == pytest.approx(grp[c].max())
            picked = grp.set_index("params").loc[s.loc[(task, c), "params"]]
            assert s.loc[(task, c), "mean_f1"] == pytest.approx(picked["mean_f1"])
    store = ResultStore(tmp_path)
    res = store.results()
    assert len(res) == 6 + 10 and (res["selection"] == "none").sum() == 6
    assert len(store.predictions()) == 3 * (25 + 40) + 5 * (25 + 40)
    # re-running: nothing refitted, selection rows replaced (keys ignore params)
    again = run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, progress=False)
    assert again.computed == 0 and again.resumed == 6 and len(ResultStore(tmp_path)) == 16
    # a smaller grid changes the picks, and the selection rows are replaced, not added
    run_grid(domains, "svm", grid={"svm": [{"C": 0.001}]}, store=tmp_path, progress=False)
    res = ResultStore(tmp_path).results()
    assert len(res) == 16  # replaced in place; the default point's rows do not depend on it
    assert (res.loc[res["selection"] == "oracle", "params"] == '{"C":0.001}').all()
    assert (res.loc[res["selection"] == "reverse", "params"] == '{"C":0.001}').all()
    assert (res.loc[res["selection"] == "default", "params"] == '{"C":1.0}').all()


def test_tgsr_fast_path_equals_per_point_fits(domains, tmp_path) -> None:
    fast = run_grid(domains, "tgsr", grid=TGSR_GRID, store=tmp_path / "f", progress=False)
    slow = run_grid(domains, "tgsr", grid=TGSR_GRID, store=tmp_path / "s", progress=False,
                    fast=False)  # fmt: skip
    cols = ["task", "params", "y_pred", *METRICS, *CRIT]
    assert fast.grid["y_pred"].nunique() > 3
    pd.testing.assert_frame_equal(fast.grid[cols], slow.grid[cols], rtol=1e-9)
    pd.testing.assert_frame_equal(
        fast.selected[["task", "selection", "params", "mean_f1"]],
        slow.selected[["task", "selection", "params", "mean_f1"]],
    )


def test_tgsr_reverse_batch_equals_reverse_validation(domains) -> None:
    # one dual solve for several points, each with its own pseudo-labels (one of them
    # without class 2, one with a single class) = reverse validation with one fit per point
    task = next(t for t in TASKS if t.name == "Exp.9")
    td = task_data(task, domains)
    rng = np.random.default_rng(0)
    nt = len(td.Xt)
    pseudo = [rng.integers(0, 3, nt), rng.integers(0, 2, nt), np.zeros(nt, dtype=int)]
    pts = [({"kappa": k, "xi": x, "group_size": 2}, ps) for k, x, ps in
           [(1, 0.5, pseudo[0]), (2, 0.001, pseudo[1]), (3, 50.0, pseudo[2]),
            (3, 0.5, pseudo[1])]]  # fmt: skip
    tgsr = make_method("tgsr")
    points, labels = [p for p, _ in pts], [ps for _, ps in pts]
    got = reverse_validation(tgsr, points, td.Xs, td.ys, td.Xt, labels)
    for (p, ps), v in zip(pts, got, strict=True):
        ref = reverse_validation(make_method("tgsr", p), [{}], td.Xs, td.ys, td.Xt, [ps],
                                 batched=False)  # fmt: skip
        assert v == pytest.approx(ref[0], abs=1e-12), (p, v, ref)
    assert got[2] == 0.0


def test_parallel_equals_serial(domains, tmp_path) -> None:
    grid = {**SVM_GRID, **TGSR_GRID}
    one = run_grid(domains, ["svm", "tgsr"], grid=grid, store=tmp_path / "1", progress=False)
    two = run_grid(domains, ["svm", "tgsr"], grid=grid, store=tmp_path / "2", progress=False,
                   n_jobs=2)  # fmt: skip
    cols = ["task", "method", "params", "y_pred", *METRICS, *CRIT]
    pd.testing.assert_frame_equal(one.grid[cols], two.grid[cols])
    cols = ["task", "method", "selection", "params", *METRICS]
    pd.testing.assert_frame_equal(one.selected[cols], two.selected[cols])


def test_killed_run_resumes_only_the_missing_points(domains, tmp_path, monkeypatch) -> None:
    real = grid_run.run_path_job
    calls: list[str] = []

    def dies_after(k):
        def fit(job, *args):
            if len(calls) == k:
                raise KeyboardInterrupt("killed")
            calls.extend(u.params_json for u in job.units)
            return real(job, *args)

        return fit

    monkeypatch.setattr(grid_run, "run_path_job", dies_after(4))
    with pytest.raises(KeyboardInterrupt):
        run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, progress=False, flush_every=1)
    assert len(ResultStore(tmp_path)) == 4 and len(read_grid(tmp_path)) == 4
    calls.clear()
    monkeypatch.setattr(grid_run, "run_path_job", dies_after(99))
    run = run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, progress=False)
    assert len(calls) == 2 and run.computed == 2 and run.resumed == 4
    fresh = run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path / "fresh", progress=False)
    cols = ["task", "params", *METRICS, *CRIT]
    pd.testing.assert_frame_equal(run.grid[cols], fresh.grid[cols])


def test_reverse_only_resume_for_tgsr(domains, tmp_path) -> None:
    cols = ["task", "params", "y_pred", *METRICS, "class_entropy"]
    first = run_grid(domains, "tgsr", grid=TGSR_GRID, store=tmp_path, progress=False,
                     criteria=["class_entropy", "entropy"])  # fmt: skip
    assert first.computed == 18 and "reverse" not in first.grid.columns
    more = run_grid(domains, "tgsr", grid=TGSR_GRID, store=tmp_path, progress=False)
    assert (more.computed, more.criteria_only, more.resumed) == (0, 18, 0)
    ref = run_grid(domains, "tgsr", grid=TGSR_GRID, store=tmp_path / "ref", progress=False)
    pd.testing.assert_frame_equal(more.grid[[*cols, "reverse"]], ref.grid[[*cols, "reverse"]])
    assert "reverse" in set(more.selected["selection"])


def test_expensive_criteria_on_an_even_subsample(domains, tmp_path) -> None:
    grid = {"svm": [{"C": c} for c in (0.001, 0.01, 0.1, 1.0, 10.0)]}
    run = run_grid(domains, "svm", grid=grid, tasks=["C->V"], store=tmp_path, progress=False,
                   expensive_sample=2)  # fmt: skip
    assert np.isfinite(run.grid["reverse"]).tolist() == [True, False, False, False, True]
    assert np.isfinite(run.grid["entropy"]).all()
    pick = run.selected.set_index("selection").loc["reverse", "params"]
    assert pick in ('{"C":0.001}', '{"C":10.0}')


def test_errors(domains, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown criteria"):
        run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path, criteria=["luck"])
    with pytest.raises(ValueError, match="has no parameter"):
        run_grid(domains, "svm", grid={"svm": [{"lam": 1}]}, store=tmp_path, progress=False)
    with pytest.raises(ValueError, match="which are not loaded"):
        run_grid(domains, "svm", grid=SVM_GRID, tasks=["N->C"], store=tmp_path)
    assert not (tmp_path / GRID_FILE).exists()


def test_real_features_svm_and_sa(tmp_path) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"CDMER reference features not found at {SHARED}")
    feats = load_cdmer_dir(SHARED)
    grid = {"svm": [{}], "sa": [{"n_components": 5}, {"n_components": 31}]}
    run = run_grid(feats, ["svm", "sa"], grid=grid, tasks=["C->V"], store=tmp_path,
                   progress=False, criteria=["class_entropy"])  # fmt: skip
    g = run.grid.set_index(["method", "params"])
    assert g.loc[("svm", "{}"), "mean_f1"] == pytest.approx(0.4800, abs=5e-5)
    assert g.loc[("sa", '{"n_components":31}'), "mean_f1"] == pytest.approx(0.6030, abs=5e-5)
    assert g.loc[("sa", '{"n_components":31}'), "published_params"] == '{"k":31}'
    s = run.selected.set_index(["method", "selection"])
    assert s.loc[("sa", "oracle"), "params"] == '{"n_components":31}'
    assert s.loc[("sa", "oracle"), "accuracy"] == pytest.approx(60.56, abs=5e-3)
    assert ("sa", "default") not in s.index  # k = 20 is not in this grid
    assert len(published_grid("sa", 130, 71)) == 70
