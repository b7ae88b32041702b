"""Domain regeneration (Zong et al.): TSRG (= DRFS-S), DRFS-T and DRLS.

A regenerator ``G(x) = P^T k(X_fit, x)`` (P: (n, m), n = ns + nt fitted rows) is learned
from

    min_P ||Y^T - P^T Ks||_F^2 + lam ||P^T dk||^2 + mu ||P||_1,

with ``Ks = [Kss; Kts]`` (n, ns) the kernel between all fitted rows and the
"reference" rows, ``dk = Ks 1/ns - Kt 1/nt`` the kernel MMD vector and ``Y`` (ns, m)
what the reference rows must be regenerated into (their own features for TSRG /
DRFS-T, one-hot labels for DRLS). It is solved by the authors' inexact ALM
(:func:`regenerator_ialm`): P = T = 1 at start, ``kappa0 = 1e-3``, ``rho = 1.1``,
``kappa_max = 1e15``, stop when ``max|P - Q| < tol``; the Q step is closed form in the
rank <= ns + 1 eigen-basis of ``Ks Ks^T + lam dk dk^T`` (:func:`regenerator_basis`,
computed once per lam and reused for every iteration and every mu), the P step is
soft-thresholding.

- TSRG: reference = source; SVM on the source, predict the regenerated target rows.
- DRFS-T: reference = target (domains swapped); SVM on the regenerated source,
  predict the original target rows.
- DRLS: reference = source regenerated into the label space; predict by arg-max.

``fit(..., sample_weight=w)``: TSRG and DRFS-T scale their SVM's C per source row (the
regenerator is unweighted); DRLS has no per-sample loss to weight and accepts only
all-equal weights.

Zong, Huang, Zheng, Cui, Zhao, "Learning a target sample re-generator for
cross-database micro-expression recognition", ACM MM 2017, doi:10.1145/3123266.3123367;
Zong, Zheng, Huang, Shi, Cui, Zhao, "Domain regeneration for cross-database
micro-expression recognition", IEEE TIP 27(5), 2018, doi:10.1109/TIP.2018.2797479.

Cost: each ALM iteration is two (n, r) x (r, m) products (r <= ns + 1) plus a few
element-wise passes, done per cache-sized block of columns; with m = d = 15045 and
n ~ 200 a TSRG / DRFS-T fit takes 150-250 iterations, ~8-14 s on one loaded core (the
previous (n, n) form took 15-23 s on the same machine; ~2x). The iterations
themselves cannot be skipped without changing the published numbers, which depend on
where the ALM stops. Keep BLAS single-threaded when running fits in parallel
(two-threaded OpenBLAS on these small products was 15x slower on a busy machine).
DRLS (m = 3) takes milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils.validation import check_is_fitted

from merkit.adapt.base import DomainAdaptationClassifier, PathFit, batches_by, fit_each
from merkit.adapt.kernels import GramSVC, kernel_matrix, resolve_gamma
from merkit.adapt.spec import BENCHMARK_FINE, MethodSpec, matlab_range, product_grid, unique_values

log = logging.getLogger(__name__)

#: the benchmark's grid of TSRG, DRFS-T and DRLS: lambda x mu (Sec. 4)
REGENERATION_GRID: tuple[dict, ...] = tuple(
    product_grid(
        lam=[1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0],
        mu=unique_values([*BENCHMARK_FINE, *matlab_range(2, 10, 1)]),
    )
)
#: points of one ``fit_path`` batch of the regenerators (a few fits share a kernel and basis)
PATH_BATCH = 4


@dataclass(frozen=True)
class RegeneratorBasis:
    """The parts of the IALM's Q step that do not change across iterations.

    ``A = Ks Ks^T + lam dk dk^T`` has rank at most ``ns + 1`` (``Ks`` is (n, ns)), so
    ``(A + c I)^-1 = I / c - U diag(D / (c (D + c))) U^T`` with the ``r <= ns + 1``
    eigenpairs ``(D, U)`` of ``A`` that are not zero. They come from the small
    (ns + 1) x (ns + 1) Gram matrix of ``[Ks, sqrt(lam) dk]``; ``UB = U^T Ks Y``.

    Attributes
    ----------
    U : (n, r) orthonormal eigenvectors; D : (r,) eigenvalues; UB : (r, m).
    """

    U: np.ndarray
    D: np.ndarray
    UB: np.ndarray


def regenerator_basis(
    Ks: np.ndarray, Kt: np.ndarray, Y: np.ndarray, lam: float
) -> RegeneratorBasis:
    """Eigen-basis of the Q step for one ``lam`` (reuse it for every ``mu``).

    Parameters
    ----------
    Ks : (n, ns) kernel between all fitted rows and the reference rows.
    Kt : (n, nt) kernel between all fitted rows and the other rows.
    Y : (ns, m) what the reference rows regenerate into.
    lam : MMD weight (>= 0).
    """
    if not lam >= 0:
        raise ValueError(f"lam and mu must be >= 0, got lam={lam!r}")
    dk = Ks.mean(1) - Kt.mean(1)
    Knew = np.hstack([Ks, np.sqrt(lam) * dk[:, None]])  # (n, ns + 1)
    D, V = np.linalg.eigh(Knew.T @ Knew)
    keep = D > D.max(initial=0.0) * max(Knew.shape) * np.finfo(float).eps
    D, V = D[keep], V[:, keep]
    U = (Knew @ V) / np.sqrt(D)
    # re-orthonormalise (one QR step costs nothing at this size and removes the
    # rounding of the division by sqrt(D) for the smallest eigenvalues)
    Qm, Rm = np.linalg.qr(U)
    U = Qm * np.sign(np.diag(Rm))
    UB = (U.T @ Ks) @ Y
    return RegeneratorBasis(U=np.ascontiguousarray(U), D=D, UB=UB)


def _ialm_columns(basis: RegeneratorBasis, cols: slice, mu: float, kappas: np.ndarray, tol: float):
    """Generator driving the IALM of a block of columns one iteration per ``next()``.

    Yields ``max|P - Q|`` of the block after each iteration; ``.P`` of the returned
    state holds the current P block. The columns of the problem are independent (the
    Q step applies one matrix to every column, the P step is element-wise), so a
    block can run ahead of the others while it stays in cache.
    """
    U, D, UB = basis.U, basis.D, basis.UB[:, cols]
    n = U.shape[0]
    m = UB.shape[1]
    state = {"P": np.ones((n, m)), "it": 0}
    S = np.full((n, m), 1.0 / kappas[0])  # scaled multiplier S = T / kappa
    PS = np.empty((n, m))
    W = np.empty((n, m))
    Tc = np.empty((n, m))
    Dc = D[:, None]

    def run():
        P = state["P"]
        k = 0
        while True:
            kappa = kappas[k]
            c = kappa / 2
            # Q = (A + c I)^-1 (Ks Y + c (P + S)) = P + S + U (UB - D U^T (P + S)) / (D + c)
            np.add(P, S, out=PS)
            Z = UB - Dc * (U.T @ PS)
            Z /= Dc + c
            np.matmul(U, Z, out=W)
            np.add(W, P, out=W)  # W = Q - S
            t = mu / kappa
            np.clip(W, -t, t, out=Tc)  # P = soft(W, t) = W - clip(W, -t, t)
            np.subtract(W, Tc, out=P)
            # P - Q = -(clip + S); the next scaled multiplier is (S + P - Q) kappa / kappa'
            np.add(Tc, S, out=PS)
            err = max(PS.max(), -PS.min())
            np.multiply(Tc, -kappa / kappas[k + 1], out=S)
            k += 1
            state["it"] = k
            yield err

    return state, run()


def _kappa_schedule(kappa0: float, rho: float, kappa_max: float, max_iter: int) -> np.ndarray:
    """``kappa_k = min(kappa_max, kappa0 rho^k)`` for k = 0..max_iter, as the loop computes it."""
    out = np.empty(max_iter + 1)
    k = kappa0
    for i in range(max_iter + 1):
        out[i] = k
        k = min(kappa_max, k * rho)
    return out


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
    basis: RegeneratorBasis | None = None,
    block: int = 512,
) -> tuple[np.ndarray, int]:
    """Solve the regeneration problem by the authors' inexact ALM.

    The iterates are those of the textbook loop (P = T = 1 at start, Q step in closed
    form, P step by soft-thresholding, ``kappa <- min(rho kappa, kappa_max)``, stop at
    the first iteration with ``max|P - Q| < tol`` over *all* entries); only the
    arithmetic is organised for speed:

    * the Q step uses the rank ``<= ns + 1`` eigen-basis of ``A`` (:class:`RegeneratorBasis`,
      computed once and reusable across ``mu`` through ``basis=``), two (n, r) x (r, m)
      products per iteration instead of two (n, n) ones;
    * the columns are independent, so blocks of ``block`` columns are iterated while they
      stay in cache and the global stopping iteration is found exactly (the first
      iteration at which every block is below ``tol``).

    Parameters
    ----------
    Ks : (n, ns) kernel between all fitted rows and the reference rows.
    Kt : (n, nt) kernel between all fitted rows and the other rows.
    Y : (ns, m) what the reference rows regenerate into.
    lam, mu : MMD and l1 weights (>= 0).
    basis : precomputed :func:`regenerator_basis` for (Ks, Kt, Y, lam), optional.
    block : columns per cache block.

    Returns
    -------
    P (n, m) and the number of iterations used.
    """
    if lam < 0 or mu < 0:
        raise ValueError(f"lam and mu must be >= 0, got lam={lam!r}, mu={mu!r}")
    if basis is None:
        basis = regenerator_basis(Ks, Kt, Y, lam)
    m = basis.UB.shape[1]
    if basis.U.shape[0] != Ks.shape[0] or m != Y.shape[1]:
        raise ValueError(
            f"basis shapes U {basis.U.shape}, UB {basis.UB.shape} do not match Ks {Ks.shape} "
            f"and Y {Y.shape}"
        )
    kappas = _kappa_schedule(kappa0, rho, kappa_max, max_iter + 1)
    blocks = [slice(a, min(a + block, m)) for a in range(0, m, max(1, int(block)))]
    runs = [_ialm_columns(basis, b, mu, kappas, tol) for b in blocks]
    errs: list[list[float]] = [[] for _ in blocks]
    target = 1
    while True:
        for j, (state, gen) in enumerate(runs):
            # advance block j to the first iteration >= target at which it is below tol
            while state["it"] < target or errs[j][-1] >= tol:
                if state["it"] >= max_iter:
                    break
                errs[j].append(next(gen))
            target = max(target, state["it"])
        its = [s["it"] for s, _ in runs]
        if all(i == target for i in its) and all(e[-1] < tol for e in errs):
            break
        if target >= max_iter and all(i >= max_iter for i in its):
            log.warning("regenerator IALM did not reach tol=%g in %d iterations", tol, max_iter)
            break
    P = np.hstack([s["P"] for s, _ in runs]) if len(runs) > 1 else runs[0][0]["P"]
    return P, int(target)


def _digest(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    return hashlib.blake2b(a.view(np.uint8), digest_size=16).digest() + str(a.shape).encode()


@dataclass
class _SharedWork:
    """Kernels and eigen-bases of the regeneration fits of one :meth:`fit_path` call,
    keyed by what they are computed from (the same inputs give the same arrays)."""

    kernels: dict = field(default_factory=dict)
    bases: dict = field(default_factory=dict)

    def get(self, table: dict, key, compute: Callable[[], object]):
        if key not in table:
            table[key] = compute()
        return table[key]


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
        """Fit every point as :meth:`DomainAdaptationClassifier.fit_path`, computing the
        kernel matrix once and the Q-step eigen-basis (:func:`regenerator_basis`) once per
        ``lam``: points differing only in ``mu`` (and ``C``) share them. The fits are
        otherwise those of :meth:`fit` (same arrays, same numbers)."""
        if not batched:
            return fit_each(self, X, y, sample_domain, points, X_eval=X_eval, **fit_params)
        shared = _SharedWork()

        def hand_over(est) -> None:
            est._shared_work = shared

        return fit_each(
            self, X, y, sample_domain, points, X_eval=X_eval, prepare=hand_over, **fit_params
        )

    def fit_path_batches(self, points: Sequence[Mapping]) -> list[list[int]]:
        """Runs of up to :data:`PATH_BATCH` points that differ only in ``mu`` and ``C``
        (they share a kernel and an eigen-basis)."""

        def shared_by(p: Mapping) -> tuple:
            return tuple(sorted((k, repr(v)) for k, v in p.items() if k not in ("mu", "C")))

        return batches_by(points, shared_by, PATH_BATCH)

    def _learn(self, Xref: np.ndarray, Xother: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Fit P for reference rows ``Xref`` and other rows ``Xother``; store the basis."""
        shared = self.__dict__.pop("_shared_work", None)
        Xf = np.vstack([Xref, Xother])
        nr = Xref.shape[0]

        def kernel() -> tuple:
            gamma = resolve_gamma(self.kernel, self.gamma, Xf)
            K = kernel_matrix(Xf, kernel=self.kernel, gamma=gamma)
            return gamma, (np.maximum(K, K.T) if self.kernel == "linear" else K)

        def basis(K: np.ndarray) -> RegeneratorBasis:
            return regenerator_basis(K[:, :nr], K[:, nr:], Y, self.lam)

        if shared is None:
            self.gamma_, K = kernel()
            base = None  # computed inside the solver
        else:
            rows = (self.kernel, repr(self.gamma), nr, _digest(Xf))
            self.gamma_, K = shared.get(shared.kernels, rows, kernel)
            key = (*rows, float(self.lam), _digest(Y))
            base = shared.get(shared.bases, key, lambda: basis(K))
        P, self.n_iter_ = regenerator_ialm(
            K[:, :nr],
            K[:, nr:],
            Y,
            self.lam,
            self.mu,
            tol=self.tol,
            max_iter=self.max_iter,
            basis=base,
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

    method_specs = (MethodSpec("tsrg", grid=REGENERATION_GRID, paper_names={"lam": "lambda"}),)

    _libsvm_decision = True

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, sample_weight=None) -> None:
        self._learn(Xs, Xt, Xs)
        self.svm_ = GramSVC(C=self.C).fit(Xs, ys, sample_weight=sample_weight)
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, X) -> np.ndarray:
        """SVM decision values of the regenerated rows (``SVC``'s one-vs-rest shape)."""
        Z = self.regenerate(self._check_predict_X(X))
        return self.svm_.decision_function(Z)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of target-domain rows ``X`` (m, d), classified after regeneration."""
        return self.svm_.predict(self.regenerate(X))


class DomainRegenerationTarget(_Regenerator):
    """DRFS-T: regenerate the source towards the unchanged target, SVM on the result.

    Same model as TSRG with the domains swapped (reference rows = target). ``predict``
    classifies the original rows, so it works for any new target rows.
    Parameters as :class:`TargetSampleRegenerator`.
    """

    method_specs = (MethodSpec("drfs_t", grid=REGENERATION_GRID, paper_names={"lam": "lambda"}),)

    _libsvm_decision = True

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray, sample_weight=None) -> None:
        self._learn(Xt, Xs, Xt)
        self.svm_ = GramSVC(C=self.C).fit(self.regenerate(Xs), ys, sample_weight=sample_weight)
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, X) -> np.ndarray:
        """SVM decision values of the original rows (``SVC``'s one-vs-rest shape)."""
        X = self._check_predict_X(X)
        return self.svm_.decision_function(X)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Labels of target-domain rows ``X`` (m, d) (no regeneration)."""
        return self.svm_.predict(X)


class DomainRegenerationLabelSpace(_Regenerator):
    """DRLS: regenerate rows into the label space; predict by arg-max.

    ``Y`` = one-hot source labels (ns, c); target rows are regenerated to c scores by
    the learned ``P`` (kernel extension, so new rows work).
    Parameters as :class:`TargetSampleRegenerator` (``C`` unused).
    """

    method_specs = (MethodSpec("drls", grid=REGENERATION_GRID, paper_names={"lam": "lambda"}),)

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        self.classes_, codes = np.unique(ys, return_inverse=True)
        self._learn(Xs, Xt, np.eye(len(self.classes_))[codes])
        return self

    def decision_function(self, X) -> np.ndarray:
        """Regenerated label scores (m, n_classes)."""
        return self.regenerate(self._check_predict_X(X))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Arg-max labels of rows ``X`` (m, d)."""
        return self.classes_[np.argmax(self.regenerate(X), axis=1)]


TSRG = TargetSampleRegenerator
DRFS_T = DomainRegenerationTarget
DRLS = DomainRegenerationLabelSpace
