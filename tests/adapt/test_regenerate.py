from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from merkit.adapt.regenerate import (
    DomainRegenerationLabelSpace,
    DomainRegenerationTarget,
    TargetSampleRegenerator,
    regenerator_basis,
    regenerator_ialm,
)
from tests.adapt._synth import shifted_blobs


@pytest.mark.parametrize(
    "cls",
    [TargetSampleRegenerator, DomainRegenerationTarget, DomainRegenerationLabelSpace],
    ids=lambda c: c.__name__,
)
def test_fit_predict(cls):
    X, y, sd, yt = shifted_blobs(n=40, d=10)
    est = clone(cls(lam=1.0, mu=0.01)).fit(X, y, sd)
    pred = est.predict(X[sd < 0])
    assert pred.shape == (40,) and est.n_iter_ < 10000
    assert np.mean(pred == yt) >= 0.7
    assert est.P_.shape[0] == 80


def test_ialm_l1_sparsity_grows_with_mu_and_fits_without_it():
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(15, 8)), rng.normal(size=(10, 8)) + 1
    X = np.vstack([Xs, Xt])
    K = X @ X.T
    P0, _ = regenerator_ialm(K[:, :15], K[:, 15:], Xs, 0.0, 0.0)
    # the authors' ALM (kappa grows 1.1x per step) stops near, not at, the least-squares
    # optimum; it must still explain most of the source
    res = np.linalg.norm(P0.T @ K[:, :15] - Xs.T) / np.linalg.norm(Xs)
    assert res < 0.5
    nnz = [
        np.count_nonzero(regenerator_ialm(K[:, :15], K[:, 15:], Xs, 1.0, m)[0])
        for m in (1e-3, 1e-1, 10.0)
    ]
    assert nnz[0] > nnz[1] > nnz[2]


def test_negative_parameters_rejected():
    X, y, sd, _ = shifted_blobs(n=20, d=5)
    with pytest.raises(ValueError, match="lam and mu must be >= 0"):
        TargetSampleRegenerator(lam=-1).fit(X, y, sd)


def _textbook_ialm(Ks, Kt, Y, lam, mu, tol=1e-8, max_iter=10000):
    """The authors' loop written plainly (full (n, n) solve every iteration)."""
    n = Ks.shape[0]
    dk = Ks.mean(1) - Kt.mean(1)
    A = Ks @ Ks.T + lam * np.outer(dk, dk)
    P = np.ones((n, Y.shape[1]))
    T = np.ones_like(P)
    kappa = 1e-3
    for it in range(1, max_iter + 1):
        Q = np.linalg.solve(A + kappa / 2 * np.eye(n), Ks @ Y + (kappa * P + T) / 2)
        W = Q - T / kappa
        P = np.sign(W) * np.maximum(np.abs(W) - mu / kappa, 0.0)
        if np.abs(P - Q).max() < tol:
            return P, it
        T = T + kappa * (P - Q)
        kappa = min(1e15, 1.1 * kappa)
    return P, max_iter


@pytest.mark.parametrize("lam,mu", [(0.0, 0.01), (1.0, 0.1), (100.0, 0.003)])
def test_fast_ialm_equals_textbook_loop(lam, mu):
    rng = np.random.default_rng(1)
    Xs, Xt = rng.random((9, 30)), rng.random((7, 30)) + 0.2
    X = np.vstack([Xs, Xt])
    K = X @ X.T
    P0, it0 = _textbook_ialm(K[:, :9], K[:, 9:], Xs, lam, mu)
    P1, it1 = regenerator_ialm(K[:, :9], K[:, 9:], Xs, lam, mu)
    # blocks of 4 columns run ahead of each other; the stopping iteration is still global
    P2, it2 = regenerator_ialm(K[:, :9], K[:, 9:], Xs, lam, mu, block=4)
    assert it0 == it1 == it2 and it0 > 50
    assert np.abs(P1 - P0).max() < 1e-6 * np.abs(P0).max()
    assert np.array_equal(P1 != 0, P0 != 0)
    assert np.allclose(P2, P1, rtol=0, atol=1e-12)


def test_basis_is_low_rank_and_reusable():
    rng = np.random.default_rng(2)
    Xs, Xt = rng.random((6, 40)), rng.random((11, 40))
    X = np.vstack([Xs, Xt])
    K = X @ X.T
    b = regenerator_basis(K[:, :6], K[:, 6:], Xs, 1.0)
    assert b.U.shape == (17, 7) and np.allclose(b.U.T @ b.U, np.eye(7))
    dk = K[:, :6].mean(1) - K[:, 6:].mean(1)
    A = K[:, :6] @ K[:, :6].T + np.outer(dk, dk)
    assert np.allclose((b.U * b.D) @ b.U.T, A)
    Pa, ia = regenerator_ialm(K[:, :6], K[:, 6:], Xs, 1.0, 0.05, basis=b)
    Pb, ib = regenerator_ialm(K[:, :6], K[:, 6:], Xs, 1.0, 0.05)
    assert ia == ib and np.array_equal(Pa, Pb)
    with pytest.raises(ValueError, match="do not match"):
        regenerator_ialm(K[:, :6], K[:, 6:], Xs[:, :5], 1.0, 0.05, basis=b)
