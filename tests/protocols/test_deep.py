"""Protocols of the deep models: task specs, folds of every protocol, scoring, summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from merkit.metrics import per_au_f1, score_all, uf1
from merkit.protocols.deep import (
    DEEP_PROTOCOLS,
    PROTOCOLS,
    DeepProtocol,
    TaskSpec,
    folds_from_splits,
    make_task,
    resolve_specs,
    summarize,
    task_spec,
    with_training_copies,
)
from merkit.protocols.splits import Split
from merkit.store import ResultStore


def _table(dbs=("CASME2", "SMIC_HS", "SMIC_VIS"), subjects=3, clips=4, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for db in dbs:
        for s in range(subjects):
            for c in range(clips):
                rows.append({"dataset": db, "subject": f"{db}/s{s}", "clip": f"c{s}_{c}",
                             "y": (s + c) % 3, "emotion": ("a", "b", "c")[(s + c) % 3],
                             "aus": tuple(int(a) for a in rng.choice([1, 4, 12, 99], 2,
                                                                     replace=False))})  # fmt: skip
    return pd.DataFrame(rows)


def test_specs_name_databases_schemes_and_defaults():
    s = task_spec("cdmer", "C->V")
    assert (s.name, s.source, s.target, s.scheme) == ("Exp.9", "CASME2", "SMIC_VIS", "cdmer3")
    assert task_spec("loso", "CASME2-5").scheme == "casme2_5"
    assert task_spec("kfold", "SAMM-4").datasets == ("SAMM",)
    au = task_spec("au", "DFME-AU12")
    assert au.multilabel and au.aus == "au12" and au.scheme == "dfme7"
    assert PROTOCOLS == ("cde", "cdmer", "loso", "kfold", "au")
    assert len(DEEP_PROTOCOLS["cdmer"].default_tasks) == 12
    # defaults keep the tasks whose databases exist; cde keeps the present databases
    specs = resolve_specs("cdmer", available={"CASME2", "SMIC_HS", "SMIC_VIS"})
    assert [s.name for s in specs] == ["Exp.1", "Exp.2", "Exp.7", "Exp.8", "Exp.9", "Exp.10"]
    assert resolve_specs("cde", available={"SAMM", "CASME2", "DFME"})[0].datasets == (
        "CASME2", "SAMM")  # fmt: skip
    assert resolve_specs("cde", "composite", available={"SAMM"})[0].datasets == ("SAMM",)
    with pytest.raises(ValueError, match="cde has one task, 'composite'; got 'Exp.1'"):
        resolve_specs("cde", "Exp.1", available={"SAMM"})
    with pytest.raises(ValueError, match=r"cde needs at least one of \['SMIC_HS'"):
        resolve_specs("cde", available={"DFME"})
    assert [s.name for s in resolve_specs("loso", "SAMM-4, SMIC_HS-3")] == ["SAMM-4", "SMIC_HS-3"]
    with pytest.raises(ValueError, match="unknown protocol 'lofo'"):
        resolve_specs("lofo")
    with pytest.raises(ValueError, match="unknown loso task 'CASME2-7'"):
        task_spec("loso", "CASME2-7")
    with pytest.raises(ValueError, match=r"no kfold task can run: its tasks need \['DFME'\]"):
        resolve_specs("kfold", available={"CASME2"})


def test_cdmer_trains_on_source_and_tests_on_target():
    task = make_task(task_spec("cdmer", "Exp.7"), _table(("CASME2", "SMIC_HS", "SMIC_VIS")))
    assert len(task.table) == 24  # SMIC_VIS rows are not part of C->H
    (fold,) = task.folds
    assert fold.name == "CASME2->SMIC_HS" and fold.file_name == "CASME2-to-SMIC_HS"
    ds = task.table["dataset"].to_numpy()
    assert set(ds[fold.train_idx]) == {"CASME2"} and set(ds[fold.test_idx]) == {"SMIC_HS"}
    with pytest.raises(ValueError, match=r"needs clips of \['SMIC_NIR'\]"):
        make_task(task_spec("cdmer", "Exp.11"), _table())


def test_loso_and_kfold_folds_are_subject_independent_partitions():
    t = _table(("SAMM",), subjects=6, clips=5)
    loso = make_task(task_spec("loso", "SAMM-4"), t.assign(y=t["y"] % 4))
    assert [f.name for f in loso.folds] == [f"SAMM/s{i}" for i in range(6)]
    assert loso.classes == ("negative", "positive", "surprise", "others")
    kf = make_task(task_spec("kfold", "SAMM-4"), t, n_folds=3, split_seed=1)
    assert [f.name for f in kf.folds] == ["fold0", "fold1", "fold2"]
    tests = np.concatenate([f.test_idx for f in kf.folds])
    assert np.array_equal(np.sort(tests), np.arange(30))
    subj = kf.table["subject"].to_numpy()
    for f in kf.folds:
        assert not set(subj[f.train_idx]) & set(subj[f.test_idx])
        assert f.index == int(f.name[-1])
    again = make_task(task_spec("kfold", "SAMM-4"), t, n_folds=3, split_seed=1)
    for a, b in zip(kf.folds, again.folds, strict=True):
        assert np.array_equal(a.test_idx, b.test_idx)
    with pytest.raises(ValueError, match="10 folds need at least 10 subjects, the data has 6"):
        make_task(task_spec("kfold", "SAMM-4"), t)
    with pytest.raises(ValueError, match="folds must be at least 1, got 0"):
        kf.select_folds(0)
    assert [f.name for f in kf.select_folds(2)] == ["fold0", "fold1"]
    assert len(kf.select_folds(4)) == 3  # a task with fewer folds runs them all
    assert [f.name for f in kf.select_folds(["fold2"])] == ["fold2"]
    with pytest.raises(ValueError, match=r"folds \['fold9'\] are not folds"):
        kf.select_folds(["fold9"])


def _predict(task, rng):
    parts = []
    for f in task.folds:
        yt = task.y[f.test_idx]
        yp = np.where(rng.random(len(yt)) < 0.6, yt, (yt + 1) % len(task.classes))
        parts.append(pd.DataFrame({"fold": f.name, "sample": f.test_idx, "y_true": yt,
                                   "y_pred": yp}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def test_kfold_rows_pool_predictions_and_carry_fold_averages():
    t = _table(("DFME",), subjects=6, clips=5)
    task = make_task(task_spec("kfold", "DFME-7"), t, n_folds=3)
    pred = _predict(task, np.random.default_rng(3))
    (rec,) = task.score(pred, method="fr", params={"lr": 1}, seed=2, data="d")
    row, preds = rec
    assert (row["protocol"], row["task"], row["target"], row["seed"]) == ("kfold", "DFME-7",
                                                                          "DFME", 2)  # fmt: skip
    assert row["mean_f1"] == pytest.approx(uf1(pred["y_true"], pred["y_pred"], range(7)))
    per = [score_all(g["y_true"], g["y_pred"]) for _, g in pred.groupby("fold")]
    assert row["fold_mean_f1"] == pytest.approx(np.mean([p["mean_f1"] for p in per]))
    assert row["fold_accuracy_std"] == pytest.approx(np.std([p["accuracy"] for p in per]))
    assert row["folds"] == 3 and len(preds) == 30
    # the pooled score is not the fold mean on these predictions
    assert row["mean_f1"] != pytest.approx(row["fold_mean_f1"])
    dup = pd.concat([pred, pred.iloc[:1]])
    with pytest.raises(ValueError, match="a sample is predicted twice"):
        task.score(dup, method="fr")


def test_au_rows_are_per_au_binary_f1_and_summary_adds_the_mean(tmp_path):
    t = _table(("DFME",), subjects=6, clips=5, seed=4)
    task = make_task(task_spec("au", "DFME-AU12"), t, n_folds=3)
    assert task.multilabel and task.y.shape == (30, 12) and task.classes[2] == "AU4"
    present = task.y.any(axis=0)
    assert [c for c, p in zip(task.classes, present, strict=True) if p] == ["AU1", "AU4", "AU12"]
    rng = np.random.default_rng(0)
    Yp = np.where(rng.random(task.y.shape) < 0.7, task.y, 1 - task.y)
    rows = []
    for f in task.folds:
        d = {"fold": f.name, "sample": f.test_idx}
        for j, c in enumerate(task.classes):
            d[f"true_{c}"] = task.y[f.test_idx, j]
            d[f"pred_{c}"] = Yp[f.test_idx, j]
        rows.append(pd.DataFrame(d))
    records = task.score(pd.concat(rows), method="fr", seed=0, data="x")
    # AUs that occur in no clip have no row
    assert [r["task"] for r, _ in records] == ["DFME-AU12/AU1", "DFME-AU12/AU4", "DFME-AU12/AU12"]
    f1 = per_au_f1(task.y, Yp)
    for (row, _), j in zip(records, (0, 2, 8), strict=True):
        assert row["mean_f1"] == pytest.approx(f1[j])
        assert row["labels"] == "[1]"
    store = ResultStore(tmp_path)
    store.add_records(records)
    summary = summarize(store.results())
    mean = summary[summary["task"] == "DFME-AU12/mean"].iloc[0]
    assert mean["uf1"] == pytest.approx(f1[[0, 2, 8]].mean())
    assert store.recompute()["mean_f1"].to_numpy() == pytest.approx(f1[[0, 2, 8]])


def test_au_task_needs_au_labels():
    t = _table(("DFME",), subjects=4, clips=2).assign(aus=[()] * 8)
    with pytest.raises(ValueError, match="needs AU labels: no clip of"):
        make_task(task_spec("au", "DFME-AU12"), t, n_folds=2)
    with pytest.raises(ValueError, match="needs AU labels: the table has no 'aus' column"):
        make_task(task_spec("au", "DFME-AU12"), t.drop(columns="aus"), n_folds=2)


def test_cde_task_scores_composite_and_databases():
    t = _table(("CASME2", "SMIC_HS", "SAMM"), subjects=2, clips=3)
    task = make_task(resolve_specs("cde", available={"CASME2", "SMIC_HS", "SAMM"})[0], t)
    assert [f.name for f in task.select_folds(3)] == ["CASME2/s0", "SAMM/s0", "SMIC_HS/s0"]
    records = task.score(_predict(task, np.random.default_rng(1)), method="ststnet")
    assert [r["task"] for r, _ in records] == ["composite", "SMIC_HS", "CASME2", "SAMM"]
    assert records[0][0]["n_test"] == 18


def test_a_new_protocol_is_one_declaration(monkeypatch):
    """A protocol declared once (its tasks, spec builder and fold maker) is resolved, built
    and scored through task_spec / resolve_specs / make_task like the others."""

    def halves_spec(protocol: str, name: str) -> TaskSpec:
        if name != "SAMM-halves":
            raise ValueError(f"unknown {protocol} task {name!r}; known: ['SAMM-halves']")
        return TaskSpec(protocol, name, ("SAMM",), "four_class")

    def halves_folds(spec, table, n_folds, split_seed):
        subjects = sorted(table["subject"].unique())
        first = table["subject"].isin(subjects[: len(subjects) // 2]).to_numpy()
        rows = np.arange(len(table))
        return folds_from_splits(table, [Split("first", rows[~first], rows[first]),
                                         Split("second", rows[first], rows[~first])])  # fmt: skip

    halves = DeepProtocol("halves", ("SAMM-halves",), halves_spec, halves_folds)
    monkeypatch.setitem(DEEP_PROTOCOLS, "halves", halves)
    spec = task_spec("Halves", "SAMM-halves")
    assert spec == TaskSpec("halves", "SAMM-halves", ("SAMM",), "four_class")
    assert resolve_specs("halves", available={"SAMM", "CASME2"}) == [spec]
    with pytest.raises(ValueError, match=r"no halves task can run: its tasks need \['SAMM'\]"):
        resolve_specs("halves", available={"CASME2"})
    with pytest.raises(ValueError, match="unknown halves task 'SAMM-4'"):
        task_spec("halves", "SAMM-4")
    t = _table(("SAMM", "CASME2"), subjects=4, clips=2)
    task = make_task(spec, t.assign(y=t["y"] % 4))
    assert len(task.table) == 8 and set(task.table["dataset"]) == {"SAMM"}
    assert [(f.name, f.index) for f in task.folds] == [("first", 0), ("second", 1)]
    subj = task.table["subject"].to_numpy()
    assert set(subj[task.folds[0].test_idx]) == {"SAMM/s0", "SAMM/s1"}
    assert [f.name for f in task.select_folds(1)] == ["first"]
    ((row, preds),) = task.score(_predict(task, np.random.default_rng(0)), method="fr")
    assert (row["protocol"], row["task"], row["n_test"]) == ("halves", "SAMM-halves", 8)
    assert len(preds) == 8
    assert "fold_mean_f1" not in row


def test_training_copies_join_training_only_and_never_a_test_subject():
    from dataclasses import replace

    from merkit.protocols.deep import Fold

    t = _table(("SAMM",), subjects=4, clips=3)
    task = make_task(task_spec("loso", "SAMM-4"), t.assign(y=t["y"] % 4))
    n = len(task.table)
    got = with_training_copies(task, 2)
    assert len(got.table) == 3 * n and got.table["copy"].tolist() == [0] * n + [1] * n + [2] * n
    np.testing.assert_array_equal(got.y, np.tile(task.y, 3))
    subjects = got.table["subject"].to_numpy()
    for fold, base in zip(got.folds, task.folds, strict=True):
        assert (fold.name, fold.index) == (base.name, base.index)
        np.testing.assert_array_equal(fold.test_idx, base.test_idx)  # the clips, no copy
        np.testing.assert_array_equal(
            fold.train_idx, np.sort(np.concatenate([base.train_idx + c * n for c in range(3)]))
        )
        assert not set(subjects[fold.train_idx]) & set(subjects[fold.test_idx])
    # a fold that trains on a subject it tests is refused, copies included
    first = task.folds[0]
    leaky = Fold(first.name, 0, first.train_idx, np.append(first.test_idx, first.train_idx[0]))
    with pytest.raises(ValueError, match="rows are in both train and test"):
        with_training_copies(replace(task, folds=[leaky]), 1)
    other = Fold(first.name, 0, first.train_idx[1:], np.append(first.test_idx, first.train_idx[0]))
    with pytest.raises(ValueError, match="subject leakage, 1 subjects have clips in both"):
        with_training_copies(replace(task, folds=[other]), 1)
    with pytest.raises(ValueError, match="copies must be a whole number >= 1, got 0"):
        with_training_copies(task, 0)
