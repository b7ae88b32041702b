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
``"snd_guarded"``
    ``"snd"`` with a collapse guard: NaN (never chosen) for a point whose predicted class
    distribution on the target rows has an entropy below :data:`COLLAPSE_FRACTION` (1/2)
    of ``log K`` (``K`` source classes), else its SND. With 3 classes it drops e.g.
    (0.9, 0.05, 0.05) (entropy 0.39 < 0.55) and every one-class point, and keeps a
    two-class (0.5, 0.5, 0) (0.69) or a (0.6, 0.3, 0.1) (0.90) split. The fraction is set
    a priori (half the entropy of a balanced prediction), not tuned on target labels.
``"dev"``
    Deep Embedded Validation (You, Wang, Chen, Wang & Jordan, "Towards Accurate Model
    Selection in Deep Unsupervised Domain Adaptation", ICML 2019,
    https://proceedings.mlr.press/v97/you19a.html): the out-of-fold source predictions of
    ``"iwcv"``'s folds, their 0/1 losses weighted by the density ratio ``w = p_t / p_s``
    of :func:`density_ratio` (a logistic-regression domain classifier in a whitened PCA
    projection of the source and target rows, no labels), and DEV's control variate
    (:func:`dev_risk`). The value is minus the risk. 0/1 loss rather than the paper's
    cross-entropy: not every method has class scores, and decision values of different
    methods are on different scales. Shares the k refits of ``"iwcv"`` when both are asked.

``"mixval_inter"``, ``"mixval_intra"``, ``"mixval"``
    MixVal (Hu, Liang, Liew, Xue, Bai & Wang, "Mixed Samples as Probes for Unsupervised
    Model Selection in Domain Adaptation", NeurIPS 2023, https://openreview.net/forum?id=
    ackajXqei2), as in the authors' released code (``val_mixval_inter.py``,
    ``val_mixval_intra.py``): the forward fit's target predictions are pseudo-labels;
    target rows are mixed in pairs, ``x = 0.55 x_a + 0.45 x_b`` (:data:`MIXVAL_LAMBDA`),
    and the fitted model (refitted, deterministic) predicts the mixed rows; the value is
    the accuracy of those predictions against ``a``'s pseudo-label (the argmax of the
    mixed pseudo-label). Pairs: the rows in batches of 128 (:data:`MIXVAL_BATCH`), each
    row with its mirror in the batch. Inter-cluster: rows in a seeded random order, pairs
    with different pseudo-labels only; intra-cluster: rows sorted by pseudo-label, pairs
    with equal ones only. NaN when a point has no such pair (e.g. a one-class point has no
    inter-cluster pair). ``"mixval"`` is the mean of the two (the released code scores
    them in two scripts and does not combine them; the mean is merkit's choice, fixed in
    advance). One refit per point (all points' probes in one ``fit_path`` call).

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

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from merkit.adapt.base import MASKED_LABEL, DomainAdaptationClassifier, softmax
from merkit.adapt.reweight import KMM

log = logging.getLogger(__name__)

__all__ = [
    "CRITERIA",
    "FORWARD_CRITERIA",
    "PointCriteria",
    "agreement",
    "class_entropy",
    "density_ratio",
    "dev_risk",
    "evaluate_points",
    "guarded_snd",
    "ice",
    "iwcv",
    "mixval_pairs",
    "mixval_scores",
    "prediction_entropy",
    "probabilities",
    "reverse_validation",
    "row_entropy",
    "soft_neighborhood_density",
    "softmax_entropy",
    "vote",
]

#: label-free criteria (higher is better)
CRITERIA: tuple[str, ...] = (
    "entropy", "class_entropy", "reverse", "iwcv", "snd", "snd_guarded", "dev",
    "mixval", "mixval_inter", "mixval_intra",
)  # fmt: skip
#: the criteria read off the forward fit (its target predictions and decision values)
FORWARD_CRITERIA: tuple[str, ...] = ("entropy", "class_entropy", "snd", "snd_guarded")
#: the criteria that need the forward fit's decision values (not only its predictions)
SCORE_CRITERIA: tuple[str, ...] = ("entropy", "snd", "snd_guarded")
#: the criteria computed from out-of-fold source predictions (k refits per point)
FOLD_CRITERIA: tuple[str, ...] = ("iwcv", "dev")
#: the criteria that predict mixed target rows (one refit per point)
MIXVAL_CRITERIA: tuple[str, ...] = ("mixval", "mixval_inter", "mixval_intra")
#: MixVal's mixing ratio of the pair's first row (the authors' code: ``--lam 0.55``)
MIXVAL_LAMBDA = 0.55
#: MixVal pairs each row with its mirror within consecutive batches of this many rows
#: (the authors' code: ``--bs 128``, ``torch.arange(batch_size).flip(0)``)
MIXVAL_BATCH = 128
#: SND's softmax temperature (Saito et al. 2021, their code's default)
SND_TEMPERATURE = 0.05
#: ``"snd_guarded"``: a point is collapsed when its predicted-class entropy is below this
#: fraction of log(number of classes)
COLLAPSE_FRACTION = 0.5
#: DEV's domain classifier works in this many whitened principal components (at most)
DEV_COMPONENTS = 10
#: DEV's control variate is left out (beta = 0) when the weights' variance is below this
DEV_MIN_VARIANCE = 1e-10


def row_entropy(P: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of every row of probabilities ``P`` (m, c)."""
    P = np.asarray(P, dtype=float)
    return -(P * np.log(np.clip(P, 1e-300, None))).sum(axis=1)


def probabilities(S: np.ndarray) -> np.ndarray:
    """``softmax`` of decision scores (m, c), or of (m,) binary ones as (-s/2, s/2)."""
    S = np.asarray(S, dtype=float)
    if S.ndim == 1:  # binary: decision value of the positive class
        S = np.column_stack([-S / 2, S / 2])
    return softmax(S)


def softmax_entropy(S: np.ndarray) -> np.ndarray:
    """Entropy of the softmax of decision scores ``S`` (m, c) (or (m,) binary), per row."""
    return row_entropy(probabilities(S))


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
    P = probabilities(S)
    m = len(P)
    if m < 3:
        return float("nan")
    F = P / np.clip(np.linalg.norm(P, axis=1, keepdims=True), 1e-12, None)
    M = F @ F.T
    M = M[~np.eye(m, dtype=bool)].reshape(m, m - 1)
    return float(row_entropy(softmax(M / float(temperature))).mean())


def guarded_snd(
    S: np.ndarray | None,
    pred: np.ndarray,
    n_classes: int,
    *,
    fraction: float = COLLAPSE_FRACTION,
    temperature: float = SND_TEMPERATURE,
) -> float:
    """The ``"snd_guarded"`` criterion: :func:`soft_neighborhood_density` of ``S``, or NaN
    when the predictions ``pred`` (m,) are collapsed, i.e. their :func:`class_entropy` is
    below ``fraction * log(n_classes)``.

    Raises
    ------
    ValueError
        ``n_classes`` < 2 or ``fraction`` outside [0, 1].
    """
    if n_classes < 2:
        raise ValueError(f"guarded_snd: n_classes must be >= 2, got {n_classes}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"guarded_snd: fraction must be in [0, 1], got {fraction}")
    if class_entropy(pred) < fraction * np.log(n_classes) - 1e-12:
        return float("nan")
    return soft_neighborhood_density(S, temperature)


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


def mixval_pairs(
    pseudo: np.ndarray, kind: str, *, seed: int = 0, batch: int = MIXVAL_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """MixVal's probe pairs ``(a, b)`` (row positions, each (p,)) of target rows with
    pseudo-labels ``pseudo`` (nt,).

    The rows are ordered (``"inter"``: a random permutation drawn with ``seed``;
    ``"intra"``: sorted by pseudo-label, stable), cut into consecutive batches of
    ``batch`` rows, and each row is paired with its mirror in its batch (the first with
    the last, ...). ``"inter"`` keeps the pairs whose pseudo-labels differ, ``"intra"``
    the pairs whose pseudo-labels are equal (a batch of odd length pairs its middle row
    with itself). Both orders of a pair appear, as in the authors' code.

    Raises
    ------
    ValueError
        ``kind`` is not "inter" or "intra", or ``batch`` < 1.
    """
    pseudo = np.asarray(pseudo)
    if kind not in ("inter", "intra"):
        raise ValueError(f"mixval_pairs: kind must be 'inter' or 'intra', got {kind!r}")
    if batch < 1:
        raise ValueError(f"mixval_pairs: batch must be >= 1, got {batch}")
    n = len(pseudo)
    if kind == "inter":
        order = np.random.default_rng(seed).permutation(n)
    else:
        order = np.argsort(pseudo, kind="stable")
    a = order
    b = np.concatenate([order[i : i + batch][::-1] for i in range(0, n, batch)]) if n else order
    keep = (pseudo[a] != pseudo[b]) if kind == "inter" else (pseudo[a] == pseudo[b])
    return a[keep], b[keep]


def ice(pred_mixed: np.ndarray, pseudo_a: np.ndarray) -> float:
    """MixVal's ICE score: the fraction of mixed probes predicted as their first row's
    pseudo-label (``pred_mixed``, ``pseudo_a``: (p,)); NaN without probes."""
    pred_mixed, pseudo_a = np.asarray(pred_mixed), np.asarray(pseudo_a)
    return float("nan") if len(pseudo_a) == 0 else float((pred_mixed == pseudo_a).mean())


def mixval_scores(
    estimator: DomainAdaptationClassifier,
    points: Sequence[Mapping],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    pseudo_labels: Sequence[np.ndarray],
    *,
    seed: int = 0,
    lam: float = MIXVAL_LAMBDA,
    batched: bool = True,
    **fit_params,
) -> list[dict[str, float]]:
    """``"mixval_inter"``, ``"mixval_intra"`` and ``"mixval"`` of several points.

    Point ``i``'s pseudo-labels are ``pseudo_labels[i]`` (its forward fit's target
    predictions); its probes are :func:`mixval_pairs` of them, mixed as
    ``lam x_a + (1 - lam) x_b``. All points are refitted on (source, unlabelled target)
    in one ``fit_path`` call that predicts every distinct probe of every point once.
    """
    Xs, Xt = np.asarray(Xs, dtype=float), np.asarray(Xt, dtype=float)
    pairs = [{k: mixval_pairs(pl, k, seed=seed) for k in ("inter", "intra")}
             for pl in pseudo_labels]  # fmt: skip
    row: dict[tuple[int, int], int] = {}
    for pp in pairs:
        for a, b in pp.values():
            for key in zip(a.tolist(), b.tolist(), strict=True):
                row.setdefault(key, len(row))
    out = [dict.fromkeys(("mixval_inter", "mixval_intra", "mixval"), float("nan"))
           for _ in points]  # fmt: skip
    if not row:
        return out
    ab = np.array(list(row), dtype=np.int64)
    X_mix = lam * Xt[ab[:, 0]] + (1.0 - lam) * Xt[ab[:, 1]]
    X, sd = _stacked(Xs, len(Xt), Xt)
    fits = estimator.fit_path(X, _labels(ys, len(Xt)), sd, list(points), X_eval=X_mix,
                              batched=batched, **fit_params)  # fmt: skip
    for i, (pp, pl, f) in enumerate(zip(pairs, pseudo_labels, fits, strict=True)):
        pl = np.asarray(pl)
        for kind, (a, b) in pp.items():
            at = np.array([row[k] for k in zip(a.tolist(), b.tolist(), strict=True)],
                          dtype=np.int64)  # fmt: skip
            out[i][f"mixval_{kind}"] = ice(np.asarray(f.predictions)[at], pl[a])
        out[i]["mixval"] = float(np.mean([out[i]["mixval_inter"], out[i]["mixval_intra"]]))
    return out


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


def _folds(ys: np.ndarray, n_folds: int, seed: int, name: str) -> StratifiedKFold:
    _, counts = np.unique(ys, return_counts=True)
    k = int(min(n_folds, counts.min()))
    if k < 2:
        raise ValueError(f"{name} needs >= 2 source rows per class, got class counts {counts}")
    return StratifiedKFold(k, shuffle=True, random_state=seed)


def out_of_fold_predictions(
    estimator: DomainAdaptationClassifier,
    points: Sequence[Mapping],
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    folds: StratifiedKFold,
    *,
    batched: bool = True,
    name: str = "iwcv",
    **fit_params,
) -> list[np.ndarray | None]:
    """Each point's predictions (ns,) of every source row from a fit that did not train on
    it: for every split of ``folds`` over the source rows of ``data = (Xs, ys, Xt)``, all
    points in one ``fit_path`` call (the other source rows labelled, the target rows
    unlabelled, the held-out source rows as evaluated rows). None for a point that cannot
    be fitted on a fold's fewer source rows (its fit raises ``ValueError``, e.g. a
    subspace dimension above the fold's maximum; ``name`` labels the warning); the others
    are then fitted one by one.
    """
    Xs, ys, Xt = data
    ys = np.asarray(ys)
    preds: list[np.ndarray | None] = [np.empty_like(ys) for _ in points]
    for tr, te in folds.split(Xs, ys):
        X, sd = _stacked(Xs[tr], len(Xt), Xt)
        y = _labels(ys[tr], len(Xt))
        todo = [i for i, p in enumerate(preds) if p is not None]
        try:
            fits = estimator.fit_path(X, y, sd, [points[i] for i in todo], X_eval=Xs[te],
                                      batched=batched, **fit_params)  # fmt: skip
        except ValueError:
            fits = []
            for i in todo:
                try:
                    (f,) = estimator.fit_path(X, y, sd, [points[i]], X_eval=Xs[te],
                                              batched=False, **fit_params)  # fmt: skip
                except ValueError as err:
                    log.warning("%s: point %s not fitted on a fold (%s): NaN", name,
                                points[i], err)  # fmt: skip
                    f = None
                fits.append(f)
        for i, f in zip(todo, fits, strict=True):
            if f is None:
                preds[i] = None
            else:
                preds[i][te] = f.predictions  # type: ignore[index]
    return preds


def _kmm_weights(Xs: np.ndarray, Xt: np.ndarray) -> np.ndarray:
    w = KMM().fit(Xs, Xt).weights_
    return w / w.mean() if w.sum() > 0 else np.ones(len(Xs))


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
    weighted macro-F1 of each point's pooled out-of-fold predictions
    (:func:`out_of_fold_predictions`).

    Raises
    ------
    ValueError
        A source class with fewer than 2 rows (no stratified folds).
    """
    got = _fold_criteria(estimator, points, (Xs, ys, Xt), [["iwcv"]] * len(points),
                         n_folds=n_folds, seed=seed, batched=batched, **fit_params)  # fmt: skip
    return [v["iwcv"] for v in got]


def _fold_criteria(
    estimator: DomainAdaptationClassifier,
    points: Sequence[Mapping],
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    criteria: Sequence[Sequence[str]],
    **kwargs,
) -> list[dict[str, float]]:
    """``"iwcv"`` and ``"dev"`` of the points that ask for them (``criteria[i]``) on
    ``data = (Xs, ys, Xt)``, from one set of :func:`out_of_fold_predictions` (``kwargs``:
    ``n_folds``, ``seed``, ``batched``, fit metadata)."""
    Xs, ys, Xt = data
    ys = np.asarray(ys)
    wants = [set(cs) & set(FOLD_CRITERIA) for cs in criteria]
    asked = set().union(*wants)
    name = "iwcv" if "iwcv" in asked else "dev"
    folds = _folds(ys, kwargs.pop("n_folds", 5), kwargs.pop("seed", 0), name)
    w = {"iwcv": _kmm_weights(Xs, Xt) if "iwcv" in asked else None,
         "dev": density_ratio(Xs, Xt) if "dev" in asked else None}  # fmt: skip
    oof = out_of_fold_predictions(estimator, points, (Xs, ys, Xt), folds, name=name, **kwargs)
    out = []
    for want, pred in zip(wants, oof, strict=True):
        if pred is None:
            out.append(dict.fromkeys(want, float("nan")))
            continue
        v = {}
        if "iwcv" in want:
            v["iwcv"] = float(f1_score(ys, pred, average="macro", sample_weight=w["iwcv"]))
        if "dev" in want:
            v["dev"] = -dev_risk((pred != ys).astype(float), w["dev"])
        out.append(v)
    return out


def density_ratio(
    Xs: np.ndarray, Xt: np.ndarray, *, n_components: int = DEV_COMPONENTS
) -> np.ndarray:
    """DEV's density ratio ``w(x) = p_t(x) / p_s(x)`` at the source rows, (ns,).

    PCA (whitened, full SVD) is fitted on the source and target rows together, no labels;
    in its first ``min(n_components, ns + nt - 1, d)`` components a logistic regression
    (L2, C = 1, classes balanced) tells target (1) from source (0) rows, and
    ``w = d / (1 - d)`` with ``d`` its target probability (clipped to [1e-6, 1 - 1e-6]);
    with balanced classes this is the ratio of the two densities. Identical domains give
    ``w = 1``.

    Raises
    ------
    ValueError
        An empty domain or rows of different widths.
    """
    Xs, Xt = np.asarray(Xs, dtype=float), np.asarray(Xt, dtype=float)
    if len(Xs) == 0 or len(Xt) == 0:
        raise ValueError(
            f"density_ratio: needs source and target rows, got {len(Xs)} and {len(Xt)}"
        )
    if Xs.shape[1:] != Xt.shape[1:]:
        raise ValueError(f"density_ratio: source width {Xs.shape[1:]} != target {Xt.shape[1:]}")
    X = np.vstack([Xs, Xt])
    k = int(min(n_components, len(X) - 1, X.shape[1]))
    Z = PCA(k, whiten=True, svd_solver="full").fit_transform(X) if k >= 1 else X
    dom = np.r_[np.zeros(len(Xs)), np.ones(len(Xt))]
    clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(Z, dom)
    d = np.clip(clf.predict_proba(Z[: len(Xs)])[:, 1], 1e-6, 1 - 1e-6)
    return d / (1 - d)


def dev_risk(losses: np.ndarray, weights: np.ndarray) -> float:
    """DEV's risk estimate with its control variate (You et al. 2019, Algorithm 1).

    ``L = w * loss``; ``beta = Cov(L, w) / Var(w)`` (sample moments, ddof 1) and the risk
    is ``mean(L) - beta * (mean(w) - 1)``: since ``E_s[w] = 1``, ``w`` is a control
    variate that removes the part of ``mean(L)``'s error that comes from ``mean(w) != 1``.
    ``beta = 0`` when ``Var(w)`` < :data:`DEV_MIN_VARIANCE` (constant weights).

    Raises
    ------
    ValueError
        ``losses`` and ``weights`` of different lengths, or fewer than 2 of them.
    """
    loss, w = np.asarray(losses, dtype=float), np.asarray(weights, dtype=float)
    if loss.shape != w.shape or loss.ndim != 1 or len(loss) < 2:
        raise ValueError(
            f"dev_risk: losses {loss.shape} and weights {w.shape} must be two equal 1-D "
            "arrays of at least 2 values"
        )
    L = w * loss
    var = float(np.var(w, ddof=1))
    beta = 0.0 if var < DEV_MIN_VARIANCE else float(np.cov(L, w, ddof=1)[0, 1]) / var
    return float(L.mean() - beta * (w.mean() - 1.0))


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
    probabilities : ndarray (nt, c) or None
        The forward fit's target class probabilities, :func:`probabilities` of its decision
        values (columns: the sorted source classes); None without decision values or when
        the predictions were given.
    """

    params: dict
    predictions: np.ndarray
    values: dict
    seconds: float
    criteria_seconds: float
    probabilities: np.ndarray | None = None


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
        ``"class_entropy"``, ``"reverse"``, ``"iwcv"``, ``"dev"`` and the MixVal criteria
        can be asked for (not the decision-value criteria of :data:`SCORE_CRITERIA`).
    n_folds, seed : IWCV / DEV folds and fold seed (also MixVal's inter-cluster order).
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
    n_classes = int(np.unique(ys).size)
    for i, cs in enumerate(criteria):
        t0 = time.perf_counter()
        for c in cs:
            if c == "entropy":
                values[i][c] = prediction_entropy(scores[i])
            elif c == "class_entropy":
                values[i][c] = class_entropy(preds[i])
            elif c == "snd":
                values[i][c] = soft_neighborhood_density(scores[i])
            elif c == "snd_guarded":
                values[i][c] = guarded_snd(scores[i], preds[i], n_classes)
        spent[i] += time.perf_counter() - t0
    idx = [i for i, cs in enumerate(criteria) if "reverse" in cs]
    if idx:
        t0 = time.perf_counter()
        pts, pls = [points[i] for i in idx], [preds[i] for i in idx]
        got = reverse_validation(estimator, pts, Xs, ys, Xt, pls, batched=batched, **fit_params)
        spent[idx] += (time.perf_counter() - t0) / len(idx)
        for i, v in zip(idx, got, strict=True):
            values[i]["reverse"] = v
    idx = [i for i, cs in enumerate(criteria) if set(cs) & set(MIXVAL_CRITERIA)]
    if idx:  # one refit of every asking point predicts all their mixed probes
        t0 = time.perf_counter()
        got = mixval_scores(estimator, [points[i] for i in idx], Xs, ys, Xt,
                            [preds[i] for i in idx], seed=seed, batched=batched,
                            **fit_params)  # fmt: skip
        spent[idx] += (time.perf_counter() - t0) / len(idx)
        for i, v in zip(idx, got, strict=True):
            values[i].update({c: v[c] for c in criteria[i] if c in MIXVAL_CRITERIA})
    idx = [i for i, cs in enumerate(criteria) if set(cs) & set(FOLD_CRITERIA)]
    if idx:  # iwcv and dev share the out-of-fold predictions
        t0 = time.perf_counter()
        got = _fold_criteria(estimator, [points[i] for i in idx], (Xs, ys, Xt),
                             [criteria[i] for i in idx], n_folds=n_folds, seed=seed,
                             batched=batched, **fit_params)  # fmt: skip
        spent[idx] += (time.perf_counter() - t0) / len(idx)
        for i, v in zip(idx, got, strict=True):
            values[i].update(v)
    return [
        PointCriteria(
            p,
            preds[i],
            {c: values[i][c] for c in criteria[i]},
            seconds[i],
            float(spent[i]),
            None if scores[i] is None else probabilities(scores[i]),
        )  # fmt: skip
        for i, p in enumerate(points)
    ]
