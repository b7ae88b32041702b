"""Run DA methods over the CDMER protocol: the entry points.

:func:`run_cdmer` runs units of work (:mod:`merkit.protocols.units`: one method with
given parameters on one task and seed) and :func:`run_grid` every point of
hyper-parameter grids with their label-free criteria and the oracle / label-free /
default picks (:mod:`merkit.protocols.grid`). Both run their jobs on a
:class:`merkit.parallel.Backend` (:mod:`merkit.protocols.execution`), store results,
predictions and grid rows through :mod:`merkit.store` as they finish (so a killed run
resumes with the missing work only) and record TGSR's selected blocks
(:mod:`merkit.protocols.salient`). Metrics come from :mod:`merkit.metrics` via the
store's record builder; no target label reaches ``fit``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from merkit._progress import progress_bar
from merkit.data.schema import FeatureSet
from merkit.parallel import Backend, open_backend
from merkit.protocols.cdmer import CdmerTask
from merkit.protocols.execution import SharedFeatures, run_unit_shared
from merkit.protocols.grid import GridRun, GridRunner
from merkit.protocols.salient import SALIENT_METHOD, record_tgsr_blocks
from merkit.protocols.units import WorkUnit, cdmer_units
from merkit.store import RESULT_COLUMNS, ResultStore, result_keys

log = logging.getLogger(__name__)

__all__ = ["run_cdmer", "run_grid"]


def run_cdmer(
    features: Mapping[str, FeatureSet],
    method: str | Mapping[str, dict | Sequence[dict] | None] = "svm",
    *,
    params: dict | Sequence[dict] | None = None,
    tasks: Iterable[CdmerTask | int | str] | None = None,
    seed: int | Sequence[int] = 0,
    progress: bool = True,
    store: ResultStore | str | Path | None = None,
    resume: bool = True,
    flush_every: int = 20,
    extra: Mapping | None = None,
    n_jobs: int = 1,
    backend: str | Backend = "loky",
    address: str | None = None,
    class_order: str = "sorted",
) -> pd.DataFrame:
    """Run methods over the CDMER tasks that the loaded databases allow.

    Parameters
    ----------
    features : mapping of str to FeatureSet
        Domain name -> features (e.g. :func:`merkit.data.features_io.load_cdmer_dir`).
    method : str or mapping
        Registry name, or ``{name: params or grid}`` for several methods.
    params : dict or list of dict, optional
        Parameters of ``method`` (a list runs each point of a grid as its own unit).
    tasks : iterable, optional
        Tasks to run (default: all available).
    seed : int or sequence of int
        Seed(s) handed to estimators with a ``random_state``; results are
        deterministic given the seed.
    progress : bool
        Show a rich progress bar.
    store : ResultStore or path, optional
        Where results and predictions accumulate (written every ``flush_every``
        units and at the end, also when a unit fails).
    resume : bool
        Skip units whose key is already in ``store``.
    extra : mapping, optional
        Constant columns added to every results row (e.g. ``{"features": "lbp_top:r3p8"}``).
    n_jobs, backend, address
        Where units run (:class:`merkit.parallel.Backend`: joblib's loky processes, or a
        Ray / Dask cluster at ``address`` or started for the run); the numbers do not
        depend on it.
    class_order : {"sorted", "first-appearance"}
        How each task's labels are coded for the fits
        (:data:`merkit.protocols.units.CLASS_ORDERS`): ``"first-appearance"`` breaks
        LibSVM's one-vs-one vote ties as MATLAB LibSVM, the papers' tool, does. Part of
        the units' identity (``data`` column).

    Returns
    -------
    DataFrame
        One results row per unit (columns of :data:`merkit.store.RESULT_COLUMNS`
        plus ``seconds``), in unit order; resumed units are read back from the store.

    With a store, TGSR units also write ``DIR/tgsr_blocks.json`` (the blocks selected at
    the best TGSR point of each task, :func:`merkit.protocols.salient.record_tgsr_blocks`).
    """
    units = cdmer_units(
        features, method, params=params, tasks=tasks, seeds=seed, class_order=class_order
    )
    if store is not None and not isinstance(store, ResultStore):
        store = ResultStore(store)
    done = store.keys() if (store is not None and resume) else set()
    todo = [u for u in units if u.key not in done]
    if len(todo) < len(units):
        log.info("resume: %d of %d units already in %s", len(units) - len(todo), len(units), store)
    rows: dict[tuple[str, ...], dict] = {}
    pending: list[tuple[dict, pd.DataFrame]] = []

    def flush() -> None:
        if store is not None and pending:
            store.add_records(pending)
        pending.clear()

    with (
        progress_bar(progress, label="CDMER") as bar,
        open_backend(backend, n_jobs, address) as be,
    ):
        job = bar.add_task("", total=len(todo))
        shared = SharedFeatures(features)  # one object: sent to a cluster once, not per unit
        try:
            runs = be.map((run_unit_shared, (u, shared)) for u in todo)
            for unit, res in zip(todo, runs, strict=True):
                bar.update(job, description=str(unit))
                row, preds = res.record(extra)
                rows[unit.key] = row
                pending.append((row, preds))
                log.info(
                    "%s: mean-F1 %.4f, UAR %.4f, accuracy %.2f%% (%.2fs)",
                    unit,
                    row["mean_f1"],
                    row["uar"],
                    row["accuracy"],
                    res.seconds,
                )
                if len(pending) >= flush_every:
                    flush()
                bar.advance(job)
        finally:
            flush()
    if store is not None:
        store.compact()
    if store is not None and len(rows) < len(units):
        stored = store.results()
        skeys = {k: i for i, k in enumerate(result_keys(stored))}
        for u in units:
            if u.key not in rows and u.key in skeys:
                rows[u.key] = stored.iloc[skeys[u.key]].to_dict()
    out = pd.DataFrame([rows[u.key] for u in units if u.key in rows])
    if out.empty:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "seconds"])
    if store is not None:
        best: dict[CdmerTask, tuple[float, WorkUnit]] = {}
        for u in units:  # the TGSR point of each task (best mean-F1 when several)
            if u.method == SALIENT_METHOD and u.key in rows:
                f1 = float(rows[u.key]["mean_f1"])
                if u.task not in best or f1 > best[u.task][0]:
                    best[u.task] = (f1, u)
        if best:
            record_tgsr_blocks(store.directory, [u for _, u in best.values()], features)
    extra = [c for c in out.columns if c not in RESULT_COLUMNS]
    return out[list(RESULT_COLUMNS) + extra].reset_index(drop=True)


def run_grid(
    features: Mapping[str, FeatureSet],
    methods: str | Sequence[str],
    *,
    grid: str | Mapping[str, Sequence[Mapping] | Mapping] = "published",
    tasks: Iterable[CdmerTask | int | str] | None = None,
    seed: int | Sequence[int] = 0,
    store: ResultStore | str | Path,
    n_jobs: int = 1,
    criteria: Sequence[str] = ("reverse", "class_entropy", "entropy"),
    progress: bool = True,
    extra: Mapping | None = None,
    n_folds: int = 5,
    flush_every: int = 50,
    fast: bool = True,
    expensive_sample: int | None = 1000,
    backend: str | Backend = "loky",
    address: str | None = None,
    class_order: str = "sorted",
) -> GridRun:
    """Run every grid point of several methods on the CDMER tasks, then select.

    Every grid point is a unit (``selection="none"``, params in the key) stored in
    ``store`` with its predictions, and a row of ``store.directory / "grid.csv"`` with the
    same metric columns plus ``published_params`` (the papers' names),
    ``criteria`` (JSON list of the criteria computed), one column per criterion value,
    ``seconds`` (fit + predict) and ``y_pred`` (JSON list of the target predictions).
    Then, per (task, method, seed), results rows are written with ``selection`` =
    ``"oracle"`` (best mean-F1 over the grid: scored with the target labels, the papers'
    protocol), each criterion name (its max over the grid; never sees a target label)
    and ``"default"`` (the documented default point, when the grid holds it). Those keys
    ignore params, so a re-run replaces them. Ties: :func:`merkit.adapt.selection.select`.

    Parameters
    ----------
    features : mapping of str to FeatureSet
    methods : str or sequence of str
        Registry names.
    grid : "published", "default" or mapping
        See :func:`merkit.protocols.grid.grid_points`.
    tasks, seed : as :func:`run_cdmer`.
    store : ResultStore or path
    n_jobs : int
        Parallel workers over units; the numbers equal a serial run.
    backend, address : str
        Where the jobs run (:class:`merkit.parallel.Backend`): ``"loky"`` (local
        processes), ``"ray"`` or ``"dask"`` (the cluster at ``address``, or a local one of
        ``n_jobs`` workers started for the run and shut down after it); or an open Backend.
    criteria : sequence of str
        Label-free criteria (:data:`merkit.adapt.criteria.CRITERIA`).
    class_order : {"sorted", "first-appearance"}
        As :func:`run_cdmer`.
    extra : mapping, optional
        Constant columns added to every results and grid row.
    n_folds : int
        IWCV folds.
    flush_every : int
        Write the store and the grid rows after this many new points (and at most every
        twice the time the last write took, so writes never dominate a long grid).
    expensive_sample : int or None
        ``reverse`` and ``iwcv`` refit every grid point (with swapped domains / per
        fold); on a (task, method) grid of more than this many points they are computed
        on ``expensive_sample`` evenly spaced points of the grid order only (positions
        ``round(linspace(0, n - 1, expensive_sample))``), NaN elsewhere, so their pick
        is the best of that subsample. ``entropy`` and ``class_entropy`` are always
        computed on every point. None: every point.
    fast : bool
        Let each method fit its points in the batches that share work
        (``fit_path_batches`` / ``fit_path`` of the estimator: TGSR's dual solver, two xi
        values per job with every kappa, reverse validation of a job's points in one solve
        with their own pseudo-labels; the regenerators' kernel and eigen-basis). Same
        predictions and criterion values as per-point fits (``fast=False``).

    Resuming: a point whose key is in the store and whose ``grid.csv`` row holds every
    requested criterion is not recomputed; one whose row lacks ``reverse`` or ``iwcv``
    only gets those, from the stored predictions (no refit of the point); one that lacks
    another criterion is refitted.

    Grid rows are written incrementally: each flush writes only the rows new or updated
    since the last one, as a part ``DIR/parts/NNNNNNNN.grid.csv`` (after their store
    rows); the parts are merged into ``grid.csv`` with the store's policy (at once while
    ``grid.csv`` is under 4 MiB, when the parts outgrow it or number 128) and at the end
    of the run. :func:`merkit.store.read_grid` reads the same table either way.

    With TGSR among the methods, ``DIR/tgsr_blocks.json`` gets the blocks selected at the
    oracle point of each task (first seed; :func:`merkit.protocols.salient.record_tgsr_blocks`).
    """
    runner = GridRunner(
        features,
        methods,
        grid=grid,
        tasks=tasks,
        seed=seed,
        store=store,
        criteria=criteria,
        extra=extra,
        n_folds=n_folds,
        flush_every=flush_every,
        fast=fast,
        expensive_sample=expensive_sample,
        class_order=class_order,
    )
    return runner.run(backend, n_jobs, address, progress)
