"""Fixtures shared by the protocol tests: two small synthetic CDMER domains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from merkit.data.schema import FeatureSet

CLASSES = ("negative", "positive", "surprise")


def domain(name: str, n: int, shift: float, seed: int, d: int = 6) -> FeatureSet:
    """Overlapping classes (centres 1.2 apart) so that grid points differ."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = np.eye(3, d)[y] * 1.2 + rng.normal(size=(n, d)) + shift
    table = pd.DataFrame({
        "dataset": name,
        "subject": [f"{name}/{i % 5}" for i in range(n)],
        "clip": [f"{name.lower()}_{i:03d}" for i in range(n)],
        "label": [CLASSES[v] for v in y],
        "y": y,
    })  # fmt: skip
    return FeatureSet(X, table, name=name, classes=CLASSES)


@pytest.fixture(scope="module")
def domains() -> dict[str, FeatureSet]:
    """CASME2 (40 clips) and SMIC_VIS (25 clips, shifted): the tasks Exp.9 and Exp.10."""
    return {"CASME2": domain("CASME2", 40, 0.0, 1), "SMIC_VIS": domain("SMIC_VIS", 25, -0.7, 3)}
