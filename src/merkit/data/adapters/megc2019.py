"""The MEGC2019 composite database (CDE; See et al., 'MEGC 2019 - the second facial
micro-expressions grand challenge', FG 2019, doi:10.1109/FG.2019.8756611).

442 clips of 68 subjects: SMIC-HS 164 (16 subjects), CASME II 145 (24), SAMM 133 (28);
negative 250, positive 109, surprise 83. The official list ``combined_3class_gt.csv``
(no header: dataset, subject, clip, label with 0 negative, 1 positive, 2 surprise) is
joined to the three database tables; its spellings differ from the databases'
(``casme2 sub01``; ``smic s01 s01_ne_01`` for SMIC's ``s1`` / ``s1_ne_01``; ``samm 6``
for SAMM's ``006``), so rows are matched on (database, subject number, clip name) with
SMIC clip names canonicalised (:func:`~merkit.data.adapters.smic.smic_clip_name`).

The result keeps each clip's source ``dataset`` (``CASME2``, ``SMIC_HS``, ``SAMM``) and
subject (``CASME2/01``...), so leave-one-subject-out runs over the 68 subjects, and adds
``composite_label`` (the list's class name) with ``label`` / ``y`` set from it (classes
negative, positive, surprise). The list is authoritative: where it disagrees with the
``megc3`` mapping of a clip's native emotion, the list wins and the clips are logged and
recorded in ``attrs["label_disagreements"]``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.data.adapters._common import AdapterSpec, child_dir, found_in, records_table
from merkit.data.adapters.casme2 import load_casme2
from merkit.data.adapters.samm import load_samm
from merkit.data.adapters.smic import load_smic, smic_clip_name, smic_subject_id
from merkit.data.labels import SCHEMES
from merkit.data.schema import SchemaError, validate

log = logging.getLogger(__name__)

DATASET = "MEGC2019"
LIST_NAME = "combined_3class_gt.csv"
#: label codes of the list
LIST_LABELS: dict[int, str] = {0: "negative", 1: "positive", 2: "surprise"}
CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")
#: list dataset code -> dataset name of the Sample tables
SOURCES: dict[str, str] = {"casme2": "CASME2", "smic": "SMIC_HS", "samm": "SAMM"}
#: where :func:`load_megc2019` looks for the list, relative to the data root
LIST_DIRS: tuple[str, ...] = (".", "MEGC2019", "megc2019")


def _number(text: str) -> int | None:
    m = re.fullmatch(r"(?:sub|s)?0*(\d+)(?:\.0+)?", str(text).strip(), flags=re.IGNORECASE)
    return int(m.group(1)) if m else None


def _clip_key(dataset: str, clip: str) -> str:
    clip = str(clip).strip()
    if dataset == "SMIC_HS":
        try:
            return smic_clip_name(clip)
        except ValueError:
            return clip
    return clip


def read_composite_list(path: str | Path) -> pd.DataFrame:
    """Read ``combined_3class_gt.csv`` (no header: dataset, subject, clip, label).

    Returns
    -------
    DataFrame
        ``dataset`` (``CASME2`` / ``SMIC_HS`` / ``SAMM``), ``subject_number`` (int),
        ``clip`` (canonical spelling), ``list_subject`` and ``list_clip`` (as written),
        ``composite_label`` and ``list_row`` (1-based line).

    Raises
    ------
    SchemaError
        Naming the line for an unknown dataset code, subject or label, a SMIC clip of
        another subject, or a clip listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MEGC2019 composite list {path} does not exist")
    raw = pd.read_csv(path, header=None, dtype=str, skip_blank_lines=True, keep_default_na=False)
    if raw.shape[1] != 4:
        raise SchemaError(
            f"{path}: expected 4 columns (dataset, subject, clip, label), found {raw.shape[1]}"
        )
    records, errors = [], []
    for i, row in enumerate(raw.itertuples(index=False), start=1):
        code, subj, clip, label = (str(v).strip() for v in row)
        where = f"{path.name} line {i} ({code} {subj} {clip})"
        dataset = SOURCES.get(code.lower())
        number = _number(subj)
        if dataset is None:
            errors.append(f"{where}: dataset {code!r} is not one of {list(SOURCES)}")
            continue
        if number is None:
            errors.append(f"{where}: subject {subj!r} is not a subject number")
            continue
        if not re.fullmatch(r"\d+", label) or int(label) not in LIST_LABELS:
            errors.append(f"{where}: label {label!r} is not one of {list(LIST_LABELS)}")
            continue
        key = _clip_key(dataset, clip)
        if dataset == "SMIC_HS" and not key.startswith(smic_subject_id(number) + "_"):
            errors.append(f"{where}: SMIC clip {clip!r} does not belong to subject {subj!r}")
            continue
        records.append(
            {
                "dataset": dataset,
                "subject_number": number,
                "clip": key,
                "list_subject": subj,
                "list_clip": clip,
                "composite_label": LIST_LABELS[int(label)],
                "list_row": i,
            }
        )
    if errors:
        raise SchemaError(f"{path}: {len(errors)} bad line(s)\n  " + "\n  ".join(errors[:20]))
    table = records_table(records, f"{path}: the list has no clips")
    dup = table.duplicated(["dataset", "subject_number", "clip"], keep=False)
    if dup.any():
        lines = table.loc[dup, "list_row"].tolist()
        raise SchemaError(f"{path}: clips listed twice, lines {lines[:20]}")
    return table


def megc2019_composite(
    casme2: pd.DataFrame,
    smic_hs: pd.DataFrame,
    samm: pd.DataFrame,
    list_path: str | Path,
) -> pd.DataFrame:
    """Join the official composite list to already-loaded database tables.

    Parameters
    ----------
    casme2, smic_hs, samm : DataFrame
        Sample tables of CASME II, SMIC-HS and SAMM (e.g. from ``load_casme2``,
        ``load_smic(camera="hs")``, ``load_samm``); extra clips are left out (logged).
    list_path : path
        ``combined_3class_gt.csv``.

    Returns
    -------
    DataFrame
        The listed clips in list order (validated Sample table; columns of the three
        tables are kept, missing ones are NA) plus ``composite_label``, ``label``, ``y``
        and ``list_row``. ``attrs``: ``source``, ``scheme`` (``"megc2019_list"``),
        ``classes`` and ``label_disagreements`` (list of ``(dataset, subject, clip,
        native emotion, megc3 class or None, list class)``).

    Raises
    ------
    SchemaError
        Naming every list line that matches no clip (or several) of its database table.
    """
    listed = read_composite_list(list_path)
    given = {"CASME2": casme2, "SMIC_HS": smic_hs, "SAMM": samm}
    index: dict[tuple[str, int, str], list[int]] = {}
    frames = []
    offset = 0
    for name, table in given.items():
        for c in ("dataset", "subject", "clip"):
            if c not in table.columns:
                raise SchemaError(f"megc2019_composite: the {name} table lacks column {c!r}")
        t = table.reset_index(drop=True)
        for j, (ds, subj, clip) in enumerate(
            zip(t["dataset"], t["subject"], t["clip"], strict=True)
        ):
            if str(ds) != name:
                raise SchemaError(
                    f"megc2019_composite: the {name} table holds a {ds} clip ({subj}/{clip})"
                )
            number = _number(str(subj).split("/", 1)[-1])
            if number is None:
                raise SchemaError(f"megc2019_composite: {name} subject {subj!r} has no number")
            index.setdefault((name, number, _clip_key(name, clip)), []).append(offset + j)
        frames.append(t)
        offset += len(t)
    pool = pd.concat(frames, ignore_index=True)

    picked: list[int] = []
    errors: list[str] = []
    list_name = Path(list_path).name
    for r in listed.itertuples(index=False):
        hits = index.get((r.dataset, r.subject_number, r.clip), [])
        where = f"{list_name} line {r.list_row} ({r.dataset} {r.list_subject} {r.list_clip})"
        if not hits:
            errors.append(f"{where}: no such clip in the {r.dataset} table")
        elif len(hits) > 1:
            errors.append(f"{where}: {len(hits)} clips of the {r.dataset} table match")
        else:
            picked.append(hits[0])
    if errors:
        more = f"\n  (+{len(errors) - 20} more)" if len(errors) > 20 else ""
        raise SchemaError(
            f"MEGC2019 composite: {len(errors)} list line(s) do not match exactly one clip\n  "
            + "\n  ".join(errors[:20])
            + more
        )
    for name, table in given.items():
        left = len(table) - int(listed["dataset"].eq(name).sum())
        if left:
            log.info("MEGC2019 composite: %d %s clips are not in the list (left out)", left, name)
    out = pool.iloc[picked].reset_index(drop=True)
    out["composite_label"] = listed["composite_label"].to_numpy()
    out["list_row"] = listed["list_row"].to_numpy()
    out["label"] = out["composite_label"]
    out["y"] = np.array([CLASSES.index(c) for c in out["label"]], dtype=np.int64)

    megc3 = SCHEMES["megc3"]
    disagree = []
    for row in out.itertuples(index=False):
        key = ("SMIC" if row.dataset == "SMIC_HS" else row.dataset, str(row.emotion).lower())
        native = megc3.mapping.get(key, "unknown")
        if native != row.composite_label:
            disagree.append(
                (row.dataset, row.subject, row.clip, str(row.emotion), native, row.composite_label)
            )
    if disagree:
        shown = ", ".join(f"{d[1]}/{d[2]} ({d[3]} -> list {d[5]})" for d in disagree[:10])
        log.warning(
            "MEGC2019 composite: the list's label differs from the megc3 mapping of the native "
            "emotion for %d clips (the list is used): %s",
            len(disagree),
            shown,
        )
    out = validate(out, check_frames=False, classes=CLASSES, source=str(list_path))
    out.attrs = {
        "source": str(list_path),
        "scheme": "megc2019_list",
        "classes": CLASSES,
        "label_disagreements": disagree,
    }
    counts = out["label"].value_counts().to_dict()
    log.info(
        "MEGC2019 composite: %d clips, %d subjects, %s",
        len(out),
        out["subject"].nunique(),
        counts,
    )
    return out


def find_list(root: str | Path, list_path: str | Path | None = None) -> Path:
    """The composite list: ``list_path`` if given, else ``combined_3class_gt.csv`` in the
    data root or its ``MEGC2019/`` folder."""
    root = Path(root)
    if list_path is not None:
        p = Path(list_path)
        p = p if p.is_absolute() or p.exists() else root / p
        if not p.is_file():
            raise FileNotFoundError(f"MEGC2019 composite list {p} does not exist")
        return p
    for name in LIST_DIRS:
        folder = root if name == "." else child_dir(root, name)
        if folder is not None and (folder / LIST_NAME).is_file():
            return folder / LIST_NAME
    raise FileNotFoundError(
        f"no MEGC2019 composite list {LIST_NAME} in {root} or {root / 'MEGC2019'}"
    )


def discover(root: str | Path) -> list[str]:
    """``["MEGC2019"]`` if the composite list is in the data root or its ``MEGC2019/``
    folder, else ``[]`` (the registry asks only once CASME II, SMIC-HS and SAMM are found)."""
    return [DATASET] if found_in(find_list, root) else []


def load_megc2019(
    root: str | Path,
    *,
    list_path: str | Path | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    missing: str = "raise",
) -> pd.DataFrame:
    """Load CASME II, SMIC-HS and SAMM from ``root`` and join them to the composite list.

    Parameters
    ----------
    root : path
        Data root holding ``CASME2/``, ``SMIC/`` and ``SAMM/`` in their native layouts.
    list_path : path, optional
        The list (default: :func:`find_list`).
    tables : mapping, optional
        Already-loaded tables by dataset name (``"CASME2"``, ``"SMIC_HS"``, ``"SAMM"``);
        those databases are not loaded from ``root``.
    missing : {"raise", "skip"}
        Passed to the database loaders. With ``"skip"`` a clip left out for missing frames
        makes its list line unmatched, which still raises: the composite is all or nothing.

    Returns
    -------
    DataFrame
        See :func:`megc2019_composite`.
    """
    given = dict(tables or {})
    unknown = [k for k in given if k not in SOURCES.values()]
    if unknown:
        raise KeyError(f"tables= keys {unknown} are not among {list(SOURCES.values())}")
    path = find_list(root, list_path)
    if "CASME2" not in given:
        given["CASME2"] = load_casme2(root, missing=missing)
    if "SMIC_HS" not in given:
        given["SMIC_HS"] = load_smic(root, camera="hs", missing=missing)
    if "SAMM" not in given:
        given["SAMM"] = load_samm(root, missing=missing)
    return megc2019_composite(given["CASME2"], given["SMIC_HS"], given["SAMM"], path)


#: what the registry (:mod:`merkit.data.adapters`) needs from this module
ADAPTER = AdapterSpec(
    loaders={DATASET: load_megc2019},
    discover=discover,
    layout=None,
    requires=tuple(SOURCES.values()),
)
