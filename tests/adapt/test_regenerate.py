from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from merkit.adapt.regenerate import (
    DomainRegenerationLabelSpace,
    DomainRegenerationTarget,
    TargetSampleRegenerator,
    regenerator_ialm,
)
from tests.adapt._synth import shifted_blobs


@pytest.mark.parametrize("cls", [TargetSampleRegenerator, DomainRegenerationTarget,
                                 DomainRegenerationLabelSpace], ids=lambda c: c.__name__)
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
    nnz = [np.count_nonzero(regenerator_ialm(K[:, :15], K[:, 15:], Xs, 1.0, m)[0])
           for m in (1e-3, 1e-1, 10.0)]
    assert nnz[0] > nnz[1] > nnz[2]


def test_negative_parameters_rejected():
    X, y, sd, _ = shifted_blobs(n=20, d=5)
    with pytest.raises(ValueError, match="lam and mu must be >= 0"):
        TargetSampleRegenerator(lam=-1).fit(X, y, sd)
