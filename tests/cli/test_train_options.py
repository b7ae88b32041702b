"""`merkit train` refuses bad options in one line before any work: non-positive epochs,
batch size, learning rate and folds, and model arguments the network does not take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from merkit.cli import app
from merkit.workflows.train import run_train
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return _flow_folder(tmp_path_factory.mktemp("flows") / "flows")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "epochs=0 (--epochs): must be at least 1; 0 epochs would score the "
                            "untrained network"),
        (["--epochs", "-2"], "epochs=-2 (--epochs): must be at least 1"),
        (["--batch-size", "0"], "batch_size=0 (--batch-size): must be at least 1"),
        (["--lr", "0"], "lr=0.0 (--lr): the learning rate must be a number > 0, e.g. 1e-3"),
        (["--lr", "-0.1"], "lr=-0.1 (--lr): the learning rate must be a number > 0"),
        (["--folds", "0"], "folds=0 (--folds): must be a whole number >= 1"),
        (["--model", "ststnet", "--model-arg", "dropout=abc"],
         "model 'ststnet': argument dropout='abc' (a str) does not match the expected type "
         "float"),
        (["--model-arg", "width=8"], "model 'fr' takes no argument 'width'; its arguments: "
                                     "num_classes (int), attention (bool), fusion (str)"),
        (["--model-arg", "num_classes=4"], "model argument num_classes=4 (--model-arg): the "
                                           "task's classes set it; leave it out"),
        (["--fold-batching", "maybe"], "fold_batching='maybe' (--fold-batching): expected one "
                                       "of auto, on, off"),
        (["--model", "off_apexnet", "--fold-batching", "on"],
         "--fold-batching on: off_apexnet has no fold-batched implementation (only "
         "['ststnet']); use auto or off"),
        (["--device", "gpu"], "device 'gpu': expected one of auto, cpu, cuda, cuda:N, mps"),
        (["--device", "cuda:x"], "device 'cuda:x': the GPU index must be a number, e.g. cuda:0"),
        (["--precision", "16"], "precision='16' (--precision): expected one of 32, 16-mixed, "
                                "bf16-mixed"),
        (["--device", "cpu", "--precision", "16-mixed"],
         "precision '16-mixed' needs a GPU (cuda or mps), the device is cpu; on a CPU use "
         "bf16-mixed or 32"),
        (["--label-smoothing", "1"], "label_smoothing=1.0 (--label-smoothing): must be a number "
                                     "in [0, 1); 0 = plain cross-entropy, e.g. 0.1"),
        (["--ema-decay", "1.5"], "ema_decay=1.5 (--ema-decay): must be a number in [0, 1); 0 = "
                                 "the last weights, e.g. 0.999"),
        (["--scheduler", "linear"], "--scheduler linear: expected one of none, step, cosine"),
        (["--sampler", "weighted"], "--sampler weighted: expected one of shuffle, balanced"),
        (["--model", "ststnet", "--fold-batching", "on", "--sampler", "balanced"],
         "--fold-batching on: balanced sampling (--sampler balanced) is per fold only; use "
         "auto or off"),
        (["--model", "mersiam", "--label-smoothing", "0.1"],
         "--label-smoothing 0.1: model 'mersiam' trains with a two-stage network's own losses; "
         "label smoothing applies to cross-entropy only"),
        (["--model", "ststnet", "--fold-batching", "on", "--precision", "bf16-mixed"],
         "--fold-batching on: the fold-batched path trains in float32, precision is "
         "bf16-mixed; use auto or off"),
    ],
)  # fmt: skip
def test_bad_training_option_is_refused_before_any_work(flows, tmp_path, args, message):
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), "--epochs", "1", "--folds",
                              "1", "--out", str(out), *args])  # fmt: skip
    assert one_error_line(res).startswith(f"error: {message}")
    assert not out.exists()  # nothing trained, nothing written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model-arg", "width=abc"],
         "model 'r3d': argument width='abc' (a str) does not match the expected type int"),
        (["--model-arg", "layers=[2, 2]"], "model 'r3d': argument layers=[2, 2] (a list) does "
                                           "not match the expected type tuple[int, int, int, int]"),
        (["--clip-length", "0"], "clip length=0 (--clip-length): must be a whole number >= 1"),
        (["--protocol", "kfold", "--n-folds", "1"],
         "n_folds=1 (--n-folds): must be a whole number >= 2"),
        (["--workers", "-1"], "workers=-1 (--workers): must be a whole number >= 0"),
    ],
)  # fmt: skip
def test_bad_3d_model_options_are_refused_before_reading_clips(tmp_path, args, message):
    data = tmp_path / "data"
    data.mkdir()  # no database: reading it would fail with another message
    res = runner.invoke(app, ["train", "--data", str(data), "--model", "r3d", "--out",
                              str(tmp_path / "out"), *args])  # fmt: skip
    assert one_error_line(res) == f"error: {message}"


def test_library_refuses_zero_epochs_before_reading_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"^epochs=0 \(--epochs\): must be at least 1"):
        run_train(tmp_path / "out", flows_dir=tmp_path / "absent", epochs=0, progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the message is for "
                    "machines without it")  # fmt: skip
def test_cuda_without_cuda_is_one_line_naming_the_torch_build(flows, tmp_path):
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), "--device", "cuda", "--out",
                              str(tmp_path / "out")])  # fmt: skip
    why = "a CPU-only build" if torch.version.cuda is None else "no GPU is visible"
    assert one_error_line(res) == (
        f"error: device 'cuda': CUDA is not available (torch {torch.__version__}, {why}); use "
        "--device cpu or auto"
    )
    assert not (tmp_path / "out").exists()


def test_recipe_options_reach_the_run_and_its_id(flows, tmp_path):
    """--label-smoothing / --ema-decay / --scheduler are in the stored params and the run id;
    without them the run id is the plain run's."""
    import pandas as pd

    common = ["train", "--flows-dir", str(flows), "--model", "ststnet", "--epochs", "2",
              "--folds", "2"]  # fmt: skip
    res = runner.invoke(app, [*common, "--out", str(tmp_path / "plain")])
    assert res.exit_code == 0, res.output
    recipe = ["--label-smoothing", "0.1", "--ema-decay", "0.9", "--scheduler", "cosine",
              "--sampler", "balanced"]  # fmt: skip
    res = runner.invoke(app, [*common, *recipe, "--out", str(tmp_path / "recipe")])
    assert res.exit_code == 0, res.output
    params = json.loads(pd.read_csv(tmp_path / "recipe" / "results.csv")["params"].iloc[0])
    assert params["label_smoothing"] == 0.1 and params["ema_decay"] == 0.9
    assert params["scheduler"] == "cosine" and params["sampler"] == "balanced"
    assert "fold_batched" not in params  # balanced sampling trains fold by fold
    plain = json.loads(pd.read_csv(tmp_path / "plain" / "results.csv")["params"].iloc[0])
    assert "label_smoothing" not in plain and "ema_decay" not in plain
    assert plain["fold_batched"] is True and "sampler" not in plain
    runs = [json.loads((tmp_path / d / "run.json").read_text())["run"] for d in ("plain", "recipe")]
    assert runs[0].startswith("ststnet-") and runs[0] != runs[1]


def test_a_run_resumes_from_its_cache_with_other_threads(flows, tmp_path):
    """Threads change no number, so they are not part of the run's identity: --threads 2
    finds the folds that --threads 1 trained (and the same run id)."""
    common = ["train", "--flows-dir", str(flows), "--model", "ststnet", "--epochs", "2",
              "--folds", "2", "--out", str(tmp_path / "o")]  # fmt: skip
    first = runner.invoke(app, [*common, "--threads", "1"])
    assert first.exit_code == 0, first.output
    run = json.loads((tmp_path / "o" / "run.json").read_text())["run"]
    again = runner.invoke(app, [*common, "--threads", "2"])
    assert again.exit_code == 0, again.output
    assert "folds trained 0, from cache 2" in again.output
    assert json.loads((tmp_path / "o" / "run.json").read_text())["run"] == run
