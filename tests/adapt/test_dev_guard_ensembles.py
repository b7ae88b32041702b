"""SND's collapse guard, DEV (density ratio, control variate) and the label-free ensembles
across methods (family, mean of the top k): hand-computed cases with known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import StratifiedKFold

from merkit.adapt.criteria import (
    COLLAPSE_FRACTION,
    density_ratio,
    dev_risk,
    evaluate_points,
    guarded_snd,
    out_of_fold_predictions,
    probabilities,
    soft_neighborhood_density,
)
from merkit.adapt.registry import FAMILIES, METHODS, make_method, method_family
from merkit.adapt.selection import choose_across_methods, parse_selection, pooled_prediction
from tests.adapt._synth import shifted_blobs

# ---------------------------------------------------------------- SND with a collapse guard


def test_guarded_snd_drops_a_collapsed_point_that_plain_snd_prefers() -> None:
    collapsed_S, collapsed_pred = np.zeros((6, 3)), np.zeros(6, dtype=int)
    S = np.array([[50.0, 0, 0], [50, 0, 0], [0, 50, 0], [0, 50, 0], [0, 0, 50], [0, 0, 50]])
    pred = np.array([0, 0, 1, 1, 2, 2])
    # plain SND: identical probability vectors -> uniform over 5 neighbours -> log 5, the max
    assert soft_neighborhood_density(collapsed_S) == pytest.approx(np.log(5))
    assert soft_neighborhood_density(S) < np.log(5) - 0.5
    assert np.isnan(guarded_snd(collapsed_S, collapsed_pred, 3))
    assert guarded_snd(S, pred, 3) == soft_neighborhood_density(S)
    # the rule: class entropy >= 1/2 log 3 = 0.549; (0.8, 0.2) -> 0.500 dropped,
    # (0.5, 0.5) -> 0.693 kept (a two-class split is not a collapse)
    assert COLLAPSE_FRACTION == 0.5
    assert np.isnan(guarded_snd(np.zeros((10, 3)), np.r_[np.zeros(8), np.ones(2)], 3))
    assert guarded_snd(np.zeros((10, 3)), np.r_[np.zeros(5), np.ones(5)], 3) == pytest.approx(
        np.log(9)
    )
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        guarded_snd(S, pred, 1)
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        guarded_snd(S, pred, 3, fraction=1.5)


def test_choice_by_guarded_snd_skips_the_collapsed_point() -> None:
    collapsed_S, good_S = np.zeros((6, 3)), np.eye(3)[[0, 0, 1, 1, 2, 2]] * 50
    collapsed, good = np.zeros(6, dtype=int), np.array([0, 0, 1, 1, 2, 2])
    rows = pd.DataFrame({
        "method": ["tca", "svm"], "params": ['{"n_components":2}', "{}"],
        "y_pred": [json.dumps(collapsed.tolist()), json.dumps(good.tolist())],
        "snd": [soft_neighborhood_density(collapsed_S), soft_neighborhood_density(good_S)],
        "snd_guarded": [guarded_snd(collapsed_S, collapsed, 3), guarded_snd(good_S, good, 3)],
    })  # fmt: skip
    got = choose_across_methods(rows, ["snd", "snd_guarded"], good).set_index("selection")
    assert got.loc["snd", "method"] == "tca" and got.loc["snd", "mean_f1"] == pytest.approx(1 / 6)
    assert got.loc["snd_guarded", "method"] == "svm" and got.loc["snd_guarded", "mean_f1"] == 1.0


def test_evaluate_points_guards_snd_and_returns_probabilities() -> None:
    X, y, sd, _ = shifted_blobs(0, n=30, d=4, shift=0.3)
    Xs, Xt, ys = X[sd > 0], X[sd < 0], y[sd > 0]
    (p,) = evaluate_points(make_method("svm"), [{}], Xs, ys, Xt, [["snd", "snd_guarded"]])
    S = make_method("svm").fit(X, y, sd).decision_function(Xt)
    np.testing.assert_allclose(p.probabilities, probabilities(S))
    assert (
        p.values["snd_guarded"] == p.values["snd"] == pytest.approx(soft_neighborhood_density(S))
    )  # not collapsed here: the guard keeps the value
    (q,) = evaluate_points(make_method("svm"), [{}], Xs, ys, Xt, [["class_entropy"]],
                           predictions=[np.zeros(30, dtype=int)])  # fmt: skip
    assert q.probabilities is None and q.values == {"class_entropy": 0.0}


# ---------------------------------------------------------------- DEV


def test_dev_risk_control_variate_by_hand() -> None:
    loss = np.array([1.0, 0.0, 0.0, 1.0])
    # w = (1, 2, 1, 2): L = (1, 0, 0, 2), mean 0.75; Var(w) = 1/3, Cov(L, w) = 1/6 ->
    # beta = 1/2; risk = 0.75 - 1/2 * (1.5 - 1) = 0.5
    assert dev_risk(loss, np.array([1.0, 2.0, 1.0, 2.0])) == pytest.approx(0.5)
    # constant weights: no control variate, the weighted mean
    assert dev_risk(loss, np.full(4, 2.0)) == pytest.approx(1.0)
    # weights of mean 1: the correction vanishes whatever beta is
    assert dev_risk(np.array([1.0, 0, 1, 0]), np.array([0.5, 1.5, 1.0, 1.0])) == 0.375
    with pytest.raises(ValueError, match="two equal 1-D arrays"):
        dev_risk(loss, np.ones(3))


def test_density_ratio_identical_and_shifted_domains() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5))
    np.testing.assert_allclose(density_ratio(X, X), 1.0, atol=1e-6)
    xs = np.linspace(-2, 2, 25)[:, None]
    xt = xs + 2.0
    w = density_ratio(xs, xt)
    # the target lies 2 to the right: log w is linear and increasing in x (logistic
    # regression), 1 at the middle x = 1 of the pooled rows (symmetry), < 0.05 at x = -2
    np.testing.assert_allclose(np.diff(np.log(w)), np.diff(np.log(w))[0], rtol=1e-6)
    assert np.diff(np.log(w))[0] > 0 and w[18] == pytest.approx(1.0, abs=1e-6)
    assert w[0] < 0.05 and w[-1] > 2.5
    with pytest.raises(ValueError, match="needs source and target rows, got 25 and 0"):
        density_ratio(xs, xt[:0])
    with pytest.raises(ValueError, match="source width"):
        density_ratio(xs, X)


def test_dev_on_identical_domains_is_minus_the_cross_validated_error() -> None:
    X, _, sd, _ = shifted_blobs(1, n=36, d=4, shift=0.0)
    Xs, ys = X[sd > 0], np.arange(36) % 3
    ys[:6] = (ys[:6] + 1) % 3  # some label noise: a non-zero error
    points = [{"C": 0.001}, {"C": 1.0}]
    est = make_method("svm")
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    oof = out_of_fold_predictions(est, points, (Xs, ys, Xs), folds)
    got = [p.values["dev"] for p in evaluate_points(est, points, Xs, ys, Xs, [["dev"]] * 2,
                                                    n_folds=3, seed=0)]  # fmt: skip
    want = [-float(np.mean(p != ys)) for p in oof]
    assert got == pytest.approx(want, abs=1e-6) and len(set(np.round(want, 6))) == 2
    # with iwcv in the same call the folds are shared: the same numbers
    both = evaluate_points(est, points, Xs, ys, Xs, [["iwcv", "dev"]] * 2, n_folds=3, seed=0)
    assert [b.values["dev"] for b in both] == pytest.approx(got, abs=1e-12)
    with pytest.raises(ValueError, match=r"dev needs >= 2 source rows per class"):
        evaluate_points(est, points, Xs[:4], np.array([0, 1, 1, 2]), Xs, [["dev"]] * 2,
                        n_folds=3)  # fmt: skip


# ---------------------------------------------------------------- ensembles


def test_families_cover_the_registry_once() -> None:
    members = [m for ms in FAMILIES.values() for m in ms]
    assert sorted(members) == sorted(METHODS) and len(members) == len(set(members))
    assert method_family("KLIEP") == "reweighting" and method_family("drfs_t") == "regenerator"
    assert method_family("mine") == "mine"


def test_parse_selection() -> None:
    assert parse_selection("oracle") == ("oracle", "", None)
    assert parse_selection("snd_guarded") == ("criterion", "snd_guarded", None)
    assert parse_selection("family:reverse") == ("family", "reverse", None)
    assert parse_selection("mean:dev:5") == ("mean", "dev", 5)
    for bad, msg in (("mean:dev", "mean:<criterion>:<k>"), ("mean:dev:0", "k >= 1"),
                     ("avg:dev", "unknown ensemble 'avg'"), ("vote:", "empty part"),
                     ("vote:a:b", "'vote:<criterion>'")):  # fmt: skip
        with pytest.raises(ValueError, match=msg):
            parse_selection(bad)


def test_pooled_prediction_by_hand() -> None:
    a = np.array([[0.6, 0.4], [0.2, 0.8], [0.5, 0.5]])
    b = np.array([[0.3, 0.7], [0.5, 0.5], [0.5, 0.5]])
    # means (0.45, 0.55), (0.35, 0.65), (0.5, 0.5): a tie goes to the smallest label
    assert pooled_prediction([a, b]).tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="shapes"):
        pooled_prediction([a, b[:2]])
    with pytest.raises(ValueError, match="no probability matrices"):
        pooled_prediction([])


def _family_rows() -> pd.DataFrame:
    """Four reweighting methods predicting [1, 1, 0], TCA with probabilities, STM."""
    tca_prob = [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]]
    return pd.DataFrame({
        "method": ["svm", "kmm", "kliep", "ulsif", "tca", "tca", "stm"],
        "params": ["{}", "{}", "{}", '{"weighting__lam":1.0}', '{"n_components":2}',
                   '{"n_components":5}', '{"lam":1.0}'],
        "y_pred": ["[1,1,0]"] * 4 + ["[0,1,1]", "[1,1,1]", "[0,0,1]"],
        "y_prob": ["", "", "", "", json.dumps(tca_prob), "", ""],
        "c": [0.1, 0.2, 0.3, 0.4, 0.35, 0.05, 0.0],
    })  # fmt: skip


def test_family_and_top_k_ensembles_by_hand() -> None:
    yt = np.array([0, 1, 1])
    got = choose_across_methods(_family_rows(), ["c"], yt, top_k=(2, 6)).set_index("selection")
    assert list(got.index) == ["oracle", "c", "vote:c", "family:c", "mean:c:2", "mean:c:6",
                               "agreement", "vote:agreement", "family:agreement",
                               "mean:agreement:2", "mean:agreement:6"]  # fmt: skip
    # vote of 6 methods' best points: the four reweighting methods outvote -> [1, 1, 0]
    assert got.loc["vote:c", "mean_f1"] == pytest.approx(0.25)
    # family: ulsif one-hot, tca probabilities, stm one-hot; class-0 totals 1.9, 1.4, 1.3
    # against class 1 1.1, 1.6, 1.7 -> [0, 1, 1] = yt
    assert got.loc["family:c", "method"] == "ulsif+tca+stm"
    assert json.loads(got.loc["family:c", "params"]) == {
        "ulsif": {"weighting__lam": 1.0},
        "tca": {"n_components": 2},
        "stm": {"lam": 1.0},
    }
    assert got.loc["family:c", "mean_f1"] == 1.0
    # top 2 by c: ulsif (0.4) and tca (0.35): means (.45,.55) (.2,.8) (.65,.35) -> [1, 1, 0]
    assert got.loc["mean:c:2", "method"] == "ulsif+tca"
    assert got.loc["mean:c:2", "mean_f1"] == pytest.approx(0.25)
    # top 6 holds two TCA points: params as [[method, params], ...] in rank order
    assert json.loads(got.loc["mean:c:6", "params"])[:2] == [
        ["ulsif", {"weighting__lam": 1.0}],
        ["tca", {"n_components": 2}],
    ]
    assert got.loc["mean:c:6", "method"] == "ulsif+tca+kliep+kmm+svm+tca"
    # without y_prob the TCA point counts one-hot: family -> totals (2, 1), (1, 2), (1, 2)
    one_hot = choose_across_methods(_family_rows().drop(columns="y_prob"), ["c"], yt)
    assert one_hot.set_index("selection").loc["family:c", "mean_f1"] == 1.0
    with pytest.raises(ValueError, match="top_k values must be >= 1"):
        choose_across_methods(_family_rows(), ["c"], yt, top_k=(0,))


def test_ensembles_never_read_the_target_labels() -> None:
    yt = np.array([0, 1, 1])
    a = choose_across_methods(_family_rows(), ["c"], yt)
    b = choose_across_methods(_family_rows(), ["c"], yt[::-1].copy())
    keep = ["selection", "method", "params", "value"]
    pd.testing.assert_frame_equal(a.loc[a.selection != "oracle", keep],
                                  b.loc[b.selection != "oracle", keep])  # fmt: skip


def test_fold_criteria_are_nan_for_a_point_a_fold_cannot_fit() -> None:
    rng = np.random.default_rng(0)
    Xs, Xt, ys = rng.normal(size=(12, 30)), rng.normal(size=(10, 30)), np.arange(12) % 3
    # GFK k = 9 fits on all 12 + 10 rows but not on a 3-fold's 8 source rows: NaN for it,
    # the other point keeps its numbers
    got = evaluate_points(make_method("gfk"), [{"n_components": 2}, {"n_components": 9}],
                          Xs, ys, Xt, [["dev", "iwcv"]] * 2, n_folds=3)  # fmt: skip
    assert got[0].values == pytest.approx({"dev": -0.486505335135891, "iwcv": 0.3916373541460709})
    assert np.isnan(got[1].values["dev"]) and np.isnan(got[1].values["iwcv"])
