"""``merkit report``: the HTML and Markdown report of a results folder."""

from __future__ import annotations

from pathlib import Path

from merkit.results.report import build_report

__all__ = ["run_report"]


def run_report(
    results_dir: str | Path,
    html: str | Path | None = None,
    md: str | Path | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    face: str | Path | None = None,
    criterion: str = "reverse",
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` of ``results_dir`` (or ``html`` / ``md``);
    returns their paths (:func:`merkit.results.report.build_report`)."""
    return build_report(results_dir, html, md, n_boot=n_boot, seed=seed, face=face,
                        criterion=criterion)  # fmt: skip
