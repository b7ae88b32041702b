"""Helpers shared by the database adapters: sheet cells and headers, folders, numbered
frames on disk and their checks, and the Sample-table assembly."""

from __future__ import annotations

import logging
import numbers
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

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
#: cell texts read as "no apex annotated" (user lists, MMEW, DFME)
MISSING_MARKERS = frozenset({"", "/", "-", "?", "na", "nan", "none", "null"})
#: cell texts read as "no apex annotated" in the CASME/SAMM coding sheets
SHEET_MISSING_MARKERS = frozenset({"/", "-", "?", ""})


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


def clip_frames_problem(
    nums: np.ndarray,
    onset: int,
    offset: int,
    folder: Path | str,
    *,
    on_disk: str = "on disk",
    require_any: bool = True,
) -> str | None:
    """Why the frames ``nums`` of ``folder`` do not cover ``[onset, offset]`` (``None`` if
    they do): ``"no frames in ..."`` (when ``require_any``) or the missing frame ranges."""
    if require_any and nums.size == 0:
        return f"no frames in {folder}"
    gone = missing_frames(nums, int(onset), int(offset))
    if gone.size:
        return (
            f"frames {ranges(gone)} of [{onset}, {offset}] missing in {folder} "
            f"({on_disk}: {ranges(nums)})"
        )
    return None


def check_clips(
    clips: Iterable[tuple[str, Path, int, int]],
    *,
    lister: Callable[[Path], np.ndarray] = frame_numbers,
    on_disk: str = "on disk",
    in_range: bool = False,
    cache: bool = False,
) -> tuple[list[bool], list[int], list[str]]:
    """Check the frames of ``(name, folder, onset, offset)`` clips on disk.

    Parameters
    ----------
    lister : callable
        Folder -> sorted frame numbers (default :func:`frame_numbers`).
    on_disk : str
        Label of the frame list in the messages (``"video frames on disk"``).
    in_range : bool
        Count only the frames of ``[onset, offset]`` (else every frame of the folder).
    cache : bool
        List each folder once (clips cut from one long video share it).

    Returns
    -------
    (keep, n_frames, problems)
        Per clip whether all its frames are present and its frame count; the problems as
        ``"<name>: ..."`` lines for :func:`report`.
    """
    seen: dict[Path, np.ndarray] = {}
    keep: list[bool] = []
    counts: list[int] = []
    problems: list[str] = []
    for name, folder, onset, offset in clips:
        if cache:
            if folder not in seen:
                seen[folder] = lister(folder)
            nums = seen[folder]
        else:
            nums = lister(folder)
        counts.append(int(((nums >= onset) & (nums <= offset)).sum() if in_range else nums.size))
        problem = clip_frames_problem(nums, onset, offset, folder, on_disk=on_disk)
        if problem:
            problems.append(f"{name}: {problem}")
        keep.append(problem is None)
    return keep, counts, problems


def sample_table(
    coded: pd.DataFrame,
    dataset: str,
    *,
    fps: object,
    camera: str,
    frames_dir: object = None,
    n_frames: object = 0,
    extra: Iterable[str] = (),
) -> pd.DataFrame:
    """Sample-table columns (schema order) from a coding-sheet table, plus its ``extra``
    columns; subject ``"<dataset>/<subject>"``, no video path."""
    return pd.DataFrame(
        {
            "dataset": dataset,
            "subject": [f"{dataset}/{s}" for s in coded["subject"]],
            "clip": coded["clip"],
            "frames_dir": frames_dir,
            "video_path": None,
            "n_frames": n_frames,
            "fps": fps,
            "onset": coded["onset"],
            "apex": coded["apex"],
            "offset": coded["offset"],
            "emotion": coded["emotion"],
            "aus": coded["aus"],
            "au_sides": coded["au_sides"],
            "au_intensities": coded["au_intensities"],
            "camera": camera,
            **{c: coded[c] for c in extra},
        }
    )


# ----------------------------------------------------------------------------------------
# folders and files
# ----------------------------------------------------------------------------------------


def resolve_dir(base: Path, rel: str | Path) -> Path | None:
    """``base / rel`` with every component matched ignoring case (``None`` if absent)."""
    p: Path | None = base
    for part in Path(rel).parts:
        p = child_dir(p, part)
        if p is None:
            return None
    return p


def files_matching(folder: Path, pattern: re.Pattern) -> list[Path]:
    """Sorted files of ``folder`` whose names match ``pattern`` (``[]`` if no folder)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))


def given_file(path: str | Path, base: Path, what: str) -> Path:
    """A file the caller named: as given if it exists or is absolute, else inside ``base``.

    Raises
    ------
    FileNotFoundError
        ``"<what> <path> does not exist"``.
    """
    p = Path(path)
    if not p.is_absolute() and not p.exists():
        p = base / p
    if not p.is_file():
        raise FileNotFoundError(f"{what} {p} does not exist")
    return p


def given_dir(path: str | Path, base: Path, what: str) -> Path:
    """A folder the caller named (relative paths are taken inside ``base``).

    Raises
    ------
    FileNotFoundError
        ``"<what> <path> does not exist"``.
    """
    p = Path(path)
    p = p if p.is_absolute() else base / p
    if not p.is_dir():
        raise FileNotFoundError(f"{what} {p} does not exist")
    return p


def database_dir(
    find_root: Callable[[str | Path], Path], root: str | Path, sheet: str | Path | None
) -> Path:
    """``find_root(root)``, or ``root`` itself when that fails but a sheet is given."""
    try:
        return find_root(root)
    except FileNotFoundError:
        if sheet is None or not Path(root).is_dir():
            raise
        return Path(root)


# ----------------------------------------------------------------------------------------
# sheet headers and cells
# ----------------------------------------------------------------------------------------


def norm_header(value: object) -> str:
    """Header text without case, spaces or punctuation: ``"Onset Frame"`` -> ``"onsetframe"``.

    Letters of any script are kept (``"视频"`` stays ``"视频"``).
    """
    return re.sub(r"[\W_]", "", str(value).casefold())


def ascii_header(value: object) -> str:
    """Header text reduced to lower-case ASCII letters (``"Onset Frame 1"`` ->
    ``"onsetframe"``), as the CASME/SAMM sheets are matched."""
    return re.sub(r"[^a-z]", "", str(value).lower())


def is_blank(value: object) -> bool:
    """``None``, NA/NaN or whitespace-only text."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and pd.isna(value):
        return True
    return isinstance(value, str) and not value.strip()


def cell_text(value: object) -> str:
    """A cell as stripped text (``1.0`` -> ``"1"``; blank -> ``""``)."""
    if is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def frame_value(
    value: object,
    column: str,
    where: str,
    *,
    allow_missing: bool = False,
    markers: frozenset[str] = MISSING_MARKERS,
    non_negative: bool = True,
):
    """A whole frame number from a cell (``46``, ``46.0``, ``"46"``); ``pd.NA`` when allowed.

    Parameters
    ----------
    markers : set of str
        Cell texts (lower case) read as a missing value when ``allow_missing``.
    non_negative : bool
        Reject numbers < 0 (the coding sheets' readers let them through to the schema).

    Raises
    ------
    SchemaError
        Naming ``where`` and the column when the cell is not a whole number (>= 0 if
        ``non_negative``), or is blank / a missing marker and ``allow_missing`` is false.
    """
    if isinstance(value, bool):
        raise SchemaError(f"{where}: {column} {value!r} is not a frame number")
    if is_blank(value):
        text = ""
    elif isinstance(value, numbers.Number):
        if float(value).is_integer() and (float(value) >= 0 or not non_negative):
            return int(value)
        bound = " >= 0" if non_negative else ""
        raise SchemaError(f"{where}: {column} {value!r} is not a whole frame number{bound}")
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d+(?:\.0+)?", text):
            return int(float(text))
    if allow_missing and text.lower() in markers:
        return pd.NA
    raise SchemaError(f"{where}: {column} {value!r} is not a frame number")


def sheet_frame_value(value: object, column: str, where: str, *, allow_missing: bool) -> object:
    """:func:`frame_value` as the CASME/SAMM coding sheets are read: only ``/ - ?`` or a
    blank mean "missing", and negative numbers are left to the schema check."""
    return frame_value(value, column, where, allow_missing=allow_missing,
                       markers=SHEET_MISSING_MARKERS, non_negative=False)  # fmt: skip


def subject_number(value: object, where: str, *, prefixes: tuple[str, ...] = ("sub", "s")) -> int:
    """Subject number of a cell: ``"01"``, ``1``, ``1.0``, ``"sub0003"``, ``"S13"`` -> int.

    Raises
    ------
    SchemaError
        Naming ``where`` when the cell is not a (prefixed) subject number.
    """
    text = str(value).strip() if not is_blank(value) else ""
    pattern = r"(?:" + "|".join(re.escape(p) for p in prefixes) + r")?0*(\d+)(?:\.0+)?"
    m = re.fullmatch(pattern, text, flags=re.IGNORECASE)
    if not m:
        raise SchemaError(f"{where}: Subject {value!r} is not a subject number like '01' or 1")
    return int(m.group(1))


def find_header_row(frame: pd.DataFrame, needed: Iterable[str], *, limit: int = 30) -> int | None:
    """Index of the first of ``limit`` rows whose normalised cells include all ``needed``."""
    needed = set(needed)
    for i in range(min(len(frame), limit)):
        names = {norm_header(v) for v in frame.iloc[i].tolist() if not is_blank(v)}
        if needed <= names:
            return i
    return None


def map_columns(
    header: list, aliases: Mapping[str, Iterable[str]], *, where: str
) -> dict[str, int]:
    """Canonical column -> position, from a header row and ``{column: accepted names}``.

    Raises
    ------
    SchemaError
        If two header cells give the same column.
    """
    normed = [norm_header(v) if not is_blank(v) else "" for v in header]
    found: dict[str, int] = {}
    for name, names in aliases.items():
        hits = [j for j, h in enumerate(normed) if h and h in set(names)]
        if len(hits) > 1:
            raise SchemaError(
                f"{where}: columns {[str(header[j]) for j in hits]} all give {name!r}; keep one"
            )
        if hits:
            found[name] = hits[0]
    return found
