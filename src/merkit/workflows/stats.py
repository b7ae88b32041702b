"""``merkit stats``: label statistics of the AU-coded databases in a folder (DFME Tables 5-7).

For each database found under the folder whose coding sheet carries action units
(:data:`merkit.data.coded.SHEET_LOADERS`: CASME II, SAMM, CAS(ME)^3 A and C, DFME), read
from the sheet alone (no frames needed): the AU label distribution, the AUs of high
occurrence per emotion, the most frequent AU combinations per emotion, clip counts per
emotion and subject, and every clip's durations with the DFME micro/macro rule
(:mod:`merkit.results.stats`). Optionally writes one CSV per table (all databases, with a
``dataset`` column) and ``durations.png`` through :func:`merkit.store.write_stats`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from merkit import store
from merkit._io import ensure_writable_dir
from merkit.data.coded import SHEET_LOADERS, coded_databases, load_coded
from merkit.results.plots import figure_png
from merkit.results.stats import (
    HIGH_OCCURRENCE,
    au_by_emotion,
    au_combinations,
    au_distribution,
    clip_durations,
    clips_per_emotion,
    clips_per_subject,
    duration_figure,
    duration_summary,
    high_occurrence,
)

log = logging.getLogger(__name__)

__all__ = ["TABLES", "DatabaseStats", "StatsResult", "run_stats"]

#: the CSV files written (``<name>.csv``), in order
TABLES: tuple[str, ...] = (
    "au_distribution",
    "au_by_emotion",
    "au_combinations",
    "clips_per_emotion",
    "clips_per_subject",
    "durations",
    "duration_summary",
)


@dataclass
class DatabaseStats:
    """The statistics of one database (tables of :mod:`merkit.results.stats`)."""

    name: str
    source: str
    clips: int
    subjects: int
    au_distribution: pd.DataFrame
    au_by_emotion: pd.DataFrame
    high_occurrence: pd.DataFrame
    au_combinations: pd.DataFrame
    clips_per_emotion: pd.DataFrame
    clips_per_subject: pd.DataFrame
    durations: pd.DataFrame
    duration_summary: pd.DataFrame

    def table(self, name: str) -> pd.DataFrame:
        """The table ``name`` (one of :data:`TABLES`)."""
        return getattr(self, name)


@dataclass
class StatsResult:
    """What ``merkit stats`` computed, and the files it wrote (none without ``out``)."""

    root: Path
    databases: dict[str, DatabaseStats]
    files: list[Path] = field(default_factory=list)

    def combined(self, name: str) -> pd.DataFrame:
        """Table ``name`` of every database, one under the other, with a ``dataset`` column."""
        parts = []
        for db in self.databases.values():
            t = db.table(name).copy()
            t.insert(0, "dataset", db.name)
            parts.append(t)
        return pd.concat(parts, ignore_index=True)


def _database_names(root: Path, database: str | None) -> list[str]:
    found = coded_databases(root)
    if database is not None:
        key = database.upper()
        if key not in SHEET_LOADERS:
            raise ValueError(
                f"--database {database}: not a database with AU-coded sheets; choose one of "
                f"{list(SHEET_LOADERS)}"
            )
        if key not in found:
            raise FileNotFoundError(
                f"--database {database}: no {key} coding sheet under {root} (found: "
                f"{found or 'none'})"
            )
        return [key]
    if not found:
        raise FileNotFoundError(
            f"no database with AU labels under {root}: expected the coding sheet of one of "
            f"{list(SHEET_LOADERS)} (e.g. {root}/DFME/training_full_with_AU.xlsx or "
            f"{root}/CASME2/CASME2-coding-20190701.xlsx)"
        )
    return found


def database_stats(name: str, table: pd.DataFrame, top: int = 5) -> DatabaseStats:
    """Every statistic of one database's clip table."""
    by_emotion = au_by_emotion(table)
    durations = clip_durations(table)
    return DatabaseStats(
        name=name,
        source=str(table.attrs.get("source", "")),
        clips=len(table),
        subjects=int(table["subject"].nunique()),
        au_distribution=au_distribution(table),
        au_by_emotion=by_emotion,
        high_occurrence=high_occurrence(by_emotion, HIGH_OCCURRENCE),
        au_combinations=au_combinations(table, top),
        clips_per_emotion=clips_per_emotion(table),
        clips_per_subject=clips_per_subject(table),
        durations=durations,
        duration_summary=duration_summary(durations),
    )


def run_stats(
    root: str | Path,
    out: str | Path | None = None,
    *,
    database: str | None = None,
    top: int = 5,
    fixes: bool = True,
) -> StatsResult:
    """Label statistics of the AU-coded databases under ``root``.

    Parameters
    ----------
    root : path
        Folder holding databases (or one database folder); only coding sheets are read.
    out : path, optional
        Folder for the CSV tables (:data:`TABLES`) and ``durations.png``.
    database : str, optional
        Only this database (a key of :data:`~merkit.data.coded.SHEET_LOADERS`).
    top : int
        AU combinations kept per emotion.
    fixes : bool
        Apply the known sheet corrections (:mod:`merkit.data.fixes`).

    Raises
    ------
    FileNotFoundError
        ``root`` missing, or no AU-coded sheet under it (or not the one asked for).
    ValueError
        An unknown ``database`` or ``top`` < 1.
    """
    if top < 1:
        raise ValueError(f"--top {top}: give at least 1 combination per emotion")
    root = Path(root)
    names = _database_names(root, database)
    if out is not None:
        ensure_writable_dir(out)
    databases = {}
    for name in names:
        table = load_coded(root, name, fixes=fixes)
        databases[name] = database_stats(name, table, top)
        log.info("stats: %s, %d clips from %s", name, len(table), databases[name].source)
    result = StatsResult(root=root, databases=databases)
    if out is not None:
        tables = {name: result.combined(name) for name in TABLES}
        figure = figure_png(duration_figure({n: d.durations for n, d in databases.items()}))
        result.files = store.write_stats(out, tables, figure)
    return result
