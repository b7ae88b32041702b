"""SAMM (Davison et al., 'SAMM: a spontaneous micro-facial movement dataset',
IEEE TAC 2018, doi:10.1109/TAFFC.2016.2573832): the micro-movement clips.

Layout read here::

    <root>/SAMM/                              (or the SAMM folder itself)
        SAMM_Micro_FACS_Codes_v2.xlsx         coding sheet (sheet MICRO_ONLY)
        006/006_1_2/006_05562.jpg ...         <subject>/<Filename>/<subject>_<frame>.jpg

The frame number is the last group of digits of a file name (``006_05562.jpg`` -> 5562);
Onset/Apex/Offset Frame of the sheet are these native numbers. ``frames=`` points to
another frame tree with the same ``<subject>/<Filename>/`` layout (e.g. a cropped copy).

One row per sheet line: dataset ``"SAMM"``, subject ``"SAMM/006"`` (the sheet's Subject,
three digits, also when a reader turned it into the number 6), clip = Filename, fps 200,
camera ``"grey"`` (SAMM was filmed with one greyscale high-speed camera at 200 fps; the
name says what kind of image it is, like ``"colour"`` for CASME II), emotion = "Estimated
Emotion" lower case (``"other"`` as in the sheet), AUs by
:func:`merkit.data.labels.parse_aus` (``or`` alternatives kept as their union, logged),
plus ``objective_class`` (Int64, "Objective Classes" 1..7) and ``inducement_code`` (Int64).

Known quirks handled: the header row is found by its names below a preamble of notes
(13 rows in v2); a Duration that disagrees with offset - onset + 1 is logged; the known
errors of the originally distributed v2 sheet (apex outside [onset, offset] for 028_4_1
and 032_3_1) are corrected from ``fixes.toml`` unless ``fixes=False``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.data.adapters._common import (
    AdapterSpec,
    attach_frames,
    au_columns,
    check_missing_policy,
    child_dir,
    coding_sheet_rows,
    database_dir,
    files_matching,
    final_table,
    find_database_dir,
    found_in,
    given_dir,
    given_file,
    records_table,
    sample_table,
    sheet_frame_value,
)
from merkit.data.fixes import apply_fixes
from merkit.data.schema import FRAME_SUFFIXES, SchemaError, validate

log = logging.getLogger(__name__)

DATASET = "SAMM"
FPS = 200.0
CAMERA = "grey"
SHEET_PATTERN = re.compile(r"^SAMM_Micro_FACS_Codes.*\.xlsx$", re.IGNORECASE)
#: normalised header -> column of the sheet table
HEADERS: dict[str, str] = {
    "subject": "subject",
    "filename": "clip",
    "inducementcode": "inducement_code",
    "onsetframe": "onset",
    "apexframe": "apex",
    "offsetframe": "offset",
    "duration": "duration",
    "actionunits": "aus_text",
    "estimatedemotion": "emotion",
    "objectiveclasses": "objective_class",
}
REQUIRED_HEADERS = ("subject", "filename", "onsetframe", "apexframe", "offsetframe",
                    "actionunits", "estimatedemotion")  # fmt: skip
_LAST_NUMBER = re.compile(
    r"(\d+)(?:" + "|".join(re.escape(s) for s in FRAME_SUFFIXES) + r")$", re.IGNORECASE
)
_SUBJECT_DIR = re.compile(r"^\d{3}$")


def _sheets_in(folder: Path) -> list[Path]:
    return files_matching(folder, SHEET_PATTERN)


def _holds_data(folder: Path) -> bool:
    """A coding sheet or three-digit subject folders in ``folder``."""
    return bool(_sheets_in(folder)) or any(
        p.is_dir() and _SUBJECT_DIR.match(p.name) for p in folder.iterdir()
    )


def find_root(root: str | Path) -> Path:
    """The SAMM folder: ``<root>/SAMM`` if it exists, else ``root`` if it holds a coding
    sheet or three-digit subject folders; :class:`FileNotFoundError` naming the expected
    layout otherwise."""
    return find_database_dir(
        root,
        DATASET,
        ("SAMM",),
        _holds_data,
        "or the coding sheet SAMM_Micro_FACS_Codes_v2.xlsx and subject folders 006/ ... in {root}",
    )


def discover(root: str | Path) -> list[str]:
    """``["SAMM"]`` if a SAMM coding sheet or subject folders are under ``root``, else ``[]``."""
    return [DATASET] if found_in(find_root, root, _holds_data) else []


def find_sheet(samm_dir: Path, sheet: str | Path | None = None) -> Path:
    """The coding sheet: ``sheet`` if given (absolute or relative to the SAMM folder), else
    the ``SAMM_Micro_FACS_Codes*.xlsx`` in the folder (a name with ``uncorrected`` only if
    it is the only one; the last by name among several)."""
    if sheet is not None:
        return given_file(sheet, samm_dir, "SAMM coding sheet")
    sheets = _sheets_in(samm_dir)
    if not sheets:
        raise FileNotFoundError(f"no SAMM coding sheet SAMM_Micro_FACS_Codes*.xlsx in {samm_dir}")
    preferred = [p for p in sheets if "uncorrected" not in p.name.lower()] or sheets
    if len(sheets) > 1:
        log.info(
            "SAMM: %d coding sheets in %s, using %s (pass sheet= to choose)",
            len(sheets),
            samm_dir,
            preferred[-1].name,
        )
    return preferred[-1]


def samm_subject_id(value: object, where: str = "") -> str:
    """Three-digit SAMM subject: ``"006"``, ``6``, ``6.0``, ``"6"`` -> ``"006"``."""
    text = str(value).strip()
    m = re.fullmatch(r"0*(\d+)(?:\.0+)?", text)
    if not m:
        at = f"{where}: " if where else ""
        raise SchemaError(f"{at}Subject {value!r} is not a SAMM subject number like '006'")
    return f"{int(m.group(1)):03d}"


def read_samm_sheet(path: str | Path) -> pd.DataFrame:
    """Read the SAMM micro-movement coding sheet into tidy columns.

    Returns
    -------
    DataFrame
        ``subject`` (3-digit str), ``clip``, ``onset``, ``apex``, ``offset`` (int; apex
        ``pd.NA`` if the cell is ``/``, ``-`` or ``?``), ``emotion`` (lower case), ``aus``,
        ``au_sides``, ``au_intensities``, ``objective_class`` and ``inducement_code``
        (Int64) and ``sheet_row`` (1-based Excel row).
    """
    path = Path(path)
    rows, used_sheet, header_row = coding_sheet_rows(
        path,
        HEADERS,
        ("subject", "filename", "onsetframe"),
        anchor_text="'Subject', 'Filename' and 'Onset Frame'",
        required=REQUIRED_HEADERS,
        first="microonly",  # the sheet of the micro-movement clips
        limit=40,
    )
    log.debug("SAMM: header at row %d of sheet %r in %s", header_row + 1, used_sheet, path.name)
    records = []
    for excel_row, vals in rows:
        clip = str(vals["clip"]).strip()
        where = f"{path.name} row {excel_row} ({clip})"
        subject = samm_subject_id(vals["subject"], where)
        if not clip.startswith(subject + "_"):
            raise SchemaError(f"{where}: Filename {clip!r} does not start with Subject {subject}_")
        onset = sheet_frame_value(vals["onset"], "Onset Frame", where, allow_missing=False)
        apex = sheet_frame_value(vals["apex"], "Apex Frame", where, allow_missing=True)
        offset = sheet_frame_value(vals["offset"], "Offset Frame", where, allow_missing=False)
        if apex is pd.NA:
            log.warning("%s: Apex Frame %r -> apex missing (clip kept)", where, vals["apex"])
        duration = vals.get("duration")
        if duration is not None and not pd.isna(duration):
            d = sheet_frame_value(duration, "Duration", where, allow_missing=False)
            if d != offset - onset + 1:
                log.warning(
                    "%s: Duration %d != offset - onset + 1 = %d (onset %d, offset %d)",
                    where,
                    d,
                    offset - onset + 1,
                    onset,
                    offset,
                )
        emotion = vals["emotion"]
        if pd.isna(emotion) or not str(emotion).strip():
            raise SchemaError(f"{where}: Estimated Emotion is empty")
        au = au_columns(vals["aus_text"], where)
        extra = {}
        for col, header in (
            ("objective_class", "Objective Classes"),
            ("inducement_code", "Inducement Code"),
        ):
            v = vals.get(col)
            extra[col] = (
                pd.NA
                if v is None or pd.isna(v)
                else sheet_frame_value(v, header, where, allow_missing=False)
            )
        records.append(
            {
                "subject": subject,
                "clip": clip,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "emotion": str(emotion).strip().lower(),
                **au,
                **extra,
                "sheet_row": excel_row,
            }
        )
    table = records_table(
        records, f"{path}: the coding sheet has no clips", ("objective_class", "inducement_code")
    )
    log.info("SAMM: %d clips in %s", len(table), path.name)
    return table


def last_number_frames(folder: Path) -> np.ndarray:
    """Sorted unique frame numbers of the images in ``folder``: the last group of digits
    of each name (``006_05562.jpg`` -> 5562); other files are ignored. Empty if the folder
    does not exist."""
    nums: list[int] = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                m = _LAST_NUMBER.search(entry.name)
                if m and entry.is_file():
                    nums.append(int(m.group(1)))
    except (FileNotFoundError, NotADirectoryError):
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(nums, dtype=np.int64)
    uniq = np.unique(arr)
    if uniq.size != arr.size:
        log.warning(
            "%s: %d frame files share a frame number; counted once", folder, arr.size - uniq.size
        )
    return uniq


def _frames_root(samm_dir: Path, frames: str | Path | None) -> Path:
    if frames is None:
        return samm_dir
    return given_dir(frames, samm_dir, "SAMM frame folder")


def load_samm(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    missing: str = "raise",
    fixes: bool = True,
) -> pd.DataFrame:
    """Load SAMM's micro-movement clips as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``SAMM/``, or the SAMM folder itself.
    sheet : path, optional
        Coding sheet (default: ``SAMM_Micro_FACS_Codes*.xlsx`` in the SAMM folder).
    frames : path, optional
        Frame tree holding ``<subject>/<Filename>/`` (relative paths are taken inside the
        SAMM folder; default: the SAMM folder itself).
    missing : {"raise", "skip"}
        A clip whose frames do not cover ``[onset, offset]`` raises a
        :class:`~merkit.data.schema.SchemaError` naming the clip and the missing frames,
        or (``"skip"``) is left out with a warning.
    fixes : bool
        Apply the known corrections of ``fixes.toml`` (logged one per line) before
        validating; ``False`` validates the sheet as distributed.

    Returns
    -------
    DataFrame
        Sample table plus ``objective_class`` and ``inducement_code``; ``n_frames`` counts
        the frames in the clip folder. ``attrs["source"]`` is the sheet,
        ``attrs["fixes_applied"]`` the applied fixes.

    Raises
    ------
    SchemaError
        For an unreadable cell (naming the sheet row and clip) or an invalid table (e.g.
        apex outside [onset, offset], naming the clips).
    """
    check_missing_policy(missing)
    samm_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(samm_dir, sheet)
    frames_root = _frames_root(samm_dir, frames)
    coded = read_samm_sheet(sheet_path)
    table = sample_table(
        coded, DATASET, fps=FPS, camera=CAMERA, extra=("objective_class", "inducement_code")
    )
    if fixes:
        table = apply_fixes(table, DATASET, source=sheet_path)
    applied = table.attrs.get("fixes_applied", [])
    # the sheet's own errors first (apex outside the clip...), before looking at frames
    validate(table, check_frames=False, source=str(sheet_path))

    clips = []
    for r in table.itertuples(index=False):
        sid = r.subject.split("/", 1)[1]
        folder = (child_dir(frames_root, sid) or frames_root / sid) / r.clip
        clips.append((f"{sid}/{r.clip}", folder, r.onset, r.offset))
    what = f"SAMM frames missing under {frames_root}"
    table = attach_frames(table, clips, what=what, missing=missing, lister=last_number_frames)
    table = final_table(table, sheet_path, applied)
    log.info("SAMM: %d clips loaded from %s", len(table), samm_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_samm},
    discover=discover,
    layout="SAMM/ with SAMM_Micro_FACS_Codes*.xlsx",
)
