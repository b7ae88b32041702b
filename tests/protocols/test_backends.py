"""Grid points and clips on loky, Ray and Dask: the same numbers whichever backend runs them.

Ray and Dask run as local 2-worker clusters (one per module: Ray takes ~10 s to start);
their tests are skipped when the ``cluster`` extra is not installed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.parallel import CLUSTER_EXTRA, Backend, ClusterExtraMissing, open_backend
from merkit.protocols.runner import run_cdmer, run_grid

METRICS = ["mean_f1", "uar", "accuracy"]
CRIT = ["reverse", "class_entropy", "entropy"]
GRID = {
    "svm": [{"C": 0.001}, {"C": 1.0}],
    "tca": [{"n_components": k} for k in (2, 4)],
    "sa": [{"n_components": k} for k in (1, 3)],
    "tgsr": [{"kappa": k, "xi": x, "group_size": 2} for k in (1, 3) for x in (0.001, 50.0)],
}


@pytest.fixture(scope="module")
def serial_grid(domains, tmp_path_factory):
    store = tmp_path_factory.mktemp("serial")
    run = run_grid(domains, list(GRID), grid=GRID, store=store, progress=False)
    run.store = store
    return run


@pytest.fixture(scope="module")
def dask_address():
    """A local Dask cluster of 2 single-threaded worker processes (its scheduler address)."""
    distributed = pytest.importorskip("dask.distributed", reason=f"needs {CLUSTER_EXTRA}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def ray_runtime():
    """A local Ray runtime with 2 CPUs, shared by this module's Ray tests."""
    ray = pytest.importorskip("ray", reason=f"needs {CLUSTER_EXTRA}")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _same_grid(a, b) -> None:
    cols = ["task", "method", "params", "y_pred", *METRICS]
    pd.testing.assert_frame_equal(a.grid[cols], b.grid[cols], check_exact=True)
    pd.testing.assert_frame_equal(a.grid[CRIT], b.grid[CRIT], rtol=1e-10, atol=0)
    cols = ["task", "method", "selection", "params", *METRICS]
    pd.testing.assert_frame_equal(a.selected[cols], b.selected[cols], check_exact=True)


# ----------------------------------------------------------------- the backend object
def test_backend_errors_and_serial_map(monkeypatch) -> None:
    with pytest.raises(ValueError, match=r"unknown parallel backend 'spark'; expected one of"):
        Backend("spark")
    with pytest.raises(ValueError, match="address 'tcp://h:8786' given for the local loky"):
        Backend("loky", 2, "tcp://h:8786")
    with pytest.raises(ValueError, match="n_jobs must be >= 1 or negative"):
        Backend("loky", 0)
    for name, module in (("ray", "ray"), ("dask", "dask.distributed")):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
        with pytest.raises(ClusterExtraMissing, match=r"pip install \"merkit\[cluster\]\""):
            Backend(name, 2)
    be = Backend("loky", 1)
    assert be.serial and be.shares_filesystem
    assert list(be.map([(pow, (i, 2)) for i in range(5)])) == [0, 1, 4, 9, 16]
    with open_backend("loky", 2) as two:
        assert not two.serial and two.workers == 2
        assert list(two.map([(pow, (i, 3)) for i in range(7)])) == [i**3 for i in range(7)]
        with open_backend(two) as same:  # an open backend is passed through, not closed
            assert same is two


# ----------------------------------------------------------------- grids
def test_grid_same_numbers_on_dask(domains, serial_grid, dask_address, tmp_path) -> None:
    """(loky with 2 workers: tests/protocols/test_grid.py::test_parallel_equals_serial)"""
    dask = run_grid(domains, list(GRID), grid=GRID, store=tmp_path, progress=False,
                    backend="dask", address=dask_address)  # fmt: skip
    assert serial_grid.computed == dask.computed == len(dask.grid) == 20
    assert serial_grid.grid["y_pred"].nunique() > 5
    _same_grid(serial_grid, dask)
    # the stores agree too (predictions of every point and selection)
    from merkit.store import ResultStore

    a = ResultStore(tmp_path).predictions()
    b = ResultStore(serial_grid.store).predictions()
    pd.testing.assert_frame_equal(a, b)
    # run_cdmer over the same cluster
    spec = {"sa": GRID["sa"], "tca": GRID["tca"]}
    one = run_cdmer(domains, spec, progress=False)
    two = run_cdmer(domains, spec, progress=False, backend="dask", address=dask_address)
    cols = ["task", "method", "params", *METRICS]
    assert len(one) == 8 and one["mean_f1"].nunique() > 2
    pd.testing.assert_frame_equal(one[cols], two[cols], check_exact=True)


def test_grid_same_numbers_on_ray(domains, serial_grid, ray_runtime, tmp_path) -> None:
    cheap = ["class_entropy", "entropy"]  # one batch of jobs (reverse adds a second one)
    ray = run_grid(domains, list(GRID), grid=GRID, store=tmp_path, progress=False,
                   backend="ray", n_jobs=2, criteria=cheap)  # fmt: skip
    assert ray_runtime.is_initialized()  # a runtime this run did not start is left running
    cols = ["task", "method", "params", "y_pred", *METRICS]
    pd.testing.assert_frame_equal(serial_grid.grid[cols], ray.grid[cols], check_exact=True)
    pd.testing.assert_frame_equal(serial_grid.grid[cheap], ray.grid[cheap], rtol=1e-10, atol=0)


# ----------------------------------------------------------------- extraction
@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """Tiny synthetic CASME II (7 clips) and SMIC (VIS: 6 clips) in native layouts."""
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, seed=5, size="tiny")
    for sub in ("HS", "NIR"):
        shutil.rmtree(root / "SMIC" / sub)
    return root


@pytest.fixture(scope="module")
def vis(synth) -> pd.DataFrame:
    from merkit.workflows.databases import load_databases

    return load_databases(synth, names=["SMIC_VIS"])["SMIC_VIS"]


def test_extraction_same_numbers_on_dask(vis, dask_address, tmp_path) -> None:
    from merkit.features.extract import extract

    spec = "lbp_top:r1p8"
    ref = extract(vis, spec, layout="1,2").features.X
    assert ref.shape == (6, 5 * 177) and np.ptp(ref, axis=0).max() > 0
    # local Dask cluster started for the call (and shut down), cache written by the workers
    got = extract(vis, spec, layout="1,2", backend="dask", n_jobs=2, cache=tmp_path / "c1")
    np.testing.assert_array_equal(got.features.X, ref)
    assert (got.computed, got.cached) == (6, 0)
    # cluster at an address: this process stores the cache entries
    got = extract(vis, spec, layout="1,2", backend="dask", address=dask_address,
                  cache=tmp_path / "c2")  # fmt: skip
    np.testing.assert_array_equal(got.features.X, ref)
    warm = extract(vis, spec, layout="1,2", cache=tmp_path / "c2")
    assert (warm.computed, warm.cached) == (0, 6)
    np.testing.assert_array_equal(warm.features.X, ref)


def test_cli_backend_options(synth, dask_address, tmp_path) -> None:
    """`merkit extract` / `merkit cdmer` with --backend dask: the same files as loky."""
    from typer.testing import CliRunner

    from merkit.cli import app

    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"svm": GRID["svm"]}))
    runner = CliRunner()
    X, res = {}, {}
    for name, extra in (("loky", []), ("dask", ["--backend", "dask", "--address", dask_address])):
        feats = tmp_path / name / "F"
        args = ["--descriptor", "lbp_top:r1p8", "--levels", "1,2", "--out", str(feats)]
        got = runner.invoke(app, ["extract", str(synth), *args, "--no-cache", *extra])
        assert got.exit_code == 0, got.output
        with np.load(feats.with_suffix(".npz")) as z:
            X[name] = z["X"]
        got = runner.invoke(app, ["cdmer", "--features", str(feats.with_suffix(".npz")),
                                  "--grid", str(grid), "-o", str(tmp_path / name / "out"),
                                  *extra])  # fmt: skip
        assert got.exit_code == 0, got.output
        res[name] = pd.read_csv(tmp_path / name / "out" / "results.csv")
    assert X["loky"].shape == (13, 5 * 177)
    np.testing.assert_array_equal(X["loky"], X["dask"])
    cols = ["task", "method", "selection", "params", *METRICS]
    # 2 tasks x (2 points + default + oracle + the default label-free criteria of `merkit
    # cdmer`); snd_guarded picks nothing: both SVM points are collapsed on these few clips
    # (predicted-class entropy below log(3) / 2), so their guarded SND is NaN
    sel = res["loky"]["selection"].value_counts().to_dict()
    assert sel == {"none": 4, "default": 2, "oracle": 2, "reverse": 2, "class_entropy": 2,
                   "entropy": 2, "snd": 2}  # fmt: skip
    grid_rows = pd.read_csv(tmp_path / "loky" / "out" / "grid.csv")
    assert grid_rows["snd_guarded"].isna().all() and (grid_rows["class_entropy"] < 0.55).all()
    pd.testing.assert_frame_equal(res["loky"][cols], res["dask"][cols], check_exact=True)
    got = runner.invoke(app, ["extract", str(synth), "-o", str(tmp_path / "G"), "--backend",
                              "loky", "--address", dask_address])  # fmt: skip
    assert got.exit_code == 2 and "given for the local loky backend" in got.output
