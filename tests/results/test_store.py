"""Tests of the on-disk results store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.results import metrics as M
from merkit.results.store import (
    PREDICTION_COLUMNS,
    RESULT_COLUMNS,
    ResultStore,
    params_to_json,
    result_key,
)


def unit(task="Exp.9", method="svm", params=None, seed=0, selection="none", shift=0, n=30):
    rng = np.random.default_rng(seed + 100 * shift)
    yt = rng.integers(0, 3, n)
    yp = np.where(rng.random(n) < 0.6, yt, rng.integers(0, 3, n))
    return dict(
        protocol="cdmer",
        task=task,
        source="CASME2",
        target="SMIC_VIS",
        method=method,
        params=params or {"C": 1.0},
        seed=seed,
        selection=selection,
        y_true=yt,
        y_pred=yp,
        clip=[f"{i + 1:04d}" for i in range(n)],
    )


def test_add_and_read_back(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "runs")
    u = unit()
    row = store.add(**u, extra={"seconds": 0.5})
    res = store.results()
    assert list(res.columns) == [*RESULT_COLUMNS, "seconds"]
    assert len(res) == 1
    r = res.iloc[0]
    assert r["params"] == '{"C":1.0}' and r["seed"] == 0 and r["n_test"] == 30
    assert r["mean_f1"] == pytest.approx(M.uf1(u["y_true"], u["y_pred"]))
    assert r["uar"] == pytest.approx(M.uar(u["y_true"], u["y_pred"]))
    assert r["accuracy"] == pytest.approx(100 * M.accuracy(u["y_true"], u["y_pred"]))
    assert row["mean_f1"] == r["mean_f1"] and r["seconds"] == 0.5
    preds = store.predictions()
    assert list(preds.columns) == list(PREDICTION_COLUMNS)
    assert len(preds) == 30
    assert preds["clip"].tolist()[:2] == ["0001", "0002"]  # ids stay strings
    np.testing.assert_array_equal(preds["y_true"], u["y_true"])
    np.testing.assert_array_equal(preds["sample"], np.arange(30))
    assert preds["y_pred"].dtype == np.int64
    assert (tmp_path / "runs" / "results.csv").is_file()
    assert sorted(os.listdir(tmp_path / "runs")) == ["predictions.csv", "results.csv"]  # no temp


def test_one_row_per_key_newer_wins(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.add(**unit(seed=0))
    store.add(**unit(seed=1))
    store.add(**unit(params={"C": 0.1}))
    store.add(**unit(task="Exp.10"))
    assert len(store) == 4
    newer = unit(seed=1, shift=7)
    store.add(**newer)  # same key as the second unit: replaces it in both files
    res = store.results()
    assert len(res) == 4
    r = res[(res.seed == 1)].iloc[0]
    assert r["mean_f1"] == pytest.approx(M.uf1(newer["y_true"], newer["y_pred"]))
    preds = store.predictions()
    assert len(preds) == 4 * 30
    np.testing.assert_array_equal(preds[preds.seed == 1]["y_pred"], newer["y_pred"])
    # params are canonical: key order and int/float spelling of the same dict
    assert params_to_json({"b": 1, "a": np.float64(0.5)}) == '{"a":0.5,"b":1}'
    assert result_key("cdmer", "Exp.9", "svm", "none", {"C": 1.0}, 0) in store
    assert result_key("cdmer", "Exp.9", "svm", "none", {"C": 2.0}, 0) not in store


def test_selected_rows_ignore_params_in_key(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.add(**unit(selection="oracle", params={"k": 5}))
    store.add(**unit(selection="oracle", params={"k": 9}, shift=3))
    res = store.results()
    assert len(res) == 1 and json.loads(res.iloc[0]["params"]) == {"k": 9}
    assert len(store.predictions()) == 30
    store.add(**unit(selection="ds-kmm", params={"k": 5}))
    assert len(store) == 2


def test_batch_and_recompute(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    recs = [ResultStore.make_record(**unit(task=t, seed=s)) for t in ("Exp.9", "Exp.10")
            for s in range(3)]  # fmt: skip
    recs.append(ResultStore.make_record(**unit(task="Exp.9", seed=0, shift=5)))  # dup key
    store.add_records(recs)
    res = store.results()
    assert len(res) == 6
    last = unit(task="Exp.9", seed=0, shift=5)
    r = res[(res.task == "Exp.9") & (res.seed == 0)].iloc[0]
    assert r["mean_f1"] == pytest.approx(M.uf1(last["y_true"], last["y_pred"]))
    # metrics are recomputable from the stored predictions
    again = store.recompute()
    merged = res.merge(again, on=["protocol", "task", "method", "selection", "params", "seed"])
    assert len(merged) == 6
    for m in ("mean_f1", "uar", "accuracy", "n_test"):
        np.testing.assert_allclose(merged[f"{m}_x"], merged[f"{m}_y"], rtol=1e-12)


def test_labels_are_stored_and_used(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    yt = np.array([0, 0, 2, 2])
    yp = np.array([0, 1, 2, 2])
    store.add(protocol="p", task="t", method="m", y_true=yt, y_pred=yp, labels=[0, 1, 2])
    r = store.results().iloc[0]
    assert r["labels"] == "[0, 1, 2]"
    assert r["mean_f1"] == pytest.approx(M.uf1(yt, yp, labels=[0, 1, 2]))
    assert store.recompute().iloc[0]["mean_f1"] == pytest.approx(r["mean_f1"])


def test_fold_column_and_errors(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    u = unit(n=4)
    store.add(**{**u, "task": "loso"}, fold=["s1", "s1", "s2", "s2"], sample=[9, 8, 7, 6])
    p = store.predictions()
    assert p["fold"].tolist() == ["s1", "s1", "s2", "s2"]
    assert p["sample"].tolist() == [9, 8, 7, 6]
    with pytest.raises(ValueError, match="fold needs 4 entries"):
        store.add(**u, fold=["s1"])
    with pytest.raises(ValueError, match="y_true has 4 labels, y_pred 3"):
        store.add(**{**u, "y_pred": u["y_pred"][:3]})
    with pytest.raises(ValueError, match="clashes"):
        store.add(**u, extra={"uar": 1})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        store.add(**{**u, "params": {"f": object()}})
    (tmp_path / "other").mkdir()
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other" / "results.csv", index=False)
    with pytest.raises(ValueError, match="not a merkit results file"):
        ResultStore(tmp_path / "other").results()


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path, monkeypatch) -> None:
    store = ResultStore(tmp_path)
    store.add(**unit())
    before = (tmp_path / "results.csv").read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.add(**unit(seed=5))
    assert (tmp_path / "results.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv", "results.csv"]


def test_empty_store(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "new")
    assert store.results().empty and store.predictions().empty
    assert len(store) == 0 and store.keys() == set()
    assert store.recompute().empty
