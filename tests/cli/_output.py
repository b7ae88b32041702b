"""Shared assertions on what the CLI prints."""

from __future__ import annotations


def one_error_line(res) -> str:
    """The single ``error: ...`` line of a failed command (exit 2, no traceback)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]
