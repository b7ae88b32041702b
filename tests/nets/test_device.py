"""Devices and precision (merkit.nets.device): names resolve or fail in one line, the device
reaches every tensor of training and prediction (a model on the ``meta`` device runs the
whole step there and fails only where a value is read back), bfloat16 autocast trains
reproducibly, and float32 CPU runs are what they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merkit.nets import create_model
from merkit.nets.data import make_loader
from merkit.nets.device import check_precision, host, resolve_device
from merkit.nets.train import TrainConfig, embed, fit, predict, save_weights, train_fold

META = torch.device("meta")


def _data(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 3, 28, 28), dtype=np.float32) * 255, np.arange(n) % 3


def _no_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _no_gpu(monkeypatch)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("MPS") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_device_names_fail_in_one_line(monkeypatch):
    _no_gpu(monkeypatch)
    with pytest.raises(ValueError, match=r"^device 'mps': Apple's MPS is not available"):
        resolve_device("mps")
    with pytest.raises(ValueError, match=r"^device 'cuda:1': CUDA is not available \(torch "):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError) as err:
        resolve_device("cuda:2")
    assert str(err.value) == "device 'cuda:2': this machine has 2 GPU(s), cuda:0 to cuda:1"
    with pytest.raises(ValueError, match=r"^device 'tpu': expected one of auto, cpu, cuda, "):
        resolve_device("tpu")
    assert resolve_device(META) is META  # a torch.device is taken as it is (tests, libraries)


def test_precision_is_checked_against_the_device():
    assert check_precision("bf16-mixed", torch.device("cpu")) == "bf16-mixed"
    assert check_precision("16-mixed", torch.device("cuda")) == "16-mixed"
    with pytest.raises(ValueError, match=r"^precision '16-mixed' needs a GPU \(cuda or mps\)"):
        check_precision("16-mixed", torch.device("cpu"))
    with pytest.raises(ValueError, match=r"^precision='fp8' \(--precision\): expected one of"):
        TrainConfig(precision="fp8")


def test_float32_runs_keep_their_identity():
    """``precision`` enters the run's parameters only when it is not float32, so the run
    ids (a hash of the parameters) of every earlier float32 run stay valid."""
    assert "precision" not in TrainConfig().to_dict()
    assert sorted(TrainConfig().to_dict()) == sorted([
        "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "scheduler",
        "step_size", "gamma", "class_weight", "num_classes", "seed", "threads",
        "deterministic"])  # fmt: skip
    assert TrainConfig(precision="bf16-mixed").to_dict()["precision"] == "bf16-mixed"


@pytest.mark.parametrize(("model", "optimizer"), [("ststnet", "sgd"), ("fr", "adam")])
def test_training_on_a_device_keeps_every_tensor_there(model, optimizer):
    """On the meta device (shapes, no values) the batches, class weights, forward pass, loss,
    backward pass and optimizer step all run; the first error is where a value is read
    back at the end of the epoch. A tensor left on the CPU (inputs, labels, class weights,
    optimizer state) would fail earlier, with "Expected all tensors to be on the same
    device" or "meta and cpu"."""
    X, y = _data()
    net = create_model(model, num_classes=3)
    cfg = TrainConfig(epochs=1, batch_size=4, optimizer=optimizer, class_weight="balanced")
    with pytest.raises(RuntimeError, match=r"^Tensor.item\(\) cannot be called on meta "):
        fit(net, make_loader(X, y, batch_size=4, shuffle=True), cfg, device=META)
    assert {p.device.type for p in net.parameters()} == {"meta"}
    assert {b.device.type for b in net.buffers()} <= {"meta"}  # BatchNorm statistics


def test_prediction_on_a_device_runs_there_and_returns_host_arrays():
    X, _ = _data(5)
    net = create_model("ststnet", num_classes=3).to(META)
    loader = make_loader(X, batch_size=2)
    for call in (predict, embed):  # the CPU inputs reach the network on its device ...
        with pytest.raises(NotImplementedError, match=r"Cannot copy out of meta tensor"):
            call(net, loader)  # ... and fail only when the results are copied to the host
    cpu = create_model("ststnet", num_classes=3)
    y_pred, probs = predict(cpu, loader, device="cpu")
    assert probs.dtype == np.float32 and probs.shape == (5, 3) and y_pred.shape == (5,)
    assert host(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32


def test_an_explicit_cpu_device_changes_no_number():
    X, y = _data()
    cfg = TrainConfig(epochs=2, batch_size=4, optimizer="adam", lr=1e-3, seed=3)
    a = train_fold("ststnet", X, y, np.arange(9), np.arange(9, 12), cfg, seed=3, device=None)
    b = train_fold("ststnet", X, y, np.arange(9), np.arange(9, 12), cfg, seed=3, device="cpu")
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                           strict=True):  # fmt: skip
        assert torch.equal(va, vb), k
    assert a.history == b.history
    np.testing.assert_array_equal(a.probs, b.probs)


def test_bf16_autocast_trains_reproducibly_and_close_to_float32():
    X, y = _data(24)
    X /= 255
    tr, te = np.arange(18), np.arange(18, 24)
    base = TrainConfig(epochs=3, batch_size=6, optimizer="adam", lr=1e-3, seed=1)
    f32 = train_fold("ststnet", X, y, tr, te, base, seed=1)
    bf = [train_fold("ststnet", X, y, tr, te, TrainConfig(**{**base.__dict__,
                                                               "precision": "bf16-mixed"}),
                     seed=1) for _ in range(2)]  # fmt: skip
    np.testing.assert_array_equal(bf[0].probs, bf[1].probs)  # same seed, same numbers
    w32 = f32.model.fc.weight.detach()
    w16 = bf[0].model.fc.weight.detach()
    assert w16.dtype == torch.float32  # autocast keeps float32 master weights
    assert not torch.equal(w32, w16)  # the forward pass did run in bfloat16 ...
    assert float((w32 - w16).abs().max()) < 5e-3  # ... and stayed close to float32
    np.testing.assert_allclose(bf[0].history["loss"], f32.history["loss"], atol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_training_is_repeatable_and_weights_load_on_the_cpu(tmp_path):
    X, y = _data(24)
    X /= 255
    cfg = TrainConfig(epochs=2, batch_size=6, optimizer="adam", lr=1e-3, seed=1)
    runs = [train_fold("ststnet", X, y, np.arange(18), np.arange(18, 24), cfg, seed=1,
                       device="cuda") for _ in range(2)]  # fmt: skip
    np.testing.assert_array_equal(runs[0].probs, runs[1].probs)
    cpu = train_fold("ststnet", X, y, np.arange(18), np.arange(18, 24), cfg, seed=1)
    np.testing.assert_allclose(runs[0].probs, cpu.probs, atol=1e-3)
    net = create_model("ststnet", num_classes=3).cuda()
    path = save_weights(net, tmp_path / "w.pth")
    from merkit.nets.train import load_weights

    back = load_weights(create_model("ststnet", num_classes=3), path)
    assert {p.device.type for p in back.parameters()} == {"cpu"}


def test_a_cluster_driver_checks_an_explicit_gpu_by_name_only(monkeypatch):
    """A Ray / Dask driver without a GPU sends folds to GPU workers: ``cuda`` passes the
    driver's check (the workers resolve it), a malformed name does not, ``auto`` is resolved
    on the driver."""
    from merkit.nets.device import device_name
    from merkit.protocols.deep import deep_protocol
    from merkit.workflows.train import _check_options

    _no_gpu(monkeypatch)
    opts = dict(epochs=1, lr=None, batch_size=None, threads=None, folds=None, n_folds=10,
                flow=None, clip=None, fold_batching="off")  # fmt: skip
    cde = deep_protocol("cde")
    assert _check_options(cde, "ststnet", "flow", {}, device="cuda:1", on_workers=True,
                          **opts) == "cuda:1"  # fmt: skip
    assert _check_options(cde, "ststnet", "flow", {}, device="auto", on_workers=True,
                          **opts) == "cpu"  # fmt: skip
    with pytest.raises(ValueError, match=r"^device 'cuda': CUDA is not available"):
        _check_options(cde, "ststnet", "flow", {}, device="cuda", **opts)
    assert device_name(" CUDA:0 ") == "cuda:0"
    with pytest.raises(ValueError, match=r"^device 'cuda:one': the GPU index must be a number"):
        device_name("cuda:one")
