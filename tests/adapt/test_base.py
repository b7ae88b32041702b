"""Tests of the DA estimator convention, SVMBaseline and the method registry."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import check_estimator

from merkit.adapt import METHODS, SVMBaseline, make_method
from merkit.adapt.base import (
    DomainAdaptationClassifier,
    check_da_inputs,
    split_source_target,
)


def blobs(seed: int = 0, ns: int = 60, nt: int = 40, shift: float = 0.0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    ys = rng.integers(0, 3, ns)
    yt = rng.integers(0, 3, nt)
    Xs = centres[ys] + rng.normal(size=(ns, 2))
    Xt = centres[yt] + rng.normal(size=(nt, 2)) + shift
    return Xs, ys, Xt, yt


def da_inputs(Xs, ys, Xt):
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, -np.ones(len(Xt), dtype=int)])
    sd = np.concatenate([np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)])
    return X, y, sd


def test_svm_baseline_equals_svc_on_source_rows() -> None:
    Xs, ys, Xt, yt = blobs()
    X, y, sd = da_inputs(Xs, ys, Xt)
    est = SVMBaseline().fit(X, y, sd)
    ref = SVC(kernel="linear", C=1.0).fit(Xs, ys)
    np.testing.assert_array_equal(est.predict(Xt), ref.predict(Xt))
    np.testing.assert_allclose(est.decision_function(Xt), ref.decision_function(Xt))
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    assert (est.n_source_, est.n_target_, est.n_features_in_) == (60, 40, 2)
    assert est.score(Xs, ys) > 0.8
    # target rows are ignored: fitting without them gives the same model
    np.testing.assert_array_equal(SVMBaseline().fit(Xs, ys).predict(Xt), est.predict(Xt))
    # sample_domain inferred from y = -1
    np.testing.assert_array_equal(SVMBaseline().fit(X, y).predict(Xt), est.predict(Xt))
    # several source/target domains (skada allows any positive / negative ints)
    sd2 = np.where(sd > 0, 1 + np.arange(len(sd)) % 2, -3)
    np.testing.assert_array_equal(SVMBaseline().fit(X, y, sd2).predict(Xt), est.predict(Xt))


def test_params_clone_and_kernel() -> None:
    est = SVMBaseline(C=0.5, kernel="rbf", gamma=0.1)
    assert est.get_params() == {"C": 0.5, "kernel": "rbf", "gamma": 0.1, "class_weight": None}
    c = clone(est)
    assert c is not est and c.get_params() == est.get_params()
    est.set_params(C=2.0)
    assert est.C == 2.0
    Xs, ys, Xt, _ = blobs(1)
    rbf = SVMBaseline(kernel="rbf", gamma=0.1, C=10).fit(Xs, ys)
    ref = SVC(kernel="rbf", gamma=0.1, C=10).fit(Xs, ys)
    np.testing.assert_array_equal(rbf.predict(Xt), ref.predict(Xt))
    with pytest.raises(ValueError, match="C must be a positive number"):
        SVMBaseline(C=0).fit(Xs, ys)
    with pytest.raises(ValueError, match="kernel must be one of"):
        SVMBaseline(kernel="cosine").fit(Xs, ys)


def test_input_validation_messages() -> None:
    Xs, ys, Xt, yt = blobs()
    X, y, sd = da_inputs(Xs, ys, Xt)
    with pytest.raises(ValueError, match="one label per row of X \\(100\\)"):
        SVMBaseline().fit(X, y[:-1], sd)
    with pytest.raises(ValueError, match="one entry per row of X"):
        SVMBaseline().fit(X, y, sd[:10])
    with pytest.raises(ValueError, match="no labelled source rows"):
        SVMBaseline().fit(Xt, -np.ones(len(Xt), dtype=int))
    bad = y.copy()
    bad[3] = -1
    with pytest.raises(ValueError, match=r"source rows \[3\] have label -1"):
        SVMBaseline().fit(X, bad, sd)
    leak = y.copy()
    leak[60:] = yt
    with pytest.raises(ValueError, match="target rows .* carry labels"):
        SVMBaseline().fit(X, leak, sd)
    zero = sd.copy()
    zero[5] = 0
    with pytest.raises(ValueError, match=r"sample_domain 0 in rows \[5\]"):
        SVMBaseline().fit(X, y, zero)
    nan = X.copy()
    nan[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"non-finite values \(NaN or infinity\) in rows \[7\]"):
        SVMBaseline().fit(nan, y, sd)
    with pytest.raises(ValueError, match="integer class labels"):
        SVMBaseline().fit(X, y + 0.5, sd)
    with pytest.raises(ValueError, match="at least 2 are needed"):
        SVMBaseline().fit(Xs, np.zeros(len(Xs), dtype=int))
    est = SVMBaseline().fit(X, y, sd)
    with pytest.raises(ValueError, match="X has 5 features, but SVMBaseline is expecting 2"):
        est.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="requires y to be passed"):
        SVMBaseline().fit(X, None)
    with pytest.raises(ValueError, match="encode class names first"):
        SVMBaseline().fit(Xs, np.array(["neg", "pos", "sur"])[ys])


def test_helpers() -> None:
    Xs, ys, Xt, _ = blobs(2, ns=5, nt=3)
    X, y, sd = da_inputs(Xs, ys, Xt)
    xs, yy, xt = split_source_target(X, y, sd)
    np.testing.assert_array_equal(xs, Xs)
    np.testing.assert_array_equal(yy, ys)
    np.testing.assert_array_equal(xt, Xt)
    X2, y2, sd2 = check_da_inputs(X.astype(np.float32), y.astype(float))
    assert X2.dtype == np.float64 and y2.dtype == np.int64
    np.testing.assert_array_equal(sd2, sd)


def test_requires_target_and_abstract_methods() -> None:
    class NeedsTarget(DomainAdaptationClassifier):
        requires_target = True

        def _fit(self, Xs, ys, Xt):
            self.mean_shift_ = Xt.mean(0) - Xs.mean(0)

        def _predict(self, X):
            return np.zeros(len(X), dtype=int)

    Xs, ys, Xt, _ = blobs(3)
    with pytest.raises(ValueError, match="pass the unlabelled target rows"):
        NeedsTarget().fit(Xs, ys)
    est = NeedsTarget().fit(*da_inputs(Xs, ys, Xt))
    assert est.mean_shift_.shape == (2,)

    class Incomplete(DomainAdaptationClassifier):
        pass

    with pytest.raises(NotImplementedError, match="Incomplete must implement _fit"):
        Incomplete().fit(Xs, ys)


def test_registry() -> None:
    assert METHODS["svm"] is SVMBaseline
    est = make_method("SVM", C=0.1)
    assert isinstance(est, SVMBaseline) and est.C == 0.1
    with pytest.raises(ValueError, match=r"unknown method 'tca2'; known methods: .*svm"):
        make_method("tca2")
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['lam'\].*'C', 'class_weight'"):
        make_method("svm", lam=1.0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_sklearn_estimator_checks() -> None:
    # integer class labels only: -1 is reserved for unlabelled target rows
    expected = {
        "check_classifiers_classes": "string class labels are not supported",
        # fit takes sample_weight since issue #16; LibSVM stops at tol=1e-3, so weights and
        # repeated rows agree to ~1e-4, not 1e-7 (scikit-learn lists this for SVC too)
        "check_sample_weight_equivalence_on_dense_data": "LibSVM tolerance (as SVC)",
    }
    check_estimator(SVMBaseline(), expected_failed_checks=expected)


def test_registry_names_every_benchmark_method_and_fixes_iw_svm_weighting():
    expected = {
        "svm",
        "kmm",
        "kliep",
        "ulsif",
        "tca",
        "gfk",
        "sa",
        "tkl",
        "tsrg",
        "drfs_t",
        "drls",
        "tgsr",
        "stm",
        "coral",
    }
    assert set(METHODS) == expected
    for name in expected:
        est = make_method(name)
        assert clone(est).get_params() == est.get_params()
    assert make_method("kliep").get_params()["weighting"] == "kliep"
    with pytest.raises(ValueError, match=r"method 'kmm' fixes \['weighting'\]"):
        make_method("kmm", weighting="ulsif")
    nested = make_method("ulsif", '{"weighting__lam": 100}')
    assert nested.get_params()["weighting__lam"] == 100
