"""MixVal (Hu et al., NeurIPS 2023) as in the authors' released code: the probe pairs, the
ICE score and the refit that predicts mixed target rows, on hand-computable cases."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.adapt.base import DomainAdaptationClassifier
from merkit.adapt.criteria import (
    CRITERIA,
    MIXVAL_BATCH,
    MIXVAL_LAMBDA,
    evaluate_points,
    ice,
    mixval_pairs,
    mixval_scores,
)
from merkit.adapt.registry import make_method
from tests.adapt._synth import shifted_blobs


class Thresholds(DomainAdaptationClassifier):
    """Class 0 / 1 / 2 when feature 0 is below ``low`` / below ``high`` / above: a model
    whose boundaries are known, so every probe's prediction can be worked out by hand."""

    def __init__(self, low: float = 4.5, high: float = 14.5) -> None:
        self.low = low
        self.high = high

    def _fit(self, Xs, ys, Xt) -> None:
        self.fits_ = getattr(self, "fits_", 0) + 1

    def _predict(self, X):
        x = np.asarray(X)[:, 0]
        return np.where(x < self.low, 0, np.where(x < self.high, 1, 2))

    def decision_function(self, X):
        return np.eye(3)[self._predict(X)]


def test_constants_are_the_authors_defaults() -> None:
    assert (MIXVAL_LAMBDA, MIXVAL_BATCH) == (0.55, 128)
    assert {"mixval", "mixval_inter", "mixval_intra"} <= set(CRITERIA)


def test_pairs_mirror_each_batch_by_hand() -> None:
    pseudo = np.array([2, 0, 1, 0, 1])
    # intra: sorted by pseudo-label (stable) -> rows 1 3 2 4 0; one batch mirrored -> 0 4 2 3 1
    a, b = mixval_pairs(pseudo, "intra")
    assert (a.tolist(), b.tolist()) == ([2], [2])  # only the middle row meets an equal label
    # batches of 2: (1 3) (2 4) (0) -> partners 3 1 4 2 0: every pair shares its label
    a, b = mixval_pairs(pseudo, "intra", batch=2)
    assert (a.tolist(), b.tolist()) == ([1, 3, 2, 4, 0], [3, 1, 4, 2, 0])
    # inter: a seeded random order, mirrored, pairs with different labels only
    order = np.random.default_rng(7).permutation(5)
    a, b = mixval_pairs(pseudo, "inter", seed=7)
    partner = dict(zip(order.tolist(), order[::-1].tolist(), strict=True))
    want = [(i, partner[i]) for i in order.tolist() if pseudo[i] != pseudo[partner[i]]]
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == want
    assert np.all(pseudo[a] != pseudo[b])
    with pytest.raises(ValueError, match="kind must be 'inter' or 'intra'"):
        mixval_pairs(pseudo, "both")
    with pytest.raises(ValueError, match="batch must be >= 1"):
        mixval_pairs(pseudo, "intra", batch=0)


def test_ice_by_hand() -> None:
    assert ice(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2])) == 0.75
    assert np.isnan(ice(np.array([], dtype=int), np.array([], dtype=int)))


def _data():
    Xs = np.array([[0.0], [1], [10], [11], [20], [21]])
    ys = np.array([0, 0, 1, 1, 2, 2])
    Xt = np.array([[0.0], [3], [9], [12], [16], [24]])
    return Xs, ys, Xt


def test_mixval_predicts_mixed_rows_of_the_refit_by_hand() -> None:
    Xs, ys, Xt = _data()
    est = Thresholds()
    pseudo = np.array([0, 0, 1, 1, 2, 2])  # the thresholds' own target predictions
    (got,) = mixval_scores(est, [{}], Xs, ys, Xt, [pseudo], seed=3)
    x = Xt[:, 0]
    want = {}
    for kind in ("inter", "intra"):
        a, b = mixval_pairs(pseudo, kind, seed=3)
        mixed = 0.55 * x[a] + 0.45 * x[b]
        pred = np.where(mixed < 4.5, 0, np.where(mixed < 14.5, 1, 2))
        want[kind] = float((pred == pseudo[a]).mean())
    assert got["mixval_inter"] == pytest.approx(want["inter"])
    assert got["mixval_intra"] == pytest.approx(want["intra"])
    assert got["mixval"] == pytest.approx((want["inter"] + want["intra"]) / 2)
    # intra by hand: sorted order = 0..5, mirrored -> pairs (2, 3) and (3, 2), both class 1:
    # 0.55 * 9 + 0.45 * 12 = 10.35 and 0.55 * 12 + 0.45 * 9 = 10.65 -> class 1, both right
    assert got["mixval_intra"] == 1.0


def test_a_boundary_in_a_dense_region_scores_lower() -> None:
    """MixVal's premise: inter-cluster probes lie between clusters, so a boundary placed
    there keeps them on their first row's side, one cutting a cluster does not."""
    Xs, ys, Xt = _data()
    Xt = np.array([[0.0], [1], [2], [10], [11], [12], [20], [21], [22]])
    good, bad = Thresholds(5.5, 15.5), Thresholds(1.5, 15.5)  # bad cuts cluster 0
    pseudo = [np.asarray(m.fit(np.vstack([Xs, Xt]), np.r_[ys, -np.ones(9, int)])
                         .predict(Xt)) for m in (good, bad)]  # fmt: skip
    g = mixval_scores(good, [{}], Xs, ys, Xt, [pseudo[0]], seed=0)[0]
    b = mixval_scores(bad, [{}], Xs, ys, Xt, [pseudo[1]], seed=0)[0]
    assert g["mixval_inter"] > b["mixval_inter"]


def test_one_class_point_has_no_inter_pair_and_is_nan() -> None:
    Xs, ys, Xt = _data()
    (got,) = mixval_scores(Thresholds(), [{}], Xs, ys, Xt, [np.zeros(6, int)])
    assert np.isnan(got["mixval_inter"]) and np.isnan(got["mixval"])
    # intra: all six mirrored pairs share label 0; their mixes 10.8, 8.85, 10.35, 10.65,
    # 10.15, 13.2 all fall in class 1: none keeps its first row's pseudo-label
    assert got["mixval_intra"] == 0.0


def test_evaluate_points_matches_mixval_scores_and_refits_once() -> None:
    X, y, sd, yt = shifted_blobs(seed=1, n=45, d=8)
    Xs, ys, Xt = X[sd > 0], y[sd > 0], X[sd < 0]
    est = make_method("tca")
    points = [{"n_components": 2}, {"n_components": 5}]
    crit = [["mixval", "mixval_inter", "mixval_intra", "class_entropy"]] * 2
    got = evaluate_points(est, points, Xs, ys, Xt, crit, seed=4)
    direct = mixval_scores(est, points, Xs, ys, Xt, [g.predictions for g in got], seed=4)
    for g, d in zip(got, direct, strict=True):
        for c in ("mixval", "mixval_inter", "mixval_intra"):
            assert g.values[c] == pytest.approx(d[c])
            assert 0.0 <= g.values[c] <= 1.0
    # the same from stored predictions (a resumed grid): no forward fit
    again = evaluate_points(est, points, Xs, ys, Xt, [["mixval"]] * 2, seed=4,
                            predictions=[g.predictions for g in got])  # fmt: skip
    assert [a.values["mixval"] for a in again] == pytest.approx([g.values["mixval"] for g in got])
