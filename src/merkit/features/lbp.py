"""LBP-TOP: local binary patterns on three orthogonal planes.

Zhao, G. & Pietikäinen, M. (2007). Dynamic texture recognition using local binary
patterns with an application to facial expressions. IEEE TPAMI 29(6), 915-928.
doi:10.1109/TPAMI.2007.1110

For every voxel of a grey clip ``[T, H, W]`` that lies at least ``Rt`` frames and
``Ry`` / ``Rx`` pixels from the borders, three codes are computed: one on the XY plane
(appearance), one on the XT plane (horizontal motion) and one on the YT plane (vertical
motion). Each compares ``P`` neighbours sampled on an ellipse around the voxel (bilinear
interpolation) with the voxel: bit ``p`` is 1 when neighbour ``p`` >= centre. Codes are
mapped to histogram bins (``"u2"``: uniform patterns; ``"riu2"``: rotation-invariant
uniform; ``"none"``: raw codes) and histogrammed per spatial block of a multi-scale
:class:`~merkit.features.layout.BlockLayout` (blocks span the whole duration); each
(block, plane) histogram sums to 1.

Neighbour positions (angle ``a_p = 2*pi*p/P``; ``x`` right, ``y`` down, ``t`` forward)
    XY: ``(dy, dx) = (-Ry sin a_p, Rx cos a_p)``; XT: ``(dt, dx) = (-Rt sin a_p, Rx cos a_p)``;
    YT: ``(dt, dy) = (-Rt sin a_p, Ry cos a_p)``. That is scikit-image's convention applied to
    the frame ``clip[t]``, to the XT slice ``clip[:, y, :]`` and to the YT slice
    ``clip[:, :, x]`` (time along the rows): the codes equal
    ``skimage.feature.local_binary_pattern(slice, P, R, "default")`` on those slices.
    Offsets are rounded to 5 decimals (as scikit-image does); neighbour - centre is
    interpolated directly, so a flat neighbourhood always gives the all-ones code.

The ``"u2"`` bins follow MATLAB ``getmapping(P, 'u2')``: uniform codes (at most two
0/1 transitions around the circle) numbered in increasing code value, then one bin for all
non-uniform codes: ``P*(P-1) + 3`` bins (59 for P = 8, 15 for P = 4).

What the real CDMER benchmark features tell (``CrossCorpus_LBPTOP_R3P8_*_112by112.mat``,
130 CASME II + 71 SMIC-VIS clips, 112 x 112 x 16 after TIM, R = 3, P = 8), established
from the files themselves (checks in ``tests/features/test_lbp.py``):

* u2 bins in ``getmapping`` order, the non-uniform bin last: the XT/YT histograms of
  near-static faces peak on exactly the bins of the codes {56, 60, 120, 124, 131, 135,
  195, 199} (one spatial side brighter, the two temporal neighbours tied or not), and
  bits 2 and 6 are the temporal neighbours in both XT and YT.
* Only voxels with ``3 <= t < 13`` and ``3 <= x, y < 109`` are coded, for all three planes
  alike; this 106 x 106 code map is cut into blocks (not the 112 x 112 image), each
  ``round(106/n)`` wide with the remainder in the last one: per-block voxel counts
  (recovered as the common denominator of every histogram) are 106^2, 53^2,
  {27, 25}^2 and {13, 15}^2 x 10 frames — ``BlockLayout(partition="cdmer")``.
* Column layout is (level, plane, block, bin) — for each level all XY histograms, then
  XT, then YT — not (block, plane, bin): at levels 4 and 8 the first n^2 histograms are
  XY-shaped and the larger last-row/last-column blocks recur at the same index per plane.
  ``column_order="level_plane"`` reproduces it.
* Inside a level blocks are column-major: read so, each block's XY histogram matches the
  left-right mirrored (bits p <-> P/2 - p) histogram of its mirror block (mean L1 0.41
  at 4x4 vs 0.92 read row-major, CASME II), and YT matches its mirror unpermuted (0.22 vs
  0.54). Hence ``BlockLayout(order="column")``.
* The neighbour directions above: the 10 official cropped CASME II frames in
  ``shared/data/clips/casme2_frames`` (INTER_AREA to 112 x 112, TIM to 16 frames) give, with
  :func:`cdmer_layout` and ``column_order="level_plane"``, a vector whose nearest benchmark
  row is row 0 (mean L1 per histogram 0.096; next row 0.30, SMIC rows >= 0.62). Flipping XY up-down
  raises the XY part from 0.08 to 0.81; reversing time in XT/YT (the ``t + Rt sin``
  convention of circulating ports of the LBPTOP MATLAB code) from 0.11 to 0.27. The
  remaining gap is presumably the input (the benchmark clip's frame range and resizing
  are not known exactly; rounding TIM output to uint8 fits worse, 0.17).

:func:`cdmer_layout` with ``column_order="level_plane"`` reproduces the benchmark's column
order; :func:`cdmer_to_block_layout` reorders the columns of the benchmark files into
merkit's (block, plane, bin) column order with row-major blocks.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from merkit.features.layout import COLUMN_ORDERS, BlockLayout, block_cells

log = logging.getLogger(__name__)

PLANES = ("XY", "XT", "YT")
MAPPINGS = ("u2", "riu2", "none")
_MAX_LUT_POINTS = 16
_MAX_POINTS = 24


def cdmer_layout() -> BlockLayout:
    """The 85-block layout of the CDMER benchmark features (column-major, cdmer partition)."""
    return BlockLayout((1, 2, 4, 8), order="column", partition="cdmer")


def cdmer_to_block_layout(
    n_planes: int = 3, n_bins: int = 59, levels: tuple[int, ...] = (1, 2, 4, 8)
) -> np.ndarray:
    """Column permutation from the CDMER benchmark's column order to merkit's.

    The benchmark files order columns (level, plane, block column-major, bin); merkit
    orders them (block row-major, plane, bin) over ``BlockLayout(levels)``.

    Returns
    -------
    ndarray of int64, shape (n_blocks * n_planes * n_bins,)
        ``X_merkit = X_benchmark[:, perm]``; then
        ``BlockLayout(levels).column_blocks(n_planes * n_bins)`` names the block of every
        column.
    """
    src = BlockLayout(levels, order="column")
    dst = BlockLayout(levels, order="row")
    to_level_plane = src.level_plane_order(n_planes, n_bins)
    from_level_plane = np.argsort(to_level_plane)  # X_src_block = X_benchmark[:, this]
    position = {b: i for i, b in enumerate(src.blocks)}
    order = [position[b] for b in dst.blocks]
    return from_level_plane.reshape(src.n_blocks, n_planes * n_bins)[order].ravel()


# --------------------------------------------------------------------------- mappings
def _transitions(codes: np.ndarray, points: int) -> np.ndarray:
    codes = codes.astype(np.int64)
    rotated = ((codes << 1) | (codes >> (points - 1))) & ((1 << points) - 1)
    x = codes ^ rotated
    count = np.zeros_like(codes)
    for _ in range(points):
        count += x & 1
        x >>= 1
    return count


def uniform_codes(points: int) -> np.ndarray:
    """All uniform ``points``-bit codes (<= 2 circular transitions), increasing.

    There are ``points * (points - 1) + 2`` of them.
    """
    _check_points(points)
    out = [0, (1 << points) - 1]
    for ones in range(1, points):
        run = (1 << ones) - 1
        for start in range(points):
            out.append(((run << start) | (run >> (points - start))) & ((1 << points) - 1))
    return np.unique(np.asarray(out, dtype=np.int64))


def n_bins(points: int, mapping: str = "u2") -> int:
    """Histogram bins of one plane: ``P(P-1)+3`` (u2), ``P+2`` (riu2) or ``2^P`` (none)."""
    _check_points(points)
    if mapping == "u2":
        return points * (points - 1) + 3
    if mapping == "riu2":
        return points + 2
    if mapping == "none":
        if points > _MAX_LUT_POINTS:
            raise ValueError(
                f"mapping='none' with P={points} needs 2^{points} bins per plane; "
                f"use P <= {_MAX_LUT_POINTS} or mapping='u2'"
            )
        return 1 << points
    raise ValueError(f"unknown LBP mapping {mapping!r}; expected one of {MAPPINGS}")


def map_codes(codes: np.ndarray, points: int, mapping: str = "u2") -> np.ndarray:
    """Histogram bin of each raw code.

    Parameters
    ----------
    codes : int ndarray
        Raw ``points``-bit LBP codes (bit p = neighbour p >= centre).
    points : int
        Neighbours P.
    mapping : {"u2", "riu2", "none"}
        ``"u2"``: MATLAB ``getmapping(P,'u2')`` order (uniform codes by increasing value,
        non-uniform last); ``"riu2"``: number of ones of a uniform code, ``P+1`` otherwise;
        ``"none"``: the code itself.

    Returns
    -------
    int ndarray, same shape as ``codes``
    """
    nb = n_bins(points, mapping)
    codes = np.asarray(codes)
    if mapping == "none":
        return codes.astype(np.int64)
    if points <= _MAX_LUT_POINTS:
        return _lut(points, mapping)[codes]
    codes = codes.astype(np.int64)
    if mapping == "u2":
        uni = uniform_codes(points)
        pos = np.searchsorted(uni, codes)
        hit = uni[np.minimum(pos, len(uni) - 1)] == codes
        return np.where(hit, pos, nb - 1)
    ones = np.zeros_like(codes)
    x = codes.copy()
    for _ in range(points):
        ones += x & 1
        x >>= 1
    return np.where(_transitions(codes, points) <= 2, ones, points + 1)


@lru_cache(maxsize=16)
def _lut(points: int, mapping: str) -> np.ndarray:
    codes = np.arange(1 << points, dtype=np.int64)
    if mapping == "u2":
        table = np.full(codes.shape, n_bins(points, "u2") - 1, dtype=np.int64)
        table[uniform_codes(points)] = np.arange(points * (points - 1) + 2)
    else:
        ones = np.zeros_like(codes)
        x = codes.copy()
        for _ in range(points):
            ones += x & 1
            x >>= 1
        table = np.where(_transitions(codes, points) <= 2, ones, points + 1)
    dtype = np.uint8 if table.max() < 256 else np.uint16
    table = table.astype(dtype)
    table.flags.writeable = False
    return table


# --------------------------------------------------------------------------- sampling
def _check_points(points: int) -> None:
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)):
        raise ValueError(f"LBP neighbour count must be an integer, got {points!r}")
    if not 2 <= points <= _MAX_POINTS:
        raise ValueError(f"LBP neighbour count must be in 2..{_MAX_POINTS}, got {points}")


def neighbour_offsets(plane: str, points: int, radii: tuple[float, float, float]) -> np.ndarray:
    """Offsets ``(dt, dy, dx)`` of the ``points`` neighbours of one plane.

    Parameters
    ----------
    plane : {"XY", "XT", "YT"}
    points : int
        P.
    radii : (Rx, Ry, Rt)

    Returns
    -------
    ndarray of shape (points, 3), rounded to 5 decimals.
    """
    _check_points(points)
    rx, ry, rt = (float(r) for r in radii)
    a = 2.0 * np.pi * np.arange(points, dtype=np.float64) / points
    s, c = np.sin(a), np.cos(a)
    z = np.zeros(points)
    if plane == "XY":
        off = np.stack([z, -ry * s, rx * c], axis=1)
    elif plane == "XT":
        off = np.stack([-rt * s, z, rx * c], axis=1)
    elif plane == "YT":
        off = np.stack([-rt * s, ry * c, z], axis=1)
    else:
        raise ValueError(f"unknown LBP-TOP plane {plane!r}; expected one of {PLANES}")
    return np.round(off, 5) + 0.0  # + 0.0 turns -0.0 into 0.0


def _corner_terms(offset: np.ndarray) -> list[tuple[tuple[int, int, int], float]]:
    """Integer shifts and bilinear weights of one (possibly fractional) neighbour."""
    axes = []
    for o in offset:
        lo = int(np.floor(o))
        frac = float(o - lo)
        axes.append([(lo, 1.0 - frac), (lo + 1, frac)] if frac > 0 else [(lo, 1.0)])
    terms = []
    for dt, wt in axes[0]:
        for dy, wy in axes[1]:
            for dx, wx in axes[2]:
                terms.append(((dt, dy, dx), wt * wy * wx))
    return terms


def _margins(radii: tuple[float, float, float]) -> tuple[int, int, int]:
    rx, ry, rt = radii
    return int(np.ceil(rt)), int(np.ceil(ry)), int(np.ceil(rx))


def _check_clip(clip, radii, points) -> tuple[np.ndarray, tuple[float, float, float]]:
    arr = np.asarray(clip)
    if arr.ndim != 3:
        raise ValueError(
            f"LBP-TOP needs a grey clip of shape [T, H, W], got an array of shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"LBP-TOP needs a real-valued clip, got dtype {arr.dtype}")
    radii_t = tuple(float(r) for r in radii)
    if len(radii_t) != 3 or any(not np.isfinite(r) or r <= 0 for r in radii_t):
        raise ValueError(f"radii must be three positive numbers (Rx, Ry, Rt), got {radii!r}")
    if len(tuple(points)) != 3:
        raise ValueError(f"points must be three integers (P_xy, P_xt, P_yt), got {points!r}")
    for p in points:
        _check_points(p)
    mt, my, mx = _margins(radii_t)
    t, h, w = arr.shape
    if t < 2 * mt + 1:
        raise ValueError(
            f"clip has {t} frames; LBP-TOP with Rt={radii_t[2]:g} needs at least {2 * mt + 1}"
        )
    if h < 2 * my + 1 or w < 2 * mx + 1:
        raise ValueError(
            f"clip frames are {h}x{w}; LBP-TOP with Rx={radii_t[0]:g}, Ry={radii_t[1]:g} "
            f"needs at least {2 * my + 1}x{2 * mx + 1}"
        )
    data = arr.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise ValueError("LBP-TOP clip contains NaN or infinite values")
    return data, radii_t


def lbp_top_codes(
    clip: np.ndarray,
    *,
    radii: tuple[float, float, float] = (3, 3, 3),
    points: tuple[int, int, int] = (8, 8, 8),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw LBP codes of the XY, XT and YT planes at every coded voxel.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip (any real dtype).
    radii : (Rx, Ry, Rt)
        Neighbourhood radii along x, y and t.
    points : (P_xy, P_xt, P_yt)
        Neighbours on each plane.

    Returns
    -------
    (xy, xt, yt) : int ndarrays of shape (T - 2*ceil(Rt), H - 2*ceil(Ry), W - 2*ceil(Rx))
        Codes of the voxels ``[mt:T-mt, my:H-my, mx:W-mx]`` (``m = ceil(R)``).
    """
    data, radii_t = _check_clip(clip, radii, points)
    return tuple(
        _plane_codes(data, plane, p, radii_t) for plane, p in zip(PLANES, points, strict=True)
    )


def _plane_codes(data: np.ndarray, plane: str, points: int, radii) -> np.ndarray:
    mt, my, mx = _margins(radii)
    t, h, w = data.shape

    def view(dt: int, dy: int, dx: int) -> np.ndarray:
        return data[mt + dt : t - mt + dt, my + dy : h - my + dy, mx + dx : w - mx + dx]

    centre = view(0, 0, 0)
    dtype = np.uint8 if points <= 8 else (np.uint16 if points <= 16 else np.uint32)
    codes = np.zeros(centre.shape, dtype=dtype)
    diff = np.empty(centre.shape, dtype=np.float32)
    tmp = np.empty(centre.shape, dtype=np.float32)
    bit = np.empty(centre.shape, dtype=dtype)
    for p, off in enumerate(neighbour_offsets(plane, points, radii)):
        terms = _corner_terms(off)
        if len(terms) == 1:  # on a pixel centre: compare directly
            np.greater_equal(view(*terms[0][0]), centre, out=bit, casting="unsafe")
        else:  # interpolate neighbour - centre, exact zero on flat neighbourhoods
            for k, (shift, wgt) in enumerate(terms):
                target = diff if k == 0 else tmp
                np.subtract(view(*shift), centre, out=target)
                np.multiply(target, np.float32(wgt), out=target)
                if k:
                    np.add(diff, tmp, out=diff)
            np.greater_equal(diff, 0, out=bit, casting="unsafe")
        if p:
            np.left_shift(bit, p, out=bit)
        np.bitwise_or(codes, bit, out=codes)
    return codes


# --------------------------------------------------------------------------- histograms
def lbp_top(
    clip: np.ndarray,
    *,
    radii: tuple[float, float, float] = (3, 3, 3),
    points: tuple[int, int, int] = (8, 8, 8),
    layout: BlockLayout | None = None,
    mapping: str = "u2",
    column_order: str = "block",
) -> np.ndarray:
    """LBP-TOP histograms of a grey clip over a multi-scale block layout.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip, e.g. 16 TIM frames of 112 x 112.
    radii : (Rx, Ry, Rt)
        Radii along x, y and t (the usual R3: ``(3, 3, 3)``).
    points : (P_xy, P_xt, P_yt)
        Neighbours on the XY, XT and YT planes.
    layout : BlockLayout, optional
        Spatial blocks, laid over the map of coded voxels (the frame minus a border of
        ``ceil(R)``); default ``BlockLayout((1, 2, 4, 8))`` (85 blocks).
    mapping : {"u2", "riu2", "none"}
        Code -> bin mapping (:func:`map_codes`).
    column_order : {"block", "level_plane"}
        ``"block"``: values ordered (block, plane, bin) — merkit's order, matching
        ``layout.column_blocks(3 * n_bins)``. ``"level_plane"``: (level, plane, block,
        bin), the column order of the CDMER benchmark files (use with
        :func:`cdmer_layout`).

    Returns
    -------
    ndarray of float32, shape (n_blocks * sum of the three planes' bins,)
        Each (block, plane) histogram sums to 1. R3P8 u2 over 85 blocks: 15045 values.
    """
    if layout is None:
        layout = BlockLayout()
    if column_order not in COLUMN_ORDERS:
        raise ValueError(
            f"unknown LBP-TOP column order {column_order!r}; expected one of {COLUMN_ORDERS}"
        )
    nbs = [n_bins(p, mapping) for p in points]
    if column_order == "level_plane" and len(set(nbs)) != 1:
        raise ValueError(
            "column_order='level_plane' needs the same number of bins on the three planes"
        )
    data, radii_t = _check_clip(clip, radii, points)
    mt, my, mx = _margins(radii_t)
    t, h, w = data.shape
    ch, cw = h - 2 * my, w - 2 * mx
    try:
        layout.check_size(ch, cw)
    except ValueError as err:
        raise ValueError(f"LBP-TOP code map of {ch}x{cw} pixels: {err}") from err
    per_plane = []
    for plane, p, nb in zip(PLANES, points, nbs, strict=True):
        codes = _plane_codes(data, plane, p, radii_t)
        bins = map_codes(codes, p, mapping)
        cell, agg = block_cells(layout, ch, cw)
        idx = (cell * np.int32(nb))[None] + bins.astype(np.int32)
        cell_hist = np.bincount(idx.ravel(), minlength=agg.shape[1] * nb)
        hist = agg @ cell_hist.reshape(agg.shape[1], nb).astype(np.float64)
        counts = hist.sum(axis=1)
        per_plane.append(hist / counts[:, None])
    log.debug("LBP-TOP of a %s clip: %d voxels coded per plane", data.shape, codes.size)
    if column_order == "block":
        out = np.concatenate(per_plane, axis=1)
    else:
        stacked = np.stack(per_plane, axis=1)  # (block, plane, bin)
        out = np.concatenate([stacked[sl].transpose(1, 0, 2).ravel() for sl in layout.level_slices])
    return out.astype(np.float32).ravel()


def output_dim(
    points: tuple[int, int, int] = (8, 8, 8), layout: BlockLayout | None = None, mapping: str = "u2"
) -> int:
    """Length of the :func:`lbp_top` vector."""
    layout = BlockLayout() if layout is None else layout
    return layout.n_blocks * sum(n_bins(p, mapping) for p in points)
