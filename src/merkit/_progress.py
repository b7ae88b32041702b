"""The one rich progress bar of merkit's long runs (extraction, CDMER, grids, training)."""

from __future__ import annotations

import time
from typing import Any

from rich import get_console
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

__all__ = ["LINE_INTERVAL", "progress_bar"]

#: seconds between two plain progress lines of one task when the output is not a terminal
LINE_INTERVAL = 60.0


class _LineProgress(Progress):
    """A progress bar that also writes plain lines where rich draws nothing until the end
    (output to a file or pipe: ``nohup``, a batch job's log): a task's state
    (``<label> <description> n/N h:mm:ss``) when its count or description has changed and
    ``interval`` seconds have passed since its last line (or since it started)."""

    def __init__(self, *columns: Any, label: str, interval: float, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._label = label
        self._interval = float(interval)
        self._lines: dict[TaskID, tuple[float, float, str]] = {}  # time, count, description

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self._lines[task_id] = (time.monotonic(), 0.0, description)
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._line(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._line(task_id)

    def _line(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        if not task.visible:
            return
        last, count, text = self._lines[task_id]
        now = time.monotonic()
        if now - last < self._interval or (task.completed, task.description) == (count, text):
            return
        self._lines[task_id] = (now, task.completed, task.description)
        total = "?" if task.total is None else f"{task.total:g}"
        seconds = int(task.elapsed or 0)
        stamp = f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        parts = [self._label, task.description, f"{task.completed:g}/{total}", stamp]
        self.console.print(" ".join(p for p in parts if p), markup=False, highlight=False)


def progress_bar(
    enabled: bool,
    *,
    label: str = "",
    console: Console | None = None,
    interval: float = LINE_INTERVAL,
) -> Progress:
    """``[<label>] <description> [bar] n/N elapsed``; a no-op display when not ``enabled``.

    Descriptions are shown as plain text, never read as rich markup: a database, model or
    path with square brackets (``runs/exp [v2]``) is shown whole. Where the output is not
    a terminal (a log file), the bar is drawn once at the end, so a plain line per task
    is also written as it progresses, at most every ``interval`` seconds.
    """
    label_column = [TextColumn(f"[bold]{escape(label)}[/bold]")] if label else []
    columns = (
        *label_column,
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    console = console or get_console()  # rich's default for a Progress
    options = dict(console=console, disable=not enabled, transient=False)
    if not enabled or console.is_terminal:
        return Progress(*columns, **options)
    return _LineProgress(*columns, label=label, interval=interval, **options)
