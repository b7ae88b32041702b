"""Leak audit (merkit.results.audit): each selection picks the epochs it should on known
recorded predictions, and scores them pooled over the folds."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.metrics import uf1
from merkit.results.audit import SELECTIONS, FoldAudit, choose_epochs, leak_audit


def _probs(pred: list[int], conf: list[float]) -> np.ndarray:
    """Two-class probabilities whose argmax is ``pred`` with ``conf`` on the predicted class."""
    p = np.empty((len(pred), 2))
    for i, (c, q) in enumerate(zip(pred, conf, strict=True)):
        p[i, c], p[i, 1 - c] = q, 1 - q
    return p


def _folds() -> list[FoldAudit]:
    # fold A (y = 0, 1): epoch 1 right on both (confidence 0.6), epoch 2 right on the first
    # only but very sure of it (lowest test loss), epoch 3 (the last) wrong on both
    a = np.stack([_probs([0, 1], [0.6, 0.6]), _probs([0, 0], [0.99, 0.55]),
                  _probs([1, 0], [0.6, 0.6])])  # fmt: skip
    # fold B (y = 1, 1): wrong, right on both (0.9), half right
    b = np.stack([_probs([0, 0], [0.7, 0.7]), _probs([1, 1], [0.9, 0.9]),
                  _probs([1, 0], [0.8, 0.55])])  # fmt: skip
    epochs = np.array([1, 2, 3])
    return [FoldAudit("A", np.array([0, 1]), epochs, a),
            FoldAudit("B", np.array([1, 1]), epochs, b)]  # fmt: skip


def test_each_selection_chooses_the_epochs_its_rule_gives():
    folds = _folds()
    assert choose_epochs(folds, "honest", [0, 1]) == [3, 3]
    assert choose_epochs(folds, "best_epoch_per_subject", [0, 1]) == [1, 2]
    # pooled UF1 over (0, 1, 1, 1): epoch 1 0.5, epoch 2 (2/3 + 4/5) / 2, epoch 3 0.2
    assert choose_epochs(folds, "best_epoch_pooled", [0, 1]) == [2, 2]
    # test cross-entropy, fold A: 0.511, 0.404, 0.916 -> 2; fold B: 1.204, 0.105, 0.511 -> 2
    assert choose_epochs(folds, "best_test_loss", [0, 1]) == [2, 2]


def test_audit_table_scores_each_selection_pooled_over_the_folds():
    table = leak_audit(_folds(), [0, 1], n_boot=200, seed=0).set_index("selection")
    assert list(table.index) == list(SELECTIONS)
    y = [0, 1, 1, 1]
    assert table.loc["honest", "uf1"] == pytest.approx(uf1(y, [1, 0, 1, 0], labels=[0, 1]))
    assert table.loc["honest", "uf1"] == pytest.approx(0.2)
    assert table.loc["best_epoch_per_subject", "uf1"] == pytest.approx(1.0)
    assert table.loc["best_epoch_pooled", "uf1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert table.loc["best_test_loss", "uar"] == pytest.approx((1 + 2 / 3) / 2)
    assert table.loc["best_epoch_per_subject", "uf1_gain"] == pytest.approx(0.8)
    assert table.loc["honest", "uf1_gain"] == 0.0
    assert table.loc["best_epoch_per_subject", "mean_epoch"] == 1.5
    assert not table.loc["honest", "leaks"] and table.loc["best_test_loss", "leaks"]
    assert table["folds"].eq(2).all() and table["n_test"].eq(4).all()
    assert table["epochs_evaluated"].eq(3).all()
    assert (table["uf1_low"] <= table["uf1"] + 1e-12).all()
    assert (table["uf1"] <= table["uf1_high"] + 1e-12).all()


def test_ties_go_to_the_earliest_epoch():
    same = np.stack([_probs([0], [0.8])] * 3)
    fold = FoldAudit("A", np.array([0]), np.array([2, 4, 6]), same)
    for name in SELECTIONS:
        expected = [6] if name == "honest" else [2]
        assert choose_epochs([fold], name, [0, 1]) == expected, name


def test_pooled_choice_uses_the_epochs_every_fold_recorded():
    a, b = _folds()
    # fold A resumed: only epochs 2 and 3 were recorded
    a = FoldAudit("A", a.y_true, np.array([2, 3]), a.probs[1:])
    assert choose_epochs([a, b], "best_epoch_pooled", [0, 1]) == [2, 2]
    table = leak_audit([a, b], [0, 1], n_boot=50).set_index("selection")
    assert table.loc["honest", "epochs_evaluated"] == 2
    none = FoldAudit("C", np.array([0]), np.array([5]), _probs([0], [0.9])[None])
    with pytest.raises(ValueError, match="share no evaluated epoch"):
        choose_epochs([a, none], "best_epoch_pooled", [0, 1])


def test_bad_records_and_names_are_refused():
    shape = r"fold X: probs has shape \(2, 1, 2\), expected \(3, 1, K\)"
    with pytest.raises(ValueError, match=shape):
        FoldAudit("X", np.array([0]), np.array([1, 2, 3]), np.zeros((2, 1, 2)))
    with pytest.raises(ValueError, match="fold X: epochs must be a non-empty increasing"):
        FoldAudit("X", np.array([0]), np.array([2, 1]), np.zeros((2, 1, 2)))
    with pytest.raises(ValueError, match="unknown audit selection 'best'; known: honest, "):
        choose_epochs(_folds(), "best", [0, 1])
    with pytest.raises(ValueError, match="no fold recorded test predictions"):
        leak_audit([FoldAudit("A", np.zeros(0, int), np.array([1]), np.zeros((1, 0, 2)))], [0, 1])
