"""Coded clips from the coding sheets alone (no frames): the input of label statistics.

The database adapters (:mod:`merkit.data.adapters`) load a database only when its frames
are on disk. Statistics over the annotations (AU distributions, durations) need the
coding sheet only: :func:`load_coded` reads it with the adapter's own sheet reader, applies
the adapter's known sheet fixes (:mod:`merkit.data.fixes`) and returns a Sample table
validated without frames (``n_frames`` = ``offset - onset + 1``, ``frames_dir`` None).

The databases read this way are those of :data:`SHEET_LOADERS`, all coded with action
units: CASME II (200 fps), SAMM (200 fps), CAS(ME)^3 parts A and C (30 fps) and DFME (each
clip's own fps from the sheet, 200 / 300 / 500).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from merkit.data.adapters import casme2, casme3, dfme, discover, samm
from merkit.data.adapters._common import sample_table
from merkit.data.fixes import apply_fixes
from merkit.data.schema import validate

__all__ = ["SHEET_LOADERS", "coded_databases", "load_coded"]


def _finish(
    coded: pd.DataFrame, dataset: str, fps: object, camera: str, sheet: Path, fixes: bool
) -> pd.DataFrame:
    """Sample table of a coding-sheet table: fixes applied, validated without frames."""
    n_frames = pd.to_numeric(coded["offset"]) - pd.to_numeric(coded["onset"]) + 1
    table = sample_table(coded, dataset, fps=fps, camera=camera, n_frames=n_frames.to_numpy())
    if fixes:
        table = apply_fixes(table, dataset, source=sheet)
    applied = table.attrs.get("fixes_applied", [])
    table = validate(table, check_frames=False, source=str(sheet))
    table.attrs["source"] = str(sheet)
    table.attrs["fixes_applied"] = list(applied)
    return table


def _casme2(root: Path, fixes: bool) -> pd.DataFrame:
    sheet = casme2.find_sheet(casme2.find_root(root))
    coded = casme2.read_coding_sheet(sheet)
    return _finish(coded, casme2.DATASET, casme2.FPS, casme2.CAMERA, sheet, fixes)


def _samm(root: Path, fixes: bool) -> pd.DataFrame:
    sheet = samm.find_sheet(samm.find_root(root))
    coded = samm.read_samm_sheet(sheet)
    return _finish(coded, samm.DATASET, samm.FPS, samm.CAMERA, sheet, fixes)


def _casme3_a(root: Path, fixes: bool) -> pd.DataFrame:
    sheet = casme3.find_sheet(casme3.find_root(root), "A")
    coded = casme3.read_part_a_sheet(sheet)
    return _finish(coded, casme3.DATASET_A, casme3.FPS, casme3.CAMERA, sheet, fixes)


def _casme3_c(root: Path, fixes: bool) -> pd.DataFrame:
    sheet = casme3.find_sheet(casme3.find_root(root), "C")
    coded = casme3.read_part_c_sheet(sheet)
    return _finish(coded, casme3.DATASET_C, casme3.FPS, casme3.CAMERA, sheet, fixes)


def _dfme(root: Path, fixes: bool) -> pd.DataFrame:
    folder = dfme.find_root(root)
    sheets = dfme._sheet_paths(folder)
    if not sheets:
        raise FileNotFoundError(
            f"no DFME coding sheet in {folder}: expected {list(dfme.SHEETS.values())}"
        )
    tables = []
    for part in dfme.PARTS:
        if part in sheets:
            coded = dfme.read_dfme_sheet(sheets[part])
            tables.append(_finish(coded, dfme.DATASET, coded["fps"], dfme.CAMERA, sheets[part],
                                  fixes))  # fmt: skip
    table = pd.concat(tables, ignore_index=True)
    table = validate(table, check_frames=False, source=str(folder))
    table.attrs["source"] = str(folder)
    return table


#: dataset name -> ``f(root, fixes) -> Sample table`` read from its coding sheet alone
SHEET_LOADERS: dict[str, Callable[[Path, bool], pd.DataFrame]] = {
    "CASME2": _casme2,
    "SAMM": _samm,
    "CASME3_A": _casme3_a,
    "CASME3_C": _casme3_c,
    "DFME": _dfme,
}


def coded_databases(root: str | Path) -> list[str]:
    """Databases under ``root`` whose coding sheet :func:`load_coded` reads, in registry order.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    """
    return [name for name in discover(root) if name in SHEET_LOADERS]


def load_coded(root: str | Path, name: str, *, fixes: bool = True) -> pd.DataFrame:
    """The clips of database ``name`` under ``root``, read from its coding sheet(s) alone.

    Parameters
    ----------
    root : path
        Data root (or the database folder), as for :func:`merkit.data.adapters.discover`.
    name : str
        A key of :data:`SHEET_LOADERS` (case-insensitive).
    fixes : bool
        Apply the known sheet corrections of ``fixes.toml`` (default).

    Returns
    -------
    DataFrame
        Sample table (no frames; ``n_frames`` is the coded length), ``attrs["source"]``.

    Raises
    ------
    KeyError
        For a database whose sheet is not read here.
    SchemaError
        For an invalid sheet (naming the clips).
    """
    key = str(name).upper()
    if key not in SHEET_LOADERS:
        raise KeyError(
            f"database {name!r} has no coding sheet with action units read here; "
            f"choose one of {list(SHEET_LOADERS)}"
        )
    return SHEET_LOADERS[key](Path(root), fixes)
