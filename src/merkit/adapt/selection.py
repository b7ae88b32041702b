"""Label-free selection over a hyper-parameter grid of a registry method.

The published grids are declared next to each method (:mod:`merkit.adapt.spec`) and read
through :func:`merkit.adapt.registry.published_grid`; the label-free criteria are those of
:mod:`merkit.adapt.criteria`. :func:`score_grid` scores every point of a grid with them
(and, given the target labels, with the oracle's mean-F1 and accuracy, computed after the
fits and the criteria), :func:`evaluate_unlabelled` / :func:`score_unlabelled` one point.

Selection
---------
:func:`select` picks, from a table of grid rows (a ``params`` column of canonical
JSON plus criterion columns), the row with the largest value of a column. NaN
values are never picked. Ties (equal values) go to the method's documented default
point (:func:`merkit.adapt.registry.default_point`) when it is among the tied rows,
otherwise to the first tied row in table (grid) order. The same function gives the
oracle pick when the column is a target-label metric such as ``mean_f1``.

Across methods
--------------
:func:`choose_across_methods` takes the grid rows of one task for *every* method and makes
the label-free choice of method and parameters: per criterion the row with its largest
value over all methods' points, the cross-method ``"agreement"``
(:func:`merkit.adapt.criteria.agreement`, computed there from the rows' predictions) and,
per criterion, three label-free ensembles (names parsed by :func:`parse_selection`):

``"vote:<criterion>"``
    The majority vote of each method's criterion-best point.
``"family:<criterion>"``
    The class-probability average (:func:`pooled_prediction`) of each method *family*'s
    criterion-best point (:data:`merkit.adapt.registry.FAMILIES`: reweighting, subspace,
    regenerator, stm), so that four near-identical reweighting methods weigh as one.
``"mean:<criterion>:<k>"``
    The class-probability average of the ``k`` points with the largest criterion values
    over all methods (ties in grid-row order).

A point's class probabilities are the ``softmax`` of its decision values (the grid rows'
``y_prob``), or its one-hot predictions when it has none. Target labels, when given, only
score the choices afterwards (and make the oracle row).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from merkit.adapt.criteria import agreement, evaluate_points, vote
from merkit.adapt.registry import METHODS, default_point, make_method, method_family
from merkit.store import params_to_json

log = logging.getLogger(__name__)

#: criteria computed across the methods of a task (from every grid point's predictions)
ACROSS_CRITERIA: tuple[str, ...] = ("agreement",)
#: the sizes k of the ``"mean:<criterion>:<k>"`` ensembles of :func:`choose_across_methods`
TOP_K: tuple[int, ...] = (5,)
#: the ensemble kinds of :func:`choose_across_methods` (the prefixes of their names)
ENSEMBLES: tuple[str, ...] = ("vote", "family", "mean")

__all__ = [
    "ACROSS_CRITERIA",
    "ENSEMBLES",
    "TOP_K",
    "choose_across_methods",
    "evaluate_unlabelled",
    "parse_selection",
    "pooled_prediction",
    "score_grid",
    "score_unlabelled",
    "select",
]


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
        Names from :data:`merkit.adapt.criteria.CRITERIA`.
    n_folds, seed : IWCV folds and fold seed.

    Returns
    -------
    values : dict
        Criterion -> value (higher is better; NaN when "entropy" has no scores).
    pred_target : ndarray (nt,)
        The forward fit's target predictions.
    """
    est = make_method(method, params)
    (point,) = evaluate_points(est, [{}], Xs, ys, Xt, [criteria], n_folds=n_folds, seed=seed)
    return point.values, point.predictions


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
    points = [json.loads(p) if isinstance(p, str) else dict(p) for p in grid]
    for p in points:  # unknown or fixed parameters fail before any fit
        make_method(method, p)
    scored = evaluate_points(make_method(method), points, Xs, ys, Xt,
                             [criteria] * len(points), n_folds=n_folds, seed=seed)  # fmt: skip
    rows = []
    for p, res in zip(points, scored, strict=True):
        row = {"params": params_to_json(p), **res.values}
        if yt is not None:
            row["mean_f1"] = float(f1_score(yt, res.predictions, average="macro"))
            row["accuracy"] = float(accuracy_score(yt, res.predictions))
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
        Registry name; its documented default point breaks ties.
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
    if default is None and method is not None and str(method).strip().lower() in METHODS:
        default = default_point(method)
    if default is not None and len(tied) > 1:
        want = json.loads(params_to_json(default))
        for i in tied:
            have = json.loads(params_to_json(grid_rows["params"].iloc[i]))
            if all(have.get(k) == val for k, val in want.items()):
                return grid_rows.iloc[i]
    return grid_rows.iloc[tied[0]]


def parse_selection(name: str) -> tuple[str, str, int | None]:
    """``(kind, criterion, k)`` of a selection name of :func:`choose_across_methods`.

    ``"oracle"`` -> ``("oracle", "", None)``; ``"reverse"`` -> ``("criterion", "reverse",
    None)``; ``"vote:reverse"`` / ``"family:reverse"`` -> ``("vote" / "family", "reverse",
    None)``; ``"mean:reverse:5"`` -> ``("mean", "reverse", 5)``.

    Raises
    ------
    ValueError
        An empty part, an unknown ensemble kind or a ``k`` that is not a positive integer.
    """
    parts = str(name).split(":")
    if any(not p for p in parts):
        raise ValueError(f"selection name {name!r} has an empty part")
    if len(parts) == 1:
        return ("oracle", "", None) if parts[0] == "oracle" else ("criterion", parts[0], None)
    kind = parts[0]
    if kind not in ENSEMBLES:
        raise ValueError(f"selection {name!r}: unknown ensemble {kind!r}; expected {ENSEMBLES}")
    if kind == "mean":
        if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1:
            raise ValueError(f"selection {name!r}: expected 'mean:<criterion>:<k>', k >= 1")
        return kind, parts[1], int(parts[2])
    if len(parts) != 2:
        raise ValueError(f"selection {name!r}: expected '{kind}:<criterion>'")
    return kind, parts[1], None


def pooled_prediction(probs: Sequence[np.ndarray]) -> np.ndarray:
    """The labels (m,) of the mean of several class-probability matrices (each (m, c),
    columns = labels 0..c-1); ties go to the smallest label.

    Raises
    ------
    ValueError
        No matrix, or matrices of different shapes.
    """
    if not len(probs):
        raise ValueError("pooled_prediction: no probability matrices")
    shapes = {np.shape(p) for p in probs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"pooled_prediction: matrices of shapes {sorted(shapes)}; need one (m, c)")
    return np.mean(np.stack([np.asarray(p, dtype=float) for p in probs]), axis=0).argmax(axis=1)


def _pred(value) -> np.ndarray:
    return np.asarray(json.loads(value) if isinstance(value, str) else value)


def _probs(rows: pd.DataFrame, preds: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each row's target class probabilities: its ``y_prob`` (JSON or array) when it has
    one, else its one-hot predictions; columns = labels 0..c-1 (c the widest ``y_prob``
    or the largest predicted label + 1)."""
    got: list[np.ndarray | None] = [None] * len(preds)
    if "y_prob" in rows.columns:
        for i, v in enumerate(rows["y_prob"]):
            if isinstance(v, str) and v.strip():
                got[i] = np.asarray(json.loads(v), dtype=float)
            elif isinstance(v, np.ndarray | list):
                got[i] = np.asarray(v, dtype=float)
    n = max(
        [int(p.max()) + 1 for p in preds if p.size] + [g.shape[1] for g in got if g is not None]
    )
    for i, p in enumerate(preds):
        if got[i] is None:
            if p.dtype == bool:
                p = p.astype(np.int64)
            if p.size and (not np.issubdtype(p.dtype, np.integer) or p.min() < 0):
                raise ValueError("choose_across_methods: y_pred must hold labels 0..c-1")
            got[i] = np.eye(n)[p.astype(np.int64)]
    return got  # type: ignore[return-value]


def _params(r: pd.Series) -> dict:
    return json.loads(params_to_json(
        json.loads(r["params"]) if isinstance(r["params"], str) else r["params"]))  # fmt: skip


def _ensemble(name: str, members: Sequence[pd.Series], pred: np.ndarray, f1_of) -> dict:
    """A choice row of an ensemble of ``members`` (grid rows) predicting ``pred``."""
    methods = [str(r["method"]) for r in members]
    if len(set(methods)) == len(methods):
        params = {m: _params(r) for m, r in zip(methods, members, strict=True)}
    else:  # several points of one method: [[method, params], ...] in rank order
        params = [[m, _params(r)] for m, r in zip(methods, members, strict=True)]
    return {"selection": name, "method": "+".join(methods),
            "params": json.dumps(params, sort_keys=True, separators=(",", ":")),
            "value": float("nan"), "mean_f1": f1_of(pred)}  # fmt: skip


def choose_across_methods(
    rows: pd.DataFrame,
    criteria: Sequence[str],
    y_true: np.ndarray | None = None,
    *,
    ensembles: bool = True,
    top_k: Sequence[int] = TOP_K,
) -> pd.DataFrame:
    """The label-free choices of method and parameters among one task's grid rows.

    Parameters
    ----------
    rows : DataFrame
        The grid rows of one task (one seed), every method: columns ``method``,
        ``params``, ``y_pred`` (target predictions, labels 0..c-1: JSON list or array),
        optionally ``y_prob`` (target class probabilities (m, c): JSON rows or array; empty
        for a point without decision values), one column per criterion and optionally
        ``mean_f1`` (the oracle score of the row).
    criteria : sequence of str
        Per-point criteria to choose by (columns of ``rows``; higher is better; rows
        with NaN never chosen). ``"agreement"`` is computed here over every row.
    y_true : ndarray, optional
        Target labels: used only to score the choices (``mean_f1``) and the ensembles,
        after they are made.
    ensembles : bool
        Also the ``"vote:<criterion>"``, ``"family:<criterion>"`` and
        ``"mean:<criterion>:<k>"`` rows (module docstring).
    top_k : sequence of int
        The ``k`` of the ``"mean"`` ensembles.

    Returns
    -------
    DataFrame
        One row per selection: ``selection`` (``"oracle"`` when ``mean_f1`` is known,
        then per criterion: the criterion and its ensembles), ``method`` (for an ensemble,
        its members joined by ``+``), ``params`` (for an ensemble, JSON of ``{method:
        params}``, or ``[[method, params], ...]`` when a method has several members),
        ``value`` (the criterion value of the chosen row; NaN for ensembles and the
        oracle) and ``mean_f1`` (NaN when neither ``y_true`` nor a ``mean_f1`` column is
        given). A criterion without a finite value on any row is left out.
    """
    if rows.empty:
        raise ValueError("choose_across_methods: no grid rows")
    for col in ("method", "params", "y_pred"):
        if col not in rows.columns:
            raise ValueError(f"choose_across_methods: the rows have no {col!r} column")
    bad_k = [k for k in top_k if int(k) < 1]
    if bad_k:
        raise ValueError(f"choose_across_methods: top_k values must be >= 1, got {bad_k}")
    on = rows.reset_index(drop=True).copy()
    preds = [_pred(v) for v in on["y_pred"]]
    probs = _probs(on, preds) if ensembles else []
    on["agreement"] = agreement(preds, on["method"].astype(str).tolist())

    def f1_of(pred: np.ndarray, row: pd.Series | None = None) -> float:
        if y_true is not None:
            return float(f1_score(y_true, pred, average="macro"))
        if row is not None and "mean_f1" in row and pd.notna(row["mean_f1"]):
            return float(row["mean_f1"])
        return float("nan")

    def pick(name: str, r: pd.Series, value: float) -> dict:
        return {"selection": name, "method": r["method"], "params": params_to_json(_params(r)),
                "value": value, "mean_f1": f1_of(preds[int(r.name)], r)}  # fmt: skip

    def best_of(groups, c: str) -> list[pd.Series]:
        """The ``c``-best row of every group that has a finite ``c`` value."""
        out = []
        for _, grp in groups:
            ok = np.isfinite(pd.to_numeric(grp[c], errors="coerce").to_numpy(dtype=float))
            if ok.any():
                one = grp["method"].nunique() == 1
                out.append(select(grp, c, method=str(grp["method"].iloc[0]) if one else None))
        return out

    out = []
    if y_true is not None or "mean_f1" in on.columns:
        scored = on.assign(mean_f1=[f1_of(p, r) for p, (_, r) in zip(preds, on.iterrows(),
                                                                    strict=True)])  # fmt: skip
        best = select(scored, "mean_f1")
        out.append({**pick("oracle", best, float("nan")), "mean_f1": float(best["mean_f1"])})
    family = on["method"].astype(str).map(method_family)
    for c in dict.fromkeys([*criteria, *ACROSS_CRITERIA]):
        if c not in on.columns:
            raise ValueError(f"choose_across_methods: the rows have no {c!r} column")
        v = pd.to_numeric(on[c], errors="coerce").to_numpy(dtype=float)
        if not np.isfinite(v).any():
            log.warning("no finite %r value on any method's grid rows: no %r choice", c, c)
            continue
        r = select(on, c)
        out.append(pick(c, r, float(r[c])))
        if not ensembles:
            continue
        voters = best_of(on.groupby("method", sort=False), c)
        out.append(_ensemble(f"vote:{c}", voters, vote([preds[int(r.name)] for r in voters]),
                             f1_of))  # fmt: skip
        heads = best_of(on.groupby(family, sort=False), c)
        pooled = pooled_prediction([probs[int(r.name)] for r in heads])
        out.append(_ensemble(f"family:{c}", heads, pooled, f1_of))
        order = np.flatnonzero(np.isfinite(v))
        order = order[np.argsort(-v[order], kind="stable")]
        for k in dict.fromkeys(int(k) for k in top_k):
            top = [on.iloc[i] for i in order[:k]]
            pred = pooled_prediction([probs[int(r.name)] for r in top])
            out.append(_ensemble(f"mean:{c}:{k}", top, pred, f1_of))
    return pd.DataFrame(out, columns=["selection", "method", "params", "value", "mean_f1"])
