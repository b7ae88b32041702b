"""Training recipes of issue #20 item 4: label smoothing and a bias-corrected EMA of the
weights, on the per-fold path (``fit``) and the fold-batched path (the same numbers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from merkit.nets.data import make_loader
from merkit.nets.fold_batched import FoldSpec, train_folds_batched
from merkit.nets.kernels import load_kernel
from merkit.nets.train import TrainConfig, WeightEMA, compute_loss, fit, torch_session
from tests.nets.test_fold_batched import _per_fold_reference


def test_weight_ema_is_bias_corrected_by_hand() -> None:
    net = nn.Linear(1, 1, bias=False)
    ema = WeightEMA(0.5)
    for w in (1.0, 3.0):
        with torch.no_grad():
            net.weight.fill_(w)
        ema.update(net)
    # a1 = 0.5 * 1 = 0.5; a2 = 0.5 * 0.5 + 0.5 * 3 = 1.75; / (1 - 0.5^2) = 2.3333
    assert float(ema.state_dict_of(net)["weight"]) == pytest.approx(1.75 / 0.75)
    bn = nn.BatchNorm1d(2)
    e2 = WeightEMA(0.9)
    e2.update(bn)
    got = e2.state_dict_of(bn)
    assert torch.equal(got["num_batches_tracked"], bn.num_batches_tracked)  # ints: kept
    assert torch.allclose(got["running_var"], bn.running_var)  # one step: the value itself
    with pytest.raises(ValueError, match=r"ema_decay=1.0: must be in \(0, 1\)"):
        WeightEMA(1.0)


def test_options_are_checked_and_absent_from_the_params_when_off() -> None:
    base = TrainConfig().to_dict()
    assert "label_smoothing" not in base and "ema_decay" not in base  # run ids unchanged
    on = TrainConfig(label_smoothing=0.1, ema_decay=0.99).to_dict()
    assert on["label_smoothing"] == 0.1 and on["ema_decay"] == 0.99
    msg = r"label_smoothing=1.0 \(--label-smoothing\): must be a number in \[0, 1\); 0 = plain"
    with pytest.raises(ValueError, match=msg):
        TrainConfig(label_smoothing=1.0)
    with pytest.raises(ValueError, match=r"ema_decay=-0.1 \(--ema-decay\): must be a number"):
        TrainConfig(ema_decay=-0.1)


def test_label_smoothing_is_torchs_weighted_form_for_indices_and_mixup_targets() -> None:
    torch.manual_seed(0)
    z, y, w = torch.randn(9, 3), torch.randint(0, 3, (9,)), torch.tensor([0.5, 2.0, 1.3])
    net = nn.Identity()
    ref = F.cross_entropy(z, y, weight=w, label_smoothing=0.2)
    assert float(compute_loss(net, z, y, w, 0.2)) == pytest.approx(float(ref), rel=1e-6)
    onehot = F.one_hot(y, 3).float()
    assert float(compute_loss(net, z, onehot, w, 0.2)) == pytest.approx(float(ref), rel=1e-6)
    # by hand, unweighted: (1 - eps) nll + eps * mean_k(-log q_k)
    lp = torch.log_softmax(z, 1)
    hand = ((0.8 * -lp.gather(1, y[:, None]).squeeze(1)) + 0.2 * -lp.mean(1)).mean()
    assert float(compute_loss(net, z, y, None, 0.2)) == pytest.approx(float(hand), rel=1e-6)


def test_fit_predicts_with_the_average_of_its_steps_and_shows_it_to_epoch_end() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    cfg = TrainConfig(epochs=5, batch_size=12, optimizer="sgd", lr=0.5, num_classes=2)

    def run(c):
        with torch_session(1):
            net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
        seen = []

        def record(epoch: int, m: nn.Module) -> None:
            seen.append({k: v.clone() for k, v in m.state_dict().items()})

        fit(net, make_loader(X, y, batch_size=12, shuffle=True, seed=0), c, epoch_end=record)
        return net, seen

    plain, steps = run(cfg)  # one step per epoch: the trajectory EMA does not change
    avg, shown = run(TrainConfig(**{**cfg.__dict__, "ema_decay": 0.7}))
    d = 0.7
    for e in range(1, 6):
        for name, last in steps[e - 1].items():
            if not last.is_floating_point():
                assert torch.equal(shown[e - 1][name], last)
                continue
            a = sum((1 - d) * d ** (e - 1 - t) * steps[t][name] for t in range(e))
            np.testing.assert_allclose(shown[e - 1][name], a / (1 - d**e), rtol=1e-5, atol=1e-6)
    final = avg.state_dict()
    assert not torch.allclose(final["0.weight"], plain.state_dict()["0.weight"])
    np.testing.assert_allclose(final["0.weight"], shown[-1]["0.weight"], rtol=0, atol=0)


@pytest.mark.parametrize(
    "kernel",
    [
        pytest.param(True, marks=pytest.mark.skipif(load_kernel("ststnet_folds") is None,
                                                     reason="no C++ compiler for the kernel")),
        False,
    ],
)  # fmt: skip
def test_the_batched_path_smooths_weights_and_averages_as_fit_does(kernel) -> None:
    rng = np.random.default_rng(0)
    n_subjects, per = 4, 6
    y = np.array([0, 0, 0, 1, 2, 1] * n_subjects)  # unbalanced: class weights matter
    X = rng.normal(0, 1, (len(y), 3, 28, 28)).astype(np.float32)
    X[:, 0] += y[:, None, None] * 0.8
    subject = np.repeat(np.arange(n_subjects), per)
    folds = [FoldSpec(np.flatnonzero(subject != s), np.flatnonzero(subject == s), s)
             for s in range(n_subjects)]  # fmt: skip
    cfg = TrainConfig(epochs=3, batch_size=8, optimizer="adam", lr=5e-3, num_classes=3,
                      label_smoothing=0.2, ema_decay=0.6, class_weight="balanced")  # fmt: skip
    got = train_folds_batched("ststnet", X, y, folds, cfg, seed=3, model_kwargs={"dropout": 0.0},
                              kernel=kernel, audit_every=1)  # fmt: skip
    ref = _per_fold_reference(X, y, folds, cfg, 3, {"dropout": 0.0})
    for result, net, fold in zip(got, ref, folds, strict=True):
        theirs = net.state_dict()
        for name, value in result.model.state_dict().items():
            if value.dtype.is_floating_point:
                np.testing.assert_allclose(value.numpy(), theirs[name].numpy(), rtol=2e-4,
                                           atol=2e-5, err_msg=name)  # fmt: skip
        with torch.no_grad():
            p = torch.softmax(net(torch.as_tensor(X[fold.test_idx])), 1).numpy()
        np.testing.assert_allclose(result.probs, p, atol=1e-5)
        epochs, probs = result.audit
        assert epochs.tolist() == [1, 2, 3]
        np.testing.assert_array_equal(probs[-1], result.probs)  # the last entry: its own
    plain = train_folds_batched("ststnet", X, y, folds, TrainConfig(**{**cfg.__dict__,
                                "ema_decay": 0.0}), seed=3, model_kwargs={"dropout": 0.0},
                                kernel=kernel)  # fmt: skip
    assert not np.allclose(plain[0].probs, got[0].probs, atol=1e-4)  # the average differs


def test_a_killed_batched_run_with_an_average_resumes_to_the_same_weights(tmp_path) -> None:
    rng = np.random.default_rng(1)
    y = np.arange(24) % 3
    X = rng.normal(0, 1, (24, 3, 28, 28)).astype(np.float32)
    subject = np.repeat(np.arange(4), 6)
    folds = [FoldSpec(np.flatnonzero(subject != s), np.flatnonzero(subject == s), s)
             for s in range(4)]  # fmt: skip
    cfg = TrainConfig(epochs=4, batch_size=8, optimizer="adam", lr=5e-3, num_classes=3,
                      ema_decay=0.8)  # fmt: skip
    full = train_folds_batched("ststnet", X, y, folds, cfg, seed=2, kernel=False)
    ckpt = tmp_path / "batched.pt"

    def die(epoch: int, epochs: int) -> None:
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_folds_batched("ststnet", X, y, folds, cfg, seed=2, checkpoint=ckpt,
                            checkpoint_seconds=0.0, on_epoch=die, kernel=False)  # fmt: skip
    assert "ema" in torch.load(ckpt, weights_only=True)
    resumed = train_folds_batched("ststnet", X, y, folds, cfg, seed=2, checkpoint=ckpt,
                                  kernel=False)  # fmt: skip
    for a, b in zip(full, resumed, strict=True):
        for name, value in a.model.state_dict().items():
            assert torch.equal(value, b.model.state_dict()[name]), name


def test_balanced_sampling_draws_every_class_equally_often() -> None:
    from merkit.nets.data import make_loader as loader_of
    from merkit.nets.fold_batched import batching_problem

    y = np.array([0] * 16 + [1] * 4 + [2] * 2)
    X = np.zeros((len(y), 3, 28, 28), np.float32)
    loader = loader_of(X, y, batch_size=11, seed=5, balanced=True)
    np.testing.assert_allclose(loader.sampler.weights.numpy(), 1 / np.bincount(y)[y])
    drawn = np.concatenate([b[1].numpy() for _ in range(300) for b in loader])
    assert len(drawn) == 300 * len(y)  # n rows a pass, drawn with replacement
    share = np.bincount(drawn, minlength=3) / len(drawn)
    np.testing.assert_allclose(share, [1 / 3] * 3, atol=0.02)  # plain shuffling: 0.73/0.18/0.09
    again = loader_of(X, y, batch_size=11, seed=5, balanced=True)
    first = np.concatenate([b[1].numpy() for b in again])
    assert first.tolist() == drawn[: len(y)].tolist()  # the seed fixes the draws
    with pytest.raises(ValueError, match="balanced sampling needs one class label per clip"):
        loader_of(X, np.zeros((len(y), 2)), balanced=True)
    cfg = TrainConfig(sampler="balanced")
    assert cfg.to_dict()["sampler"] == "balanced" and "sampler" not in TrainConfig().to_dict()
    with pytest.raises(ValueError, match=r"sampler='weighted' \(--sampler\): expected one of "
                                         r"shuffle, balanced"):  # fmt: skip
        TrainConfig(sampler="weighted")
    assert batching_problem("ststnet", n_folds=4, sampler="balanced") == (
        "balanced sampling (--sampler balanced) is per fold only"
    )


def test_a_network_with_its_own_loss_refuses_label_smoothing_before_any_step() -> None:
    class OwnLoss(nn.Linear):
        def loss(self, outputs, targets, weight=None):
            return F.cross_entropy(outputs, targets, weight=weight)

    with torch_session(0):
        net = OwnLoss(4, 2)
    before = net.weight.detach().clone()
    X, y = np.zeros((6, 4), np.float32), np.arange(6) % 2
    msg = r"label_smoothing=0.1: OwnLoss has a loss of its own; train it without label smoothing"
    with pytest.raises(ValueError, match=msg):
        fit(net, make_loader(X, y, batch_size=3), TrainConfig(epochs=1, label_smoothing=0.1))
    assert torch.equal(net.weight, before)
    with pytest.raises(ValueError, match=msg):
        compute_loss(net, net(torch.zeros(2, 4)), torch.tensor([0, 1]), None, 0.1)
