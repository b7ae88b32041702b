"""Published hyper-parameter grids and label-free selection for the CDMER DA methods.

The CDMER papers report the best result over a grid scored *with the target labels*
(an oracle). This module holds those grids as data and scores every grid point with
criteria that never see a target label, so that an honest pick can be reported next
to the oracle pick.

Grids
-----
:data:`PUBLISHED_GRIDS` holds the grids that do not depend on the data size, in the
constructor names of each registry method (:data:`merkit.adapt.METHODS`);
:func:`published_grid` returns the grid of any registry method, including the
subspace dimension ``k = 1 .. kmax`` of TCA, GFK and SA (``kmax`` from the sizes,
:func:`subspace_kmax`). Values are rounded to 10 decimals and duplicates that the
published ranges produce (e.g. ``0.01`` ends ``0.001:0.0002:0.01`` and starts
``0.01:0.002:0.1``; uLSIF's ``{1..100} x {1, 10, ...}`` repeats 10, 20, ...) are kept
once, in first-appearance order. Nested estimator parameters use scikit-learn's
``"__"`` convention: uLSIF's lambda is ``{"weighting__lam": ...}``; build estimators
from such dicts with :func:`make_estimator`.

Criteria (higher is better for every one)
-----------------------------------------
``"entropy"``
    Minus the mean per-sample Shannon entropy (nats) of ``softmax(scores)`` on the
    target rows, where the scores are the method's decision values
    (:func:`target_scores`: ``decision_function``, or the inner SVM's decision values
    on the features it classifies). Minimum-entropy selection (Grandvalet & Bengio
    2005; skada's ``PredictionEntropyScorer``). Scale-dependent: decision values are
    not probabilities, so it favours large-margin / large-scale scores; and it
    rewards confident collapse onto one class.
``"class_entropy"``
    Entropy (nats) of the predicted class distribution on the target rows (higher =
    more balanced predictions). Needs predictions only; guards against collapse.
``"reverse"``
    Reverse (circular) validation (Zhong et al., ECML PKDD 2010): fit on (source,
    target), pseudo-label the target, fit the same method and parameters with the
    domains swapped (pseudo-labelled target as source, source as unlabelled target)
    and score macro-F1 on the true source labels. 0 when the pseudo-labels hold < 2
    classes (the swapped fit is impossible).
``"iwcv"``
    Importance-weighted cross-validation (Sugiyama et al., JMLR 2007; skada's
    ``ImportanceWeightedScorer``): stratified k-fold over the source rows, each fold
    fitted with the target rows as unlabelled target, held-out source predictions
    scored by weighted macro-F1 with KMM weights (median-width RBF, mean 1) that
    estimate p_target / p_source. k + 1 fits per grid point.

Selection
---------
:func:`select` picks, from a table of grid rows (a ``params`` column of canonical
JSON plus criterion columns), the row with the largest value of a column. NaN
values are never picked. Ties (equal values) go to the method's documented default
point (:data:`DEFAULTS`) when it is among the tied rows, otherwise to the first tied
row in table (grid) order. The same function gives the oracle pick when the column
is a target-label metric such as ``mean_f1``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold

from merkit.adapt import METHODS, PRESETS, make_method
from merkit.adapt.base import DomainAdaptationClassifier
from merkit.adapt.reweight import KMM, WEIGHTINGS
from merkit.store import params_to_json

log = logging.getLogger(__name__)

__all__ = [
    "CRITERIA",
    "DEFAULTS",
    "PUBLISHED_GRIDS",
    "SUBSPACE_METHODS",
    "class_entropy",
    "evaluate_unlabelled",
    "iwcv_score",
    "make_estimator",
    "published_grid",
    "reverse_validation",
    "score_grid",
    "score_unlabelled",
    "select",
    "softmax_entropy",
    "subspace_kmax",
    "target_scores",
]

#: label-free criteria (higher is better)
CRITERIA: tuple[str, ...] = ("entropy", "class_entropy", "reverse", "iwcv")


def _range(start: float, stop: float, step: float) -> list[float]:
    """MATLAB ``start:step:stop`` (inclusive), rounded to 10 decimals."""
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [float(round(start + i * step, 10)) for i in range(n)]


def _unique(values: Iterable[float]) -> list[float]:
    out: list[float] = []
    seen: set[float] = set()
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _product(**axes: Sequence) -> list[dict]:
    keys = list(axes)
    rows: list[dict] = [{}]
    for k in keys:
        rows = [{**r, k: v} for r in rows for v in axes[k]]
    return rows


#: STM lambda and the mu of TSRG / DRFS-T / DRLS (benchmark, Sec. 4)
_FINE = _range(0.001, 0.009, 0.001) + _range(0.01, 0.09, 0.01) + _range(0.1, 1, 0.1)
_STM_LAM = _unique(_FINE + _range(2, 100, 1) + [1000.0, 10000.0])
_DR_MU = _unique(_FINE + _range(2, 10, 1))
_DR_LAM = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0]
_ULSIF_LAM = _unique(
    round(float(a * t), 10) for t in (1, 10, 100, 1e3, 1e4, 1e5) for a in range(1, 101)
)
_TGSR_XI = _unique(
    _range(0.001, 0.01, 0.0002)
    + _range(0.01, 0.1, 0.002)
    + _range(0.1, 1, 0.02)
    + _range(1, 10, 0.2)
    + _range(10, 100, 2)
    + _range(100, 1000, 20)
)
_TGSR_KAPPA = list(range(1, 86))

#: published grids that do not depend on the data size (constructor parameter names)
PUBLISHED_GRIDS: dict[str, list[dict]] = {
    "svm": [{}],
    "kmm": [{}],  # B = 1000, eps = (sqrt(ns) - 1) / sqrt(ns): fixed (TSRG paper)
    "kliep": [{}],  # no parameter (TSRG paper)
    "ulsif": [{"weighting__lam": v} for v in _ULSIF_LAM],
    "tkl": [{"damping": v} for v in _range(0.1, 5, 0.1)],
    "stm": [{"lam": v} for v in _STM_LAM],
    "tsrg": _product(lam=_DR_LAM, mu=_DR_MU),
    "drfs_t": _product(lam=_DR_LAM, mu=_DR_MU),
    "drls": _product(lam=_DR_LAM, mu=_DR_MU),
    "tgsr": _product(kappa=_TGSR_KAPPA, xi=_TGSR_XI),
    "coral": [{}],  # not in the benchmark; reg = 1 as in Sun et al.
}

#: methods searched over the subspace dimension k = 1 .. kmax (``n_components``)
SUBSPACE_METHODS: tuple[str, ...] = ("tca", "gfk", "sa")


def _default_point(name: str, keys: Iterable[str]) -> dict:
    cls = METHODS[name]
    params = cls(**PRESETS.get(name, {})).get_params(deep=False)
    out = {}
    for k in keys:
        if "__" in k:
            outer, inner = k.split("__", 1)
            w = params[outer]
            est = WEIGHTINGS[w]() if isinstance(w, str) else w
            out[k] = est.get_params()[inner]
        else:
            out[k] = params[k]
    return out


#: each method's documented default point in the coordinates of its grid
DEFAULTS: dict[str, dict] = {
    **{m: _default_point(m, g[0].keys()) for m, g in PUBLISHED_GRIDS.items()},
    **{m: _default_point(m, ["n_components"]) for m in SUBSPACE_METHODS},
}


def subspace_kmax(method: str, n_source: int, n_target: int) -> int:
    """Largest subspace dimension of TCA (``ns + nt - 1``) or GFK / SA (``min(ns, nt) - 1``).

    The benchmark searches "all possible dimensions"; these are the ranks available
    to a centred PCA basis (GFK, SA) and to the TCA eigenproblem on ``ns + nt`` rows.
    """
    key = method.lower()
    if key not in SUBSPACE_METHODS:
        raise ValueError(f"{method!r} is not a subspace method; expected one of {SUBSPACE_METHODS}")
    if n_source < 2 or n_target < 2:
        raise ValueError(f"need >= 2 source and target rows, got {n_source}, {n_target}")
    return n_source + n_target - 1 if key == "tca" else min(n_source, n_target) - 1


def published_grid(
    method: str, n_source: int | None = None, n_target: int | None = None
) -> list[dict]:
    """The published search space of a registry method as a list of parameter dicts.

    Parameters
    ----------
    method : str
        Registry name (case-insensitive).
    n_source, n_target : int, optional
        Sizes of the two domains; required for TCA, GFK and SA (k = 1 .. kmax).

    Raises
    ------
    ValueError
        Unknown method, or missing sizes for a subspace method.
    """
    key = str(method).strip().lower()
    if key in SUBSPACE_METHODS:
        if n_source is None or n_target is None:
            raise ValueError(f"published_grid({key!r}) needs n_source and n_target (k = 1..kmax)")
        return [{"n_components": k} for k in range(1, subspace_kmax(key, n_source, n_target) + 1)]
    if key not in PUBLISHED_GRIDS:
        raise ValueError(
            f"no published grid for {method!r}; known: "
            f"{', '.join(sorted([*PUBLISHED_GRIDS, *SUBSPACE_METHODS]))}"
        )
    return [dict(p) for p in PUBLISHED_GRIDS[key]]


def make_estimator(method: str, params: Mapping | str | None = None) -> DomainAdaptationClassifier:
    """Build a registry method from a parameter dict or its JSON (nested ``a__b`` keys work);
    see :func:`merkit.adapt.make_method`."""
    return make_method(method, params)


# --------------------------------------------------------------------------- criteria
def softmax_entropy(S: np.ndarray) -> np.ndarray:
    """Entropy of the softmax of decision scores ``S`` (m, c) (or (m,) binary), per row."""
    S = np.asarray(S, dtype=float)
    if S.ndim == 1:  # binary: decision value of the positive class
        S = np.column_stack([-S / 2, S / 2])
    Z = S - S.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    return -(P * np.log(np.clip(P, 1e-300, None))).sum(axis=1)


def target_scores(est: DomainAdaptationClassifier, X: np.ndarray) -> np.ndarray | None:
    """Decision values of a fitted method on rows ``X``, or None when none exist.

    ``decision_function`` when the method has one; otherwise the inner ``svm_``'s
    decision values on the first of ``transform(X)``, ``regenerate(X)``, ``X`` whose
    SVM predictions equal ``est.predict(X)`` (i.e. the features it really classifies).
    """
    if hasattr(est, "decision_function"):
        return np.asarray(est.decision_function(X), dtype=float)
    svm = getattr(est, "svm_", None)
    if svm is None or not hasattr(svm, "decision_function"):
        return None
    pred = est.predict(X)
    for attr in ("transform", "regenerate", None):
        if attr is not None and not hasattr(est, attr):
            continue
        Z = X if attr is None else getattr(est, attr)(X)
        try:
            if np.array_equal(svm.predict(Z), pred):
                return np.asarray(svm.decision_function(Z), dtype=float)
        except ValueError:
            continue
    return None


def _fit(method: str, params, Xs, ys, Xt) -> DomainAdaptationClassifier:
    X = np.vstack([Xs, Xt])
    y = np.r_[np.asarray(ys), -np.ones(len(Xt), dtype=np.int64)]
    sd = np.r_[np.ones(len(Xs), dtype=np.int64), -np.ones(len(Xt), dtype=np.int64)]
    return make_estimator(method, params).fit(X, y, sd)


def class_entropy(pred: np.ndarray) -> float:
    """Entropy of the predicted class distribution (higher = less collapsed)."""
    _, counts = np.unique(pred, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def reverse_validation(method, params, Xs, ys, Xt, pred_t) -> float:
    """Reverse validation: fit with the domains swapped on the target pseudo-labels
    ``pred_t``, score macro-F1 on the labelled source (0 when ``pred_t`` has one class)."""
    if np.unique(pred_t).size < 2:
        return 0.0
    back = _fit(method, params, Xt, pred_t, Xs)
    return float(f1_score(ys, back.predict(Xs), average="macro"))


def iwcv_score(method, params, Xs, ys, Xt, n_folds: int, seed: int) -> float:
    """Importance-weighted source cross-validation (KMM weights, mean 1): weighted
    macro-F1 of the pooled out-of-fold predictions (``n_folds`` stratified folds)."""
    w = KMM().fit(Xs, Xt).weights_
    w = w / w.mean() if w.sum() > 0 else np.ones(len(Xs))
    _, counts = np.unique(ys, return_counts=True)
    k = int(min(n_folds, counts.min()))
    if k < 2:
        raise ValueError(f"iwcv needs >= 2 source rows per class, got class counts {counts}")
    pred = np.empty_like(np.asarray(ys))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(Xs, ys):
        pred[te] = _fit(method, params, Xs[tr], ys[tr], Xt).predict(Xs[te])
    return float(f1_score(ys, pred, average="macro", sample_weight=w))


def evaluate_unlabelled(
    method: str,
    params: Mapping | str | None,
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    criteria: Sequence[str] = ("entropy", "class_entropy", "reverse"),
    *,
    n_folds: int = 5,
    seed: int = 0,
) -> tuple[dict[str, float], np.ndarray]:
    """Fit once on (source, unlabelled target) and compute several label-free criteria.

    Parameters
    ----------
    method, params : registry name and parameters (dict or JSON; nested ``a__b`` keys).
    Xs : ndarray (ns, d)
    ys : ndarray (ns,)
        Source labels.
    Xt : ndarray (nt, d)
        Target rows (no labels are ever passed).
    criteria : sequence of str
        Names from :data:`CRITERIA`.
    n_folds, seed : IWCV folds and fold seed.

    Returns
    -------
    values : dict
        Criterion -> value (higher is better; NaN when "entropy" has no scores).
    pred_target : ndarray (nt,)
        The forward fit's target predictions.
    """
    bad = [c for c in criteria if c not in CRITERIA]
    if bad:
        raise ValueError(f"unknown criteria {bad}; expected some of {CRITERIA}")
    Xs, Xt = np.asarray(Xs, dtype=float), np.asarray(Xt, dtype=float)
    ys = np.asarray(ys)
    est = _fit(method, params, Xs, ys, Xt)
    pred = np.asarray(est.predict(Xt))
    out: dict[str, float] = {}
    for c in criteria:
        if c == "entropy":
            S = target_scores(est, Xt)
            out[c] = float("nan") if S is None else -float(softmax_entropy(S).mean())
        elif c == "class_entropy":
            out[c] = class_entropy(pred)
        elif c == "reverse":
            out[c] = reverse_validation(method, params, Xs, ys, Xt, pred)
        else:
            out[c] = iwcv_score(method, params, Xs, ys, Xt, n_folds, seed)
    return out, pred


def score_unlabelled(
    method: str,
    params: Mapping | str | None,
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    criterion: str,
    *,
    n_folds: int = 5,
    seed: int = 0,
) -> float:
    """One label-free criterion value (higher is better) of ``method`` with ``params``.

    See the module docstring for the criteria; no target label is used.
    """
    vals, _ = evaluate_unlabelled(
        method, params, Xs, ys, Xt, [criterion], n_folds=n_folds, seed=seed
    )
    return vals[criterion]


def score_grid(
    method: str,
    grid: Sequence[Mapping],
    Xs: np.ndarray,
    ys: np.ndarray,
    Xt: np.ndarray,
    yt: np.ndarray | None = None,
    criteria: Sequence[str] = ("entropy", "class_entropy", "reverse"),
    *,
    n_folds: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Table of grid rows: ``params`` (canonical JSON), one column per criterion and,
    when ``yt`` is given, the oracle columns ``mean_f1`` and ``accuracy`` (target labels
    are used only for these, after the fit and the criteria).
    """
    rows = []
    for p in grid:
        vals, pred = evaluate_unlabelled(
            method, p, Xs, ys, Xt, criteria, n_folds=n_folds, seed=seed
        )
        row = {"params": params_to_json(p), **vals}
        if yt is not None:
            row["mean_f1"] = float(f1_score(yt, pred, average="macro"))
            row["accuracy"] = float(accuracy_score(yt, pred))
        rows.append(row)
    return pd.DataFrame(rows)


def select(
    grid_rows: pd.DataFrame,
    criterion: str,
    *,
    method: str | None = None,
    default: Mapping | None = None,
) -> pd.Series:
    """The grid row with the largest ``criterion`` value.

    Parameters
    ----------
    grid_rows : DataFrame
        One row per grid point, in grid order, with a ``params`` column (JSON or dict)
        and the column ``criterion`` (higher is better; NaN rows are never picked).
    criterion : str
        Column to maximise (a label-free criterion, or e.g. ``"mean_f1"`` for the oracle).
    method : str, optional
        Registry name; its :data:`DEFAULTS` point breaks ties.
    default : mapping, optional
        Tie-break point (overrides ``method``'s default).

    Returns
    -------
    Series
        The chosen row (its index label is the row's label in ``grid_rows``).

    Raises
    ------
    ValueError
        Missing columns or no finite value in the column.
    """
    for col in ("params", criterion):
        if col not in grid_rows.columns:
            raise ValueError(
                f"select: grid_rows has no column {col!r}; columns: {list(grid_rows.columns)}"
            )
    v = pd.to_numeric(grid_rows[criterion], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        raise ValueError(f"select: no finite {criterion!r} value among {len(v)} grid rows")
    best = v[ok].max()
    tied = np.flatnonzero(ok & (v == best))
    if default is None and method is not None:
        default = DEFAULTS.get(str(method).strip().lower())
    if default is not None and len(tied) > 1:
        want = json.loads(params_to_json(default))
        for i in tied:
            have = json.loads(params_to_json(grid_rows["params"].iloc[i]))
            if all(have.get(k) == val for k, val in want.items()):
                return grid_rows.iloc[i]
    return grid_rows.iloc[tied[0]]
