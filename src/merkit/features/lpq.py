"""LPQ-TOP: local phase quantization on three orthogonal planes.

Ojansivu, V. & Heikkilä, J. (2008). Blur insensitive texture classification using local
phase quantization. ICISP 2008, LNCS 5099, 236-243. doi:10.1007/978-3-540-69905-7_27
Päivärinta, J., Rahtu, E. & Heikkilä, J. (2011). Volume local phase quantization for
blur-insensitive dynamic texture classification. SCIA 2011, LNCS 6688, 360-369.
doi:10.1007/978-3-642-21227-7_34

On each plane through a voxel, LPQ takes the short-term Fourier transform of the
``w_r x w_c`` window around it at four low frequencies ``(0, a_c)``, ``(a_r, 0)``,
``(a_r, a_c)``, ``(a_r, -a_c)`` (``a = 1/w``, rows then columns of the plane image), keeps
the real and imaginary parts of the four coefficients (8 numbers), optionally decorrelates
them and writes their signs (``>= 0`` -> 1) as an 8-bit code; the codes of the coded voxels
of a block are histogrammed over 256 bins per plane. The phase of these low frequencies is
unchanged by a centrally symmetric blur whose spectrum is positive there, hence the
blur insensitivity.

Conventions, those of the authors' ``LPQ_TOP.m`` (Päivärinta, Rahtu & Heikkilä, 2010),
which the CDMER benchmark (Zong et al., doi:10.1145/3323873.3326590) ran with window
``[5, 5, 5]`` and ``[rho_s, rho_t]`` = ``[0.1, 0.1]`` ("LPQ-TOP(decorr=0.1)") or ``0`` (no
decorrelation, "LPQ-TOP(decorr=0)"):

* Plane images: XY is the frame (rows y, columns x); XT is ``clip[:, y, :]`` seen with x
  along the rows and t along the columns; YT is ``clip[:, :, x]`` with y along the rows and
  t along the columns (``LPQ_TOP.m`` slices ``permute(V, [1 3 2])`` and ``permute(V, [2 3
  1])``; with MATLAB's rows = y its second plane, called "XT" there, is merkit's YT and its
  third is merkit's XT — merkit orders the planes XY, XT, YT as for LBP-TOP).
* Filters act as MATLAB ``conv2(conv2(img, w_r.', 'valid'), w_c, 'valid')`` with
  ``w1 = exp(-2*pi*i*x/w)``, ``x = -r..r``: component ``k`` of the code is, in order,
  real/imag of ``(box_r, w1_c)``, ``(w1_r, box_c)``, ``(w1_r, w1_c)``, ``(w1_r, conj(w1_c))``;
  bit ``k`` is component ``k >= 0``.
* Decorrelation: pixels of the window are modelled with covariance
  ``rho_s^|d|`` (XY, ``|d|`` the Euclidean distance) or ``rho_s^|d_row| * rho_t^|d_col|``
  (XT, YT); ``D = M C M^T`` for the 8 x 8 filter matrix ``M``; ``V`` from
  ``svd(A D A)`` with ``A = diag(1.000007, ..., 1.000001, 1)``; the code uses the signs of
  ``V^T f``. Only ``rho_s = rho_t = 0`` turns decorrelation off (as in ``LPQ_TOP.m``).
  SVD leaves the sign of each column of ``V`` free and LAPACK builds may differ, so merkit
  fixes it (first entry of magnitude > 1e-3 positive): codes are the same on every
  machine; against another implementation they may differ by a fixed bit flip, i.e. a
  fixed permutation of the 256 bins.

Differences from ``LPQ_TOP.m``, for merkit's multi-scale block layout: the three planes code the
same voxels — those whose whole window fits on every plane, ``clip[mt:T-mt, my:H-my,
mx:W-mx]`` with ``m = (w - 1) / 2`` (``LPQ_TOP.m`` codes, per plane, every voxel whose
window fits on that plane) — and the spatial blocks of a
:class:`~merkit.features.layout.BlockLayout` are laid over that code map and span the whole
duration. The STFT sums are evaluated in float64 as sums of differences to the centre
(the same numbers in exact arithmetic), so a part whose filter runs along an axis where
the clip is constant (a flat window, a static clip in time) is exactly 0 — bit 1 — instead
of rounding noise of either sign. Each (block, plane) histogram sums to 1.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from merkit.features.layout import BlockLayout, block_cells

log = logging.getLogger(__name__)

PLANES = ("XY", "XT", "YT")
N_BINS = 256
#: (row axis, column axis) of each plane image in the clip array [T, H, W]
_PLANE_AXES = {"XY": (1, 2), "XT": (2, 0), "YT": (1, 0)}
#: elements per chunk of the STFT arithmetic (a few float64 arrays fit in a 2 MB L2 cache)
_CHUNK_ELEMENTS = 1 << 14
#: the almost-unit diagonal of LPQ_TOP.m that separates repeated eigenvalues
_A = np.diag([1.000007, 1.000006, 1.000005, 1.000004, 1.000003, 1.000002, 1.000001, 1.0])


# --------------------------------------------------------------------------- parameters
def _check_window(window) -> tuple[int, int, int]:
    try:
        values = tuple(window)
    except TypeError:
        values = (window,) * 3
    if len(values) != 3:
        raise ValueError(f"LPQ-TOP window must be three odd sizes (wx, wy, wt), got {window!r}")
    for w in values:
        if isinstance(w, bool) or float(w) != int(w) or int(w) < 3 or int(w) % 2 != 1:
            raise ValueError(f"LPQ-TOP window sizes must be odd integers >= 3, got {window!r}")
    return int(values[0]), int(values[1]), int(values[2])


def _check_rho(rho) -> tuple[float, float] | None:
    """``(rho_s, rho_t)``, or None for no decorrelation."""
    if rho is None:
        return None
    try:
        values = tuple(float(r) for r in rho)
    except TypeError:
        values = (float(rho),) * 2
    if len(values) != 2:
        raise ValueError(f"LPQ-TOP rho must be a number or (rho_s, rho_t), got {rho!r}")
    if any(not np.isfinite(r) or r < 0 or r >= 1 for r in values):
        raise ValueError(f"LPQ-TOP correlation coefficients must lie in [0, 1), got {rho!r}")
    if values == (0.0, 0.0):
        return None
    return values[0], values[1]


def _check_clip(clip, window) -> tuple[np.ndarray, tuple[int, int, int]]:
    arr = np.asarray(clip)
    if arr.ndim != 3:
        raise ValueError(
            f"LPQ-TOP needs a grey clip of shape [T, H, W], got an array of shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"LPQ-TOP needs a real-valued clip, got dtype {arr.dtype}")
    wx, wy, wt = _check_window(window)
    t, h, w = arr.shape
    if t < wt:
        raise ValueError(
            f"clip has {t} frames; LPQ-TOP with a temporal window of {wt} needs at least {wt}"
        )
    if h < wy or w < wx:
        raise ValueError(
            f"clip frames are {h}x{w}; LPQ-TOP with a {wy}x{wx} (y x x) window needs at "
            f"least {wy}x{wx}"
        )
    data = arr.astype(np.float64)
    if not np.isfinite(data).all():
        raise ValueError("LPQ-TOP clip contains NaN or infinite values")
    return data, (wx, wy, wt)


# --------------------------------------------------------------------------- whitening
def _filter_matrix(w_r: int, w_c: int) -> np.ndarray:
    """The 8 x (w_r*w_c) matrix M of LPQ_TOP.m (column-major window, left-right flipped)."""
    x_r = np.arange(w_r) - (w_r - 1) / 2
    x_c = np.arange(w_c) - (w_c - 1) / 2
    w0_r, w1_r = np.ones(w_r), np.exp(-2j * np.pi * x_r / w_r)
    w0_c, w1_c = np.ones(w_c), np.exp(-2j * np.pi * x_c / w_c)
    rows = []
    for q in (
        np.outer(w0_r, w1_c),
        np.outer(w1_r, w0_c),
        np.outer(w1_r, w1_c),
        np.outer(w1_r, np.conj(w1_c)),
    ):
        rows.append(q.real.ravel(order="F"))
        rows.append(q.imag.ravel(order="F"))
    return np.array(rows)[:, ::-1]


@lru_cache(maxsize=32)
def whitening_matrix(w_r: int, w_c: int, rho_s: float, rho_t: float, spatial: bool) -> np.ndarray:
    """Whitening transform ``V`` (8 x 8) of LPQ-TOP for one plane.

    Parameters
    ----------
    w_r, w_c : int
        Window size along the rows and the columns of the plane image.
    rho_s, rho_t : float
        Correlation coefficient of neighbouring pixels in space and in time.
    spatial : bool
        True for XY (``C = rho_s^euclidean distance``), False for XT / YT (rows spatial,
        columns temporal: ``C = rho_s^|d_row| * rho_t^|d_col|``).

    Returns
    -------
    ndarray of shape (8, 8)
        Whitened coefficients are ``V.T @ f`` for the 8 STFT parts ``f`` of a pixel;
        columns sign-normalised (module docstring).
    """
    rows, cols = np.meshgrid(np.arange(w_r), np.arange(w_c), indexing="ij")
    rows, cols = rows.ravel(order="F"), cols.ravel(order="F")
    d_r = np.abs(rows[:, None] - rows[None, :]).astype(np.float64)
    d_c = np.abs(cols[:, None] - cols[None, :]).astype(np.float64)
    if spatial:
        cov = np.power(rho_s, np.hypot(d_r, d_c))
    else:
        cov = np.power(rho_s, d_r) * np.power(rho_t, d_c)
    m = _filter_matrix(w_r, w_c)
    d = m @ cov @ m.T
    _, _, vh = np.linalg.svd(_A @ d @ _A)
    v = vh.T.copy()
    for k in range(v.shape[1]):
        first = np.flatnonzero(np.abs(v[:, k]) > 1e-3)[0]
        if v[first, k] < 0:
            v[:, k] = -v[:, k]
    v.flags.writeable = False
    return v


# --------------------------------------------------------------------------- codes
def _take(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    return a[tuple(index)]


def _stft_1d(f: np.ndarray, axis: int, w: int, which: tuple[str, ...]) -> dict[str, np.ndarray]:
    """1-D filters of LPQ along ``axis`` ('valid' part), any of "box" (sum over the window),
    "cos" and "sin" (real / imaginary part of MATLAB ``conv(f, exp(-2*pi*i*x/w))``, i.e.
    ``sum_u f(c+u) cos(2 pi u / w)`` and ``sum_u f(c+u) sin(2 pi u / w)``).

    cos and sin are accumulated as ``cos(.)(f(c+u) + f(c-u) - 2 f(c))`` (the cosines sum
    to zero over the window) and ``sin(.)(f(c+u) - f(c-u))``: exactly 0 where ``f`` is
    constant along ``axis``.
    """
    r = (w - 1) // 2
    n = f.shape[axis] - 2 * r

    def at(u: int) -> np.ndarray:
        return _take(f, axis, r + u, r + u + n)

    centre = at(0)
    out: dict[str, np.ndarray] = {}
    if "box" in which:
        out["box"] = centre.copy()
    if "cos" in which:
        twice = centre + centre
    pair = np.empty(centre.shape)
    for u in range(1, r + 1):
        angle = 2.0 * np.pi * u / w
        if "box" in which or "cos" in which:
            np.add(at(u), at(-u), out=pair)
            if "box" in which:
                out["box"] += pair
            if "cos" in which:
                pair -= twice
                pair *= np.cos(angle)
                if u == 1:
                    out["cos"] = pair.copy()
                else:
                    out["cos"] += pair
        if "sin" in which:
            np.subtract(at(u), at(-u), out=pair)
            pair *= np.sin(angle)
            if u == 1:
                out["sin"] = pair.copy()
            else:
                out["sin"] += pair
    return out


def _plane_components(data: np.ndarray, axes: tuple[int, int], w_r: int, w_c: int):
    """The 8 STFT parts (real/imag of 4 frequencies) of every pixel, in LPQ_TOP.m order:
    ``(box_r, w1_c)``, ``(w1_r, box_c)``, ``(w1_r, w1_c)``, ``(w1_r, conj w1_c)``."""
    ax_r, ax_c = axes
    rows = _stft_1d(data, ax_r, w_r, ("box", "cos", "sin"))
    box = _stft_1d(rows["box"], ax_c, w_c, ("cos", "sin"))
    cos = _stft_1d(rows["cos"], ax_c, w_c, ("box", "cos", "sin"))
    sin = _stft_1d(rows["sin"], ax_c, w_c, ("box", "cos", "sin"))
    return (
        box["cos"],  # (box, w1): real
        box["sin"],  # (box, w1): imag
        cos["box"],  # (w1, box): real
        sin["box"],  # (w1, box): imag
        cos["cos"] - sin["sin"],  # (w1, w1): real
        cos["sin"] + sin["cos"],  # (w1, w1): imag
        cos["cos"] + sin["sin"],  # (w1, conj w1): real
        sin["cos"] - cos["sin"],  # (w1, conj w1): imag
    )


def _plane_codes(data, plane: str, window: tuple[int, int, int], rho) -> np.ndarray:
    wx, wy, wt = window
    sizes = {0: wt, 1: wy, 2: wx}
    ax_r, ax_c = _PLANE_AXES[plane]
    # crop the axis that is not in the plane to the common coded voxels
    (other,) = {0, 1, 2} - {ax_r, ax_c}
    m = (sizes[other] - 1) // 2
    sub = _take(data, other, m, data.shape[other] - m)
    shape = list(sub.shape)
    shape[ax_r] -= sizes[ax_r] - 1
    shape[ax_c] -= sizes[ax_c] - 1
    codes = np.empty(shape, dtype=np.uint8)
    v = None
    if rho is not None:
        v = whitening_matrix(sizes[ax_r], sizes[ax_c], rho[0], rho[1], plane == "XY")
    # slices along the third axis are independent: work in chunks that stay in cache
    per_slice = sub.size // sub.shape[other]
    step = max(1, _CHUNK_ELEMENTS // per_slice)
    for start in range(0, sub.shape[other], step):
        stop = min(start + step, sub.shape[other])
        chunk = _take(sub, other, start, stop)
        parts = _plane_components(chunk, (ax_r, ax_c), sizes[ax_r], sizes[ax_c])
        flat = np.empty((parts[0].size, 8))  # one row of 8 parts per pixel
        for k, part in enumerate(parts):
            flat[:, k] = part.ravel()
        if v is not None:
            flat = flat @ v  # row-wise V^T f
        # bit k = part k >= 0
        bits = np.packbits(flat >= 0, axis=1, bitorder="little")[:, 0]
        _take(codes, other, start, stop)[...] = bits.reshape(parts[0].shape)
    return codes


def lpq_top_codes(
    clip: np.ndarray,
    *,
    window: int | tuple[int, int, int] = (5, 5, 5),
    rho: float | tuple[float, float] | None = 0.1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LPQ codes of the XY, XT and YT planes at every coded voxel.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip (any real dtype; computed in float64).
    window : int or (wx, wy, wt)
        Odd window sizes along x, y and t (``LPQ_TOP.m``'s ``winSizes`` is ``[wy wx wt]``).
    rho : float, (rho_s, rho_t) or None
        Correlation coefficients of the decorrelation model; ``0`` or None: none.

    Returns
    -------
    (xy, xt, yt) : uint8 ndarrays of shape (T - 2*mt, H - 2*my, W - 2*mx)
        Codes of the voxels ``[mt:T-mt, my:H-my, mx:W-mx]``, ``m = (w - 1) / 2``.
    """
    data, window_t = _check_clip(clip, window)
    rho_t = _check_rho(rho)
    return tuple(_plane_codes(data, plane, window_t, rho_t) for plane in PLANES)


def lpq_top(
    clip: np.ndarray,
    *,
    window: int | tuple[int, int, int] = (5, 5, 5),
    rho: float | tuple[float, float] | None = 0.1,
    layout: BlockLayout | None = None,
) -> np.ndarray:
    """LPQ-TOP histograms of a grey clip over a multi-scale block layout.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip, e.g. 16 TIM frames of 112 x 112.
    window : int or (wx, wy, wt)
        Odd STFT window sizes (default ``[5, 5, 5]`` as in the CDMER benchmark).
    rho : float, (rho_s, rho_t) or None
        Decorrelation: ``0.1`` (``[0.1, 0.1]``, LPQ-TOP(decorr=0.1), default) or ``0``
        (no decorrelation, LPQ-TOP(decorr=0)).
    layout : BlockLayout, optional
        Spatial blocks over the map of coded voxels (the frame minus a border of
        ``(w - 1) / 2``); default ``BlockLayout((1, 2, 4, 8))`` (85 blocks).

    Returns
    -------
    ndarray of float32, shape (n_blocks * 3 * 256,)
        Ordered (block, plane XY/XT/YT, code); each (block, plane) histogram sums to 1
        (65280 values over 85 blocks).
    """
    layout = BlockLayout() if layout is None else layout
    codes = lpq_top_codes(clip, window=window, rho=rho)
    _, ch, cw = codes[0].shape
    try:
        layout.check_size(ch, cw)
    except ValueError as err:
        raise ValueError(f"LPQ-TOP code map of {ch}x{cw} pixels: {err}") from err
    cell, agg = block_cells(layout, ch, cw)
    per_plane = []
    for plane_codes in codes:
        idx = (cell * np.int32(N_BINS))[None] + plane_codes.astype(np.int32)
        counts = np.bincount(idx.ravel(), minlength=agg.shape[1] * N_BINS)
        hist = agg @ counts.reshape(agg.shape[1], N_BINS).astype(np.float64)
        per_plane.append(hist / hist.sum(axis=1, keepdims=True))
    log.debug("LPQ-TOP of a %s clip: %d voxels coded per plane", np.shape(clip), codes[0].size)
    return np.concatenate(per_plane, axis=1).astype(np.float32).ravel()


def output_dim(layout: BlockLayout | None = None) -> int:
    """Length of the :func:`lpq_top` vector (3 x 256 per block)."""
    return (BlockLayout() if layout is None else layout).n_blocks * 3 * N_BINS
