"""Training folds on a Ray or Dask cluster (``merkit train --backend ray|dask``): the same
files as the local serial run, byte for byte; stored folds are not sent again; bad options
are one line before any work; a fold that trains on CUDA asks the cluster for a GPU.

Ray and Dask run as local 2-worker clusters, one per module (Ray takes ~10 s to start); the
Ray runtime declares one (fake) GPU, the Dask workers a ``GPU`` resource each, so that the
per-fold GPU requests can be checked on a CPU machine. Skipped without the cluster extra.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import merkit
import merkit.workflows.train as wf
from merkit.cli import app
from merkit.parallel import CLUSTER_EXTRA, Backend
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()
#: 4 LOSO folds of the tiny MEGC 2019 flow folder, STSTNet fold by fold, one epoch
SETTINGS = dict(protocol="cde", model="ststnet", epochs=1, batch_size=4, folds=4)
ARGS = ["--protocol", "cde", "--model", "ststnet", "--epochs", "1", "--batch-size", "4",
        "--folds", "4"]  # fmt: skip
FOLDS = ["CASME2_01", "SAMM_006", "SMIC_HS_s1", "SMIC_HS_s2"]


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return _flow_folder(tmp_path_factory.mktemp("flows") / "flows")


@pytest.fixture(scope="module")
def serial(flows, tmp_path_factory) -> Path:
    """The local serial run (fold by fold in this process): the reference."""
    out = tmp_path_factory.mktemp("serial") / "out"
    got = wf.run_train(out, flows_dir=flows, fold_batching="off", progress=False, **SETTINGS)
    assert (got.folds_done, got.folds_cached) == (4, 0)
    return out


@pytest.fixture(scope="module")
def ray_runtime():
    """A local Ray runtime with 2 CPUs and one (declared, not real) GPU."""
    ray = pytest.importorskip("ray", reason=f"needs {CLUSTER_EXTRA}")
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def dask_address():
    """A local Dask cluster of 2 single-threaded worker processes declaring GPU=1 each."""
    distributed = pytest.importorskip("dask.distributed", reason=f"needs {CLUSTER_EXTRA}")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0",
                                  resources={"GPU": 1}) as cluster:  # fmt: skip
        yield cluster.scheduler_address


@pytest.fixture
def driver_stores(monkeypatch) -> list[str]:
    """Names of the folds whose files this process (the driver) writes."""
    names: list[str] = []
    real = wf._store_fold

    def counting(task, fold, *args):
        names.append(fold.file_name)
        return real(task, fold, *args)

    monkeypatch.setattr(wf, "_store_fold", counting)
    return names


def _run_folder(out: Path) -> Path:
    return out / "folds" / json.loads((out / "run.json").read_text())["run"] / "seed0"


def _same_files(a: Path, b: Path) -> None:
    """Every file of run ``b`` equals run ``a``'s, byte for byte (results.csv and the fold
    predictions: but for the time stamp and seconds)."""
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) == files
    assert len([f for f in files if f.suffix == ".pth"]) == 4
    timed = {"results.csv", *(f"{n}.csv" for n in FOLDS)}
    for f in files:
        if f.name not in timed:
            assert (a / f).read_bytes() == (b / f).read_bytes(), f
        else:
            x, y = (pd.read_csv(d / f).drop(columns=["seconds", "created"], errors="ignore")
                    for d in (a, b))  # fmt: skip
            pd.testing.assert_frame_equal(x, y, check_exact=True)


def test_reference_run_is_not_degenerate(serial):
    """What the cluster runs are compared with: varied predictions, folds of their own."""
    preds = pd.read_csv(serial / "predictions.csv")
    assert len(preds) == 2 * 12 and preds["y_pred"].nunique() == 3  # composite + per database
    folder = _run_folder(serial)
    probs = pd.read_csv(folder / "SAMM_006.csv")[["prob_0", "prob_1", "prob_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.ptp(probs, axis=0).max() > 1e-4
    weights = {(serial / "weights").glob(f"*/seed0/{n}.pth").__next__().read_bytes()
               for n in FOLDS}  # fmt: skip
    assert len(weights) == 4


# ----------------------------------------------------------------- same files, resume
def test_ray_folds_equal_the_local_run(flows, serial, ray_runtime, driver_stores, tmp_path):
    """The local runtime sees this file system: the workers write the folds (at an address,
    folds come back and are written here: the Dask test below)."""
    got = wf.run_train(tmp_path / "ray", flows_dir=flows, backend="ray", n_jobs=2,
                       progress=False, **SETTINGS)  # fmt: skip
    assert (got.folds_done, got.folds_cached) == (4, 0)
    assert driver_stores == []  # every fold was trained and written by a worker
    assert ray_runtime.is_initialized()  # a runtime the run did not start keeps running
    _same_files(serial, tmp_path / "ray")

    # a run that stops on a worker's error keeps the folds done before; the same call resumes
    out = tmp_path / "stopped"
    blocked = out / _run_folder(tmp_path / "ray").relative_to(tmp_path / "ray") / "SMIC_HS_s2.csv"
    blocked.mkdir(parents=True)  # the last fold's predictions cannot be written
    with pytest.raises(OSError, match="SMIC_HS_s2.csv"):
        wf.run_train(out, flows_dir=flows, backend="ray", n_jobs=2, progress=False, **SETTINGS)
    blocked.rmdir()
    driver_stores.clear()
    got = wf.run_train(out, flows_dir=flows, backend="ray", n_jobs=2, progress=False,
                       **SETTINGS)  # fmt: skip
    assert (got.folds_done, got.folds_cached) == (1, 3) and driver_stores == []
    _same_files(serial, out)


def test_dask_cli_folds_equal_the_local_run_and_resume(
    flows, serial, dask_address, driver_stores, monkeypatch, tmp_path
):
    out = tmp_path / "dask"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), *ARGS, "--out", str(out),
                              "--backend", "dask", "--address", dask_address])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "folds trained 4, from cache 0" in res.output
    assert sorted(driver_stores) == FOLDS  # at an address: stored by this process
    _same_files(serial, out)

    # resume: two folds already stored (as a killed run leaves them) are not sent again
    again = tmp_path / "again"
    folder, target = _run_folder(serial), _run_folder(out).relative_to(out)
    (again / target).mkdir(parents=True)
    for name in FOLDS[:2]:
        for f in folder.glob(f"{name}.*"):
            shutil.copy2(f, again / target / f.name)
    sent: list[int] = []
    real_map = Backend.map

    def counting_map(self, calls, **kw):
        calls = list(calls)
        sent.append(len(calls))
        return real_map(self, calls, **kw)

    monkeypatch.setattr(Backend, "map", counting_map)
    driver_stores.clear()
    got = wf.run_train(again, flows_dir=flows, backend="dask", address=dask_address,
                       progress=False, **SETTINGS)  # fmt: skip
    assert (got.folds_done, got.folds_cached) == (2, 2)
    assert sent == [2] and sorted(driver_stores) == FOLDS[2:]
    for f in ("predictions.csv", "history.csv"):
        assert (again / f).read_bytes() == (serial / f).read_bytes()
    for name in FOLDS[2:]:
        w = next((serial / "weights").glob(f"*/seed0/{name}.pth"))
        assert (again / w.relative_to(serial)).read_bytes() == w.read_bytes()
    # everything stored: nothing is sent, no cluster is needed
    sent.clear()
    done = wf.run_train(again, flows_dir=flows, backend="dask", address=dask_address,
                        progress=False, **SETTINGS)  # fmt: skip
    assert (done.folds_done, done.folds_cached) == (0, 4) and sent == []


# ----------------------------------------------------------------- workers, GPUs per fold
#: where a job ran: evaluated by a builtin, as the workers do not import this test module
WHERE = ("(__import__('merkit').__file__, __import__('os').getpid(), "
         "__import__('os').environ.get('CUDA_VISIBLE_DEVICES', ''))")  # fmt: skip
#: + the GPUs the Dask worker has left while the job runs
DASK_WHERE = WHERE.replace("'')", "''), __import__('distributed').get_worker()"
                           ".state.available_resources['GPU']")  # fmt: skip


def test_fold_resources():
    assert wf._fold_resources("cpu", 1) == {"CPU": 1.0}
    assert wf._fold_resources("cuda", 1) == {"CPU": 1.0, "GPU": 1.0}
    assert wf._fold_resources("cuda:1", 3) == {"CPU": 3.0, "GPU": 1.0}
    assert wf._fold_resources("mps", 2) == {"CPU": 2.0}


def test_ray_workers_import_this_merkit_and_get_a_gpu_per_fold(ray_runtime, caplog):
    with Backend("ray", n_jobs=2) as be:
        plain = list(be.map([(eval, (WHERE,))] * 4))
        gpu = list(be.map([(eval, (WHERE,))] * 3, resources={"CPU": 1, "GPU": 1}))
        lone = list(be.map([(eval, (WHERE,))], resources={"CPU": 1, "GPU": 1}))
        missing = list(be.map([(eval, (WHERE,))] * 2, resources={"TPU": 1}))
        one_gpu = be._ray_options({"CPU": 1, "GPU": 1}, 2)  # options, jobs at once
    assert one_gpu == ({"num_cpus": 1, "num_gpus": 1}, 1)
    assert {f for f, _, _ in plain + gpu} == {merkit.__file__}  # this worktree's merkit
    assert os.getpid() not in {p for _, p, _ in plain + gpu + lone}  # ran in the workers
    assert [g for _, _, g in plain] == [""] * 4
    assert [g for _, _, g in gpu + lone] == ["0"] * 4  # one GPU reserved for every job
    assert len(missing) == 2 and "a job asks for 1 TPU, the cluster has 0" in caplog.text


def test_dask_workers_import_this_merkit_and_ask_for_declared_gpus(dask_address):
    with Backend("dask", address=dask_address) as be:
        plain = list(be.map([(eval, (DASK_WHERE,))] * 4))
        gpu = list(be.map([(eval, (DASK_WHERE,))] * 4, resources={"CPU": 1, "GPU": 1, "TPU": 1}))
    assert {f for f, *_ in plain + gpu} == {merkit.__file__}
    assert os.getpid() not in {p for _, p, *_ in plain + gpu}
    assert [r for *_, r in plain] == [1.0] * 4  # nothing asked for
    assert [r for *_, r in gpu] == [0.0] * 4  # the worker's GPU is held by the job


def test_folds_of_one_worker_process_train_one_at_a_time(monkeypatch):
    """A Dask worker may run its jobs in threads, but torch's random state and thread count
    belong to the process: its folds train one after the other."""
    import threading
    import time
    from types import SimpleNamespace

    import torch

    from merkit.nets.train import FoldResult

    running, most = [0], [0]

    def slow_fold(*args):
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.05)
        running[0] -= 1
        return FoldResult(torch.nn.Linear(1, 1), {}, np.zeros(0), np.zeros((0, 3)), None, 0.05)

    monkeypatch.setattr(wf, "_train_one", slow_fold)
    got = []
    threads = [threading.Thread(target=lambda i=i: got.append(wf._fold_job(
        False, None, None, SimpleNamespace(name=f"f{i}"), 0, None, "m", {}, None, None, "cpu")))
        for i in range(4)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(name for _, name, _ in got) == ["f0", "f1", "f2", "f3"]
    assert most[0] == 1


# ----------------------------------------------------------------- errors, before any work
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "spark"],
         "unknown parallel backend 'spark'; expected one of ('loky', 'ray', 'dask')"),
        (["--address", "tcp://h:8786"],
         "address 'tcp://h:8786' given for the local loky backend; use --backend ray or "
         "--backend dask to run on a cluster"),
        (["--backend", "dask", "--jobs", "0"],
         "n_jobs must be >= 1 or negative (-1: every worker), got 0"),
        (["--backend", "dask", "--fold-batching", "on"],
         "--fold-batching on trains the folds of a seed together in one process; --backend "
         "dask sends each fold to a worker as its own job: use --fold-batching off or auto"),
    ],
)  # fmt: skip
def test_bad_backend_options_are_one_line_before_any_work(flows, tmp_path, args, message):
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), *ARGS, "--out", str(out),
                              *args])  # fmt: skip
    assert one_error_line(res) == f"error: {message}"
    assert not out.exists()


def test_missing_cluster_extra_is_one_line(flows, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), *ARGS, "--out", str(out),
                              "--backend", "ray"])  # fmt: skip
    line = one_error_line(res)
    assert line.startswith("error: backend 'ray' needs the ray package, which is not installed")
    assert line.endswith('install the cluster extra: pip install "merkit[cluster]"')
    assert not out.exists()
