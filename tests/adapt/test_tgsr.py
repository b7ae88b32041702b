from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from merkit.adapt.tgsr import TransferGroupSparseRegression, block_ids
from merkit.adapt.tgsr_dual import TGSRProblem, tgsr_dual_solve, tgsr_grid_scores, tgsr_path
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
    with pytest.raises(ValueError, match=r"not a whole number of runs of group_size=3"):
        TransferGroupSparseRegression(group_size=3).fit(X, y, sd)
    with pytest.raises(ValueError, match=r"kappa must be in 1..5"):
        TransferGroupSparseRegression(kappa=6, group_size=2).fit(X, y, sd)
    with pytest.raises(ValueError, match=r"groups must have one id per column \(10,\)"):
        TransferGroupSparseRegression().fit(X, y, sd, column_groups=np.arange(9))
    with pytest.raises(ValueError, match="in one place only"):
        TransferGroupSparseRegression(group_size=2).fit(X, y, sd, column_groups=np.arange(10))


def _primal_tgsr(Xs, Y, Xt, g, kappa, xi, tol=1e-8, max_iter=2000):
    """The paper's ALM written plainly in the d-dimensional primal."""
    Xtil = np.vstack([Xs, np.sqrt(xi) * (Xs.mean(0) - Xt.mean(0))]).T  # (d, m)
    Ltil = np.vstack([Y, np.zeros((1, Y.shape[1]))])
    d = Xtil.shape[0]
    blocks = np.unique(g)
    C, P = np.zeros((d, Y.shape[1])), np.zeros((d, Y.shape[1]))
    mu = 1e-3
    for it in range(1, max_iter + 1):
        D = np.linalg.solve(mu * np.eye(d) + 2 * Xtil @ Xtil.T, 2 * Xtil @ Ltil + P + mu * C)
        W = D - P / mu
        gn = np.array([np.linalg.norm(W[g == b]) for b in blocks])
        thr = np.sort(gn)[::-1][kappa] if kappa < len(blocks) else 0.0
        C = np.zeros_like(W)
        for b, n in zip(blocks, gn, strict=True):
            if n > thr:
                C[g == b] = (1 - thr / n) * W[g == b]
        P = P + mu * (C - D)
        if np.abs(C - D).max() < tol:
            return C, it
        mu = min(1.1 * mu, 1e15)
    return C, max_iter


@pytest.mark.parametrize("xi", [0.003, 2.0])
def test_dual_path_equals_primal_alm(xi):
    rng = np.random.default_rng(3)
    Xs, Xt = rng.random((10, 24)), rng.random((8, 24)) + 0.1
    Y = np.eye(3)[rng.integers(0, 3, 10)]
    g = np.repeat(np.arange(6), 4)[rng.permutation(24)]  # non-contiguous blocks
    kappas = [1, 3, 5, 6]
    C, it = tgsr_path(Xs, Y, Xt, g, kappas, xi)
    for i, k in enumerate(kappas):
        Cp, itp = _primal_tgsr(Xs, Y, Xt, g, k, xi)
        assert it[i] == itp
        assert np.abs(C[i] - Cp).max() < 1e-7 * np.abs(Cp).max()
        assert len({b for b in np.unique(g) if np.abs(C[i][g == b]).max() > 0}) == k
    prob = TGSRProblem.from_data(Xs, Y, Xt, g)
    S, its = tgsr_grid_scores(prob, Xt, kappas, [xi, 10 * xi])
    assert S.shape == (2, 4, 8, 3) and np.array_equal(its[0], it)
    assert np.allclose(S[0], np.einsum("ed,kdc->kec", Xt, C))


def test_dual_solve_batches_settings_and_labels():
    rng = np.random.default_rng(5)
    Xs, Xt = rng.random((9, 20)), rng.random((7, 20)) + 0.2
    Y = np.eye(3)[rng.integers(0, 3, 9)]
    g = np.repeat(np.arange(5), 4)
    prob = TGSRProblem.from_data(Xs, Y, Xt, g)
    K = prob.cross_gram(Xt)
    Y2 = np.eye(3)[rng.integers(0, 2, 9)]  # class 2 absent: an all-zero label column
    kap, xis = [1, 3, 5, 2, 4], [0.01, 0.01, 3.0, 3.0, 0.5]
    labels = np.stack([Y, Y2, Y, Y2, Y])
    S, its = tgsr_dual_solve(prob, kap, xis, labels=labels, K=K)
    assert S.shape == (5, 7, 3)
    for i in range(5):  # each setting alone (own problem, own labels) gives the same fit
        one = TGSRProblem.from_data(Xs, labels[i], Xt, g)
        Si, it_i = tgsr_dual_solve(one, [kap[i]], [xis[i]], K=K)
        assert it_i[0] == its[i] and np.allclose(Si[0], S[i], rtol=1e-9, atol=1e-12)
        C, it_p = _primal_tgsr(Xs, labels[i], Xt, g, kap[i], xis[i])
        assert it_p == its[i] and np.allclose(Xt @ C, S[i], atol=1e-7 * np.abs(S[i]).max())
    assert np.all(S[1][:, 2] == 0) and np.all(S[3][:, 2] == 0)  # zero column stays zero
    with pytest.raises(ValueError, match="labels must be"):
        tgsr_dual_solve(prob, [1], [0.1], labels=labels)


def test_decision_function_checks_its_rows() -> None:
    rng = np.random.default_rng(0)
    X = rng.random((20, 4))
    y = np.r_[np.arange(10) % 2, -np.ones(10)].astype(int)
    est = TransferGroupSparseRegression(kappa=1, group_size=2)
    with pytest.raises(NotFittedError):
        est.decision_function(X)
    est.fit(X, y, np.r_[np.ones(10), -np.ones(10)])
    assert est.decision_function(X[:3]).shape == (3, 2)
    with pytest.raises(
        ValueError,
        match="X has 5 features, but TransferGroupSparseRegression "
        "is expecting 4 features as input",
    ):
        est.decision_function(rng.random((3, 5)))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.decision_function(np.full((1, 4), np.nan))
