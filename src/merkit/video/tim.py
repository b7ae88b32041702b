"""Temporal interpolation model (TIM): resample a clip to a fixed number of frames.

Zhou, Z., Zhao, G. & Pietikäinen, M. (2011). Towards a practical lipreading system.
CVPR, 137-144. doi:10.1109/CVPR.2011.5995345 — used for micro-expressions by Pfister
et al. (ICCV 2011) and for the CDMER benchmark features (16 frames).

The ``n`` frames are embedded on the path graph with ``n`` nodes. Its Laplacian has the
eigenvectors ``y_k(t) = sin(pi*k*t/n + pi*(n-k)/(2n)) = cos(pi*k*(t - 1/2)/n)``,
``k = 1..n-1``, ``t = 1..n`` (with the constant vector, the DCT-II basis). The original
code learns a linear map from the mean-removed frames to this curve and maps points of the
continuous curve back to image space; as the n-1 mean-removed frames and the n-1 curve
coordinates span the same space, this is exactly

    x(t) = mu + sum_k c_k y_k(t),

where the ``c_k`` make the series reproduce the ``n`` input frames at ``t = 1..n``. New frames
are ``x(t)`` at ``length`` equally spaced ``t`` from 1 to ``n`` (the original ``synPGM`` with
positions ``0:1/(length-1):1``), so the first and last output frames are the first and last
input frames. The coefficients are obtained by solving the ``n x n`` system in the
temporal domain (never a pixel x pixel matrix), which also works when frames repeat
(the original code requires linearly independent frames).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def _basis(n: int, t: np.ndarray) -> np.ndarray:
    """Path-graph Laplacian eigenfunctions (plus the constant) at positions ``t`` (1-based)."""
    k = np.arange(n, dtype=np.float64)
    return np.cos(np.pi * np.outer(np.asarray(t, dtype=np.float64) - 0.5, k) / n)


def tim_matrix(n_frames: int, length: int) -> np.ndarray:
    """Matrix ``M`` (length x n_frames) with ``tim(frames) == M @ frames`` (frames flattened).

    Parameters
    ----------
    n_frames : int
        Input frames ``n`` (>= 1).
    length : int
        Output frames (>= 2).
    """
    if n_frames < 1:
        raise ValueError(f"TIM needs at least one input frame, got {n_frames}")
    if length < 2:
        raise ValueError(f"TIM output length must be at least 2, got {length}")
    if n_frames == 1:
        return np.ones((length, 1))
    positions = np.linspace(1.0, float(n_frames), length)
    basis = _basis(n_frames, np.arange(1, n_frames + 1))
    # basis has orthogonal columns: solve basis @ c = x in the temporal domain
    inverse, *_ = np.linalg.lstsq(basis, np.eye(n_frames), rcond=None)
    return _basis(n_frames, positions) @ inverse


def tim(frames: np.ndarray, length: int = 16) -> np.ndarray:
    """Resample a clip to ``length`` frames with the temporal interpolation model.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W) or (T, H, W, C)
        The clip (any real dtype).
    length : int
        Frames wanted (>= 2). ``length == T`` returns the input (as float32).

    Returns
    -------
    ndarray of float32, shape (length, H, W[, C])
        Not clipped: values may slightly overshoot the input range between frames.

    Examples
    --------
    >>> clip = np.random.default_rng(0).random((7, 4, 4))
    >>> tim(clip, 16).shape
    (16, 4, 4)
    """
    arr = np.asarray(frames)
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"TIM needs frames of shape [T, H, W] or [T, H, W, C], got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError("TIM got an empty clip (0 frames)")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"TIM needs real-valued frames, got dtype {arr.dtype}")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise ValueError(f"TIM output length must be an integer, got {length!r}")
    n = arr.shape[0]
    m = tim_matrix(n, int(length))
    flat = arr.reshape(n, -1).astype(np.float64, copy=False)
    out = m @ flat
    log.debug("TIM %d -> %d frames of %s", n, length, arr.shape[1:])
    return out.reshape((int(length),) + arr.shape[1:]).astype(np.float32)
