"""The shared progress bar."""

from __future__ import annotations

import io

from rich.console import Console

from merkit._progress import progress_bar


def _render(**kwargs) -> str:
    console = Console(file=io.StringIO(), width=100, force_terminal=False)
    with progress_bar(True, console=console, **kwargs) as bar:
        task = bar.add_task("CASME2", total=4)
        bar.advance(task, 3)
    return console.file.getvalue()


def test_label_description_and_count_are_shown():
    text = _render(label="grid")
    assert "grid CASME2" in text
    assert "3/4" in text
    assert _render().lstrip().startswith("CASME2")


def test_disabled_bar_prints_nothing():
    console = Console(file=io.StringIO(), width=100)
    with progress_bar(False, console=console) as bar:
        bar.advance(bar.add_task("x", total=2), 2)
    assert console.file.getvalue() == ""


def test_descriptions_and_labels_with_brackets_are_shown_whole():
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    with progress_bar(True, console=console, label="run [v2]") as bar:
        bar.advance(bar.add_task("exp [v2] [bold]x[/bold]", total=2), 2)
    text = console.file.getvalue()
    assert "run [v2] exp [v2] [bold]x[/bold]" in text, text
    assert "2/2" in text
