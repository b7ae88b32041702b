"""The domain-adaptation estimator convention of merkit (scikit-learn / skada style).

A DA classifier is a scikit-learn estimator whose ``fit`` sees the source *and* the
target rows at once::

    est.fit(X, y, sample_domain)   # X (n, D); y (n,) with y = -1 on target rows
    est.predict(X_target)

* ``sample_domain`` follows skada (https://scikit-adaptation.github.io): positive
  integers mark source domains, negative integers target domains (0 is invalid).
  When it is omitted, rows with ``y = -1`` are target rows (domain -1) and the
  others source rows (domain 1), as skada infers it.
* No target label ever reaches ``fit``: a target row with ``y != -1`` is an error,
  so is a source row with ``y = -1``.
* Hyper-parameters are set only in ``__init__`` (``get_params``/``set_params`` and
  ``clone`` come from :class:`sklearn.base.BaseEstimator`); fitted state ends in ``_``.
* Metadata routing (scikit-learn's, which skada switches on): ``sample_domain`` is
  requested by default by ``fit``, ``predict``, ``predict_proba``, ``predict_log_proba``
  and ``score`` (and dropped, not passed, for ``decision_function``), and
  ``sample_weight`` by ``score``, so an estimator works inside
  ``skada.make_da_pipeline`` or a routed :class:`sklearn.pipeline.Pipeline` with no
  ``set_*_request`` call. ``sample_weight`` of ``fit`` keeps scikit-learn's default
  (routed only after ``set_fit_request(sample_weight=True)``).
* ``predict_proba`` is the softmax of the per-class decision values at temperature
  :attr:`DomainAdaptationClassifier.proba_temperature` (no calibration, so no label
  of any domain is used): see :meth:`DomainAdaptationClassifier.predict_proba`.
* ``fit_path(X, y, sample_domain, points)`` fits many hyper-parameter points on the same
  rows and returns each point's predictions and decision values on the target rows
  (:class:`PathFit`); by default one ``clone(est).set_params(**point).fit(...)`` per
  point, and faster where a method shares work across points (TGSR's dual solver, the
  regenerators' kernel and eigen-basis). ``fit_path_batches(points)`` says which points
  share that work, so a caller running points in parallel keeps them together.
* ``method_specs`` (class attribute, :class:`merkit.adapt.spec.MethodSpec`) declares the
  registry names, published grid and the papers' parameter names of the class.
"""

from __future__ import annotations

import inspect
import logging
import numbers
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.svm import SVC
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
)

from merkit.adapt.spec import MethodSpec

log = logging.getLogger(__name__)

__all__ = [
    "MASKED_LABEL",
    "DomainAdaptationClassifier",
    "PathFit",
    "SVMBaseline",
    "batches_by",
    "check_da_inputs",
    "first_appearance_codes",
    "fit_each",
    "libsvm_margin_sums",
    "path_labels",
    "softmax",
    "split_source_target",
    "target_scores",
]

#: label of an unlabelled (target) row, as in skada
MASKED_LABEL: int = -1


def check_da_inputs(
    X, y, sample_domain=None, *, name: str = "estimator"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate DA training inputs and return ``(X, y, sample_domain)`` as arrays.

    Parameters
    ----------
    X : array-like of shape (n, D)
        Source and target rows; finite numbers.
    y : array-like of shape (n,)
        Integer class labels on source rows, ``-1`` on target rows.
    sample_domain : array-like of shape (n,), optional
        Non-zero integers: > 0 source domain, < 0 target domain. Inferred from ``y``
        when omitted.
    name : str
        Estimator name quoted in error messages.

    Returns
    -------
    X : float64 ndarray (n, D)
    y : int64 ndarray (n,)
    sample_domain : int64 ndarray (n,)

    Raises
    ------
    ValueError
        Mismatched lengths, non-finite features, non-integer labels, domain 0,
        a source row labelled -1, a target row carrying a label, or no labelled source row.
    """
    if y is None:
        raise ValueError(f"{name} requires y to be passed, but the target y is None")
    X = check_array(X, dtype=np.float64, ensure_all_finite=False, input_name="X")
    n = X.shape[0]
    if not np.isfinite(X).all():
        bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(
            f"{name}: X has non-finite values (NaN or infinity) in rows {bad[:10].tolist()}"
        )
    y_raw = np.asarray(y)
    if y_raw.ndim == 2 and y_raw.shape[1] == 1:
        y_raw = column_or_1d(y_raw, warn=True)
    if y_raw.ndim != 1 or y_raw.shape[0] != n:
        raise ValueError(
            f"{name}: y must be 1-D with one label per row of X ({n}), got shape {y_raw.shape}"
        )
    if not np.issubdtype(y_raw.dtype, np.number) and y_raw.dtype != bool:
        raise ValueError(
            f"{name}: Unknown label type: y must hold integer class labels (-1 for target "
            f"rows), got dtype {y_raw.dtype}; encode class names first "
            "(e.g. the 'y' column of a label scheme)"
        )
    y_float = y_raw.astype(np.float64)
    if not np.isfinite(y_float).all():
        raise ValueError(
            f"{name}: y has NaN or infinite labels in rows "
            f"{np.flatnonzero(~np.isfinite(y_float))[:10].tolist()}; use -1 for target rows"
        )
    y_int = y_raw.astype(np.int64)
    if not np.array_equal(y_int, y_float):
        raise ValueError(
            f"{name}: Unknown label type: continuous; y must hold integer class labels "
            "(-1 for target rows)"
        )
    if (y_int < MASKED_LABEL).any():
        raise ValueError(
            f"{name}: labels below -1 found ({np.unique(y_int[y_int < -1])[:10].tolist()}); "
            "classes are 0..k-1 and -1 marks unlabelled target rows"
        )
    if sample_domain is None:
        sd = np.where(y_int == MASKED_LABEL, -1, 1).astype(np.int64)
    else:
        sd_raw = np.asarray(sample_domain)
        if sd_raw.ndim != 1 or sd_raw.shape[0] != n:
            raise ValueError(
                f"{name}: sample_domain must be 1-D with one entry per row of X ({n}), "
                f"got shape {sd_raw.shape}"
            )
        sd = sd_raw.astype(np.int64)
        if not np.array_equal(sd, sd_raw.astype(np.float64)):
            raise ValueError(f"{name}: sample_domain must hold integers")
        if (sd == 0).any():
            raise ValueError(
                f"{name}: sample_domain 0 in rows {np.flatnonzero(sd == 0)[:10].tolist()}; "
                "use positive ints for source domains and negative ints for target domains"
            )
        src_masked = (sd > 0) & (y_int == MASKED_LABEL)
        if src_masked.any():
            raise ValueError(
                f"{name}: source rows {np.flatnonzero(src_masked)[:10].tolist()} have label -1; "
                "every source row needs its class label"
            )
        tgt_labelled = (sd < 0) & (y_int != MASKED_LABEL)
        if tgt_labelled.any():
            raise ValueError(
                f"{name}: target rows {np.flatnonzero(tgt_labelled)[:10].tolist()} carry labels; "
                "pass y = -1 for every target row (no target label may reach fit)"
            )
    if not (sd > 0).any():
        raise ValueError(f"{name}: no labelled source rows (every y is -1 / every domain < 0)")
    return X, y_int, sd


def split_source_target(
    X, y, sample_domain=None, *, name: str = "estimator"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(X_source, y_source, X_target)`` from DA training inputs."""
    X, y, sd = check_da_inputs(X, y, sample_domain, name=name)
    src = sd > 0
    return X[src], y[src], X[~src]


def softmax(S: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores (m, c), shifted by the row maximum for stability."""
    Z = np.exp(S - S.max(axis=1, keepdims=True))
    return Z / Z.sum(axis=1, keepdims=True)


def libsvm_margin_sums(D: np.ndarray) -> np.ndarray:
    """Per-class sums of one-vs-one margins from :class:`sklearn.svm.SVC`'s "ovr" shape.

    For 3+ classes ``SVC.decision_function`` returns ``votes + m / (3 (|m| + 1))`` per
    class, where ``votes`` are the one-vs-one wins (integers) and ``m`` the sum of the
    class's one-vs-one margins; the second term lies in (-1/3, 1/3), so
    ``votes = rint(D)`` and ``m`` is recovered exactly (up to rounding). 1-D input (two
    classes) is returned unchanged.
    """
    D = np.asarray(D, dtype=float)
    if D.ndim == 1:
        return D
    t = D - np.rint(D)
    return 3.0 * t / (1.0 - 3.0 * np.abs(t))


def first_appearance_codes(y) -> tuple[np.ndarray, np.ndarray]:
    """Recode labels so that their sorted order is their order of first appearance.

    MATLAB LibSVM (``svmtrain``), which the CDMER papers used, orders the classes by
    their first appearance in the training labels and gives a one-vs-one vote tie to
    the first of them; scikit-learn's LibSVM sorts the classes, so a tie goes to the
    smallest label. Fitting any LibSVM-classified method on ``codes`` and mapping its
    predictions back with ``classes[pred]`` reproduces MATLAB's tie rule (on CDMER
    C -> V one target clip has a 1-1-1 tie: the baseline SVM then gives the published
    0.4701 / 50.70 instead of 0.4800 / 52.11; docs/da-reproduction.md).

    Returns
    -------
    codes : ndarray (n,)
        ``0 .. c-1`` in order of first appearance.
    classes : ndarray (c,)
        The original labels in order of first appearance (``classes[codes] == y``).
    """
    y = np.asarray(y)
    _, first = np.unique(y, return_index=True)
    classes = y[np.sort(first)]
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    return np.array([lookup[v] for v in y.tolist()], dtype=int), classes


def target_scores(est, X: np.ndarray) -> np.ndarray | None:
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


@dataclass(frozen=True)
class PathFit:
    """One point of :meth:`DomainAdaptationClassifier.fit_path`.

    Attributes
    ----------
    params : dict
        The point (hyper-parameters set on a clone of the estimator).
    predictions : ndarray (m,)
        Predicted labels of the evaluated rows (the target rows of the fit, or ``X_eval``).
    decision_values : ndarray (m, c) or (m,), or None
        The fitted method's decision values on those rows (:func:`target_scores`), None
        when it has none.
    seconds : float
        Fit and prediction time of the point (a batched path's time divided evenly).
    """

    params: dict
    predictions: np.ndarray
    decision_values: np.ndarray | None
    seconds: float


def path_labels(y, n_points: int) -> list[np.ndarray]:
    """One label vector per point: ``y`` (n,) for every point, or row ``i`` of ``y``
    (n_points, n) for point ``i`` (e.g. each point's own pseudo-labels)."""
    Y = np.asarray(y)
    if Y.ndim == 2 and Y.shape[1] != 1:
        if Y.shape[0] != n_points:
            raise ValueError(
                f"fit_path: y has {Y.shape[0]} label rows for {n_points} points; give one "
                "label vector (n,) or one per point (n_points, n)"
            )
        return list(Y)
    return [y] * n_points


def _target_rows(X, y, sample_domain) -> np.ndarray:
    """The target rows of DA training inputs (``sample_domain < 0``, else ``y = -1``)."""
    X = np.asarray(X)
    if sample_domain is not None:
        return X[np.asarray(sample_domain) < 0]
    return X[np.asarray(y) == MASKED_LABEL]


def fit_each(
    estimator,
    X,
    y,
    sample_domain=None,
    points: Sequence[Mapping] | None = None,
    *,
    X_eval=None,
    prepare: Callable[[BaseEstimator], None] | None = None,
    **fit_params,
) -> list[PathFit]:
    """The default :meth:`DomainAdaptationClassifier.fit_path`: one fit per point.

    Point ``i`` is ``clone(estimator).set_params(**points[i])``, fitted on ``X``, the
    point's labels (:func:`path_labels`) and ``sample_domain`` with the ``fit_params`` it
    takes (:meth:`DomainAdaptationClassifier.select_fit_params`), then
    asked for its predictions and decision values (:func:`target_scores`) on ``X_eval``
    (default: the target rows). ``prepare(est)``, when given, runs on each point's
    estimator before its fit (a method sharing work across its points hands it there).
    """
    points = [dict(p) for p in (points if points is not None else [{}])]
    out = []
    for p, yi in zip(points, path_labels(y, len(points)), strict=True):
        est = clone(estimator).set_params(**p)
        if prepare is not None:
            prepare(est)
        t0 = time.perf_counter()
        est.fit(X, yi, sample_domain, **est.select_fit_params(fit_params))
        rows = X_eval if X_eval is not None else _target_rows(X, yi, sample_domain)
        pred = np.asarray(est.predict(rows))
        seconds = time.perf_counter() - t0
        out.append(PathFit(p, pred, target_scores(est, rows), seconds))
    return out


def batches_by(points: Sequence[Mapping], key: Callable[[Mapping], object], size: int) -> list:
    """Positions of ``points`` grouped by ``key(point)`` (groups in order of first
    appearance, points in order), each group cut into runs of at most ``size``."""
    groups: dict[object, list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault(key(p), []).append(i)
    return [g[a : a + size] for g in groups.values() for a in range(0, len(g), size)]


class DomainAdaptationClassifier(ClassifierMixin, BaseEstimator):
    """Base class of merkit's DA classifiers.

    Subclasses set their hyper-parameters in ``__init__`` (stored verbatim) and
    implement ``_fit(Xs, ys, Xt)`` (source rows, their labels, unlabelled target
    rows; ``Xt`` may have 0 rows), ``_predict(X)`` and ``decision_function(X)``
    (per-class scores (m, n_classes), or (m,) for 2 classes with positive values
    meaning ``classes_[1]``). ``fit`` validates the inputs, sets ``classes_``,
    ``n_features_in_``, ``n_source_``, ``n_target_`` and calls ``_fit``.

    ``sample_weight``: a subclass whose ``_fit`` takes a ``sample_weight`` keyword gets
    the weights of the source rows (target rows are unlabelled, their weights are not
    used); the subclass documents what they mean. Without it, ``fit`` accepts only
    all-equal weights (they change nothing) and raises ``ValueError`` otherwise.

    Class attributes: ``requires_target`` (default False; when True ``fit`` fails
    without target rows, for methods that align the domains),
    ``proba_temperature`` (default 1.0, see :meth:`predict_proba`) and ``method_specs``
    (the registry names of the class, :class:`merkit.adapt.spec.MethodSpec`; empty for a
    class the registry does not list).
    """

    #: registry declarations of the class (read by :mod:`merkit.adapt.registry`)
    method_specs: ClassVar[tuple[MethodSpec, ...]] = ()
    requires_target: bool = False
    #: temperature T of ``predict_proba = softmax(decision_function / T)``
    proba_temperature: float = 1.0
    #: the decision values are SVC's 3+-class "ovr" shape (see :meth:`predict_proba`)
    _libsvm_decision: bool = False

    # metadata routing defaults (skada convention): sample_domain goes wherever it is
    # accepted; allow_source (a skada scorer flag) is never passed on
    __metadata_request__fit = {"sample_domain": True}
    __metadata_request__predict = {"sample_domain": True, "allow_source": False}
    __metadata_request__predict_proba = {"sample_domain": True, "allow_source": False}
    __metadata_request__predict_log_proba = {"sample_domain": True, "allow_source": False}
    # decision_function(X) takes no metadata: skada's sample_domain is dropped, not passed
    __metadata_request__decision_function = {"sample_domain": False, "allow_source": False}
    __metadata_request__score = {
        "sample_domain": True,
        "sample_weight": True,
        "allow_source": False,
    }

    def fit(self, X, y, sample_domain=None, sample_weight=None):
        """Fit on source rows (labelled) and target rows (``y = -1``).

        Parameters
        ----------
        X : array-like of shape (n, D)
        y : array-like of shape (n,)
        sample_domain : array-like of shape (n,), optional
            skada convention (> 0 source, < 0 target); inferred from ``y`` if omitted.
        sample_weight : array-like of shape (n,), optional
            Non-negative weights; only the source rows' weights are used (the class
            docstring of each method says how). ``None`` = unweighted.

        Returns
        -------
        self
        """
        Xs, ys, Xt, kwargs = self._fit_inputs(X, y, sample_domain, sample_weight)
        self.classes_ = np.unique(ys)
        self.n_features_in_ = Xs.shape[1]
        self.n_source_ = int(Xs.shape[0])
        self.n_target_ = int(Xt.shape[0])
        self._fit(Xs, ys, Xt, **kwargs)
        return self

    def _fit_inputs(self, X, y, sample_domain, sample_weight):
        """Validated ``(Xs, ys, Xt, _fit keyword arguments)`` of :meth:`fit`.

        Raises
        ------
        ValueError
            Invalid inputs (:func:`check_da_inputs`), fewer than 2 source classes (with a
            positive weight), no target rows for a method that needs them, or unequal
            weights for a method without per-sample weights.
        """
        name = type(self).__name__
        X, y, sd = check_da_inputs(X, y, sample_domain, name=name)
        src = sd > 0
        Xs, ys, Xt = X[src], y[src], X[~src]
        classes = np.unique(ys)
        if classes.size < 2:
            raise ValueError(
                f"{name}: the labelled source rows hold {classes.size} class(es) "
                f"{classes.tolist()}; at least 2 are needed"
            )
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, ensure_non_negative=True)[src]
            if not np.any(sw > 0):
                raise ValueError(
                    f"{name}: sample_weight is zero on every source row; give some labelled "
                    "rows a positive weight"
                )
            kept = np.unique(ys[sw > 0])
            if kept.size < 2:
                raise ValueError(
                    f"{name}: the source rows with a positive sample_weight hold "
                    f"{kept.size} class(es) {kept.tolist()}; at least 2 are needed"
                )
        if self.requires_target and Xt.shape[0] == 0:
            raise ValueError(
                f"{name} adapts to the target domain: pass the unlabelled target rows "
                "(y = -1, negative sample_domain) to fit"
            )
        kwargs = {}
        if sw is not None:
            if "sample_weight" in inspect.signature(self._fit).parameters:
                kwargs["sample_weight"] = sw
            elif sw.size and not np.all(sw == sw[0]):
                raise ValueError(
                    f"{name} does not support unequal sample weights; fit it without "
                    "sample_weight (or use a method that takes them, e.g. SVMBaseline)"
                )
        return Xs, ys, Xt, kwargs

    def fit_path(
        self,
        X,
        y,
        sample_domain=None,
        points: Sequence[Mapping] | None = None,
        *,
        X_eval=None,
        batched: bool = True,
        **fit_params,
    ) -> list[PathFit]:
        """Fit every point of a hyper-parameter grid on the same rows.

        Point ``i`` is ``clone(self).set_params(**points[i])`` fitted with
        ``fit(X, y_i, sample_domain, **fit_params)`` (the metadata it takes:
        :meth:`select_fit_params`); its predictions and decision values
        on the evaluated rows are returned. This default runs those fits one by one;
        methods that share work across points (TGSR, the regenerators) override it with
        the same numbers, and :meth:`fit_path_batches` says which points share it.

        Parameters
        ----------
        X : array-like (n, D)
        y : array-like (n,) or (n_points, n)
            One label vector for every point, or one per point (e.g. pseudo-labels in
            reverse validation); ``-1`` on target rows.
        sample_domain : array-like (n,), optional
            As :meth:`fit` (the same for every point).
        points : sequence of mapping, optional
            Hyper-parameters of each point (default: one point, ``self`` as it is).
        X_eval : array-like (m, D), optional
            Rows to predict; default the target rows of the fit.
        batched : bool
            False: one fit per point even where the method shares work (to check a
            batched path against per-point fits).
        **fit_params
            Fit metadata passed to every point's ``fit`` (e.g. ``column_groups``).

        Returns
        -------
        list of PathFit
            One per point, in order.
        """
        return fit_each(self, X, y, sample_domain, points, X_eval=X_eval, **fit_params)

    def select_fit_params(self, fit_params: Mapping) -> dict:
        """The fit metadata this estimator's ``fit`` takes out of ``fit_params`` offered to
        every point of a path (e.g. the features' ``column_groups``): all of it by default;
        a method whose hyper-parameters can replace some metadata drops it here."""
        return dict(fit_params)

    def fit_path_batches(self, points: Sequence[Mapping]) -> list[list[int]]:
        """Positions of ``points`` grouped into :meth:`fit_path` calls that share work.

        The default shares nothing: one point per batch (a caller running batches in
        parallel then spreads the points evenly).
        """
        return [[i] for i in range(len(points))]

    def _check_predict_X(self, X) -> np.ndarray:
        check_is_fitted(self, "classes_")
        X = check_array(X, dtype=np.float64, input_name="X")
        name = type(self).__name__
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input"
            )
        return X

    def predict(self, X, sample_domain=None) -> np.ndarray:
        """Class labels of the rows of ``X`` (``sample_domain`` is accepted and ignored)."""
        return np.asarray(self._predict(self._check_predict_X(X)))

    def predict_proba(self, X, sample_domain=None) -> np.ndarray:
        """Class probabilities (m, n_classes), columns in ``classes_`` order.

        ``softmax(S / T)`` of per-class scores ``S`` with ``T = proba_temperature``
        (1.0). ``S`` is ``decision_function`` (a 2-class score ``s`` becomes
        ``(-s/2, s/2)``, i.e. ``P(classes_[1]) = sigmoid(s / T)``), except for the
        LibSVM-based methods with 3+ classes, whose ``decision_function`` is SVC's "ovr"
        shape (one-vs-one votes plus a squashed margin sum, nearly constant): there ``S``
        is half of each class's sum of one-vs-one margins (:func:`libsvm_margin_sums`),
        so one pair's margin ``f`` splits as ``sigmoid(f)``, as with 2 classes. Not
        calibrated: no label of either domain is used, so a value is a monotone
        confidence, not a frequency. Rows sum to 1 and ``argmax == predict``: in rows
        where the method's own rule disagrees with the largest score (LibSVM predicts
        the one-vs-one vote winner, ties by class order, which is not always the class
        of largest margin sum: 0-30 % of the rows on the synthetic tests) the predicted
        class's probability is swapped with the largest one. ``sample_domain`` is
        accepted and ignored.
        """
        X = self._check_predict_X(X)
        S = np.asarray(self.decision_function(X), dtype=float)
        if self._libsvm_decision and S.ndim == 2:
            S = libsvm_margin_sums(S) / 2
        if S.ndim == 1:
            S = np.column_stack([-S / 2, S / 2])
        P = softmax(S / float(self.proba_temperature))
        pred = np.searchsorted(self.classes_, np.asarray(self._predict(X)))
        top = np.argmax(P, axis=1)
        rows = np.flatnonzero(top != pred)
        if rows.size:
            hi, lo = P[rows, top[rows]].copy(), P[rows, pred[rows]].copy()
            P[rows, top[rows]], P[rows, pred[rows]] = lo, hi
            # exact ties: argmax takes the first column; favour the predicted one
            tied = rows[np.argmax(P[rows], axis=1) != pred[rows]]
            P[tied, pred[tied]] = np.nextafter(P[tied, pred[tied]], np.inf)
            P[tied] /= P[tied].sum(axis=1, keepdims=True)
        return P

    def predict_log_proba(self, X, sample_domain=None) -> np.ndarray:
        """Natural log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X, sample_domain))

    def score(self, X, y, sample_domain=None, sample_weight=None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y`` (optionally weighted).

        ``sample_domain`` is accepted for skada's routing and ignored: the caller
        decides which rows are scored (skada's scorers pass only source rows or only
        target rows). Rows labelled ``-1`` (masked target rows) cannot be scored; pass
        only labelled rows.
        """
        y = np.asarray(y)
        if np.any(y == MASKED_LABEL):
            raise ValueError(
                f"{type(self).__name__}.score: y holds masked labels (-1) in rows "
                f"{np.flatnonzero(y == MASKED_LABEL)[:10].tolist()}; score only rows whose "
                "labels are known (use a label-free scorer for unlabelled target rows)"
            )
        return super().score(X, y, sample_weight=sample_weight)

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit(Xs, ys, Xt)")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement _predict(X)")


_KERNELS = ("linear", "rbf", "poly", "sigmoid")


class SVMBaseline(DomainAdaptationClassifier):
    """No adaptation: an SVM (LibSVM via :class:`sklearn.svm.SVC`) on the source rows only.

    The CDMER benchmark's baseline (linear kernel, C = 1, raw features). Target rows
    passed to ``fit`` are ignored. ``sample_weight`` scales each source row's C (LibSVM).

    Parameters
    ----------
    C : float
        Soft-margin penalty (> 0).
    kernel : {"linear", "rbf", "poly", "sigmoid"}
    gamma : {"scale", "auto"} or float
        Kernel width for the non-linear kernels.
    class_weight : None, "balanced" or dict
        Per-class weights of the penalty (None as in the benchmark).
    """

    method_specs = (MethodSpec("svm"),)  # the benchmark's baseline: no parameter searched
    _libsvm_decision = True

    def __init__(
        self,
        C: float = 1.0,
        kernel: str = "linear",
        gamma: str | float = "scale",
        class_weight: str | dict | None = None,
    ) -> None:
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.class_weight = class_weight

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, sample_weight=None) -> None:
        if not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"SVMBaseline: C must be a positive number, got {self.C!r}")
        if self.kernel not in _KERNELS:
            raise ValueError(f"SVMBaseline: kernel must be one of {_KERNELS}, got {self.kernel!r}")
        self.svc_ = SVC(
            C=float(self.C), kernel=self.kernel, gamma=self.gamma, class_weight=self.class_weight
        ).fit(Xs, ys, sample_weight=sample_weight)
        if Xt.shape[0]:
            log.debug("SVMBaseline ignores %d target rows", Xt.shape[0])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.svc_.predict(X)

    def decision_function(self, X) -> np.ndarray:
        """SVC decision values (one-vs-one for more than 2 classes, as LibSVM)."""
        X = self._check_predict_X(X)
        return self.svc_.decision_function(X)
