"""CAS(ME)^3 (Li et al., 'CAS(ME)^3: a third generation facial spontaneous
micro-expression database with depth information and high ecological validity',
IEEE TPAMI 2023, doi:10.1109/TPAMI.2022.3174895): micro-expressions of part A and part C.

Layout read here (the release's; the authors' own lists of damaged / poor frames name
``<subject>/<task>/color/<n>.jpg``)::

    <root>/CASME3/                                (or CAS(ME)3/, CAS(ME)^3/, or the folder itself)
        cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (also found in annotation/, part_A/annotation/)
        CAS(ME)3_part_C_ME.xlsx
        part_A/data/part_A/spNO.1/a/color/355.jpg ...   part A: <subject>/<Filename>/color/<n>.jpg
                                 .../a/depth/355.png     (depth, recorded as ``depth_dir``)
        part_C/01/a/color/373.jpg ...                   part C: <subject>/a/color/<n>.jpg

Each part-A subject has one long video per elicitation task (Filename ``a`` .. ``m``) and
each part-C subject one mock-crime video; onset/apex/offset are frame numbers of those
videos (``<n>.jpg``), so a clip is the range onset..offset of its video's frame folder.
The frame tree is found among :data:`FRAME_DIRS_A` / :data:`FRAME_DIRS_C` (``frames=``
overrides) and the folder of a clip is ``frames_pattern`` inside it (folder names matched
ignoring case: the sheet writes ``J`` for spNO.14's task ``j``; part-C subject folders
may be written ``01`` or ``1``).

Part A (``load_casme3_a``): dataset ``"CASME3_A"``, subject ``"CASME3_A/spNO.1"``, fps 30,
camera ``"colour"`` (the colour stream of the RGB-D camera), emotion = the sheet's
``emotion`` lower case (``Others`` -> ``others``), AUs parsed from ``R12``, ``T28+14``,
``13?`` ..., ``objective_class`` = the Roman "Objective class" as Int64 1..7. A task video
holds several micro-expressions, so the clip id is ``"<filename>_<onset>"`` (``"e_62"``,
``"e_96"``; the task letter lower case), unique in the sheet; ``filename`` keeps the
sheet's Filename. The 4 known errors of the official v2 sheet are corrected from
``fixes.toml`` unless ``fixes=False`` (the id is derived again after a fix of the onset).

Part C (``load_casme3_c``): dataset ``"CASME3_C"``, subject ``"CASME3_C/01"``, clip
``"01_3"`` (subject and the sheet's ``count``), no apex in the sheet (``pd.NA``), AUs
written with commas (``R4,5``, full-width ``，``, trailing commas), emotion =
negative / positive / surprise / others.

``n_frames`` is the number of frames of ``[onset, offset]`` on disk (the folder holds the
whole video).
"""

from __future__ import annotations

import logging
import re
import string
from pathlib import Path

import pandas as pd

from merkit.data.adapters._common import (
    AdapterSpec,
    attach_frames,
    au_columns,
    cell_text,
    check_missing_policy,
    child_dir,
    coding_sheet_rows,
    database_dir,
    final_table,
    find_database_dir,
    frames_folder,
    given_file,
    records_table,
    resolve_dir,
    sample_table,
    sheet_frame_value,
)
from merkit.data.fixes import apply_fixes
from merkit.data.schema import SchemaError, validate

log = logging.getLogger(__name__)

FPS = 30.0
CAMERA = "colour"
DATASET_A = "CASME3_A"
DATASET_C = "CASME3_C"
#: names of the database folder under a data root (matched ignoring case)
ROOT_NAMES: tuple[str, ...] = ("CASME3", "CAS(ME)3", "CAS(ME)^3", "CASME^3")
#: folders (inside the database folder) searched for the annotation sheets
SHEET_DIRS: tuple[str, ...] = ("", "annotation", "annotations", "part_A/annotation",
                               "part_A", "part_C", "part_C/annotation")  # fmt: skip
SHEET_A = re.compile(r"^cas\(me\)\^?3_part_A_ME_label.*\.xlsx?$", re.IGNORECASE)
SHEET_C = re.compile(r"^cas\(me\)\^?3_part_C_ME.*\.xlsx?$", re.IGNORECASE)
#: frame trees tried in this order (relative to the database folder)
FRAME_DIRS_A: tuple[str, ...] = (
    "part_A/data/part_A",
    "part_A/data/part_A_split/part_A",
    "data/part_A",
    "part_A",
)
FRAME_DIRS_C: tuple[str, ...] = (
    "part_C/data/part_C",
    "part_C/RGB_Depth/part_C/part_C",
    "part_C/part_C",
    "part_C",
)
#: clip folder inside the frame tree; fields {subject} and {filename} (part A) or
#: {subject} (part C, tried as "01", "1" and "001")
#: file names of the official sheets (for messages)
SHEET_NAMES: dict[str, str] = {
    "A": "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx",
    "C": "CAS(ME)3_part_C_ME.xlsx",
}
FRAMES_PATTERN_A = "{subject}/{filename}/color"
FRAMES_PATTERN_C = "{subject}/a/color"

HEADERS_A: dict[str, str] = {
    "subject": "subject",
    "filename": "filename",
    "onset": "onset",
    "apex": "apex",
    "offset": "offset",
    "au": "aus_text",
    "objectiveclass": "objective_class",
    "emotion": "emotion",
}
HEADERS_C: dict[str, str] = {
    "sub": "subject",
    "count": "count",
    "onset": "onset",
    "offset": "offset",
    "au": "aus_text",
    "emotion": "emotion",
}
ROMAN: dict[str, int] = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7}
_SUBJECT_A = re.compile(r"^spNO\.(\d+)$", re.IGNORECASE)


def find_root(root: str | Path) -> Path:
    """The CAS(ME)^3 folder: ``<root>/CASME3`` (or another of :data:`ROOT_NAMES`) if it
    exists, else ``root`` if it holds a part A/C sheet or a ``part_A`` / ``part_C`` folder;
    :class:`FileNotFoundError` naming the expected layout otherwise."""
    return find_database_dir(
        root,
        "CAS(ME)^3",
        ROOT_NAMES,
        lambda folder: bool(
            _sheets(folder, SHEET_A)
            or _sheets(folder, SHEET_C)
            or child_dir(folder, "part_A") is not None
            or child_dir(folder, "part_C") is not None
        ),
        "or the sheets cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx / CAS(ME)3_part_C_ME.xlsx and "
        "part_A/ or part_C/ in {root}",
    )


def _sheets(folder: Path, pattern: re.Pattern) -> list[Path]:
    found: list[Path] = []
    for rel in SHEET_DIRS:
        d = resolve_dir(folder, rel) if rel else folder
        if d is not None and d.is_dir():
            found += [p for p in d.iterdir() if p.is_file() and pattern.match(p.name)]
    return sorted(set(found))


def discover(root: str | Path) -> list[str]:
    """Parts present under ``root``: ``"CASME3_A"`` if a part-A ME sheet or frame tree
    (:data:`FRAME_DIRS_A`) exists, ``"CASME3_C"`` likewise; ``[]`` if none."""
    try:
        casme3_dir = find_root(root)
    except FileNotFoundError:
        return []
    found = []
    for dataset, pattern, dirs in ((DATASET_A, SHEET_A, FRAME_DIRS_A),
                                   (DATASET_C, SHEET_C, FRAME_DIRS_C)):  # fmt: skip
        if _sheets(casme3_dir, pattern) or any(resolve_dir(casme3_dir, d) for d in dirs):
            found.append(dataset)
    return found


def _check_pattern(pattern: str, fields: tuple[str, ...]) -> None:
    """Reject a ``frames_pattern`` with fields other than ``fields``."""
    used = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
    unknown = sorted(used - set(fields))
    if unknown:
        raise ValueError(
            f"frames_pattern {pattern!r} uses unknown field(s) {unknown}; available: "
            + ", ".join("{" + f + "}" for f in fields)
        )


def _sheet_rank(path: Path) -> tuple[int, int, str]:
    m = re.search(r"_v(\d+)", path.stem, re.IGNORECASE)
    version = int(m.group(1)) if m else 0
    corrected = int(bool(re.search(r"correct|refine", path.stem, re.IGNORECASE)))
    return version, corrected, path.name


def find_sheet(casme3_dir: Path, part: str, sheet: str | Path | None = None) -> Path:
    """The ME sheet of part ``"A"`` or ``"C"``: ``sheet`` if given (absolute or relative to
    the database folder), else the sheet found in :data:`SHEET_DIRS` (part A: highest
    ``_v<N>``, a ``_corrected`` copy before the plain one)."""
    what = f"CAS(ME)^3 part {part} ME sheet"
    if sheet is not None:
        return given_file(sheet, casme3_dir, what)
    pattern = SHEET_A if part == "A" else SHEET_C
    sheets = sorted(_sheets(casme3_dir, pattern), key=_sheet_rank)
    if not sheets:
        name = SHEET_NAMES[part]
        raise FileNotFoundError(
            f"no {what} ({name}) in {casme3_dir} or its folders {[d for d in SHEET_DIRS if d]}"
        )
    if len(sheets) > 1:
        log.info(
            "CAS(ME)^3: %d part %s sheets, using %s (pass sheet= to choose)",
            len(sheets),
            part,
            sheets[-1],
        )
    return sheets[-1]


def _read_headed(
    path: Path, headers: dict[str, str], required: tuple[str, ...]
) -> tuple[list[tuple[int, dict]], str]:
    """(rows, sheet name) of the first sheet whose first rows hold all ``required`` header
    names (:func:`~merkit.data.adapters._common.coding_sheet_rows`)."""
    rows, sheet_name, _ = coding_sheet_rows(
        path, headers, required, anchor_text=f"columns {list(required)}"
    )
    return rows, sheet_name


def casme3_a_clip_id(filename: str, onset: int) -> str:
    """Clip id of a part-A micro-expression: ``("e", 96)`` -> ``"e_96"`` (task lower case)."""
    return f"{str(filename).strip().lower()}_{int(onset)}"


def read_part_a_sheet(path: str | Path) -> pd.DataFrame:
    """Read the part-A ME sheet (``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``).

    Returns
    -------
    DataFrame
        ``subject`` (``"spNO.1"``), ``filename`` (as written), ``clip``
        (:func:`casme3_a_clip_id`), ``onset``, ``apex``, ``offset`` (int; cells may be text),
        ``emotion`` (lower case), ``aus``, ``au_sides``, ``au_intensities``,
        ``objective_class`` (Int64 from I..VII) and ``sheet_row`` (1-based Excel row).
    """
    path = Path(path)
    required = ("subject", "filename", "onset", "apex", "offset", "au", "emotion")
    rows, sheet_name = _read_headed(path, HEADERS_A, required)
    records = []
    for excel_row, vals in rows:
        subject = cell_text(vals["subject"])
        filename = cell_text(vals["filename"])
        where = f"{path.name} row {excel_row} ({subject}/{filename})"
        m = _SUBJECT_A.match(subject)
        if not m:
            raise SchemaError(f"{where}: Subject {subject!r} is not like 'spNO.1'")
        subject = f"spNO.{int(m.group(1))}"
        if not re.fullmatch(r"[A-Za-z]", filename):
            raise SchemaError(f"{where}: Filename {filename!r} is not a task letter a..m")
        onset = sheet_frame_value(vals["onset"], "Onset", where, allow_missing=False)
        apex = sheet_frame_value(vals["apex"], "Apex", where, allow_missing=True)
        offset = sheet_frame_value(vals["offset"], "Offset", where, allow_missing=False)
        where = f"{path.name} row {excel_row} ({subject}/{casme3_a_clip_id(filename, onset)})"
        if apex is pd.NA:
            log.warning("%s: Apex %r -> apex missing (clip kept)", where, vals["apex"])
        emotion = cell_text(vals["emotion"])
        if not emotion:
            raise SchemaError(f"{where}: emotion is empty")
        au = au_columns(vals["aus_text"], where)
        obj = cell_text(vals.get("objective_class")).upper()
        if obj and obj not in ROMAN and not obj.isdigit():
            raise SchemaError(f"{where}: Objective class {obj!r} is not one of I..VII")
        records.append(
            {
                "subject": subject,
                "filename": filename,
                "clip": casme3_a_clip_id(filename, onset),
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "emotion": emotion.lower(),
                **au,
                "objective_class": ROMAN.get(obj, int(obj) if obj.isdigit() else pd.NA),
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the part A sheet has no clips", ["objective_class"])
    log.info("CAS(ME)^3 part A: %d clips in %s (sheet %r)", len(table), path.name, sheet_name)
    return table


def read_part_c_sheet(path: str | Path) -> pd.DataFrame:
    """Read the part-C ME sheet (``CAS(ME)3_part_C_ME.xlsx``: sub, count, onset, offset,
    au, emotion; no apex).

    Returns
    -------
    DataFrame
        ``subject`` (2-digit str), ``count`` (int), ``clip`` (``"01_3"``), ``onset``,
        ``offset``, ``apex`` (all NA), ``emotion``, ``aus``, ``au_sides``, ``au_intensities``
        and ``sheet_row``.
    """
    path = Path(path)
    required = ("sub", "count", "onset", "offset", "au", "emotion")
    rows, sheet_name = _read_headed(path, HEADERS_C, required)
    records = []
    for excel_row, vals in rows:
        where = f"{path.name} row {excel_row}"
        sub = sheet_frame_value(vals["subject"], "sub", where, allow_missing=False)
        count = sheet_frame_value(vals["count"], "count", where, allow_missing=False)
        subject = f"{sub:02d}"
        clip = f"{subject}_{count}"
        where = f"{path.name} row {excel_row} ({clip})"
        emotion = cell_text(vals["emotion"])
        if not emotion:
            raise SchemaError(f"{where}: emotion is empty")
        au = au_columns(vals["aus_text"], where)
        records.append(
            {
                "subject": subject,
                "count": count,
                "clip": clip,
                "onset": sheet_frame_value(vals["onset"], "onset", where, allow_missing=False),
                "apex": pd.NA,
                "offset": sheet_frame_value(vals["offset"], "offset", where, allow_missing=False),
                "emotion": emotion.lower(),
                **au,
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the part C sheet has no clips")
    log.info("CAS(ME)^3 part C: %d clips in %s (sheet %r)", len(table), path.name, sheet_name)
    return table


def _frames_root(
    casme3_dir: Path,
    frames: str | Path | None,
    candidates: tuple[str, ...],
    part: str,
    pattern: str,
) -> Path:
    what = f"CAS(ME)^3 part {part}"
    holding = f"{pattern}/<n>.jpg (or pass frames=)"
    return frames_folder(casme3_dir, frames, candidates, what, holding)


def _clip_folder(frames_root: Path, pattern: str, fields_options: list[dict]) -> Path:
    """First existing folder of ``pattern`` over the field options (case-insensitive);
    the first option's spelling when none exists."""
    for fields in fields_options:
        p = resolve_dir(frames_root, pattern.format(**fields))
        if p is not None:
            return p
    return frames_root / pattern.format(**fields_options[0])


def _check_frames(
    table: pd.DataFrame, folders: list[Path], name: str, frames_root: Path, missing: str
) -> pd.DataFrame:
    """Fill ``frames_dir``, ``depth_dir``, ``n_frames``; drop or report incomplete clips."""
    table = table.copy()
    table["depth_dir"] = [
        str(f.parent / "depth") if (f.parent / "depth").is_dir() else None for f in folders
    ]
    clips = [
        (f"{r.subject.split('/', 1)[1]}/{r.clip}", folder, int(r.onset), int(r.offset))
        for r, folder in zip(table.itertuples(index=False), folders, strict=True)
    ]
    return attach_frames(
        table,
        clips,
        what=f"{name} frames missing under {frames_root}",
        missing=missing,
        on_disk="video frames on disk",
        in_range=True,
        cache=True,
    )


def _base_table(coded: pd.DataFrame, dataset: str) -> pd.DataFrame:
    return sample_table(coded, dataset, fps=FPS, camera=CAMERA)


def load_casme3_a(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    frames_pattern: str = FRAMES_PATTERN_A,
    missing: str = "raise",
    fixes: bool = True,
) -> pd.DataFrame:
    """Load the micro-expressions of CAS(ME)^3 part A as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``CASME3/`` (or ``CAS(ME)3/``...), or that folder itself.
    sheet : path, optional
        ME sheet (default: ``cas(me)3_part_A_ME_label*.xlsx``, see :func:`find_sheet`).
    frames : path, optional
        Frame tree (relative paths are taken inside the database folder; default: the first
        of :data:`FRAME_DIRS_A` that exists).
    frames_pattern : str
        Clip video folder inside the frame tree, with fields ``{subject}`` (``spNO.1``) and
        ``{filename}`` (default ``"{subject}/{filename}/color"``).
    missing : {"raise", "skip"}
        A clip whose frames ``onset..offset`` are not all on disk raises a
        :class:`~merkit.data.schema.SchemaError` naming it, or (``"skip"``) is left out.
    fixes : bool
        Apply the known corrections of ``fixes.toml`` (logged one per line); ``False``
        validates the sheet as distributed.

    Returns
    -------
    DataFrame
        Sample table plus ``filename``, ``objective_class`` and ``depth_dir`` (the depth
        frames next to ``color/``, ``None`` if absent). ``attrs``: ``source``,
        ``fixes_applied``.
    """
    check_missing_policy(missing)
    _check_pattern(frames_pattern, ("subject", "filename"))
    casme3_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(casme3_dir, "A", sheet)
    frames_root = _frames_root(casme3_dir, frames, FRAME_DIRS_A, "A", frames_pattern)
    coded = read_part_a_sheet(sheet_path)
    table = _base_table(coded, DATASET_A)
    table["filename"] = coded["filename"]
    table["objective_class"] = coded["objective_class"]
    if fixes:
        table = apply_fixes(table, DATASET_A, source=sheet_path)
        renamed = [
            casme3_a_clip_id(f, o) for f, o in zip(table["filename"], table["onset"], strict=True)
        ]
        for old, new, s in zip(table["clip"], renamed, table["subject"], strict=True):
            if old != new:
                log.info("%s/%s: clip id is now %s (onset fixed)", s, old, new)
        table["clip"] = renamed
    applied = table.attrs.get("fixes_applied", [])
    validate(table, check_frames=False, source=str(sheet_path))

    folders = [
        _clip_folder(frames_root, frames_pattern, [{"subject": s.split("/", 1)[1], "filename": f}])
        for s, f in zip(table["subject"], table["filename"], strict=True)
    ]
    table = _check_frames(table, folders, "CAS(ME)^3 part A", frames_root, missing)
    table = final_table(table, sheet_path, applied)
    log.info("CAS(ME)^3 part A: %d clips loaded from %s", len(table), casme3_dir)
    return table


def load_casme3_c(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    frames_pattern: str = FRAMES_PATTERN_C,
    missing: str = "raise",
    fixes: bool = True,
) -> pd.DataFrame:
    """Load the micro-expressions of CAS(ME)^3 part C (mock crime) as a Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``CASME3/`` (or ``CAS(ME)3/``...), or that folder itself.
    sheet : path, optional
        ME sheet (default: ``CAS(ME)3_part_C_ME*.xlsx``).
    frames : path, optional
        Frame tree (default: the first of :data:`FRAME_DIRS_C` that exists).
    frames_pattern : str
        Video folder of a subject inside the frame tree, field ``{subject}`` (tried as
        ``01``, ``1`` and ``001``; default ``"{subject}/a/color"``).
    missing : {"raise", "skip"}
        As in :func:`load_casme3_a`.
    fixes : bool
        Apply the known corrections of ``fixes.toml`` (none listed for part C today).

    Returns
    -------
    DataFrame
        Sample table (apex NA) plus ``count`` and ``depth_dir``.
    """
    check_missing_policy(missing)
    _check_pattern(frames_pattern, ("subject",))
    casme3_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(casme3_dir, "C", sheet)
    frames_root = _frames_root(casme3_dir, frames, FRAME_DIRS_C, "C", frames_pattern)
    coded = read_part_c_sheet(sheet_path)
    table = _base_table(coded, DATASET_C)
    table["count"] = coded["count"]
    if fixes:
        table = apply_fixes(table, DATASET_C, source=sheet_path)
    applied = table.attrs.get("fixes_applied", [])
    validate(table, check_frames=False, source=str(sheet_path))
    folders = []
    for s in table["subject"]:
        n = int(s.split("/", 1)[1])
        options = [{"subject": f"{n:02d}"}, {"subject": str(n)}, {"subject": f"{n:03d}"}]
        folders.append(_clip_folder(frames_root, frames_pattern, options))
    table = _check_frames(table, folders, "CAS(ME)^3 part C", frames_root, missing)
    table = final_table(table, sheet_path, applied)
    log.info("CAS(ME)^3 part C: %d clips loaded from %s", len(table), casme3_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET_A: load_casme3_a, DATASET_C: load_casme3_c},
    discover=discover,
    layout="a CAS(ME)^3 part A/C sheet or frame tree",
)
