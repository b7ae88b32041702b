"""Reading clips: folders of numbered frame images and video files.

Frame numbers are the native numbers of the databases (the last integer group of a file
name: ``img46.jpg`` -> 46, ``reg_img046.jpg`` -> 46, ``006_05562.jpg`` -> 5562), which is
what the ``onset`` / ``offset`` columns of a Sample table refer to. Video files are indexed
by 1-based frame position.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from merkit.data.schema import FRAME_SUFFIXES

log = logging.getLogger(__name__)

_DIGITS = re.compile(r"\d+")


def frame_number(path: str | Path) -> int:
    """Integer frame number in a frame file name (its last group of digits).

    Raises
    ------
    ValueError
        If the name (without suffix) contains no digits.
    """
    stem = Path(path).stem
    groups = _DIGITS.findall(stem)
    if not groups:
        raise ValueError(f"frame file {str(path)!r} has no frame number in its name")
    return int(groups[-1])


def list_frames(folder: str | Path) -> list[Path]:
    """Image files of a frame folder, sorted by frame number.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist or holds no image with a suffix in
        ``schema.FRAME_SUFFIXES``.
    ValueError
        If a file name has no number or two files share a number.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder {str(folder)!r} does not exist")
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES]
    if not files:
        raise FileNotFoundError(
            f"frame folder {str(folder)!r} holds no images ({', '.join(FRAME_SUFFIXES)})"
        )
    numbered: dict[int, Path] = {}
    for f in files:
        n = frame_number(f)
        if n in numbered:
            raise ValueError(
                f"frame folder {str(folder)!r}: {numbered[n].name!r} and {f.name!r} "
                f"both carry frame number {n}"
            )
        numbered[n] = f
    return [numbered[n] for n in sorted(numbered)]


def _check_range(start: int | None, end: int | None, where: str) -> None:
    if start is not None and end is not None and start > end:
        raise ValueError(f"{where}: frame range start {start} > end {end}")


def read_frames(
    folder: str | Path,
    start: int | None = None,
    end: int | None = None,
    *,
    grey: bool = True,
) -> np.ndarray:
    """Frames of a folder whose number lies in ``[start, end]`` (inclusive).

    Parameters
    ----------
    folder : path
        Folder of numbered images.
    start, end : int, optional
        Native frame numbers; ``None`` means open-ended.
    grey : bool
        Grey ``[T, H, W]`` (OpenCV's luminance conversion) or RGB ``[T, H, W, 3]``.

    Returns
    -------
    ndarray of uint8
    """
    where = f"frame folder {str(folder)!r}"
    _check_range(start, end, where)
    files = [
        f
        for f in list_frames(folder)
        if (start is None or frame_number(f) >= start) and (end is None or frame_number(f) <= end)
    ]
    if not files:
        raise ValueError(f"{where}: no frame numbered in [{start}, {end}]")
    flag = cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR
    frames = []
    for f in files:
        img = cv2.imread(str(f), flag)
        if img is None:
            raise ValueError(f"cannot read frame image {str(f)!r}")
        if img.dtype != np.uint8:
            raise ValueError(f"frame image {str(f)!r} has dtype {img.dtype}; expected 8-bit")
        if not grey:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if frames and img.shape != frames[0].shape:
            raise ValueError(
                f"frame image {str(f)!r} is {img.shape[1]}x{img.shape[0]}, but "
                f"{files[0].name!r} is {frames[0].shape[1]}x{frames[0].shape[0]}"
            )
        frames.append(img)
    log.debug("read %d frames from %s", len(frames), folder)
    return np.stack(frames)


class TruncatedVideoError(ValueError):
    """A video file decodes to fewer frames than its container declares (a cut-off copy)."""


def video_fps(path: str | Path) -> float | None:
    """The frame rate a video file declares (its stream's average rate), None if it
    declares none."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"video {str(path)!r} has no video stream")
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def read_video(
    path: str | Path,
    start: int | None = None,
    end: int | None = None,
    *,
    grey: bool = True,
) -> np.ndarray:
    """Frames ``start..end`` (1-based, inclusive) of a video file, decoded with PyAV.

    The frame count the container declares (e.g. an AVI header) is checked against the
    frames that decode whole (a frame of a packet the demuxer flags as corrupt, the partial
    last packet of a cut-off file, ends the clip): a file that ends early (a half-copied
    or cut-off video) raises :class:`TruncatedVideoError` unless every asked-for frame
    (``end`` given, at most the frames that decode) is there. Containers that declare no
    count (0) are checked for cut-off frames only.

    Returns
    -------
    ndarray of uint8, shape (T, H, W) if ``grey`` else (T, H, W, 3) RGB

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    TruncatedVideoError
        If fewer frames decode whole than the container declares (or one is cut off) and
        the range asks for more; a ValueError.
    ValueError
        If the file cannot be decoded or no frame lies in ``[start, end]``.
    """
    path = Path(path)
    where = f"video {str(path)!r}"
    _check_range(start, end, where)
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    first = 1 if start is None else start
    fmt = "gray" if grey else "rgb24"
    frames = []
    declared = decoded = 0
    ended = True  # the stream ran out, or reached a cut-off frame (rather than ``end``)
    damaged = False
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{where} has no video stream")
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)
            for i, (frame, corrupt) in enumerate(_decode(container, stream), start=1):
                if corrupt:  # a packet cut off by the end of the file: the frame is partial
                    damaged = True
                    break
                if end is not None and i > end:
                    ended = False
                    break
                decoded = i
                if i >= first:
                    frames.append(frame.to_ndarray(format=fmt))
    except av.error.FFmpegError as err:
        if 0 < decoded < declared:
            raise _truncated(where, declared, decoded, f" (decoder: {err})") from err
        raise ValueError(
            f"cannot decode {where}: {err}; the file may be damaged, truncated or not a "
            "video: re-export or re-copy it"
        ) from err
    if ended and (decoded < declared or damaged):
        if end is None or end > decoded:
            raise _truncated(where, declared, decoded)
        log.warning("%s is truncated after frame %d (of %d declared); frames %s..%d were "
                    "asked for and decode whole", where, decoded, declared, first,
                    end)  # fmt: skip
    if not frames:
        raise ValueError(f"{where}: no frame with 1-based index in [{start}, {end}]")
    log.debug("read %d frames from %s", len(frames), path)
    return np.stack(frames)


def _decode(container, stream):
    """``(frame, corrupt)`` of every frame; ``corrupt``: decoded from a packet the demuxer
    flags as corrupt (the last packet of a cut-off file is partial)."""
    corrupt_pts: set[int] = set()
    for packet in container.demux(stream):
        if packet.is_corrupt and packet.pts is not None:
            corrupt_pts.add(int(packet.pts))
        for frame in packet.decode():
            yield frame, frame.pts is not None and int(frame.pts) in corrupt_pts


def _truncated(where: str, declared: int, decoded: int, detail: str = "") -> TruncatedVideoError:
    use = (
        f", or ask only for frames that decode (offset <= {decoded}, e.g. "
        f"`merkit predict --offset {decoded}`)"
        if decoded > 1
        else ""
    )
    verb = "decodes" if decoded == 1 else "decode"
    counts = (
        f"its container declares {declared} frames but only {decoded} {verb}"
        if declared > decoded
        else f"frame {decoded + 1} is cut off, {decoded} {verb} whole"
    )
    return TruncatedVideoError(
        f"{where} is truncated: {counts}{detail}; re-export or re-copy the video{use}"
    )


def _resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    shrink = h <= frame.shape[0] and w <= frame.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(frame, (w, h), interpolation=interp)


def _present(value) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return bool(str(value))


def load_clip(
    row: Mapping | pd.Series,
    *,
    size: tuple[int, int] | None = (112, 112),
    grey: bool = True,
) -> np.ndarray:
    """Frames onset..offset of one Sample-table row, resized.

    Parameters
    ----------
    row : Series or mapping
        A Sample-table row: ``frames_dir`` (native frame numbers) or ``video_path``
        (1-based frame indices), ``onset``, ``offset``.
    size : (H, W) or None
        Output frame size (``cv2.INTER_AREA`` when shrinking, ``INTER_LINEAR`` otherwise);
        ``None`` keeps the native size.
    grey : bool
        Grey ``[T, H, W]`` or RGB ``[T, H, W, 3]``.

    Returns
    -------
    ndarray of float32 in 0..255
    """
    name = f"{row.get('dataset')}/{row.get('subject')}/{row.get('clip')}"
    try:
        onset, offset = int(row["onset"]), int(row["offset"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"sample {name}: onset/offset missing or not integers") from err
    if _present(row.get("frames_dir")):
        frames = read_frames(row["frames_dir"], onset, offset, grey=grey)
    elif _present(row.get("video_path")):
        frames = read_video(row["video_path"], onset, offset, grey=grey)
    else:
        raise ValueError(f"sample {name}: neither frames_dir nor video_path is set")
    expected = offset - onset + 1
    if len(frames) != expected:
        log.warning(
            "sample %s: %d frames read for onset..offset %d..%d (%d expected)",
            name,
            len(frames),
            onset,
            offset,
            expected,
        )
    if size is not None:
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (H, W) with positive values, got {size!r}")
        frames = np.stack([_resize(f, (int(size[0]), int(size[1]))) for f in frames])
    return frames.astype(np.float32)
