"""Leak audit: how much a score would owe to choosing the epoch on the test subjects.

merkit's deep runs are honest: a fold trains for a fixed number of epochs chosen without
the test subject and its last weights predict that subject. Published micro-expression
numbers often are not. With the test rows' probabilities recorded after every evaluated
epoch (``merkit train --audit-every``, :func:`merkit.nets.train.train_fold`), this module
scores the same run under the selections public training scripts make, each pooled over
the folds as UF1 / UAR / accuracy with a bootstrap interval over the folds (subjects):

``honest``
    The run's own rule: the last epoch (the run's stored predictions).
``best_epoch_per_subject``
    For each test subject (fold) the first epoch with its highest accuracy, as HTNet's
    training script keeps ``best_accuracy_for_each_subject`` (MMNet does the same).
``best_epoch_pooled``
    One epoch for all folds: the first with the highest pooled UF1 over the test folds.
``best_test_loss``
    For each fold the first epoch with the lowest cross-entropy on its test subject: the
    best-validation-loss checkpoint of the FR group's code, whose validation subjects are
    those of the test database.

Every selection but ``honest`` reads the test labels to choose: an **estimate of the
inflation** a published selection adds, never a result to report (Varanka, Li, Peng,
Zhao, "Data leakage and evaluation issues in micro-expression analysis", IEEE TAFFC
2023, arXiv:2211.11425, measured the same effect).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from merkit.metrics import accuracy, bootstrap_ci, uar, uf1

__all__ = ["SELECTIONS", "FoldAudit", "choose_epochs", "leak_audit"]

#: selection name -> what it does (the audit table's ``rule`` column)
SELECTIONS: dict[str, str] = {
    "honest": "last epoch (the run's own rule; no test label read)",
    "best_epoch_per_subject": "per test subject, its best-accuracy epoch (HTNet, MMNet)",
    "best_epoch_pooled": "one epoch, the best pooled UF1 over the test folds",
    "best_test_loss": "per test subject, its lowest test cross-entropy (FR group's code)",
}


@dataclass(frozen=True)
class FoldAudit:
    """The recorded test predictions of one fold.

    Attributes
    ----------
    fold : str
        Fold name (the held-out subject under LOSO).
    y_true : ndarray of int, shape (n,)
        True classes of the fold's test rows.
    epochs : ndarray of int, shape (E,)
        Evaluated epochs (1-based, increasing; the last is the run's last epoch).
    probs : ndarray of float, shape (E, n, K)
        Softmax probabilities of the test rows after each evaluated epoch.
    """

    fold: str
    y_true: np.ndarray
    epochs: np.ndarray
    probs: np.ndarray

    def __post_init__(self) -> None:
        e, p, y = np.asarray(self.epochs), np.asarray(self.probs), np.asarray(self.y_true)
        if e.ndim != 1 or not len(e) or np.any(np.diff(e) <= 0):
            raise ValueError(f"fold {self.fold}: epochs must be a non-empty increasing 1-D array")
        if p.ndim != 3 or p.shape[:2] != (len(e), len(y)):
            raise ValueError(f"fold {self.fold}: probs has shape {p.shape}, expected "
                             f"({len(e)}, {len(y)}, K)")  # fmt: skip


def _first_best(values: np.ndarray, *, largest: bool) -> int:
    """Index of the first maximum (or minimum) of ``values`` (ties: the earliest epoch)."""
    return int(np.argmax(values) if largest else np.argmin(values))


def choose_epochs(folds: Sequence[FoldAudit], selection: str, labels: Sequence[int]) -> list[int]:
    """The epoch each fold's predictions are taken from under ``selection``.

    Parameters
    ----------
    folds : sequence of FoldAudit
        Every fold of one run and seed; ``best_epoch_pooled`` chooses among the epochs
        evaluated in all of them.
    selection : str
        A key of :data:`SELECTIONS`.
    labels : sequence of int
        The task's classes (UF1 of ``best_epoch_pooled`` is over all of them).

    Returns
    -------
    list of int
        The chosen epoch (1-based) of every fold, in the order of ``folds``.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown audit selection {selection!r}; known: {', '.join(SELECTIONS)}")
    if selection == "honest":
        return [int(f.epochs[-1]) for f in folds]
    if selection == "best_epoch_per_subject":
        return [int(f.epochs[_first_best((f.probs.argmax(2) == f.y_true).mean(1), largest=True)])
                for f in folds]  # fmt: skip
    if selection == "best_test_loss":
        out = []
        for f in folds:
            p = np.clip(f.probs[:, np.arange(len(f.y_true)), f.y_true], 1e-12, None)
            out.append(int(f.epochs[_first_best(-np.log(p).mean(1), largest=False)]))
        return out
    epochs = np.array(sorted(set.intersection(*(set(f.epochs.tolist()) for f in folds))))
    if not len(epochs):
        raise ValueError("best_epoch_pooled: the folds share no evaluated epoch")
    y = np.concatenate([f.y_true for f in folds])
    at = [[int(np.flatnonzero(f.epochs == e)[0]) for f in folds] for e in epochs]
    scores = [
        uf1(y, np.concatenate([f.probs[i].argmax(1) for f, i in zip(folds, idx, strict=True)]),
            labels=labels)
        for idx in at
    ]  # fmt: skip
    return [int(epochs[_first_best(np.asarray(scores), largest=True)])] * len(folds)


def leak_audit(
    folds: Sequence[FoldAudit], labels: Sequence[int], *, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Score one run (one seed) under every selection of :data:`SELECTIONS`.

    Parameters
    ----------
    folds : sequence of FoldAudit
        The run's folds that recorded their test predictions.
    labels : sequence of int
        The task's classes.
    n_boot, seed : int
        Bootstrap resamples of the folds (a cluster bootstrap over test subjects:
        :func:`merkit.metrics.bootstrap_ci` with ``groups``) and its seed.

    Returns
    -------
    DataFrame
        One row per selection: ``selection``, ``rule``, ``leaks`` (False only for
        ``honest``), ``uf1``, ``uf1_low``, ``uf1_high``, ``uar``, ``uar_low``,
        ``uar_high``, ``accuracy``, ``uf1_gain`` (UF1 minus the honest UF1),
        ``mean_epoch`` (mean chosen epoch over the folds), ``folds``, ``n_test``,
        ``epochs_evaluated``.
    """
    folds = [f for f in folds if len(f.y_true)]
    if not folds:
        raise ValueError("leak audit: no fold recorded test predictions")
    y = np.concatenate([f.y_true for f in folds]).astype(np.int64)
    groups = np.concatenate([[f.fold] * len(f.y_true) for f in folds])
    rows = []
    for name, rule in SELECTIONS.items():
        chosen = choose_epochs(folds, name, labels)
        pred = np.concatenate([f.probs[int(np.flatnonzero(f.epochs == e)[0])].argmax(1)
                               for f, e in zip(folds, chosen, strict=True)])  # fmt: skip
        f1 = bootstrap_ci(y, pred, "uf1", n_boot=n_boot, seed=seed, groups=groups)
        ar = bootstrap_ci(y, pred, "uar", n_boot=n_boot, seed=seed, groups=groups)
        rows.append({"selection": name, "rule": rule, "leaks": name != "honest",
                     "uf1": uf1(y, pred, labels=labels), "uf1_low": f1.low,
                     "uf1_high": f1.high, "uar": uar(y, pred, labels=labels),
                     "uar_low": ar.low, "uar_high": ar.high, "accuracy": accuracy(y, pred),
                     "mean_epoch": float(np.mean(chosen)), "folds": len(folds),
                     "n_test": len(y),
                     "epochs_evaluated": int(min(len(f.epochs) for f in folds))})  # fmt: skip
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("accuracy") + 1, "uf1_gain",
               out["uf1"] - out.loc[out["selection"] == "honest", "uf1"].iloc[0])  # fmt: skip
    return out
