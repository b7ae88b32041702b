"""Helpers shared by the database adapters: numbered frames on disk and their checks."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from merkit.data.schema import FRAME_SUFFIXES, SchemaError

log = logging.getLogger(__name__)

#: a frame file: letters/underscores, the native frame number, an image suffix
#: (``img46.jpg``, ``reg_img46.jpg``, ``image559740.bmp``)
FRAME_NAME = re.compile(
    r"^(?P<prefix>[A-Za-z_]*?)(?P<num>\d+)(?P<suffix>"
    + "|".join(re.escape(s) for s in FRAME_SUFFIXES)
    + r")$",
    re.IGNORECASE,
)

MISSING_POLICIES = ("raise", "skip")


def check_missing_policy(missing: str) -> None:
    """Reject a ``missing=`` value other than ``"raise"`` / ``"skip"``."""
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {missing!r}")


def child_dir(folder: Path, name: str) -> Path | None:
    """Sub-folder of ``folder`` called ``name``, ignoring case (``None`` if absent)."""
    exact = folder / name
    if exact.is_dir():
        return exact
    if not folder.is_dir():
        return None
    for p in folder.iterdir():
        if p.is_dir() and p.name.lower() == name.lower():
            return p
    return None


def frame_numbers(folder: Path) -> np.ndarray:
    """Sorted unique native frame numbers of the image files in ``folder``.

    Files that are not numbered images (``Thumbs.db``, ``notes.txt``) are ignored.
    Returns an empty array when the folder does not exist.
    """
    nums: list[int] = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                m = FRAME_NAME.match(entry.name)
                if m and entry.is_file():
                    nums.append(int(m.group("num")))
    except (FileNotFoundError, NotADirectoryError):
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(nums, dtype=np.int64)
    uniq = np.unique(arr)
    if uniq.size != arr.size:
        log.warning(
            "%s: %d frame files share a frame number with another file (e.g. img5.jpg and "
            "reg_img5.jpg); counted once",
            folder,
            arr.size - uniq.size,
        )
    return uniq


def ranges(values: np.ndarray) -> str:
    """Compact text of sorted integers: ``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return "none"
    breaks = np.flatnonzero(np.diff(values) != 1)
    starts = np.r_[values[0], values[breaks + 1]]
    ends = np.r_[values[breaks], values[-1]]
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts, ends, strict=True)]
    if len(parts) > 6:
        parts = parts[:6] + [f"... ({len(parts) - 6} more runs)"]
    return ", ".join(parts)


def missing_frames(on_disk: np.ndarray, onset: int, offset: int) -> np.ndarray:
    """Frame numbers in ``[onset, offset]`` that are not on disk."""
    return np.setdiff1d(np.arange(onset, offset + 1, dtype=np.int64), on_disk)


def report(problems: list[str], *, what: str, missing: str, limit: int = 10) -> None:
    """Raise (``missing="raise"``) or log (``"skip"``) a list of per-clip problems."""
    if not problems:
        return
    shown = problems[:limit]
    more = f"\n  (+{len(problems) - limit} more)" if len(problems) > limit else ""
    text = f"{what}: {len(problems)} clip(s)\n  " + "\n  ".join(shown) + more
    if missing == "raise":
        raise SchemaError(text + "\n(pass missing='skip' to leave these clips out)")
    log.warning("%s\nthese clips are skipped", text)
