"""CASME II (Yan et al. 2014, doi:10.1371/journal.pone.0086041).

Layout read here::

    <root>/CASME2/                     (or the CASME2 folder itself)
        CASME2-coding-20140508.xlsx    coding sheet(s); the newest date in the name wins
        Cropped/sub01/EP02_01f/img46.jpg ...

The frame folder is the first of :data:`FRAME_DIRS` that exists (``frames=`` overrides);
frame files are ``img{N}`` or ``reg_img{N}`` (N = native frame number) with any image
suffix. One row per coding-sheet line: dataset ``"CASME2"``, subject ``"CASME2/01"``,
clip = Filename, fps 200, camera ``"colour"`` (CASME II is a single colour high-speed
camera; the name says what kind of image it is, like ``"nir"`` in SMIC), emotion =
"Estimated Emotion" lower case, AUs parsed by :func:`merkit.data.labels.parse_aus`, and
``objective_class`` (int, the 2019 sheet's "Objective Classes", NA on the 2014 sheet).

Known quirks handled: columns are matched by header name (the sheets have blank unnamed
columns), Subject is text ``'01'`` or a number, ApexFrame ``'/'`` (sub04 EP12_01f) gives
a missing apex with a warning.
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
    final_table,
    find_database_dir,
    found_in,
    frames_folder,
    given_file,
    records_table,
    sample_table,
    sheet_frame_value,
)
from merkit.data.schema import SchemaError

log = logging.getLogger(__name__)

DATASET = "CASME2"
FPS = 200.0
CAMERA = "colour"
SHEET_GLOB = "CASME2-coding-*.xlsx"
#: frame folders tried in this order
FRAME_DIRS: tuple[str, ...] = (
    "Cropped",
    "CASME2_Cropped",
    "CASME2_RAW_selected",
    "CASME2_RAW",
    "CASME2-RAW",
)
#: normalised header -> column of the returned sheet table
HEADERS: dict[str, str] = {
    "subject": "subject",
    "filename": "clip",
    "onsetframe": "onset",
    "apexframe": "apex",
    "offsetframe": "offset",
    "actionunits": "aus_text",
    "estimatedemotion": "emotion",
    "objectiveclasses": "objective_class",
}
REQUIRED_HEADERS = ("subject", "filename", "onsetframe", "apexframe", "offsetframe",
                    "actionunits", "estimatedemotion")  # fmt: skip


def find_root(root: str | Path) -> Path:
    """The CASME2 folder: ``<root>/CASME2`` if it exists, else ``root`` if it holds a sheet;
    :class:`FileNotFoundError` naming the expected layout otherwise."""
    return find_database_dir(
        root,
        "CASME II",
        ("CASME2",),
        lambda folder: any(folder.glob(SHEET_GLOB)),
        f"or a coding sheet {SHEET_GLOB} in {{root}}",
    )


def discover(root: str | Path) -> list[str]:
    """``["CASME2"]`` if a CASME II coding sheet or ``Cropped/`` is under ``root``, else
    ``[]`` (a frame folder without its sheet counts: loading then names what is missing)."""
    return [DATASET] if found_in(find_root, root, _sheet_or_frames) else []


def _sheet_or_frames(folder: Path) -> bool:
    return any(folder.glob(SHEET_GLOB)) or child_dir(folder, "Cropped") is not None


def _sheet_date(path: Path) -> str:
    m = re.search(r"(\d{8})", path.stem)
    return m.group(1) if m else ""


def find_sheet(casme2_dir: Path, sheet: str | Path | None = None) -> Path:
    """The coding sheet: ``sheet`` if given (absolute or relative to the CASME2 folder),
    else the newest ``CASME2-coding-<yyyymmdd>.xlsx`` by the date in its name."""
    if sheet is not None:
        return given_file(sheet, casme2_dir, "CASME II coding sheet")
    sheets = sorted(casme2_dir.glob(SHEET_GLOB), key=lambda p: (_sheet_date(p), p.name))
    if not sheets:
        raise FileNotFoundError(f"no CASME II coding sheet {SHEET_GLOB} in {casme2_dir}")
    if len(sheets) > 1:
        log.info(
            "CASME II: %d coding sheets in %s, using the newest %s (pass sheet= to choose)",
            len(sheets),
            casme2_dir,
            sheets[-1].name,
        )
    return sheets[-1]


def _subject_id(value: object, where: str) -> str:
    text = str(value).strip()
    m = re.fullmatch(r"(?:sub)?0*(\d+)(?:\.0+)?", text, flags=re.IGNORECASE)
    if not m:
        raise SchemaError(f"{where}: Subject {value!r} is not a subject number like '01' or 1")
    return f"{int(m.group(1)):02d}"


def read_coding_sheet(path: str | Path) -> pd.DataFrame:
    """Read a CASME II coding sheet into tidy columns.

    Returns
    -------
    DataFrame
        ``subject`` (2-digit str), ``clip``, ``onset``, ``apex`` (``pd.NA`` if the sheet
        has ``/``), ``offset``, ``emotion`` (lower case), ``aus``, ``au_sides``,
        ``au_intensities``, ``objective_class`` (Int64, NA when the sheet has none) and
        ``sheet_row`` (1-based Excel row).
    """
    path = Path(path)
    rows, _, _ = coding_sheet_rows(
        path,
        HEADERS,
        ("subject", "filename"),
        anchor_text="'Subject' and 'Filename'",
        required=REQUIRED_HEADERS,
    )
    records = []
    for excel_row, vals in rows:
        clip = str(vals["clip"]).strip()
        where = f"{path.name} row {excel_row} ({clip})"
        subject = _subject_id(vals["subject"], where)
        where = f"{path.name} row {excel_row} (sub{subject}/{clip})"
        apex = sheet_frame_value(vals["apex"], "ApexFrame", where, allow_missing=True)
        if apex is pd.NA:
            log.warning("%s: ApexFrame %r -> apex missing (clip kept)", where, vals["apex"])
        au = au_columns(vals["aus_text"], where)
        emotion = vals["emotion"]
        if pd.isna(emotion) or not str(emotion).strip():
            raise SchemaError(f"{where}: Estimated Emotion is empty")
        obj = vals.get("objective_class", None)
        records.append(
            {
                "subject": subject,
                "clip": clip,
                "onset": sheet_frame_value(vals["onset"], "OnsetFrame", where, allow_missing=False),
                "apex": apex,
                "offset": sheet_frame_value(
                    vals["offset"], "OffsetFrame", where, allow_missing=False
                ),
                "emotion": str(emotion).strip().lower(),
                **au,
                "objective_class": (
                    pd.NA
                    if obj is None or pd.isna(obj)
                    else sheet_frame_value(obj, "Objective Classes", where, allow_missing=False)
                ),
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the coding sheet has no clips", ["objective_class"])
    log.info("CASME II: %d clips in %s", len(table), path.name)
    return table


def load_casme2(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    missing: str = "raise",
) -> pd.DataFrame:
    """Load CASME II as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``CASME2/``, or the CASME2 folder itself.
    sheet : path, optional
        Coding sheet to use (default: the newest ``CASME2-coding-*.xlsx`` in the folder).
    frames : path, optional
        Frame folder holding ``sub<NN>/<Filename>/`` (a relative path is taken inside the
        CASME2 folder; default: the first of :data:`FRAME_DIRS` that exists).
    missing : {"raise", "skip"}
        A clip whose frames do not cover ``[onset, offset]`` on disk raises a
        :class:`~merkit.data.schema.SchemaError` naming the clip and the missing frames,
        or (``"skip"``) is left out with a warning.

    Returns
    -------
    DataFrame
        Sample table (see :mod:`merkit.data.schema`) plus ``objective_class``; every
        kept clip has all frames ``onset..offset`` on disk (checked here, so the schema's
        weaker "any frame present" check is not repeated). ``attrs["source"]`` is the sheet.
    """
    check_missing_policy(missing)
    casme2_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(casme2_dir, sheet)
    frames_root = frames_folder(
        casme2_dir, frames, FRAME_DIRS, "CASME II", "sub<NN>/<Filename>/img<N>.jpg"
    )
    coded = read_coding_sheet(sheet_path)
    table = sample_table(coded, DATASET, fps=FPS, camera=CAMERA, extra=("objective_class",))
    clips = [
        (f"sub{r.subject}/{r.clip}", frames_root / f"sub{r.subject}" / r.clip, r.onset, r.offset)
        for r in coded.itertuples(index=False)
    ]
    what = f"CASME II frames missing under {frames_root}"
    table = attach_frames(table, clips, what=what, missing=missing)
    table = final_table(table, sheet_path)
    log.info("CASME II: %d clips loaded from %s", len(table), casme2_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_casme2},
    discover=discover,
    layout=f"CASME2/ with a coding sheet {SHEET_GLOB}",
)
