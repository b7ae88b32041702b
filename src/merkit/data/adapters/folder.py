"""Users' own recordings: any tree of clips plus one CSV (or XLSX) that lists them.

Layout read here::

    my_study/
        clips.csv                    the list (any name; given to :func:`load_folder`)
        p01/take1/frame0001.png ...  a clip as a folder of numbered frames, or
        p02/take3.mp4                a clip as a video file

The list has a header row (it may follow preamble lines) and one row per clip. Columns
are matched by header name, ignoring case, spaces and punctuation, in any order:

========  ===================================================  ========
column    also accepted as                                     needed
========  ===================================================  ========
subject   participant, person, sub, subjectid                  yes
clip      filename, clipname, sample, name, clipid             yes
path      frames, framesdir, folder, dir, videopath, file      yes
onset     onsetframe, start, startframe                        yes
apex      apexframe, peak, peakframe                           column optional, cell may be blank
offset    offsetframe, end, endframe                           yes
label     emotion, estimatedemotion, class, category           yes
aus       au, actionunits                                      no
fps       framerate, framespersecond                           no (else ``fps=``)
camera    device, domain                                       no (else ``camera=``)
dataset   database, corpus                                     no (else ``dataset=``)
========  ===================================================  ========

``path`` is relative to the CSV's folder (or absolute): a folder of numbered images
(onset/apex/offset are the numbers in the file names, as in CASME II), or a video file
(onset/apex/offset are 1-based frame positions, as :func:`merkit.video.io.read_video`
reads them). A video's frame rate is read from the file when neither the row nor
``fps=`` gives one. Text encodings: a UTF-8 BOM means UTF-8; otherwise UTF-8, then GBK
(Chinese-locale Excel exports), then GB18030 are tried; the one used is logged and kept
in ``table.attrs["encoding"]``. Delimiters ``,`` ``;`` and tab are recognised.

Every bad row is reported in one :class:`~merkit.data.schema.SchemaError` that names the
file, the row and the clip. :func:`read_table_file` is shared by the sheet-based adapters
(MMEW, DFME); the cell helpers (:func:`norm_header`, :func:`frame_value`...) live in
:mod:`merkit.data.adapters._common` and are re-exported here.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import av
import pandas as pd

from merkit.data.adapters._common import (
    MISSING_MARKERS,
    cell_text,
    check_missing_policy,
    clip_frames_problem,
    find_header_row,
    frame_numbers,
    frame_value,
    is_blank,
    map_columns,
    norm_header,
    report,
    subject_number,
)
from merkit.data.labels import parse_aus
from merkit.data.schema import FRAME_SUFFIXES, SchemaError, empty_table, validate

__all__ = [
    "COLUMN_ALIASES",
    "MISSING_MARKERS",
    "cell_text",
    "decode_text",
    "find_header_row",
    "frame_value",
    "headed_rows",
    "is_blank",
    "load_folder",
    "map_columns",
    "norm_header",
    "read_table_file",
    "subject_number",
    "video_info",
]

log = logging.getLogger(__name__)

DEFAULT_DATASET = "FOLDER"
#: text encodings tried in this order when a CSV has no UTF-8 byte-order mark
ENCODINGS: tuple[str, ...] = ("utf-8", "gbk", "gb18030")
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg",
                                   ".wmv", ".webm")  # fmt: skip
#: canonical column -> normalised header names accepted for it
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "subject": ("subject", "participant", "person", "sub", "subjectid"),
    "clip": ("clip", "filename", "clipname", "sample", "name", "clipid"),
    "path": ("path", "frames", "framesdir", "folder", "dir", "videopath", "file"),
    "onset": ("onset", "onsetframe", "start", "startframe"),
    "apex": ("apex", "apexframe", "peak", "peakframe"),
    "offset": ("offset", "offsetframe", "end", "endframe"),
    "label": ("label", "emotion", "estimatedemotion", "class", "category"),
    "aus": ("aus", "au", "actionunits"),
    "fps": ("fps", "framerate", "framespersecond"),
    "camera": ("camera", "device", "domain"),
    "dataset": ("dataset", "database", "corpus"),
}
REQUIRED_COLUMNS: tuple[str, ...] = ("subject", "clip", "path", "onset", "offset", "label")


# ----------------------------------------------------------------------------------------
# shared helpers: files, headers, cells
# ----------------------------------------------------------------------------------------


def decode_text(data: bytes, path: str | Path, encoding: str | None = None) -> tuple[str, str]:
    """Decode a text file's bytes: BOM -> ``utf-8-sig``, else :data:`ENCODINGS` in order.

    Returns
    -------
    (text, encoding used)
    """
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except (UnicodeDecodeError, LookupError) as err:
            raise ValueError(f"{path}: cannot decode as {encoding}: {err}") from None
    if data.startswith(b"\xef\xbb\xbf"):
        return data.decode("utf-8-sig"), "utf-8-sig"
    for enc in ENCODINGS:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise ValueError(
        f"{path}: not readable as UTF-8, UTF-8 with BOM, GBK or GB18030 text; "
        "pass encoding= with the file's encoding"
    )


def read_table_file(
    path: str | Path, *, sheet: str | int | None = None, encoding: str | None = None
) -> tuple[pd.DataFrame, str]:
    """Cells of a CSV/TSV/TXT or Excel file, header row not interpreted.

    Parameters
    ----------
    path : path
    sheet : str or int, optional
        Worksheet of an Excel file (default: the first).
    encoding : str, optional
        Text encoding (default: detected by :func:`decode_text`).

    Returns
    -------
    (DataFrame of objects, encoding)
        Text cells stay strings (CSV cells are all strings, blanks are ``""``); the
        encoding is ``"xlsx"`` for Excel files.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"table file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls"):
        try:
            frame = pd.read_excel(path, sheet_name=sheet or 0, header=None, dtype=object)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        return frame, "xlsx"
    text, used = decode_text(path.read_bytes(), path, encoding)
    if used != "utf-8":
        log.info("%s: read as %s text", path.name, used)
    lines = [line for line in text.splitlines() if line.strip()][:30]
    if suffix == ".tsv":
        sep = "\t"
    else:  # the delimiter the busiest of the first lines uses most (preambles have few)
        sep = max(",;\t", key=lambda d: (max((ln.count(d) for ln in lines), default=0), d == ","))
    try:
        rows = [
            r for r in csv.reader(io.StringIO(text), delimiter=sep) if any(c.strip() for c in r)
        ]
    except csv.Error as err:
        raise ValueError(f"{path}: cannot parse as a {sep!r}-separated table: {err}") from None
    width = max((len(r) for r in rows), default=0)
    frame = pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=object)
    return frame, used


# ----------------------------------------------------------------------------------------
# the folder adapter
# ----------------------------------------------------------------------------------------


def headed_rows(
    path: str | Path,
    headers: Mapping[str, tuple[str, ...]],
    required: Iterable[str],
    anchor: tuple[str, ...] = ("subject", "filename"),
) -> Iterator[tuple[int, dict]]:
    """Rows of a sheet whose header row holds the ``anchor`` names.

    Yields ``(excel_row, values)`` for every non-blank row below the header, ``values``
    mapping each canonical column of ``headers`` found in the header to its cell.

    Raises
    ------
    SchemaError
        No header row with the anchors, or a ``required`` column missing (the columns
        found are listed).
    """
    path = Path(path)
    raw, _ = read_table_file(path)
    header_row = find_header_row(raw, anchor)
    if header_row is None:
        names = " and ".join(f"'{a.title()}'" for a in anchor)
        raise SchemaError(f"{path}: no header row with {names}")
    header = raw.iloc[header_row].tolist()
    cols = map_columns(header, headers, where=str(path))
    absent = [headers[c][0] for c in required if c not in cols]
    if absent:
        found = [str(v) for v in header if not is_blank(v)]
        raise SchemaError(f"{path}: missing columns {absent}; found {found}")
    for i in range(header_row + 1, len(raw)):
        line = raw.iloc[i]
        vals = {name: line.iloc[j] for name, j in cols.items()}
        if not all(is_blank(v) for v in vals.values()):
            yield i + 1, vals


def video_info(path: str | Path) -> tuple[int, float | None]:
    """``(frame count, frame rate or None)`` of a video file, decoded with PyAV.

    The count is the container's when it records one, else the frames are decoded and
    counted.
    """
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"video {path} has no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else None
            n = int(stream.frames or 0)
            if n <= 0:
                n = sum(1 for _ in container.decode(stream))
    except av.error.FFmpegError as err:
        raise ValueError(f"cannot decode video {path}: {err}") from err
    return n, rate


def _positive_fps(value: object, where: str) -> float:
    try:
        fps = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise SchemaError(f"{where}: fps {value!r} is not a number") from None
    if not fps > 0:
        raise SchemaError(f"{where}: fps {value!r} must be > 0")
    return fps


def load_folder(
    csv_path: str | Path,
    *,
    dataset: str | None = None,
    fps: float | None = None,
    camera: str = "unknown",
    missing: str = "raise",
    encoding: str | None = None,
    sheet: str | int | None = None,
) -> pd.DataFrame:
    """Load clips listed in a CSV (or XLSX) as a validated Sample table.

    Parameters
    ----------
    csv_path : path
        The list (see the module doc for its columns).
    dataset : str, optional
        Dataset name for rows without a ``dataset`` cell (default ``"FOLDER"``). Label
        schemes key on the part before the first ``_`` (:func:`~merkit.data.labels.
        dataset_family`).
    fps : float, optional
        Frame rate for rows without an ``fps`` cell (videos default to their own rate).
    camera : str
        Camera / domain for rows without a ``camera`` cell.
    missing : {"raise", "skip"}
        A clip whose path does not exist, or whose frames do not cover
        ``[onset, offset]``, raises (naming every such clip) or is left out with a
        warning. Malformed cells always raise.
    encoding : str, optional
        Text encoding of the CSV (default: detected, see the module doc).
    sheet : str or int, optional
        Worksheet when the list is an Excel file.

    Returns
    -------
    DataFrame
        Sample table plus ``list_row`` (1-based line of the list). ``attrs`` holds
        ``source`` and ``encoding``.
    """
    check_missing_policy(missing)
    csv_path = Path(csv_path)
    raw, used = read_table_file(csv_path, sheet=sheet, encoding=encoding)
    header_row, cols = _locate_header(raw, csv_path)
    base = csv_path.parent
    default_dataset = dataset or DEFAULT_DATASET

    errors: list[str] = []
    problems: list[str] = []
    rows: list[dict] = []
    for i in range(header_row + 1, len(raw)):
        line = raw.iloc[i]
        cells = {name: line.iloc[j] for name, j in cols.items()}
        if all(is_blank(v) for v in cells.values()):
            continue
        file_row = i + 1
        clip = cell_text(cells["clip"])
        where = f"{csv_path.name} row {file_row} ({clip or 'no clip name'})"
        try:
            row = _read_row(cells, where, base=base, dataset=default_dataset, fps=fps,
                            camera=camera)  # fmt: skip
        except (SchemaError, ValueError) as err:
            errors.append(str(err))
            continue
        problem = row.pop("_problem", None)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        row["list_row"] = file_row
        rows.append(row)
    if errors:
        more = f"\n  (+{len(errors) - 20} more)" if len(errors) > 20 else ""
        raise SchemaError(
            f"{csv_path}: {len(errors)} bad row(s)\n  " + "\n  ".join(errors[:20]) + more
        )
    report(problems, what=f"clips of {csv_path.name} missing or incomplete", missing=missing)
    table = pd.DataFrame.from_records(rows) if rows else empty_table()
    table = validate(table, check_frames=False, source=str(csv_path))
    if "list_row" in table.columns:
        table["list_row"] = table["list_row"].astype("int64")
    table.attrs["source"] = str(csv_path)
    table.attrs["encoding"] = used
    log.info("%s: %d clips loaded (%s)", csv_path.name, len(table), used)
    return table


def _locate_header(raw: pd.DataFrame, path: Path) -> tuple[int, dict[str, int]]:
    """The header row (first of 30 naming every required column) and its column map."""
    best: tuple[int, int, list] = (-1, -1, [])
    for i in range(min(len(raw), 30)):
        header = raw.iloc[i].tolist()
        normed = {norm_header(v) for v in header if not is_blank(v)}
        known = [c for c, names in COLUMN_ALIASES.items() if normed & set(names)]
        if all(c in known for c in REQUIRED_COLUMNS):
            return i, map_columns(header, COLUMN_ALIASES, where=f"{path} row {i + 1}")
        if len(known) > best[1]:
            best = (i, len(known), header)
    if best[1] >= 2:
        absent = [
            c
            for c in REQUIRED_COLUMNS
            if not {norm_header(v) for v in best[2] if not is_blank(v)} & set(COLUMN_ALIASES[c])
        ]
        shown = [str(h) for h in best[2] if not is_blank(h)]
        raise SchemaError(
            f"{path}: header row {best[0] + 1} lacks columns {absent}; found {shown} "
            "(accepted names: merkit.data.adapters.folder.COLUMN_ALIASES)"
        )
    raise SchemaError(
        f"{path}: no header row naming the columns {list(REQUIRED_COLUMNS)} in the first 30 rows"
    )


def _read_row(
    cells: dict, where: str, *, base: Path, dataset: str, fps: float | None, camera: str
) -> dict:
    clip = cell_text(cells["clip"])
    subject = cell_text(cells["subject"])
    if not clip:
        raise SchemaError(f"{where}: clip name is empty")
    if not subject:
        raise SchemaError(f"{where}: subject is empty")
    if "/" in subject:
        raise SchemaError(f"{where}: subject {subject!r} must not contain '/'")
    ds = cell_text(cells.get("dataset")) or dataset
    label = cell_text(cells["label"]).lower()
    if not label:
        raise SchemaError(f"{where}: label is empty")
    onset = frame_value(cells["onset"], "onset", where)
    offset = frame_value(cells["offset"], "offset", where)
    apex = frame_value(cells.get("apex"), "apex", where, allow_missing=True)
    aus, sides, intens = parse_aus(cells.get("aus"), where) if "aus" in cells else ((), (), ())
    row_fps = None if is_blank(cells.get("fps")) else _positive_fps(cells["fps"], where)
    cam = cell_text(cells.get("camera")) or camera
    text = cell_text(cells["path"])
    if not text:
        raise SchemaError(f"{where}: path is empty")
    path = Path(text)
    path = path if path.is_absolute() else base / path
    record = {
        "dataset": ds,
        "subject": f"{ds}/{subject}",
        "clip": clip,
        "frames_dir": None,
        "video_path": None,
        "fps": row_fps if row_fps is not None else fps,
        "onset": onset,
        "apex": apex,
        "offset": offset,
        "emotion": label,
        "aus": aus,
        "au_sides": sides,
        "au_intensities": intens,
        "camera": cam,
    }
    if path.is_dir():
        nums = frame_numbers(path)
        record["frames_dir"] = str(path)
        record["n_frames"] = int(nums.size)
        if nums.size == 0:
            record["_problem"] = f"no numbered frame images ({', '.join(FRAME_SUFFIXES)}) in {path}"
        else:
            problem = clip_frames_problem(nums, onset, offset, path)
            if problem:
                record["_problem"] = problem
    elif path.is_file():
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            kinds = ", ".join(VIDEO_SUFFIXES)
            raise SchemaError(f"{where}: {path} is neither a frame folder nor a video ({kinds})")
        n, rate = video_info(path)
        record["video_path"] = str(path)
        record["n_frames"] = n
        if record["fps"] is None:
            record["fps"] = rate
        if onset < 1:
            raise SchemaError(f"{where}: onset {onset} of a video must be >= 1 (1-based frames)")
        if offset > n:
            record["_problem"] = f"offset {offset} is past the last frame {n} of {path}"
    else:
        record["n_frames"] = 0
        record["_problem"] = f"{path} does not exist"
    if record["fps"] is None:
        raise SchemaError(f"{where}: no frame rate (add an fps column or pass fps=)")
    if onset > offset:
        raise SchemaError(f"{where}: onset {onset} after offset {offset}")
    if apex is not pd.NA and not onset <= apex <= offset:
        raise SchemaError(f"{where}: apex {apex} outside [onset {onset}, offset {offset}]")
    return record
