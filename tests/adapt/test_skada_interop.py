"""merkit's DA estimators inside skada (issue #16, item 5): pipelines, scorers, selection.

skada switches scikit-learn's metadata routing on when it is imported; the fixture below
imports it lazily and restores the previous setting afterwards, so the rest of the test
session keeps scikit-learn's default.
"""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from merkit.adapt import METHODS, make_method
from tests.adapt._synth import covariate_shift, translation_shift
from tests.adapt.test_sklearn_compat import FAST


@pytest.fixture(scope="module")
def skada():
    before = sklearn.get_config()["enable_metadata_routing"]
    mod = pytest.importorskip("skada")
    sklearn.set_config(enable_metadata_routing=True)  # as importing skada does
    yield mod
    sklearn.set_config(enable_metadata_routing=before)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_make_da_pipeline_fits_every_method_without_set_request(skada, name) -> None:
    X, y, sd, yt = translation_shift(seed=2, n=30, d=10)
    pipe = skada.make_da_pipeline(StandardScaler(), make_method(name, FAST.get(name, {})))
    pipe.fit(X, y, sample_domain=sd)  # raised UnsetMetadataPassedError before issue #16
    Xt = X[sd < 0]
    pred = pipe.predict(Xt, sample_domain=sd[sd < 0])
    P = pipe.predict_proba(Xt, sample_domain=sd[sd < 0])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(np.argmax(P, axis=1), pred)
    assert pipe.score(Xt, yt, sample_domain=sd[sd < 0]) == pytest.approx(np.mean(pred == yt))


@pytest.mark.parametrize("name", ["tca", "kmm", "svm"])
def test_every_skada_scorer_runs_on_a_merkit_pipeline(skada, name) -> None:
    from skada.metrics import (
        ImportanceWeightedScorer,
        MaNoScorer,
        MixValScorer,
        PredictionEntropyScorer,
        SoftNeighborhoodDensity,
    )

    X, y, sd, _ = translation_shift(seed=2, n=30, d=10)
    pipe = skada.make_da_pipeline(StandardScaler(), make_method(name, FAST.get(name, {})))
    pipe.fit(X, y, sample_domain=sd)
    for scorer in (
        PredictionEntropyScorer(),
        ImportanceWeightedScorer(),
        MixValScorer(),
        SoftNeighborhoodDensity(),
        MaNoScorer(),
    ):
        value = scorer(pipe, X, y, sample_domain=sd)
        assert np.isfinite(value), type(scorer).__name__


@pytest.mark.parametrize("scorer_name", ["PredictionEntropyScorer", "ImportanceWeightedScorer"])
def test_skada_scorers_select_a_sensible_iw_svm_c(skada, scorer_name) -> None:
    """Covariate shift, KMM-weighted SVM over C: C = 1e-4 and 1e-2 predict near chance on
    the target (0.33); both label-free scorers must pick C = 1 (0.64 target accuracy)."""
    import skada.metrics
    from skada.model_selection import SourceTargetShuffleSplit

    X, y, sd, yt = covariate_shift()
    pipe = skada.make_da_pipeline(StandardScaler(), make_method("kmm"))
    grid = {"importanceweightedsvm__C": [1e-4, 1e-2, 1.0]}
    search = GridSearchCV(
        pipe,
        grid,
        cv=SourceTargetShuffleSplit(n_splits=3, random_state=0),
        scoring=getattr(skada.metrics, scorer_name)(),
    )
    search.fit(X, y, sample_domain=sd)  # y = -1 on every target row: no target label
    assert search.best_params_ == {"importanceweightedsvm__C": 1.0}
    scores = search.cv_results_["mean_test_score"]
    assert scores[2] > max(scores[:2]) + 0.02
    acc = float(np.mean(search.predict(X[sd < 0]) == yt))
    assert acc > 0.6
