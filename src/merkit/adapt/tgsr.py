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

:func:`tgsr_path` fits many kappa values for one xi at once (one matrix product per
iteration for all of them), which is what a grid over kappa x xi should use.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.utils.validation import check_is_fitted

from merkit.adapt.base import DomainAdaptationClassifier

log = logging.getLogger(__name__)

#: LBP-TOP layout of the CDMER benchmark features: 85 blocks x 177 columns
CDMER_N_BLOCKS = 85
CDMER_BLOCK_SIZE = 177


def block_ids(n_features: int, groups=None, group_size: int = CDMER_BLOCK_SIZE) -> np.ndarray:
    """Block id per column (n_features,).

    ``groups`` if given; else the CDMER LBP-TOP layout
    (:func:`merkit.data.features_io.cdmer_lbptop_layout`, whose blocks are *not*
    contiguous: each level stores all XY, then all XT, then all YT histograms) when
    ``n_features == 85 * 177``; else contiguous blocks of ``group_size`` columns.
    """
    if groups is not None:
        g = np.asarray(groups)
        if g.shape != (n_features,):
            raise ValueError(f"groups must have one id per column ({n_features},), got {g.shape}")
        return g
    if n_features == CDMER_N_BLOCKS * CDMER_BLOCK_SIZE:
        from merkit.data.features_io import cdmer_lbptop_layout

        return np.asarray(cdmer_lbptop_layout()[0])
    if n_features % group_size:
        raise ValueError(
            f"{n_features} columns are not a whole number of blocks of {group_size}; "
            "pass groups= (block id per column)"
        )
    return np.repeat(np.arange(n_features // group_size), group_size)


def tgsr_path(
    Xs: np.ndarray,
    ys_onehot: np.ndarray,
    Xt: np.ndarray,
    groups: np.ndarray,
    kappas,
    xi: float,
    *,
    mu0: float = 1e-3,
    rho: float = 1.1,
    mu_max: float = 1e15,
    tol: float = 1e-8,
    max_iter: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit TGSR for several kappa values at one xi.

    Parameters
    ----------
    Xs : (ns, d) source rows; ys_onehot : (ns, c); Xt : (nt, d) target rows.
    groups : (d,) block id per column.
    kappas : iterable of ints in 1..n_blocks.
    xi : MMD weight (>= 0).

    Returns
    -------
    C : (len(kappas), d, c) regression matrices; n_iter : (len(kappas),) iterations used.
    """
    kappas = np.asarray(list(kappas), dtype=int)
    uniq, gidx = np.unique(groups, return_inverse=True)
    nb = len(uniq)
    if kappas.size == 0 or kappas.min() < 1 or kappas.max() > nb:
        raise ValueError(f"kappa must be in 1..{nb} (number of blocks), got {kappas.tolist()}")
    if xi < 0:
        raise ValueError(f"xi must be >= 0, got {xi!r}")
    order = np.argsort(gidx, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(gidx[order])) + 1]
    Xt_til = np.vstack([Xs, np.sqrt(xi) * (Xs.mean(0) - Xt.mean(0))])[:, order]  # (m, d)
    m, d = Xt_til.shape
    c = ys_onehot.shape[1]
    L_til = np.vstack([ys_onehot, np.zeros((1, c))])  # (m, c)
    G = Xt_til @ Xt_til.T
    ev, V = np.linalg.eigh((G + G.T) / 2)
    ev = np.maximum(ev, 0.0)
    XL2 = 2.0 * Xt_til.T @ L_til  # (d, c)
    nk = len(kappas)
    XL2_all = np.tile(XL2, (1, nk))  # (d, c*nk)
    C = np.zeros((d, c * nk))
    P = np.zeros_like(C)
    mu = mu0
    active = np.ones(nk, dtype=bool)
    n_iter = np.zeros(nk, dtype=int)
    for it in range(1, max_iter + 1):
        cols = np.repeat(active, c)
        R = XL2_all[:, cols] + P[:, cols] + mu * C[:, cols]
        # (mu I + 2 X X^T)^-1 R = (R - X (mu/2 I + G)^-1 X^T R) / mu
        Y = V.T @ (Xt_til @ R)
        Y /= (mu / 2 + ev)[:, None]
        D = (R - Xt_til.T @ (V @ Y)) / mu
        W = D - P[:, cols] / mu
        gsq = np.add.reduceat(W * W, starts, axis=0)  # (nb, c * n_active)
        gn = np.sqrt(gsq.reshape(nb, -1, c).sum(2))  # (nb, n_active) group norms
        srt = -np.sort(-gn, axis=0)
        kap = kappas[active]
        thr = np.where(kap < nb, srt[np.minimum(kap, nb - 1), np.arange(len(kap))], 0.0)
        scale = np.where(gn > thr[None, :], 1.0 - thr[None, :] / np.maximum(gn, 1e-300), 0.0)
        Cn = W * np.repeat(np.repeat(scale, c, axis=1), np.diff(np.r_[starts, d]), axis=0)
        diff = np.abs(Cn - D).reshape(d, -1, c).max(axis=(0, 2))
        C[:, cols] = Cn
        P[:, cols] += mu * (Cn - D)  # dual ascent for tr[P^T (C - D)] (the paper prints D - C)
        idx = np.flatnonzero(active)
        n_iter[idx] = it
        done = diff < tol
        active[idx[done]] = False
        if not active.any():
            break
        mu = min(mu * rho, mu_max)
    else:
        log.warning("TGSR ALM did not reach tol=%g in %d iterations for %d kappa values",
                    tol, max_iter, int(active.sum()))
    inv = np.argsort(order)
    return C[inv].reshape(d, nk, c).transpose(1, 0, 2), n_iter


class TransferGroupSparseRegression(DomainAdaptationClassifier):
    """TGSR: block-sparse regression to one-hot labels with an MMD column.

    See the module docstring. ``predict`` is ``argmax C^T x`` for any rows.

    Parameters
    ----------
    kappa : int
        Number of facial blocks kept (1 .. number of blocks, 85 for CDMER features).
    xi : float
        MMD weight (benchmark grid 0.001 .. 1000).
    groups : array-like (d,) or None
        Block id per column (e.g. ``FeatureSet.blocks``); ``None`` = the CDMER LBP-TOP
        layout for 15045 columns, else contiguous blocks of ``group_size`` columns.
    group_size : int
        Columns per block when ``groups`` is None (177 for LBP-TOP R3P8).
    tol, max_iter : ALM stopping rule.
    """

    requires_target = True

    def __init__(
        self,
        kappa: int = CDMER_N_BLOCKS,
        xi: float = 0.01,
        groups=None,
        group_size: int = CDMER_BLOCK_SIZE,
        tol: float = 1e-8,
        max_iter: int = 2000,
    ) -> None:
        self.kappa = kappa
        self.xi = xi
        self.groups = groups
        self.group_size = group_size
        self.tol = tol
        self.max_iter = max_iter

    def _fit(self, Xs: np.ndarray, ys: np.ndarray, Xt: np.ndarray) -> None:
        g = block_ids(Xs.shape[1], self.groups, self.group_size)
        self.classes_, codes = np.unique(ys, return_inverse=True)
        C, n_iter = tgsr_path(
            Xs, np.eye(len(self.classes_))[codes], Xt, g, [self.kappa], self.xi,
            tol=self.tol, max_iter=self.max_iter,
        )
        self.coef_ = C[0]
        self.n_iter_ = int(n_iter[0])
        self.block_ids_ = np.unique(g)
        norms = np.array([np.linalg.norm(self.coef_[g == b]) for b in self.block_ids_])
        self.block_norms_ = norms
        self.selected_blocks_ = self.block_ids_[norms > 0]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Label scores ``X C`` (m, n_classes)."""
        check_is_fitted(self, "coef_")
        return np.asarray(X, dtype=float) @ self.coef_

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Arg-max labels of rows ``X`` (m, d)."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


TGSR = TransferGroupSparseRegression
