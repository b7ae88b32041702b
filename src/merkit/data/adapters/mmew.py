"""MMEW (Ben et al., 'Video-based facial micro-expression analysis: a survey of datasets,
features and algorithms', IEEE TPAMI 2021, doi:10.1109/TPAMI.2021.3067464): micro part.

Layout read here::

    <root>/MMEW/                        (or MMEW_Final/, or that folder itself)
        MMEW_Micro_Exp.xlsx             coding sheet
        Micro_Expression/<emotion>/<Filename>/1.jpg 2.jpg ...

The frame folder is the first of :data:`FRAME_DIRS` that exists (``frames=`` overrides);
clip folders are ``<emotion>/<Filename>`` (emotion folder names are matched ignoring
case), or ``<Filename>`` directly under the frame folder. Frame files are numbered
images (``1.jpg``; any prefix and image suffix).

Sheet columns, matched by header name: Subject, Filename, OnsetFrame, ApexFrame,
OffsetFrame, Action Units, Estimated Emotion, and optionally remarks (kept as
``remarks``). One row per sheet line: dataset ``"MMEW"``, subject ``"MMEW/S<NN>"``
(the sheet's number, ``1`` / ``"S01"``, with two digits), fps 90, camera ``"colour"``,
emotion lower case (happiness, surprise, anger, disgust, fear, sadness, others).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from merkit.data.adapters._common import (
    AdapterSpec,
    attach_frames,
    au_columns,
    cell_text,
    check_missing_policy,
    child_dir,
    final_table,
    find_database_dir,
    found_in,
    frame_value,
    frames_folder,
    given_file,
    records_table,
    sample_table,
    subject_number,
)
from merkit.data.adapters.folder import headed_rows
from merkit.data.schema import SchemaError

log = logging.getLogger(__name__)

DATASET = "MMEW"
FPS = 90.0
CAMERA = "colour"
SHEET_GLOB = "MMEW_Micro_Exp*.xlsx"
#: folders tried (in this order, ignoring case) below the data root
ROOT_DIRS: tuple[str, ...] = ("MMEW", "MMEW_Final")
#: frame folders tried in this order inside the MMEW folder
FRAME_DIRS: tuple[str, ...] = (
    "Micro_Expression",
    "MMEW/Micro_Expression",
    "MMEW_Final/Micro_Expression",
)
#: column -> normalised header names
HEADERS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",),
    "clip": ("filename",),
    "onset": ("onsetframe",),
    "apex": ("apexframe",),
    "offset": ("offsetframe",),
    "aus_text": ("actionunits", "aus"),
    "emotion": ("estimatedemotion", "emotion"),
    "remarks": ("remarks", "remark", "notes"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus_text", "emotion")


def find_root(root: str | Path) -> Path:
    """The MMEW folder: ``<root>/MMEW`` or ``<root>/MMEW_Final`` if present, else ``root``
    if it holds the sheet or ``Micro_Expression/``; :class:`FileNotFoundError` naming the
    expected layout otherwise."""
    return find_database_dir(
        root,
        DATASET,
        ROOT_DIRS,
        _holds_data,
        f"holding {SHEET_GLOB} and Micro_Expression/<emotion>/<Filename>/",
    )


def _holds_data(folder: Path) -> bool:
    """The coding sheet or ``Micro_Expression/`` in ``folder``."""
    return any(folder.glob(SHEET_GLOB)) or child_dir(folder, "Micro_Expression") is not None


def discover(root: str | Path) -> list[str]:
    """``["MMEW"]`` if the MMEW coding sheet or ``Micro_Expression/`` is under ``root``."""
    return [DATASET] if found_in(find_root, root, _holds_data) else []


def find_sheet(mmew_dir: Path, sheet: str | Path | None = None) -> Path:
    """The coding sheet: ``sheet`` if given (absolute or relative to the MMEW folder), else
    the one ``MMEW_Micro_Exp*.xlsx`` in the folder."""
    if sheet is not None:
        return given_file(sheet, mmew_dir, "MMEW coding sheet")
    sheets = sorted(mmew_dir.glob(SHEET_GLOB))
    if not sheets:
        raise FileNotFoundError(f"no MMEW coding sheet {SHEET_GLOB} in {mmew_dir}")
    if len(sheets) > 1:
        raise FileNotFoundError(
            f"{len(sheets)} MMEW coding sheets in {mmew_dir} ({[p.name for p in sheets]}); "
            "pass sheet= to choose one"
        )
    return sheets[0]


def read_mmew_sheet(path: str | Path) -> pd.DataFrame:
    """Read the MMEW micro-expression sheet into tidy columns.

    Returns
    -------
    DataFrame
        ``subject`` (``"S01"``), ``clip``, ``onset``, ``apex`` (``pd.NA`` if not coded),
        ``offset``, ``emotion`` (lower case), ``aus``, ``au_sides``, ``au_intensities``,
        ``remarks`` (str, or missing) and ``sheet_row`` (1-based Excel row).
    """
    path = Path(path)
    records = []
    for excel_row, vals in headed_rows(path, HEADERS, REQUIRED):
        clip = cell_text(vals["clip"])
        where = f"{path.name} row {excel_row} ({clip or 'no Filename'})"
        if not clip:
            raise SchemaError(f"{where}: Filename is empty")
        subject = f"S{subject_number(vals['subject'], where, prefixes=('s', 'sub')):02d}"
        where = f"{path.name} row {excel_row} ({subject}/{clip})"
        apex = frame_value(vals["apex"], "ApexFrame", where, allow_missing=True)
        if apex is pd.NA:
            log.warning("%s: ApexFrame %r -> apex missing (clip kept)", where, vals["apex"])
        emotion = cell_text(vals["emotion"]).lower()
        if not emotion:
            raise SchemaError(f"{where}: Estimated Emotion is empty")
        au = au_columns(vals["aus_text"], where)
        remarks = cell_text(vals.get("remarks")) or None
        records.append(
            {
                "subject": subject,
                "clip": clip,
                "onset": frame_value(vals["onset"], "OnsetFrame", where),
                "apex": apex,
                "offset": frame_value(vals["offset"], "OffsetFrame", where),
                "emotion": emotion,
                **au,
                "remarks": remarks,
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the coding sheet has no clips")
    log.info("MMEW: %d clips in %s", len(table), path.name)
    return table


def _clip_dir(frames_root: Path, emotion: str, clip: str) -> Path:
    emo = child_dir(frames_root, emotion)
    if emo is not None and (emo / clip).is_dir():
        return emo / clip
    if (frames_root / clip).is_dir():
        return frames_root / clip
    return (emo or frames_root / emotion) / clip


def load_mmew(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    missing: str = "raise",
) -> pd.DataFrame:
    """Load the MMEW micro-expressions as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``MMEW/`` (or ``MMEW_Final/``), or that folder itself.
    sheet : path, optional
        Coding sheet (default: the ``MMEW_Micro_Exp*.xlsx`` in the MMEW folder).
    frames : path, optional
        Frame folder holding ``<emotion>/<Filename>/`` (relative paths are taken inside
        the MMEW folder; default: the first of :data:`FRAME_DIRS` that exists).
    missing : {"raise", "skip"}
        A clip whose frames do not cover ``[onset, offset]`` raises a
        :class:`~merkit.data.schema.SchemaError` naming the clips and frames, or
        (``"skip"``) is left out with a warning.

    Returns
    -------
    DataFrame
        Sample table plus ``remarks`` and ``sheet_row``; ``attrs["source"]`` is the sheet.
    """
    check_missing_policy(missing)
    mmew_dir = find_root(root)
    sheet_path = find_sheet(mmew_dir, sheet)
    frames_root = frames_folder(
        mmew_dir, frames, FRAME_DIRS, DATASET, "<emotion>/<Filename>/<n>.jpg"
    )
    coded = read_mmew_sheet(sheet_path)
    table = sample_table(coded, DATASET, fps=FPS, camera=CAMERA, extra=("remarks", "sheet_row"))
    clips = [
        (f"{r.subject}/{r.clip}", _clip_dir(frames_root, r.emotion, r.clip), r.onset, r.offset)
        for r in coded.itertuples(index=False)
    ]
    what = f"MMEW frames missing under {frames_root}"
    table = attach_frames(table, clips, what=what, missing=missing)
    table = final_table(table, sheet_path)
    log.info("MMEW: %d clips loaded from %s", len(table), mmew_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_mmew},
    discover=discover,
    layout="MMEW/ with its sheet",
)
