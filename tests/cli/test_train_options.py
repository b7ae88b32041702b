"""`merkit train` refuses bad options in one line before any work: non-positive epochs,
batch size, learning rate and folds, and model arguments the network does not take."""

from __future__ import annotations

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
