"""Domain regeneration (Zong et al.): TSRG (= DRFS-S), DRFS-T and DRLS.

A regenerator ``G(x) = P^T k(X_fit, x)`` (P: (n, m), n = ns + nt fitted rows) is learned
from

    min_P ||Y^T - P^T Ks||_F^2 + lam ||P^T dk||^2 + mu ||P||_1,

with ``Ks = [Kss; Kts]`` (n, ns) the kernel between all fitted rows and the
"reference" rows, ``dk = Ks 1/ns - Kt 1/nt`` the kernel MMD vector and ``Y`` (ns, m)
what the reference rows must be regenerated into (their own features for TSRG /
DRFS-T, one-hot labels for DRLS). It is solved by the authors' inexact ALM
(:func:`regenerator_ialm`): Q step in closed form through one eigendecomposition of
``[Ks, sqrt(lam) dk][Ks, sqrt(lam) dk]^T`` reused for every iteration, P step by
soft-thresholding, ``rho = 1.1``, ``kappa0 = 1e-3``, ``kappa_max = 1e15``, ``P = T = 1``
at start, stop when ``max|P - Q| < tol``.

- TSRG: reference = source; SVM on the source, predict the regenerated target rows.
- DRFS-T: reference = target (domains swapped); SVM on the regenerated source,
  predict the original target rows.
- DRLS: reference = source regenerated into the label space; predict by arg-max.

Zong, Huang, Zheng, Cui, Zhao, "Learning a target sample re-generator for
cross-database micro-expression recognition", ACM MM 2017, doi:10.1145/3123266.3123367;
Zong, Zheng, Huang, Shi, Cui, Zhao, "Domain regeneration for cross-database
micro-expression recognition", IEEE TIP 27(5), 2018, doi:10.1109/TIP.2018.2797479.

Cost: each ALM iteration is two (n, n) x (n, m) products; with m = d = 15045 and
n ~ 200 a TSRG / DRFS-T fit takes ~200-250 iterations (~10-25 s on one core);
DRLS (m = 3) takes milliseconds.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.utils.validation import check_is_fitted

from merkit.adapt.base import DomainAdaptationClassifier
from merkit.adapt.kernels import GramSVC, kernel_matrix, resolve_gamma

log = logging.getLogger(__name__)


def regenerator_ialm(
    Ks: np.ndarray,
    Kt: np.ndarray,
    Y: np.ndarray,
    lam: float,
    mu: float,
    *,
    rho: float = 1.1,
    kappa0: float = 1e-3,
    kappa_max: float = 1e15,
    tol: float = 1e-8,
    max_iter: int = 10000,
) -> tuple[np.ndarray, int]:
    """Solve the regeneration problem by inexact ALM.

    Parameters
    ----------
    Ks : (n, ns) kernel between all fitted rows and the reference rows.
    Kt : (n, nt) kernel between all fitted rows and the other rows.
    Y : (ns, m) what the reference rows regenerate into.
    lam, mu : MMD and l1 weights (>= 0).

    Returns
    -------
    P (n, m) and the number of iterations used.
    """
    if lam < 0 or mu < 0:
        raise ValueError(f"lam and mu must be >= 0, got lam={lam!r}, mu={mu!r}")
    n = Ks.shape[0]
    dk = Ks.mean(1) - Kt.mean(1)
    Knew = np.hstack([Ks, np.sqrt(lam) * dk[:, None]])
    D, U = np.linalg.eigh(Knew @ Knew.T)
    D = np.maximum(D, 0.0)
    UB = U.T @ (Ks @ Y)
    P = np.ones((n, Y.shape[1]))
    S = np.ones_like(P) / kappa0  # scaled multiplier S = T / kappa
    kappa = kappa0
    for it in range(1, max_iter + 1):
        # Q = (A + kappa/2 I)^-1 (Ks Y + (kappa P + T)/2) in the eigenbasis of A
        Z = UB + (kappa / 2) * (U.T @ (P + S))
        Z /= (D + kappa / 2)[:, None]
        Q = U @ Z
        W = Q - S
        P = np.sign(W) * np.maximum(np.abs(W) - mu / kappa, 0.0)
        L = P - Q
        if np.abs(L).max() < tol:
            return P, it
        kappa_next = min(kappa_max, kappa * rho)
        # T <- T + kappa (P - Q); S = T / kappa_next
        S = (S + L) * (kappa / kappa_next)
        kappa = kappa_next
    log.warning("regenerator IALM did not reach tol=%g in %d iterations", tol, max_iter)
    return P, max_iter


class _Regenerator(DomainAdaptationClassifier):
    """Shared parameters and kernel bookkeeping of the DR family."""

    requires_target = True

    def __init__(
        self,
        lam: float = 1.0,
        mu: float = 0.1,
        kernel: str = "linear",
        gamma: float | None = None,
        C: float = 1.0,
        tol: float = 1e-8,
        max_iter: int = 10000,
    ) -> None:
        self.lam = lam
        self.mu = mu
        self.kernel = kernel
        self.gamma = gamma
        self.C = C
        self.tol = tol
        self.max_iter = max_iter

    def _learn(self, Xref: np.ndarray, Xother: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Fit P for reference rows ``Xref`` and other rows ``Xother``; store the basis."""
        Xf = np.vstack([Xref, Xother])
        self.gamma_ = resolve_gamma(self.kernel, self.gamma, Xf)
        K = kernel_matrix(Xf, kernel=self.kernel, gamma=self.gamma_)
        K = np.maximum(K, K.T) if self.kernel == "linear" else K
        nr = Xref.shape[0]
        P, self.n_iter_ = regenerator_ialm(
            K[:, :nr], K[:, nr:], Y, self.lam, self.mu, tol=self.tol, max_iter=self.max_iter
        )
        self.X_fit_ = Xf
        self.P_ = P
        return K

    def regenerate(self, X) -> np.ndarray:
        """Regenerated rows ``P^T k(X_fit, x)`` for rows ``X`` (m, d) -> (m, P.shape[1])."""
        check_is_fitted(self, "P_")
        Kx = kernel_matrix(np.asarray(X, dtype=float), self.X_fit_, self.kernel, self.gamma_)
        return Kx @ self.P_


class TargetSampleRegenerator(_Regenerator):
    """TSRG (= DRFS-S): regenerate target rows towards the source, SVM on the source.

    See the module docstring for the model and references. ``predict(X)`` regenerates
    any rows with the learned ``P`` (kernel extension), so new target rows work.

    Parameters
    ----------
    lam : float
        MMD weight (benchmark grid 1e-3 .. 1e3).
    mu : float
        l1 weight (benchmark grid 0.001 .. 10).
    kernel : {"linear", "rbf"}
        Linear as in the benchmark.
    gamma : float or None
        RBF width, ``None`` = median heuristic.
    C : float
        Linear SVM box constraint.
    tol, max_iter : ALM stopping rule (``max|P - Q| < tol``).
    """

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        self._learn(Xs, Xt, Xs)
        self.svm_ = GramSVC(C=self.C).fit(Xs, ys)
        self.classes_ = self.svm_.classes_
        return self

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of target-domain rows ``X`` (m, d), classified after regeneration."""
        return self.svm_.predict(self.regenerate(X))


class DomainRegenerationTarget(_Regenerator):
    """DRFS-T: regenerate the source towards the unchanged target, SVM on the result.

    Same model as TSRG with the domains swapped (reference rows = target). ``predict``
    classifies the original rows, so it works for any new target rows.
    Parameters as :class:`TargetSampleRegenerator`.
    """

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        self._learn(Xt, Xs, Xt)
        self.svm_ = GramSVC(C=self.C).fit(self.regenerate(Xs), ys)
        self.classes_ = self.svm_.classes_
        return self

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of target-domain rows ``X`` (m, d) (no regeneration)."""
        return self.svm_.predict(X)


class DomainRegenerationLabelSpace(_Regenerator):
    """DRLS: regenerate rows into the label space; predict by arg-max.

    ``Y`` = one-hot source labels (ns, c); target rows are regenerated to c scores by
    the learned ``P`` (kernel extension, so new rows work).
    Parameters as :class:`TargetSampleRegenerator` (``C`` unused).
    """

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        self.classes_, codes = np.unique(ys, return_inverse=True)
        self._learn(Xs, Xt, np.eye(len(self.classes_))[codes])
        return self

    def decision_function(self, X) -> np.ndarray:
        """Regenerated label scores (m, n_classes)."""
        return self.regenerate(X)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Arg-max labels of rows ``X`` (m, d)."""
        return self.classes_[np.argmax(self.regenerate(X), axis=1)]


TSRG = TargetSampleRegenerator
DRFS_T = DomainRegenerationTarget
DRLS = DomainRegenerationLabelSpace
