"""CASME I (Yan et al., 'CASME database: a dataset of spontaneous micro-expressions
collected from neutralized faces', FG 2013, doi:10.1109/FG.2013.6553799).

Layout read here::

    <root>/CASME/                      (or CASME1/, or the CASME folder itself)
        CASME-coding.xlsx              coding sheet (any CASME-coding*.xlsx; last by name)
        Cropped/sub01/EP01_5/img12.jpg ...   sub<NN>/<Filename>/<frame files>

The frame folder is the first of :data:`FRAME_DIRS` that exists (``frames=`` overrides).
The frame number of a file is the last group of digits of its name (``img12.jpg``,
``reg_EP01_5-12.jpg`` -> 12), and OnsetF / ApexF1 / OffsetF of the sheet are these numbers.

The sheet's columns (as meb reads them): Subject (a number), Filename, a blank column,
OnsetF, ApexF1, ApexF2, OffsetF, a blank column, the AUs and Emotion. Headers are matched
by name, so the blank columns and their order do not matter; ApexF2 (a second apex coded
for a few clips) is not read, ApexF1 is the apex.

One row per sheet line: dataset ``"CASME1"``, subject ``"CASME1/01"``, clip = Filename,
fps 60 (both CASME I cameras film at 60 fps), camera ``"colour"``, emotion = Emotion lower
case (tense, repression, disgust, surprise, happiness, fear, sadness, contempt), AUs by
:func:`merkit.data.labels.parse_aus`. ApexF1 ``/``, ``-``, ``?`` or blank gives a missing
apex with a warning. The corrections of ``fixes.toml`` for ``"CASME1"`` are applied unless
``fixes=False``: meb's five corrections by sheet row, each only when the clip's frame folder
confirms it (see :func:`load_casme1` and docs/databases.md).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

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
    frames_folder,
    given_file,
    records_table,
    sample_table,
    sheet_frame_value,
    subject_number,
)
from merkit.data.adapters.samm import last_number_frames
from merkit.data.fixes import apply_fixes, apply_row_fixes, check_fix_mode
from merkit.data.schema import SchemaError, validate

log = logging.getLogger(__name__)

DATASET = "CASME1"
FPS = 60.0
CAMERA = "colour"
SHEET_PATTERN = re.compile(r"^CASME-coding.*\.xlsx$", re.IGNORECASE)
#: database folder names tried below the data root, in order
FOLDER_NAMES: tuple[str, ...] = ("CASME", "CASME1")
#: frame folders tried in this order
FRAME_DIRS: tuple[str, ...] = ("Cropped", "CASME_Cropped", "CASME_raw_selected", "CASME_RAW")
#: header reduced to ASCII letters (``ApexF1`` -> ``apexf``) -> value name of the rows; the
#: first ``apexf`` column (ApexF1) is read, the AU column may be named AU, AUs or Action Units
HEADERS: dict[str, str] = {
    "subject": "subject",
    "filename": "clip",
    "onsetf": "onset",
    "apexf": "apex",
    "offsetf": "offset",
    "au": "aus_text",
    "aus": "aus_text",
    "actionunits": "aus_text",
    "emotion": "emotion",
}
REQUIRED_HEADERS = ("subject", "filename", "onsetf", "apexf", "offsetf", "emotion")
_AU_HEADERS = ("au", "aus", "actionunits")
_SUBJECT_DIR = re.compile(r"^sub\d+$", re.IGNORECASE)


def _sheets_in(folder: Path) -> list[Path]:
    return files_matching(folder, SHEET_PATTERN)


def _holds_data(folder: Path) -> bool:
    """A coding sheet in ``folder``, or a frame folder of :data:`FRAME_DIRS` when the folder
    is named like a CASME I folder (a CASME II folder also holds ``Cropped/``)."""
    if _sheets_in(folder):
        return True
    named = folder.name.lower() in {n.lower() for n in FOLDER_NAMES}
    return named and any(child_dir(folder, d) is not None for d in FRAME_DIRS)


def find_root(root: str | Path) -> Path:
    """The CASME I folder: ``<root>/CASME`` or ``<root>/CASME1`` if it exists, else
    ``root`` if it holds a coding sheet; :class:`FileNotFoundError`
    naming the expected layout otherwise."""
    return find_database_dir(
        root,
        "CASME I",
        FOLDER_NAMES,
        _holds_data,
        "or a coding sheet CASME-coding*.xlsx and Cropped/sub01/... in {root}",
    )


def discover(root: str | Path) -> list[str]:
    """``["CASME1"]`` if a CASME I coding sheet or frame folder is under ``root``, else
    ``[]`` (a frame folder without its sheet counts: loading then names what is missing)."""
    return [DATASET] if found_in(find_root, root, _holds_data) else []


def find_sheet(casme_dir: Path, sheet: str | Path | None = None) -> Path:
    """The coding sheet: ``sheet`` if given (absolute or relative to the CASME folder), else
    the ``CASME-coding*.xlsx`` in the folder (the last by name among several)."""
    if sheet is not None:
        return given_file(sheet, casme_dir, "CASME I coding sheet")
    sheets = _sheets_in(casme_dir)
    if not sheets:
        raise FileNotFoundError(f"no CASME I coding sheet CASME-coding*.xlsx in {casme_dir}")
    if len(sheets) > 1:
        log.info(
            "CASME I: %d coding sheets in %s, using %s (pass sheet= to choose)",
            len(sheets),
            casme_dir,
            sheets[-1].name,
        )
    return sheets[-1]


def read_casme1_sheet(path: str | Path) -> pd.DataFrame:
    """Read a CASME I coding sheet into tidy columns.

    Returns
    -------
    DataFrame
        ``subject`` (2-digit str), ``clip``, ``onset``, ``apex`` (``pd.NA`` if ApexF1 is
        ``/``, ``-``, ``?`` or blank), ``offset``, ``emotion`` (lower case), ``aus``,
        ``au_sides``, ``au_intensities`` and ``sheet_row`` (1-based Excel row).

    Raises
    ------
    SchemaError
        ``"<sheet> row <n> (<clip>): ..."`` for an unreadable cell, or naming the sheet
        when the header row or the AU column is missing, or the sheet has no clips.
    """
    path = Path(path)
    rows, used_sheet, header_row = coding_sheet_rows(
        path,
        HEADERS,
        ("subject", "filename", "onsetf"),
        anchor_text="'Subject', 'Filename' and 'OnsetF'",
        required=REQUIRED_HEADERS,
    )
    log.debug("CASME I: header at row %d of sheet %r in %s", header_row + 1, used_sheet, path.name)
    records = []
    for excel_row, vals in rows:
        if "aus_text" not in vals:
            raise SchemaError(
                f"{path} sheet {used_sheet!r}: no AU column (a header AU, AUs or Action Units)"
            )
        clip = "" if pd.isna(vals["clip"]) else str(vals["clip"]).strip()
        where = f"{path.name} row {excel_row} ({clip or 'no Filename'})"
        if not clip:
            raise SchemaError(f"{where}: Filename is empty; fill it or delete the row")
        subject = f"{subject_number(vals['subject'], where, prefixes=('sub',)):02d}"
        where = f"{path.name} row {excel_row} (sub{subject}/{clip})"
        apex = sheet_frame_value(vals["apex"], "ApexF1", where, allow_missing=True)
        if apex is pd.NA:
            log.warning("%s: ApexF1 %r -> apex missing (clip kept)", where, vals["apex"])
        emotion = vals["emotion"]
        if pd.isna(emotion) or not str(emotion).strip():
            raise SchemaError(f"{where}: Emotion is empty; fill it or delete the row")
        records.append(
            {
                "subject": subject,
                "clip": clip,
                "onset": sheet_frame_value(vals["onset"], "OnsetF", where, allow_missing=False),
                "apex": apex,
                "offset": sheet_frame_value(vals["offset"], "OffsetF", where, allow_missing=False),
                "emotion": str(emotion).strip().lower(),
                **au_columns(vals["aus_text"], where),
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the coding sheet has no clips")
    log.info("CASME I: %d clips in %s", len(table), path.name)
    return table


def load_casme1(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    missing: str = "raise",
    fixes: bool = True,
) -> pd.DataFrame:
    """Load CASME I as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``CASME/`` (or ``CASME1/``), or the CASME folder itself.
    sheet : path, optional
        Coding sheet to use (default: the ``CASME-coding*.xlsx`` in the CASME folder).
    frames : path, optional
        Frame folder holding ``sub<NN>/<Filename>/`` (a relative path is taken inside the
        CASME folder; default: the first of :data:`FRAME_DIRS` that exists).
    missing : {"raise", "skip"}
        A clip whose frames do not cover ``[onset, offset]`` on disk raises a
        :class:`~merkit.data.schema.SchemaError` naming the clip and the missing frames,
        or (``"skip"``) is left out with a warning.
    fixes : bool or "all"
        ``True``: apply the known corrections of ``fixes.toml`` for ``"CASME1"`` before
        validating: the clip-keyed ``[[fix]]`` entries, and the positional ``[[row_fix]]``
        ones (meb's corrections of sheet rows 40, 42, 43, 54, 140) only where the row's
        values disagree with the clip's frame folder and the corrected ones agree with it
        (:func:`merkit.data.fixes.apply_row_fixes`); each applied fix is logged naming the
        clip, each refused one with a warning saying why. ``"all"``: the same (CASME I has
        no opt-in fix). ``False``: validate the sheet as distributed.

    Returns
    -------
    DataFrame
        Sample table (see :mod:`merkit.data.schema`); ``n_frames`` counts the frames in
        the clip folder. ``attrs["source"]`` is the sheet, ``attrs["fixes_applied"]`` the
        applied fixes.

    Raises
    ------
    SchemaError
        For an unreadable cell (naming the sheet row and clip), an invalid table (e.g.
        apex outside [onset, offset], naming the clips) or missing frames.
    FileNotFoundError
        When no CASME I folder, sheet or frame folder is found.
    """
    check_missing_policy(missing)
    casme_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(casme_dir, sheet)
    frames_root = frames_folder(
        casme_dir, frames, FRAME_DIRS, "CASME I", "sub<NN>/<Filename>/<frame files>"
    )
    check_fix_mode(fixes)
    coded = read_casme1_sheet(sheet_path)
    table = sample_table(coded, DATASET, fps=FPS, camera=CAMERA)

    def folder_of(subject: str, clip: str) -> Path:
        sid = subject.split("/", 1)[1]
        return (child_dir(frames_root, f"sub{sid}") or frames_root / f"sub{sid}") / clip

    if fixes:
        # meb's corrections by sheet row, each checked against the clip's frame folder
        table = apply_row_fixes(
            table,
            DATASET,
            frames=lambda i: last_number_frames(
                folder_of(table["subject"].iloc[i], table["clip"].iloc[i])
            ),
            opt_in=fixes == "all",
            source=sheet_path,
        )
        table = apply_fixes(table, DATASET, source=sheet_path)
    applied = table.attrs.get("fixes_applied", [])
    # the sheet's own errors first (apex outside the clip...), before looking at frames
    validate(table, check_frames=False, source=str(sheet_path))
    clips = []
    for r in table.itertuples(index=False):
        sid = r.subject.split("/", 1)[1]
        clips.append((f"sub{sid}/{r.clip}", folder_of(r.subject, r.clip), r.onset, r.offset))
    what = f"CASME I frames missing under {frames_root}"
    table = attach_frames(table, clips, what=what, missing=missing, lister=last_number_frames)
    table = final_table(table, sheet_path, applied)
    log.info("CASME I: %d clips loaded from %s", len(table), casme_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_casme1},
    discover=discover,
    layout="CASME/ with a coding sheet CASME-coding*.xlsx",
)
