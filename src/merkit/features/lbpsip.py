"""LBP-SIP: local binary patterns with six intersection points.

Wang, Y., See, J., Phan, R. C.-W. & Oh, Y.-H. (2014). LBP with six intersection points:
reducing redundant information in LBP-TOP for micro-expression recognition. ACCV 2014,
LNCS 9003, 525-537. doi:10.1007/978-3-319-16865-4_34

The three circles of LBP-TOP (on the XY, XT and YT planes through a voxel) meet in six
points, the voxel's neighbours along the three axes; LBP-SIP keeps only those six, which
lie on the voxel lattice (no interpolation). For the voxel ``c = (t, y, x)`` and integer
radii ``(Rx, Ry, Rt)``, bit = 1 when the neighbour is >= the centre:

spatial code, 4 bits (16 values)
    bit 0 ``(t, y, x + Rx)`` (right), bit 1 ``(t, y - Ry, x)`` (up), bit 2 ``(t, y, x - Rx)``
    (left), bit 3 ``(t, y + Ry, x)`` (down): LBP-TOP's XY code with P = 4, i.e.
    ``skimage.feature.local_binary_pattern(clip[t], 4, R, "default")``.
temporal code, 2 bits (4 values)
    bit 0 ``(t - Rt, y, x)`` (previous frame), bit 1 ``(t + Rt, y, x)`` (next frame): bits
    1 and 3 of LBP-TOP's XT (or YT) code with P = 4.

The two codes are histogrammed separately (no uniform mapping) and concatenated:
``2^4 + 2^2 = 20`` values per block instead of the ``2^6 = 64`` of a joint 6-bit code —
the construction of the paper ("LBP-SIP(R1)" and "LBP-SIP(R3)" in the CDMER benchmark,
Zong et al., doi:10.1145/3323873.3326590: R = 1 or 3 on all three axes).

Coded voxels are those at least ``Rt`` frames and ``Ry`` / ``Rx`` pixels from the borders,
``clip[Rt:T-Rt, Ry:H-Ry, Rx:W-Rx]``; the spatial blocks of a multi-scale
:class:`~merkit.features.layout.BlockLayout` are laid over that code map (as for
:func:`merkit.features.lbp.lbp_top`) and span the whole duration. For every block the
16-bin spatial histogram and the 4-bin temporal histogram are each normalised to sum 1.
"""

from __future__ import annotations

import logging

import numpy as np

from merkit.features.layout import BlockLayout, block_cells

log = logging.getLogger(__name__)

#: the two parts of an LBP-SIP block histogram and their bin counts
PARTS = (("spatial", 16), ("temporal", 4))
DIM_PER_BLOCK = 20


def _check_radii(radii) -> tuple[int, int, int]:
    try:
        values = tuple(radii)
    except TypeError:
        values = (radii,) * 3
    if len(values) != 3:
        raise ValueError(f"LBP-SIP radii must be three integers (Rx, Ry, Rt), got {radii!r}")
    out = []
    for r in values:
        if isinstance(r, bool) or float(r) != int(r) or int(r) < 1:
            raise ValueError(
                f"LBP-SIP radii must be positive integers (the six points lie on the voxel "
                f"lattice), got {radii!r}"
            )
        out.append(int(r))
    return out[0], out[1], out[2]


def _check_clip(clip, radii) -> tuple[np.ndarray, tuple[int, int, int]]:
    arr = np.asarray(clip)
    if arr.ndim != 3:
        raise ValueError(
            f"LBP-SIP needs a grey clip of shape [T, H, W], got an array of shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) and not np.iscomplexobj(arr)):
        raise ValueError(f"LBP-SIP needs a real-valued clip, got dtype {arr.dtype}")
    rx, ry, rt = _check_radii(radii)
    t, h, w = arr.shape
    if t < 2 * rt + 1:
        raise ValueError(f"clip has {t} frames; LBP-SIP with Rt={rt} needs at least {2 * rt + 1}")
    if h < 2 * ry + 1 or w < 2 * rx + 1:
        raise ValueError(
            f"clip frames are {h}x{w}; LBP-SIP with Rx={rx}, Ry={ry} needs at least "
            f"{2 * ry + 1}x{2 * rx + 1}"
        )
    data = arr.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise ValueError("LBP-SIP clip contains NaN or infinite values")
    return data, (rx, ry, rt)


def lbp_sip_codes(
    clip: np.ndarray, *, radii: int | tuple[int, int, int] = (1, 1, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """Spatial (4-bit) and temporal (2-bit) LBP-SIP codes of every coded voxel.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip (any real dtype).
    radii : int or (Rx, Ry, Rt)
        Integer distances of the six neighbours along x, y and t.

    Returns
    -------
    (spatial, temporal) : uint8 ndarrays of shape (T - 2*Rt, H - 2*Ry, W - 2*Rx)
        Codes of the voxels ``[Rt:T-Rt, Ry:H-Ry, Rx:W-Rx]``; spatial in 0..15, temporal
        in 0..3 (bit layout in the module docstring).
    """
    data, (rx, ry, rt) = _check_clip(clip, radii)
    t, h, w = data.shape

    def view(dt: int, dy: int, dx: int) -> np.ndarray:
        return data[rt + dt : t - rt + dt, ry + dy : h - ry + dy, rx + dx : w - rx + dx]

    centre = view(0, 0, 0)
    spatial = np.zeros(centre.shape, dtype=np.uint8)
    temporal = np.zeros(centre.shape, dtype=np.uint8)
    bit = np.empty(centre.shape, dtype=np.uint8)
    for codes, shifts in (
        (spatial, ((0, 0, rx), (0, -ry, 0), (0, 0, -rx), (0, ry, 0))),
        (temporal, ((-rt, 0, 0), (rt, 0, 0))),
    ):
        for p, shift in enumerate(shifts):
            np.greater_equal(view(*shift), centre, out=bit, casting="unsafe")
            if p:
                np.left_shift(bit, p, out=bit)
            np.bitwise_or(codes, bit, out=codes)
    return spatial, temporal


def lbp_sip(
    clip: np.ndarray,
    *,
    radii: int | tuple[int, int, int] = (1, 1, 1),
    layout: BlockLayout | None = None,
) -> np.ndarray:
    """LBP-SIP histograms of a grey clip over a multi-scale block layout.

    Parameters
    ----------
    clip : ndarray of shape (T, H, W)
        Grey clip, e.g. 16 TIM frames of 112 x 112.
    radii : int or (Rx, Ry, Rt)
        Integer neighbour distances; the benchmark's LBP-SIP(R1) and LBP-SIP(R3) use
        ``1`` and ``3`` on all axes.
    layout : BlockLayout, optional
        Spatial blocks over the map of coded voxels (the frame minus a border of ``Ry`` /
        ``Rx``); default ``BlockLayout((1, 2, 4, 8))`` (85 blocks).

    Returns
    -------
    ndarray of float32, shape (n_blocks * 20,)
        Ordered (block, part, bin): per block the 16-bin spatial histogram, then the 4-bin
        temporal histogram, each summing to 1 (1700 values over 85 blocks).
    """
    layout = BlockLayout() if layout is None else layout
    spatial, temporal = lbp_sip_codes(clip, radii=radii)
    _, ch, cw = spatial.shape
    try:
        layout.check_size(ch, cw)
    except ValueError as err:
        raise ValueError(f"LBP-SIP code map of {ch}x{cw} pixels: {err}") from err
    cell, agg = block_cells(layout, ch, cw)
    parts = []
    for codes, (_, nb) in zip((spatial, temporal), PARTS, strict=True):
        idx = (cell * np.int32(nb))[None] + codes.astype(np.int32)
        counts = np.bincount(idx.ravel(), minlength=agg.shape[1] * nb)
        hist = agg @ counts.reshape(agg.shape[1], nb).astype(np.float64)
        parts.append(hist / hist.sum(axis=1, keepdims=True))
    log.debug("LBP-SIP of a %s clip: %d voxels coded", np.shape(clip), spatial.size)
    return np.concatenate(parts, axis=1).astype(np.float32).ravel()


def output_dim(layout: BlockLayout | None = None) -> int:
    """Length of the :func:`lbp_sip` vector (20 per block)."""
    return (BlockLayout() if layout is None else layout).n_blocks * DIM_PER_BLOCK
