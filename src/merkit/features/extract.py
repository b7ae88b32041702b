"""Run preprocessing -> TIM -> descriptor over every clip of a Sample table."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from merkit.data.schema import FeatureSet
from merkit.features.grid import Grid
from merkit.features.registry import get_descriptor
from merkit.video.io import load_clip
from merkit.video.tim import tim

log = logging.getLogger(__name__)


def _one_clip(row: pd.Series, descriptor, size: tuple[int, int], length: int) -> np.ndarray:
    name = f"{row['dataset']}/{row['subject']}/{row['clip']}"
    try:
        frames = load_clip(row, size=size, grey=True)
        clip = tim(frames, length)
        return np.asarray(descriptor(clip), dtype=np.float32)
    except Exception as exc:  # re-raised with the clip named
        raise type(exc)(f"clip {name}: {exc}") from exc


def extract_features(
    table: pd.DataFrame,
    descriptor: str = "lbp_top:r3p8",
    *,
    grid: Grid | str | None = None,
    size: tuple[int, int] = (112, 112),
    length: int = 16,
    n_jobs: int = 1,
    classes: tuple[str, ...] = (),
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FeatureSet:
    """Describe every clip of ``table``: frames -> resize ``size`` -> TIM ``length`` -> descriptor.

    Parameters
    ----------
    table : DataFrame
        A validated Sample table (one database or several).
    descriptor : str
        Registry spec, e.g. ``"lbp_top:r3p8"``.
    grid : Grid or str, optional
        Multi-scale block grid replacing the descriptor's own (default 1, 2, 4, 8 -> 85).
    size, length : tuple of int, int
        Spatial size (H, W) and TIM length of the normalised clip.
    n_jobs : int
        joblib workers over clips; results equal the serial run.
    progress : callable, optional
        Called with the number of clips finished after each batch.

    Returns
    -------
    FeatureSet
        ``X`` (n, D) float32 in table order, block layout attached.
    """
    desc = get_descriptor(descriptor)
    if grid is not None:
        grid = Grid.parse(grid) if isinstance(grid, str) else grid
        if "grid" not in desc.params:
            raise ValueError(f"descriptor {desc.name} does not take a block grid")
        desc = replace(desc, grid=grid, params={**desc.params, "grid": grid})
    rows = [r for _, r in table.iterrows()]
    if not rows:
        raise ValueError("no clips to describe: the Sample table is empty")
    feats: list[np.ndarray] = []
    batch = max(1, 4 * max(1, n_jobs))
    with Parallel(n_jobs=n_jobs) as parallel:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            feats.extend(parallel(delayed(_one_clip)(r, desc, size, length) for r in chunk))
            if progress is not None:
                progress(len(chunk))
    X = np.vstack(feats)
    log.info("described %d clips with %s: X %s", len(rows), descriptor, X.shape)
    return FeatureSet(
        X,
        table,
        name=name or "+".join(sorted(table["dataset"].astype(str).unique())),
        classes=classes,
        blocks=desc.column_blocks(),
        levels=desc.grid.levels,
    )
