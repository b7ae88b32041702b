from __future__ import annotations

import numpy as np
import pytest

from merkit.adapt.tgsr import TransferGroupSparseRegression, block_ids, tgsr_path
from tests.adapt._synth import shifted_blobs


def test_all_blocks_is_one_ridge_step():
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(12, 20)), rng.normal(size=(9, 20))
    Y = np.eye(3)[rng.integers(0, 3, 12)]
    g = block_ids(20, group_size=5)
    C, it = tgsr_path(Xs, Y, Xt, g, [4], 0.5)
    Xtil = np.vstack([Xs, np.sqrt(0.5) * (Xs.mean(0) - Xt.mean(0))]).T
    Ltil = np.vstack([Y, np.zeros((1, 3))])
    ref = np.linalg.solve(1e-3 * np.eye(20) + 2 * Xtil @ Xtil.T, 2 * Xtil @ Ltil)
    assert it[0] == 1 and np.allclose(C[0], ref)


def test_exact_kappa_blocks_selected():
    X, y, sd, yt = shifted_blobs(n=40, d=24)
    for kappa in (2, 5):
        est = TransferGroupSparseRegression(kappa=kappa, xi=0.1, group_size=3).fit(X, y, sd)
        assert len(est.selected_blocks_) == kappa
        assert est.predict(X[sd < 0]).shape == (40,)


def test_path_matches_single_fits():
    X, y, sd, _ = shifted_blobs(n=30, d=12)
    Xs, ys, Xt = X[sd > 0], y[sd > 0], X[sd < 0]
    g = block_ids(12, group_size=3)
    C, _ = tgsr_path(Xs, np.eye(3)[ys], Xt, g, [1, 2, 3, 4], 0.01)
    for i, k in enumerate([1, 2, 3, 4]):
        one = TransferGroupSparseRegression(kappa=k, xi=0.01, group_size=3).fit(X, y, sd)
        assert np.allclose(C[i], one.coef_)


def test_errors():
    X, y, sd, _ = shifted_blobs(n=20, d=10)
    with pytest.raises(ValueError, match="not a whole number of blocks of 177"):
        TransferGroupSparseRegression().fit(X, y, sd)
    with pytest.raises(ValueError, match=r"kappa must be in 1..5"):
        TransferGroupSparseRegression(kappa=6, group_size=2).fit(X, y, sd)
    assert len(np.unique(block_ids(15045))) == 85
