"""Shared pytest fixtures for merkit."""

from __future__ import annotations

from pathlib import Path

import pytest

#: the licensed reference data, read in place next to the repository (never copied in)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data`` (real reference data); skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real reference data not available: {SHARED_DATA} does not exist "
            "(tests that need licensed data run only where it is mounted)"
        )
    return SHARED_DATA
