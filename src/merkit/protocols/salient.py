"""TGSR's salient regions of a run: which facial blocks its chosen point selects.

TGSR keeps ``kappa`` column groups; the report draws them as facial blocks. After a run,
:func:`record_tgsr_blocks` refits TGSR at the chosen point of each task (as
:func:`merkit.protocols.units.run_unit` fits it) and hands the selected groups to the
store (:func:`merkit.store.write_tgsr_blocks`, ``DIR/tgsr_blocks.json``). When the groups
are not the facial blocks (the TGSR authors' column runs of the benchmark files), the
blocks recorded are those that hold at least one column of a selected group.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from merkit.data.schema import FeatureSet
from merkit.protocols.units import WorkUnit, fit_metadata, method_estimator, task_data
from merkit.store import write_tgsr_blocks

log = logging.getLogger(__name__)

__all__ = ["SALIENT_METHOD", "record_tgsr_blocks"]

#: the registry method whose selected groups are recorded
SALIENT_METHOD = "tgsr"
#: block levels assumed for features that name none (the CDMER benchmark's)
DEFAULT_LEVELS = (1, 2, 4, 8)


def record_tgsr_blocks(
    directory: str | Path, units: Sequence[WorkUnit], features: Mapping[str, FeatureSet]
) -> Path:
    """Refit TGSR at each unit (one per task) and write the selected blocks of every task
    to ``DIR/tgsr_blocks.json`` (tasks already in the file with the same levels and
    grouping are kept; see :func:`merkit.store.write_tgsr_blocks`)."""
    levels: list[int] = []
    tasks: dict[str, list[int]] = {}
    grouping = "spatial"
    runs: dict[str, list[int]] = {}
    for u in units:
        src = features[u.task.source]
        levels = [int(v) for v in (src.levels or DEFAULT_LEVELS)]
        td = task_data(u.task, features, u.class_order)
        est = method_estimator(u.method, u.seed, u.params)
        meta = est.select_fit_params(fit_metadata(est, td))
        est.fit(*td.fit_inputs(), **meta)
        sel = [int(b) for b in est.selected_blocks_]
        if meta and src.column_groups is not None and src.blocks is not None:
            # the groups are not facial blocks: record the blocks their columns fall in
            grouping = src.grouping
            runs[u.task.name] = sel
            used = np.isin(est.column_groups_, sel)
            tasks[u.task.name] = np.unique(src.blocks[used]).astype(int).tolist()
        else:
            tasks[u.task.name] = sel
    return write_tgsr_blocks(directory, levels, tasks, grouping=grouping, groups=runs)
