"""Run DA methods over the CDMER protocol: units of work, scored and stored.

A unit of work is one (protocol, task, method, params, seed) with a stable key
(:meth:`WorkUnit.key`, the results-store key). :func:`cdmer_units` expands methods x
parameter grids x tasks x seeds into units; :func:`run_unit` fits one (source rows
labelled, target rows ``y = -1`` with negative ``sample_domain``, the
:mod:`merkit.adapt.base` convention) and predicts the target; :func:`run_cdmer`
runs a list of units, skipping those already in a :class:`ResultStore` when
``resume`` is set, and returns the tidy results table. Metrics come from
:mod:`merkit.results.metrics` via the store's record builder; no target label
reaches ``fit``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from merkit.adapt import make_method
from merkit.adapt.base import MASKED_LABEL
from merkit.data.schema import FeatureSet
from merkit.protocols.cdmer import CdmerTask, available_tasks, get_task, resolve_tasks
from merkit.protocols.splits import stack_domains
from merkit.results.store import RESULT_COLUMNS, ResultStore, params_to_json, result_key

log = logging.getLogger(__name__)

__all__ = ["UnitResult", "WorkUnit", "cdmer_units", "run_cdmer", "run_unit"]

PROTOCOL = "cdmer"


@dataclass(frozen=True)
class WorkUnit:
    """One CDMER evaluation: a method with fixed params on one task and seed.

    Attributes
    ----------
    task : CdmerTask
    method : str
        Registry name (:data:`merkit.adapt.METHODS`).
    params_json : str
        Canonical JSON of the hyper-parameters (sorted keys).
    seed : int
        Passed to the estimator as ``random_state`` when it has one.
    selection : str
        ``"none"``: params were given, not selected.
    protocol : str
    """

    task: CdmerTask
    method: str
    params_json: str = "{}"
    seed: int = 0
    selection: str = "none"
    protocol: str = PROTOCOL
    data: str = ""

    @property
    def params(self) -> dict:
        """Hyper-parameters as a dict."""
        return json.loads(self.params_json)

    @property
    def key(self) -> tuple[str, ...]:
        """Stable identity, equal to the results-store key of the unit."""
        return result_key(
            self.protocol,
            self.task.name,
            self.method,
            self.selection,
            self.params_json,
            self.seed,
            self.data,
        )

    def __str__(self) -> str:
        return f"{self.task.name} {self.task.code} {self.method}{self.params_json} seed={self.seed}"


@dataclass(frozen=True)
class UnitResult:
    """Predictions of one unit on the target rows."""

    unit: WorkUnit
    y_true: np.ndarray
    y_pred: np.ndarray
    sample: np.ndarray
    clip: np.ndarray
    seconds: float

    def record(self, extra: Mapping | None = None) -> tuple[dict, pd.DataFrame]:
        """Results row and prediction rows for :class:`ResultStore` (``extra`` columns added)."""
        u = self.unit
        return ResultStore.make_record(
            protocol=u.protocol,
            task=u.task.name,
            source=u.task.source,
            target=u.task.target,
            method=u.method,
            selection=u.selection,
            params=u.params_json,
            seed=u.seed,
            data=u.data,
            y_true=self.y_true,
            y_pred=self.y_pred,
            fold="",
            sample=self.sample,
            clip=self.clip,
            extra={**(extra or {}), "seconds": round(self.seconds, 4)},
        )


def _param_grid(params) -> list[dict]:
    if params is None:
        return [{}]
    if isinstance(params, Mapping):
        return [dict(params)]
    grid = [dict(p) for p in params]
    if not grid:
        raise ValueError("params is an empty list; pass None for the default parameters")
    return grid


def cdmer_units(
    features: Mapping[str, FeatureSet] | Iterable[str],
    methods: str | Mapping[str, dict | Sequence[dict] | None] = "svm",
    *,
    params: dict | Sequence[dict] | None = None,
    tasks: Iterable[CdmerTask | int | str] | None = None,
    seeds: int | Sequence[int] = 0,
) -> list[WorkUnit]:
    """Expand methods x parameter grids x tasks x seeds into work units.

    Parameters
    ----------
    features : mapping or iterable of str
        The available domains (a features dict or its keys).
    methods : str or mapping
        One registry name (with ``params``), or ``{name: params or grid or None}``.
    params : dict or list of dict, optional
        Parameters (a list = a grid) of the single method named by ``methods``.
    tasks : iterable, optional
        Task keys (``9``, ``"Exp.9"``, ``"C->V"``); default: every task whose two
        databases are in ``features``. Requesting a task whose data is missing is an error.
    seeds : int or sequence of int

    Returns
    -------
    list of WorkUnit
        Ordered by method, params, task, seed.
    """
    domains = set(features)
    if tasks is None:
        chosen = available_tasks(domains)
        if not chosen:
            raise ValueError(
                f"no CDMER task can run with the databases {sorted(domains)}; a task needs two "
                "of CASME2, SMIC_HS, SMIC_VIS, SMIC_NIR"
            )
    else:
        chosen = resolve_tasks(tasks)
        for t in chosen:
            missing = [d for d in (t.source, t.target) if d not in domains]
            if missing:
                raise ValueError(
                    f"task {t} needs databases {missing}, which are not loaded "
                    f"(loaded: {sorted(domains)})"
                )
    if isinstance(methods, str):
        spec = {methods: params}
    else:
        if params is not None:
            raise ValueError("give params inside the methods mapping, not both")
        spec = dict(methods)
    seed_list = [int(seeds)] if np.isscalar(seeds) else [int(s) for s in seeds]

    def fingerprint(t: CdmerTask) -> str:
        if not isinstance(features, Mapping):
            return ""
        return f"{features[t.source].fingerprint()}>{features[t.target].fingerprint()}"

    units = []
    for name, grid in spec.items():
        for p in _param_grid(grid):
            make_method(name, **p)  # fail early on unknown names / parameters
            pj = params_to_json(p)
            for t in chosen:
                for s in seed_list:
                    task = get_task(t)
                    units.append(WorkUnit(task, name.lower(), pj, s, data=fingerprint(task)))
    return units


def _check_pair(src: FeatureSet, tgt: FeatureSet, task: CdmerTask) -> None:
    if src.X.shape[1] != tgt.X.shape[1]:
        raise ValueError(
            f"{task}: {src.name} has {src.X.shape[1]} feature columns, {tgt.name} has "
            f"{tgt.X.shape[1]}; both domains need the same descriptor"
        )
    if src.classes and tgt.classes and src.classes != tgt.classes:
        raise ValueError(
            f"{task}: class lists differ, {src.name} {src.classes} vs {tgt.name} {tgt.classes}"
        )


def run_unit(unit: WorkUnit, features: Mapping[str, FeatureSet]) -> UnitResult:
    """Fit ``unit.method`` on the task's source (labelled) + target (unlabelled) rows and
    predict the target rows."""
    task = unit.task
    src, tgt = features[task.source], features[task.target]
    _check_pair(src, tgt, task)
    table, split = stack_domains(src.table, tgt.table)  # leakage-checked
    # float64: LibSVM converts float32 input on every call (about 10x slower per fit)
    X = np.vstack([src.X, tgt.X]).astype(np.float64)
    y = np.concatenate([src.y, tgt.y])
    fit_idx = np.concatenate([split.train_idx, split.test_idx])
    y_fit = y.copy()
    y_fit[split.test_idx] = MASKED_LABEL
    domain = np.ones(len(table), dtype=np.int64)
    domain[split.test_idx] = -1
    est = make_method(unit.method, **unit.params)
    if "random_state" in est.get_params() and "random_state" not in unit.params:
        est.set_params(random_state=unit.seed)
    t0 = time.perf_counter()
    est.fit(X[fit_idx], y_fit[fit_idx], sample_domain=domain[fit_idx])
    y_pred = np.asarray(est.predict(X[split.test_idx]))
    seconds = time.perf_counter() - t0
    test_rows = split.test_idx - len(src)  # positions in the target table
    return UnitResult(
        unit=unit,
        y_true=y[split.test_idx],
        y_pred=y_pred,
        sample=test_rows,
        clip=tgt.table["clip"].astype(str).to_numpy()[test_rows],
        seconds=seconds,
    )


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

    Returns
    -------
    DataFrame
        One results row per unit (columns of :data:`merkit.results.store.RESULT_COLUMNS`
        plus ``seconds``), in unit order; resumed units are read back from the store.
    """
    units = cdmer_units(features, method, params=params, tasks=tasks, seeds=seed)
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

    with Progress(
        TextColumn("[bold]CDMER[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        job = bar.add_task("", total=len(todo))
        try:
            for unit in todo:
                bar.update(job, description=str(unit))
                res = run_unit(unit, features)
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
    if store is not None and len(rows) < len(units):
        stored = store.results()
        skeys = {k: i for i, k in enumerate(_row_keys(stored))}
        for u in units:
            if u.key not in rows and u.key in skeys:
                rows[u.key] = stored.iloc[skeys[u.key]].to_dict()
    out = pd.DataFrame([rows[u.key] for u in units if u.key in rows])
    if out.empty:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "seconds"])
    extra = [c for c in out.columns if c not in RESULT_COLUMNS]
    return out[list(RESULT_COLUMNS) + extra].reset_index(drop=True)


def _row_keys(df: pd.DataFrame) -> list[tuple[str, ...]]:
    return [
        result_key(r.protocol, r.task, r.method, r.selection, r.params, r.seed, r.data)
        for r in df.itertuples(index=False)
    ]
