"""Optical-flow descriptors: HOOF histograms over a block layout, and MDMO over 36 facial ROIs.

Angles
------
The angle of a flow vector ``(u, v)`` (image axes: ``u`` right, ``v`` down) is measured
counter-clockwise *on screen* from the right: ``theta = atan2(-v, u)``, so 0 = right,
pi/2 = up, pi = left, -pi/2 = down.

HOOF
----
Histograms of oriented optical flow (Chaudhry, Ravichandran, Hager & Vidal, "Histograms of
oriented optical flow and Binet-Cauchy kernels on nonlinear dynamical systems for the
recognition of human actions", CVPR 2009, doi:10.1109/CVPR.2009.5206821). Each vector
votes for the bin of its angle, weighted by its magnitude (or counted), and each block
histogram is normalised to sum 1. Two binnings:

``full`` (default)
    ``bins`` sectors over the whole circle, centred on the directions ``2 pi k / bins``
    (bin 0 = right, bin ``bins / 4`` = up, ...), symmetric about the horizontal axis.
    Rotating the flow by 90 degrees shifts the histogram by ``bins / 4``.
``mirror``
    Chaudhry's binning by the *primary angle*: ``atan2(-v, |u|)`` in ``[-pi/2, pi/2]`` is
    cut into ``bins`` equal sectors (bin 0 = down ... bin ``bins - 1`` = up), so a flow and
    its left-right mirror image give the same histogram.

A sequence of flows ``(T, H, W, 2)`` accumulates votes over time before normalisation.
A block without any vote (no motion) is all zeros.

MDMO
----
Main directional mean optical flow (Liu, Zhang, Yan, Wang, Zhao & Fu, "A main directional
mean optical-flow feature for spontaneous micro-expression recognition", IEEE Trans.
Affective Computing 7(4), 2016, doi:10.1109/TAFFC.2015.2485205). For every flow field
(frame 1 -> frame i of the clip) and every one of 36 facial ROIs, the vectors are binned
into 8 directions (the ``full`` HOOF binning), the bin holding the most vectors is the main
direction, and the ROI is described by the mean vector of that bin. These 36 vectors are
averaged over the clip (in Cartesian coordinates: an average of angles would wrap around at
+-pi), turned into (magnitude, angle), and the magnitudes are divided by their maximum over
the ROIs: 36 x 2 = 72 values ``(rho_1, theta_1, ..., rho_36, theta_36)``.

The ROIs are merkit's own partition of the face built on the 68-point landmarks (the
paper's 36 ROIs are drawn on a 66-point ASM model and not given as coordinates): for each
side, forehead (outer, inner), glabella, brow-to-eye (outer, inner), outer eye corner, lower
eyelid, nose bridge, nose side, cheek (upper, lower), nasolabial region, philtrum, mouth
corner, upper lip, lower lip, chin (lateral, medial) — see :data:`MDMO_ROIS`. Regions
above the brows and below the eyes are built from offsets in units of the inter-ocular
distance. Without a landmark model the mean shape mapped into the aligned face stands in
for the landmarks (:func:`merkit.video.face.reference_landmarks`); that assumes the clip
is a face crop as produced by :func:`merkit.video.face.align_clip` (same ``margin``).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from merkit.features.layout import BlockLayout
from merkit.video import face
from merkit.video.flow import clip_flows

log = logging.getLogger(__name__)

BINNINGS = ("full", "mirror")

# --------------------------------------------------------------------------- angles, bins


def angle_bins(flow: np.ndarray, bins: int = 8, binning: str = "full") -> np.ndarray:
    """Histogram bin (0..bins-1) of every flow vector.

    Parameters
    ----------
    flow : ndarray, shape (..., 2)
    bins : int
        Number of direction bins.
    binning : {"full", "mirror"}
        See the module docstring.

    Returns
    -------
    ndarray of int64, shape (...)
    """
    bins = _check_bins(bins)
    if binning not in BINNINGS:
        raise ValueError(f"unknown HOOF binning {binning!r}; expected one of {BINNINGS}")
    flow = np.asarray(flow, dtype=np.float64)
    if binning == "full":
        theta = np.arctan2(-flow[..., 1], flow[..., 0])
        width = 2.0 * np.pi / bins
        return np.floor((theta + width / 2.0) / width).astype(np.int64) % bins
    theta = np.arctan2(-flow[..., 1], np.abs(flow[..., 0]))  # [-pi/2, pi/2]
    idx = np.floor((theta + np.pi / 2.0) / (np.pi / bins)).astype(np.int64)
    return np.clip(idx, 0, bins - 1)


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or int(bins) != bins or bins < 2:
        raise ValueError(f"bins must be an integer >= 2, got {bins!r}")
    return int(bins)


def _as_flow_sequence(flow: np.ndarray, where: str) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim == 3:
        flow = flow[None]
    if flow.ndim != 4 or flow.shape[-1] != 2 or len(flow) == 0:
        raise ValueError(
            f"{where} expects a flow (H, W, 2) or a flow sequence (T, H, W, 2), got shape "
            f"{flow.shape}"
        )
    if not np.all(np.isfinite(flow)):
        raise ValueError(f"{where}: the flow contains NaN or infinite values")
    return flow


# --------------------------------------------------------------------------- HOOF
def hoof(
    flow: np.ndarray,
    *,
    bins: int = 8,
    magnitude: bool = True,
    binning: str = "full",
    layout: BlockLayout | None = None,
    min_magnitude: float = 0.0,
) -> np.ndarray:
    """HOOF histograms of a flow field (or a sequence of them) over a block layout.

    Parameters
    ----------
    flow : ndarray
        ``(H, W, 2)`` or ``(T, H, W, 2)`` (votes summed over T).
    bins : int
        Direction bins per block.
    magnitude : bool
        Weight votes by the vector magnitude (Chaudhry et al.) or count vectors.
    binning : {"full", "mirror"}
        See the module docstring.
    layout : BlockLayout, optional
        Blocks (default ``BlockLayout((1, 2, 4, 8))``, 85 blocks).
    min_magnitude : float
        Vectors no longer than this do not vote (zero vectors have no direction).

    Returns
    -------
    ndarray of float32, shape (layout.n_blocks * bins,)
        Block-major: ``x[b * bins:(b + 1) * bins]`` is block ``b``, summing to 1 (or 0 for a
        block without votes).
    """
    flows = _as_flow_sequence(flow, "hoof")
    bins = _check_bins(bins)
    layout = BlockLayout((1, 2, 4, 8)) if layout is None else layout
    if min_magnitude < 0:
        raise ValueError(f"min_magnitude must be >= 0, got {min_magnitude}")
    t, h, w, _ = flows.shape
    block_map = layout.block_index_map(h, w)  # (levels, H, W)
    mags = np.hypot(flows[..., 0], flows[..., 1])  # (T, H, W)
    idx = angle_bins(flows, bins, binning)
    weights = (mags if magnitude else np.ones_like(mags)) * (mags > min_magnitude)
    hist = np.zeros(layout.n_blocks * bins, dtype=np.float64)
    flat_w = weights.reshape(t, -1)
    flat_i = idx.reshape(t, -1)
    for level_map in block_map:
        keys = level_map.reshape(1, -1) * bins + flat_i
        hist += np.bincount(keys.ravel(), weights=flat_w.ravel(), minlength=hist.size)
    hist = hist.reshape(layout.n_blocks, bins)
    totals = hist.sum(axis=1, keepdims=True)
    np.divide(hist, totals, out=hist, where=totals > 0)
    return hist.ravel().astype(np.float32)


def hoof_clip(
    clip: np.ndarray,
    *,
    bins: int = 8,
    magnitude: bool = True,
    binning: str = "full",
    layout: BlockLayout | None = None,
    pairs: str = "consecutive",
    preset: str = "fast",
) -> np.ndarray:
    """HOOF of a clip ``(T, H, W)``: TV-L1 flows (``merkit.video.flow.clip_flows``), then
    :func:`hoof` (votes summed over the flows)."""
    flows = clip_flows(clip, pairs=pairs, preset=preset)
    return hoof(flows, bins=bins, magnitude=magnitude, binning=binning, layout=layout)


# --------------------------------------------------------------------------- MDMO ROIs
#: dlib 68-point index of each point's left-right mirror image
MIRROR_68: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
    27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
    64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip

# A vertex is (landmark indices averaged, offset along the lateral axis, offset downwards),
# offsets in inter-ocular distances; the lateral axis points away from the face midline.
_UP, _DOWN = -0.3, 0.2
_V = tuple[tuple[int, ...], float, float]


def _p(*idx: int, out: float = 0.0, down: float = 0.0) -> _V:
    return (tuple(idx), out, down)


#: the 18 ROIs of the subject's right side (image left); the left side mirrors them
_RIGHT_ROIS: tuple[tuple[str, tuple[_V, ...]], ...] = (
    ("forehead_outer", (_p(17), _p(18), _p(19), _p(19, down=_UP), _p(18, down=_UP),
                        _p(17, down=_UP))),
    ("forehead_inner", (_p(19), _p(20), _p(21), _p(21, down=_UP), _p(20, down=_UP),
                        _p(19, down=_UP))),
    ("glabella", (_p(21), _p(21, down=_UP), _p(21, 22, down=_UP), _p(21, 22), _p(27))),
    ("brow_eye_outer", (_p(17), _p(18), _p(19), _p(38), _p(37), _p(36))),
    ("brow_eye_inner", (_p(19), _p(20), _p(21), _p(27), _p(39), _p(38))),
    ("eye_corner", (_p(0), _p(17), _p(36), _p(41), _p(1))),
    ("lower_eyelid", (_p(36), _p(41), _p(40), _p(39), _p(39, down=_DOWN), _p(40, down=_DOWN),
                      _p(41, down=_DOWN), _p(36, down=_DOWN))),
    ("nose_bridge", (_p(39), _p(27), _p(28), _p(29), _p(39, down=_DOWN))),
    ("nose_side", (_p(39, down=_DOWN), _p(29), _p(30), _p(31), _p(40, down=_DOWN))),
    ("cheek_upper", (_p(1), _p(36, down=_DOWN), _p(41, down=_DOWN), _p(40, down=_DOWN),
                     _p(31), _p(2))),
    ("cheek_lower", (_p(2), _p(31), _p(48), _p(4), _p(3))),
    ("nasolabial", (_p(31), _p(32), _p(50), _p(49), _p(48))),
    ("philtrum", (_p(32), _p(33), _p(51), _p(50))),
    ("mouth_corner", (_p(48), _p(59), _p(5), _p(4))),
    ("upper_lip", (_p(48), _p(49), _p(50), _p(51), _p(62), _p(61), _p(60))),
    ("lower_lip", (_p(48), _p(60), _p(67), _p(66), _p(57), _p(58), _p(59))),
    ("chin_lateral", (_p(59), _p(58), _p(7), _p(6), _p(5))),
    ("chin_medial", (_p(58), _p(57), _p(8), _p(7))),
)  # fmt: skip


def _mirror(roi: tuple[_V, ...]) -> tuple[_V, ...]:
    return tuple((tuple(MIRROR_68[i] for i in idx), out, down) for idx, out, down in roi)


#: names of the 36 MDMO ROIs in feature order (subject's right side first)
MDMO_ROIS: tuple[str, ...] = tuple(f"right_{n}" for n, _ in _RIGHT_ROIS) + tuple(
    f"left_{n}" for n, _ in _RIGHT_ROIS
)
_ROI_POLYGONS: tuple[tuple[_V, ...], ...] = tuple(r for _, r in _RIGHT_ROIS) + tuple(
    _mirror(r) for _, r in _RIGHT_ROIS
)


def _check_landmarks(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.shape != (68, 2) or not np.all(np.isfinite(pts)):
        raise ValueError(f"expected 68 finite (x, y) landmarks, got an array of shape {pts.shape}")
    return pts


def mdmo_roi_polygons(landmarks: np.ndarray) -> list[np.ndarray]:
    """The 36 MDMO ROI polygons for a face.

    Parameters
    ----------
    landmarks : ndarray, shape (68, 2)
        (x, y) pixel coordinates, dlib / iBUG order.

    Returns
    -------
    list of 36 ndarrays of shape (n_vertices, 2)
        In :data:`MDMO_ROIS` order.
    """
    pts = _check_landmarks(landmarks)
    right_eye, left_eye = pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)
    axis = left_eye - right_eye  # image left -> right
    iod = float(np.hypot(*axis))
    if iod <= 0:
        raise ValueError("landmarks: the two eye centres coincide")
    ex = axis / iod
    down = np.array([-ex[1], ex[0]])
    polygons = []
    for k, roi in enumerate(_ROI_POLYGONS):
        lateral = -ex if k < 18 else ex
        verts = [pts[list(idx)].mean(axis=0) + iod * (o * lateral + d * down) for idx, o, d in roi]
        polygons.append(np.array(verts))
    return polygons


def mdmo_roi_masks(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Boolean masks ``(36, H, W)`` of the MDMO ROIs (polygons rasterised, clipped to the image)."""
    h, w = int(shape[0]), int(shape[1])
    masks = np.zeros((len(MDMO_ROIS), h, w), dtype=np.uint8)
    shift = 4  # sub-pixel vertex precision for cv2.fillPoly
    for k, poly in enumerate(mdmo_roi_polygons(landmarks)):
        fixed = np.round(poly * (1 << shift)).astype(np.int32)
        cv2.fillPoly(masks[k], [fixed], 1, lineType=cv2.LINE_8, shift=shift)
    return masks.astype(bool)


# --------------------------------------------------------------------------- MDMO
def _main_direction_means(
    flows: np.ndarray, masks: np.ndarray, bins: int, min_magnitude: float
) -> np.ndarray:
    """Main-direction mean vectors ``(T, n_rois, 2)`` of flows ``(T, H, W, 2)``."""
    t = len(flows)
    vec = flows.reshape(t, -1, 2).astype(np.float64)
    idx = angle_bins(vec, bins, "full")
    moving = np.hypot(vec[..., 0], vec[..., 1]) > min_magnitude
    offsets = (np.arange(t) * bins)[:, None]
    out = np.zeros((t, len(masks), 2))
    for k, mask in enumerate(masks.reshape(len(masks), -1)):
        pixels = np.flatnonzero(mask)
        if not len(pixels):
            continue
        b, ok = idx[:, pixels], moving[:, pixels]
        counts = np.bincount((b + offsets)[ok], minlength=t * bins).reshape(t, bins)
        main = np.argmax(counts, axis=1)  # first bin on ties
        sel = ok & (b == main[:, None])
        n = sel.sum(axis=1)
        sums = np.einsum("tp,tpc->tc", sel, vec[:, pixels])
        np.divide(sums, n[:, None], out=out[:, k], where=n[:, None] > 0)
    return out


def mdmo_frame(
    flow: np.ndarray,
    masks: np.ndarray,
    *,
    bins: int = 8,
    min_magnitude: float = 0.0,
) -> np.ndarray:
    """Main-direction mean vector of every ROI for one flow field.

    Parameters
    ----------
    flow : ndarray, shape (H, W, 2)
    masks : ndarray of bool, shape (n_rois, H, W)
    bins : int
        Direction bins (8 in the paper).
    min_magnitude : float
        Vectors no longer than this are ignored.

    Returns
    -------
    ndarray of float64, shape (n_rois, 2)
        Mean (u, v) of the vectors in the most populated direction bin of each ROI (the
        lowest bin on ties); zeros for an ROI without vectors.
    """
    flow = np.asarray(flow, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if flow.ndim != 3 or flow.shape[2] != 2 or masks.shape[1:] != flow.shape[:2]:
        raise ValueError(f"mdmo_frame: flow {flow.shape} and ROI masks {masks.shape} do not match")
    return _main_direction_means(flow[None], masks, _check_bins(bins), min_magnitude)[0]


def mdmo(
    flow: np.ndarray,
    landmarks: np.ndarray,
    *,
    bins: int = 8,
    min_magnitude: float = 0.0,
) -> np.ndarray:
    """MDMO feature of a clip's flows (module docstring).

    Parameters
    ----------
    flow : ndarray
        ``(H, W, 2)`` or ``(T, H, W, 2)``: flows from the first frame to each later frame
        (or any flow sequence to average).
    landmarks : ndarray, shape (68, 2)
        Landmarks of the first frame, in flow pixel coordinates.
    bins : int
        Direction bins (8).
    min_magnitude : float
        Vectors no longer than this are ignored.

    Returns
    -------
    ndarray of float32, shape (72,)
        ``(rho_k, theta_k)`` per ROI in :data:`MDMO_ROIS` order; ``rho`` divided by its
        maximum over the ROIs (all zero without motion), ``theta = atan2(-v, u)`` in
        radians.
    """
    flows = _as_flow_sequence(flow, "mdmo")
    bins = _check_bins(bins)
    masks = mdmo_roi_masks(landmarks, flows.shape[1:3])
    empty = [MDMO_ROIS[k] for k in range(len(masks)) if not masks[k].any()]
    if empty:
        log.debug(
            "MDMO: %d ROIs fall outside the %s image: %s",
            len(empty),
            flows.shape[1:3],
            ", ".join(empty),
        )
    mean = _main_direction_means(flows, masks, bins, min_magnitude).mean(axis=0)
    rho = np.hypot(mean[:, 0], mean[:, 1])
    theta = np.arctan2(-mean[:, 1], mean[:, 0])
    peak = rho.max()
    if peak > 0:
        rho = rho / peak
    return np.stack([rho, theta], axis=1).ravel().astype(np.float32)


def clip_landmarks(
    frame: np.ndarray, landmarks: str | np.ndarray = "auto", *, margin: float = 0.1
) -> np.ndarray:
    """68 landmarks of a clip's first frame for MDMO.

    Parameters
    ----------
    frame : ndarray
        First frame ``(H, W)``.
    landmarks : {"auto", "mean"} or ndarray
        ``"auto"``: dlib detection + shape predictor when installed and a face is found,
        else the mean shape; ``"mean"``: the mean shape mapped into an aligned crop of this
        size and ``margin`` (:func:`merkit.video.face.reference_landmarks`); an array is
        returned as is (validated).
    margin : float
        Margin of the aligned crop (for the mean shape).
    """
    if not isinstance(landmarks, str):
        return _check_landmarks(landmarks)
    if landmarks not in ("auto", "mean"):
        raise ValueError(f"landmarks={landmarks!r}; expected 'auto', 'mean' or a (68, 2) array")
    h, w = frame.shape[:2]
    if landmarks == "auto" and face.landmark_model_available():
        box = face.detect_face(frame, detector="dlib")
        if box is not None:
            return face.detect_landmarks(frame, box)
        log.warning(
            "MDMO: no face found by dlib on a %dx%d clip; using the mean shape of an aligned "
            "crop (margin %.2f)",
            w,
            h,
            margin,
        )
    return face.reference_landmarks((h, w), margin)


def mdmo_clip(
    clip: np.ndarray,
    *,
    landmarks: str | np.ndarray = "auto",
    margin: float = 0.1,
    bins: int = 8,
    pairs: str = "onset",
    preset: str = "fast",
) -> np.ndarray:
    """MDMO of a clip ``(T, H, W)``: TV-L1 flows from the first frame, ROIs from its landmarks.

    Parameters
    ----------
    clip : ndarray
        Face clip (ideally aligned with :func:`merkit.video.face.align_clip`).
    landmarks : {"auto", "mean"} or ndarray
        See :func:`clip_landmarks`.
    margin : float
        Margin of the aligned crop (used with the mean shape).
    bins : int
        Direction bins (8).
    pairs : {"onset", "consecutive"}
        Flows ``frame 0 -> t`` (the paper) or ``t -> t+1``.
    preset : str
        TV-L1 preset (:data:`merkit.video.flow.PRESETS`).

    Returns
    -------
    ndarray of float32, shape (72,)
    """
    clip = np.asarray(clip)
    if clip.ndim != 3 or len(clip) < 2:
        raise ValueError(f"mdmo_clip needs a grey clip (T, H, W) with T >= 2, got {clip.shape}")
    pts = clip_landmarks(clip[0], landmarks, margin=margin)
    flows = clip_flows(clip, pairs=pairs, preset=preset)
    return mdmo(flows, pts, bins=bins)
