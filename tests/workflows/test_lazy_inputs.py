"""Cached clip volumes stay on disk (merkit train --data with a 3-D network): the cache is
filled a chunk at a time, the fingerprint equals the in-memory one, and a whole kfold run
gives the same files with the clips read from disk (0 or 2 workers) as in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel

from merkit.nets.data import ClipArray, ClipInputError
from merkit.workflows import train as wf
from tests.workflows.test_train import _table

PARAMS = {"align": False, "size": [8, 8], "length": 4}


def test_cached_clips_stay_on_disk_and_equal_the_in_memory_ones(tmp_path, monkeypatch):
    table = _table(tmp_path / "data", n=5)
    sizes = []

    def spy(n_jobs):
        def run(jobs):
            jobs = list(jobs)
            sizes.append(len(jobs))
            return Parallel(n_jobs=1)(jobs)

        return run

    monkeypatch.setattr(wf, "_COMPUTE_CHUNK", 2)
    monkeypatch.setattr(wf, "Parallel", spy)
    lazy = wf.clip_inputs(table, params=PARAMS, folder=tmp_path / "cache")
    assert sizes == [2, 2, 1]  # computed two clips at a time
    assert isinstance(lazy, ClipArray) and lazy.shape == (5, 1, 4, 8, 8)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 5
    assert lazy.names[3] == "CASME2/03/EP03"
    mem = wf.clip_inputs(table, params=PARAMS)  # no cache: computed in memory
    assert sizes == [2, 2, 1, 5] and isinstance(mem, np.ndarray)
    np.testing.assert_array_equal(np.asarray(lazy), mem)
    # clip i's frames are 10 i + 1 .. 10 i + 5 grey levels: its volume is their TIM / 255
    assert mem[3].min() == pytest.approx(31 / 255) and mem[3].max() == pytest.approx(35 / 255)
    again = wf.clip_inputs(table.iloc[[4, 1]], params=PARAMS, folder=tmp_path / "cache")
    assert len(sizes) == 4  # read back, nothing computed
    np.testing.assert_array_equal(np.asarray(again), mem[[4, 1]])
    kept = wf.clip_inputs(table, params=PARAMS, folder=tmp_path / "cache", lazy=False)
    np.testing.assert_array_equal(kept, mem)
    y = np.arange(5)
    fp = wf._fingerprint("clips-tim4", mem, y)
    assert wf._fingerprint("clips-tim4", lazy, y) == fp and fp.startswith("clips-tim4:")
    assert wf._fingerprint("clips-tim4", lazy, y[::-1]) != fp
    with pytest.raises(ValueError, match="lazy=True.*give folder"):
        wf.clip_inputs(table, params=PARAMS, lazy=True)


def test_a_damaged_cache_file_stops_the_run_before_training(tmp_path):
    table = _table(tmp_path / "data", n=3)
    lazy = wf.clip_inputs(table, params=PARAMS, folder=tmp_path / "cache")
    Path(lazy.paths[1]).write_bytes(b"\x93NUMPY")
    with pytest.raises(ClipInputError, match=r"^clip CASME2/01/EP01: its cached input "):
        wf._fingerprint("clips-tim4", lazy, np.arange(3))


@pytest.fixture(scope="module")
def dfme(tmp_path_factory) -> Path:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("dfme")
    synthesize(root / "data", seed=0, size={"preset": "tiny", "scale": 0.5},
               databases=("DFME",))  # fmt: skip
    return root


def _kfold(root: Path, name: str, cache, workers: int = 0):
    out = root / name
    got = wf.run_train(out, protocol="kfold", model="r3d", data_dir=root / "data", n_folds=2,
                       epochs=2, batch_size=4, model_kwargs={"width": 2}, cache=cache,
                       clip={"align": False, "size": [16, 16], "length": 4}, progress=False,
                       workers=workers)  # fmt: skip
    return out, got


def test_kfold_r3d_from_disk_equals_in_memory(dfme):
    runs = [_kfold(dfme, "memory", cache=False),
            _kfold(dfme, "disk", cache=dfme / "cache"),
            _kfold(dfme, "disk2", cache=dfme / "cache", workers=2)]  # fmt: skip
    (mem, a), (disk, b), (disk2, c) = runs
    assert len(list((dfme / "cache" / "clips").glob("*.npy"))) == 10
    assert a.run_dir == b.run_dir == c.run_dir  # same fingerprint: same run, same resume cache
    assert a.folds_done == b.folds_done == c.folds_done == 2
    files = sorted(p.relative_to(mem) for p in (mem / "folds").rglob("*") if p.is_file())
    files += sorted(p.relative_to(mem) for p in (mem / "weights").rglob("*.pth"))
    assert len(files) == 2 * 3 + 2  # per fold: predictions, history, features; weights
    for rel in files:
        if rel.suffix == ".csv" and not rel.name.endswith(".history.csv"):
            frames = [pd.read_csv(d / rel).drop(columns="seconds") for d in (mem, disk, disk2)]
            assert len(frames[0]) > 0 and frames[0].filter(like="prob_").shape[1] == 7
            pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
            pd.testing.assert_frame_equal(frames[0], frames[2], check_exact=True)
        else:
            same = {(d / rel).read_bytes() for d in (mem, disk, disk2)}
            assert len(same) == 1, rel
    when = ["seconds", "created"]
    pd.testing.assert_frame_equal(a.results.drop(columns=when), b.results.drop(columns=when))
    assert 0.0 <= a.results["mean_f1"].iloc[0] <= 1.0 and a.results["n_test"].iloc[0] == 10
