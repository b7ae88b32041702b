"""Face detection, 68 landmarks, similarity alignment and cropping of a clip.

One transform per clip: the face is found on the onset frame, the onset landmarks are
mapped onto a reference mean shape by a similarity (scale, rotation, translation) fitted
on *stable* points only (eye corners and nose — brows and mouth move during
micro-expressions), and that single transform is applied to every frame, so facial motion
stays in the frames while the head pose of the onset is normalised.

Detectors
---------
``"dlib"``
    dlib's HOG frontal-face detector (matched to its shape predictor); the image is padded
    by a quarter of its size first, so that pre-cropped faces which fill the frame are
    found too.
``"haar"``
    OpenCV's Haar frontal-face cascade (``cv2.data.haarcascades``), largest face.
``"frame"``
    No detection: the frame *is* the tight face square (lower forehead to chin, ear to
    ear), as in the cropped releases of CASME II / SMIC; with ``margin=0`` and no
    landmarks the "aligned" clip is the resized frames.
``"auto"``
    ``"dlib"`` when dlib is installed, else ``"haar"``.

Landmarks
---------
The 68-point iBUG layout, predicted by dlib's shape predictor
(``shape_predictor_68_face_landmarks.dat``, shipped by the ``face_recognition_models``
wheel; install ``merkit[landmarks]``). Without it the clip is cropped from the detector box
(calibrated to the mean-shape frame, no rotation), and a warning is logged once per process.

Coordinates
-----------
:data:`MEAN_SHAPE` is the mean 68-point shape in the unit face box of the shape predictor
(x right, y down, the face box is ``[0, 1] x [0, 1]``; the chin reaches y = 1.07): the
initial shape stored in dlib's 68-point model (the mean of its iBUG 300-W training
shapes, left-right symmetric), rounded to 4 decimals (provenance and licence: NOTICE.md
in the repository root). The aligned crop is the square around
the mean shape's bounding box extended upwards by a forehead strip of 0.08 (unit-box
units), enlarged by ``margin`` of its side on every edge, resized to ``size``.
:func:`reference_landmarks` gives the mean shape in aligned-crop pixels.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from merkit.video.io import load_clip

log = logging.getLogger(__name__)

#: mean 68-point shape (x, y) in the unit face box (dlib / iBUG 300-W point order)
MEAN_SHAPE: np.ndarray = np.array(
    [
        (0.0294, 0.3219), (0.0326, 0.4464), (0.0459, 0.5704), (0.0718, 0.6920),
        (0.1203, 0.8050), (0.1947, 0.9029), (0.2858, 0.9846), (0.3863, 1.0502),
        (0.5000, 1.0697), (0.6137, 1.0502), (0.7142, 0.9846), (0.8053, 0.9029),
        (0.8797, 0.8050), (0.9282, 0.6920), (0.9541, 0.5704), (0.9674, 0.4464),
        (0.9706, 0.3219), (0.1192, 0.2309), (0.1775, 0.1784), (0.2598, 0.1627),
        (0.3451, 0.1749), (0.4249, 0.2081), (0.5751, 0.2081), (0.6550, 0.1749),
        (0.7402, 0.1627), (0.8225, 0.1784), (0.8809, 0.2309), (0.5000, 0.3055),
        (0.5000, 0.3857), (0.5000, 0.4652), (0.5000, 0.5470), (0.4045, 0.6023),
        (0.4504, 0.6192), (0.5000, 0.6337), (0.5497, 0.6192), (0.5955, 0.6023),
        (0.2139, 0.3156), (0.2647, 0.2863), (0.3259, 0.2872), (0.3794, 0.3276),
        (0.3221, 0.3378), (0.2612, 0.3370), (0.6207, 0.3276), (0.6742, 0.2872),
        (0.7353, 0.2863), (0.7862, 0.3156), (0.7388, 0.3370), (0.6780, 0.3378),
        (0.3171, 0.7511), (0.3844, 0.7242), (0.4525, 0.7103), (0.5000, 0.7220),
        (0.5475, 0.7103), (0.6156, 0.7242), (0.6829, 0.7511), (0.6178, 0.8169),
        (0.5516, 0.8460), (0.5000, 0.8515), (0.4484, 0.8460), (0.3823, 0.8169),
        (0.3452, 0.7547), (0.4519, 0.7499), (0.5000, 0.7550), (0.5481, 0.7499),
        (0.6548, 0.7547), (0.5490, 0.7857), (0.5000, 0.7916), (0.4510, 0.7857),
    ],
    dtype=np.float64,
)  # fmt: skip
MEAN_SHAPE.setflags(write=False)

#: landmarks that do not move in facial expressions: nose bridge and base, eye corners
STABLE_POINTS: tuple[int, ...] = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)

#: named landmark groups (0-based dlib indices; "right" is the subject's right = image left)
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_base": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}

LANDMARK_MODES = ("auto", "dlib", "none")
DETECTORS = ("auto", "dlib", "haar", "frame")
ON_MISSING = ("raise", "skip")

#: the tight face square: the mean shape's bounding box plus a forehead strip of 0.08 above
#: the brows (unit-box units), made square around its centre
_FOREHEAD = 0.08
_LO = MEAN_SHAPE.min(axis=0) - [0.0, _FOREHEAD]
_HI = MEAN_SHAPE.max(axis=0)
_FACE_CENTRE = (_LO + _HI) / 2.0
_FACE_SIDE = float((_HI - _LO).max())

#: detector box (x, y, w, h) -> unit face box: centre (x + cx w, y + cy h), side k w, as
#: measured against landmark fits on three reference faces (CASME II, SAMM)
_BOX_CALIBRATION = {"haar": (0.50, 0.55, 0.87), "dlib": (0.50, 0.47, 1.03)}
_DETECT_PAD = 0.25
_DETECT_MAX_SIDE = 800


class FaceNotFoundError(RuntimeError):
    """No face on the onset frame of a clip; the message names the clip."""


# ----------------------------------------------------------------------------- models
def landmark_model_path() -> Path:
    """Path of ``shape_predictor_68_face_landmarks.dat`` in the ``face_recognition_models`` wheel.

    The package is located without being imported (its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer ship).

    Raises
    ------
    FileNotFoundError
        If the package or the model file is not installed.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the face_recognition_models package is not installed")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / "shape_predictor_68_face_landmarks.dat"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"face_recognition_models has no models/shape_predictor_68_face_landmarks.dat under "
        f"{list(spec.submodule_search_locations)}"
    )


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any] | None:
    """(HOG detector, 68-point shape predictor), or None when dlib or the model is absent.

    Cached: the model file is read once per process, and its absence is logged once.
    """
    try:
        import dlib
    except ImportError:
        log.warning(
            "dlib is not installed: faces are cropped from the detector box without landmark "
            "alignment (install the 'landmarks' extra: pip install 'merkit[landmarks]')"
        )
        return None
    try:
        path = landmark_model_path()
    except FileNotFoundError as err:
        log.warning(
            "dlib is installed but the 68-landmark model is not (%s): faces are cropped from "
            "the detector box without landmark alignment (pip install face_recognition_models)",
            err,
        )
        return None
    predictor = dlib.shape_predictor(str(path))
    log.debug("loaded dlib 68-landmark model from %s", path)
    return dlib.get_frontal_face_detector(), predictor


def landmark_model_available() -> bool:
    """True when dlib and its 68-landmark model can be loaded."""
    return _dlib_models() is not None


@functools.lru_cache(maxsize=1)
def _haar() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise RuntimeError(f"cannot load the OpenCV Haar cascade {path!r}")
    return cascade


# ----------------------------------------------------------------------------- helpers
def _to_grey_uint8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)
    elif img.ndim != 2:
        raise ValueError(f"expected a grey (H, W) or RGB (H, W, 3) image, got shape {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img


def _pad(img: np.ndarray) -> tuple[np.ndarray, int]:
    pad = int(round(_DETECT_PAD * max(img.shape[:2])))
    return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad


def _largest(boxes: list[tuple[float, float, float, float]]):
    return max(boxes, key=lambda b: b[2] * b[3]) if boxes else None


def detect_face(
    image: np.ndarray, *, detector: str = "auto"
) -> tuple[float, float, float, float] | None:
    """Largest frontal face of an image.

    Parameters
    ----------
    image : ndarray
        Grey ``(H, W)`` or RGB ``(H, W, 3)``, uint8 or float in 0..255.
    detector : {"auto", "dlib", "haar", "frame"}
        See the module docstring.

    Returns
    -------
    (x, y, w, h) or None
        Box in image pixels (may extend past the image for faces that fill it).
    """
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; expected one of {DETECTORS}")
    img = _to_grey_uint8(image)
    h, w = img.shape
    if detector == "frame":
        return (0.0, 0.0, float(w), float(h))
    if detector == "auto":
        detector = "dlib" if landmark_model_available() else "haar"
    # large frames (SAMM: 2040 x 1088) are searched at a reduced size
    shrink = min(1.0, _DETECT_MAX_SIDE / max(h, w))
    if shrink < 1.0:
        img = cv2.resize(img, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    padded, pad = _pad(img)
    if detector == "dlib":
        models = _dlib_models()
        if models is None:
            raise ImportError(
                "detector='dlib' needs dlib and face_recognition_models "
                "(pip install 'merkit[landmarks]')"
            )
        hog = models[0]
        boxes = []
        for upsample in (0, 1):
            rects = hog(padded, upsample)
            boxes = [
                (r.left() - pad, r.top() - pad, r.right() - r.left(), r.bottom() - r.top())
                for r in rects
            ]
            if boxes:
                break
    else:
        min_side = max(24, min(img.shape) // 5)
        found = _haar().detectMultiScale(
            padded, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
        )
        boxes = [(x - pad, y - pad, bw, bh) for x, y, bw, bh in np.asarray(found).reshape(-1, 4)]
    box = _largest(boxes)
    return None if box is None else tuple(float(v) / shrink for v in box)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (scale, rotation, translation; no reflection) ``src -> dst``.

    Umeyama (1991), doi:10.1109/34.88573.

    Parameters
    ----------
    src, dst : ndarray of shape (n, 2)
        Corresponding points, ``n >= 2``.

    Returns
    -------
    ndarray of shape (2, 3)
        ``M`` with ``dst ~ src @ M[:, :2].T + M[:, 2]`` (an OpenCV affine matrix).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(
            f"similarity_transform needs two (n, 2) point arrays with n >= 2, got "
            f"{src.shape} and {dst.shape}"
        )
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = (s_c**2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("similarity_transform: the source points all coincide")
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ e @ vt
    scale = float((sig * np.diag(e)).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, dtype=np.float64) @ m[:, :2].T + m[:, 2]


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Affine ``a o b`` (apply ``b`` first)."""
    a3 = np.vstack([a, [0.0, 0.0, 1.0]])
    b3 = np.vstack([b, [0.0, 0.0, 1.0]])
    return (a3 @ b3)[:2]


def _predict(predictor, img: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    import dlib

    x, y, w, h = box
    rect = dlib.rectangle(int(round(x)), int(round(y)), int(round(x + w)), int(round(y + h)))
    shape = predictor(img, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _unit_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """Face box implied by landmarks (the unit box of the mean-shape fit), axis-aligned."""
    m = similarity_transform(MEAN_SHAPE, landmarks)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    cx, cy = _apply(m, np.array([[0.5, 0.5]]))[0]
    return (cx - scale / 2, cy - scale / 2, scale, scale)


def detect_landmarks(
    image: np.ndarray, box: tuple[float, float, float, float], *, refine: int = 1
) -> np.ndarray:
    """68 landmarks in a face box, with dlib's shape predictor.

    Parameters
    ----------
    image : ndarray
        Grey or RGB image, uint8 or float in 0..255.
    box : (x, y, w, h)
        Face box (any detector); it only initialises the predictor.
    refine : int
        Re-runs of the predictor from the box implied by the previous landmarks (makes the
        result independent of the detector's box convention).

    Returns
    -------
    ndarray of shape (68, 2)
        (x, y) in image pixels.

    Raises
    ------
    ImportError
        If dlib or the model is not installed.
    """
    models = _dlib_models()
    if models is None:
        raise ImportError(
            "68-point landmarks need dlib and face_recognition_models "
            "(pip install 'merkit[landmarks]')"
        )
    img = _to_grey_uint8(image)
    padded, pad = _pad(img)
    shifted = (box[0] + pad, box[1] + pad, box[2], box[3])
    pts = _predict(models[1], padded, shifted)
    for _ in range(max(0, int(refine))):
        pts = _predict(models[1], padded, _unit_box(pts))
    return pts - pad


# ----------------------------------------------------------------------------- geometry
def _check_size(size) -> tuple[int, int]:
    try:
        h, w = (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError) as err:
        raise ValueError(f"size must be (H, W), got {size!r}") from err
    if len(size) != 2 or h < 1 or w < 1:
        raise ValueError(f"size must be (H, W) with positive values, got {size!r}")
    return h, w


def _check_margin(margin: float) -> float:
    margin = float(margin)
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin must lie in [0, 1] (fraction of the face side), got {margin}")
    return margin


def _template_to_crop(size: tuple[int, int], margin: float) -> np.ndarray:
    """Affine from unit-box coordinates to aligned-crop pixels."""
    h, w = size
    side = _FACE_SIDE * (1.0 + 2.0 * margin)
    x0 = _FACE_CENTRE[0] - side / 2.0
    y0 = _FACE_CENTRE[1] - side / 2.0
    sx, sy = w / side, h / side
    # pixel centres: unit coordinate u maps to (u - x0) * sx - 0.5 (pixel i covers [i, i+1))
    return np.array([[sx, 0.0, -x0 * sx - 0.5], [0.0, sy, -y0 * sy - 0.5]])


def reference_landmarks(size: tuple[int, int] = (112, 112), margin: float = 0.1) -> np.ndarray:
    """The mean shape in the pixels of an aligned crop of ``size`` and ``margin``.

    These are the landmark positions :func:`align_clip` maps the onset landmarks to (exactly
    for the stable points, in the least-squares sense), and the stand-in landmarks used by
    MDMO when no landmark model is installed.

    Returns
    -------
    ndarray of shape (68, 2)
        (x, y) pixel coordinates.
    """
    size = _check_size(size)
    return _apply(_template_to_crop(size, _check_margin(margin)), MEAN_SHAPE)


def _box_to_template(box: tuple[float, float, float, float], detector: str) -> np.ndarray:
    """Affine from image pixels to unit-box coordinates for a detector box (no rotation)."""
    x, y, w, h = box
    if detector == "frame":
        # the frame is the tight face square (lower forehead to chin, ear to ear)
        x0, y0 = _FACE_CENTRE - _FACE_SIDE / 2.0
        sx, sy = _FACE_SIDE / w, _FACE_SIDE / h
        return np.array([[sx, 0.0, x0 - (x - 0.5) * sx], [0.0, sy, y0 - (y - 0.5) * sy]])
    fx, fy, fs = _BOX_CALIBRATION[detector]
    cx, cy, side = x + fx * w, y + fy * h, fs * w
    # pixel centre (i + 0.5) convention: pixel index i covers [i, i + 1)
    s = 1.0 / side
    return np.array([[s, 0.0, 0.5 - (cx - 0.5) * s], [0.0, s, 0.5 - (cy - 0.5) * s]])


def _warp(frames: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Apply ``m`` (image -> crop pixels) to every frame; area-averaged when shrinking."""
    h, w = size
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.95:
        # warp at about the source resolution, then shrink with area averaging
        factor = min(1.0 / scale, 2048.0 / max(h, w))
        big = (max(h, int(round(h * factor))), max(w, int(round(w * factor))))
        up = np.array([[big[1] / w, 0.0, 0.0], [0.0, big[0] / h, 0.0]])
        # keep pixel-centre alignment: x_big + 0.5 = (x + 0.5) * k
        up[0, 2] = 0.5 * (big[1] / w - 1.0)
        up[1, 2] = 0.5 * (big[0] / h - 1.0)
        mb = _compose(up, m)
        out = [
            cv2.resize(
                cv2.warpAffine(
                    f,
                    mb,
                    (big[1], big[0]),
                    flags=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE,
                ),
                (w, h),
                interpolation=cv2.INTER_AREA,
            )
            for f in frames
        ]
    else:
        out = [
            cv2.warpAffine(f, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for f in frames
        ]
    return np.stack(out)


# ----------------------------------------------------------------------------- clips
def align_clip(
    frames: np.ndarray,
    *,
    size: tuple[int, int] = (112, 112),
    margin: float = 0.1,
    landmarks: str = "auto",
    detector: str = "auto",
    onset_index: int = 0,
    on_missing: str = "raise",
    name: str | None = None,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Detect, align and crop the face of a clip with one transform from the onset frame.

    Parameters
    ----------
    frames : ndarray
        ``(T, H, W)`` grey or ``(T, H, W, 3)`` RGB, uint8 or float in 0..255.
    size : (H, W)
        Output frame size.
    margin : float
        Extra border around the tight face square, as a fraction of its side on every edge
        (0.1: lower forehead to chin plus a tenth of the face above, below and on the sides).
    landmarks : {"auto", "dlib", "none"}
        ``"dlib"``: similarity alignment on 68 landmarks (error if dlib is missing);
        ``"none"``: crop of the detector box; ``"auto"``: landmarks when available.
    detector : {"auto", "dlib", "haar", "frame"}
        Face detector for the onset frame (module docstring).
    onset_index : int
        Index of the onset frame inside ``frames``.
    on_missing : {"raise", "skip"}
        No face on the onset frame: raise :class:`FaceNotFoundError`, or log a warning and
        return ``(None, info)``.
    name : str, optional
        Clip name quoted in messages.

    Returns
    -------
    aligned : ndarray or None
        ``(T, *size)`` (plus the colour axis), the dtype of ``frames``.
    info : dict
        ``found`` (bool), ``method`` ("landmarks" or "box"), ``detector``, ``box`` (x, y, w,
        h of the onset face in source pixels), ``landmarks`` ((68, 2) onset landmarks in
        source pixels, or None), ``aligned_landmarks`` ((68, 2) in output pixels: the mapped
        onset landmarks, or the mean shape when there are none), ``transform`` ((2, 3)
        source -> output pixels), ``size``, ``margin``.
    """
    where = f"clip {name!r}" if name else "clip"
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] != 3):
        raise ValueError(
            f"{where}: frames must be (T, H, W) or (T, H, W, 3), got shape {frames.shape}"
        )
    if len(frames) == 0:
        raise ValueError(f"{where}: no frames")
    if landmarks not in LANDMARK_MODES:
        raise ValueError(f"landmarks={landmarks!r}; expected one of {LANDMARK_MODES}")
    if detector not in DETECTORS:
        raise ValueError(f"unknown face detector {detector!r}; expected one of {DETECTORS}")
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing={on_missing!r}; expected one of {ON_MISSING}")
    if not -len(frames) <= onset_index < len(frames):
        raise IndexError(f"{where}: onset_index {onset_index} outside 0..{len(frames) - 1}")
    size = _check_size(size)
    margin = _check_margin(margin)

    use_landmarks = landmarks == "dlib" or (landmarks == "auto" and landmark_model_available())
    if landmarks == "dlib" and not landmark_model_available():
        raise ImportError(
            f"{where}: landmarks='dlib' needs dlib and face_recognition_models "
            "(pip install 'merkit[landmarks]')"
        )
    if detector == "auto":
        detector = "dlib" if landmark_model_available() else "haar"

    onset = frames[onset_index]
    box = detect_face(onset, detector=detector)
    info: dict[str, Any] = {
        "found": box is not None,
        "method": "landmarks" if use_landmarks else "box",
        "detector": detector,
        "box": box,
        "landmarks": None,
        "aligned_landmarks": None,
        "transform": None,
        "size": size,
        "margin": margin,
    }
    if box is None:
        msg = (
            f"{where}: no face found on the onset frame (index {onset_index}, {detector} detector)"
        )
        if on_missing == "raise":
            raise FaceNotFoundError(msg)
        log.warning("%s; skipped", msg)
        return None, info

    to_crop = _template_to_crop(size, margin)
    if use_landmarks:
        pts = detect_landmarks(onset, box)
        stable = list(STABLE_POINTS)
        to_template = similarity_transform(pts[stable], MEAN_SHAPE[stable])
        m = _compose(to_crop, to_template)
        info["landmarks"] = pts
        info["aligned_landmarks"] = _apply(m, pts)
    else:
        m = _compose(to_crop, _box_to_template(box, detector))
        info["aligned_landmarks"] = _apply(to_crop, MEAN_SHAPE)
        log.debug("%s: cropped from the %s box %s without landmarks", where, detector, box)
    info["transform"] = m
    dtype = frames.dtype
    work = frames if dtype in (np.uint8, np.float32, np.float64) else frames.astype(np.float32)
    aligned = _warp(work, m, size).astype(dtype, copy=False)
    return aligned, info


def load_aligned_clip(
    row: Mapping | pd.Series,
    *,
    size: tuple[int, int] = (112, 112),
    grey: bool = True,
    margin: float = 0.1,
    landmarks: str = "auto",
    detector: str = "auto",
    on_missing: str = "raise",
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Frames onset..offset of one Sample-table row, face-aligned (see :func:`align_clip`).

    Returns
    -------
    aligned : ndarray of float32 in 0..255, or None (face missing, ``on_missing="skip"``)
    info : dict
        As :func:`align_clip`.
    """
    name = f"{row.get('dataset')}/{row.get('subject')}/{row.get('clip')}"
    frames = load_clip(row, size=None, grey=grey)
    return align_clip(
        frames,
        size=size,
        margin=margin,
        landmarks=landmarks,
        detector=detector,
        on_missing=on_missing,
        name=name,
    )
