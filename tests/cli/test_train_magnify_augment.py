"""`merkit train --data --magnify-augment` (EMR's magnify-and-reduce): every training clip of
a fold adds one magnified (or reduced) copy per factor, the test clips are the run's own
clips only, a bad factor list is one error line before any work, and runs without the
option keep their identity."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import merkit.workflows.train as wt
from merkit.cli import app
from merkit.store import params_to_json
from merkit.video.magnify import Magnification
from tests.cli._output import one_error_line

runner = CliRunner()
#: synthetic faces fill the frame: no face detection; small flows, 1 epoch
FAST = ["--no-align", "--flow-preset", "fast", "--face-size", "56", "--epochs", "1"]
#: CASME II is filmed at 200 fps; the tiny clips' FFT bins reach into 2..12 Hz
BAND = (2.0, 12.0)
LOSO = ["--protocol", "loso", "--task", "CASME2-5", "--model", "ststnet", "--folds", "1",
        "--fold-batching", "off", "--magnify-band", "2,12"]  # fmt: skip


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("emr")
    synthesize(root / "data", seed=0, size={"preset": "tiny", "scale": 0.5},
               databases=("CASME2",))  # fmt: skip
    return root / "data", root / "cache"


def _train(synth, out: Path, *args: str):
    data, cache = synth
    return runner.invoke(app, ["train", "--data", str(data), "--cache", str(cache), *FAST,
                               "--out", str(out), *args])  # fmt: skip


@pytest.fixture
def spy(monkeypatch):
    """Every fold trained: (task, fold, X) as `_train_one` got them."""
    calls = []
    real = wt._train_one

    def record(task, fold, seed, X, *args, **kwargs):
        calls.append((task, fold, X))
        return real(task, fold, seed, X, *args, **kwargs)

    monkeypatch.setattr(wt, "_train_one", record)
    return calls


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--magnify-augment", ""],
         "--magnify-augment '': give one or more magnification factors, e.g. 2,4,8"),
        (["--magnify-augment", "2,x"],
         "--magnify-augment '2,x': 'x' is not a number; give factors alpha > -1 like 2,4,8"),
        (["--magnify-augment", "2,-1"],
         "--magnify-augment factor -1: magnification alpha must be a number > -1 (in (-1, 0) "
         "it reduces the motion), got -1.0"),
        (["--magnify-augment", "2,4,2"],
         "--magnify-augment 2,4,2: factor 2 is given twice; give each once"),
        (["--magnify-augment", "0,2"],
         "--magnify-augment factor 0 is the run's own magnification (--magnify 0: the clips "
         "as trained and tested); leave it out"),
        (["--magnify", "4", "--magnify-augment", "2,4"],
         "--magnify-augment factor 4 is the run's own magnification (--magnify 4: the clips "
         "as trained and tested); leave it out"),
        (["--magnify-augment", "2", "--magnify-band", "5,2"],
         "--magnify-augment factor 2: magnification band 5,2 Hz: need 0 < LOW < HIGH (in Hz)"),
    ],
)  # fmt: skip
def test_bad_factor_lists_are_one_error_line_before_reading_clips(tmp_path, args, message):
    data = tmp_path / "data"
    data.mkdir()  # no database: reading it would fail with another message
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(out), *args])
    assert one_error_line(res) == f"error: {message}"
    assert not out.exists()


def test_magnify_augment_with_the_flow_folder_is_one_error_line(tmp_path):
    from tests.cli.test_train_predict import _flow_folder

    flows = _flow_folder(tmp_path / "flows")
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), "--magnify-augment", "2,4",
                              "--out", str(out)])  # fmt: skip
    assert one_error_line(res) == (
        "error: --magnify-augment needs the clips (--data): the MEGC 2019 flow images of "
        "--flows-dir are already computed"
    )
    assert not out.exists()


def _run_id(results: pd.DataFrame, row: int = 0, extra: str = "") -> str:
    """The run id as merkit names runs: model + SHA-1 of the parameters and data."""
    r = results.iloc[row]
    ident = params_to_json({"params": json.loads(r["params"]), "protocol": r["protocol"],
                            "task": r["task"]})  # fmt: skip
    return f"{r['method']}-" + hashlib.sha1((ident + r["data"] + extra).encode()).hexdigest()[:10]


def _probabilities(out: Path) -> pd.DataFrame:
    """The test clips' class probabilities of every fold of the run in ``out``."""
    run = json.loads((out / "run.json").read_text())["run"]
    files = sorted((out / "folds" / run / "seed0").glob("*.csv"))
    parts = [pd.read_csv(f) for f in files if not f.name.endswith(".history.csv")]
    frame = pd.concat(parts).sort_values("sample", kind="stable").reset_index(drop=True)
    return frame[["sample"] + [c for c in frame.columns if c.startswith("prob_")]]


def test_training_copies_per_factor_test_clips_once(synth, tmp_path, spy):
    from merkit.video.flow import flow_image, sample_flow

    plain = _train(synth, tmp_path / "plain", *LOSO)
    assert plain.exit_code == 0, plain.output
    plain_folds = [(task, fold) for task, fold, _ in spy]
    spy.clear()
    res = _train(synth, tmp_path / "aug", *LOSO, "--magnify-augment", "2,-0.5")
    assert res.exit_code == 0, res.output
    assert len(spy) == 1
    for (task, fold, X), (base, base_fold) in zip(spy, plain_folds, strict=True):
        n = len(base.table)
        assert len(task.table) == len(X) == 3 * n and fold.name == base_fold.name
        # (1 + 2 factors) x the fold's training clips; its test clips are the clips only
        assert len(fold.train_idx) == 3 * len(base_fold.train_idx)
        want = np.concatenate([base_fold.train_idx + c * n for c in range(3)])
        np.testing.assert_array_equal(np.sort(fold.train_idx), np.sort(want))
        np.testing.assert_array_equal(fold.test_idx, base_fold.test_idx)
        # a copy carries its clip's subject and label, so none of a test subject's trains
        subjects = task.table["subject"].astype(str).to_numpy()
        assert not set(subjects[fold.train_idx]) & set(subjects[fold.test_idx])
        assert (task.table["copy"].to_numpy()[fold.test_idx] == 0).all()
        np.testing.assert_array_equal(task.y, np.tile(base.y, 3))
        np.testing.assert_array_equal(subjects, np.tile(subjects[:n], 3))
    task, fold, X = spy[0]
    n = len(X) // 3
    i = int(fold.train_idx[0])
    row = task.table.iloc[i]
    kw = {"align": False, "face_size": (56, 56), "preset": "fast"}
    for c, alpha in ((1, 2.0), (2, -0.5)):  # each copy is the clip magnified by its factor
        flow, _ = sample_flow(row, magnify=Magnification(alpha, band=BAND), **kw)
        expect = flow_image(flow, size=(28, 28)).transpose(2, 0, 1).astype(np.float32)
        np.testing.assert_array_equal(X[c * n + i], expect)
        assert np.abs(X[c * n + i] - X[i]).max() > 10  # and not the clip itself
    flow, _ = sample_flow(row, **kw)  # the first block is the plain clip
    np.testing.assert_array_equal(X[i], flow_image(flow).transpose(2, 0, 1).astype(np.float32))

    # every test clip predicted once; the evaluated data is the plain run's
    preds = pd.read_csv(tmp_path / "aug" / "predictions.csv")
    tested = sorted(int(s) for _, f, _ in spy for s in f.test_idx)
    assert sorted(preds["sample"]) == tested and len(set(tested)) == len(tested)
    assert not preds.duplicated(["seed", "clip"]).any()
    r_plain = pd.read_csv(tmp_path / "plain" / "results.csv")
    r_aug = pd.read_csv(tmp_path / "aug" / "results.csv")
    assert r_aug["data"].iloc[0] == r_plain["data"].iloc[0]
    p_plain, p_aug = json.loads(r_plain["params"][0]), json.loads(r_aug["params"][0])
    assert "magnify_augment" not in p_plain
    assert p_aug["magnify_augment"] == {"factors": [2.0, -0.5], "band": [2.0, 12.0],
                                        "pyramid": "laplacian", "filter": "ideal",
                                        "cutoff": 16.0, "levels": None}  # fmt: skip
    assert {k: v for k, v in p_aug.items() if k != "magnify_augment"} == p_plain
    # the option off: the run id of before the option (parameters + data only)
    info_plain = json.loads((tmp_path / "plain" / "run.json").read_text())
    info_aug = json.loads((tmp_path / "aug" / "run.json").read_text())
    assert info_plain["run"] == _run_id(r_plain) and "magnify_augment" not in info_plain
    assert info_aug["run"] != info_plain["run"] != _run_id(r_aug)  # the copies join it
    assert info_aug["magnify_augment"] == p_aug["magnify_augment"]
    # the card records it among the training parameters, not in the inputs predict makes
    card = json.loads((tmp_path / "aug" / "weights" / info_aug["run"] / "model.json").read_text())
    assert card["info"]["params"]["magnify_augment"]["factors"] == [2.0, -0.5]
    assert "magnify" not in card["flow"] and "magnify_augment" not in card["flow"]
    # other training data, other probabilities
    probs = _probabilities(tmp_path / "aug")
    assert not np.allclose(_probabilities(tmp_path / "plain"), probs)

    # same seed, fresh folder: the same numbers; resumed: nothing retrained
    again = _train(synth, tmp_path / "again", *LOSO, "--magnify-augment", "2,-0.5")
    assert again.exit_code == 0, again.output
    pd.testing.assert_frame_equal(_probabilities(tmp_path / "again"), probs, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "again" / "predictions.csv"), preds)
    res = _train(synth, tmp_path / "aug", *LOSO, "--magnify-augment", "2,-0.5")
    assert "folds trained 0, from cache 1" in res.output


def test_kfold_and_run_magnification_keep_test_clips_as_the_run_makes_them(synth, tmp_path,
                                                                             spy):  # fmt: skip
    """With --magnify 4 the clips (train and test) are magnified by 4 and a factor 0 copy is
    the plain clip; subject k-fold gets (1 + 1) x its training clips per fold."""
    args = ["--protocol", "kfold", "--task", "CASME2-5", "--model", "off_apexnet",
            "--n-folds", "2", "--magnify", "4", "--magnify-band", "2,12"]  # fmt: skip
    res = _train(synth, tmp_path / "kf", *args, "--magnify-augment", "0")
    assert res.exit_code == 0, res.output
    plain = wt.flow_inputs(spy[0][0].table.iloc[: len(spy[0][2]) // 2],
                           params={**wt.FLOW_IMAGE_PARAMS, "align": False, "preset": "fast",
                                   "face_size": [56, 56]})  # fmt: skip
    for _, fold, X in spy:
        n = len(X) // 2
        assert len(fold.train_idx) == 2 * int((fold.train_idx < n).sum())
        assert fold.test_idx.max() < n
        np.testing.assert_array_equal(X[n:], plain)  # the copies: unmagnified
        assert not np.array_equal(X[:n], plain)  # the clips as run: magnified by 4


def test_clip_networks_train_on_magnified_clip_volumes(synth, tmp_path, spy):
    from merkit.features.extract import Preprocess
    from merkit.nets.data import clip_volume

    res = _train(synth, tmp_path / "r3d", "--protocol", "loso", "--task", "CASME2-5",
                 "--model", "r3d", "--model-arg", "width=4", "--clip-size", "32",
                 "--clip-length", "8", "--folds", "1",
                 "--magnify-augment", "3", "--magnify-band", "2,12")  # fmt: skip
    assert res.exit_code == 0, res.output
    ((task, fold, X),) = spy
    n = len(X) // 2
    assert len(fold.train_idx) == 2 * int((fold.train_idx < n).sum()) and fold.test_idx.max() < n
    i = int(fold.train_idx[0])
    prep = Preprocess(size=(32, 32), length=8, align=False,
                      magnify=Magnification(3.0, band=BAND))  # fmt: skip
    expect = clip_volume(prep.load(task.table.iloc[i]), length=8)
    np.testing.assert_array_equal(np.asarray(X[n + i]), expect)
    assert not np.array_equal(np.asarray(X[n + i]), np.asarray(X[i]))
