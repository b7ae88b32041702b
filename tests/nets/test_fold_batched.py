"""Fold-batched training (issue #17): the same weights as training fold by fold on the same
masked mini-batches, no test-subject leak, resume, dispatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from merkit.nets import create_model
from merkit.nets.fold_batched import (
    FoldSpec,
    batching_problem,
    train_folds,
    train_folds_batched,
)
from merkit.nets.kernels import load_kernel
from merkit.nets.train import TrainConfig, fold_seed, torch_session

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
    """Each fold trained alone, module by module, on its rows of the shared batches."""
    stream = np.arange(len(X))
    batch = round(cfg.batch_size * len(folds) / (len(folds) - 1))
    gen = torch.Generator().manual_seed(fold_seed(seed, 99_991))
    orders = [stream[torch.randperm(len(stream), generator=gen).numpy()] for _ in range(cfg.epochs)]
    nets = []
    for fold in folds:
        with torch_session(fold_seed(seed, fold.index)):
            net = create_model("ststnet", num_classes=3, **kwargs)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        train = set(fold.train_idx.tolist())
        for order in orders:
            for b0 in range(0, len(order), batch):
                rows = [r for r in order[b0 : b0 + batch] if r in train]
                if not rows:
                    continue
                net.train()
                opt.zero_grad()
                F.cross_entropy(net(torch.as_tensor(X[rows])), torch.as_tensor(y[rows])).backward()
                opt.step()
        nets.append(net.eval())
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
