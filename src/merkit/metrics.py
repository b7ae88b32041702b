"""Classification metrics for MER: the only place in merkit where a metric is computed.

Conventions
-----------
All single-label metrics take integer (or any hashable, sortable) class labels
``y_true`` and ``y_pred`` of equal length and work on *pooled* predictions (e.g. all
LOSO folds concatenated), as in the MEGC challenges.

``labels`` (the classes a macro average runs over):

* default (``labels=None``): the classes present in ``y_true`` (the MEGC 2019
  convention). A class that is predicted but absent from ``y_true`` is not averaged;
  its predictions are still errors (false negatives of the true classes), so they
  lower the score. (scikit-learn's default averages over the union of true and
  predicted classes instead; pass ``labels`` to get either behaviour.)
* explicit ``labels``: the average runs over exactly these classes. Samples whose
  true class is not listed still count as false positives of the listed class they
  were predicted as (as in scikit-learn).

Per class ``c``: ``TP = #(true c, pred c)``, ``FP = #(true != c, pred c)``,
``FN = #(true c, pred != c)``; ``F1 = 2 TP / (2 TP + FP + FN)``, so a class that is
never predicted scores ``F1 = 0``. For a listed class absent from ``y_true``
(``TP = FN = 0``): ``F1 = 0`` if it was predicted (``FP > 0``), and
``zero_division`` (default 0, as scikit-learn) if it was neither true nor predicted.
Its recall is undefined (``nan``) and it is left out of the UAR mean (as
:func:`sklearn.metrics.balanced_accuracy_score` does).

UF1 (unweighted F1) is the mean of per-class F1; UAR (unweighted average recall) is
the mean of per-class recall; WAR is the plain accuracy. ``score_all`` returns the
triple used in the CDMER papers: ``mean_f1`` (= UF1, 0..1), ``uar`` (0..1) and
``accuracy`` (percent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "BootstrapCI",
    "accuracy",
    "bootstrap_ci",
    "class_counts",
    "confusion_matrix",
    "per_au_f1",
    "per_class_scores",
    "score_all",
    "uar",
    "uf1",
    "war",
]


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim != 1 or yp.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D label vectors, got shapes {yt.shape} and {yp.shape}"
        )
    if yt.shape[0] != yp.shape[0]:
        raise ValueError(
            f"y_true has {yt.shape[0]} labels but y_pred has {yp.shape[0]}; "
            "they must describe the same samples"
        )
    if yt.shape[0] == 0:
        raise ValueError("cannot score an empty set of predictions")
    return yt, yp


def _resolve_labels(yt: np.ndarray, labels) -> np.ndarray:
    if labels is None:
        return np.unique(yt)
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D list of classes, got {labels!r}")
    if np.unique(lab).size != lab.size:
        raise ValueError(f"labels contain duplicates: {list(lab)}")
    return lab


def class_counts(y_true, y_pred, labels=None) -> dict[str, np.ndarray]:
    """Per-class true positives, false positives and false negatives.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Ground truth and predicted class labels.
    labels : array-like, optional
        Classes to count (default: the classes present in ``y_true``).

    Returns
    -------
    dict
        ``labels`` (k,), ``tp``, ``fp``, ``fn``, ``support`` (= tp + fn) and
        ``predicted`` (= tp + fp), each an int array of shape (k,).
    """
    yt, yp = _check_pair(y_true, y_pred)
    lab = _resolve_labels(yt, labels)
    is_true = yt[None, :] == lab[:, None]  # (k, n)
    is_pred = yp[None, :] == lab[:, None]
    tp = np.sum(is_true & is_pred, axis=1)
    support = is_true.sum(axis=1)
    predicted = is_pred.sum(axis=1)
    return {
        "labels": lab,
        "tp": tp,
        "fp": predicted - tp,
        "fn": support - tp,
        "support": support,
        "predicted": predicted,
    }


def _f1_from_counts(tp, fp, fn, zero_division: float) -> np.ndarray:
    tp = np.asarray(tp, dtype=float)
    denom = 2 * tp + np.asarray(fp, dtype=float) + np.asarray(fn, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), zero_division)
    return f1


def per_class_scores(y_true, y_pred, labels=None, *, zero_division: float = 0.0) -> dict:
    """Per-class precision, recall and F1 (the building blocks of UF1 and UAR).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    labels : array-like, optional
        Classes to score (default: those present in ``y_true``).
    zero_division : float
        Precision of a never-predicted class and F1 of a class neither true nor
        predicted. Recall of a class absent from ``y_true`` is always ``nan``.

    Returns
    -------
    dict
        ``labels``, ``precision``, ``recall``, ``f1`` (float arrays of shape (k,)),
        ``support`` and ``predicted`` (int arrays).
    """
    c = class_counts(y_true, y_pred, labels)
    tp = c["tp"].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(c["predicted"] > 0, tp / np.maximum(c["predicted"], 1), zero_division)
        recall = np.where(c["support"] > 0, tp / np.maximum(c["support"], 1), np.nan)
    f1 = _f1_from_counts(c["tp"], c["fp"], c["fn"], zero_division)
    return {
        "labels": c["labels"],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": c["support"],
        "predicted": c["predicted"],
    }


def accuracy(y_true, y_pred) -> float:
    """Fraction of correct predictions (weighted average recall, WAR), in 0..1."""
    yt, yp = _check_pair(y_true, y_pred)
    return float(np.mean(yt == yp))


war = accuracy


def uar(y_true, y_pred, labels=None) -> float:
    """Unweighted average recall: mean per-class recall, in 0..1.

    Classes of ``labels`` absent from ``y_true`` have no recall and are left out of
    the mean (logged); it is an error when none of them is present.
    """
    s = per_class_scores(y_true, y_pred, labels)
    rec = s["recall"]
    present = ~np.isnan(rec)
    if not present.any():
        raise ValueError(f"UAR undefined: none of the classes {list(s['labels'])} occurs in y_true")
    if not present.all():
        log.debug("UAR: classes %s absent from y_true are left out", list(s["labels"][~present]))
    return float(np.mean(rec[present]))


def uf1(y_true, y_pred, labels=None, *, zero_division: float = 0.0) -> float:
    """Unweighted (macro) F1: mean per-class F1, in 0..1 (see the module conventions)."""
    return float(
        np.mean(per_class_scores(y_true, y_pred, labels, zero_division=zero_division)["f1"])
    )


def confusion_matrix(y_true, y_pred, labels=None, *, normalize: str | None = None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = number of samples of true class i predicted as j.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    labels : array-like, optional
        Row/column classes (default: the union of classes in ``y_true`` and
        ``y_pred``, sorted). Samples with a class outside ``labels`` are ignored.
    normalize : {None, "true", "pred", "all"}
        Counts (``None``); or rows sum to 1 (``"true"``: per-class recall on the
        diagonal), columns sum to 1 (``"pred"``), or everything sums to 1 (``"all"``).
        Empty rows/columns stay 0.

    Returns
    -------
    ndarray of shape (k, k)
        int64 counts, or float64 when normalised.
    """
    yt, yp = _check_pair(y_true, y_pred)
    lab = np.unique(np.concatenate([yt, yp])) if labels is None else _resolve_labels(yt, labels)
    k = lab.size
    ti = np.searchsorted(lab, yt) if labels is None else _index_of(lab, yt)
    pi = np.searchsorted(lab, yp) if labels is None else _index_of(lab, yp)
    keep = (ti >= 0) & (pi >= 0)
    cm = np.bincount(ti[keep] * k + pi[keep], minlength=k * k).reshape(k, k).astype(np.int64)
    if normalize is None:
        return cm
    cmf = cm.astype(float)
    if normalize == "true":
        s = cmf.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        s = cmf.sum(axis=0, keepdims=True)
    elif normalize == "all":
        s = np.array(cmf.sum())
    else:
        raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")
    return np.divide(cmf, s, out=np.zeros_like(cmf), where=s > 0)


def _index_of(lab: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in ``lab`` (-1 when absent)."""
    order = np.argsort(lab, kind="stable")
    sorted_lab = lab[order]
    pos = np.searchsorted(sorted_lab, values)
    pos_c = np.clip(pos, 0, lab.size - 1)
    found = sorted_lab[pos_c] == values
    return np.where(found, order[pos_c], -1)


def per_au_f1(y_true, y_pred, *, zero_division: float = 0.0) -> np.ndarray:
    """Binary F1 of every action unit over pooled samples (multi-label AU detection).

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n, n_aus)
        0/1 (or boolean) AU occurrence matrices; column j is one AU.
    zero_division : float
        F1 of an AU that is neither present nor predicted in any sample.

    Returns
    -------
    ndarray of shape (n_aus,)
        F1 of each AU; ``np.mean`` of it is the macro AU-F1 of MEGC-style AU tasks.
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    if yt.ndim != 2 or yt.shape != yp.shape:
        raise ValueError(f"AU matrices must both be (n, n_aus), got {yt.shape} and {yp.shape}")
    for name, a in (("y_true", yt), ("y_pred", yp)):
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"AU matrix {name} must be 0/1, found values {np.unique(a)[:10]}")
    yt = yt.astype(bool)
    yp = yp.astype(bool)
    tp = np.sum(yt & yp, axis=0)
    fp = np.sum(~yt & yp, axis=0)
    fn = np.sum(yt & ~yp, axis=0)
    return _f1_from_counts(tp, fp, fn, zero_division)


def score_all(y_true, y_pred, labels=None) -> dict[str, float]:
    """The CDMER/MEGC triple: ``mean_f1`` (UF1, 0..1), ``uar`` (0..1), ``accuracy`` (%)."""
    return {
        "mean_f1": uf1(y_true, y_pred, labels),
        "uar": uar(y_true, y_pred, labels),
        "accuracy": 100.0 * accuracy(y_true, y_pred),
    }


_NAMED: dict[str, Callable] = {
    "uf1": uf1,
    "mean_f1": uf1,
    "f1": uf1,
    "uar": uar,
    "accuracy": accuracy,
    "war": accuracy,
}


@dataclass(frozen=True)
class BootstrapCI:
    """A point estimate with a percentile bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    n_boot: int
    alpha: float

    def __iter__(self):
        return iter((self.estimate, self.low, self.high))


def _vector_scores(name: str, yt_i: np.ndarray, yp_i: np.ndarray, k: int) -> np.ndarray:
    """Score many resamples at once; ``yt_i``/``yp_i`` are (B, n) class indices into 0..k-1."""
    b = yt_i.shape[0]
    flat = (np.arange(b)[:, None] * k * k + yt_i * k + yp_i).ravel()
    cm = np.bincount(flat, minlength=b * k * k).reshape(b, k, k).astype(float)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    if name in ("accuracy", "war"):
        return tp.sum(axis=1) / cm.sum(axis=(1, 2))
    present = support > 0
    if name == "uar":
        rec = np.divide(tp, support, out=np.zeros_like(tp), where=present)
        return rec.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    # uf1 over the classes present in each resample's y_true (module convention)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return np.where(present, f1, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def bootstrap_ci(
    y_true,
    y_pred,
    metric: str | Callable = "uf1",
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    *,
    groups: Sequence | None = None,
) -> BootstrapCI:
    """Percentile bootstrap confidence interval of a metric over pooled predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
    metric : str or callable
        ``"uf1"``/``"mean_f1"``, ``"uar"``, ``"accuracy"`` (vectorised; each resample
        is scored with the module's default convention, i.e. over the classes present
        in the resample's ``y_true``) or any ``metric(y_true, y_pred) -> float``.
    n_boot : int
        Number of resamples.
    alpha : float
        Two-sided level: the interval is the ``alpha/2`` and ``1 - alpha/2`` percentiles.
    seed : int
        Seed of ``np.random.default_rng``; equal seeds give equal intervals.
    groups : array-like of shape (n,), optional
        Cluster labels (e.g. subjects). When given, whole groups are resampled with
        replacement (a cluster bootstrap), which respects the dependence between
        clips of one person.

    Returns
    -------
    BootstrapCI
        ``estimate`` (metric on the full sample), ``low``, ``high``.
    """
    yt, yp = _check_pair(y_true, y_pred)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    n = yt.shape[0]
    if groups is None:
        idx = rng.integers(0, n, size=(n_boot, n))
    else:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise ValueError(f"groups must have shape ({n},), got {g.shape}")
        uniq, gi = np.unique(g, return_inverse=True)
        members = [np.flatnonzero(gi == j) for j in range(uniq.size)]
        draws = rng.integers(0, uniq.size, size=(n_boot, uniq.size))
        idx_list = [np.concatenate([members[j] for j in row]) for row in draws]
        idx = None
    if isinstance(metric, str):
        key = metric.lower()
        if key not in _NAMED:
            raise ValueError(f"unknown metric {metric!r}; known: {sorted(_NAMED)}")
        fn = _NAMED[key]
        estimate = float(fn(yt, yp))
        lab = np.unique(np.concatenate([yt, yp]))
        ti = np.searchsorted(lab, yt)
        pi = np.searchsorted(lab, yp)
        name = "uf1" if fn is uf1 else ("uar" if fn is uar else "accuracy")
        if idx is not None:
            scores = _vector_scores(name, ti[idx], pi[idx], lab.size)
        else:
            scores = np.array(
                [_vector_scores(name, ti[i][None], pi[i][None], lab.size)[0] for i in idx_list]
            )
    else:
        estimate = float(metric(yt, yp))
        rows = idx if idx is not None else idx_list
        scores = np.array([float(metric(yt[i], yp[i])) for i in rows])
    low, high = np.percentile(scores, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return BootstrapCI(float(estimate), float(low), float(high), int(n_boot), float(alpha))
