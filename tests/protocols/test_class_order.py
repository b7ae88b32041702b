"""The CDMER runner's class order: scikit-learn's sorted labels or MATLAB LibSVM's order of
first appearance (the CDMER papers' tool), which decides one-vs-one vote ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.svm import SVC

from merkit.data.schema import FeatureSet
from merkit.protocols.cdmer import get_task
from merkit.protocols.runner import run_cdmer
from merkit.protocols.units import (
    cdmer_units,
    class_order_of,
    data_fingerprint,
    run_unit,
    task_data,
)
from merkit.results.tables import cdmer_scores
from merkit.store import ResultStore

from .conftest import CLASSES


def _feature_set(name: str, X: np.ndarray, y: np.ndarray) -> FeatureSet:
    table = pd.DataFrame({
        "dataset": name,
        "subject": [f"{name}/{i % 4}" for i in range(len(y))],
        "clip": [f"{name.lower()}_{i:03d}" for i in range(len(y))],
        "label": [CLASSES[v] for v in y],
        "y": y,
    })  # fmt: skip
    return FeatureSet(np.asarray(X, float), table, name=name, classes=CLASSES)


def test_task_data_recodes_both_domains_by_first_appearance_in_the_source(domains):
    task = get_task("C->V")
    plain = task_data(task, domains)
    first = task_data(task, domains, "first-appearance")
    ys = domains["CASME2"].table["y"].to_numpy()
    _, pos = np.unique(ys, return_index=True)
    order = ys[np.sort(pos)].tolist()
    assert order != [0, 1, 2]  # the fixture's source does not start in sorted order
    assert plain.classes == CLASSES
    assert first.classes == tuple(CLASSES[v] for v in order)
    assert first.ys[np.sort(pos)].tolist() == [0, 1, 2]
    # the same clips carry the same class names under either coding
    for td in (plain, first):
        assert [td.classes[v] for v in td.ys] == [CLASSES[v] for v in ys]
        assert [td.classes[v] for v in td.yt] == list(domains["SMIC_VIS"].table["label"])
    np.testing.assert_array_equal(first.Xs, plain.Xs)
    np.testing.assert_array_equal(first.Xt, plain.Xt)


def test_classes_missing_from_the_source_follow_in_their_own_order():
    rng = np.random.default_rng(0)
    src = _feature_set("CASME2", rng.normal(size=(6, 3)), np.array([2, 0, 2, 0, 0, 2]))
    tgt = _feature_set("SMIC_VIS", rng.normal(size=(4, 3)), np.array([1, 2, 0, 1]))
    td = task_data(get_task("C->V"), {"CASME2": src, "SMIC_VIS": tgt}, "first-appearance")
    assert td.classes == ("surprise", "negative", "positive")
    assert td.ys.tolist() == [0, 1, 0, 1, 1, 0]
    assert td.yt.tolist() == [2, 0, 1, 2]


def test_the_order_is_part_of_the_units_identity(domains):
    plain = cdmer_units(domains, "svm", tasks=["C->V"])
    first = cdmer_units(domains, "svm", tasks=["C->V"], class_order="first-appearance")
    assert plain[0].class_order == "sorted" and first[0].class_order == "first-appearance"
    assert first[0].data == plain[0].data + ";classes=first-appearance"
    assert first[0].data == data_fingerprint(get_task("C->V"), domains, "first-appearance")
    assert class_order_of(first[0].data) == "first-appearance"
    assert class_order_of(plain[0].data) == "sorted"
    assert plain[0].key != first[0].key
    with pytest.raises(ValueError, match=r"class order 'matlab' is unknown; use one of sorted, "
                                         r"first-appearance"):  # fmt: skip
        cdmer_units(domains, "svm", class_order="matlab")
    with pytest.raises(ValueError, match="class order 'Sorted' is unknown"):
        task_data(get_task("C->V"), domains, "Sorted")


def _ovo_votes(svc: SVC, X: np.ndarray) -> np.ndarray:
    d = svc.decision_function(X)  # "ovo" shape: pairs (0,1), (0,2), (1,2); > 0 -> first
    votes = np.zeros((len(X), 3), dtype=int)
    for k, (i, j) in enumerate([(0, 1), (0, 2), (1, 2)]):
        votes[np.arange(len(X)), np.where(d[:, k] > 0, i, j)] += 1
    return votes


@pytest.fixture(scope="module")
def tied():
    """A source whose labels start 2, 0, 1 and a target with 1-1-1 vote ties of the
    linear SVM (C 1), and the tied rows."""
    for seed in range(50):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(24, 6))
        y = np.r_[2, 0, 1, rng.integers(0, 3, 21)]
        Xt = rng.normal(size=(300, 6))
        svc = SVC(kernel="linear", C=1.0, decision_function_shape="ovo").fit(X, y)
        tie = _ovo_votes(svc, Xt).max(1) == 1
        if tie.sum() >= 2:
            break
    assert tie.sum() >= 2
    features = {
        "CASME2": _feature_set("CASME2", X, y),
        "SMIC_VIS": _feature_set("SMIC_VIS", Xt, rng.integers(0, 3, len(Xt))),
    }
    return features, tie


def test_first_appearance_gives_a_vote_tie_to_the_first_source_class(tied):
    features, tie = tied
    named = {}
    for order in ("sorted", "first-appearance"):
        (unit,) = cdmer_units(features, "svm", tasks=["C->V"], class_order=order)
        res = run_unit(unit, features)
        named[order] = np.array([res.classes[v] for v in res.y_pred])
    # scikit-learn: the smallest label (negative); MATLAB LibSVM: the source's first class
    assert set(named["sorted"][tie]) == {"negative"}
    assert set(named["first-appearance"][tie]) == {"surprise"}
    np.testing.assert_array_equal(named["sorted"][~tie], named["first-appearance"][~tie])


def test_both_orders_are_stored_side_by_side_and_resume(tied, tmp_path):
    features, tie = tied
    store = ResultStore(tmp_path)
    a = run_cdmer(features, "svm", tasks=["C->V"], store=store, progress=False)
    b = run_cdmer(features, "svm", tasks=["C->V"], store=store, progress=False,
                  class_order="first-appearance")  # fmt: skip
    assert len(store.results()) == 2
    assert b["data"].iloc[0] == a["data"].iloc[0] + ";classes=first-appearance"
    # the tied rows are scored as the names they were given
    yt = features["SMIC_VIS"].table["y"].to_numpy()
    svc = SVC(kernel="linear", C=1.0).fit(features["CASME2"].X, features["CASME2"].table["y"])
    pred = svc.predict(features["SMIC_VIS"].X)
    assert a["accuracy"].iloc[0] == pytest.approx(100 * np.mean(pred == yt), abs=0.01)
    pred[tie] = 2
    assert b["accuracy"].iloc[0] == pytest.approx(100 * np.mean(pred == yt), abs=0.01)
    # the paper-format table keeps the two orders apart
    table = cdmer_scores(store.results())[0]
    assert table.loc["svm", "Exp.9"] == pytest.approx(a["mean_f1"].iloc[0])
    assert table.loc["svm (first-appearance)", "Exp.9"] == pytest.approx(b["mean_f1"].iloc[0])
    again = run_cdmer(features, "svm", tasks=["C->V"], store=store, progress=False,
                      class_order="first-appearance")  # fmt: skip
    assert again["accuracy"].iloc[0] == b["accuracy"].iloc[0] and len(store.results()) == 2
