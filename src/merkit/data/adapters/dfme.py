"""DFME (Zhao et al., 'DFME: a new benchmark for dynamic facial micro-expression
recognition', IEEE TAFFC 2023, doi:10.1109/TAFFC.2023.3341918).

Layout read here::

    <root>/DFME/                           (or the DFME folder itself)
        training_full_with_AU.xlsx         one sheet per released part (also found in a
        testA_full_with_AU.xlsx            sub-folder such as annotations/ or
        testB_full_with_AU.xlsx            full_release_annotation/)
        train_data/sub0003_01/00044.png    frames: <part folder>/<Filename>/<frame>.<ext>
        test_A_data/sub0008_01/...
        test_B_data/...

Part folders are the first of :data:`PART_DIRS` that exists (names matched ignoring
case); inside, a clip folder is ``<Filename>`` or ``<Subject>/<Filename>``; frame files
are numbered images (``00044.png``, ``44.jpg``; zero-based like the sheets' OnsetFrame).
``frames=`` gives one folder holding every clip folder, or ``{part: folder}``.

Sheet columns, matched by header name: Subject, Filename, OnsetFrame, ApexFrame,
OffsetFrame, Emotion, EmotionId, Fps, AU. One row per sheet line: dataset ``"DFME"``,
subject ``"DFME/0003"`` (the number of ``sub0003``, four digits), clip = Filename,
``fps`` = the clip's own frame rate (500, 300 or 200: DFME parts A, B, C of the paper),
camera ``"colour"``, ``part`` (``"train"``, ``"testA"``, ``"testB"``: the released split,
not the paper's A/B/C), ``emotion_id`` (the sheet's EmotionId, 0..6 = anger, contempt,
disgust, fear, happiness, sadness, surprise) and ``duration_ms`` (onset..offset, with the
clip's fps; see :func:`duration_ms`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.data.adapters._common import (
    AdapterSpec,
    au_columns,
    cell_text,
    check_clips,
    check_missing_policy,
    child_dir,
    find_database_dir,
    found_in,
    frame_value,
    is_blank,
    records_table,
    report,
    sample_table,
    subject_number,
)
from merkit.data.adapters.folder import headed_rows
from merkit.data.schema import SchemaError, validate

log = logging.getLogger(__name__)

DATASET = "DFME"
CAMERA = "colour"
PARTS: tuple[str, ...] = ("train", "testA", "testB")
#: part -> coding-sheet file name
SHEETS: dict[str, str] = {
    "train": "training_full_with_AU.xlsx",
    "testA": "testA_full_with_AU.xlsx",
    "testB": "testB_full_with_AU.xlsx",
}
#: sub-folders of the DFME folder searched for the sheets (after the folder itself)
SHEET_DIRS: tuple[str, ...] = ("annotations", "annotation", "full_release_annotation", "labels")
#: part -> frame folders tried in this order (ignoring case)
PART_DIRS: dict[str, tuple[str, ...]] = {
    "train": ("train_data", "training_data", "train", "training", "DFME_train"),
    "testA": ("test_A_data", "testA_data", "testA", "test_A", "DFME_testA", "DFME_test_A"),
    "testB": ("test_B_data", "testB_data", "testB", "test_B", "DFME_testB", "DFME_test_B"),
}
#: frame rates of the DFME recordings (paper parts A, B, C)
FRAME_RATES: tuple[float, ...] = (500.0, 300.0, 200.0)
HEADERS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",),
    "clip": ("filename",),
    "onset": ("onsetframe",),
    "apex": ("apexframe",),
    "offset": ("offsetframe",),
    "emotion": ("emotion",),
    "emotion_id": ("emotionid",),
    "fps": ("fps",),
    "aus_text": ("au", "aus", "actionunits"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "emotion", "fps", "aus_text")


def duration_ms(
    table: pd.DataFrame, start: str = "onset", end: str = "offset", *, inclusive: bool = True
) -> np.ndarray:
    """Duration of each clip's ``start..end`` in milliseconds, with the clip's own fps.

    Parameters
    ----------
    table : DataFrame
        With the ``start``, ``end`` and ``fps`` columns.
    start, end : str
        Frame-number columns (``"onset"``, ``"apex"``, ``"offset"``).
    inclusive : bool
        ``True`` (default, the DFME paper's convention): ``(end - start + 1) / fps``, the
        time the ``end - start + 1`` frames cover (a 500 fps clip of 250 frames lasts
        500 ms). ``False``: ``(end - start) / fps``, the time between the two frames.

    Returns
    -------
    ndarray of float, shape (n_clips,)
    """
    for c in (start, end, "fps"):
        if c not in table.columns:
            raise SchemaError(f"duration_ms: table lacks column {c!r}")
    a = pd.to_numeric(table[start], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    b = pd.to_numeric(table[end], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    fps = pd.to_numeric(table["fps"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return (b - a + (1 if inclusive else 0)) / fps * 1000.0


def micro_mask(
    table: pd.DataFrame,
    max_ms: float = 500.0,
    max_rise_ms: float = 250.0,
    *,
    inclusive: bool = True,
) -> np.ndarray:
    """DFME's micro-expression criterion: onset..offset <= 500 ms or onset..apex <= 250 ms.

    Sec. 3.3.2 of the paper: "MEs collected at 500 fps should meet either
    f_offset - f_onset + 1 <= 250 or f_apex - f_onset + 1 <= 125" (``inclusive=True``).
    On the released sheets 8 of 2629 clips (all 300 fps) fail that by one frame and all
    pass with ``inclusive=False``, so the annotators seem to have timed frame intervals.
    A missing apex only uses the first test.

    Returns
    -------
    ndarray of bool, shape (n_clips,)
    """
    total = duration_ms(table, inclusive=inclusive)
    rise = duration_ms(table, "onset", "apex", inclusive=inclusive)
    return (total <= max_ms) | (np.nan_to_num(rise, nan=np.inf) <= max_rise_ms)


def find_root(root: str | Path) -> Path:
    """The DFME folder: ``<root>/DFME`` if it exists, else ``root`` if it holds a sheet;
    :class:`FileNotFoundError` naming the expected layout otherwise."""
    return find_database_dir(
        root,
        DATASET,
        (DATASET,),
        lambda folder: bool(_sheet_paths(folder)),
        f"or the sheets {list(SHEETS.values())} in {{root}}",
    )


def discover(root: str | Path) -> list[str]:
    """``["DFME"]`` if a DFME folder or coding sheet is under ``root``, else ``[]``."""
    return [DATASET] if found_in(find_root, root) else []


def _sheet_paths(dfme_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    folders = [dfme_dir] + [d for d in (child_dir(dfme_dir, n) for n in SHEET_DIRS) if d]
    for part, name in SHEETS.items():
        for folder in folders:
            hits = [p for p in folder.iterdir() if p.is_file() and p.name.lower() == name.lower()]
            if hits:
                found[part] = hits[0]
                break
    return found


def _subject_id(value: object, where: str) -> str:
    return f"{subject_number(value, where, prefixes=('sub',)):04d}"


def read_dfme_sheet(path: str | Path) -> pd.DataFrame:
    """Read one DFME coding sheet into tidy columns.

    Returns
    -------
    DataFrame
        ``subject`` (``"0003"``), ``clip``, ``onset``, ``apex``, ``offset``, ``fps``
        (float), ``emotion`` (lower case), ``emotion_id`` (Int64), ``aus``, ``au_sides``,
        ``au_intensities`` and ``sheet_row`` (1-based Excel row).

    Raises
    ------
    SchemaError
        Naming the row for a malformed cell, a clip whose Filename does not start with
        its Subject, or an EmotionId that stands for two emotions in the sheet.
    """
    path = Path(path)
    records = []
    for excel_row, vals in headed_rows(path, HEADERS, REQUIRED):
        clip = cell_text(vals["clip"])
        where = f"{path.name} row {excel_row} ({clip or 'no Filename'})"
        if not clip:
            raise SchemaError(f"{where}: Filename is empty")
        subject = _subject_id(vals["subject"], where)
        m = re.match(r"sub0*(\d+)_", clip, flags=re.IGNORECASE)
        if m and int(m.group(1)) != int(subject):
            raise SchemaError(
                f"{where}: Filename {clip!r} names another subject than Subject "
                f"{cell_text(vals['subject'])!r}"
            )
        try:
            fps = float(cell_text(vals["fps"]))
        except ValueError:
            raise SchemaError(f"{where}: Fps {vals['fps']!r} is not a number") from None
        if not fps > 0:
            raise SchemaError(f"{where}: Fps {vals['fps']!r} must be > 0")
        if fps not in FRAME_RATES:
            log.warning("%s: Fps %g is not one of DFME's %s", where, fps, FRAME_RATES)
        emotion = cell_text(vals["emotion"]).lower()
        if not emotion:
            raise SchemaError(f"{where}: Emotion is empty")
        emotion_id = pd.NA
        if "emotion_id" in vals and not is_blank(vals["emotion_id"]):
            emotion_id = frame_value(vals["emotion_id"], "EmotionId", where)
        au = au_columns(vals["aus_text"], where)
        records.append(
            {
                "subject": subject,
                "clip": clip,
                "onset": frame_value(vals["onset"], "OnsetFrame", where),
                "apex": frame_value(vals["apex"], "ApexFrame", where, allow_missing=True),
                "offset": frame_value(vals["offset"], "OffsetFrame", where),
                "fps": fps,
                "emotion": emotion,
                "emotion_id": emotion_id,
                **au,
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the coding sheet has no clips", ["emotion_id"])
    ids = table.dropna(subset=["emotion_id"]).groupby("emotion_id")["emotion"].unique()
    clash = {int(k): sorted(v) for k, v in ids.items() if len(v) > 1}
    if clash:
        raise SchemaError(f"{path}: an EmotionId stands for several emotions: {clash}")
    log.info("DFME: %d clips in %s", len(table), path.name)
    return table


def _part_frames(dfme_dir: Path, part: str, frames) -> Path | None:
    if frames is not None:
        given = frames.get(part) if isinstance(frames, Mapping) else frames
        if given is None:
            return None
        p = Path(given)
        p = p if p.is_absolute() else dfme_dir / p
        if not p.is_dir():
            raise FileNotFoundError(f"DFME frame folder {p} ({part}) does not exist")
        return p
    for name in PART_DIRS[part]:
        p = child_dir(dfme_dir, name)
        if p is not None:
            return p
    return None


def _clip_dir(root_dir: Path, subject: str, clip: str) -> Path:
    """``<root_dir>/<clip>``, or ``<root_dir>/sub<subject>/<clip>`` when only that exists."""
    folder = root_dir / clip
    if not folder.is_dir() and (root_dir / f"sub{subject}" / clip).is_dir():
        folder = root_dir / f"sub{subject}" / clip
    return folder


def load_dfme(
    root: str | Path,
    *,
    parts: Iterable[str] | None = None,
    frames: str | Path | Mapping[str, str | Path] | None = None,
    missing: str = "raise",
) -> pd.DataFrame:
    """Load DFME as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``DFME/``, or the DFME folder itself.
    parts : iterable of {"train", "testA", "testB"}, optional
        Released parts to load (default: every part whose sheet is present).
    frames : path or mapping, optional
        One folder holding all clip folders, or ``{part: folder}`` (relative paths are
        taken inside the DFME folder; default: the first of :data:`PART_DIRS` per part).
    missing : {"raise", "skip"}
        A clip whose frames do not cover ``[onset, offset]`` (or a part without a frame
        folder) raises a :class:`~merkit.data.schema.SchemaError` naming the clips, or
        (``"skip"``) is left out with a warning.

    Returns
    -------
    DataFrame
        Sample table plus ``part``, ``emotion_id``, ``duration_ms`` and ``sheet_row``;
        ``attrs["source"]`` lists the sheets.

    Raises
    ------
    SchemaError
        Also when a subject appears in two parts (the released split is by subject).
    """
    check_missing_policy(missing)
    dfme_dir = find_root(root)
    sheets = _sheet_paths(dfme_dir)
    if parts is None:
        wanted = [p for p in PARTS if p in sheets]
        if not wanted:
            raise FileNotFoundError(
                f"no DFME coding sheet in {dfme_dir}: expected {list(SHEETS.values())}"
            )
    else:
        wanted = list(parts)
        unknown = [p for p in wanted if p not in PARTS]
        if unknown:
            raise ValueError(f"unknown DFME parts {unknown}; known: {list(PARTS)}")
        absent = [SHEETS[p] for p in wanted if p not in sheets]
        if absent:
            raise FileNotFoundError(f"DFME coding sheets {absent} not found in {dfme_dir}")

    tables = []
    problems: list[str] = []
    for part in wanted:
        coded = read_dfme_sheet(sheets[part])
        coded["part"] = part
        root_dir = _part_frames(dfme_dir, part, frames)
        if root_dir is None:
            problems.append(
                f"{part}: no frame folder in {dfme_dir} (expected one of {list(PART_DIRS[part])}"
                f" holding <Filename>/<frame>.png); its {len(coded)} clips"
            )
            continue
        folders = [_clip_dir(root_dir, r.subject, r.clip) for r in coded.itertuples(index=False)]
        keep, counts, found = check_clips(
            (f"{part} {r.clip}", folder, r.onset, r.offset)
            for r, folder in zip(coded.itertuples(index=False), folders, strict=True)
        )
        problems += found
        coded["frames_dir"] = [str(f) for f in folders]
        coded["n_frames"] = counts
        tables.append(coded[keep])
    report(problems, what=f"DFME frames missing under {dfme_dir}", missing=missing)
    if not tables:
        raise SchemaError(f"DFME: no clip of parts {wanted} has its frames under {dfme_dir}")
    coded = pd.concat(tables, ignore_index=True)
    per_subject = coded.groupby("subject")["part"].unique()
    shared = {s: sorted(p) for s, p in per_subject.items() if len(p) > 1}
    if shared:
        some = dict(list(shared.items())[:10])
        raise SchemaError(
            f"DFME: {len(shared)} subject(s) appear in several parts, so the split would leak "
            f"identities: {some}"
        )
    table = sample_table(
        coded,
        DATASET,
        fps=coded["fps"],
        camera=CAMERA,
        frames_dir=coded["frames_dir"],
        n_frames=coded["n_frames"],
        extra=("part", "emotion_id", "sheet_row"),
    )
    table = validate(table, check_frames=False, source=str(dfme_dir))
    table["duration_ms"] = duration_ms(table)
    table.attrs["source"] = [str(sheets[p]) for p in wanted]
    log.info("DFME: %d clips of parts %s loaded from %s", len(table), wanted, dfme_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_dfme},
    discover=discover,
    layout="a DFME sheet",
)
