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
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

log = logging.getLogger(__name__)

__all__ = [
    "MASKED_LABEL",
    "DomainAdaptationClassifier",
    "SVMBaseline",
    "check_da_inputs",
    "split_source_target",
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


class DomainAdaptationClassifier(ClassifierMixin, BaseEstimator):
    """Base class of merkit's DA classifiers.

    Subclasses set their hyper-parameters in ``__init__`` (stored verbatim) and
    implement ``_fit(Xs, ys, Xt)`` (source rows, their labels, unlabelled target
    rows; ``Xt`` may have 0 rows) and ``_predict(X)``. ``fit`` validates the inputs,
    sets ``classes_``, ``n_features_in_``, ``n_source_``, ``n_target_`` and calls ``_fit``.

    Class attribute ``requires_target`` (default False): when True, ``fit`` fails
    without target rows (methods that align the domains need them).
    """

    requires_target: bool = False

    def fit(self, X, y, sample_domain=None):
        """Fit on source rows (labelled) and target rows (``y = -1``).

        Parameters
        ----------
        X : array-like of shape (n, D)
        y : array-like of shape (n,)
        sample_domain : array-like of shape (n,), optional
            skada convention (> 0 source, < 0 target); inferred from ``y`` if omitted.

        Returns
        -------
        self
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
        if self.requires_target and Xt.shape[0] == 0:
            raise ValueError(
                f"{name} adapts to the target domain: pass the unlabelled target rows "
                "(y = -1, negative sample_domain) to fit"
            )
        self.classes_ = classes
        self.n_features_in_ = X.shape[1]
        self.n_source_ = int(Xs.shape[0])
        self.n_target_ = int(Xt.shape[0])
        self._fit(Xs, ys, Xt)
        return self

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

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _fit(Xs, ys, Xt)")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement _predict(X)")


_KERNELS = ("linear", "rbf", "poly", "sigmoid")


class SVMBaseline(DomainAdaptationClassifier):
    """No adaptation: an SVM (LibSVM via :class:`sklearn.svm.SVC`) on the source rows only.

    The CDMER benchmark's baseline (linear kernel, C = 1, raw features). Target rows
    passed to ``fit`` are ignored.

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

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        if not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"SVMBaseline: C must be a positive number, got {self.C!r}")
        if self.kernel not in _KERNELS:
            raise ValueError(f"SVMBaseline: kernel must be one of {_KERNELS}, got {self.kernel!r}")
        self.svc_ = SVC(
            C=float(self.C), kernel=self.kernel, gamma=self.gamma, class_weight=self.class_weight
        ).fit(Xs, ys)
        if Xt.shape[0]:
            log.debug("SVMBaseline ignores %d target rows", Xt.shape[0])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self.svc_.predict(X)

    def decision_function(self, X) -> np.ndarray:
        """SVC decision values (one-vs-one for more than 2 classes, as LibSVM)."""
        X = self._check_predict_X(X)
        return self.svc_.decision_function(X)
