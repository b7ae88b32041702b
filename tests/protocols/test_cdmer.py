"""Tests of the CDMER task list and of the CDMER runner (synthetic domains)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.svm import SVC

from merkit import metrics as M
from merkit.adapt import METHODS, MethodSpec
from merkit.adapt.base import DomainAdaptationClassifier
from merkit.data.schema import FeatureSet
from merkit.protocols.cdmer import (
    LETTERS,
    TASKS,
    CdmerTask,
    available_tasks,
    get_task,
    resolve_tasks,
)
from merkit.protocols.runner import run_cdmer
from merkit.protocols.units import WorkUnit, cdmer_units, run_unit
from merkit.results.tables import cdmer_table
from merkit.store import ResultStore


def test_twelve_tasks_in_published_order() -> None:
    codes = [t.code for t in TASKS]
    assert codes == [
        "H->V", "V->H", "H->N", "N->H", "V->N", "N->V",
        "C->H", "H->C", "C->V", "V->C", "C->N", "N->C",
    ]  # fmt: skip
    assert [t.exp for t in TASKS] == list(range(1, 13))
    assert [t.type for t in TASKS] == ["TYPE-I"] * 6 + ["TYPE-II"] * 6
    assert TASKS[8] == CdmerTask(9, "CASME2", "SMIC_VIS", "C->V", "TYPE-II")
    assert TASKS[9].name == "Exp.10" and TASKS[9].source == "SMIC_VIS"
    assert TASKS[0].source == "SMIC_HS" and TASKS[0].target == "SMIC_VIS"
    assert str(TASKS[11]) == "Exp.12 (N->C: SMIC_NIR -> CASME2)"
    for t in TASKS:
        s, g = t.code.split("->")
        assert (LETTERS[s], LETTERS[g]) == (t.source, t.target)
    # each ordered pair once, every database a source 3 times
    assert len({(t.source, t.target) for t in TASKS}) == 12
    assert all(sum(t.source == d for t in TASKS) == 3 for d in LETTERS.values())


def test_available_tasks() -> None:
    assert [t.name for t in available_tasks(["CASME2", "SMIC_VIS"])] == ["Exp.9", "Exp.10"]
    assert [t.exp for t in available_tasks({"SMIC_HS", "SMIC_VIS", "SMIC_NIR"})] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    assert len(available_tasks(LETTERS.values())) == 12
    assert available_tasks(["CASME2"]) == []
    assert available_tasks([]) == []


def test_get_task_keys() -> None:
    t9 = TASKS[8]
    for key in (9, "Exp.9", "exp9", "EXP. 9", "C->V", "c -> v", "CASME2->SMIC_VIS", t9):
        assert get_task(key) is t9 or get_task(key) == t9
    with pytest.raises(KeyError, match="1..12"):
        get_task(13)
    with pytest.raises(KeyError, match=r"unknown CDMER task 'C->C'.*Exp\.9=C->V"):
        get_task("C->C")
    assert [t.exp for t in resolve_tasks(["V->C", 9, "Exp.10"])] == [9, 10]
    assert len(resolve_tasks(None)) == 12
    assert resolve_tasks("Exp.3") == [TASKS[2]]


# ----------------------------------------------------------------------------- runner

CLASSES = ("negative", "positive", "surprise")


def synthetic_domain(name: str, n: int, shift: float, seed: int, d: int = 6) -> FeatureSet:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.eye(3, d) * 3.0
    X = centres[y] + rng.normal(size=(n, d)) + shift
    table = pd.DataFrame(
        {
            "dataset": name,
            "subject": [f"{name}/{i % 5}" for i in range(n)],
            "clip": [f"{name.lower()}_{i:03d}" for i in range(n)],
            "label": [CLASSES[v] for v in y],
            "y": y,
        }
    )
    return FeatureSet(X, table, name=name, classes=CLASSES)


@pytest.fixture
def domains() -> dict[str, FeatureSet]:
    return {
        "CASME2": synthetic_domain("CASME2", 40, 0.0, 1),
        "SMIC_HS": synthetic_domain("SMIC_HS", 30, 0.8, 2),
        "SMIC_VIS": synthetic_domain("SMIC_VIS", 25, -0.5, 3),
    }


class Spy(DomainAdaptationClassifier):
    """Records what fit saw; predicts with a linear SVC on the source rows."""

    method_specs = (MethodSpec("spy"),)
    calls: list = []

    def __init__(self, C: float = 1.0, random_state: int | None = None) -> None:
        self.C = C
        self.random_state = random_state

    def _fit(self, Xs, ys, Xt):
        self.svc_ = SVC(kernel="linear", C=self.C).fit(Xs, ys)

    def fit(self, X, y, sample_domain=None):
        Spy.calls.append(
            {"y": np.asarray(y).copy(), "sd": np.asarray(sample_domain).copy(),
             "random_state": self.random_state, "n": len(X)}
        )  # fmt: skip
        return super().fit(X, y, sample_domain)

    def _predict(self, X):
        return self.svc_.predict(X)


def test_run_cdmer_available_tasks_and_scores(domains) -> None:
    res = run_cdmer(domains, progress=False)
    assert res["task"].tolist() == ["Exp.1", "Exp.2", "Exp.7", "Exp.8", "Exp.9", "Exp.10"]
    assert (res["protocol"] == "cdmer").all() and (res["selection"] == "none").all()
    for row in res.itertuples():
        task = get_task(row.task)
        src, tgt = domains[task.source], domains[task.target]
        assert (row.source, row.target, row.n_test) == (task.source, task.target, len(tgt))
        pred = SVC(kernel="linear", C=1.0).fit(src.X, src.y).predict(tgt.X)
        assert row.mean_f1 == pytest.approx(M.uf1(tgt.y, pred))
        assert row.uar == pytest.approx(M.uar(tgt.y, pred))
        assert row.accuracy == pytest.approx(100 * M.accuracy(tgt.y, pred))
    again = run_cdmer(domains, progress=False)
    pd.testing.assert_frame_equal(
        res.drop(columns=["created", "seconds"]), again.drop(columns=["created", "seconds"])
    )


def test_no_target_label_reaches_fit_and_seed(domains, monkeypatch) -> None:
    monkeypatch.setitem(METHODS, "spy", Spy)
    Spy.calls = []
    run_cdmer(domains, "spy", tasks=["C->V"], seed=[3, 4], progress=False)
    assert len(Spy.calls) == 2
    for call, seed in zip(Spy.calls, (3, 4), strict=True):
        assert call["n"] == 40 + 25
        assert (call["y"][40:] == -1).all() and (call["y"][:40] >= 0).all()
        assert (call["sd"][:40] == 1).all() and (call["sd"][40:] == -1).all()
        assert call["random_state"] == seed


def test_store_resume_and_grid(domains, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(METHODS, "spy", Spy)
    Spy.calls = []
    grid = [{"C": 0.01}, {"C": 1.0}]
    res = run_cdmer(domains, "spy", params=grid, tasks=[9, 10], store=tmp_path, progress=False)
    assert len(Spy.calls) == 4 and len(res) == 4
    assert res["params"].tolist() == ['{"C":0.01}'] * 2 + ['{"C":1.0}'] * 2
    store = ResultStore(tmp_path)
    assert len(store) == 4 and len(store.predictions()) == 2 * (25 + 40)
    preds = store.predictions()
    one = preds[(preds.task == "Exp.9") & (preds.params == '{"C":1.0}')]
    assert one["clip"].tolist()[:2] == ["smic_vis_000", "smic_vis_001"]
    np.testing.assert_array_equal(one["y_true"], domains["SMIC_VIS"].y)
    # resume: nothing is refitted and the same rows come back
    again = run_cdmer(domains, "spy", params=grid, tasks=[9, 10], store=tmp_path, progress=False)
    assert len(Spy.calls) == 4
    cols = ["task", "params", "mean_f1", "uar", "accuracy", "n_test"]
    pd.testing.assert_frame_equal(res[cols], again[cols], check_dtype=False)
    # one more grid point: only the new units run
    run_cdmer(domains, "spy", params=[{"C": 10.0}], tasks=[9, 10], store=tmp_path,
              progress=False)  # fmt: skip
    assert len(Spy.calls) == 6 and len(ResultStore(tmp_path)) == 6
    # resume=False recomputes and replaces (one row per key)
    run_cdmer(domains, "spy", params=grid, tasks=[9], store=tmp_path, resume=False,
              progress=False)  # fmt: skip
    assert len(Spy.calls) == 8 and len(ResultStore(tmp_path)) == 6
    table = cdmer_table(ResultStore(tmp_path).results())
    assert list(table.columns) == ["Exp.9", "Exp.10", "TYPE-II"]
    assert len(table) == 3


def test_store_keeps_progress_when_a_unit_fails(domains, monkeypatch, tmp_path) -> None:
    class Fails(Spy):
        method_specs = (MethodSpec("fails"),)

        def _fit(self, Xs, ys, Xt):
            if len(Xs) == 25:  # SMIC_VIS as source
                raise RuntimeError("solver exploded")
            super()._fit(Xs, ys, Xt)

    monkeypatch.setitem(METHODS, "fails", Fails)
    with pytest.raises(RuntimeError, match="solver exploded"):
        run_cdmer(domains, "fails", tasks=["C->V", "V->C"], store=tmp_path, progress=False)
    assert ResultStore(tmp_path).results()["task"].tolist() == ["Exp.9"]


def test_resume_never_reuses_results_of_other_features(domains, monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(METHODS, "spy", Spy)
    Spy.calls = []
    run_cdmer(domains, "spy", tasks=[9], store=tmp_path, progress=False)
    other = dict(domains)
    src = domains["CASME2"]
    other["CASME2"] = FeatureSet(src.X + 1.0, src.table, name="CASME2", classes=src.classes)
    assert other["CASME2"].fingerprint() != src.fingerprint()
    run_cdmer(other, "spy", tasks=[9], store=tmp_path, progress=False)
    assert len(Spy.calls) == 2  # refitted on the new features, not resumed
    stored = ResultStore(tmp_path).results()
    assert len(stored) == 2 and stored["data"].nunique() == 2
    run_cdmer(other, "spy", tasks=[9], store=tmp_path, progress=False)
    assert len(Spy.calls) == 2  # same features again: resumed


def test_units_and_errors(domains) -> None:
    units = cdmer_units(domains, {"svm": [{"C": 1}, {"C": 2}]}, tasks=["Exp.9"], seeds=[0, 1])
    assert len(units) == 4
    data = f"{domains['CASME2'].fingerprint()}>{domains['SMIC_VIS'].fingerprint()}"
    assert units[0] == WorkUnit(TASKS[8], "svm", '{"C":1}', 0, data=data)
    assert units[0].key == ("cdmer", "Exp.9", "svm", "none", '{"C":1}', "0", data)
    assert units[3].params == {"C": 2}
    assert str(units[0]) == 'Exp.9 C->V svm{"C":1} seed=0'
    with pytest.raises(ValueError, match=r"needs databases \['SMIC_NIR'\], which are not loaded"):
        cdmer_units(domains, tasks=["N->C"])
    with pytest.raises(ValueError, match="no CDMER task can run"):
        cdmer_units({"CASME2": domains["CASME2"]})
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        cdmer_units(domains, "nope")
    with pytest.raises(ValueError, match="has no parameter"):
        cdmer_units(domains, "svm", params={"lam": 1})
    bad = dict(domains)
    bad["SMIC_VIS"] = synthetic_domain("SMIC_VIS", 25, 0.0, 3, d=4)
    with pytest.raises(ValueError, match="CASME2 has 6 feature columns, SMIC_VIS has 4"):
        run_unit(WorkUnit(TASKS[8], "svm"), bad)
