from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from merkit.adapt import kernels
from merkit.adapt.kernels import box_sum_qp, kernel_matrix, median_heuristic_gamma
from merkit.adapt.reweight import KLIEP, KMM, ULSIF, ImportanceWeightedSVM, effective_sample_size
from tests.adapt._synth import shifted_blobs


def _covariate_shift(seed=0):
    rng = np.random.default_rng(seed)
    Xs = rng.normal(0, 1, size=(80, 2))
    Xt = rng.normal(0.8, 0.6, size=(60, 2))
    return Xs, Xt


def test_ulsif_closed_form():
    Xs, Xt = _covariate_shift()
    # Kanamori et al.: Gaussian basis, alpha clipped at 0
    est = ULSIF(lam=0.1, kernel="rbf", nonnegative=True).fit(Xs, Xt)
    Phi_s = kernel_matrix(Xs, Xt, "rbf", est.gamma_)
    h = kernel_matrix(Xt, Xt, "rbf", est.gamma_).mean(0)
    a = np.maximum(np.linalg.solve(Phi_s.T @ Phi_s / 80 + 0.1 * np.eye(60), h), 0)
    assert np.allclose(est.weights_, Phi_s @ a)
    # the benchmark's variant (default): linear basis, plain closed form, negative weights
    lin = ULSIF(lam=0.5).fit(Xs, Xt)
    P = Xs @ Xt.T
    a = np.linalg.solve(P.T @ P / 80 + 0.5 * np.eye(60), (Xt @ Xt.T).mean(0))
    assert np.allclose(lin.weights_, P @ a) and (lin.weights_ < 0).sum() > 5


@pytest.mark.parametrize("est", [KMM(), KLIEP(), ULSIF(lam=0.1, kernel="rbf", nonnegative=True)],
                         ids=lambda e: type(e).__name__)  # fmt: skip
def test_weights_favour_target_region(est):
    Xs, Xt = _covariate_shift()
    w = est.fit(Xs, Xt).weights_
    near = np.linalg.norm(Xs - 0.8, axis=1) < 0.8
    assert w.shape == (80,) and np.all(w >= 0)
    assert w[near].mean() > 2 * w[~near].mean()


def test_ess_width_rule_and_kliep_cv():
    assert effective_sample_size(np.ones(7)) == pytest.approx(7.0)
    assert effective_sample_size([0.0, 3.0, 0.0]) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    Xs, Xt = rng.normal(0, 1, (60, 5)), rng.normal(1.5, 1, (40, 5))  # strong shift
    g0 = median_heuristic_gamma(np.vstack([Xs, Xt]))
    plain = KMM(min_ess=0).fit(Xs, Xt)
    assert plain.gamma_ == pytest.approx(g0) and plain.ess_ < 0.5 * 60
    kmm = KMM().fit(Xs, Xt)  # narrowed by factors of 2 until ESS >= 30
    k = np.log2(kmm.gamma_ / g0)
    assert k >= 1 and k == pytest.approx(round(k)) and kmm.ess_ >= 30
    assert KMM(min_ess=0, gamma=kmm.gamma_).fit(Xs, Xt).ess_ == pytest.approx(kmm.ess_, rel=1e-6)
    cv = KLIEP(gamma="cv").fit(Xs, Xt)
    assert len(cv.cv_scores_) == 7 and cv.gamma_ == max(cv.cv_scores_, key=cv.cv_scores_.get)
    with pytest.raises(ValueError, match="number, None or 'cv'"):
        KLIEP(gamma="median").fit(Xs, Xt)


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
    pos = est.raw_weights_ > 0
    assert (~pos).sum() > 0  # the linear closed form gives some negative weights
    assert np.all(est.weights_[~pos] == 0) and est.weights_[pos].mean() == pytest.approx(1.0)
    assert np.mean(est.predict(X[sd < 0]) == yt) >= 0.8
    assert clone(est).get_params()["weighting__lam"] == 10.0
    raw = ImportanceWeightedSVM(weighting=ULSIF(lam=10.0), normalize=False).fit(X, y, sd)
    assert np.allclose(raw.weights_, np.maximum(est.raw_weights_, 0))
    with pytest.raises(ValueError, match="unknown weighting 'foo'"):
        ImportanceWeightedSVM(weighting="foo").fit(X, y, sd)
    with pytest.raises(ValueError, match="carry labels"):
        ImportanceWeightedSVM().fit(X, np.r_[y[:60], yt], sd)


def test_box_sum_qp_exact_and_its_slsqp_fallback(monkeypatch):
    rng = np.random.default_rng(3)
    A = rng.normal(size=(40, 6))
    K = kernel_matrix(A, kernel="rbf", gamma=0.2) + 1e-6 * np.eye(40)
    q = -rng.uniform(0.5, 3.0, 40) * 4  # pulls weights up: the sum and the box bind
    eps, B = 0.2, 3.0
    x = box_sum_qp(K, q, B, eps)
    assert x.min() >= 0 and x.max() <= B + 1e-12
    assert 40 * (1 - eps) - 1e-8 <= x.sum() <= 40 * (1 + eps) + 1e-8
    assert np.isclose(x.max(), B) and np.isclose(x.sum(), 40 * (1 + eps))  # both bind

    def rejects(*args):
        raise ValueError("constraints are inconsistent, no solution")

    monkeypatch.setattr(kernels.quadprog, "solve_qp", rejects)  # quadprog fails -> SLSQP
    y = box_sum_qp(K, q, B, eps)
    f = lambda v: 0.5 * v @ K @ v + q @ v  # noqa: E731
    assert f(x) <= f(y) + 1e-9 and abs(f(x) - f(y)) < 1e-6 * abs(f(x))
    np.testing.assert_allclose(x, y, atol=1e-4)
