"""Apex spotting: the frame of a clip where the expression peaks.

Databases without an annotated apex (SMIC) use the inter-frame difference rule of the
Feature Refinement paper (Zhou et al., "Feature refinement: an expression-specific feature
learning and fusion method for micro-expression recognition", Pattern Recognition 2022,
doi:10.1016/j.patcog.2021.108275, Eq. 1)::

    t_apex = argmax_t mean_{x, y} |I(x, y, t) - I(x, y, onset)|

optionally on a curve smoothed over ``smooth`` frames (a moving average), which damps
single-frame noise (sensor noise, compression, blinks of one frame).

``method="onset_offset"`` (a merkit variant, not in the paper) maximises the sum of the
differences to the onset *and* to the offset frame: slow drifts of illumination or head
position that keep growing after the apex then no longer pull the estimate towards the
offset. On the synthetic CASME II database (80 clips at 200 fps, seed 0) its median error
is 4 frames against 7 for the paper's rule (means 6.5 and 13); see
``tests/video/test_apex.py``. Both rules measure intensity change, so a head movement
inside the searched span can win over a subtle expression: restrict the span
(``offset_index``) or align the face first (:func:`merkit.video.face.align_clip`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.ndimage import uniform_filter1d

from merkit.video.io import frame_number, list_frames, load_clip

log = logging.getLogger(__name__)


def _check_frames(frames: np.ndarray, where: str = "clip") -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or len(frames) == 0:
        raise ValueError(
            f"{where}: frames must be a non-empty (T, H, W) or (T, H, W, C) array, got shape "
            f"{frames.shape}"
        )
    return frames


def _check_smooth(smooth: int) -> int:
    if isinstance(smooth, bool) or int(smooth) != smooth or smooth < 1:
        raise ValueError(f"smooth must be a positive integer (frames), got {smooth!r}")
    return int(smooth)


METHODS = ("onset", "onset_offset")


def difference_curve(
    frames: np.ndarray, *, reference_index: int = 0, smooth: int = 1
) -> np.ndarray:
    """Mean absolute difference of every frame to a reference (the onset) frame.

    Parameters
    ----------
    frames : ndarray
        ``(T, H, W)`` or ``(T, H, W, C)``.
    reference_index : int
        Index of the reference frame (the onset for the FR rule).
    smooth : int
        Moving-average window (frames, centred; ``1`` = none). Edges repeat the end values.

    Returns
    -------
    ndarray of float64, shape (T,)
    """
    frames = _check_frames(frames)
    smooth = _check_smooth(smooth)
    if not 0 <= reference_index < len(frames):
        raise IndexError(f"reference_index {reference_index} outside 0..{len(frames) - 1}")
    ref = frames[reference_index].astype(np.float64)
    curve = np.array([np.abs(f.astype(np.float64) - ref).mean() for f in frames])
    if smooth > 1:
        curve = uniform_filter1d(curve, size=smooth, mode="nearest")
    return curve


def spot_apex(
    frames: np.ndarray,
    *,
    onset_index: int = 0,
    offset_index: int | None = None,
    smooth: int = 1,
    method: str = "onset",
) -> int:
    """Index of the apex frame by the inter-frame difference rule (module docstring).

    Parameters
    ----------
    frames : ndarray
        ``(T, H, W)`` or ``(T, H, W, C)``: the clip (onset..offset, or a longer span).
    onset_index : int
        Index of the onset frame.
    offset_index : int, optional
        Index of the offset frame (default: the last frame). The apex is searched in
        ``[onset_index, offset_index]``.
    smooth : int
        Moving-average window over the difference curve (``1`` = the paper's rule).
    method : {"onset", "onset_offset"}
        Difference to the onset (FR, Eq. 1) or sum of the differences to onset and offset.

    Returns
    -------
    int
        Index into ``frames``; the first maximum on ties.
    """
    frames = _check_frames(frames)
    if method not in METHODS:
        raise ValueError(f"unknown apex spotting method {method!r}; expected one of {METHODS}")
    last = len(frames) - 1 if offset_index is None else int(offset_index)
    if not 0 <= onset_index <= last < len(frames):
        raise IndexError(
            f"onset_index {onset_index} and offset_index {offset_index} must satisfy "
            f"0 <= onset <= offset <= {len(frames) - 1}"
        )
    curve = difference_curve(frames, reference_index=onset_index, smooth=smooth)
    if method == "onset_offset":
        curve = curve + difference_curve(frames, reference_index=last, smooth=smooth)
    return int(onset_index + np.argmax(curve[onset_index : last + 1]))


def _frame_numbers(row: pd.Series, n: int) -> list[int]:
    onset, offset = int(row["onset"]), int(row["offset"])
    fdir = row.get("frames_dir")
    if isinstance(fdir, str) and fdir:
        numbers = [frame_number(f) for f in list_frames(fdir)]
        numbers = [k for k in numbers if onset <= k <= offset]
    else:
        numbers = list(range(onset, onset + n))
    if len(numbers) != n:
        raise ValueError(
            f"sample {row.get('dataset')}/{row.get('subject')}/{row.get('clip')}: "
            f"{n} frames read but {len(numbers)} frame numbers found in [{onset}, {offset}]"
        )
    return numbers


def _spot_row(row: pd.Series, smooth: int, size: tuple[int, int] | None, method: str) -> int:
    name = f"{row.get('dataset')}/{row.get('subject')}/{row.get('clip')}"
    try:
        frames = load_clip(row, size=size, grey=True)
        index = spot_apex(frames, smooth=smooth, method=method)
        return _frame_numbers(row, len(frames))[index]
    except Exception as exc:  # re-raised with the sample named
        raise type(exc)(f"apex spotting of sample {name}: {exc}") from exc


def fill_apex(
    table: pd.DataFrame,
    *,
    smooth: int = 1,
    method: str = "onset",
    size: tuple[int, int] | None = (112, 112),
    overwrite: bool = False,
    n_jobs: int = 1,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Fill the missing apexes of a Sample table by :func:`spot_apex`.

    Parameters
    ----------
    table : DataFrame
        Sample table (``frames_dir`` or ``video_path``, ``onset``, ``offset``, ``apex``).
    smooth : int
        Moving-average window of the difference curve.
    method : {"onset", "onset_offset"}
        See :func:`spot_apex`.
    size : (H, W) or None
        Frames are resized to this before differencing (cheap and denoising); ``None``
        keeps the native size.
    overwrite : bool
        Spot every row, replacing annotated apexes too (to measure the spotter).
    n_jobs : int
        joblib workers over clips.
    progress : callable, optional
        Called with the number of clips spotted after each batch.

    Returns
    -------
    DataFrame
        A copy with ``apex`` (native frame numbers, Int64) filled and a boolean column
        ``apex_spotted`` marking the rows whose apex was spotted here.
    """
    smooth = _check_smooth(smooth)
    if method not in METHODS:
        raise ValueError(f"unknown apex spotting method {method!r}; expected one of {METHODS}")
    out = table.copy()
    apex = pd.to_numeric(out["apex"], errors="coerce") if "apex" in out else None
    todo = np.ones(len(out), dtype=bool) if overwrite or apex is None else apex.isna().to_numpy()
    values = (
        apex.astype("Int64").to_numpy(dtype=object)
        if apex is not None
        else np.full(len(out), pd.NA, dtype=object)
    )
    rows = [r for (_, r), t in zip(out.iterrows(), todo, strict=True) if t]
    found: list[int] = []
    batch = max(1, 8 * max(1, n_jobs))
    with Parallel(n_jobs=n_jobs) as parallel:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            found.extend(parallel(delayed(_spot_row)(r, smooth, size, method) for r in chunk))
            if progress is not None:
                progress(len(chunk))
    values[np.flatnonzero(todo)] = found
    out["apex"] = pd.array(values, dtype="Int64")
    out["apex_spotted"] = todo
    log.info(
        "spotted the apex of %d of %d clips (%s, smooth=%d)", len(found), len(out), method, smooth
    )
    return out
