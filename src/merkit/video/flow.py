"""TV-L1 optical flow, optical strain, 28x28 flow images and Middlebury ``.flo`` files.

TV-L1 (Zach, Pock & Bischof, DAGM 2007, doi:10.1007/978-3-540-74936-3_22; the duality
scheme of Wedel et al. 2009 as implemented by OpenCV's ``DualTVL1OpticalFlow``) between the
onset and the apex frame is the motion input of OFF-ApexNet, STSTNet, Dual-Inception and FR.

Conventions
-----------
A flow field is ``float32 (H, W, 2)``: ``flow[y, x] = (u, v)``, the displacement in pixels
(``u`` to the right, ``v`` downwards) that carries pixel ``(x, y)`` of the first frame to
``(x + u, y + v)`` in the second.

Optical strain (Liong et al., "Subtle expression recognition using optical strain weighted
features", ACCV 2014 workshops, doi:10.1007/978-3-319-16631-5_47; the third STSTNet
channel) is the magnitude of the infinitesimal strain tensor of the flow::

    e_xx = du/dx,  e_yy = dv/dy,  e_xy = e_yx = (du/dy + dv/dx) / 2
    strain = sqrt(e_xx^2 + e_yy^2 + e_xy^2 + e_yx^2)
           = sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2)

with central differences (one-sided at the border).

Flow images (STSTNet, Liong et al., FG 2019, doi:10.1109/FG.2019.8756567; OFF-ApexNet
uses the first two channels): u, v and strain computed at full resolution, each resized
to 28 x 28 and min-max normalised to 0..255 (the MEGC 2019 images reach exactly 0 and 255
in every channel of every image, so normalisation comes after resizing), stored as uint8
RGB = (u, v, strain). ``cv2.imread`` returns them in BGR order, i.e. (strain, v, u); the
STSTNet authors trained in that order, so their released weights need
``load_flow_image(path, channels="svu")``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from merkit.video.apex import spot_apex
from merkit.video.face import align_clip
from merkit.video.io import frame_number, list_frames, load_clip
from merkit.video.magnify import Magnification

log = logging.getLogger(__name__)

#: first four bytes of a Middlebury .flo file (float32, little-endian)
FLO_MAGIC = 202021.25
_FLO_MAGIC_BYTES = np.array([FLO_MAGIC], dtype="<f4").tobytes()

CHANNEL_ORDERS = ("uvs", "svu")


# --------------------------------------------------------------------------- TV-L1
@dataclass(frozen=True)
class TVL1:
    """Parameters of OpenCV's dual TV-L1 optical flow (defaults = OpenCV's defaults).

    Attributes
    ----------
    tau : float
        Time step of the numerical scheme (stable for ``tau < 0.125`` in theory; 0.25 works).
    lambda_ : float
        Weight of the data term: larger = more detail, more noise.
    theta : float
        Coupling weight between the data and smoothness sub-problems.
    nscales : int
        Pyramid levels.
    warps : int
        Warpings per pyramid level.
    epsilon : float
        Stopping threshold on the update (larger = faster, coarser).
    inner_iterations, outer_iterations : int
        Iteration caps per warp: the solver runs at most ``inner * outer`` (300) steps, with
        a median filter of the flow between outer iterations.
    scale_step : float
        Down-scaling factor between pyramid levels.
    median_filtering : int
        Median filter size applied to the flow (1 = none).
    gamma : float
        Weight of the illumination-change term (0 = plain TV-L1).
    """

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5
    gamma: float = 0.0

    def __post_init__(self) -> None:
        for name in ("tau", "lambda_", "theta", "epsilon"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TV-L1 {name} must be positive, got {getattr(self, name)}")
        for name in ("nscales", "warps", "inner_iterations", "outer_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"TV-L1 {name} must be a positive integer, got {value!r}")
        if not 0 < self.scale_step < 1:
            raise ValueError(f"TV-L1 scale_step must lie in (0, 1), got {self.scale_step}")
        if int(self.median_filtering) != self.median_filtering or self.median_filtering < 1:
            raise ValueError(
                f"TV-L1 median_filtering must be a positive integer, got {self.median_filtering!r}"
            )
        if self.median_filtering > 1 and self.median_filtering % 2 == 0:
            raise ValueError(
                f"TV-L1 median_filtering must be odd (or 1 = off), got {self.median_filtering}"
            )
        if self.gamma < 0:
            raise ValueError(f"TV-L1 gamma must be >= 0, got {self.gamma}")

    def create(self):
        """A configured ``cv2.optflow.DualTVL1OpticalFlow``."""
        return cv2.optflow.DualTVL1OpticalFlow_create(
            tau=float(self.tau),
            lambda_=float(self.lambda_),
            theta=float(self.theta),
            nscales=int(self.nscales),
            warps=int(self.warps),
            epsilon=float(self.epsilon),
            innnerIterations=int(self.inner_iterations),  # (sic) OpenCV's keyword
            outerIterations=int(self.outer_iterations),
            scaleStep=float(self.scale_step),
            gamma=float(self.gamma),
            medianFiltering=int(self.median_filtering),
        )

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow ``first -> second`` (see :func:`tvl1_flow`)."""
        a, b = _prepare(first, "first"), _prepare(second, "second")
        if a.shape != b.shape:
            raise ValueError(f"TV-L1 needs two frames of one size, got {a.shape} and {b.shape}")
        return self.create().calc(a, b, None).astype(np.float32, copy=False)


#: named parameter sets. "default": OpenCV's defaults; on the shipped CASME II reference
#: flow (``tvl1_001_010.flo``, which is the flow of frames 001 -> 002) they reach an
#: end-point error of 0.074 px for a mean magnitude of 0.189 px (correlation 0.94 / 0.96 for
#: u / v). "fast": 3 scales x 3 warps, epsilon 0.02 — about 3.5x faster on a 112 x 112
#: face; its end-point error against "default" is 11-14 % of the magnitude for 0.3-0.4 px
#: motions and 0.04 px on a CASME II onset -> apex pair of 0.12 px mean magnitude.
PRESETS: dict[str, TVL1] = {
    "default": TVL1(),
    "fast": TVL1(nscales=3, warps=3, epsilon=0.02),
}


def get_tvl1(preset: str | TVL1 = "default", **overrides) -> TVL1:
    """TV-L1 parameters from a preset name (or instance) with keyword overrides."""
    if isinstance(preset, TVL1):
        base = preset
    elif preset in PRESETS:
        base = PRESETS[preset]
    else:
        raise ValueError(f"unknown TV-L1 preset {preset!r}; expected one of {list(PRESETS)}")
    if overrides:
        known = set(asdict(base))
        bad = sorted(set(overrides) - known)
        if bad:
            raise TypeError(f"unknown TV-L1 parameter(s) {bad}; known: {sorted(known)}")
        base = replace(base, **overrides)
    return base


def _prepare(img: np.ndarray, which: str) -> np.ndarray:
    """Grey uint8 as is; float frames (0..255) as float32 in 0..1 (OpenCV's float scale)."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2GRAY)
    if img.ndim != 2:
        raise ValueError(f"{which} frame must be grey (H, W) or RGB (H, W, 3), got {img.shape}")
    if min(img.shape) < 2:
        raise ValueError(f"{which} frame is too small for optical flow: {img.shape}")
    if img.dtype == np.uint8:
        return img
    return np.ascontiguousarray(img, dtype=np.float32) / np.float32(255.0)


def tvl1_flow(
    first: np.ndarray, second: np.ndarray, *, preset: str | TVL1 = "default", **overrides
) -> np.ndarray:
    """Dense TV-L1 optical flow from ``first`` to ``second``.

    Parameters
    ----------
    first, second : ndarray
        Grey ``(H, W)`` or RGB ``(H, W, 3)`` frames, uint8 or float in 0..255.
    preset : str or TVL1
        ``"default"`` or ``"fast"`` (:data:`PRESETS`), or a :class:`TVL1`.
    **overrides
        Any :class:`TVL1` field (``tau``, ``lambda_``, ``theta``, ``nscales``, ``warps``,
        ``epsilon``, ``inner_iterations``, ``outer_iterations``...).

    Returns
    -------
    ndarray of float32, shape (H, W, 2)
        ``(u, v)`` per pixel of ``first``.
    """
    return get_tvl1(preset, **overrides)(first, second)


def clip_flows(
    frames: np.ndarray,
    *,
    pairs: str = "consecutive",
    preset: str | TVL1 = "fast",
    **overrides,
) -> np.ndarray:
    """TV-L1 flows over a clip.

    Parameters
    ----------
    frames : ndarray
        ``(T, H, W)`` grey frames (T >= 2).
    pairs : {"consecutive", "onset"}
        ``frame t -> t+1`` or ``frame 0 -> t`` for t = 1..T-1.

    Returns
    -------
    ndarray of float32, shape (T-1, H, W, 2)
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or len(frames) < 2:
        raise ValueError(f"clip_flows needs (T, H, W) frames with T >= 2, got {frames.shape}")
    if pairs not in ("consecutive", "onset"):
        raise ValueError(f"pairs={pairs!r}; expected 'consecutive' or 'onset'")
    solver = get_tvl1(preset, **overrides)
    if pairs == "consecutive":
        return np.stack([solver(frames[t], frames[t + 1]) for t in range(len(frames) - 1)])
    return np.stack([solver(frames[0], frames[t]) for t in range(1, len(frames))])


# --------------------------------------------------------------------------- strain
def _check_flow(flow: np.ndarray, where: str = "flow") -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{where} must be an (H, W, 2) array of (u, v), got shape {flow.shape}")
    return flow


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Optical-strain magnitude of a flow field (module docstring).

    Parameters
    ----------
    flow : ndarray, shape (H, W, 2)

    Returns
    -------
    ndarray of float32, shape (H, W)
    """
    flow = _check_flow(flow).astype(np.float64)
    if min(flow.shape[:2]) < 2:
        raise ValueError(f"optical strain needs a flow of at least 2 x 2 pixels, got {flow.shape}")
    u, v = flow[..., 0], flow[..., 1]
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


# --------------------------------------------------------------------------- images
def _minmax_uint8(channel: np.ndarray) -> np.ndarray:
    lo, hi = float(channel.min()), float(channel.max())
    if hi <= lo:
        return np.zeros(channel.shape, dtype=np.uint8)
    return np.clip(np.rint((channel - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def flow_image(
    flow: np.ndarray,
    *,
    size: tuple[int, int] = (28, 28),
    strain: bool = True,
    interpolation: int = cv2.INTER_AREA,
) -> np.ndarray:
    """The STSTNet / OFF-ApexNet input of a flow field.

    Parameters
    ----------
    flow : ndarray, shape (H, W, 2)
    size : (H, W)
        Output size (28 x 28 in the papers).
    strain : bool
        Append the optical-strain channel (STSTNet) or return (u, v) only (OFF-ApexNet).
    interpolation : int
        OpenCV interpolation used to resize each channel (area averaging by default).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3) = (u, v, strain) or (H, W, 2) = (u, v)
        Each channel min-max normalised to 0..255 after resizing.
    """
    flow = _check_flow(flow).astype(np.float32)
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be (H, W) with positive values, got {size!r}")
    channels = [flow[..., 0], flow[..., 1]]
    if strain:
        channels.append(optical_strain(flow))
    out = [
        _minmax_uint8(cv2.resize(np.ascontiguousarray(c), (w, h), interpolation=interpolation))
        for c in channels
    ]
    return np.stack(out, axis=-1)


def onset_apex_image(
    onset: np.ndarray,
    apex: np.ndarray,
    *,
    size: tuple[int, int] = (28, 28),
    strain: bool = True,
    preset: str | TVL1 = "default",
    **overrides,
) -> np.ndarray:
    """TV-L1 flow onset -> apex turned into a flow image (:func:`flow_image`)."""
    return flow_image(tvl1_flow(onset, apex, preset=preset, **overrides), size=size, strain=strain)


def load_flow_image(path: str | Path, *, channels: str = "uvs") -> np.ndarray:
    """Read a flow image PNG (RGB = u, v, strain, e.g. the MEGC 2019 STSTNet inputs).

    Parameters
    ----------
    path : path
        Image file (note the MEGC 2019 names end in ``" .png"`` with a space).
    channels : {"uvs", "svu"}
        ``"uvs"``: (u, v, strain), the file's RGB order. ``"svu"``: (strain, v, u), the
        order ``cv2.imread`` returns and the STSTNet authors trained on (their released
        weights reproduce their log only in this order).

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
    """
    if channels not in CHANNEL_ORDERS:
        raise ValueError(f"channels={channels!r}; expected one of {CHANNEL_ORDERS}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow image {str(path)!r} does not exist")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read flow image {str(path)!r}")
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(
            f"flow image {str(path)!r} is {img.dtype} {img.shape}; expected 8-bit with 3 "
            "channels (u, v, strain)"
        )
    # cv2 gives BGR = (strain, v, u)
    return np.ascontiguousarray(img if channels == "svu" else img[..., ::-1])


def save_flow_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a (u, v, strain) uint8 image as a PNG whose RGB channels are u, v, strain."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"flow image must be uint8 (H, W, 3) = (u, v, strain), got {image.dtype} {image.shape}"
        )
    path = Path(path)
    if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
        raise OSError(f"cannot write flow image {str(path)!r}")
    return path


# --------------------------------------------------------------------------- .flo files
def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file.

    Format: float32 magic 202021.25, int32 width, int32 height, then ``height x width``
    interleaved float32 ``(u, v)`` pairs in row-major order, all little-endian.

    Returns
    -------
    ndarray of float32, shape (height, width, 2)

    Raises
    ------
    ValueError
        Wrong magic number, non-positive or implausible size, or truncated data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"flow file {str(path)!r} does not exist")
    data = path.read_bytes()
    if len(data) < 12:
        raise ValueError(f"{str(path)!r} is not a .flo file: {len(data)} bytes, header needs 12")
    magic = float(np.frombuffer(data[:4], dtype="<f4")[0])
    if data[:4] != _FLO_MAGIC_BYTES:
        hint = ""
        if float(np.frombuffer(data[:4], dtype=">f4")[0]) == FLO_MAGIC:
            hint = " (the file is big-endian; .flo is little-endian)"
        raise ValueError(
            f"{str(path)!r} is not a Middlebury .flo file: magic number {magic!r}, expected "
            f"{FLO_MAGIC}{hint}"
        )
    width, height = (int(x) for x in np.frombuffer(data[4:12], dtype="<i4"))
    if width < 1 or height < 1 or width * height > 1 << 28:
        raise ValueError(f"{str(path)!r}: implausible flow size {width} x {height}")
    expected = 12 + 8 * width * height
    if len(data) != expected:
        raise ValueError(
            f"{str(path)!r}: {len(data)} bytes, expected {expected} for a {width} x {height} flow"
        )
    flow = np.frombuffer(data[12:], dtype="<f4").reshape(height, width, 2)
    return flow.astype(np.float32)


def write_flo(path: str | Path, flow: np.ndarray) -> Path:
    """Write an ``(H, W, 2)`` flow as a Middlebury ``.flo`` file (see :func:`read_flo`)."""
    flow = _check_flow(flow, "flow to write")
    if not np.all(np.isfinite(flow)):
        raise ValueError("flow to write contains NaN or infinite values")
    h, w = flow.shape[:2]
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(_FLO_MAGIC_BYTES)
        fh.write(np.array([w, h], dtype="<i4").tobytes())
        fh.write(np.ascontiguousarray(flow, dtype="<f4").tobytes())
    return path


# --------------------------------------------------------------------------- samples
def _row_name(row: Mapping) -> str:
    return f"{row.get('dataset')}/{row.get('subject')}/{row.get('clip')}"


def _row_frames(
    row: Mapping | pd.Series, *, align: bool, face_size: tuple[int, int], margin: float,
    landmarks: str, detector: str, magnify: Magnification | Mapping | None, name: str,
) -> tuple[np.ndarray, dict | None]:  # fmt: skip
    """Grey onset..offset frames of a row, face-aligned (or resized) and magnified."""
    if align:
        frames = load_clip(row, size=None, grey=True)
        frames, face_info = align_clip(frames, size=face_size, margin=margin,
                                       landmarks=landmarks, detector=detector,
                                       name=name)  # fmt: skip
    else:
        frames, face_info = load_clip(row, size=face_size, grey=True), None
    if isinstance(magnify, Mapping):
        magnify = Magnification(**magnify)
    if magnify is not None:
        frames = magnify.apply_to_row(frames, row)
    return frames, face_info


def _apex_position(row: Mapping | pd.Series, frames: np.ndarray, smooth: int) -> tuple[int, bool]:
    """Position of the apex among ``frames`` (annotated, or spotted) and whether spotted."""
    onset = int(row["onset"])
    apex = row.get("apex")
    if apex is None or pd.isna(apex):
        return spot_apex(frames, smooth=smooth), True
    fdir = row.get("frames_dir")
    if isinstance(fdir, str) and fdir:
        numbers = [frame_number(f) for f in list_frames(fdir)]
        numbers = [k for k in numbers if onset <= k <= int(row["offset"])]
        if int(apex) not in numbers:
            raise ValueError(f"apex frame {int(apex)} is not among the clip's frames")
        index = numbers.index(int(apex))
    else:
        index = int(apex) - onset
    if not 0 <= index < len(frames):
        raise ValueError(f"apex {int(apex)} outside the {len(frames)} frames read")
    return index, False


def sample_flow(
    row: Mapping | pd.Series,
    *,
    align: bool = True,
    face_size: tuple[int, int] = (112, 112),
    margin: float = 0.1,
    landmarks: str = "auto",
    detector: str = "auto",
    preset: str | TVL1 = "default",
    apex_smooth: int = 1,
    magnify: Magnification | Mapping | None = None,
    **overrides,
) -> tuple[np.ndarray, dict]:
    """Onset -> apex TV-L1 flow of one Sample-table row on the aligned face.

    The clip onset..offset is read, face-aligned (:func:`merkit.video.face.align_clip`,
    one transform from the onset) or only resized (``align=False``), magnified when
    ``magnify`` is given (linear Eulerian video magnification at the row's ``fps``,
    :mod:`merkit.video.magnify`; a mapping is :class:`Magnification`'s arguments), and the
    apex is the annotated one or, when missing, spotted (:func:`merkit.video.apex.spot_apex`).

    Returns
    -------
    flow : ndarray of float32, shape (*face_size, 2)
    info : dict
        ``apex_index`` (in the clip), ``apex_spotted`` (bool), ``face`` (alignment info or
        None).
    """
    name = _row_name(row)
    try:
        frames, face_info = _row_frames(row, align=align, face_size=face_size, margin=margin,
                                        landmarks=landmarks, detector=detector, magnify=magnify,
                                        name=name)  # fmt: skip
        index, spotted = _apex_position(row, frames, apex_smooth)
        flow = tvl1_flow(frames[0], frames[index], preset=preset, **overrides)
    except Exception as exc:  # re-raised with the sample named
        raise type(exc)(f"flow of sample {name}: {exc}") from exc
    return flow, {"apex_index": index, "apex_spotted": spotted, "face": face_info}


def flow_images(
    table: pd.DataFrame,
    *,
    size: tuple[int, int] = (28, 28),
    strain: bool = True,
    n_jobs: int = 1,
    **kwargs,
) -> np.ndarray:
    """Flow images of every row of a Sample table (:func:`sample_flow` + :func:`flow_image`).

    Parameters
    ----------
    table : DataFrame
        Sample table.
    size : (H, W)
        Image size (28 x 28 for STSTNet / OFF-ApexNet).
    strain : bool
        Three channels (u, v, strain) or two (u, v).
    n_jobs : int
        joblib workers over clips.
    **kwargs
        Passed to :func:`sample_flow` (``align``, ``face_size``, ``preset``...).

    Returns
    -------
    ndarray of uint8, shape (n, H, W, 3 or 2), in table order
    """

    def one(row: pd.Series) -> np.ndarray:
        flow, _ = sample_flow(row, **kwargs)
        return flow_image(flow, size=size, strain=strain)

    rows = [r for _, r in table.iterrows()]
    if not rows:
        raise ValueError("no clips: the Sample table is empty")
    images = Parallel(n_jobs=n_jobs)(delayed(one)(r) for r in rows)
    log.info("computed %d flow images of %s", len(images), size)
    return np.stack(images)


# --------------------------------------------------------------------------- sequences
#: how the key frames of a flow sequence are chosen (:func:`keyframe_positions`)
KEYFRAMES = ("motion", "uniform", "apex")


def keyframe_positions(frames: np.ndarray, length: int, method: str = "motion") -> np.ndarray:
    """Positions (1..n-1) of the ``length`` key frames after the onset ``frames[0]``.

    Parameters
    ----------
    frames : ndarray, shape (n, H, W)
        Grey onset..offset frames, n >= 2.
    length : int
    method : {"motion", "uniform"}
        ``"uniform"``: equal steps in time, ``round(k (n - 1) / length)`` for
        k = 1..length (the last is the offset). ``"motion"``: equal steps of cumulative
        frame-difference energy ``E_t = sum_{1 <= s <= t} mean |f_s - f_{s-1}|``: key frame
        k is the first t with ``E_t >= (k - 1/2) E_{n-1} / length`` (the middle of the k-th
        of ``length`` equal parts of the motion), so the key frames crowd where the face
        moves (around the apex) and skip still stretches, before and after the motion
        (merkit's stand-in for the adaptive key-frame network of MERSiam's paper; uniform
        when nothing moves).

    Returns
    -------
    ndarray of int64, shape (length,)
        Non-decreasing, >= 1. Positions repeat when the clip has fewer than ``length + 1``
        frames or the motion sits in a few frames.
    """
    frames = np.asarray(frames, dtype=np.float64)
    n = len(frames)
    if frames.ndim != 3 or n < 2:
        raise ValueError(f"key frames need (n, H, W) frames with n >= 2, got {frames.shape}")
    if int(length) < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if method not in ("motion", "uniform"):
        raise ValueError(f"keyframes={method!r}; expected 'motion' or 'uniform'")
    k = np.arange(1, int(length) + 1)
    uniform = np.rint(k * (n - 1) / int(length)).astype(np.int64)
    if method == "uniform":
        return uniform
    energy = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2))
    cum = np.concatenate([[0.0], np.cumsum(energy)])
    if not cum[-1] > 0:
        return uniform
    targets = cum[-1] * (k - 0.5) / int(length)
    return np.searchsorted(cum, targets, side="left").astype(np.int64)  # first cum[t] >= target


def flow_sequence(
    flows: np.ndarray, *, size: tuple[int, int] = (112, 112),
    interpolation: int = cv2.INTER_AREA,
) -> np.ndarray:  # fmt: skip
    """Key-frame flows as one ``(u, v, strain)`` sequence of uint8 maps.

    Each flow's u, v and optical strain (:func:`optical_strain`) are resized to ``size``;
    then each channel is min-max normalised to 0..255 ONCE over the whole sequence (not per
    map as :func:`flow_image` does), so the growth and decay of the motion along the
    sequence survive the encoding. A length-1 sequence equals :func:`flow_image` of its
    flow.

    Parameters
    ----------
    flows : ndarray, shape (T, H, W, 2)

    Returns
    -------
    ndarray of uint8, shape (3, T, *size)
    """
    flows = np.asarray(flows, dtype=np.float32)
    if flows.ndim != 4 or flows.shape[-1] != 2 or len(flows) < 1:
        raise ValueError(f"flows must be (T, H, W, 2) with T >= 1, got {flows.shape}")
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be (H, W) with positive values, got {size!r}")
    maps = np.empty((3, len(flows), h, w), np.float32)
    for t, f in enumerate(flows):
        for c, ch in enumerate((f[..., 0], f[..., 1], optical_strain(f))):
            maps[c, t] = cv2.resize(np.ascontiguousarray(ch), (w, h), interpolation=interpolation)
    return np.stack([_minmax_uint8(maps[c]) for c in range(3)])


def sample_flow_sequence(
    row: Mapping | pd.Series,
    *,
    length: int = 10,
    keyframes: str = "motion",
    size: tuple[int, int] = (112, 112),
    align: bool = True,
    face_size: tuple[int, int] = (112, 112),
    margin: float = 0.1,
    landmarks: str = "auto",
    detector: str = "auto",
    preset: str | TVL1 = "default",
    apex_smooth: int = 1,
    magnify: Magnification | Mapping | None = None,
    **overrides,
) -> tuple[np.ndarray, dict]:
    """Key-frame flow sequence of one Sample-table row (MERSiam's input).

    The frames are read, aligned and magnified as in :func:`sample_flow`; ``length`` key
    frames after the onset are chosen (:func:`keyframe_positions`; ``keyframes="apex"``
    with ``length=1``: the apex, annotated or spotted, i.e. :func:`sample_flow`'s flow);
    the TV-L1 flow onset -> each key frame is encoded by :func:`flow_sequence`.

    Returns
    -------
    sequence : ndarray of uint8, shape (3, length, *size)
        Channels u, v, strain.
    info : dict
        ``keyframes`` (positions in the clip), ``flows`` (the TV-L1 flows, float32
        ``(length, *face_size, 2)``), ``face`` (alignment info or None).
    """
    if keyframes not in KEYFRAMES:
        raise ValueError(f"keyframes={keyframes!r}; expected one of {', '.join(KEYFRAMES)}")
    if keyframes == "apex" and int(length) != 1:
        raise ValueError(f"keyframes='apex' gives one flow (onset -> apex); length={length}")
    name = _row_name(row)
    try:
        frames, face_info = _row_frames(row, align=align, face_size=face_size, margin=margin,
                                        landmarks=landmarks, detector=detector, magnify=magnify,
                                        name=name)  # fmt: skip
        if keyframes == "apex":
            keys = np.array([_apex_position(row, frames, apex_smooth)[0]], np.int64)
        else:
            keys = keyframe_positions(frames, int(length), keyframes)
        solver = get_tvl1(preset, **overrides)
        flows: dict[int, np.ndarray] = {}  # a repeated key frame: its flow computed once
        for k in map(int, keys):
            if k not in flows:
                flows[k] = solver(frames[0], frames[k])
        stacked = np.stack([flows[int(k)] for k in keys])
        seq = flow_sequence(stacked, size=size)
    except Exception as exc:  # re-raised with the sample named
        raise type(exc)(f"flow sequence of sample {name}: {exc}") from exc
    return seq, {"keyframes": keys.tolist(), "flows": stacked, "face": face_info}


def flow_sequences(table: pd.DataFrame, *, n_jobs: int = 1, **kwargs) -> list[np.ndarray]:
    """:func:`sample_flow_sequence` of every row of a Sample table (uint8 ``(3, T, H, W)``
    each, in table order; ``n_jobs`` joblib workers over clips)."""
    rows = [r for _, r in table.iterrows()]
    if not rows:
        raise ValueError("no clips: the Sample table is empty")
    out = Parallel(n_jobs=n_jobs)(delayed(_sequence_of)(r, kwargs) for r in rows)
    log.info("computed %d flow sequences", len(out))
    return list(out)


def _sequence_of(row: pd.Series, kwargs: Mapping) -> np.ndarray:
    return sample_flow_sequence(row, **kwargs)[0]
