"""Tests of the Selective Transfer Machine (merkit.adapt.stm)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import SVC

from merkit.adapt import METHODS, make_method
from merkit.adapt.kernels import kernel_matrix
from merkit.adapt.reweight import KMM
from merkit.adapt.stm import SelectiveTransferMachine, stm_weight_qp
from merkit.data.features_io import load_cdmer_dir
from tests.adapt._synth import shifted_blobs

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"


def _near_far(seed: int = 0):
    """Source: two clusters per class, one of them next to the target."""
    rng = np.random.default_rng(seed)
    d, n = 5, 20
    near = [rng.normal(0, 0.5, (n, d)) + c for c in (np.r_[0, 3, 0, 0, 0], np.r_[0, -3, 0, 0, 0])]
    far = [rng.normal(0, 0.5, (n, d)) + c for c in (np.r_[8, 3, 0, 0, 0], np.r_[8, -3, 0, 0, 0])]
    Xs = np.vstack([near[0], far[0], near[1], far[1]])
    ys = np.r_[np.zeros(2 * n, int), np.ones(2 * n, int)]
    is_near = np.r_[np.ones(n), np.zeros(n), np.ones(n), np.zeros(n)].astype(bool)
    Xt = np.vstack([rng.normal(0, 0.5, (n, d)) + c for c in (near[0].mean(0), near[1].mean(0))])
    return Xs, ys, Xt, is_near


def _da(Xs, ys, Xt):
    return np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), int)]


def test_weights_favour_source_rows_near_the_target():
    Xs, ys, Xt, is_near = _near_far()
    m = SelectiveTransferMachine(lam=100.0, kernel="rbf").fit(*_da(Xs, ys, Xt))
    w = m.weights_[0]
    assert m.weights_.shape == (1, len(Xs))  # 2 classes: one binary problem
    assert w[is_near].mean() > 5 * w[~is_near].mean()
    assert w[is_near].sum() / w.sum() > 0.9
    assert m.score(Xt, np.r_[np.zeros(20), np.ones(20)]) == 1.0


def test_weight_qp_constraints_and_kmm_limit():
    Xs, _, Xt, _ = _near_far(1)
    ns, nt = len(Xs), len(Xt)
    kmm = KMM(kernel="rbf", gamma=0.05).fit(Xs, Xt)
    K = kernel_matrix(Xs, kernel="rbf", gamma=0.05)
    kappa = ns / nt * kernel_matrix(Xs, Xt, "rbf", 0.05).sum(1)
    s = stm_weight_qp(K, kappa, np.zeros(ns), lam=1.0)
    eps = (np.sqrt(ns) - 1) / np.sqrt(ns)
    assert s.min() >= 0 and s.max() <= 1000
    assert ns * (1 - eps) - 1e-6 <= s.sum() <= ns * (1 + eps) + 1e-6
    # zero losses: the STM weight step is KMM
    np.testing.assert_allclose(s, kmm.weights_, atol=5e-3 * s.max())  # SLSQP tolerance
    # a large loss on one row (small lam) drives its weight to zero
    losses = np.zeros(ns)
    losses[0] = 5.0
    s2 = stm_weight_qp(K, kappa, losses, lam=0.01, s0=s)
    assert s[0] > 0.1 and s2[0] < 1e-6
    with pytest.raises(ValueError, match="lam must be a positive"):
        stm_weight_qp(K, kappa, losses, lam=0.0)
    with pytest.raises(ValueError, match="K must be"):
        stm_weight_qp(K[:3], kappa, losses, lam=1.0)


def test_objective_non_increasing_and_zero_iterations_is_ovr_svm():
    X, y, sd, yt = shifted_blobs(seed=3, n=45, d=8)
    m = SelectiveTransferMachine(lam=0.5, kernel="rbf").fit(X, y, sd)
    assert m.weights_.shape == (3, 45) and len(m.objective_) == 3
    for hist in m.objective_:
        assert np.all(np.diff(hist) <= 1e-6 * np.abs(hist[:-1]).clip(1))
    assert m.decision_function(X[y == -1]).shape == (45, 3)
    base = SelectiveTransferMachine(max_iter=0).fit(X, y, sd)
    Xs, ys, Xt = X[y >= 0], y[y >= 0], X[y == -1]
    D = np.column_stack(
        [SVC(kernel="linear", C=1.0).fit(Xs, ys == c).decision_function(Xt) for c in range(3)]
    )
    np.testing.assert_allclose(base.decision_function(Xt), D, atol=1e-6)
    np.testing.assert_array_equal(base.predict(Xt), D.argmax(1))


def test_zero_weights_decision_matches_linear_svc():
    """Guards the scikit-learn precomputed-kernel + zero sample_weight pitfall."""
    X, y, sd, _ = shifted_blobs(seed=5, n=40, d=6)
    m = SelectiveTransferMachine(lam=0.01, kernel="rbf").fit(X, y, sd)
    Xs, ys, Xt = X[y >= 0], y[y >= 0], X[y == -1]
    assert (m.weights_ < 1e-9).any()  # the selection really drops rows
    for k in range(3):
        w = m.weights_[k]
        ref = SVC(kernel="linear", C=1.0).fit(Xs, np.where(ys == k, 1, -1), sample_weight=w)
        np.testing.assert_allclose(
            m.decision_function(Xt)[:, k], ref.decision_function(Xt), atol=1e-5
        )


def test_clone_params_registry_and_errors():
    m = SelectiveTransferMachine(lam=3.0, kernel="rbf", gamma=0.2)
    c = clone(m)
    assert c.get_params() == m.get_params() and c is not m
    assert c.get_params()["lam"] == 3.0 and c.get_params()["max_iter"] == 10
    assert METHODS["stm"] is SelectiveTransferMachine
    assert make_method("stm", lam=0.4).lam == 0.4
    X, y, sd, _ = shifted_blobs(seed=1, n=30, d=5)
    with pytest.raises(ValueError, match="lam must be a positive number"):
        SelectiveTransferMachine(lam=0).fit(X, y, sd)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 0"):
        SelectiveTransferMachine(max_iter=-1).fit(X, y, sd)
    with pytest.raises(ValueError, match="pass the unlabelled target rows"):
        SelectiveTransferMachine().fit(X[y >= 0], y[y >= 0])
    with pytest.raises(ValueError, match="unknown kernel"):
        SelectiveTransferMachine(kernel="poly").fit(X, y, sd)
    fitted = SelectiveTransferMachine(max_iter=1).fit(X, y, sd)
    with pytest.raises(ValueError, match="expecting 5 features"):
        fitted.predict(np.zeros((2, 4)))


@pytest.fixture(scope="module")
def cdmer():
    if not DATA.is_dir():
        pytest.skip(f"shared CDMER features not found at {DATA}")
    fs = load_cdmer_dir(DATA)
    return fs["CASME2"], fs["SMIC_VIS"]


@pytest.mark.parametrize(
    ("task", "lam", "f1", "acc"),
    [
        ("V->C", 0.8, 0.3120, 30.77),  # oracle of the published grid (published 0.2715 / 30.00)
        ("V->C", 0.1, 0.2695, 28.46),
        ("C->V", 0.4, 0.3770, 42.25),  # oracle of lam <= 0.4 (published 0.4051 / 52.11)
    ],
)
def test_cdmer_oracle_points(cdmer, task, lam, f1, acc):
    C, V = cdmer
    S, T = (C, V) if task == "C->V" else (V, C)
    X = np.vstack([S.X, T.X])
    y = np.r_[S.y, -np.ones(len(T.y), int)]
    p = SelectiveTransferMachine(lam=lam).fit(X, y).predict(T.X)
    assert f1_score(T.y, p, average="macro") == pytest.approx(f1, abs=5e-5)
    assert 100 * accuracy_score(T.y, p) == pytest.approx(acc, abs=5e-3)
