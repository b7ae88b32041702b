from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import fractional_matrix_power, null_space
from sklearn.base import clone

from merkit.adapt.kernels import kernel_matrix, median_heuristic_gamma
from merkit.adapt.subspace import (
    CorrelationAlignment,
    GeodesicFlowKernel,
    SubspaceAlignment,
    TransferComponentAnalysis,
    TransferKernelLearning,
    gfk_factors,
    pca_basis,
    tca_components,
    tkl_spectrum,
)
from tests.adapt._synth import shifted_blobs

EST = [
    TransferComponentAnalysis(n_components=5),
    SubspaceAlignment(n_components=5),
    GeodesicFlowKernel(n_components=5),
    TransferKernelLearning(),
]


@pytest.mark.parametrize("est", EST, ids=lambda e: type(e).__name__)
def test_fit_predict_clone_params(est):
    X, y, sd, yt = shifted_blobs()
    pred = clone(est).fit(X, y, sd).predict(X[sd < 0])
    assert pred.shape == (60,) and set(pred) <= {0, 1, 2}
    assert np.mean(pred == yt) >= 0.8
    p = est.get_params()
    assert clone(est).set_params(**p).get_params() == p


def test_n_components_error():
    X, y, sd, _ = shifted_blobs()
    with pytest.raises(ValueError, match="exceeds the maximum 59"):
        SubspaceAlignment(n_components=60).fit(X, y, sd)
    with pytest.raises(ValueError, match="positive int"):
        TransferComponentAnalysis(n_components=0).fit(X, y, sd)


def test_target_rows_required():
    X, y, sd, _ = shifted_blobs()
    with pytest.raises(ValueError, match="target"):
        GeodesicFlowKernel(3).fit(X[sd > 0], y[sd > 0], sd[sd > 0])


def test_tca_generalised_eigenproblem():
    X, y, sd, _ = shifted_blobs(n=20, d=6)
    K = kernel_matrix(X, kernel="rbf", gamma=median_heuristic_gamma(X))
    vals, W = tca_components(K, 20, mu=0.5)
    n = len(K)
    e = np.r_[np.full(20, 1 / 20), np.full(20, -1 / 20)]
    A = K @ (np.eye(n) - 1 / n) @ K
    B = K @ np.outer(e, e) @ K + 0.5 * np.eye(n)
    assert np.allclose(W.T @ B @ W, np.eye(n), atol=1e-8)
    assert np.allclose(A @ W[:, :3], B @ W[:, :3] * vals[:3], atol=1e-8)
    assert np.all(np.diff(vals) <= 1e-12)


def test_gfk_low_rank_equals_full_closed_form():
    rng = np.random.default_rng(3)
    Xs, Xt = rng.normal(size=(15, 9)), rng.normal(size=(12, 9)) + 0.5
    k = 3
    Ps, Pt = pca_basis(Xs, k), pca_basis(Xt, k)
    F, Mh = gfk_factors(Ps, Pt)
    G_low = F @ Mh @ Mh.T @ F.T
    # reference: Gong et al.'s formula with the explicit complement Rs
    Rs = null_space(Ps.T)
    U1, g, Vh = np.linalg.svd(Ps.T @ Pt)
    th = np.arccos(np.clip(g, -1, 1))
    U2 = -(Rs.T @ Pt @ Vh.T) / np.sin(th)
    b1 = 0.5 * (1 + np.sin(2 * th) / (2 * th))
    b2 = 0.5 * (np.cos(2 * th) - 1) / (2 * th)
    b3 = 0.5 * (1 - np.sin(2 * th) / (2 * th))
    Om = np.hstack([Ps @ U1, Rs @ U2])
    G_ref = Om @ np.block([[np.diag(b1), np.diag(b2)], [np.diag(b2), np.diag(b3)]]) @ Om.T
    assert np.allclose(G_low, G_ref, atol=1e-10)


def test_tkl_spectrum_constraints_and_fit():
    rng = np.random.default_rng(0)
    Phi, _ = np.linalg.qr(rng.normal(size=(20, 5)))
    lam_true = np.array([5.0, 3.0, 2.0, 1.0, 0.5])
    Ks = Phi @ np.diag(lam_true) @ Phi.T
    assert np.allclose(tkl_spectrum(Phi, Ks, 1.0), lam_true, atol=1e-6)
    lam = tkl_spectrum(Phi, Ks, 2.0)  # forces l_i >= 2 l_{i+1}
    assert np.all(lam[:-1] >= 2.0 * lam[1:] - 1e-9) and lam[-1] >= 0


def test_coral_low_rank_equals_explicit_matrix_power():
    X, y, sd, yt = shifted_blobs(n=30, d=40)  # d > n: rank-deficient covariances
    Xs, Xt = X[sd > 0], X[sd < 0]
    est = CorrelationAlignment(reg=0.5).fit(X, y, sd)
    Cs = np.cov(Xs, rowvar=False) + 0.5 * np.eye(40)
    Ct = np.cov(Xt, rowvar=False) + 0.5 * np.eye(40)
    ref = Xs @ fractional_matrix_power(Cs, -0.5) @ fractional_matrix_power(Ct, 0.5)
    assert np.allclose(est.source_, ref.real, atol=1e-8)
    assert np.mean(est.predict(Xt) == yt) >= 0.7
    with pytest.raises(ValueError, match="reg must be > 0"):
        CorrelationAlignment(reg=0).fit(X, y, sd)


def test_pca_basis_beyond_rank_is_finite_and_orthonormal():
    """More components than the data's rank (k > min(n, d) or k > rank): SA still runs."""
    rng = np.random.default_rng(3)
    wide = rng.normal(size=(30, 400))  # d > n: Gram path, rank 29 after centring
    B = pca_basis(wide, 30)
    assert B.shape == (400, 30) and np.isfinite(B).all()
    np.testing.assert_allclose(B.T @ B, np.eye(30), atol=1e-10)
    _, _, Vt = np.linalg.svd(wide - wide.mean(0), full_matrices=False)
    np.testing.assert_allclose(np.abs(np.sum(Vt[:5].T * B[:, :5], axis=0)), 1.0, atol=1e-10)
    assert pca_basis(rng.normal(size=(40, 6)), 20).shape == (6, 6)  # tall: at most d
    X, y, sd, yt = shifted_blobs(d=6)
    pred = SubspaceAlignment(n_components=20).fit(X, y, sample_domain=sd).predict(X[sd < 0])
    assert pred.shape == yt.shape and set(np.unique(pred)) <= {0, 1, 2}


def test_tca_reuses_the_fitted_target_rows_exactly():
    rng = np.random.default_rng(5)
    Xs, Xt = rng.normal(size=(30, 50)), rng.normal(0.5, 1.0, size=(20, 50))
    X = np.vstack([Xs, Xt])
    y = np.r_[rng.integers(0, 3, 30), -np.ones(20, dtype=int)]
    sd = np.r_[np.ones(30, dtype=int), -np.ones(20, dtype=int)]
    est = TransferComponentAnalysis(n_components=5).fit(X, y, sd)
    direct = kernel_matrix(Xt, est.X_fit_, est.kernel, est.gamma_) @ est.components_
    np.testing.assert_allclose(est.transform(Xt), direct, rtol=1e-10, atol=1e-10)
    other = Xt + 1e-3  # not the fitted rows: computed
    np.testing.assert_allclose(
        est.transform(other),
        kernel_matrix(other, est.X_fit_, est.kernel, est.gamma_) @ est.components_,
    )
