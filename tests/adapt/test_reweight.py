from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from merkit.adapt.kernels import kernel_matrix
from merkit.adapt.reweight import KLIEP, KMM, ULSIF, ImportanceWeightedSVM
from tests.adapt._synth import shifted_blobs


def _covariate_shift(seed=0):
    rng = np.random.default_rng(seed)
    Xs = rng.normal(0, 1, size=(80, 2))
    Xt = rng.normal(0.8, 0.6, size=(60, 2))
    return Xs, Xt


def test_ulsif_closed_form():
    Xs, Xt = _covariate_shift()
    est = ULSIF(lam=0.1).fit(Xs, Xt)
    Phi_s = kernel_matrix(Xs, Xt, "rbf", est.gamma_)
    h = kernel_matrix(Xt, Xt, "rbf", est.gamma_).mean(0)
    a = np.maximum(np.linalg.solve(Phi_s.T @ Phi_s / 80 + 0.1 * np.eye(60), h), 0)
    assert np.allclose(est.weights_, Phi_s @ a)


@pytest.mark.parametrize("est", [KMM(), KLIEP(), ULSIF(lam=0.1)], ids=lambda e: type(e).__name__)
def test_weights_favour_target_region(est):
    Xs, Xt = _covariate_shift()
    w = est.fit(Xs, Xt).weights_
    near = np.linalg.norm(Xs - 0.8, axis=1) < 0.8
    assert w.shape == (80,) and np.all(w >= 0)
    assert w[near].mean() > 2 * w[~near].mean()


def test_kmm_constraints():
    Xs, Xt = _covariate_shift()
    w = KMM(B=5.0).fit(Xs, Xt).weights_
    eps = (np.sqrt(80) - 1) / np.sqrt(80)
    assert w.max() <= 5.0 + 1e-9
    assert 80 * (1 - eps) - 1e-6 <= w.sum() <= 80 * (1 + eps) + 1e-6


def test_kliep_normalisation():
    Xs, Xt = _covariate_shift()
    est = KLIEP().fit(Xs, Xt)
    assert est.weights_.mean() == pytest.approx(1.0, rel=1e-6)


def test_iwsvm_mean_one_weights_and_errors():
    X, y, sd, yt = shifted_blobs()
    est = ImportanceWeightedSVM(weighting=ULSIF(lam=10.0)).fit(X, y, sd)
    assert est.weights_.mean() == pytest.approx(1.0)
    assert np.mean(est.predict(X[sd < 0]) == yt) >= 0.8
    assert clone(est).get_params()["weighting__lam"] == 10.0
    raw = ImportanceWeightedSVM(weighting=ULSIF(lam=10.0), normalize=False).fit(X, y, sd)
    assert np.allclose(raw.weights_, est.raw_weights_)
    with pytest.raises(ValueError, match="unknown weighting 'foo'"):
        ImportanceWeightedSVM(weighting="foo").fit(X, y, sd)
    with pytest.raises(ValueError, match="carry labels"):
        ImportanceWeightedSVM().fit(X, np.r_[y[:60], yt], sd)
