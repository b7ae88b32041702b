"""``fit_path``: many hyper-parameter points on the same rows give the numbers of one fit
per point, whether a method runs them one by one (the default) or shares work (TGSR's
dual solver, the regenerators' kernel and eigen-basis)."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.adapt import make_method
from merkit.adapt.criteria import CRITERIA, evaluate_points
from tests.adapt._synth import shifted_blobs

#: groups of the 12 columns of the TGSR data below
GROUPS = np.repeat(np.arange(6), 2)


@pytest.fixture(scope="module")
def data():
    X, y, sd, _ = shifted_blobs(n=40, d=12, seed=3)
    return X, y, sd


def pseudo_labels(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` label vectors: random labels on the source rows (the second one without class
    2), -1 on the target rows."""
    rng = np.random.default_rng(seed)
    Y = np.tile(y, (n, 1))
    src = y >= 0
    for i in range(n):
        Y[i, src] = rng.integers(0, 2 if i == 1 else 3, src.sum())
    return Y


@pytest.mark.parametrize(
    "name, points",
    [
        ("svm", [{"C": c} for c in (0.01, 1.0, 10.0)]),
        ("sa", [{"n_components": k} for k in (2, 3)]),
        ("ulsif", [{"weighting__lam": v} for v in (1.0, 100.0)]),
        ("kliep", [{}]),
    ],
)
def test_the_default_path_equals_one_fit_per_point(data, name, points) -> None:
    X, y, sd = data
    Xt = X[sd < 0]
    fits = make_method(name).fit_path(X, y, sd, points)
    assert [f.params for f in fits] == points
    for p, f in zip(points, fits, strict=True):
        ref = make_method(name, p).fit(X, y, sd)
        np.testing.assert_array_equal(f.predictions, ref.predict(Xt))
        np.testing.assert_array_equal(f.decision_values, ref.decision_function(Xt))
        assert f.seconds > 0
    # own labels per point and other rows to predict
    Y = pseudo_labels(y, len(points))
    rows = X[:7]
    for p, f, yi in zip(points, make_method(name).fit_path(X, Y, sd, points, X_eval=rows), Y,
                        strict=True):  # fmt: skip
        ref = make_method(name, p).fit(X, yi, sd)
        np.testing.assert_array_equal(f.predictions, ref.predict(rows))
    with pytest.raises(ValueError, match="one per point"):
        make_method(name).fit_path(X, Y[:1].repeat(3, axis=0), sd, [{}, {}])


TGSR_POINTS = [{"kappa": k, "xi": x} for k in (1, 3, 6) for x in (0.001, 0.5, 50.0)] + [
    {"kappa": 2, "xi": 0.5, "group_size": 4},  # its own groups: the features' are not used
    {"kappa": 2, "tol": 1e-6},  # other ALM constants: a solve of its own
]


def _tgsr_reference(p: dict, X, y, sd):
    est = make_method("tgsr", p)
    meta = {} if "group_size" in p else {"column_groups": GROUPS}
    return est.fit(X, y, sd, **meta)


def test_tgsr_path_equals_per_point_fits(data) -> None:
    X, y, sd = data
    Xt = X[sd < 0]
    fits = make_method("tgsr").fit_path(X, y, sd, TGSR_POINTS, column_groups=GROUPS)
    assert len({f.predictions.tobytes() for f in fits}) > 3  # the points differ
    for p, f in zip(TGSR_POINTS, fits, strict=True):
        ref = _tgsr_reference(p, X, y, sd)
        np.testing.assert_array_equal(f.predictions, ref.predict(Xt))
        np.testing.assert_allclose(f.decision_values, ref.decision_function(Xt), rtol=0, atol=1e-8)
    # one label vector per point (reverse validation): each point fitted on its own labels,
    # one without class 2 (its decision values hold its two classes only)
    Y = pseudo_labels(y, len(TGSR_POINTS))
    rows = X[:9]
    fits = make_method("tgsr").fit_path(X, Y, sd, TGSR_POINTS, X_eval=rows, column_groups=GROUPS)
    assert fits[1].decision_values.shape == (9, 2) and fits[0].decision_values.shape == (9, 3)
    for p, f, yi in zip(TGSR_POINTS, fits, Y, strict=True):
        ref = _tgsr_reference(p, X, yi, sd)
        np.testing.assert_array_equal(f.predictions, ref.predict(rows))
        np.testing.assert_allclose(f.decision_values, ref.decision_function(rows), rtol=0,
                                   atol=1e-8)  # fmt: skip


def test_tgsr_batches_two_xi_values_per_solve() -> None:
    points = [{"kappa": k, "xi": x} for k in (1, 2) for x in (0.1, 0.2, 0.3)]
    points += [{"kappa": 1, "groups": None}, {"kappa": 3, "xi": 0.1, "tol": 1e-6}]
    assert make_method("tgsr").fit_path_batches(points) == [[6], [0, 3, 1, 4], [2, 5], [7]]


@pytest.mark.parametrize("name", ["tsrg", "drfs_t", "drls"])
def test_regenerators_share_the_kernel_and_basis_with_the_same_numbers(data, name) -> None:
    X, y, sd = data
    Xt = X[sd < 0]
    points = [{"lam": lam, "mu": mu} for lam in (0.1, 10.0) for mu in (0.01, 0.5)]
    est = make_method(name, max_iter=300, tol=1e-5)
    assert est.fit_path_batches(points) == [[0, 1], [2, 3]]
    for p, f in zip(points, est.fit_path(X, y, sd, points), strict=True):
        ref = make_method(name, {"max_iter": 300, "tol": 1e-5, **p}).fit(X, y, sd)
        np.testing.assert_array_equal(f.predictions, ref.predict(Xt))
        np.testing.assert_array_equal(f.decision_values, ref.decision_function(Xt))


def test_criteria_of_a_batched_path_equal_one_fit_per_point(data) -> None:
    X, y, sd = data
    Xs, ys, Xt = X[sd > 0], y[sd > 0], X[sd < 0]
    crit = [list(CRITERIA)] * len(TGSR_POINTS)
    tgsr = make_method("tgsr")
    fast = evaluate_points(tgsr, TGSR_POINTS, Xs, ys, Xt, crit, n_folds=3,
                           column_groups=GROUPS)  # fmt: skip
    slow = evaluate_points(tgsr, TGSR_POINTS, Xs, ys, Xt, crit, n_folds=3, batched=False,
                           column_groups=GROUPS)  # fmt: skip
    assert len({round(f.values["reverse"], 6) for f in fast}) > 1
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.predictions, b.predictions)
        assert a.values == pytest.approx(b.values, rel=0, abs=1e-10, nan_ok=True)
    # criteria from stored predictions: no forward fit, same numbers
    stored = evaluate_points(tgsr, TGSR_POINTS, Xs, ys, Xt, [["reverse", "iwcv"]] * 11,
                             predictions=[f.predictions for f in fast], n_folds=3,
                             column_groups=GROUPS)  # fmt: skip
    for a, b in zip(fast, stored, strict=True):
        assert b.values == {"reverse": a.values["reverse"], "iwcv": a.values["iwcv"]}
    with pytest.raises(ValueError, match="'entropy' needs the forward fit"):
        evaluate_points(tgsr, TGSR_POINTS[:1], Xs, ys, Xt, [["entropy"]],
                        predictions=[fast[0].predictions])  # fmt: skip
