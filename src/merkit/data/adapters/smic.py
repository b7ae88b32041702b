"""SMIC (Li et al., 'A spontaneous micro-expression database', FG 2013): HS, VIS, NIR.

Layout read here::

    <root>/SMIC/                       (or the SMIC folder itself)
        smic-3classes.csv              optional onset/apex/offset list (HS)
        HS/s1/micro/negative/s1_ne_01/image559740.bmp ...
        VIS/s1/micro/positive/s1_po_01/...
        NIR/...

Names: releases spell subjects ``s1`` or ``s01`` and clips ``s1_ne_01`` or
``s01_ne_01``. The canonical spelling here has no zero padding (``"s1"``,
``"s1_ne_01"``; :func:`smic_subject_id`, :func:`smic_clip_name`), so the same person is
``"SMIC_HS/s1"`` and ``"SMIC_VIS/s1"``; ``smic_clip_name(name, padded=True)`` gives
the ``s01_ne_01`` spelling of the list and of the MEGC2019 composite.

One row per clip folder: dataset ``SMIC_HS`` / ``SMIC_VIS`` / ``SMIC_NIR``, emotion from
the folder (negative / positive / surprise), fps 100 (HS) or 25 (VIS, NIR), camera
``"hs"`` / ``"vis"`` / ``"nir"``. Onset/apex/offset come from the list when there is one
(HS by default); otherwise onset and offset are the first and last frame number on disk
and apex is missing.

The list ``smic-3classes.csv`` has no header: subject, clip, onset, apex, offset,
label (1 positive, 2 negative, 3 surprise).
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import pandas as pd

from merkit.data.adapters._common import (
    AdapterSpec,
    check_missing_policy,
    child_dir,
    clip_frames_problem,
    find_database_dir,
    frame_numbers,
    report,
)
from merkit.data.schema import SchemaError, empty_table, validate

log = logging.getLogger(__name__)

CAMERAS: tuple[str, ...] = ("hs", "vis", "nir")
FPS: dict[str, float] = {"hs": 100.0, "vis": 25.0, "nir": 25.0}
EMOTIONS: tuple[str, ...] = ("negative", "positive", "surprise")
#: clip-name abbreviation -> emotion
ABBREVIATIONS: dict[str, str] = {"ne": "negative", "po": "positive", "sur": "surprise"}
#: label column of smic-3classes.csv -> emotion
LIST_LABELS: dict[int, str] = {1: "positive", 2: "negative", 3: "surprise"}
LIST_NAME = "smic-3classes.csv"

_SUBJECT = re.compile(r"^s0*(\d+)$", re.IGNORECASE)
_CLIP = re.compile(r"^s0*(?P<subject>\d+)_(?P<abbr>ne|po|sur)_(?P<count>\d+)$", re.IGNORECASE)


def dataset_name(camera: str) -> str:
    """``"hs"`` -> ``"SMIC_HS"``."""
    return f"SMIC_{_camera(camera).upper()}"


def _camera(camera: str) -> str:
    cam = str(camera).lower()
    if cam not in CAMERAS:
        raise ValueError(f"SMIC camera must be one of {CAMERAS}, got {camera!r}")
    return cam


def smic_subject_id(value: object) -> str:
    """Canonical SMIC subject id: ``"s01"``, ``"S1"``, ``"1"``, ``1`` -> ``"s1"``."""
    text = str(value).strip()
    m = _SUBJECT.match(text) or re.fullmatch(r"0*(\d+)(?:\.0+)?", text)
    if not m:
        raise ValueError(f"{value!r} is not a SMIC subject name like 's1' or 's01'")
    return f"s{int(m.group(1))}"


def smic_clip_name(value: object, *, padded: bool = False) -> str:
    """Canonical SMIC clip name: ``"s01_ne_01"`` -> ``"s1_ne_01"``.

    With ``padded=True`` the subject is written with two digits (``"s01_ne_01"``), the
    spelling of ``smic-3classes.csv`` and the MEGC2019 composite list.
    """
    m = _CLIP.match(str(value).strip())
    if not m:
        raise ValueError(
            f"{value!r} is not a SMIC clip name like 's1_ne_01' / 's01_sur_02' "
            "(s<subject>_<ne|po|sur>_<number>)"
        )
    n = int(m.group("subject"))
    subject = f"s{n:02d}" if padded else f"s{n}"
    return f"{subject}_{m.group('abbr').lower()}_{m.group('count')}"


def find_root(root: str | Path) -> Path:
    """The SMIC folder: ``<root>/SMIC`` if it exists, else ``root`` if it holds HS/VIS/NIR;
    :class:`FileNotFoundError` naming the expected layout otherwise."""
    return find_database_dir(
        root,
        "SMIC",
        ("SMIC",),
        lambda folder: any(child_dir(folder, c) is not None for c in CAMERAS),
        "or camera folders HS/, VIS/ or NIR/ in it",
    )


def discover(root: str | Path) -> list[str]:
    """The SMIC cameras present under ``root`` (``["SMIC_HS", "SMIC_VIS"]``...: a camera
    folder HS/, VIS/ or NIR/ in the SMIC folder), in :data:`CAMERAS` order; ``[]`` if none."""
    try:
        smic_dir = find_root(root)
    except FileNotFoundError:
        return []
    return [dataset_name(cam) for cam in CAMERAS if child_dir(smic_dir, cam.upper()) is not None]


def read_smic_list(path: str | Path) -> pd.DataFrame:
    """Read ``smic-3classes.csv`` (no header: subject, clip, onset, apex, offset, label).

    Returns
    -------
    DataFrame
        ``subject`` and ``clip`` in canonical spelling, ``onset``, ``apex``, ``offset``
        (int), ``emotion`` (from the label: 1 positive, 2 negative, 3 surprise) and
        ``list_row`` (1-based line).
    """
    path = Path(path)
    raw = pd.read_csv(path, header=None, dtype=str, skip_blank_lines=True)
    if raw.shape[1] != 6:
        raise SchemaError(
            f"{path}: expected 6 columns (subject, clip, onset, apex, offset, label), "
            f"found {raw.shape[1]}"
        )
    records = []
    for i, row in enumerate(raw.itertuples(index=False), start=1):
        subj, clip, onset, apex, offset, label = (str(v).strip() for v in row)
        where = f"{path.name} line {i} ({clip})"
        try:
            subject = smic_subject_id(subj)
            name = smic_clip_name(clip)
            frames = [int(onset), int(apex), int(offset)]
            emotion = LIST_LABELS[int(label)]
        except (ValueError, KeyError) as err:
            raise SchemaError(f"{where}: cannot read {tuple(row)}: {err}") from None
        if not name.startswith(subject + "_"):
            raise SchemaError(f"{where}: clip {clip!r} does not belong to subject {subj!r}")
        records.append(
            {
                "subject": subject,
                "clip": name,
                "onset": frames[0],
                "apex": frames[1],
                "offset": frames[2],
                "emotion": emotion,
                "list_row": i,
            }
        )
    table = pd.DataFrame.from_records(records)
    dup = table.duplicated("clip", keep=False)
    if dup.any():
        raise SchemaError(f"{path}: clips listed twice: {sorted(set(table.loc[dup, 'clip']))}")
    return table


def _scan(cam_dir: Path, dataset: str) -> tuple[list[dict], list[str]]:
    """Clip folders ``s*/micro/<emotion>/<clip>`` under a camera folder."""
    clips: list[dict] = []
    bad: list[str] = []
    for subj_dir in sorted(p for p in cam_dir.iterdir() if p.is_dir()):
        try:
            subject = smic_subject_id(subj_dir.name)
        except ValueError:
            log.info("SMIC: %s is not a subject folder (s<N>); ignored", subj_dir)
            continue
        micro = child_dir(subj_dir, "micro")
        if micro is None:
            log.warning("SMIC: %s has no micro/ folder; subject ignored", subj_dir)
            continue
        for emo_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            emotion = emo_dir.name.lower()
            if emotion not in EMOTIONS:
                bad.append(f"{emo_dir}: emotion folder is not one of {list(EMOTIONS)}")
                continue
            for clip_dir in sorted(p for p in emo_dir.iterdir() if p.is_dir()):
                try:
                    clip = smic_clip_name(clip_dir.name)
                except ValueError as err:
                    bad.append(f"{clip_dir}: {err}")
                    continue
                if not clip.startswith(subject + "_"):
                    bad.append(f"{clip_dir}: clip of another subject than {subj_dir.name}")
                    continue
                abbr = clip.split("_")[1]
                if ABBREVIATIONS[abbr] != emotion:
                    log.warning(
                        "%s/%s: clip name says %s but the folder says %s; the folder is used",
                        dataset,
                        clip,
                        ABBREVIATIONS[abbr],
                        emotion,
                    )
                clips.append(
                    {"subject": subject, "clip": clip, "emotion": emotion, "dir": clip_dir}
                )
    return clips, bad


def load_smic(
    root: str | Path,
    camera: str = "hs",
    *,
    annotations: str | Path | None = None,
    missing: str = "raise",
) -> pd.DataFrame:
    """Load one SMIC camera as a validated Sample table.

    Parameters
    ----------
    root : path
        Folder holding ``SMIC/``, or the SMIC folder itself.
    camera : {"hs", "vis", "nir"}
        Camera sub-database.
    annotations : path, optional
        Onset/apex/offset list in the ``smic-3classes.csv`` format. Default: that file in
        the SMIC folder for HS if present; none for VIS and NIR (their frame numbers
        differ from HS).
    missing : {"raise", "skip"}
        A clip listed but not on disk, on disk but not listed, or whose frames do not cover
        ``[onset, offset]`` (without a list: with a gap between its first and last frame)
        raises a :class:`~merkit.data.schema.SchemaError` naming the
        clips, or (``"skip"``) is left out with a warning.

    Raises
    ------
    SchemaError
        Also when the list's label disagrees with the clip's emotion folder.
    """
    check_missing_policy(missing)
    cam = _camera(camera)
    dataset = dataset_name(cam)
    smic_dir = find_root(root)
    cam_dir = child_dir(smic_dir, cam.upper())
    if cam_dir is None:
        raise FileNotFoundError(
            f"no SMIC {cam.upper()} folder in {smic_dir}: expected "
            f"{smic_dir / cam.upper()}/s<N>/micro/<emotion>/<clip>/"
        )
    clips, bad = _scan(cam_dir, dataset)
    if bad:
        raise SchemaError(f"{dataset}: unexpected folders under {cam_dir}:\n  " + "\n  ".join(bad))
    if not clips:
        raise FileNotFoundError(
            f"no SMIC clips in {cam_dir}: expected s<N>/micro/<negative|positive|surprise>/<clip>/"
        )

    list_path: Path | None = Path(annotations) if annotations is not None else None
    if list_path is None and cam == "hs" and (smic_dir / LIST_NAME).is_file():
        list_path = smic_dir / LIST_NAME
    listed = None
    if list_path is not None:
        if not list_path.is_file():
            raise FileNotFoundError(f"SMIC annotation list {list_path} does not exist")
        listed = read_smic_list(list_path).set_index("clip")
        log.info("%s: onset/apex/offset from %s (%d clips)", dataset, list_path, len(listed))
    else:
        log.info("%s: no annotation list; onset/offset = first/last frame on disk", dataset)

    problems: list[str] = []
    wrong_label: list[str] = []
    rows = []
    on_disk = {c["clip"] for c in clips}
    if listed is not None:
        for name in sorted(set(listed.index) - on_disk):
            problems.append(f"{name}: in {list_path.name} but not on disk under {cam_dir}")
    for c in clips:
        nums = frame_numbers(c["dir"])
        if nums.size == 0:
            problems.append(f"{c['clip']}: no frames in {c['dir']}")
            continue
        if listed is not None:
            if c["clip"] not in listed.index:
                problems.append(f"{c['clip']}: on disk ({c['dir']}) but not in {list_path.name}")
                continue
            entry = listed.loc[c["clip"]]
            if entry["emotion"] != c["emotion"]:
                wrong_label.append(
                    f"{c['clip']}: {list_path.name} line {entry['list_row']} says "
                    f"{entry['emotion']}, folder {c['dir'].parent.name}"
                )
                continue
            onset, apex, offset = int(entry["onset"]), int(entry["apex"]), int(entry["offset"])
        else:
            onset, apex, offset = int(nums[0]), pd.NA, int(nums[-1])
        problem = clip_frames_problem(nums, onset, offset, c["dir"])
        if problem:
            problems.append(f"{c['clip']}: {problem}")
            continue
        rows.append(
            {
                "dataset": dataset,
                "subject": f"{dataset}/{c['subject']}",
                "clip": c["clip"],
                "frames_dir": str(c["dir"]),
                "video_path": None,
                "n_frames": int(nums.size),
                "fps": FPS[cam],
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "emotion": c["emotion"],
                "aus": (),
                "au_sides": (),
                "au_intensities": (),
                "camera": cam,
            }
        )
    if wrong_label:
        raise SchemaError(
            f"{dataset}: the annotation list and the emotion folders disagree:\n  "
            + "\n  ".join(wrong_label)
        )
    report(problems, what=f"{dataset} clips missing or incomplete", missing=missing)
    table = pd.DataFrame.from_records(rows) if rows else empty_table()
    table = validate(table, check_frames=False, source=str(cam_dir))
    table = table.sort_values(["subject", "clip"], key=_natural_key).reset_index(drop=True)
    table.attrs["source"] = str(list_path or cam_dir)
    log.info("%s: %d clips loaded from %s", dataset, len(table), cam_dir)
    return table


def _natural_key(col: pd.Series) -> pd.Series:
    """Sort ``s2`` before ``s10`` (zero-pad the numbers in the name)."""
    return col.astype(str).str.replace(r"\d+", lambda m: m.group(0).zfill(6), regex=True)


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={dataset_name(cam): functools.partial(load_smic, camera=cam) for cam in CAMERAS},
    discover=discover,
    layout="SMIC/ with HS/, VIS/ or NIR/ camera folders",
)
