"""4DME (Li et al., '4DME: a spontaneous 4D micro-expression dataset with multimodalities',
IEEE Transactions on Affective Computing 2022): the micro-expression clips.

Layout read here::

    <root>/4DME/                       (or the 4DME folder itself)
        <coding sheet>.xlsx            the one workbook whose header has sub_ID and fold_name
        S01/S01_1_1/img12.jpg ...      <sub_ID>/<fold_name>/<frame files>

The clip folders lie below the 4DME folder by default; ``frames=`` points to another tree
with the same ``<sub_ID>/<fold_name>/`` layout (e.g. the folder of one modality: grey
texture or depth frames). The frame number of a file is the last group of digits of its
name, and Onset / Apex / Offset of the sheet are these numbers.

Sheet columns (matched by header name, as meb reads them): sub_ID, fold_name, Onset,
Apex, Offset, AUs, Emotion, and the emotion columns Positive, Negative, Surprise,
Repression, Others (1 where the clip has that label; a clip may have several).

One row per sheet line: dataset ``"4DME"``, subject ``"4DME/<sub_ID>"``, clip =
fold_name, fps 60 (``fps=`` for another modality), camera ``"grey"``, emotion = the
Emotion cell lower case, ``emotions`` = the labels whose emotion column is 1 (a tuple,
empty when the sheet has no such columns), AUs by :func:`merkit.data.labels.parse_aus`;
an AU marked ``(k)`` (``AU4(k)``) is not in ``aus`` but in ``aus_k`` (logged). The
corrections of ``fixes.toml`` for ``"4DME"`` are applied unless ``fixes=False``; meb's swap
of the label cells of sheet rows 144 and 145 only with ``fixes="all"`` (docs/databases.md).
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
    cell_text,
    check_missing_policy,
    child_dir,
    coding_sheet_rows,
    database_dir,
    final_table,
    find_database_dir,
    found_in,
    given_dir,
    given_file,
    is_blank,
    records_table,
    sample_table,
    sheet_frame_value,
)
from merkit.data.adapters.samm import last_number_frames
from merkit.data.fixes import apply_fixes, apply_row_fixes, check_fix_mode
from merkit.data.labels import parse_aus
from merkit.data.schema import SchemaError, validate

log = logging.getLogger(__name__)

DATASET = "4DME"
FPS = 60.0
CAMERA = "grey"
#: the five emotion columns of the sheet, in the order of the ``emotions`` tuples
EMOTION_COLUMNS: tuple[str, ...] = ("positive", "negative", "surprise", "repression", "others")
#: header reduced to ASCII letters (``sub_ID`` -> ``subid``) -> value name of the rows
HEADERS: dict[str, str] = {
    "subid": "subject",
    "foldname": "clip",
    "onset": "onset",
    "apex": "apex",
    "offset": "offset",
    "aus": "aus_text",
    "emotion": "emotion",
    **{e: e for e in EMOTION_COLUMNS},
}
REQUIRED_HEADERS = ("subid", "foldname", "onset", "apex", "offset", "aus", "emotion")
_K_TERM = re.compile(r"^(?P<au>.*?)\s*\(\s*k\s*\)$", re.IGNORECASE)


def _holds_data(folder: Path) -> bool:
    """A folder named ``4DME`` (its sheet and clips are checked when loading)."""
    return folder.name.upper() == DATASET


def find_root(root: str | Path) -> Path:
    """The 4DME folder: ``<root>/4DME`` if it exists, else ``root`` if it is named 4DME;
    :class:`FileNotFoundError` naming the expected layout otherwise."""
    return find_database_dir(
        root, DATASET, (DATASET,), _holds_data, "holding the coding sheet and <sub_ID>/ folders"
    )


def discover(root: str | Path) -> list[str]:
    """``["4DME"]`` if a 4DME folder holding a workbook is under ``root``, else ``[]``."""
    found = found_in(find_root, root, lambda d: any(d.glob("*.xlsx")))
    return [DATASET] if found else []


def find_sheet(fourd_dir: Path, sheet: str | Path | None = None) -> Path:
    """The coding sheet: ``sheet`` if given (absolute or relative to the 4DME folder), else
    the one ``*.xlsx`` in the folder.

    Raises
    ------
    FileNotFoundError
        When there is no workbook, or several (naming them; pass ``sheet=``).
    """
    if sheet is not None:
        return given_file(sheet, fourd_dir, "4DME coding sheet")
    sheets = sorted(p for p in fourd_dir.glob("*.xlsx") if not p.name.startswith("~$"))
    if not sheets:
        raise FileNotFoundError(f"no 4DME coding sheet (*.xlsx) in {fourd_dir}")
    if len(sheets) > 1:
        raise FileNotFoundError(
            f"{len(sheets)} workbooks in {fourd_dir} ({', '.join(p.name for p in sheets)}): "
            "pass sheet= (--sheet) to choose the 4DME coding sheet"
        )
    return sheets[0]


def split_k_aus(text: object, where: str) -> tuple[object, tuple[int, ...]]:
    """The AU cell without its ``(k)``-marked AUs, and the numbers of those AUs.

    ``"AU4+AU7(k)+AU10"`` -> ``("AU4+AU10", (7,))``; a cell without ``(k)`` is returned
    unchanged.
    """
    if is_blank(text) or not isinstance(text, str) or "(" not in text:
        return text, ()
    kept: list[str] = []
    marked: list[int] = []
    for term in text.split("+"):
        m = _K_TERM.match(term.strip())
        if m:
            marked.extend(parse_aus(m.group("au"), where)[0])
        else:
            kept.append(term)
    if marked:
        log.info("%s: AUs %s marked (k) -> aus_k, not aus", where, marked)
    return "+".join(kept), tuple(sorted(set(marked)))


def _flag(value: object, column: str, where: str) -> bool:
    """An emotion-column cell: 1 -> True, 0 or blank -> False."""
    text = cell_text(value)
    if text in ("", "0"):
        return False
    if text == "1":
        return True
    raise SchemaError(f"{where}: {column.capitalize()} {value!r} is not 0, 1 or blank")


def read_4dme_sheet(path: str | Path) -> pd.DataFrame:
    """Read the 4DME coding sheet into tidy columns.

    Returns
    -------
    DataFrame
        ``subject`` (the sub_ID text), ``clip``, ``onset``, ``apex`` (``pd.NA`` if ``/``,
        ``-``, ``?`` or blank), ``offset``, ``emotion`` (lower case), ``emotions`` (tuple of
        :data:`EMOTION_COLUMNS` set to 1), ``aus``, ``au_sides``, ``au_intensities``,
        ``aus_k`` (tuple) and ``sheet_row`` (1-based Excel row).

    Raises
    ------
    SchemaError
        ``"<sheet> row <n> (<clip>): ..."`` for an unreadable cell, or naming the sheet
        when the header row is missing or the sheet has no clips.
    """
    path = Path(path)
    rows, used_sheet, _ = coding_sheet_rows(
        path,
        HEADERS,
        ("subid", "foldname"),
        anchor_text="'sub_ID' and 'fold_name'",
        required=REQUIRED_HEADERS,
    )
    records = []
    for excel_row, vals in rows:
        clip = cell_text(vals["clip"])
        where = f"{path.name} row {excel_row} ({clip or 'no fold_name'})"
        if not clip:
            raise SchemaError(f"{where}: fold_name is empty; fill it or delete the row")
        subject = cell_text(vals["subject"])
        if not subject:
            raise SchemaError(f"{where}: sub_ID is empty; fill it or delete the row")
        where = f"{path.name} row {excel_row} ({subject}/{clip})"
        apex = sheet_frame_value(vals["apex"], "Apex", where, allow_missing=True)
        if apex is pd.NA:
            log.warning("%s: Apex %r -> apex missing (clip kept)", where, vals["apex"])
        emotion = cell_text(vals["emotion"])
        if not emotion:
            raise SchemaError(f"{where}: Emotion is empty; fill it or delete the row")
        aus_text, aus_k = split_k_aus(vals["aus_text"], where)
        flags = tuple(e for e in EMOTION_COLUMNS if e in vals and _flag(vals[e], e, where))
        records.append(
            {
                "subject": subject,
                "clip": clip,
                "onset": sheet_frame_value(vals["onset"], "Onset", where, allow_missing=False),
                "apex": apex,
                "offset": sheet_frame_value(vals["offset"], "Offset", where, allow_missing=False),
                "emotion": emotion.lower(),
                "emotions": flags,
                **au_columns(aus_text, where),
                "aus_k": aus_k,
                "sheet_row": excel_row,
            }
        )
    table = records_table(records, f"{path}: the coding sheet has no clips")
    log.info("4DME: %d clips in %s (sheet %r)", len(table), path.name, used_sheet)
    return table


def load_4dme(
    root: str | Path,
    *,
    sheet: str | Path | None = None,
    frames: str | Path | None = None,
    fps: float = FPS,
    missing: str = "raise",
    fixes: bool = True,
) -> pd.DataFrame:
    """Load the 4DME micro-expression clips as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``4DME/``, or the 4DME folder itself.
    sheet : path, optional
        Coding sheet (default: the one ``*.xlsx`` in the 4DME folder).
    frames : path, optional
        Frame tree holding ``<sub_ID>/<fold_name>/`` (a relative path is taken inside the
        4DME folder; default: the 4DME folder itself).
    fps : float
        Frame rate of the frames read (60, the grey texture frames, by default).
    missing : {"raise", "skip"}
        A clip whose frames do not cover ``[onset, offset]`` raises a
        :class:`~merkit.data.schema.SchemaError` naming the clip and the missing frames,
        or (``"skip"``) is left out with a warning.
    fixes : bool or "all"
        ``True``: apply the clip-keyed corrections of ``fixes.toml`` for ``"4DME"`` (logged
        one per line) before validating. ``"all"``: also the opt-in positional fix, meb's
        swap of the AU and emotion cells (``aus``, ``au_sides``, ``au_intensities``,
        ``aus_k``, ``emotion``, ``emotions``) of sheet rows 144 and 145, which nothing in
        the data can confirm (a warning names both clips and the values swapped).
        ``False``: the sheet as distributed.

    Returns
    -------
    DataFrame
        Sample table plus ``emotions`` and ``aus_k``; ``n_frames`` counts the frames in
        the clip folder. ``attrs["source"]`` is the sheet, ``attrs["fixes_applied"]`` the
        applied fixes.

    Raises
    ------
    SchemaError
        For an unreadable cell (naming the sheet row and clip), an invalid table (e.g.
        apex outside [onset, offset], naming the clips) or missing frames.
    FileNotFoundError
        When no 4DME folder, sheet or frame folder is found.
    """
    check_missing_policy(missing)
    fourd_dir = database_dir(find_root, root, sheet)
    sheet_path = find_sheet(fourd_dir, sheet)
    frames_root = fourd_dir if frames is None else given_dir(frames, fourd_dir, "4DME frames")
    check_fix_mode(fixes)
    coded = read_4dme_sheet(sheet_path)
    table = sample_table(coded, DATASET, fps=float(fps), camera=CAMERA,
                         extra=("emotions", "aus_k"))  # fmt: skip
    if fixes:
        # meb's swap of the label cells of sheet rows 144 and 145: opt-in (fixes="all")
        table = apply_row_fixes(table, DATASET, opt_in=fixes == "all", source=sheet_path)
        table = apply_fixes(table, DATASET, source=sheet_path)
    applied = table.attrs.get("fixes_applied", [])
    validate(table, check_frames=False, source=str(sheet_path))
    clips = []
    for r in table.itertuples(index=False):
        sid = r.subject.split("/", 1)[1]
        folder = (child_dir(frames_root, sid) or frames_root / sid) / r.clip
        clips.append((f"{sid}/{r.clip}", folder, r.onset, r.offset))
    what = f"4DME frames missing under {frames_root}"
    table = attach_frames(table, clips, what=what, missing=missing, lister=last_number_frames)
    table = final_table(table, sheet_path, applied)
    log.info("4DME: %d clips loaded from %s", len(table), fourd_dir)
    return table


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_4dme},
    discover=discover,
    layout="4DME/ with its coding sheet",
)
