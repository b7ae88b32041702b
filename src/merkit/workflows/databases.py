"""Databases on disk, as every workflow reads them: found, labelled, clips left out listed.

Also ``merkit datasets`` (:func:`database_summary`) and the default feature-cache folder
the workflows share (:func:`default_cache_dir`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.data.adapters import discover, load_dataset
from merkit.data.adapters._common import collect_skipped
from merkit.data.labels import apply_scheme, get_scheme
from merkit.features.cache import CACHE_DIRNAME, FeatureCache

log = logging.getLogger(__name__)

__all__ = [
    "CDMER_DATABASES",
    "SKIPPED_COLUMNS",
    "cache_folder",
    "database_summary",
    "default_cache_dir",
    "feature_cache",
    "load_databases",
    "missing_policy",
    "scheme_classes",
    "skipped_clips",
]

#: the four databases of the CDMER benchmark, in table order
CDMER_DATABASES: tuple[str, ...] = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")
#: columns of the lists of left-out clips (``F.skipped.csv``, ``skipped.csv`` written by
#: :func:`merkit.store.write_skipped`)
SKIPPED_COLUMNS: tuple[str, ...] = ("dataset", "subject", "clip", "reason")


def load_databases(
    root: str | Path,
    *,
    names: Sequence[str] | None = None,
    scheme: str = "cdmer3",
    missing: str = "raise",
) -> dict[str, pd.DataFrame]:
    """Read every database found under ``root`` and apply a label scheme.

    Parameters
    ----------
    root : path
        Folder holding the databases in their native layouts (``CASME2/``, ``SMIC/``...).
    names : sequence of str, optional
        Databases to read (case-insensitive); each must be present. Default: all that
        :func:`discover` finds among the CDMER four.
    scheme : str
        Label scheme name (:mod:`merkit.data.labels`), or ``"none"``: keep every clip,
        labelled with its native emotion (``label``; ``y`` indexes the sorted emotions of
        all the databases read, recorded in ``attrs["classes"]``).
    missing : {"raise", "error", "skip"}
        Clips whose frames are missing or incomplete: stop with the list (``"raise"`` or
        ``"error"``), or leave them out (``"skip"``): their ``"<clip>: <problem>"`` lines
        go to the table's ``attrs["skipped_clips"]`` (see :func:`skipped_clips`).

    Returns
    -------
    dict
        Database name -> validated, labelled Sample table.
    """
    policy = missing_policy(missing)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    found = discover(root)
    if names:
        by_upper = {n.upper(): n for n in found}
        absent = [n for n in names if n.upper() not in by_upper]
        if absent:
            raise FileNotFoundError(
                f"database(s) {absent} not found under {root} (found: {found or 'none'})"
            )
        wanted = list(dict.fromkeys(by_upper[n.upper()] for n in names))
    else:
        wanted = [n for n in CDMER_DATABASES if n in found]
    if not wanted:
        raise FileNotFoundError(
            f"no database found in {root}: expected one of {list(names or CDMER_DATABASES)} "
            "in its native layout (CASME2/ with a coding sheet, SMIC/HS|VIS|NIR/...)"
        )
    tables = {}
    for n in wanted:
        with collect_skipped() as lines:
            tables[n] = load_dataset(n, root, missing=policy)
        if lines:
            tables[n].attrs["skipped_clips"] = tuple(lines)
    if str(scheme).lower() == "none":
        return _label_native(tables)
    return {n: apply_scheme(t, scheme) for n, t in tables.items()}


def missing_policy(missing: str) -> str:
    """``"error"`` / ``"raise"`` -> ``"raise"``, ``"skip"`` -> ``"skip"``: what to do with
    clips whose frames are missing (the CLI's ``--missing error|skip``)."""
    value = str(missing).strip().lower()
    if value in ("error", "raise", "skip"):
        return "skip" if value == "skip" else "raise"
    raise ValueError(
        f"--missing {missing!r}: expected 'error' (stop and list the clips whose frames are "
        "missing) or 'skip' (leave them out, listed)"
    )


def skipped_clips(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``dataset, subject, clip, reason`` of the clips :func:`load_databases` left out
    (``missing="skip"``; ``clip`` is the adapter's clip name, ``subject`` is empty)."""
    rows = []
    for name, t in tables.items():
        for line in t.attrs.get("skipped_clips", ()):
            clip, _, reason = str(line).partition(": ")
            rows.append({"dataset": name, "subject": "", "clip": clip, "reason": reason})
    return pd.DataFrame(rows, columns=list(SKIPPED_COLUMNS))


def _label_native(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``label`` = native emotion, ``y`` = its index among the sorted emotions of all tables."""
    classes = tuple(sorted({str(e) for t in tables.values() for e in t["emotion"]}))
    out = {}
    for name, t in tables.items():
        t = t.copy()
        t["label"] = t["emotion"].astype(str)
        t["y"] = np.array([classes.index(e) for e in t["label"]], dtype=np.int64)
        t.attrs = {**t.attrs, "scheme": "none", "classes": classes, "dropped": {}}
        out[name] = t
    return out


def scheme_classes(tables: dict[str, pd.DataFrame], scheme: str) -> tuple[str, ...]:
    """Class names indexed by ``y`` for tables labelled by :func:`load_databases`."""
    if str(scheme).lower() == "none":
        first = next(iter(tables.values()), None)
        return tuple(first.attrs.get("classes", ())) if first is not None else ()
    return get_scheme(scheme).classes


def default_cache_dir(data_dir: str | Path) -> Path:
    """``<data_dir>/.merkit-cache``, or a per-user folder when ``data_dir`` is read-only.

    The fallback is ``$XDG_CACHE_HOME/merkit/features`` (``~/.cache/merkit/features``);
    cache keys hold the clip identity and its frame files' names, sizes and times, so
    databases never share entries by accident.
    """
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_DIRNAME
    try:
        cache.mkdir(exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache, prefix=".probe", delete=True)
        probe.close()
        return cache
    except OSError as err:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        fallback = home / "merkit" / "features"
        log.warning("cannot write the feature cache %s (%s); using %s", cache, err, fallback)
        return fallback


def cache_folder(data_dir: str | Path, cache: str | Path | bool | None) -> Path | None:
    """The cache folder a workflow uses: ``cache`` itself, :func:`default_cache_dir` of
    ``data_dir`` (``cache`` None or True), or None (``cache`` False: no cache)."""
    if cache is False:
        return None
    if cache is None or cache is True:
        return default_cache_dir(data_dir)
    return Path(cache)


def feature_cache(data_dir: str | Path, cache: str | Path | bool | None) -> FeatureCache | None:
    """The per-clip feature cache in :func:`cache_folder` (None: no cache)."""
    folder = cache_folder(data_dir, cache)
    return None if folder is None else FeatureCache(folder)


def database_summary(root: str | Path, scheme: str | None = None) -> pd.DataFrame:
    """``merkit datasets``: one row per database found under ``root``.

    Columns ``database, clips, subjects, fps`` (the frame rates, comma list) and
    ``labels`` (``"<label> <count>"`` comma list: native emotions, or the labels of
    ``scheme``), all text.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    names = discover(root)
    if not names:
        raise FileNotFoundError(f"no database in a native layout found under {root}")
    rows = []
    for name in names:
        t = load_dataset(name, root)
        column = "emotion"
        if scheme:
            t = apply_scheme(t, scheme)
            column = "label"
        counts = ", ".join(f"{k} {v}" for k, v in t[column].value_counts().sort_index().items())
        fps = ", ".join(f"{f:g}" for f in sorted(t["fps"].unique()))
        rows.append({"database": name, "clips": str(len(t)),
                     "subjects": str(t["subject"].nunique()), "fps": fps,
                     "labels": counts})  # fmt: skip
    return pd.DataFrame(rows, columns=["database", "clips", "subjects", "fps", "labels"])
