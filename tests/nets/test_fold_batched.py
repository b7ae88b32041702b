"""Fold-batched training (issue #17): the same weights as training fold by fold on the same
masked mini-batches, no test-subject leak, resume, dispatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from merkit.nets import create_model
from merkit.nets.data import make_loader
from merkit.nets.fold_batched import (
    FoldSpec,
    batching_problem,
    train_folds,
    train_folds_batched,
)
from merkit.nets.kernels import load_kernel
from merkit.nets.ststnet_folds import dropout_keep, fold_linear, stst_layer
from merkit.nets.train import (
    TrainConfig,
    WeightEMA,
    class_weights,
    fit,
    fold_seed,
    lr_schedule,
    torch_session,
)

needs_kernel = pytest.mark.skipif(
    load_kernel("ststnet_folds") is None, reason="no C++ compiler / ninja to build the kernel"
)


def _data(n_subjects: int = 4, per: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = n_subjects * per
    y = np.arange(n) % 3
    X = rng.normal(0, 1, (n, 3, 28, 28)).astype(np.float32)
    X[:, 0] += y[:, None, None] * 0.8  # learnable: the class shifts the u channel
    subject = np.repeat(np.arange(n_subjects), per)
    folds = [FoldSpec(np.flatnonzero(subject != s), np.flatnonzero(subject == s), s)
             for s in range(n_subjects)]  # fmt: skip
    return X, y, folds


def _per_fold_reference(X, y, folds, cfg, seed, kwargs):
    """Each fold trained alone, module by module, on its rows of the shared batches, with
    torch's loss (class weights, label smoothing) and, with ``cfg.ema_decay``, its weights'
    average (:class:`merkit.nets.train.WeightEMA`)."""
    stream = np.arange(len(X))
    batch = round(cfg.batch_size * len(folds) / (len(folds) - 1))
    gen = torch.Generator().manual_seed(fold_seed(seed, 99_991))
    orders = [stream[torch.randperm(len(stream), generator=gen).numpy()] for _ in range(cfg.epochs)]
    nets = []
    for fold in folds:
        with torch_session(fold_seed(seed, fold.index)):
            net = create_model("ststnet", num_classes=3, **kwargs)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        ema = WeightEMA(cfg.ema_decay) if cfg.ema_decay else None
        weight = class_weights(y[fold.train_idx], cfg)
        train = set(fold.train_idx.tolist())
        for order in orders:
            for b0 in range(0, len(order), batch):
                rows = [r for r in order[b0 : b0 + batch] if r in train]
                if not rows:
                    continue
                net.train()
                opt.zero_grad()
                out = net(torch.as_tensor(X[rows]))
                F.cross_entropy(out, torch.as_tensor(y[rows]), weight=weight,
                                label_smoothing=cfg.label_smoothing).backward()  # fmt: skip
                opt.step()
                if ema is not None:
                    ema.update(net)
        nets.append((net if ema is None else ema.copy_to(net)).eval())
    return nets


@pytest.mark.parametrize("kernel", [pytest.param(True, marks=needs_kernel), False])
def test_batched_equals_fold_by_fold_on_the_same_masked_batches(kernel):
    X, y, folds = _data()
    cfg = TrainConfig(epochs=3, batch_size=8, optimizer="adam", lr=5e-3, num_classes=3)
    kwargs = {"dropout": 0.0}
    got = train_folds_batched("ststnet", X, y, folds, cfg, seed=3, model_kwargs=kwargs,
                              kernel=kernel)  # fmt: skip
    ref = _per_fold_reference(X, y, folds, cfg, 3, kwargs)
    for result, net, fold in zip(got, ref, folds, strict=True):
        mine, theirs = result.model.state_dict(), net.state_dict()
        for name, value in theirs.items():
            if value.dtype.is_floating_point:
                np.testing.assert_allclose(mine[name].numpy(), value.numpy(), rtol=2e-4,
                                           atol=2e-5, err_msg=name)  # fmt: skip
            else:
                assert int(mine[name]) == int(value), name
        with torch.no_grad():
            p_ref = torch.softmax(net(torch.as_tensor(X[fold.test_idx])), 1).numpy()
        np.testing.assert_allclose(result.probs, p_ref, atol=1e-5)
        with torch_session(fold_seed(3, fold.index)):
            init = create_model("ststnet", num_classes=3, **kwargs)
        moved = float((init.conv3.weight - net.conv3.weight).detach().abs().max())
        assert moved > 1e-3  # the folds did train: equal weights are not the initial ones


@needs_kernel
@pytest.mark.parametrize("side", [28, 26, 31])  # STSTNet takes 26..31 (5 x 5 pooled maps)
def test_kernel_layer_equals_the_pytorch_ops_with_dropout_and_negative_scales(side):
    torch.manual_seed(0)
    n, k = 12, 3
    xpad = F.pad(torch.rand(n, 3, side, side) * 2 - 0.5, (2, 2, 2, 2))
    wb0 = torch.randn(k, 16, 28) * 0.3
    sgn = torch.ones(k, 16)
    sgn[1, 3], sgn[2, :5] = -1, -1  # min-pooling where the BatchNorm scale is negative
    mask = (torch.rand(n, k) > 0.3).to(torch.uint8)
    rows, folds = torch.arange(n) * 7 + 3, torch.arange(k) + 10
    g1 = torch.randn(n, k, 16, 25)
    outs = []
    for kernel in (True, False):
        wb = wb0.clone().requires_grad_()
        h1, h0, s1, s2 = stst_layer(xpad, wb, sgn, mask, rows, folds, seed=5, step=11, p=0.5,
                                    kernel=kernel)  # fmt: skip
        ((h1 * g1).sum() + 1e-3 * s1.sum() + 1e-4 * s2.sum()).backward()
        outs.append((h1.detach(), h0, s1.detach(), s2.detach(), wb.grad))
    for name, a, b in zip(("H1", "H0", "S1", "S2", "grad"), *outs, strict=True):
        np.testing.assert_allclose(a.double().numpy(), b.double().numpy(), rtol=2e-5,
                                   atol=1e-4, err_msg=name)  # fmt: skip
    assert float(outs[0][1][mask.bool()].mean()) == pytest.approx(1.0, abs=0.05)  # E[d] = 1
    assert float(outs[0][1][~mask.bool()].abs().max()) == 0.0  # masked rows: nothing


@needs_kernel
@pytest.mark.parametrize("out", [3, 5])
def test_kernel_linear_layer_equals_einsum_with_gradients(out):
    torch.manual_seed(1)
    n, k = 14, 4
    h1 = torch.randn(n, k, 16, 25)
    h0 = torch.rand(n, k, 16, 25)
    h1[3, 2] = h0[3, 2] = 0.0  # a masked row
    w10, w00 = torch.randn(k, out, 400), torch.randn(k, out, 400)
    g = torch.randn(n, k, out)
    outs = []
    for kernel in (True, False):
        x1 = h1.clone().requires_grad_()
        w1, w0 = w10.clone().requires_grad_(), w00.clone().requires_grad_()
        y = fold_linear(x1, h0, w1, w0, kernel=kernel)
        (y * g).sum().backward()
        outs.append((y.detach(), x1.grad, w1.grad, w0.grad))
    for name, a, b in zip(("out", "grad H1", "grad w1", "grad w0"), *outs, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-5, err_msg=name)


def test_dropout_masks_are_a_function_of_seed_fold_step_and_row():
    rows = np.arange(200)
    keep = dropout_keep(7, 3, 11, rows, 1600, 0.5)
    assert keep.shape == (200, 1600)
    assert keep.mean() == pytest.approx(0.5, abs=0.005)
    assert dropout_keep(7, 3, 11, rows, 1600, 0.2).mean() == pytest.approx(0.8, abs=0.005)
    np.testing.assert_array_equal(keep[5:9], dropout_keep(7, 3, 11, rows[5:9], 1600, 0.5))
    for other in (dropout_keep(8, 3, 11, rows, 1600, 0.5), dropout_keep(7, 4, 11, rows, 1600, 0.5),
                  dropout_keep(7, 3, 12, rows, 1600, 0.5)):  # fmt: skip
        assert 0.45 < (other == keep).mean() < 0.55  # independent masks
    assert dropout_keep(7, 3, 11, rows, 1600, 0.0).all()


@needs_kernel
def test_a_folds_test_inputs_and_its_companions_change_nothing_in_its_weights():
    X, y, folds = _data()
    cfg = TrainConfig(epochs=2, batch_size=8, optimizer="adam", lr=5e-3, num_classes=3)
    base = train_folds_batched("ststnet", X, y, folds, cfg, seed=1)
    X2 = X.copy()
    X2[folds[0].test_idx] = np.random.default_rng(9).normal(0, 5, X2[folds[0].test_idx].shape)
    y2 = y.copy()
    y2[folds[0].test_idx] = (y2[folds[0].test_idx] + 1) % 3
    changed = train_folds_batched("ststnet", X2, y2, folds, cfg, seed=1)
    alone = train_folds_batched("ststnet", X, y, folds[:1], cfg, seed=1, protocol_folds=4)

    def same(a, b) -> bool:
        return all(torch.equal(a.model.state_dict()[n], v) for n, v in b.model.state_dict().items())

    assert same(changed[0], base[0])  # fold 0 never saw its test subject's inputs or labels
    assert not same(changed[1], base[1])  # fold 1 trains on them
    assert same(alone[0], base[0])  # trained alone: the same fold as among all four


@needs_kernel
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    X, y, folds = _data()
    cfg = TrainConfig(epochs=4, batch_size=8, optimizer="adam", lr=5e-3, num_classes=3)
    full = train_folds_batched("ststnet", X, y, folds, cfg, seed=2)
    ckpt = tmp_path / "folds" / "seed2" / "batched.pt"  # its folder does not exist yet

    def die(epoch: int, epochs: int) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_folds_batched("ststnet", X, y, folds, cfg, seed=2, checkpoint=ckpt,
                            checkpoint_seconds=0.0, on_epoch=die)  # fmt: skip
    assert ckpt.is_file()
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 2  # saved after epoch 2 (epoch 3 was killed before its save)
    epochs = []
    resumed = train_folds_batched("ststnet", X, y, folds, cfg, seed=2, checkpoint=ckpt,
                                  on_epoch=lambda e, n: epochs.append(e))  # fmt: skip
    assert epochs == [3, 4] and not ckpt.exists()
    for a, b in zip(full, resumed, strict=True):
        for name, value in a.model.state_dict().items():
            assert torch.equal(value, b.model.state_dict()[name]), name
        assert a.history["loss"] == b.history["loss"]


def test_dispatch_and_its_errors(monkeypatch):
    X, y, folds = _data()
    cfg = TrainConfig(epochs=1, batch_size=8, num_classes=3)
    with pytest.raises(ValueError, match=r"STSTNet expects a 4-D tensor .* got shape \(1, 2, 28"):
        train_folds_batched("ststnet", X[:, :2], y, folds, cfg, kernel=False)
    assert "no fold-batched implementation" in batching_problem("fr", n_folds=4)
    assert batching_problem("ststnet", n_folds=1) == "fewer than 2 folds to train"
    assert "multi-label" in batching_problem("ststnet", n_folds=4, multilabel=True)
    with pytest.raises(ValueError, match=r"--fold-batching on: off_apexnet has no fold-batched"):
        train_folds("off_apexnet", X, y, folds, cfg, fold_batching="on")
    with pytest.raises(ValueError, match="fold_batching='sometimes'"):
        train_folds("ststnet", X, y, folds, cfg, fold_batching="sometimes")
    called = []
    monkeypatch.setattr("merkit.nets.fold_batched.train_folds_batched",
                        lambda *a, **kw: called.append("batched") or [])  # fmt: skip
    train_folds("ststnet", X, y, folds, cfg, fold_batching="off")
    assert called == []
    if load_kernel("ststnet_folds") is not None:
        train_folds("ststnet", X, y, folds, cfg)
        assert called == ["batched"]


@pytest.mark.parametrize("scheduler", ["step", "cosine"])
def test_the_batched_path_uses_fits_learning_rate_schedule(scheduler):
    X, y, folds = _data()
    cfg = TrainConfig(epochs=5, batch_size=8, optimizer="adam", lr=1e-3, num_classes=3,
                      scheduler=scheduler, step_size=2, gamma=0.5)  # fmt: skip
    with torch_session(0):
        net = create_model("ststnet", num_classes=3)
    per_fold = fit(net, make_loader(X, y, batch_size=8, shuffle=True, seed=0), cfg)["lr"]
    assert per_fold == lr_schedule(cfg)
    assert per_fold[0] == 1e-3 and per_fold[-1] < 5e-4  # the schedule does decay
    got = train_folds_batched("ststnet", X, y, folds[:2], cfg, protocol_folds=4, kernel=False)
    assert got[0].history["lr"] == per_fold
