"""Helpers of the adapter tests: small coding sheets and numbered frame files in tmp_path.

Imported by the test modules (``from tests.data._files import write_xlsx``).
"""

from __future__ import annotations

import os
from pathlib import Path

import openpyxl


def write_xlsx(path: Path, header: list, rows: list[list], title: str | None = None) -> Path:
    """A one-sheet workbook holding ``header`` then ``rows`` (parent folders created)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    if title is not None:
        ws.title = title
    ws.append(header)
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def write_numbered(folder: Path, first: int, last: int, pattern: str, data: bytes) -> None:
    """Files ``pattern.format(n)`` (``"img{}.jpg"``) holding ``data``, n = first..last."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        (folder / pattern.format(n)).write_bytes(data)


def link_numbered(folder: Path, first: int, last: int, pattern: str, master: Path) -> None:
    """Hard links ``pattern.format(n)`` of the file ``master``, n = first..last (existing
    files are kept), so large frame trees cost no disk space."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        p = folder / pattern.format(n)
        if not p.exists():
            os.link(master, p)
