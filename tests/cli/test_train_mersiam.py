"""`merkit train --model mersiam`: DFME-style k-fold on key-frame flow sequences computed
from clips, CDE on the MEGC 2019 flow images (length-1 sequences), predict, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.nets.predict import read_model_card
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()
#: 1 epoch per stage, a tiny network
TINY = ["--model", "mersiam", "--epochs", "1", "--prior-epochs", "1", "--model-arg", "width=2",
        "--model-arg", "embed_dim=8"]  # fmt: skip


@pytest.fixture(scope="module")
def dfme(tmp_path_factory) -> tuple[Path, Path]:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("synth_dfme")
    synthesize(root / "data", seed=0, size={"preset": "tiny", "scale": 0.5},
               databases=("DFME",))  # fmt: skip
    return root / "data", root / "cache"


def _kfold(dfme, out: Path, *extra: str):
    data, cache = dfme
    return runner.invoke(app, ["train", "--protocol", "kfold", "--data", str(data), "--cache",
                               str(cache), "--n-folds", "2", "--no-align", "--flow-preset",
                               "fast", "--face-size", "32", "--clip-size", "16",
                               "--clip-length", "4", *TINY, "--out", str(out),
                               *extra])  # fmt: skip


@pytest.fixture(scope="module")
def kfold_run(dfme, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mersiam_kfold") / "out"
    res = _kfold(dfme, out, "--final")
    assert res.exit_code == 0, res.output
    return out


def test_kfold_on_flow_sequences_two_stages_and_predict(kfold_run, dfme, smile_clip):
    out = kfold_run
    r = pd.read_csv(out / "results.csv").iloc[0]
    assert (r["protocol"], r["method"], r["task"]) == ("kfold", "mersiam", "DFME-7")
    params = json.loads(r["params"])
    assert (params["prior_epochs"], params["epochs"], params["batch_size"]) == (1, 1, 8)
    assert (params["optimizer"], params["momentum"], params["width"]) == ("sgd", 0.9, 2)
    hist = pd.read_csv(out / "history.csv")
    assert hist.groupby("fold")["stage"].apply(list).map(tuple).unique().tolist() == [
        ("prior", "target")]  # fmt: skip
    run = json.loads((out / "run.json").read_text())["run"]
    card = read_model_card(out / "weights" / run / "model.json")
    assert (card.input_kind, card.size) == ("flowseq", (16, 16))
    assert (card.flow["length"], card.flow["keyframes"]) == (4, "motion")
    emb = np.load(out / "embeddings" / "kfold__DFME-7__mersiam__seed0.npz")
    assert emb["z"].shape[1] == 8
    # the same seed: the same predictions (a second run in a fresh folder, inputs cached)
    again = _kfold(dfme, out.parent / "again")
    assert again.exit_code == 0, again.output
    preds = [pd.read_csv(d / "predictions.csv") for d in (out, out.parent / "again")]
    cols = [c for c in preds[0].columns if c.startswith("prob_")]
    np.testing.assert_array_equal(preds[0][cols].to_numpy(), preds[1][cols].to_numpy())
    res = runner.invoke(app, ["predict", str(smile_clip), "--model",
                              str(out / "weights" / run / "final.pth"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["model"] == "mersiam" and len(got["probabilities"]) == 7
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)


@pytest.fixture(scope="module")
def smile_clip(tmp_path_factory) -> Path:
    from tests.video._clips import smile_frames, write_video

    return write_video(tmp_path_factory.mktemp("smile") / "smile.avi", smile_frames())


def test_cde_on_the_flow_folder_as_length_one_sequences(tmp_path, smile_clip):
    flows = _flow_folder(tmp_path / "flows")
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--protocol", "cde", "--flows-dir", str(flows), *TINY,
                              "--folds", "2", "--out", str(out), "--final"])  # fmt: skip
    assert res.exit_code == 0, res.output
    r = pd.read_csv(out / "results.csv").iloc[0]
    assert (r["method"], r["n_test"]) == ("mersiam", 6)
    run = json.loads((out / "run.json").read_text())
    assert run["sequence"] == "each flow image is a flow sequence of length 1"
    card = read_model_card(out / "weights" / run["run"] / "model.json")
    assert (card.size, card.flow["length"], card.flow["keyframes"]) == ((28, 28), 1, "apex")
    res = runner.invoke(
        app,
        [
            "predict",
            str(smile_clip),
            "--model",
            str(out / "weights" / run["run"] / "final.pth"),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["apex"] is not None and len(got["probabilities"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--augment", "flow"],
            "--augment flow is a policy for flow inputs; model 'mersiam' "
            "takes flowseq inputs: use one of none",
        ),
        (["--augment", "clip"], "takes flowseq inputs: use one of none"),
        (["--prior-epochs", "-1"], "prior_epochs=-1 (--prior-epochs): must be at least 0"),
        (
            ["--keyframes", "apex"],
            "--keyframes apex gives one flow (onset -> apex): use --clip-length 1, not 10",
        ),
        (["--keyframes", "peak"], "--keyframes peak: expected one of motion, uniform, apex"),
        (["--keyframes", "uniform"], "the sequence options (keyframes) need --data (clips)"),
    ],
)
def test_mersiam_option_errors_are_one_line_before_any_work(tmp_path, args, message):
    flows = _flow_folder(tmp_path / "flows")
    res = runner.invoke(
        app,
        [
            "train",
            "--protocol",
            "cde",
            "--flows-dir",
            str(flows),
            "--model",
            "mersiam",
            *args,
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code != 0
    assert message in one_error_line(res)
    assert not (tmp_path / "o").exists()


def test_one_stage_models_refuse_prior_epochs_and_keyframes(tmp_path):
    flows = _flow_folder(tmp_path / "flows")
    for args, message in (
        (["--prior-epochs", "2"], "model 'fr' trains in one stage"),
        (["--keyframes", "uniform"], "model 'fr' takes flow inputs"),
    ):
        res = runner.invoke(
            app,
            [
                "train",
                "--protocol",
                "cde",
                "--flows-dir",
                str(flows),
                "--model",
                "fr",
                *args,
                "--out",
                str(tmp_path / "o"),
            ],
        )
        assert res.exit_code != 0 and message in one_error_line(res)
