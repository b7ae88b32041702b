"""Label-free criteria: scores of a DA method's hyper-parameter points that never see a
target label.

The CDMER papers report the best result over a grid scored *with the target labels* (an
oracle). These criteria score every point of a grid without them, so that an honest pick
can be reported next to the oracle pick. Higher is better for every one.

``"entropy"``
    Minus the mean per-sample Shannon entropy (nats) of ``softmax(scores)`` on the target
    rows, where the scores are the method's decision values
    (:func:`merkit.adapt.base.target_scores`: ``decision_function``, or the inner SVM's
    decision values on the features it classifies). Minimum-entropy selection (Grandvalet
    & Bengio 2005; skada's ``PredictionEntropyScorer``). Scale-dependent: decision values
    are not probabilities, so it favours large-margin / large-scale scores; and it rewards
    confident collapse onto one class.
``"class_entropy"``
    Entropy (nats) of the predicted class distribution on the target rows (higher = more
    balanced predictions). Needs predictions only; guards against collapse.
``"reverse"``
    Reverse (circular) validation (Zhong et al., ECML PKDD 2010): fit on (source,
    target), pseudo-label the target, fit the same method and parameters with the domains
    swapped (pseudo-labelled target as source, source as unlabelled target) and score
    macro-F1 on the true source labels. 0 when the pseudo-labels hold < 2 classes (the
    swapped fit is impossible).
``"iwcv"``
    Importance-weighted cross-validation (Sugiyama et al., JMLR 2007; skada's
    ``ImportanceWeightedScorer``): stratified k-fold over the source rows, each fold
    fitted with the target rows as unlabelled target, held-out source predictions scored
    by weighted macro-F1 with KMM weights (median-width RBF, mean 1) that estimate
    p_target / p_source. k + 1 fits per grid point.
``"snd"``
    Soft Neighborhood Density (Saito, Kim, Teterwak, Sclaroff, Darrell & Saenko, "Tune it
    the Right Way: Unsupervised Validation of Domain Adaptation via Soft Neighborhood
    Density", ICCV 2021, arXiv:2108.10860): the target rows' class-probability vectors
    (``softmax`` of the decision values) are L2-normalised, their cosine similarities to
    the other target rows (self excluded) go through a softmax with temperature 0.05 per
    row, and the criterion is the mean entropy of those neighbour distributions. High when
    predictions form dense, soft neighbourhoods; low for scattered or over-fragmented
    ones. NaN without decision values. Computed on the forward fit (no refit). Like
    ``"entropy"`` it reads decision values, whose scale differs between methods. A point
    that predicts one class everywhere has identical probability vectors, a uniform
    neighbour distribution and the largest value: without a collapse guard it picks such
    points (measured in docs/da-reproduction.md, "Choosing the method as well").

Cross-method agreement (a point's macro-F1 against the consensus of every method's grid
points) needs all methods' predictions of a task at once, so it is not a per-point
criterion here: :func:`agreement` computes it from stored predictions and
:mod:`merkit.adapt.selection` uses it to choose across methods.

Every refit goes through the estimator's ``fit_path``
(:meth:`merkit.adapt.base.DomainAdaptationClassifier.fit_path`), so a method that fits
many points at once (TGSR) computes a criterion for many points at once, with the numbers
of one fit per point. :func:`evaluate_points` fits the points and computes the criteria
each one asks for: it is what :mod:`merkit.adapt.selection` and the CDMER grid runner
use.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from merkit.adapt.base import MASKED_LABEL, DomainAdaptationClassifier, softmax
from merkit.adapt.reweight import KMM

__all__ = [
    "CRITERIA",
    "FORWARD_CRITERIA",
    "PointCriteria",
    "agreement",
    "class_entropy",
    "evaluate_points",
    "iwcv",
    "prediction_entropy",
    "reverse_validation",
    "row_entropy",
    "soft_neighborhood_density",
    "softmax_entropy",
    "vote",
]

#: label-free criteria (higher is better)
CRITERIA: tuple[str, ...] = ("entropy", "class_entropy", "reverse", "iwcv", "snd")
#: the criteria read off the forward fit (its target predictions and decision values)
FORWARD_CRITERIA: tuple[str, ...] = ("entropy", "class_entropy", "snd")
#: the criteria that need the forward fit's decision values (not only its predictions)
SCORE_CRITERIA: tuple[str, ...] = ("entropy", "snd")
#: SND's softmax temperature (Saito et al. 2021, their code's default)
SND_TEMPERATURE = 0.05


def row_entropy(P: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of every row of probabilities ``P`` (m, c)."""
    P = np.asarray(P, dtype=float)
    return -(P * np.log(np.clip(P, 1e-300, None))).sum(axis=1)


def _probabilities(S: np.ndarray) -> np.ndarray:
    """``softmax`` of decision scores (m, c), or of (m,) binary ones as (-s/2, s/2)."""
    S = np.asarray(S, dtype=float)
    if S.ndim == 1:  # binary: decision value of the positive class
        S = np.column_stack([-S / 2, S / 2])
    return softmax(S)


def softmax_entropy(S: np.ndarray) -> np.ndarray:
    """Entropy of the softmax of decision scores ``S`` (m, c) (or (m,) binary), per row."""
    return row_entropy(_probabilities(S))


def prediction_entropy(S: np.ndarray | None) -> float:
    """The ``"entropy"`` criterion of decision scores ``S``: minus the mean
    :func:`softmax_entropy`; NaN when the method has no scores (``S`` is None)."""
    return float("nan") if S is None else -float(softmax_entropy(S).mean())


def soft_neighborhood_density(S: np.ndarray | None, temperature: float = SND_TEMPERATURE) -> float:
    """The ``"snd"`` criterion of target decision scores ``S`` (m, c) (or (m,) binary).

    ``P = softmax(S)``, rows L2-normalised; ``M = P P^T`` without its diagonal (each row's
    m - 1 neighbours); ``Q = softmax(M / temperature)`` per row; the value is the mean row
    entropy of ``Q`` (nats, between 0 and ``log(m - 1)``). NaN when ``S`` is None or has
    fewer than 3 rows.
    """
    if S is None:
        return float("nan")
    P = _probabilities(S)
    m = len(P)
    if m < 3:
        return float("nan")
    F = P / np.clip(np.linalg.norm(P, axis=1, keepdims=True), 1e-12, None)
    M = F @ F.T
    M = M[~np.eye(m, dtype=bool)].reshape(m, m - 1)
    return float(row_entropy(softmax(M / float(temperature))).mean())


def vote(preds: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted majority vote of several prediction vectors (each (m,), integer labels).

    Each row gets the label with the largest total weight (default weight 1 each); ties go
    to the smallest label.
    """
    P = np.stack([np.asarray(p) for p in preds]).astype(np.int64)
    w = np.ones(len(P)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(P):
        raise ValueError(f"vote: {len(w)} weights for {len(P)} prediction vectors")
    labels = np.unique(P)
    totals = np.stack([((P == c) * w[:, None]).sum(axis=0) for c in labels])
    return labels[np.argmax(totals, axis=0)]


def agreement(preds: Sequence[np.ndarray], groups: Sequence[str]) -> np.ndarray:
    """Cross-method agreement of every prediction vector with the consensus.

    The consensus is the weighted majority vote (:func:`vote`) of all ``preds`` in which
    every group (method) weighs 1 in total, shared evenly by its vectors (grid points), so
    a method with a large grid does not outvote the others. The value of vector ``i`` is
    its macro-F1 against the consensus (higher is better; a collapsed vector scores low
    unless the consensus collapses too). A consensus of several models is a label-free
    proxy for the target labels (co-training / "agreement" model selection, e.g. Platanios
    et al., "Estimating accuracy from unlabeled data", UAI 2014); it reads no target label.
    """
    groups = [str(g) for g in groups]
    if len(groups) != len(preds):
        raise ValueError(f"agreement: {len(groups)} groups for {len(preds)} prediction vectors")
    size = {g: groups.count(g) for g in set(groups)}
    consensus = vote(preds, [1.0 / size[g] for g in groups])
    return np.array([f1_score(consensus, np.asarray(p), average="macro") for p in preds])


def class_entropy(pred: np.ndarray) -> float:
    """Entropy of the predicted class distribution (higher = less collapsed)."""
    _, counts = np.unique(pred, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _stacked(Xs: np.ndarray, n_target: int, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``X = [Xs; Xt]`` and its ``sample_domain`` (source 1, target -1)."""
    sd = np.r_[np.ones(len(Xs), dtype=np.int64), -np.ones(n_target, dtype=np.int64)]
    return np.vstack([Xs, Xt]), sd


def _labels(ys: np.ndarray, n_target: int) -> np.ndarray:
    return np.r_[np.asarray(ys), np.full(n_target, MASKED_LABEL, dtype=np.int64)]


def reverse_validation(
    estimator: DomainAdaptationClassifier,
    points: Sequence[Mapping],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    pseudo_labels: Sequence[np.ndarray],
    *,
    batched: bool = True,
    **fit_params,
) -> list[float]:
    """Reverse validation of several points of ``estimator``.

    Point ``i`` is fitted with the domains swapped on its target pseudo-labels
    ``pseudo_labels[i]`` (labelled target as source, source as unlabelled target), all
    points in one ``fit_path`` call, and scored by macro-F1 of its predictions of the
    source rows against ``ys``; 0 for a point whose pseudo-labels hold fewer than 2
    classes. ``fit_params`` (e.g. ``column_groups``) go to every fit.
    """
    out = [0.0] * len(points)
    todo = [i for i, pl in enumerate(pseudo_labels) if np.unique(pl).size >= 2]
    if not todo:
        return out
    X, sd = _stacked(Xt, len(Xs), Xs)
    Y = np.stack([_labels(pseudo_labels[i], len(Xs)) for i in todo])
    fits = estimator.fit_path(X, Y, sd, [points[i] for i in todo], batched=batched, **fit_params)
    for i, f in zip(todo, fits, strict=True):
        out[i] = float(f1_score(ys, f.predictions, average="macro"))
    return out


def iwcv(
    estimator: DomainAdaptationClassifier,
    points: Sequence[Mapping],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    *,
    n_folds: int = 5,
    seed: int = 0,
    batched: bool = True,
    **fit_params,
) -> list[float]:
    """Importance-weighted source cross-validation of several points (KMM weights, mean 1):
    weighted macro-F1 of each point's pooled out-of-fold predictions (``n_folds``
    stratified folds shuffled with ``seed``; every fold fits all points in one
    ``fit_path`` call, the held-out source rows as evaluated rows).

    Raises
    ------
    ValueError
        A source class with fewer than 2 rows (no stratified folds).
    """
    w = KMM().fit(Xs, Xt).weights_
    w = w / w.mean() if w.sum() > 0 else np.ones(len(Xs))
    _, counts = np.unique(ys, return_counts=True)
    k = int(min(n_folds, counts.min()))
    if k < 2:
        raise ValueError(f"iwcv needs >= 2 source rows per class, got class counts {counts}")
    ys = np.asarray(ys)
    preds = [np.empty_like(ys) for _ in points]
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(Xs, ys):
        X, sd = _stacked(Xs[tr], len(Xt), Xt)
        fits = estimator.fit_path(
            X, _labels(ys[tr], len(Xt)), sd, points, X_eval=Xs[te], batched=batched, **fit_params
        )
        for pred, f in zip(preds, fits, strict=True):
            pred[te] = f.predictions
    return [float(f1_score(ys, pred, average="macro", sample_weight=w)) for pred in preds]


@dataclass(frozen=True)
class PointCriteria:
    """The label-free criteria of one point (:func:`evaluate_points`).

    Attributes
    ----------
    params : dict
    predictions : ndarray (nt,)
        The forward fit's target predictions.
    values : dict
        Criterion -> value (higher is better; ``"entropy"`` is NaN without scores).
    seconds : float
        Forward fit and prediction time (0 when the predictions were given).
    criteria_seconds : float
        Time of the criteria (shared work divided evenly among the points).
    """

    params: dict
    predictions: np.ndarray
    values: dict
    seconds: float
    criteria_seconds: float


def evaluate_points(
    estimator: DomainAdaptationClassifier,
    points: Sequence[Mapping],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    criteria: Sequence[Sequence[str]],
    *,
    predictions: Sequence[np.ndarray] | None = None,
    n_folds: int = 5,
    seed: int = 0,
    batched: bool = True,
    **fit_params,
) -> list[PointCriteria]:
    """Fit the points on (source, unlabelled target) and compute their criteria.

    Parameters
    ----------
    estimator : DomainAdaptationClassifier
        The method; point ``i`` is ``clone(estimator).set_params(**points[i])``.
    points : sequence of mapping
    Xs, ys : source rows and their labels.
    Xt : target rows (no label is ever passed).
    criteria : sequence of sequences of str
        The criteria of each point (names from :data:`CRITERIA`).
    predictions : sequence of ndarray, optional
        Each point's target predictions from an earlier fit: no forward fit then, and only
        ``"class_entropy"``, ``"reverse"`` and ``"iwcv"`` can be asked for (not the
        decision-value criteria ``"entropy"`` and ``"snd"``).
    n_folds, seed : IWCV folds and fold seed.
    batched : bool
        Let the method share work across points (``fit_path``); False: one fit per point.
    **fit_params
        Fit metadata of every fit (e.g. ``column_groups``).

    Returns
    -------
    list of PointCriteria
        One per point, in order.

    Raises
    ------
    ValueError
        An unknown criterion, or ``"entropy"`` asked for with ``predictions``.
    """
    points = [dict(p) for p in points]
    criteria = [list(c) for c in criteria]
    if len(criteria) != len(points):
        raise ValueError(f"{len(criteria)} criteria lists for {len(points)} points")
    bad = sorted({c for cs in criteria for c in cs} - set(CRITERIA))
    if bad:
        raise ValueError(f"unknown criteria {bad}; expected some of {CRITERIA}")
    Xs, Xt, ys = np.asarray(Xs, dtype=float), np.asarray(Xt, dtype=float), np.asarray(ys)
    n = len(points)
    if predictions is None:
        X, sd = _stacked(Xs, len(Xt), Xt)
        fits = estimator.fit_path(
            X, _labels(ys, len(Xt)), sd, points, batched=batched, **fit_params
        )
        preds = [f.predictions for f in fits]
        scores = [f.decision_values for f in fits]
        seconds = [f.seconds for f in fits]
    else:
        need = sorted({c for cs in criteria for c in cs} & set(SCORE_CRITERIA))
        if need:
            names = ", ".join(repr(c) for c in need)
            verb = "needs" if len(need) == 1 else "need"
            raise ValueError(f"{names} {verb} the forward fit's decision values, not predictions")
        preds, scores, seconds = [np.asarray(p) for p in predictions], [None] * n, [0.0] * n
    values: list[dict[str, float]] = [{} for _ in points]
    spent = np.zeros(n)
    for i, cs in enumerate(criteria):
        t0 = time.perf_counter()
        for c in cs:
            if c == "entropy":
                values[i][c] = prediction_entropy(scores[i])
            elif c == "class_entropy":
                values[i][c] = class_entropy(preds[i])
            elif c == "snd":
                values[i][c] = soft_neighborhood_density(scores[i])
        spent[i] += time.perf_counter() - t0
    for name in ("reverse", "iwcv"):
        idx = [i for i, cs in enumerate(criteria) if name in cs]
        if not idx:
            continue
        t0 = time.perf_counter()
        pts = [points[i] for i in idx]
        if name == "reverse":
            got = reverse_validation(estimator, pts, Xs, ys, Xt, [preds[i] for i in idx],
                                     batched=batched, **fit_params)  # fmt: skip
        else:
            got = iwcv(estimator, pts, Xs, ys, Xt, n_folds=n_folds, seed=seed, batched=batched,
                       **fit_params)  # fmt: skip
        spent[idx] += (time.perf_counter() - t0) / len(idx)
        for i, v in zip(idx, got, strict=True):
            values[i][name] = v
    return [
        PointCriteria(
            p, preds[i], {c: values[i][c] for c in criteria[i]}, seconds[i], float(spent[i])
        )  # fmt: skip
        for i, p in enumerate(points)
    ]
