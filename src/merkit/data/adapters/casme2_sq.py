"""CAS(ME)^2 (Qu et al., 'CAS(ME)^2: a database for spontaneous macro-expression and
micro-expression spotting and recognition', IEEE TAC 2018, doi:10.1109/TAFFC.2017.2654440):
the micro-expressions of the long videos.

Layout read here::

    <root>/CASME_sq/                       (or CAS(ME)^2/, CAS(ME)2/, or the folder itself)
        CASME_sq_gt.xlsx                   coding sheet (also CAS(ME)^2code_final.xlsx)
        rawpic/s15/15_0101disgustingteeth/img1.jpg ...

The coding sheet has no header row. Its first sheet (``CASFEcode_final``) has one row per
expression: participant number (1..22), expression name (``anger1_1`` = stimulus video
``anger1``, 1st expression), onset, apex, offset, AUs, emotion (negative / positive /
surprise / others), type (``macro-expression`` / ``micro-expression``) and a second emotion
word (``anger``, ``pain``, ``helpless``...: the emotion the participant reported for the
stimulus, kept as ``self_report``). Sheet ``naming rule1`` gives, row by row, the subject
folder of each participant (``15``, ``s15``, participant 1) and ``naming rule2`` the code of
each stimulus video (``0101`` = ``disgust1``). The frames of an expression are those of
its long video's folder ``rawpic/s<NN>/<NN>_<code><title>/`` (``15_0101disgustingteeth``:
the folder is found by its ``<NN>_<code>`` prefix), files ``img<N>.jpg`` (``img001.jpg``,
``img_1.jpg`` also read) with N = the sheet's frame number.

Only the micro-expressions are loaded (57 in the released sheet; macro-expressions carry
offset 0 for 44 expressions and belong to spotting, not to recognition): dataset
``"CASME_SQ"``, subject ``"CASME_SQ/s15"``, clip = the expression name, fps 30, camera
``"colour"``, plus ``participant``, ``video_code``, ``self_report`` and ``expression_type``.
``n_frames`` is the number of frames of ``[onset, offset]`` on disk.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.data.adapters._common import (
    AdapterSpec,
    au_columns,
    cell_text,
    check_missing_policy,
    child_dir,
    clip_frames_problem,
    database_dir,
    files_matching,
    final_table,
    find_database_dir,
    found_in,
    frame_numbers,
    frames_folder,
    given_file,
    records_table,
    report,
    sample_table,
    sheet_frame_value,
)
from merkit.data.fixes import apply_fixes
from merkit.data.schema import SchemaError, validate

log = logging.getLogger(__name__)

DATASET = "CASME_SQ"
FPS = 30.0
CAMERA = "colour"
MICRO = "micro-expression"
MACRO = "macro-expression"
ROOT_NAMES: tuple[str, ...] = ("CASME_sq", "CAS(ME)^2", "CAS(ME)2", "CASME^2")
SHEET_PATTERN = re.compile(r"^(?:CASME_sq_gt|CAS\(ME\)\^?2_?code_final).*\.xlsx$", re.IGNORECASE)
#: frame trees tried in this order (relative to the database folder)
FRAME_DIRS: tuple[str, ...] = ("rawpic", "rawpic/rawpic")
MAIN_COLUMNS = ("participant", "name", "onset", "apex", "offset", "aus_text", "emotion",
                "expression_type", "self_report")  # fmt: skip


def _sheets_in(folder: Path) -> list[Path]:
    return files_matching(folder, SHEET_PATTERN)


def _holds_data(folder: Path) -> bool:
    """The coding sheet or ``rawpic/`` in ``folder``."""
    return bool(_sheets_in(folder)) or child_dir(folder, "rawpic") is not None


def find_root(root: str | Path) -> Path:
    """The CAS(ME)^2 folder: ``<root>/CASME_sq`` (or another of :data:`ROOT_NAMES`) if it
    exists, else ``root`` if it holds the coding sheet or ``rawpic/``;
    :class:`FileNotFoundError` naming the expected layout otherwise."""
    return find_database_dir(
        root,
        "CAS(ME)^2",
        ROOT_NAMES,
        _holds_data,
        "or the coding sheet CASME_sq_gt.xlsx and rawpic/ in {root}",
    )


def discover(root: str | Path) -> list[str]:
    """``["CASME_SQ"]`` if a CAS(ME)^2 coding sheet or ``rawpic/`` is under ``root``."""
    return [DATASET] if found_in(find_root, root, _holds_data) else []


def find_sheet(sq_dir: Path, sheet: str | Path | None = None) -> Path:
    """The coding sheet: ``sheet`` if given (absolute or relative to the folder), else the
    ``CASME_sq_gt*.xlsx`` / ``CAS(ME)^2code_final*.xlsx`` of the folder (last by name)."""
    if sheet is not None:
        return given_file(sheet, sq_dir, "CAS(ME)^2 coding sheet")
    sheets = _sheets_in(sq_dir)
    if not sheets:
        raise FileNotFoundError(
            f"no CAS(ME)^2 coding sheet (CASME_sq_gt.xlsx or CAS(ME)^2code_final.xlsx) in {sq_dir}"
        )
    if len(sheets) > 1:
        log.info(
            "CAS(ME)^2: %d coding sheets in %s, using %s (pass sheet= to choose)",
            len(sheets),
            sq_dir,
            sheets[-1].name,
        )
    return sheets[-1]


def _classify_sheets(path: Path, raw: dict[str, pd.DataFrame]):
    """(main, rule1, rule2) sheet names, recognised by their content."""
    main = rule1 = rule2 = None
    for name, frame in raw.items():
        frame = frame.dropna(how="all")
        if frame.empty:
            continue
        if (
            frame.shape[1] >= 8
            and frame.iloc[:, 7].astype(str).str.strip().str.lower().isin([MICRO, MACRO]).any()
        ):
            main = main or name
            continue
        frame = frame.dropna(axis=1, how="all")
        if frame.shape[1] == 3 and frame.iloc[:, 1].astype(str).str.fullmatch(r"[sS]\d+").all():
            rule1 = rule1 or name
        elif (
            frame.shape[1] == 2 and frame.iloc[:, 0].map(cell_text).str.fullmatch(r"\d{3,4}").all()
        ):
            rule2 = rule2 or name
    wanted = (
        ("the coding table (9 columns, type micro-/macro-expression)", main),
        ("'naming rule1' (folder number, s<NN>, participant)", rule1),
        ("'naming rule2' (code, stimulus name)", rule2),
    )
    absent = [what for what, name in wanted if name is None]
    if absent:
        raise SchemaError(f"{path}: no sheet holding {'; '.join(absent)} among {list(raw)}")
    return main, rule1, rule2


def read_casme_sq_sheet(path: str | Path, *, micro_only: bool = True) -> pd.DataFrame:
    """Read the CAS(ME)^2 coding sheet (no header row) and its naming rules.

    Parameters
    ----------
    path : path
        ``CASME_sq_gt.xlsx`` / ``CAS(ME)^2code_final.xlsx``.
    micro_only : bool
        Keep only the rows of type ``micro-expression``.

    Returns
    -------
    DataFrame
        ``subject`` (``"s15"``), ``participant`` (int), ``clip`` (``"anger1_1"``),
        ``video_code`` (``"0401"``), ``video_prefix`` (``"15_0401"``), ``onset``, ``apex``,
        ``offset``, ``emotion``, ``self_report`` (lower case), ``expression_type``, ``aus``,
        ``au_sides``, ``au_intensities`` and ``sheet_row`` (1-based Excel row of the
        coding table).
    """
    path = Path(path)
    raw = pd.read_excel(path, sheet_name=None, header=None, dtype=object)
    main_name, rule1_name, rule2_name = _classify_sheets(path, raw)
    main = raw[main_name]
    rule1 = raw[rule1_name]
    codes: dict[str, str] = {}
    for i, (code, video) in enumerate(raw[rule2_name].iloc[:, :2].itertuples(index=False)):
        if pd.isna(code) and pd.isna(video):
            continue
        code_text, video_name = cell_text(code), cell_text(video).lower()
        if not re.fullmatch(r"\d{1,4}", code_text) or not video_name:
            raise SchemaError(
                f"{path} sheet {rule2_name!r} row {i + 1}: {code!r}, {video!r} is not "
                "'<code like 0101>, <stimulus name>'"
            )
        codes[video_name] = f"{int(code_text):04d}"
    folders: dict[int, tuple[str, int]] = {}
    for i, row in enumerate(rule1.iloc[:, :3].itertuples(index=False)):
        if all(pd.isna(v) for v in row):
            continue
        where = f"{path} sheet {rule1_name!r} row {i + 1}"
        number = sheet_frame_value(row[0], "folder number", where, allow_missing=False)
        name = cell_text(row[1])
        participant = sheet_frame_value(row[2], "participant", where, allow_missing=False)
        if not re.fullmatch(r"[sS]0*(\d+)", name) or int(name[1:]) != number:
            raise SchemaError(f"{where}: folder {name!r} does not match its number {number}")
        if folders.setdefault(participant, (name.lower(), number)) != (name.lower(), number):
            raise SchemaError(
                f"{where}: participant {participant} is mapped to both "
                f"{folders[participant][0]} and {name}"
            )

    records = []
    for i in range(len(main)):
        row = main.iloc[i]
        if row.isna().all():
            continue
        vals = dict(zip(MAIN_COLUMNS, row.iloc[: len(MAIN_COLUMNS)].tolist(), strict=False))
        excel_row = i + 1
        kind = cell_text(vals.get("expression_type")).lower()
        if micro_only and kind != MICRO:
            continue
        name = cell_text(vals["name"])
        where = f"{path.name} row {excel_row} ({name})"
        participant = sheet_frame_value(
            vals["participant"], "participant", where, allow_missing=False
        )
        if participant not in folders:
            raise SchemaError(f"{where}: participant {participant} is not in {rule1_name!r}")
        folder, number = folders[participant]
        m = re.fullmatch(r"(?P<video>[A-Za-z]+\d*)_(?P<k>\d+)", name)
        if not m or m.group("video").lower() not in codes:
            raise SchemaError(
                f"{where}: expression name {name!r} is not '<stimulus>_<n>' with a stimulus "
                f"of {rule2_name!r} ({sorted(codes)})"
            )
        code = codes[m.group("video").lower()]
        where = f"{path.name} row {excel_row} ({folder}/{name})"
        emotion = cell_text(vals["emotion"]).lower()
        if not emotion:
            raise SchemaError(f"{where}: emotion (7th column) is empty")
        au = au_columns(vals["aus_text"], where)
        records.append(
            {
                "subject": folder,
                "participant": participant,
                "clip": name,
                "video_code": code,
                "video_prefix": f"{number}_{code}",
                "onset": sheet_frame_value(vals["onset"], "onset", where, allow_missing=False),
                "apex": sheet_frame_value(vals["apex"], "apex", where, allow_missing=True),
                "offset": sheet_frame_value(vals["offset"], "offset", where, allow_missing=False),
                "emotion": emotion,
                "self_report": cell_text(vals.get("self_report")).lower() or pd.NA,
                "expression_type": kind,
                **au,
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: no {'micro-expression ' if micro_only else ''}rows")
    log.info(
        "CAS(ME)^2: %d %sexpressions in %s", len(table), "micro-" if micro_only else "", path.name
    )
    return table


def _video_folder(
    frames_root: Path, subject: str, prefix: str, listing: dict[Path, list[Path]]
) -> Path | None:
    subj_dir = child_dir(frames_root, subject)
    if subj_dir is None:
        return None
    if subj_dir not in listing:
        listing[subj_dir] = sorted(p for p in subj_dir.iterdir() if p.is_dir())
    hits = [p for p in listing[subj_dir] if re.match(re.escape(prefix) + r"(?!\d)", p.name)]
    if len(hits) > 1:
        raise SchemaError(
            f"CAS(ME)^2: several video folders of {subject} start with {prefix}: "
            f"{[p.name for p in hits]}"
        )
    return hits[0] if hits else None


def load_casme_sq(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    missing: str = "raise",
    fixes: bool = True,
) -> pd.DataFrame:
    """Load the micro-expressions of CAS(ME)^2 as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``CASME_sq/`` (or ``CAS(ME)^2/``...), or that folder itself.
    sheet : path, optional
        Coding sheet (default: ``CASME_sq_gt*.xlsx`` / ``CAS(ME)^2code_final*.xlsx``).
    frames : path, optional
        Frame tree holding ``s<NN>/<NN>_<code>*/`` (default: ``rawpic/``).
    missing : {"raise", "skip"}
        A clip whose video folder is absent or lacks frames of ``[onset, offset]`` raises a
        :class:`~merkit.data.schema.SchemaError` naming it, or (``"skip"``) is left out.
    fixes : bool
        Apply the known corrections of ``fixes.toml`` (none listed for CAS(ME)^2 today).

    Returns
    -------
    DataFrame
        Sample table plus ``participant``, ``video_code``, ``self_report`` and
        ``expression_type``. ``attrs["source"]`` is the sheet.
    """
    check_missing_policy(missing)
    sq_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(sq_dir, sheet)
    frames_root = frames_folder(
        sq_dir,
        frames,
        FRAME_DIRS,
        "CAS(ME)^2",
        "s<NN>/<NN>_<code><title>/img<N>.jpg (or pass frames=)",
    )
    coded = read_casme_sq_sheet(sheet_path)
    extra = ("participant", "video_code", "self_report", "expression_type")
    table = sample_table(coded, DATASET, fps=FPS, camera=CAMERA, extra=extra)
    if fixes:
        table = apply_fixes(table, DATASET, source=sheet_path)
    applied = table.attrs.get("fixes_applied", [])
    validate(table, check_frames=False, source=str(sheet_path))

    listing: dict[Path, list[Path]] = {}
    cache: dict[Path, np.ndarray] = {}
    problems: list[str] = []
    keep: list[bool] = []
    dirs: list[str] = []
    counts: list[int] = []
    for r, prefix in zip(table.itertuples(index=False), coded["video_prefix"], strict=True):
        sid = r.subject.split("/", 1)[1]
        folder = _video_folder(frames_root, sid, prefix, listing)
        if folder is None:
            problems.append(f"{sid}/{r.clip}: no video folder {sid}/{prefix}* in {frames_root}")
            dirs.append(str(frames_root / sid / prefix))
            counts.append(0)
            keep.append(False)
            continue
        if folder not in cache:
            cache[folder] = frame_numbers(folder)
        nums = cache[folder]
        onset, offset = int(r.onset), int(r.offset)
        dirs.append(str(folder))
        counts.append(int(((nums >= onset) & (nums <= offset)).sum()))
        problem = clip_frames_problem(
            nums, onset, offset, folder, on_disk="video frames on disk", require_any=False
        )
        if problem:
            problems.append(f"{sid}/{r.clip}: {problem}")
        keep.append(problem is None)
    report(problems, what=f"CAS(ME)^2 frames missing under {frames_root}", missing=missing)
    table["frames_dir"] = dirs
    table["n_frames"] = counts
    table = final_table(table[keep], sheet_path, applied)
    log.info("CAS(ME)^2: %d micro-expressions loaded from %s", len(table), sq_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_casme_sq},
    discover=discover,
    layout="CAS(ME)^2 with CASME_sq_gt.xlsx or rawpic/",
)
