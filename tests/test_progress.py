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


def _log_lines(interval: float, terminal: bool = False) -> list[str]:
    console = Console(file=io.StringIO(), width=100, force_terminal=terminal)
    with progress_bar(True, console=console, label="train", interval=interval) as bar:
        task = bar.add_task("cde [ststnet]", total=4)
        hidden = bar.add_task("refits", total=3, visible=False)
        bar.advance(task)
        bar.advance(hidden)
        bar.update(task, description="cde [ststnet] epoch 2/3")
        bar.update(task)  # nothing changed: no line
        bar.advance(task, 2)
    return console.file.getvalue().splitlines()


def test_output_that_is_not_a_terminal_gets_plain_progress_lines():
    lines = _log_lines(interval=0)
    assert lines[:3] == [
        "train cde [ststnet] 1/4 0:00:00",
        "train cde [ststnet] epoch 2/3 1/4 0:00:00",
        "train cde [ststnet] epoch 2/3 3/4 0:00:00",
    ]
    assert len(lines) == 4 and "3/4" in lines[3]  # then the bar, drawn once at the end
    # at most one line per interval: a short run writes only the final bar
    assert len(_log_lines(interval=3600)) == 1


def test_a_terminal_gets_the_bar_only():
    text = "\n".join(_log_lines(interval=0, terminal=True))
    assert "train cde [ststnet] 1/4" not in text and "3/4" in text
