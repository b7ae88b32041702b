"""Importance weighting: KMM, KLIEP, uLSIF and the importance-weighted SVM (IW-SVM).

A weight estimator has ``fit(Xs, Xt)`` (source rows (ns, d), target rows (nt, d)) and
sets ``weights_`` (ns,), an estimate of p_target(x) / p_source(x) at the source rows.
:class:`ImportanceWeightedSVM` is the domain-adaptation classifier (skada
``fit(X, y, sample_domain)`` convention) that trains a linear SVM with those weights.

Weight scale: LibSVM multiplies C by each sample's weight, so unnormalised weights
change the effective C (KMM's mean weight is ~0.1 with a median-width RBF, uLSIF's
scale ~1/lambda). :class:`ImportanceWeightedSVM` therefore rescales the weights to
mean 1 by default (``normalize=True``): the weighting then only moves weight between
samples and ``C`` keeps its meaning.

RBF kernels default to the median-heuristic width (see :mod:`merkit.adapt.kernels`).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, clone

from merkit.adapt.base import DomainAdaptationClassifier
from merkit.adapt.kernels import GramSVC, kernel_matrix, resolve_gamma

log = logging.getLogger(__name__)


def _check_xs_xt(Xs, Xt) -> tuple[np.ndarray, np.ndarray]:
    Xs, Xt = np.asarray(Xs, dtype=float), np.asarray(Xt, dtype=float)
    if Xs.ndim != 2 or Xt.ndim != 2 or Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"Xs and Xt must be 2-D with the same number of columns, got {Xs.shape}, {Xt.shape}"
        )
    if len(Xs) < 2 or len(Xt) < 1:
        raise ValueError(f"need >= 2 source rows and >= 1 target row, got {len(Xs)}, {len(Xt)}")
    return Xs, Xt


class KMM(BaseEstimator):
    """Kernel Mean Matching weights.

    Huang, Smola, Gretton, Borgwardt, Schoelkopf, "Correcting sample selection bias by
    unlabeled data", NIPS 2006 (doi:10.7551/mitpress/7503.003.0080).

    ``min_b 1/2 b^T K_ss b - kappa^T b`` with ``kappa_i = ns/nt sum_j k(xs_i, xt_j)``,
    ``0 <= b <= B`` and ``|sum b - ns| <= ns eps``; solved with scipy's SLSQP.

    Parameters
    ----------
    B : float
        Upper bound of a weight (1000 as in the benchmark).
    eps : float or None
        ``None`` = ``(sqrt(ns) - 1) / sqrt(ns)``.
    kernel : {"rbf", "linear"}
    gamma : float or None
        RBF width, ``None`` = median heuristic over source + target rows.
    """

    def __init__(
        self, B: float = 1000.0, eps: float | None = None, kernel: str = "rbf",
        gamma: float | None = None,
    ) -> None:
        self.B = B
        self.eps = eps
        self.kernel = kernel
        self.gamma = gamma

    def fit(self, Xs, Xt) -> KMM:
        """Estimate ``weights_`` (ns,)."""
        Xs, Xt = _check_xs_xt(Xs, Xt)
        ns, nt = len(Xs), len(Xt)
        self.gamma_ = resolve_gamma(self.kernel, self.gamma, np.vstack([Xs, Xt]))
        K = kernel_matrix(Xs, kernel=self.kernel, gamma=self.gamma_)
        K = (K + K.T) / 2 + 1e-8 * np.trace(K) / ns * np.eye(ns)
        kappa = ns / nt * kernel_matrix(Xs, Xt, self.kernel, self.gamma_).sum(1)
        eps = (np.sqrt(ns) - 1) / np.sqrt(ns) if self.eps is None else float(self.eps)
        scale = max(float(np.abs(K).max()), 1e-300)  # conditioning only; same minimiser
        Kn, kn = K / scale, kappa / scale
        ones = np.ones(ns)
        cons = [
            {"type": "ineq", "fun": lambda b: ns * (1 + eps) - b.sum(), "jac": lambda b: -ones},
            {"type": "ineq", "fun": lambda b: b.sum() - ns * (1 - eps), "jac": lambda b: ones},
        ]
        res = minimize(
            lambda b: 0.5 * b @ Kn @ b - kn @ b,
            np.ones(ns),
            jac=lambda b: Kn @ b - kn,
            bounds=[(0.0, float(self.B))] * ns,
            constraints=cons,
            method="SLSQP",
            options={"maxiter": 500, "ftol": 1e-12},
        )
        if not res.success:
            log.warning("KMM QP did not converge: %s", res.message)
        self.weights_ = np.clip(res.x, 0.0, self.B)
        return self


class KLIEP(BaseEstimator):
    """Kullback-Leibler Importance Estimation Procedure weights.

    Sugiyama, Suzuki, Nakajima, Kashima, von Buenau, Kawanabe, "Direct importance
    estimation for covariate shift adaptation", AISM 60, 2008,
    doi:10.1007/s10463-008-0197-x.

    ``w(x) = sum_l alpha_l k(x, c_l)`` with the target rows (at most ``n_centers``) as
    centres; maximise ``mean_t log w(xt)`` s.t. ``mean_s w(xs) = 1``, ``alpha >= 0`` by
    projected gradient ascent with the authors' decreasing step sizes
    (1e3 ... 1e-3, up to ``max_iter`` accepted steps each).

    Parameters
    ----------
    kernel : {"rbf", "linear"}
    gamma : float or None
        RBF width, ``None`` = median heuristic over source + target rows.
    n_centers : int
        Maximum number of kernel centres (drawn without replacement when nt is larger).
    max_iter : int
        Accepted ascent steps per step size.
    random_state : int
        Seed for the choice of centres.
    """

    def __init__(
        self, kernel: str = "rbf", gamma: float | None = None, n_centers: int = 100,
        max_iter: int = 100, random_state: int = 0,
    ) -> None:
        self.kernel = kernel
        self.gamma = gamma
        self.n_centers = n_centers
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, Xs, Xt) -> KLIEP:
        """Estimate ``weights_`` (ns,)."""
        Xs, Xt = _check_xs_xt(Xs, Xt)
        self.gamma_ = resolve_gamma(self.kernel, self.gamma, np.vstack([Xs, Xt]))
        rng = np.random.default_rng(self.random_state)
        idx = np.arange(len(Xt))
        if len(Xt) > self.n_centers:
            idx = np.sort(rng.choice(len(Xt), self.n_centers, replace=False))
        self.centers_ = Xt[idx]
        A = kernel_matrix(Xt, self.centers_, self.kernel, self.gamma_)  # (nt, b)
        Phi_s = kernel_matrix(Xs, self.centers_, self.kernel, self.gamma_)  # (ns, b)
        bvec = Phi_s.mean(0)
        bb = float(bvec @ bvec)

        def project(a: np.ndarray) -> np.ndarray:
            a = a + bvec * (1.0 - bvec @ a) / bb
            a = np.maximum(a, 0.0)
            return a / max(float(bvec @ a), 1e-300)

        def score(a: np.ndarray) -> float:
            v = A @ a
            return float(np.mean(np.log(v))) if np.all(v > 0) else -np.inf

        alpha = project(np.ones(A.shape[1]))
        best = score(alpha)
        for step in 10.0 ** np.arange(3, -4, -1):
            for _ in range(self.max_iter):
                cand = project(alpha + step * A.T @ (1.0 / np.maximum(A @ alpha, 1e-300)))
                s = score(cand)
                if s <= best:
                    break
                alpha, best = cand, s
        self.alpha_ = alpha
        self.weights_ = Phi_s @ alpha
        return self


class ULSIF(BaseEstimator):
    """Unconstrained Least-Squares Importance Fitting weights (closed form).

    Kanamori, Hido, Sugiyama, "A least-squares approach to direct importance
    estimation", JMLR 10, 2009 (doi:10.5555/1577069.1755833).

    ``alpha = max(0, (H + lam I)^-1 h)`` with ``H = Phi_s^T Phi_s / ns``,
    ``h = mean_t Phi_t``, Gaussian basis functions centred at (at most ``n_centers``)
    target rows; ``w = Phi_s alpha``. Its scale is ~1/lam, hence the mean-1
    rescaling in :class:`ImportanceWeightedSVM`.

    Parameters
    ----------
    lam : float
        Ridge parameter (benchmark grid {1..100} x {1, 10, ..., 1e5}).
    kernel : {"rbf", "linear"}
    gamma : float or None
        RBF width, ``None`` = median heuristic over source + target rows.
    n_centers : int
        Maximum number of centres (drawn without replacement when nt is larger).
    random_state : int
        Seed for the choice of centres.
    """

    def __init__(
        self, lam: float = 1.0, kernel: str = "rbf", gamma: float | None = None,
        n_centers: int = 100, random_state: int = 0,
    ) -> None:
        self.lam = lam
        self.kernel = kernel
        self.gamma = gamma
        self.n_centers = n_centers
        self.random_state = random_state

    def fit(self, Xs, Xt) -> ULSIF:
        """Estimate ``weights_`` (ns,)."""
        Xs, Xt = _check_xs_xt(Xs, Xt)
        if not self.lam > 0:
            raise ValueError(f"uLSIF lam must be > 0, got {self.lam!r}")
        self.gamma_ = resolve_gamma(self.kernel, self.gamma, np.vstack([Xs, Xt]))
        rng = np.random.default_rng(self.random_state)
        idx = np.arange(len(Xt))
        if len(Xt) > self.n_centers:
            idx = np.sort(rng.choice(len(Xt), self.n_centers, replace=False))
        self.centers_ = Xt[idx]
        Phi_s = kernel_matrix(Xs, self.centers_, self.kernel, self.gamma_)
        h = kernel_matrix(Xt, self.centers_, self.kernel, self.gamma_).mean(0)
        H = Phi_s.T @ Phi_s / len(Xs)
        self.alpha_ = np.maximum(np.linalg.solve(H + self.lam * np.eye(len(h)), h), 0.0)
        self.weights_ = Phi_s @ self.alpha_
        return self


WEIGHTINGS = {"kmm": KMM, "kliep": KLIEP, "ulsif": ULSIF}


class ImportanceWeightedSVM(DomainAdaptationClassifier):
    """Importance-weighted linear SVM (IW-SVM).

    Hassan, Damper, Niranjan, "On acoustic emotion recognition: compensating for
    covariate shift", IEEE TASLP 21(7), 2013, doi:10.1109/TASL.2013.2255278.

    Source weights from ``weighting`` scale each source sample's C in LibSVM
    (``SVC(kernel="linear", C).fit(Xs, ys, sample_weight=w)``); target rows are only
    used to estimate the weights. Works for any new rows.

    Parameters
    ----------
    weighting : {"ulsif", "kmm", "kliep"} or weight estimator
        A name (default parameters) or an estimator such as ``ULSIF(lam=100)``; nested
        parameters are reachable as ``weighting__lam``.
    C : float
        SVM box constraint.
    normalize : bool
        Rescale the weights to mean 1 (default). ``False`` keeps the estimator's raw
        scale, which also changes the effective C.
    """

    def __init__(self, weighting="ulsif", C: float = 1.0, normalize: bool = True) -> None:
        self.weighting = weighting
        self.C = C
        self.normalize = normalize

    requires_target = True

    def _weight_estimator(self):
        if isinstance(self.weighting, str):
            if self.weighting not in WEIGHTINGS:
                raise ValueError(
                    f"unknown weighting {self.weighting!r}; expected one of {sorted(WEIGHTINGS)}"
                    " or a weight estimator with fit(Xs, Xt) and weights_"
                )
            return WEIGHTINGS[self.weighting]()
        if not hasattr(self.weighting, "fit"):
            raise ValueError(f"weighting must be a name or an estimator, got {self.weighting!r}")
        return clone(self.weighting)

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        est = self._weight_estimator().fit(Xs, Xt)
        w = np.asarray(est.weights_, dtype=float)
        if not np.all(np.isfinite(w)) or w.sum() <= 0:
            log.warning("importance weights are all zero or not finite; using uniform weights")
            w = np.ones(len(Xs))
        self.raw_weights_ = w
        self.weights_ = w / w.mean() if self.normalize else w
        self.weight_estimator_ = est
        self.svm_ = GramSVC(C=self.C).fit(Xs, ys, sample_weight=self.weights_)
        self.classes_ = self.svm_.classes_
        return self

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of rows ``X`` (m, d)."""
        return self.svm_.predict(X)
