"""Tests of merkit.metrics, including golden tests on the STSTNet authors' logs."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from merkit import metrics as M
from merkit.results.agreement import fleiss_kappa

# ----------------------------------------------------------------------------- parsers

_PY_BLOCK = re.compile(
    r"Subject:\s*(?P<subject>\S+)\s*\n"
    r"Predicted\s*:\s*\[(?P<pred>[^\]]*)\]\s*\n"
    r"Ground Truth\s*:\s*\[(?P<gt>[^\]]*)\]\s*\n"
    r"UF1:\s*(?P<uf1>\S+)\s*\|\s*UAR:\s*(?P<uar>\S+)"
)


def parse_ststnet_python_log(path: Path) -> list[dict]:
    """Per-subject blocks of the authors' Python LOSO log (running pooled UF1/UAR)."""
    blocks = []
    for m in _PY_BLOCK.finditer(path.read_text()):
        blocks.append(
            {
                "subject": m["subject"],
                "pred": [int(v) for v in m["pred"].split(",")],
                "gt": [int(v) for v in m["gt"].split(",")],
                "uf1": float(m["uf1"]),
                "uar": float(m["uar"]),
            }
        )
    return blocks


def parse_ststnet_matlab_log(path: Path) -> pd.DataFrame:
    """The MATLAB log: '<db> <subject>' headers, then '<clip> <ground truth> <prediction>'."""
    rows, db, sub = [], None, None
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) == 2:
            db, sub = f
        elif len(f) == 3:
            rows.append((db, sub, f[0], int(f[1]), int(f[2])))
        elif f:
            raise ValueError(f"{path}: unexpected line {line!r}")
    return pd.DataFrame(rows, columns=["dataset", "sub", "clip", "y_true", "y_pred"])


# ----------------------------------------------------------------------------- golden


def test_golden_ststnet_python_log(shared_data: Path) -> None:
    path = shared_data / "megc2019_flow" / "STSTNet_python_logfile.txt"
    blocks = parse_ststnet_python_log(path)
    assert len(blocks) == 68
    yt, yp = [], []
    for b in blocks:
        assert len(b["pred"]) == len(b["gt"])
        yt += b["gt"]
        yp += b["pred"]
        # the log prints running pooled scores after each subject; the authors' UF1
        # averages over the three classes (sklearn default), their UAR is nan when a
        # class is still absent from the ground truth
        assert M.uf1(yt, yp, labels=[0, 1, 2]) == pytest.approx(b["uf1"], abs=5e-5)
        if not math.isnan(b["uar"]):
            assert M.uar(yt, yp) == pytest.approx(b["uar"], abs=5e-5)
    assert len(yt) == 442
    assert round(M.uf1(yt, yp), 4) == 0.7209
    assert round(M.uar(yt, yp), 4) == 0.7250
    s = M.score_all(yt, yp)
    assert round(s["mean_f1"], 4) == 0.7209 and round(s["uar"], 4) == 0.7250
    assert s["accuracy"] == pytest.approx(100 * np.mean(np.array(yt) == np.array(yp)))
    # first subject (006) has no positive clip: the classes-in-truth convention differs
    first = blocks[0]
    assert M.uf1(first["gt"], first["pred"]) == pytest.approx(0.7778, abs=5e-5)
    assert M.uf1(first["gt"], first["pred"], labels=[0, 1, 2]) == pytest.approx(0.5185, abs=5e-5)


def test_golden_ststnet_matlab_log(shared_data: Path) -> None:
    flow = shared_data / "megc2019_flow"
    log = parse_ststnet_matlab_log(flow / "STSTNet_logfile.txt")
    assert len(log) == 442
    # the first number is the ground truth: it equals the released label list, 442/442
    ref = pd.read_csv(flow / "combined_3_class2_for_optical_flow.csv", dtype=str)
    ref_label = {
        (r.dataset, r.sub, r.filename_o): int(r.label) for r in ref.itertuples(index=False)
    }
    keys = list(zip(log["dataset"], log["sub"], log["clip"], strict=True))
    assert all(k in ref_label for k in keys)
    assert [ref_label[k] for k in keys] == log["y_true"].tolist()
    yt, yp = log["y_true"].to_numpy(), log["y_pred"].to_numpy()
    assert round(M.uf1(yt, yp), 4) == 0.7353  # = published UF1
    assert round(M.uar(yt, yp), 4) == 0.7186  # true UAR
    assert round(M.uar(yp, yt), 4) == 0.7605  # published "UAR": prediction and truth swapped
    per_db = {db: round(M.uar(g.y_true, g.y_pred), 4) for db, g in log.groupby("dataset")}
    assert per_db == {"casme2": 0.8190, "smic": 0.6703, "samm": 0.6415}


# ----------------------------------------------------------------------------- conventions


def test_hand_computed_example() -> None:
    yt = [0, 0, 0, 1, 1, 2]
    yp = [0, 0, 1, 1, 2, 2]
    s = M.per_class_scores(yt, yp)
    np.testing.assert_array_equal(s["labels"], [0, 1, 2])
    np.testing.assert_allclose(s["precision"], [1.0, 0.5, 0.5])
    np.testing.assert_allclose(s["recall"], [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(s["f1"], [0.8, 0.5, 2 / 3])
    assert M.uf1(yt, yp) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert M.uar(yt, yp) == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert M.accuracy(yt, yp) == pytest.approx(4 / 6)
    assert M.war is M.accuracy
    c = M.class_counts(yt, yp)
    np.testing.assert_array_equal(c["tp"], [2, 1, 1])
    np.testing.assert_array_equal(c["fp"], [0, 1, 1])
    np.testing.assert_array_equal(c["fn"], [1, 1, 0])


def test_never_predicted_class_scores_zero_f1() -> None:
    yt = [0, 1, 2, 2]
    yp = [0, 0, 2, 2]
    f1 = M.per_class_scores(yt, yp)["f1"]
    assert f1[1] == 0.0
    assert M.uf1(yt, yp) == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_class_absent_from_truth() -> None:
    yt = [0, 0, 2, 2]
    yp = [0, 1, 2, 2]
    # default: classes in y_true only (MEGC); class 1 is not averaged
    assert M.uf1(yt, yp) == pytest.approx((2 / 3 + 1.0) / 2)
    # listed and predicted but absent from truth: F1 = 0 and it is averaged
    assert M.uf1(yt, yp, labels=[0, 1, 2]) == pytest.approx((2 / 3 + 0 + 1.0) / 3)
    # listed, never true and never predicted: zero_division
    assert M.uf1([0, 2], [0, 2], labels=[0, 1, 2]) == pytest.approx(2 / 3)
    assert M.uf1([0, 2], [0, 2], labels=[0, 1, 2], zero_division=1.0) == 1.0
    # recall undefined: left out of UAR
    rec = M.per_class_scores(yt, yp, labels=[0, 1, 2])["recall"]
    assert np.isnan(rec[1])
    assert M.uar(yt, yp, labels=[0, 1, 2]) == pytest.approx((0.5 + 1.0) / 2)
    with pytest.raises(ValueError, match="none of the classes"):
        M.uar([0, 0], [0, 1], labels=[1, 2])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 200, 4 + seed % 3
    yt = rng.integers(0, k, n)
    yp = np.where(rng.random(n) < 0.5, yt, rng.integers(0, k + 1, n))  # k+1: a spurious class
    labels = np.unique(yt)
    assert M.uf1(yt, yp) == pytest.approx(f1_score(yt, yp, average="macro", labels=labels))
    full = list(range(k + 1))
    assert M.uf1(yt, yp, labels=full) == pytest.approx(
        f1_score(yt, yp, average="macro", labels=full, zero_division=0)
    )
    assert M.uar(yt, yp) == pytest.approx(balanced_accuracy_score(yt, yp))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=labels, zero_division=0)
    ours = M.per_class_scores(yt, yp)
    np.testing.assert_allclose(ours["precision"], p)
    np.testing.assert_allclose(ours["recall"], r)
    np.testing.assert_allclose(ours["f1"], f)
    np.testing.assert_array_equal(ours["support"], s)
    np.testing.assert_array_equal(M.confusion_matrix(yt, yp), sk_confusion_matrix(yt, yp))
    for norm in ("true", "pred", "all"):
        np.testing.assert_allclose(
            M.confusion_matrix(yt, yp, normalize=norm), sk_confusion_matrix(yt, yp, normalize=norm)
        )


def test_string_labels() -> None:
    yt = ["neg", "neg", "pos", "sur"]
    yp = ["neg", "pos", "pos", "sur"]
    assert M.uf1(yt, yp) == pytest.approx(f1_score(yt, yp, average="macro"))
    cm = M.confusion_matrix(yt, yp, labels=["sur", "pos", "neg"])
    np.testing.assert_array_equal(cm, [[1, 0, 0], [0, 1, 0], [0, 1, 1]])


def test_confusion_matrix_labels_and_normalisation() -> None:
    yt = [0, 0, 1, 1, 1, 5]
    yp = [0, 1, 1, 1, 0, 0]
    cm = M.confusion_matrix(yt, yp, labels=[1, 0])  # class 5 is ignored
    np.testing.assert_array_equal(cm, [[2, 1], [1, 1]])
    assert cm.dtype == np.int64
    cmn = M.confusion_matrix(yt, yp, labels=[0, 1, 2], normalize="true")
    np.testing.assert_allclose(cmn, [[0.5, 0.5, 0], [1 / 3, 2 / 3, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="normalize"):
        M.confusion_matrix(yt, yp, normalize="rows")


def test_input_errors() -> None:
    with pytest.raises(ValueError, match="3 labels but y_pred has 2"):
        M.uf1([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        M.uar([], [])
    with pytest.raises(ValueError, match="1-D"):
        M.accuracy([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="duplicates"):
        M.uf1([0, 1], [0, 1], labels=[0, 0, 1])


def test_per_au_f1_pooled() -> None:
    yt = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    yp = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]])
    f = M.per_au_f1(yt, yp)
    # AU0: tp1 fp1 fn1 -> 0.5; AU1: tp1 fn1 -> 2/3; AU2: never true nor predicted -> 0
    np.testing.assert_allclose(f, [0.5, 2 / 3, 0.0])
    np.testing.assert_allclose(f, f1_score(yt, yp, average=None, zero_division=0))
    np.testing.assert_allclose(M.per_au_f1(yt, yp, zero_division=1.0)[2], 1.0)
    with pytest.raises(ValueError, match="0/1"):
        M.per_au_f1(yt * 2, yp)
    with pytest.raises(ValueError, match=r"\(n, n_aus\)"):
        M.per_au_f1(yt, yp[:, :2])


def test_bootstrap_ci_is_seeded_and_brackets_estimate() -> None:
    rng = np.random.default_rng(1)
    yt = rng.integers(0, 3, 300)
    yp = np.where(rng.random(300) < 0.6, yt, rng.integers(0, 3, 300))
    a = M.bootstrap_ci(yt, yp, "uf1", n_boot=500, seed=3)
    b = M.bootstrap_ci(yt, yp, "uf1", n_boot=500, seed=3)
    c = M.bootstrap_ci(yt, yp, "uf1", n_boot=500, seed=4)
    assert a == b and (a.low, a.high) != (c.low, c.high)
    assert a.estimate == pytest.approx(M.uf1(yt, yp))
    assert a.low < a.estimate < a.high
    assert 0.05 < a.high - a.low < 0.2  # ~ 4 standard errors for n = 300
    # the vectorised path equals scoring each resample with the plain function
    for name, fn in (("uf1", M.uf1), ("uar", M.uar), ("accuracy", M.accuracy)):
        fast = M.bootstrap_ci(yt, yp, name, n_boot=200, seed=7)
        slow = M.bootstrap_ci(yt, yp, fn, n_boot=200, seed=7)
        assert fast.low == pytest.approx(slow.low) and fast.high == pytest.approx(slow.high)
    est, lo, hi = M.bootstrap_ci(yt, yp, "accuracy", n_boot=100, alpha=0.1)
    assert lo <= est <= hi


def test_bootstrap_ci_groups() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 10)
    yt = rng.integers(0, 3, 200)
    # predictions correct for half of the subjects only: strong clustering
    yp = np.where(groups % 2 == 0, yt, (yt + 1) % 3)
    plain = M.bootstrap_ci(yt, yp, "accuracy", n_boot=400, seed=0)
    clus = M.bootstrap_ci(yt, yp, "accuracy", n_boot=400, seed=0, groups=groups)
    assert plain.estimate == clus.estimate == pytest.approx(0.5)
    assert (clus.high - clus.low) > 1.5 * (plain.high - plain.low)
    with pytest.raises(ValueError, match="groups must have shape"):
        M.bootstrap_ci(yt, yp, groups=groups[:5])
    with pytest.raises(ValueError, match="unknown metric"):
        M.bootstrap_ci(yt, yp, "auc")


def test_fleiss_kappa_reference_example() -> None:
    # Fleiss (1971) worked example as given on Wikipedia: 10 items, 14 raters, kappa 0.210
    counts = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(counts) == pytest.approx(0.20993, abs=1e-5)
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 0], [1, 1]])
