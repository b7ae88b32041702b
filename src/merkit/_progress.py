"""The one rich progress bar of merkit's long runs (extraction, CDMER, grids, training)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["progress_bar"]


def progress_bar(enabled: bool, *, label: str = "", console: Console | None = None) -> Progress:
    """``[<label>] <description> [bar] n/N elapsed``; a no-op display when not ``enabled``."""
    prefix = f"[bold]{label}[/bold] " if label else ""
    return Progress(
        TextColumn(prefix + "{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
