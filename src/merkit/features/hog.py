"""HOG-TOP and HIGO-TOP: histograms of (image) gradient orientations on three orthogonal
planes.

Li, X., Hong, X., Moilanen, A., Huang, X., Pfister, T., Zhao, G. & Pietikäinen, M. (2018).
Towards reading hidden emotions: a comparative study of spontaneous micro-expression
spotting and recognition methods. IEEE Trans. Affective Computing 9(4), 563-577.
doi:10.1109/TAFFC.2017.2667642

On each plane image the gradient ``(g_h, g_v)`` (horizontal, vertical component) gives an
orientation ``theta = arctan(g_v / g_h)`` in ``[-pi/2, pi/2)`` — unsigned: a gradient and
its opposite vote alike — quantised into ``p`` equal bins; HOG-TOP weights each vote by the
magnitude ``sqrt(g_h^2 + g_v^2)``, HIGO-TOP (the "degenerated" HOG of Li et al.) counts one
vote per pixel, which makes it insensitive to the local contrast. The CDMER benchmark
(Zong et al., doi:10.1145/3323873.3326590) uses ``p`` = 4 and 8.

Conventions
    Gradients are central differences ``[-1, 0, 1]`` (Dalal & Triggs) along x (right),
    y (down) and t (forward): ``g_x = I(x+1) - I(x-1)`` etc. Plane images as in
    :mod:`merkit.features.lbp`: XY is the frame (``g_h = g_x``, ``g_v = g_y``), XT is
    ``clip[:, y, :]`` with time along the rows (``g_h = g_x``, ``g_v = g_t``), YT is
    ``clip[:, :, x]`` with time along the rows (``g_h = g_y``, ``g_v = g_t``).
    Bin ``b`` holds ``theta`` in ``[-pi/2 + b*pi/p, -pi/2 + (b+1)*pi/p)``: vertical
    gradients (``g_h = 0``) fall in bin 0, horizontal ones (``g_v = 0``) in bin ``p/2``.
    Bins are decided by exact comparisons ``g_v >= g_h * tan(boundary)`` (tangents of 0 and
    +-pi/4 exact), not by a rounded arctangent, so gradients on a boundary — frequent with
    integer grey levels, e.g. ``|g_x| = |g_y|`` — always fall in the upper bin.
    Pixels with a zero gradient on a plane cast no vote there (their orientation is
    undefined): HIGO counts the pixels with a non-zero gradient, so HOG and HIGO differ
    only by the magnitude weights.

Coded voxels are ``clip[1:T-1, 1:H-1, 1:W-1]`` for all three planes; the spatial blocks of
a :class:`~merkit.features.layout.BlockLayout` are laid over that code map and span the whole
duration. Each (block, plane) histogram is normalised to sum 1; one without any vote (a
flat block) is uniform, ``1/p`` per bin.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from merkit.features.layout import BlockLayout, block_cells

log = logging.getLogger(__name__)

PLANES = ("XY", "XT", "YT")
_MAX_BINS = 360
#: voxels per chunk of the gradient arithmetic (a few float64 arrays fit in a 2 MB L2 cache)
_CHUNK_ELEMENTS = 1 << 14


def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)):
        raise ValueError(f"number of orientation bins must be an integer, got {bins!r}")
    if not 2 <= bins <= _MAX_BINS:
        raise ValueError(f"number of orientation bins must be in 2..{_MAX_BINS}, got {bins}")
    return int(bins)


def _check_clip(clip, name: str) -> np.ndarray:
    arr = np.asarray(clip)
    if arr.ndim != 3:
        raise ValueError(
            f"{name} needs a grey clip of shape [T, H, W], got an array of shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"{name} needs a real-valued clip, got dtype {arr.dtype}")
    t, h, w = arr.shape
    if t < 3:
        raise ValueError(
            f"clip has {t} frames; {name} needs at least 3 (central temporal differences)"
        )
    if h < 3 or w < 3:
        raise ValueError(f"clip frames are {h}x{w}; {name} needs at least 3x3")
    data = arr.astype(np.float64, copy=False)
    if not np.isfinite(data).all():
        raise ValueError(f"{name} clip contains NaN or infinite values")
    return data


@lru_cache(maxsize=32)
def _boundary_tangents(bins: int) -> np.ndarray:
    """``tan`` of the inner bin boundaries ``-pi/2 + k*pi/p``, k = 1..p-1 (exact 0, +-1)."""
    angles = -np.pi / 2 + np.pi * np.arange(1, bins) / bins
    tangents = np.tan(angles)
    for exact in (-1.0, 0.0, 1.0):
        tangents[np.abs(tangents - exact) < 1e-12] = exact
    tangents.flags.writeable = False
    return tangents


def orientation_bins(g_h: np.ndarray, g_v: np.ndarray, bins: int) -> np.ndarray:
    """Unsigned orientation bin of gradients ``(g_h, g_v)``.

    Parameters
    ----------
    g_h, g_v : ndarray
        Horizontal and vertical gradient components (same shape).
    bins : int
        Number of bins p over ``[-pi/2, pi/2)``.

    Returns
    -------
    uint16 ndarray, same shape
        Bin ``b`` holds ``arctan(g_v / g_h)`` in ``[-pi/2 + b*pi/p, -pi/2 + (b+1)*pi/p)``;
        ``g_h = 0`` gives bin 0 (also for the zero gradient, which callers should not count).
    """
    bins = _check_bins(bins)
    g_h = np.asarray(g_h, dtype=np.float64)
    g_v = np.asarray(g_v, dtype=np.float64)
    flip = g_h < 0  # (g_h, g_v) and (-g_h, -g_v) have the same unsigned orientation
    h = np.where(flip, -g_h, g_h)
    v = np.where(flip, -g_v, g_v)
    out = np.zeros(h.shape, dtype=np.uint16)
    scratch = np.empty(h.shape, dtype=bool)
    for tangent in _boundary_tangents(bins):
        np.greater_equal(v, h * tangent, out=scratch)
        out += scratch
    out[h == 0] = 0  # theta = -pi/2
    return out


def gradient_orientations(clip: np.ndarray, bins: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Orientation bin and gradient magnitude of every coded voxel on each plane.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip (any real dtype; computed in float64).
    bins : int
        Orientation bins p.

    Returns
    -------
    list of (bin, magnitude) for the XY, XT and YT planes
        uint16 and float64 arrays of shape (T - 2, H - 2, W - 2) (voxels ``[1:-1, 1:-1,
        1:-1]``); the bin of a zero gradient is 0 and must be ignored (magnitude 0).
    """
    return _orientations(_check_clip(clip, "HOG-TOP"), _check_bins(bins))


def _orientations(data: np.ndarray, bins: int) -> list[tuple[np.ndarray, np.ndarray]]:
    g_x = data[1:-1, 1:-1, 2:] - data[1:-1, 1:-1, :-2]
    g_y = data[1:-1, 2:, 1:-1] - data[1:-1, :-2, 1:-1]
    g_t = data[2:, 1:-1, 1:-1] - data[:-2, 1:-1, 1:-1]
    return [
        (orientation_bins(g_h, g_v, bins), np.hypot(g_h, g_v))
        for g_h, g_v in ((g_x, g_y), (g_x, g_t), (g_y, g_t))
    ]


def _gradient_histograms(clip, bins: int, layout: BlockLayout | None, magnitude: bool, name: str):
    layout = BlockLayout() if layout is None else layout
    bins = _check_bins(bins)
    data = _check_clip(clip, name)
    _, h, w = data.shape
    ch, cw = h - 2, w - 2
    try:
        layout.check_size(ch, cw)
    except ValueError as err:
        raise ValueError(f"{name} code map of {ch}x{cw} pixels: {err}") from err
    cell, agg = block_cells(layout, ch, cw)
    idx_base = (cell * np.int32(bins))[None]
    sums = np.zeros((3, agg.shape[1] * bins))
    # frames are independent once the temporal neighbours are included: work in chunks of
    # coded frames that stay in cache, accumulating the cell sums
    step = max(1, _CHUNK_ELEMENTS // (h * w))
    for start in range(1, data.shape[0] - 1, step):
        stop = min(start + step, data.shape[0] - 1)
        planes = _orientations(data[start - 1 : stop + 1], bins)
        for k, (plane_bins, mag) in enumerate(planes):
            idx = (idx_base + plane_bins.astype(np.int32)).ravel()
            weights = mag.ravel() if magnitude else (mag.ravel() > 0).astype(np.float64)
            sums[k] += np.bincount(idx, weights=weights, minlength=sums.shape[1])
    per_plane = []
    for k in range(3):
        hist = agg @ sums[k].reshape(agg.shape[1], bins)
        total = hist.sum(axis=1, keepdims=True)
        empty = total[:, 0] <= 0
        hist = np.divide(hist, total, out=np.full_like(hist, 1.0 / bins), where=~empty[:, None])
        if empty.any():
            log.debug("%s: %d (block, plane) histograms without gradient", name, empty.sum())
        per_plane.append(hist)
    return np.concatenate(per_plane, axis=1).astype(np.float32).ravel()


def hog_top(clip: np.ndarray, *, bins: int = 8, layout: BlockLayout | None = None) -> np.ndarray:
    """HOG-TOP: magnitude-weighted orientation histograms on XY, XT, YT per block.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip, e.g. 16 TIM frames of 112 x 112 (at least 3 x 3 x 3).
    bins : int
        Orientation bins p over the unsigned range (CDMER benchmark: 4 and 8).
    layout : BlockLayout, optional
        Spatial blocks over the map of coded voxels (the frame minus a 1-pixel border);
        default ``BlockLayout((1, 2, 4, 8))`` (85 blocks).

    Returns
    -------
    ndarray of float32, shape (n_blocks * 3 * bins,)
        Ordered (block, plane XY/XT/YT, bin); each (block, plane) histogram sums to 1
        (sum of the magnitudes voting in each bin / sum of all magnitudes).
    """
    return _gradient_histograms(clip, bins, layout, True, "HOG-TOP")


def higo_top(clip: np.ndarray, *, bins: int = 8, layout: BlockLayout | None = None) -> np.ndarray:
    """HIGO-TOP: unweighted orientation histograms (one vote per pixel with a non-zero
    gradient) on XY, XT, YT per block.

    Parameters and output as :func:`hog_top`; each (block, plane) histogram is the fraction
    of voting pixels per orientation bin and sums to 1.
    """
    return _gradient_histograms(clip, bins, layout, False, "HIGO-TOP")


def output_dim(bins: int = 8, layout: BlockLayout | None = None) -> int:
    """Length of the :func:`hog_top` / :func:`higo_top` vector (3 x p per block)."""
    return (BlockLayout() if layout is None else layout).n_blocks * 3 * _check_bins(bins)
