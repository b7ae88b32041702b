"""Small synthetic domain-shift data shared by the adapt tests."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs


def shifted_blobs(seed: int = 0, n: int = 60, d: int = 12, shift: float = 2.5):
    """3 Gaussian classes; the target is the source translated by ``shift`` along a random
    direction. Returns X, y (target = -1), sample_domain, yt."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(3, d))
    Xs, ys = make_blobs(n, d, centers=centers, cluster_std=1.0, random_state=seed)
    Xt, yt = make_blobs(n, d, centers=centers, cluster_std=1.0, random_state=seed + 1)
    u = rng.normal(size=d)
    Xt = Xt + shift * u / np.linalg.norm(u) * 3
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, -np.ones(n, dtype=int)]
    sd = np.r_[np.ones(n, dtype=int), -np.ones(n, dtype=int)]
    return X, y, sd, yt


def _pack(Xs, ys, Xt, yt):
    """Source and target rows in the DA convention: X, y (target = -1), sample_domain, yt."""
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, -np.ones(len(Xt), dtype=int)]
    sd = np.r_[np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)]
    return X, y, sd, np.asarray(yt)


def _latent(rng: np.random.Generator, n: int, k: int, sep: float, layout: str):
    """``n`` latent points (k,) in 3 balanced classes with unit-variance Gaussian noise.

    ``layout="line"``: class centres -sep, 0, sep on axis 0; ``"triangle"``: an equilateral
    triangle of radius ``sep`` in axes 0-1. The other axes carry no class information.
    """
    centres = np.zeros((3, k))
    if layout == "line":
        centres[:, 0] = [-sep, 0.0, sep]
    else:
        a = np.deg2rad([90.0, 210.0, 330.0])
        centres[:, 0], centres[:, 1] = sep * np.cos(a), sep * np.sin(a)
    y = np.arange(n) % 3
    return centres[y] + rng.normal(size=(n, k)), y


def subspace_shift(
    seed: int = 0,
    n: int = 60,
    d: int = 300,
    theta: float = 70.0,
    stretch: float = 5.0,
    sep: float = 4.0,
    noise: float = 0.1,
):
    """The classes live in a 2-d subspace that the target rotates by ``theta`` degrees.

    Latent points (2,) with the classes on a line along axis 0; source rows ``A z``, target
    rows ``B diag(1, stretch) z`` (plus isotropic noise in all ``d`` columns), where
    ``B = cos(theta) A + sin(theta) A_perp``: every principal angle between the two
    subspaces is ``theta``, and the stretched class-free axis makes it the target's first
    principal direction (the source's first is the class axis). A linear SVM trained on the
    source sees the target classes shrunk by ``cos(theta)`` onto its middle class. Same
    return values as :func:`shifted_blobs`.
    """
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(d, 4)))[0]
    A, A_perp = Q[:, :2], Q[:, 2:]
    th = np.deg2rad(theta)
    B = np.cos(th) * A + np.sin(th) * A_perp
    zs, ys = _latent(rng, n, 2, sep, "line")
    zt, yt = _latent(rng, n, 2, sep, "line")
    Xs = zs @ A.T + noise * rng.normal(size=(n, d))
    Xt = (zt * [1.0, stretch]) @ B.T + noise * rng.normal(size=(n, d))
    return _pack(Xs, ys, Xt, yt)


def translation_shift(
    seed: int = 0, n: int = 60, d: int = 20, t: float = 10.0, sep: float = 4.0, noise: float = 0.3
):
    """The target is the source translated by ``t`` along a direction the SVM relies on.

    Latent points (4,) with the classes on a triangle in axes 0-1, embedded by a random
    orthonormal ``A`` (d, 4) plus isotropic noise; the target is moved by ``t`` along
    ``A (e0 + e2) / sqrt(2)``, half in the class plane and half along a class-free axis, so
    removing that one direction (what matching the domain means does) keeps the classes
    apart. Same return values as :func:`shifted_blobs`.
    """
    rng = np.random.default_rng(seed)
    A = np.linalg.qr(rng.normal(size=(d, 4)))[0]
    zs, ys = _latent(rng, n, 4, sep, "triangle")
    zt, yt = _latent(rng, n, 4, sep, "triangle")
    u = A @ np.array([1.0, 0.0, 1.0, 0.0]) / np.sqrt(2.0)
    Xs = zs @ A.T + noise * rng.normal(size=(n, d))
    Xt = zt @ A.T + noise * rng.normal(size=(n, d)) + t * u
    return _pack(Xs, ys, Xt, yt)


def covariate_shift(seed: int = 0, ns: int = 150, nt: int = 100):
    """Covariate shift: the same ``p(y | x)`` everywhere, the target in a corner of the source.

    2-d rows ``x``; the class is the band of ``x1 - x0^2`` ((-inf, -1), [-1, 1), [1, inf)),
    so the class boundaries are parabolas. Source ``x0 ~ N(0, 1.5^2)``, ``x1 ~ N(2, 2.5^2)``;
    target ``x0 ~ N(2, 0.4^2)``, ``x1 ~ N(4, 1.5^2)``, where the boundaries are steep. An
    unweighted linear SVM fits the flat boundaries of the bulk of the source; weighting the
    source rows by ``p_target / p_source`` fits the target's. Same return values as
    :func:`shifted_blobs`.
    """
    rng = np.random.default_rng(seed)
    xs = np.c_[rng.normal(0.0, 1.5, ns), rng.normal(2.0, 2.5, ns)]
    xt = np.c_[rng.normal(2.0, 0.4, nt), rng.normal(4.0, 1.5, nt)]

    def label(x):
        return np.digitize(x[:, 1] - x[:, 0] ** 2, [-1.0, 1.0])

    return _pack(xs, label(xs), xt, label(xt))
