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


@pytest.fixture(scope="session")
def c3d_weights(tmp_path_factory) -> Path:
    """A C3D state dict in the Sports-1M conversion's key layout and full shapes (random
    He-normal weights, seed 0; 320 MB, written once per session): ``conv1.weight`` ...
    ``fc8.bias`` as :data:`merkit.features.c3d.SHAPES`."""
    torch = pytest.importorskip("torch")
    from merkit.features.c3d import SHAPES

    g = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in SHAPES.items():
        if key.endswith(".weight"):
            fan_in = 1
            for s in shape[1:]:
                fan_in *= s
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.01
    path = tmp_path_factory.mktemp("c3d") / "c3d_random.pt"
    torch.save(state, path)
    return path
