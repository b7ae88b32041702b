"""Tests of the published grids (declared with each method, read through the registry)
and of label-free selection (merkit.adapt.selection, merkit.adapt.criteria)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.adapt import METHODS, default_point, make_method, published_grid
from merkit.adapt.base import target_scores
from merkit.adapt.criteria import CRITERIA
from merkit.adapt.reweight import ULSIF, ImportanceWeightedSVM
from merkit.adapt.selection import evaluate_unlabelled, score_grid, score_unlabelled, select
from merkit.data.features_io import load_cdmer_dir
from tests.adapt._synth import shifted_blobs

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"


def test_grid_sizes_and_values():
    stm = published_grid("stm")
    assert len(stm) == 9 + 9 + 10 + 99 + 2 == 129
    lams = [p["lam"] for p in stm]
    assert lams[:3] == [0.001, 0.002, 0.003] and lams[-4:] == [99.0, 100.0, 1000.0, 10000.0]
    assert 0.3 in lams and 0.09 in lams and 1.0 in lams and 2.0 in lams
    tkl = published_grid("tkl")
    assert len(tkl) == 50 and tkl[-1] == {"damping": 5.0}
    for m in ("tsrg", "drfs_t", "drls"):
        g = published_grid(m)
        assert len(g) == 7 * 37
        assert {p["lam"] for p in g} == {1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1000.0}
        assert sorted({p["mu"] for p in g})[-3:] == [8.0, 9.0, 10.0]
    ul = [p["weighting__lam"] for p in published_grid("ulsif")]
    assert len(ul) == len(set(ul)) == 550 and min(ul) == 1.0 and max(ul) == 1e7
    assert 570.0 in ul and 3.6e6 in ul  # the TSRG paper's uLSIF picks
    tg = published_grid("tgsr")
    xis = sorted({p["xi"] for p in tg})
    assert len(xis) == 6 * 46 - 5 and len(tg) == 85 * 271
    assert xis[:2] == [0.001, 0.0012] and xis[-1] == 1000.0
    assert {"kappa": 85, "xi": 0.003} in tg and {"kappa": 85, "xi": 0.028} in tg
    assert published_grid("svm") == [{}]


def test_subspace_grids_and_errors():
    assert published_grid("sa", 130, 71)[-1] == {"n_components": 70}
    assert published_grid("GFK", 71, 130)[-1] == {"n_components": 70}
    assert published_grid("tca", 130, 71)[-1] == {"n_components": 200}
    g = published_grid("sa", 130, 71)
    assert g[0] == {"n_components": 1} and g[-1] == {"n_components": 70} and len(g) == 70
    assert len(published_grid("tca", 71, 130)) == 200
    with pytest.raises(ValueError, match="needs n_source and n_target"):
        published_grid("gfk")
    with pytest.raises(ValueError, match="no published grid for 'foo'"):
        published_grid("foo")
    with pytest.raises(ValueError, match="need >= 2 source and target rows"):
        published_grid("sa", 1, 71)
    g = published_grid("stm")
    g[0]["lam"] = -1  # a copy: the declaration is unchanged
    assert published_grid("stm")[0] == {"lam": 0.001}


def test_defaults_cover_the_registry_and_lie_in_the_grids():
    defaults = {m: default_point(m) for m in METHODS}
    assert defaults["stm"] == {"lam": 1.0} and defaults["tgsr"] == {"kappa": 85, "xi": 0.01}
    assert defaults["ulsif"] == {"weighting__lam": 1.0} and defaults["sa"] == {"n_components": 20}
    for m, d in defaults.items():
        assert d in published_grid(m, 130, 71), m


def test_make_method_nested_and_every_grid_end_builds():
    est = make_method("ulsif", {"weighting__lam": 570.0})
    assert isinstance(est, ImportanceWeightedSVM) and isinstance(est.weighting, ULSIF)
    assert est.weighting.lam == 570.0
    assert make_method("stm", json.dumps({"lam": 0.4})).lam == 0.4
    for m in METHODS:
        g = published_grid(m, 130, 71)
        for p in (g[0], g[-1]):
            assert make_method(m, p).get_params()  # constructible
    with pytest.raises(ValueError, match="has no parameter"):
        make_method("sa", {"lam": 1})
    with pytest.raises(ValueError, match="unknown method"):
        make_method("nope")


def _rows(values, params=None):
    params = params or [json.dumps({"lam": float(i)}) for i in range(len(values))]
    return pd.DataFrame({"params": params, "crit": values})


def test_select_max_ties_nan_and_errors():
    assert select(_rows([0.1, 0.5, 0.3]), "crit")["params"] == '{"lam": 1.0}'
    # ties: first in grid order without a default ...
    assert select(_rows([0.5, 0.2, 0.5, 0.5]), "crit").name == 0
    # ... the method's documented default when it is tied (stm default lam = 1)
    params = [json.dumps({"lam": v}) for v in (0.5, 1.0, 2.0)]
    assert select(_rows([0.7, 0.7, 0.1], params), "crit", method="stm").name == 1
    assert select(_rows([0.7, 0.1, 0.7], params), "crit", method="stm").name == 0
    assert select(_rows([0.7, 0.1, 0.7], params), "crit", default={"lam": 2.0}).name == 2
    assert select(_rows([np.nan, 0.2, 0.1]), "crit").name == 1
    with pytest.raises(ValueError, match="no finite 'crit' value"):
        select(_rows([np.nan, np.nan]), "crit")
    with pytest.raises(ValueError, match="has no column 'reverse'"):
        select(_rows([1.0]), "reverse")


@pytest.fixture(scope="module")
def blobs():
    X, y, sd, yt = shifted_blobs(seed=2, n=45, d=10, shift=0.5)
    return X[y >= 0], y[y >= 0], X[y == -1], yt


def test_criteria_on_synthetic_data(blobs):
    Xs, ys, Xt, yt = blobs
    vals, pred = evaluate_unlabelled("svm", {}, Xs, ys, Xt, CRITERIA)
    assert set(vals) == set(CRITERIA) and pred.shape == (45,)
    assert vals["reverse"] > 0.9 and vals["iwcv"] > 0.9  # easy, nearly unshifted data
    assert vals["class_entropy"] == pytest.approx(np.log(3), abs=0.02)  # balanced classes
    assert -np.log(3) < vals["entropy"] < 0
    again = score_unlabelled("svm", {}, Xs, ys, Xt, "iwcv")
    assert again == vals["iwcv"]  # deterministic
    with pytest.raises(ValueError, match="unknown criteria"):
        score_unlabelled("svm", {}, Xs, ys, Xt, "accuracy")


def test_target_scores_uses_the_classified_features(blobs):
    Xs, ys, Xt, _ = blobs
    est = make_method("sa", {"n_components": 3}).fit(
        np.vstack([Xs, Xt]), np.r_[ys, -np.ones(len(Xt), int)]
    )
    S = target_scores(est, Xt)
    np.testing.assert_allclose(S, est.svm_.decision_function(est.transform(Xt)))
    np.testing.assert_array_equal(est.classes_[S.argmax(1)], est.predict(Xt))


def test_score_grid_collapsed_predictions_get_zero_reverse(blobs):
    Xs, ys, Xt, yt = blobs
    df = score_grid("sa", [{"n_components": 1}, {"n_components": 5}], Xs, ys, Xt, yt)
    assert list(df.columns) == [
        "params",
        "entropy",
        "class_entropy",
        "reverse",
        "mean_f1",
        "accuracy",
    ]
    assert df["params"].tolist() == ['{"n_components":1}', '{"n_components":5}']
    assert (df[["class_entropy", "reverse", "mean_f1"]].to_numpy() >= 0).all()
    ys1 = np.where(ys == 2, 1, ys)  # 2 classes in the source
    vals, pred = evaluate_unlabelled("svm", {}, Xs, ys1, Xt + 100.0, ["reverse", "class_entropy"])
    if np.unique(pred).size < 2:
        assert vals == {"reverse": 0.0, "class_entropy": 0.0}
    else:
        assert 0 < vals["reverse"] <= 1


@pytest.fixture(scope="module")
def cdmer():
    if not DATA.is_dir():
        pytest.skip(f"shared CDMER features not found at {DATA}")
    fs = load_cdmer_dir(DATA)
    return fs["CASME2"], fs["SMIC_VIS"]


def test_cdmer_tgsr_v_to_c_oracle_vs_label_free_picks(cdmer):
    """Numbers of the "Label-free selection" table in docs/da-reproduction.md."""
    C, V = cdmer
    # the authors' grouping (85 runs of 177 columns); at kappa 85 every grouping agrees
    g = {"group_size": 177}
    grid = [{"kappa": 85, "xi": x, **g} for x in (0.001, 0.003, 0.01, 0.028)]
    df = score_grid("tgsr", grid, V.X, V.y, C.X, C.y)
    np.testing.assert_allclose(df["reverse"], [0.661918, 0.587557, 0.666534, 0.573502], atol=5e-6)
    np.testing.assert_allclose(df["mean_f1"], [0.600141, 0.614759, 0.630993, 0.640328], atol=5e-6)
    oracle = select(df, "mean_f1", method="tgsr")
    assert json.loads(oracle["params"]) == {"kappa": 85, "xi": 0.028, **g}  # the published point
    honest = select(df, "reverse", method="tgsr")
    assert json.loads(honest["params"]) == {"kappa": 85, "xi": 0.01, **g}
    assert honest["mean_f1"] - oracle["mean_f1"] == pytest.approx(-0.0093, abs=5e-5)
    assert json.loads(select(df, "class_entropy")["params"]) == {"kappa": 85, "xi": 0.001, **g}


def test_cdmer_sa_c_to_v_reverse_values(cdmer):
    C, V = cdmer
    vals = [
        evaluate_unlabelled("sa", {"n_components": k}, C.X, C.y, V.X, ["reverse"])[0]["reverse"]
        for k in (31, 51)
    ]
    # k = 51 is the reverse-validation pick of the full k = 1..70 grid (target F1 0.5189),
    # k = 31 the oracle pick (0.6030)
    np.testing.assert_allclose(vals, [0.612213, 0.713304], atol=5e-6)
