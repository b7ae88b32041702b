"""Soft neighbourhood density, cross-method agreement, votes and the label-free choice of
method and parameters: hand-built cases with known answers, and no target label read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from merkit.adapt.criteria import (
    CRITERIA,
    FORWARD_CRITERIA,
    agreement,
    evaluate_points,
    soft_neighborhood_density,
    vote,
)
from merkit.adapt.registry import make_method
from merkit.adapt.selection import choose_across_methods, score_grid
from tests.adapt._synth import shifted_blobs


def test_snd_on_hand_built_scores() -> None:
    # identical predictions: every row's 4 neighbours equally similar -> log(4)
    assert soft_neighborhood_density(np.zeros((5, 3))) == pytest.approx(np.log(4))
    # two tight one-hot clusters of 2: similarities (1, 0, 0) -> softmax(20, 0, 0)
    S = np.array([[50.0, 0, 0], [50, 0, 0], [0, 50, 0], [0, 50, 0]])
    q = np.exp([20.0, 0, 0]) / np.exp([20.0, 0, 0]).sum()
    assert soft_neighborhood_density(S) == pytest.approx(-(q * np.log(q)).sum(), rel=1e-6)
    # binary decision values are the positive class's, as for "entropy"
    assert soft_neighborhood_density(np.zeros(4)) == pytest.approx(np.log(3))
    assert np.isnan(soft_neighborhood_density(None))
    assert np.isnan(soft_neighborhood_density(np.zeros((2, 3))))
    assert "snd" in CRITERIA and "snd" in FORWARD_CRITERIA


def test_snd_needs_decision_values_not_predictions() -> None:
    with pytest.raises(ValueError, match=r"'snd' needs the forward fit's decision values"):
        evaluate_points(make_method("svm"), [{}], np.zeros((4, 2)), np.array([0, 1, 0, 1]),
                        np.zeros((3, 2)), [["snd"]], predictions=[np.zeros(3)])  # fmt: skip


def test_vote_and_agreement_by_hand() -> None:
    a, b, c = np.array([0, 1, 2, 0]), np.array([0, 1, 2, 1]), np.array([2, 2, 2, 2])
    # weights: method "x" has two points (1/2 each), "y" one (1): consensus [0, 1, 2, 2]
    assert vote([a, b, c], [0.5, 0.5, 1.0]).tolist() == [0, 1, 2, 2]
    assert vote([a, c]).tolist() == [0, 1, 2, 0]  # ties go to the smallest label
    got = agreement([a, b, c], ["x", "x", "y"])
    # a vs [0,1,2,2]: F1 per class 2/3, 1, 2/3; b likewise; c: class 2 only, F1 2/3
    np.testing.assert_allclose(got, [7 / 9, 7 / 9, 2 / 9])
    with pytest.raises(ValueError, match="2 weights for 3"):
        vote([a, b, c], [1, 1])


def _rows() -> pd.DataFrame:
    return pd.DataFrame({
        "method": ["svm", "tca", "tca"],
        "params": ["{}", '{"n_components":2}', '{"n_components":3}'],
        "y_pred": ["[0,1,2,2]", "[0,1,2,1]", "[2,2,2,2]"],
        "snd": [0.1, 0.5, 0.2],
        "entropy": [np.nan, np.nan, np.nan],
    })  # fmt: skip


def test_choice_across_methods_by_hand() -> None:
    yt = np.array([0, 1, 2, 2])
    got = choose_across_methods(_rows(), ["snd", "entropy"], yt).set_index("selection")
    assert list(got.index) == ["oracle", "snd", "vote:snd", "family:snd", "mean:snd:5",
                               "agreement", "vote:agreement", "family:agreement",
                               "mean:agreement:5"]  # fmt: skip
    assert (got.loc["oracle", "method"], got.loc["oracle", "mean_f1"]) == ("svm", 1.0)
    assert got.loc["snd", "method"] == "tca" and got.loc["snd", "params"] == '{"n_components":2}'
    assert got.loc["snd", "value"] == 0.5 and got.loc["snd", "mean_f1"] == pytest.approx(7 / 9)
    # vote of svm {} and tca k2: [0,1,2,2] / [0,1,2,1] -> row 3 ties, smallest label 1
    assert json.loads(got.loc["vote:snd", "params"]) == {"svm": {}, "tca": {"n_components": 2}}
    assert got.loc["vote:snd", "mean_f1"] == pytest.approx(7 / 9)
    # consensus [0,1,2,2] (tca's two points share one vote): svm agrees fully
    assert got.loc["agreement", "method"] == "svm" and got.loc["agreement", "value"] == 1.0
    # no labels: choices made, nothing scored (no oracle row)
    free = choose_across_methods(_rows(), ["snd"]).set_index("selection")
    assert "oracle" not in free.index and free["mean_f1"].isna().all()
    assert free.loc["snd", "params"] == got.loc["snd", "params"]


def test_choices_and_criteria_never_read_the_target_labels() -> None:
    X, _, sd, yt = shifted_blobs(0, n=40, d=6)
    Xs, Xt, ys = X[sd > 0], X[sd < 0], np.arange(40) % 3
    shuffled = np.random.default_rng(1).permutation(yt)
    grid = [{"n_components": k} for k in (1, 2, 4)]
    crit = ["snd", "snd_guarded", "class_entropy", "entropy", "dev", "iwcv"]
    a = score_grid("tca", grid, Xs, ys, Xt, yt, criteria=crit)
    b = score_grid("tca", grid, Xs, ys, Xt, shuffled, criteria=crit)
    pd.testing.assert_frame_equal(a[["params", *crit]], b[["params", *crit]])
    assert np.isfinite(a[["dev", "snd_guarded"]].to_numpy()).any()
    pred = [json.dumps(p.tolist()) for p in (Xt[:, 0] > 0, Xt[:, 1] > 0, Xt[:, 2] > 0)]
    prob = [json.dumps(np.column_stack([1 / (1 + np.exp(Xt[:, j])), 1 / (1 + np.exp(-Xt[:, j]))])
                       .tolist()) for j in range(3)]  # fmt: skip
    rows = a.drop(columns=["mean_f1", "accuracy"]).assign(
        method=["tca", "svm", "kmm"], y_pred=pred, y_prob=prob
    )
    ca = choose_across_methods(rows, crit, yt, top_k=(2,))
    cb = choose_across_methods(rows, crit, shuffled, top_k=(2,))
    assert {"family:dev", "mean:dev:2", "vote:snd_guarded"} <= set(ca["selection"])
    keep = ca["selection"] != "oracle"
    pd.testing.assert_frame_equal(
        ca.loc[keep, ["selection", "method", "params", "value"]],
        cb.loc[keep, ["selection", "method", "params", "value"]],
    )


def test_choice_errors() -> None:
    with pytest.raises(ValueError, match="no grid rows"):
        choose_across_methods(_rows().iloc[:0], ["snd"])
    with pytest.raises(ValueError, match="no 'reverse' column"):
        choose_across_methods(_rows(), ["reverse"])
