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
