"""The jobs that run on a :class:`merkit.parallel.Backend`: units and grid batches.

A job is a pure function of its arguments, so the numbers do not depend on the backend
or the number of workers. :func:`run_unit_shared` runs one unit of :func:`run_cdmer
<merkit.protocols.runner.run_cdmer>`; :func:`run_path_job` fits a batch of grid points
of one (task, method, seed) through the estimator's ``fit_path`` and computes their
label-free criteria (:func:`merkit.adapt.criteria.evaluate_points`), or only computes
criteria from stored target predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from merkit.adapt.criteria import PointCriteria, evaluate_points
from merkit.data.schema import FeatureSet
from merkit.protocols.units import (
    TaskData,
    UnitResult,
    WorkUnit,
    fit_metadata,
    method_estimator,
    run_unit,
)

__all__ = ["PathJob", "SharedFeatures", "run_path_job", "run_unit_shared"]


class SharedFeatures:
    """Holds the features of a run so that a cluster receives them once (Dask scatters
    only weak-referenceable arguments: a plain dict would travel with every unit)."""

    def __init__(self, features: Mapping[str, FeatureSet]) -> None:
        self.features = features


def run_unit_shared(unit: WorkUnit, shared: SharedFeatures) -> UnitResult:
    """:func:`merkit.protocols.units.run_unit` on the shared features."""
    return run_unit(unit, shared.features)


@dataclass(frozen=True)
class PathJob:
    """Grid points of one (task, method, seed, data) computed together.

    Attributes
    ----------
    units : tuple of WorkUnit
        The points (same task, method, seed and data; their params differ).
    criteria : tuple of tuples of str
        The criteria of each unit.
    predictions : tuple of ndarray, optional
        Each unit's stored target predictions: no fit then, only the criteria that do not
        need the forward fit (``reverse``, ``iwcv``, ``class_entropy``).
    """

    units: tuple[WorkUnit, ...]
    criteria: tuple[tuple[str, ...], ...]
    predictions: tuple[np.ndarray, ...] | None = None

    @property
    def refit(self) -> bool:
        """Whether the job fits its points (False: criteria from stored predictions)."""
        return self.predictions is None


def run_path_job(
    job: PathJob, td: TaskData, n_folds: int, batched: bool
) -> list[tuple[tuple[str, ...], PointCriteria]]:
    """Fit the job's points on the task (``fit_path`` of the method, seeded with the
    units' seed; the features' column groups as fit metadata) and compute each point's
    criteria; returns ``(unit key, PointCriteria)`` per unit, in order. ``batched=False``:
    one fit per point (equal numbers)."""
    first = job.units[0]
    est = method_estimator(first.method, first.seed)
    scored = evaluate_points(
        est,
        [u.params for u in job.units],
        td.Xs,
        td.ys,
        td.Xt,
        job.criteria,
        predictions=job.predictions,
        n_folds=n_folds,
        seed=first.seed,
        batched=batched,
        **fit_metadata(est, td),
    )
    return [(u.key, res) for u, res in zip(job.units, scored, strict=True)]
