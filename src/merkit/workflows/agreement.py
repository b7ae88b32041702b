"""``merkit agreement``: Fleiss' kappa of an annotation sheet (DFME Table 4)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from merkit.results.agreement import (
    AgreementSheet,
    FleissResult,
    fleiss,
    read_agreement_sheet,
)

__all__ = ["AgreementResult", "run_agreement"]


@dataclass
class AgreementResult:
    """What :func:`run_agreement` read and computed.

    Attributes
    ----------
    sheet : AgreementSheet
        The sheet as read (counts, categories, the format it was read as).
    fleiss : FleissResult
        Fleiss' kappa and its quantities.
    table : DataFrame
        Per category, as text: ``category``, ``share p_j`` and ``kappa_j`` (3 decimals;
        ``"n/a"`` where undefined).
    """

    sheet: AgreementSheet
    fleiss: FleissResult
    table: pd.DataFrame


def run_agreement(
    path: str | Path,
    *,
    format: str = "auto",
    id_column: str | None = None,
    worksheet: str | None = None,
) -> AgreementResult:
    """Read an annotation sheet (:func:`merkit.results.agreement.read_agreement_sheet`)
    and compute Fleiss' kappa with its per-category table."""
    sheet = read_agreement_sheet(path, format=format, id_column=id_column, sheet=worksheet)
    result = fleiss(sheet.counts, sheet.categories)
    rows = [{"category": cat, "share p_j": f"{share:.3f}",
             "kappa_j": "n/a" if kj != kj else f"{kj:.3f}"}
            for cat, share, kj in zip(result.categories, result.p_j, result.kappa_j,
                                      strict=True)]  # fmt: skip
    table = pd.DataFrame(rows, columns=["category", "share p_j", "kappa_j"])
    return AgreementResult(sheet, result, table)
