"""Transfer Group Sparse Regression (TGSR).

Jiang, Zong, Zheng, Liu, Wei, "Seeking salient facial regions for cross-database
micro-expression recognition", ICPR 2022, doi:10.1109/ICPR56361.2022.9956298.

    min_C ||L~ - sum_i C_i^T X~_i||_F^2 + lambda sum_i ||C_i||_F,
    X~ = [Xs^T, sqrt(xi) (mean(Xs) - mean(Xt))],  L~ = [Ls, 0],

with one group ``C_i`` (d_i, c) per facial block. Solved by the paper's inexact ALM with
exact-kappa group selection: in the C step ``lambda = mu d_(kappa+1)``, the
(kappa+1)-th largest group norm of ``D - P/mu``, so that exactly ``kappa`` blocks
survive (``kappa = K`` keeps all blocks, lambda = 0). ``C = P = 0`` at start,
``mu0 = 1e-3``, ``rho = 1.1``, ``mu_max = 1e15``, stop when ``max|C - D| < tol``.
The D step ``(mu I + 2 X~ X~^T)^-1 (...)`` uses the Woodbury identity with one
eigendecomposition of the (ns+1) x (ns+1) Gram matrix, so nothing d x d is formed.
Prediction is ``argmax_j (C^T x)_j``.

The ALM runs in the dual, many (kappa, xi[, labels]) settings per solve
(:mod:`merkit.adapt.tgsr_dual`); :meth:`TransferGroupSparseRegression.fit_path` fits a
grid's points that way with the numbers of one fit per point.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.base import clone

from merkit.adapt.base import (
    MASKED_LABEL,
    DomainAdaptationClassifier,
    PathFit,
    fit_each,
    path_labels,
)
from merkit.adapt.spec import MethodSpec, matlab_range, product_grid, unique_values
from merkit.adapt.tgsr_dual import TGSRProblem, tgsr_dual_solve, tgsr_path

#: blocks of the CDMER benchmark's LBP-TOP features (85 on the 1, 2, 4, 8 levels): the
#: default kappa keeps all of them
CDMER_N_BLOCKS = 85

#: the benchmark's xi: 0.001 .. 1000 in six decades of published steps (271 values)
TGSR_XI: tuple[float, ...] = tuple(
    unique_values(
        matlab_range(0.001, 0.01, 0.0002)
        + matlab_range(0.01, 0.1, 0.002)
        + matlab_range(0.1, 1, 0.02)
        + matlab_range(1, 10, 0.2)
        + matlab_range(10, 100, 2)
        + matlab_range(100, 1000, 20)
    )
)
#: parameters one dual solve varies per point; the others must agree within a solve
PATH_AXES = ("kappa", "xi")
PATH_SHARED = ("group_size", "tol", "max_iter")
#: xi values per ``fit_path`` batch (all kappas of each)
PATH_XI_BATCH = 2

_HOW_TO_GROUP = (
    "pass the column groups to fit (fit(X, y, sample_domain, column_groups=fs.blocks) with "
    "the FeatureSet's layout), or set groups= (one id per column) or group_size= "
    "(contiguous runs of that many columns)"
)


def block_ids(n_features: int, groups=None, group_size: int | None = None) -> np.ndarray:
    """Group id per column (n_features,): ``groups`` if given, else contiguous runs of
    ``group_size`` columns.

    Nothing is guessed from the column count: TGSR's groups are part of the data
    (``FeatureSet.blocks`` / ``FeatureSet.column_groups``), so one of the two must be
    given.

    Raises
    ------
    ValueError
        Neither is given, both are given, ``groups`` has the wrong shape, or
        ``n_features`` is not a whole number of runs of ``group_size``.
    """
    if groups is not None and group_size is not None:
        raise ValueError(
            "TGSR: give the column groups either as groups= or as group_size=, not both"
        )
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n_features,):
            raise ValueError(
                f"TGSR: groups must have one id per column ({n_features},), got {g.shape}"
            )
        return g
    if group_size is None:
        raise ValueError(f"TGSR needs column groups for its {n_features} columns: {_HOW_TO_GROUP}")
    group_size = int(group_size)
    if group_size < 1 or n_features % group_size:
        raise ValueError(
            f"TGSR: {n_features} columns are not a whole number of runs of group_size="
            f"{group_size}; pass groups= (one id per column) instead"
        )
    return np.repeat(np.arange(n_features // group_size), group_size)


class TransferGroupSparseRegression(DomainAdaptationClassifier):
    """TGSR: block-sparse regression to one-hot labels with an MMD column.

    See the module docstring. ``predict`` is ``argmax C^T x`` for any rows.

    TGSR is meaningless without the column groups, and they belong to the data, not to
    the column count: pass them to :meth:`fit` as ``column_groups`` (one group id per
    column, e.g. ``FeatureSet.tgsr_groups``: the facial blocks of merkit's own features,
    the authors' or the spatial grouping of the benchmark's ``.mat`` files), or fix them
    here with ``groups`` (same array) or ``group_size`` (contiguous runs of that many
    columns; ``group_size=177`` on the benchmark files is the TGSR authors' grouping).
    Exactly one of the three must be given; ``fit`` raises a ValueError otherwise.

    Parameters
    ----------
    kappa : int
        Number of groups kept (1 .. number of groups, 85 for the CDMER features).
    xi : float
        MMD weight (benchmark grid 0.001 .. 1000).
    groups : array-like (d,) or None
        Group id per column, fixed at construction (for code that builds estimators from
        parameters only); prefer ``fit(..., column_groups=...)``.
    group_size : int or None
        Contiguous runs of ``group_size`` columns as the groups.
    tol, max_iter : ALM stopping rule.

    Attributes
    ----------
    coef_ : (d, c) regression matrix; column_groups_ : (d,) the groups used;
    block_ids_ : the distinct group ids; block_norms_ : their coefficient norms;
    selected_blocks_ : ids of the groups with a non-zero coefficient group;
    n_iter_ : ALM iterations.

    :meth:`fit_path` fits many (kappa, xi) points in one dual solve
    (:func:`tgsr_dual_solve`), also with one label vector per point (reverse validation).
    """

    method_specs = (MethodSpec("tgsr", grid=product_grid(kappa=range(1, 86), xi=TGSR_XI)),)
    requires_target = True
    # with scikit-learn's metadata routing on (skada switches it on), a pipeline passes
    # ``column_groups`` to fit without a set_fit_request call
    __metadata_request__fit = {"column_groups": True}

    def __init__(
        self,
        kappa: int = CDMER_N_BLOCKS,
        xi: float = 0.01,
        groups=None,
        group_size: int | None = None,
        tol: float = 1e-8,
        max_iter: int = 2000,
    ) -> None:
        self.kappa = kappa
        self.xi = xi
        self.groups = groups
        self.group_size = group_size
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X, y, sample_domain=None, sample_weight=None, column_groups=None):
        """Fit on source rows (labelled) and target rows (``y = -1``).

        Parameters
        ----------
        X : array-like of shape (n, d)
        y : array-like of shape (n,)
        sample_domain : array-like of shape (n,), optional
            skada convention (> 0 source, < 0 target).
        sample_weight : array-like of shape (n,), optional
            Passed on to :meth:`DomainAdaptationClassifier.fit` (when given).
        column_groups : array-like of shape (d,), optional
            Group id of every column (fit metadata, e.g. ``FeatureSet.tgsr_groups``);
            required unless ``groups`` or ``group_size`` was set, and an error if one was.

        Returns
        -------
        self
        """
        if column_groups is not None and (self.groups is not None or self.group_size is not None):
            raise ValueError(
                "TGSR: column_groups passed to fit while groups= or group_size= is set; "
                "give the column groups in one place only"
            )
        shape = np.asarray(X).shape  # also for array-likes that only define __array__
        if len(shape) == 2:  # else the base class reports the bad X
            g = column_groups if column_groups is not None else self.groups
            self._fit_groups = block_ids(shape[1], g, self.group_size)
        kw = {} if sample_weight is None else {"sample_weight": sample_weight}
        try:
            return super().fit(X, y, sample_domain, **kw)
        finally:
            self.__dict__.pop("_fit_groups", None)

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        g = self._fit_groups
        self.classes_, codes = np.unique(ys, return_inverse=True)
        C, n_iter = tgsr_path(
            Xs,
            np.eye(len(self.classes_))[codes],
            Xt,
            g,
            [self.kappa],
            self.xi,
            tol=self.tol,
            max_iter=self.max_iter,
        )
        self.coef_ = C[0]
        self.n_iter_ = int(n_iter[0])
        self.column_groups_ = g
        self.block_ids_ = np.unique(g)
        norms = np.array([np.linalg.norm(self.coef_[g == b]) for b in self.block_ids_])
        self.block_norms_ = norms
        self.selected_blocks_ = self.block_ids_[norms > 0]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Label scores ``X C`` (m, n_classes)."""
        return self._check_predict_X(X) @ self.coef_

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Arg-max labels of rows ``X`` (m, d)."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def fit_path(
        self,
        X,
        y,
        sample_domain=None,
        points: Sequence[Mapping] | None = None,
        *,
        X_eval=None,
        batched: bool = True,
        column_groups=None,
        **fit_params,
    ) -> list[PathFit]:
        """Fit many points in the dual: the points that vary only ``kappa`` and ``xi``
        (and agree on ``group_size``, ``tol``, ``max_iter``) share one
        :class:`TGSRProblem` and one :func:`tgsr_dual_solve` call (the same ALM iterates
        as :meth:`fit`, so the same predictions; decision values agree to rounding).

        ``column_groups`` is the features' layout: every point uses it unless the point
        (or ``self``) fixes its own groups with ``groups`` or ``group_size``. With one
        label vector per point (``y`` of shape (n_points, n)), each point is fitted on its
        own labels: one-hot columns over the union of the points' classes, where a class
        absent from a point's labels is an all-zero column, which stays zero in the ALM
        and is never predicted; its decision values hold the point's own classes only.
        Other points, ``batched=False`` or other fit metadata: one :meth:`fit` per point.
        See :meth:`DomainAdaptationClassifier.fit_path` for the parameters and the result.
        """
        points = [dict(p) for p in (points if points is not None else [{}])]
        labels = path_labels(y, len(points))
        out: list[PathFit | None] = [None] * len(points)
        defaults = self.get_params(deep=False)
        solves: dict[tuple, list[int]] = {}
        for i, p in enumerate(points):
            if batched and not fit_params and set(p) <= {*PATH_AXES, *PATH_SHARED}:
                key = tuple(p.get(k, defaults[k]) for k in PATH_SHARED)
                solves.setdefault(key, []).append(i)
                continue
            (out[i],) = fit_each(self, X, labels[i], sample_domain, [p], X_eval=X_eval,
                                 column_groups=column_groups, **fit_params)  # fmt: skip
        for (group_size, tol, max_iter), idx in solves.items():
            shared = clone(self).set_params(group_size=group_size)
            offered = shared.select_fit_params({"column_groups": column_groups})
            fits = self._dual_fits(
                X,
                [labels[i] for i in idx],
                sample_domain,
                [points[i] for i in idx],
                X_eval=X_eval,
                groups=offered.get("column_groups", self.groups),
                group_size=group_size,
                tol=tol,
                max_iter=max_iter,
            )
            for i, f in zip(idx, fits, strict=True):
                out[i] = f
        return out

    def select_fit_params(self, fit_params: Mapping) -> dict:
        """``fit_params`` without ``column_groups`` when ``groups`` or ``group_size`` is set:
        the hyper-parameter replaces the features' layout (``fit`` itself refuses both)."""
        if self.groups is None and self.group_size is None:
            return dict(fit_params)
        return {k: v for k, v in fit_params.items() if k != "column_groups"}

    def _dual_fits(
        self, X, labels, sample_domain, points, *, X_eval, groups, group_size, tol, max_iter
    ) -> list[PathFit]:
        """The points of one dual solve (they agree on the groups and the ALM constants)."""
        t0 = time.perf_counter()
        checked: dict[int, np.ndarray] = {}  # labels of the source rows per label vector
        first_src = None
        for yi in labels:
            if id(yi) in checked:
                continue
            Xs, ys, Xt, _ = self._fit_inputs(X, yi, sample_domain, None)
            if sample_domain is None:
                src = np.asarray(yi) != MASKED_LABEL
            else:
                src = np.asarray(sample_domain) > 0
            if first_src is None:
                first_src = src
            elif not np.array_equal(src, first_src):
                raise ValueError(
                    f"{type(self).__name__}.fit_path: every point's labels must mark the "
                    "same target rows (y = -1); pass sample_domain"
                )
            checked[id(yi)] = ys
        g = block_ids(Xs.shape[1], groups, group_size)
        kappas = [int(p.get("kappa", self.kappa)) for p in points]
        xis = [float(p.get("xi", self.xi)) for p in points]
        shared = len(checked) == 1
        per_point = [checked[id(yi)] for yi in labels]
        classes = np.unique(np.concatenate(list(checked.values())))
        onehot = np.stack([(ys[:, None] == classes[None]).astype(float) for ys in per_point])
        prob = TGSRProblem.from_data(Xs, onehot[0], Xt, g)
        rows = Xt if X_eval is None else np.asarray(X_eval, dtype=float)
        S, _ = tgsr_dual_solve(
            prob,
            kappas,
            xis,
            labels=None if shared else onehot,
            K=prob.cross_gram(rows),
            tol=tol,
            max_iter=max_iter,
        )
        seconds = (time.perf_counter() - t0) / len(points)
        out = []
        for p, s, oh in zip(points, S, onehot, strict=True):
            present = oh.any(axis=0)  # the classes of this point's labels
            s = s[:, present]
            out.append(PathFit(dict(p), classes[present][np.argmax(s, axis=1)], s, seconds))
        return out

    def fit_path_batches(self, points: Sequence[Mapping]) -> list[list[int]]:
        """Points that one dual solve can fit, :data:`PATH_XI_BATCH` xi values (all
        their kappas) per batch; a point that sets other parameters is a batch alone."""
        defaults = self.get_params(deep=False)
        alone: list[list[int]] = []
        solves: dict[tuple, dict[float, list[int]]] = {}
        for i, p in enumerate(points):
            if not set(p) <= {*PATH_AXES, *PATH_SHARED}:
                alone.append([i])
                continue
            key = tuple(p.get(k, defaults[k]) for k in PATH_SHARED)
            xi = float(p.get("xi", defaults["xi"]))
            solves.setdefault(key, {}).setdefault(xi, []).append(i)
        out = alone
        for by_xi in solves.values():
            runs = list(by_xi.values())
            for a in range(0, len(runs), PATH_XI_BATCH):
                out.append([i for run in runs[a : a + PATH_XI_BATCH] for i in run])
        return out


TGSR = TransferGroupSparseRegression
