"""The one rich progress bar of merkit's long runs (extraction, CDMER, grids, training)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["progress_bar"]


def progress_bar(enabled: bool, *, label: str = "", console: Console | None = None) -> Progress:
    """``[<label>] <description> [bar] n/N elapsed``; a no-op display when not ``enabled``.

    Descriptions are shown as plain text, never read as rich markup: a database, model or
    path with square brackets (``runs/exp [v2]``) is shown whole.
    """
    label_column = [TextColumn(f"[bold]{escape(label)}[/bold]")] if label else []
    return Progress(
        *label_column,
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
