"""The CDE (MEGC 2019 composite) protocol: table checks, LOSO splits, per-database scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.metrics import uar, uf1
from merkit.protocols.composite import CDE, COMPOSITE_TASK, fold_file_name

FLOWS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "megc2019_flow"


def _table() -> pd.DataFrame:
    rows = []
    for db, subs in (("CASME2", ["01", "02"]), ("SMIC_HS", ["s1", "s2"]), ("SAMM", ["006"])):
        for s in subs:
            for c in range(3):
                rows.append({"dataset": db, "subject": f"{db}/{s}", "clip": f"{s}_{c}"})
    return pd.DataFrame(rows)


def test_splits_are_loso_and_leak_free():
    t = _table()
    splits = CDE.splits(t)
    assert [s.name for s in splits] == [f"loso/{s}" for s in sorted(t["subject"].unique())]
    assert all(s.n_test == 3 and s.n_train == 12 for s in splits)
    assert CDE.folds(t)[0] == "CASME2/01"
    assert fold_file_name("SMIC_HS/s1") == "SMIC_HS_s1"


def test_select_folds_round_robin_and_errors():
    t = _table()
    assert CDE.select_folds(t, None) == CDE.folds(t)
    # one of each database first (SMIC_HS, CASME2, SAMM), returned in split order
    assert CDE.select_folds(t, 3) == ["CASME2/01", "SAMM/006", "SMIC_HS/s1"]
    assert CDE.select_folds(t, ["SAMM/006"]) == ["SAMM/006"]
    with pytest.raises(ValueError, match="folds must be in 1..5"):
        CDE.select_folds(t, 6)
    with pytest.raises(ValueError, match=r"\['SAMM/999'\] are not subjects"):
        CDE.select_folds(t, ["SAMM/999"])


def test_check_rejects_foreign_databases_and_bad_subjects():
    t = _table()
    bad = t.assign(dataset=t["dataset"].replace("SAMM", "DFME"))
    with pytest.raises(ValueError, match=r"databases \['DFME'\] are not part"):
        CDE.check(bad)
    bad = t.assign(subject=t["subject"].str.replace("SAMM/", "CASME2/"))
    with pytest.raises(ValueError, match="3 rows have a subject not written"):
        CDE.check(bad)
    with pytest.raises(ValueError, match="labels must be 0..2"):
        CDE.check(t, np.full(len(t), 3))


def test_score_pooled_and_per_database_rows():
    t = _table()
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, len(t))
    y_pred = np.where(rng.random(len(t)) < 0.6, y_true, (y_true + 1) % 3)
    preds = pd.DataFrame({"fold": t["subject"], "sample": np.arange(len(t)),
                          "y_true": y_true, "y_pred": y_pred})  # fmt: skip
    recs = CDE.score(preds, t, method="fr", params={"lr": 1e-3}, seed=2, data="d")
    rows = {r["task"]: r for r, _ in recs}
    assert list(rows) == [COMPOSITE_TASK, "SMIC_HS", "CASME2", "SAMM"]
    assert rows[COMPOSITE_TASK]["n_test"] == 15 and rows["SAMM"]["n_test"] == 3
    assert rows[COMPOSITE_TASK]["mean_f1"] == pytest.approx(uf1(y_true, y_pred, labels=[0, 1, 2]))
    m = (t["dataset"] == "CASME2").to_numpy()
    assert rows["CASME2"]["uar"] == pytest.approx(uar(y_true[m], y_pred[m], labels=[0, 1, 2]))
    assert all(r["protocol"] == "cde" and r["seed"] == 2 for r in rows.values())
    assert json.loads(rows["SAMM"]["classes"]) == ["negative", "positive", "surprise"]
    assert set(recs[1][1]["clip"]) == set(t.loc[t["dataset"] == "SMIC_HS", "clip"])
    with pytest.raises(ValueError, match="predicted twice"):
        CDE.score(pd.concat([preds, preds.head(1)]), t, method="fr")


def test_summary_mean_and_std_over_seeds():
    t = _table()
    y = np.arange(len(t)) % 3
    recs = []
    for seed, flip in ((0, 0), (1, 5)):
        yp = y.copy()
        yp[:flip] = (yp[:flip] + 1) % 3
        p = pd.DataFrame({"fold": t["subject"], "sample": np.arange(len(t)), "y_true": y,
                          "y_pred": yp})  # fmt: skip
        recs += [r for r, _ in CDE.score(p, t, method="fr", seed=seed)]
    s = CDE.summary(pd.DataFrame(recs))
    comp = s[s["task"] == COMPOSITE_TASK].iloc[0]
    assert comp["seeds"] == 2
    assert comp["uf1"] == pytest.approx((1.0 + uf1(y, np.r_[(y[:5] + 1) % 3, y[5:]])) / 2)
    assert s["task"].tolist() == [COMPOSITE_TASK, "SMIC_HS", "CASME2", "SAMM"]


def test_real_composite_folds():
    if not FLOWS.is_dir():
        pytest.skip("shared megc2019_flow folder is absent")
    from merkit.nets.data import read_megc2019_flow

    fs = read_megc2019_flow(FLOWS)
    CDE.check(fs.table, fs.y)
    splits = CDE.splits(fs.table)
    assert len(splits) == 68
    assert sum(s.n_test for s in splits) == 442
    folds = CDE.folds(fs.table)
    assert sum(f.startswith("CASME2/") for f in folds) == 24
    assert sum(f.startswith("SAMM/") for f in folds) == 28
    assert sum(f.startswith("SMIC_HS/") for f in folds) == 16
    assert fs.table["dataset"].value_counts().to_dict() == {"SMIC_HS": 164, "CASME2": 145,
                                                          "SAMM": 133}  # fmt: skip
