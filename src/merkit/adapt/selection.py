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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from merkit.adapt.criteria import evaluate_points
from merkit.adapt.registry import METHODS, default_point, make_method
from merkit.store import params_to_json

log = logging.getLogger(__name__)

__all__ = [
    "evaluate_unlabelled",
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
