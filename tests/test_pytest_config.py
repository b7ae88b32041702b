"""The project's pytest configuration: tests marked ``slow`` are deselected by default.

Runs pytest in a subprocess on a two-test file with this repository's ``pyproject.toml``
(``-c``), so what is checked is the configuration a plain ``python -m pytest`` uses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

TWO_TESTS = """
import pytest


@pytest.mark.slow
def test_the_slow_one():
    pass


def test_the_quick_one():
    pass
"""


def run_pytest(folder: Path, *args: str) -> tuple[set[str], str]:
    """Names of the tests that passed and pytest's summary line."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(PYPROJECT), "--rootdir", str(folder),
         "-p", "no:cacheprovider", "-v", str(folder / "test_two.py"), *args],
        capture_output=True, text=True, timeout=300, cwd=folder,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = {
        line.split("::")[1].split()[0]
        for line in proc.stdout.splitlines()
        if "::" in line and " PASSED" in line
    }
    return passed, proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "test_two.py").write_text(TWO_TESTS)
    return tmp_path


def test_slow_tests_are_deselected_by_default(folder: Path) -> None:
    passed, summary = run_pytest(folder)
    assert passed == {"test_the_quick_one"}
    assert "1 passed, 1 deselected" in summary


def test_an_explicit_marker_expression_runs_the_slow_tests(folder: Path) -> None:
    passed, summary = run_pytest(folder, "-m", "slow")
    assert passed == {"test_the_slow_one"}
    assert "1 passed, 1 deselected" in summary
    passed, summary = run_pytest(folder, "-m", "slow or not slow")
    assert passed == {"test_the_slow_one", "test_the_quick_one"}
    assert "2 passed" in summary and "deselected" not in summary


def test_the_marker_is_registered_and_says_how_to_run_it() -> None:
    import tomllib

    ini = tomllib.loads(PYPROJECT.read_text())["tool"]["pytest"]["ini_options"]
    slow = [m for m in ini["markers"] if m.startswith("slow:")]
    assert len(slow) == 1 and "-m slow" in slow[0] and "deselected by default" in slow[0]
