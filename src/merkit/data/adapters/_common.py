"""Helpers shared by the database adapters: the declaration an adapter module gives the
registry (:class:`AdapterSpec`), the database and frame folders, sheet cells, headers and
rows, numbered frames on disk and their checks, and the Sample-table assembly."""

from __future__ import annotations

import contextlib
import logging
import numbers
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from merkit.data.labels import parse_aus
from merkit.data.schema import FRAME_SUFFIXES, SchemaError, validate

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


#: a database loader: ``f(root, **kw) -> Sample table``
Loader = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class AdapterSpec:
    """What the registry (:mod:`merkit.data.adapters`) needs from one adapter module.

    Every adapter module declares one, as its module-level ``ADAPTER``, next to its code;
    the registry lists the modules once, in order, and builds ``ADAPTERS``, ``discover``
    and ``EXPECTED_LAYOUT`` from these declarations.

    Attributes
    ----------
    loaders : mapping of str to callable
        Dataset name (upper case) -> loader ``f(root, **kw) -> Sample table``, in
        registry order (SMIC: one name per camera).
    discover : callable
        Data root (or the database folder itself) -> the names of ``loaders`` whose layout
        exists there (``[]`` if none); it checks the layout only, loading checks the rest.
    layout : str or None
        What ``discover`` looks for, in words, as one item of the registry's
        ``EXPECTED_LAYOUT`` (``None``: nothing of its own, e.g. a composite of others).
    requires : tuple of str
        Dataset names that must be discovered first (by modules earlier in the registry)
        before ``discover`` is asked (the MEGC2019 composite needs its three databases).
    """

    loaders: Mapping[str, Loader]
    discover: Callable[[Path], list[str]]
    layout: str | None
    requires: tuple[str, ...] = ()


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


#: the ``"<clip>: <problem>"`` lines :func:`report` skipped, while :func:`collect_skipped` runs
_SKIPPED: ContextVar[list[str] | None] = ContextVar("merkit_skipped_clips", default=None)


@contextlib.contextmanager
def collect_skipped() -> Iterator[list[str]]:
    """Collect the ``"<clip>: <problem>"`` lines of the clips that :func:`report` skips
    (``missing="skip"``) inside the block, so a workflow can list them."""
    sink: list[str] = []
    token = _SKIPPED.set(sink)
    try:
        yield sink
    finally:
        _SKIPPED.reset(token)


def report(problems: list[str], *, what: str, missing: str, limit: int = 10) -> None:
    """Raise (``missing="raise"``) or log (``"skip"``) a list of per-clip problems."""
    if not problems:
        return
    shown = problems[:limit]
    more = f"\n  (+{len(problems) - limit} more)" if len(problems) > limit else ""
    text = f"{what}: {len(problems)} clip(s)\n  " + "\n  ".join(shown) + more
    if missing == "raise":
        raise SchemaError(
            text + "\n(pass --missing skip, or missing='skip' in Python, to leave these clips out)"
        )
    sink = _SKIPPED.get()
    if sink is not None:
        sink.extend(problems)
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


def attach_frames(
    table: pd.DataFrame,
    clips: Sequence[tuple[str, Path, int, int]],
    *,
    what: str,
    missing: str,
    **check: Any,
) -> pd.DataFrame:
    """Check the clips' frames on disk and keep the complete clips.

    Parameters
    ----------
    table : DataFrame
        Sample table, one row per entry of ``clips``.
    clips : sequence of (name, folder, onset, offset)
        As for :func:`check_clips`; ``folder`` becomes the row's ``frames_dir``.
    what, missing : str
        Passed to :func:`report` (raise or log the incomplete clips).
    **check
        Keyword arguments of :func:`check_clips` (``lister``, ``in_range``...).

    Returns
    -------
    DataFrame
        A copy with ``frames_dir`` and ``n_frames`` filled, without the incomplete clips.
    """
    keep, counts, problems = check_clips(clips, **check)
    report(problems, what=what, missing=missing)
    table = table.copy()
    table["frames_dir"] = [str(c[1]) for c in clips]
    table["n_frames"] = counts
    return table[keep]


def final_table(
    table: pd.DataFrame, source: str | Path, applied: Iterable[str] | None = None
) -> pd.DataFrame:
    """The validated table (frames already checked) with ``attrs["source"]`` and, when
    ``applied`` is given, ``attrs["fixes_applied"]``."""
    table = validate(table, check_frames=False, source=str(source))
    table.attrs["source"] = str(source)
    if applied is not None:
        table.attrs["fixes_applied"] = list(applied)
    return table


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


def find_database_dir(
    root: str | Path,
    what: str,
    names: Sequence[str],
    holds_data: Callable[[Path], bool],
    otherwise: str,
) -> Path:
    """The folder of one database under a data root.

    Parameters
    ----------
    root : path
        The data root, or the database folder itself.
    what : str
        Database name in messages (``"CAS(ME)^2"``).
    names : sequence of str
        Names of the database folder, tried in order below ``root`` (ignoring case).
    holds_data : callable
        Folder -> whether it is a database folder itself (holds the sheet...).
    otherwise : str
        The rest of the message after ``"expected a folder <root>/<names[0]> "``;
        ``{root}`` stands for the root folder.

    Returns
    -------
    Path
        The first sub-folder of ``names``, else ``root`` when ``holds_data(root)``.

    Raises
    ------
    FileNotFoundError
        ``"<what> root <root> does not exist or is not a folder"`` or
        ``"no <what> data in <root>: expected a folder ..."``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} root {root} does not exist or is not a folder")
    for name in names:
        sub = child_dir(root, name)
        if sub is not None:
            return sub
    if holds_data(root):
        return root
    raise FileNotFoundError(
        f"no {what} data in {root}: expected a folder {root / names[0]} "
        + otherwise.replace("{root}", str(root))
    )


def found_in(
    find: Callable[[str | Path], Path],
    root: str | Path,
    holds_data: Callable[[Path], bool] | None = None,
) -> bool:
    """Whether ``find(root)`` (a ``find_root``) finds a path without
    :class:`FileNotFoundError` that ``holds_data`` (if given) accepts."""
    try:
        found = find(root)
    except FileNotFoundError:
        return False
    return holds_data is None or holds_data(found)


def frames_folder(
    db_dir: Path, frames: str | Path | None, candidates: Sequence[str], what: str, holding: str
) -> Path:
    """The frame tree: ``frames`` if given (relative paths inside ``db_dir``), else the first
    of ``candidates`` (paths below ``db_dir``, matched ignoring case) that exists.

    Raises
    ------
    FileNotFoundError
        ``"<what> frame folder <frames> does not exist"``, or ``"no <what> frame folder in
        <db_dir>: expected one of [...] holding <holding>"``.
    """
    if frames is not None:
        return given_dir(frames, db_dir, f"{what} frame folder")
    for rel in candidates:
        p = resolve_dir(db_dir, rel)
        if p is not None:
            return p
    raise FileNotFoundError(
        f"no {what} frame folder in {db_dir}: expected one of {list(candidates)} holding {holding}"
    )


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


def coding_sheet_rows(
    path: Path,
    headers: Mapping[str, str],
    anchor: Iterable[str],
    *,
    anchor_text: str,
    required: Iterable[str] = (),
    first: str | None = None,
    limit: int = 30,
) -> tuple[list[tuple[int, dict]], str, int]:
    """Rows of a CASME/SAMM-style Excel coding sheet, header cells matched by
    :func:`ascii_header`.

    Parameters
    ----------
    headers : mapping
        Normalised header -> name of the value in the returned rows.
    anchor : iterable of str
        Normalised headers that mark the header row (searched in the first ``limit``
        rows of each worksheet, in file order; ``first`` names a worksheet, normalised,
        searched before the others).
    anchor_text : str
        The anchors as the "no header row with ..." message names them.
    required : iterable of str
        Normalised headers the header row must hold.

    Returns
    -------
    (rows, sheet name, header row)
        ``rows``: ``(excel_row, {name: cell})`` for every row below the header with a
        non-NA cell in a column of ``headers``; the 0-based header row.

    Raises
    ------
    SchemaError
        ``"<path>: no header row with <anchor_text> in sheets [...]"`` or
        ``"<path> sheet '<name>': missing columns [...]; found [...]"``.
    """
    raw = pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    anchor = set(anchor)
    order = list(raw)
    if first is not None:
        order.sort(key=lambda name: ascii_header(name) != first)
    hit = next(
        (
            (name, i)
            for name in order
            for i in range(min(len(raw[name]), limit))
            if anchor <= {ascii_header(v) for v in raw[name].iloc[i].tolist()}
        ),
        None,
    )
    if hit is None:
        raise SchemaError(f"{path}: no header row with {anchor_text} in sheets {list(raw)}")
    sheet_name, header_row = hit
    data = raw[sheet_name]
    cells = data.iloc[header_row].tolist()
    names = [ascii_header(v) for v in cells]
    absent = [h for h in required if h not in names]
    if absent:
        found = [str(v) for v in cells if pd.notna(v)]
        raise SchemaError(f"{path} sheet {sheet_name!r}: missing columns {absent}; found {found}")
    col_of = {h: names.index(h) for h in headers if h in names}
    rows = []
    for i in range(header_row + 1, len(data)):
        line = data.iloc[i]
        vals = {headers[h]: line.iloc[j] for h, j in col_of.items()}
        if not all(pd.isna(v) for v in vals.values()):
            rows.append((i + 1, vals))
    return rows, sheet_name, header_row


def records_table(
    records: list[dict], empty: str, nullable_int: Iterable[str] = ()
) -> pd.DataFrame:
    """The rows read from a sheet or list as a table, the ``nullable_int`` columns as
    ``Int64``.

    Raises
    ------
    SchemaError
        With the message ``empty`` when there are no rows.
    """
    table = pd.DataFrame.from_records(records)
    if table.empty:
        raise SchemaError(empty)
    for col in nullable_int:
        table[col] = table[col].astype("Int64")
    return table


def au_columns(text: object, where: str) -> dict[str, tuple]:
    """``aus``, ``au_sides`` and ``au_intensities`` of an AU cell
    (:func:`merkit.data.labels.parse_aus`), as record fields."""
    aus, sides, intensities = parse_aus(text, where)
    return {"aus": aus, "au_sides": sides, "au_intensities": intensities}
