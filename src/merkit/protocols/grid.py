"""Hyper-parameter grid runs of the CDMER protocol: every point a unit, then the picks.

:class:`GridRunner` decides who trains, who is tested and in what order; how a method
fits many points is the estimator's business (``fit_path``) and the label-free criteria
are :mod:`merkit.adapt.criteria`'s. A run:

1. expands methods x grid points x tasks x seeds into units (:meth:`GridRunner.expand`);
2. reads what the store already holds (``grid.csv`` rows and results keys) and sorts the
   units into resumed, to fit, and criteria-only (fit stored, a criterion that does not
   need the fit missing: ``reverse`` from the stored predictions, ``iwcv``);
3. groups the units to fit into jobs as the method batches them
   (``fit_path_batches``: TGSR two xi values per dual solve, the regenerators a few
   ``mu`` values per kernel), the criteria-only units 64 per job;
4. runs the jobs on a backend, storing results, predictions and grid rows as they come
   (:func:`merkit.store.write_grid_part`, throttled);
5. writes the picks per (task, method, seed): the oracle, one per criterion and the
   documented default point, and the salient regions of TGSR's oracle points.
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

from merkit._progress import progress_bar
from merkit.adapt import default_point, make_method, published_grid, published_names
from merkit.adapt.criteria import CRITERIA, FORWARD_CRITERIA, PointCriteria
from merkit.adapt.selection import select
from merkit.data.schema import FeatureSet
from merkit.parallel import Backend, open_backend
from merkit.protocols.cdmer import CdmerTask, get_task
from merkit.protocols.execution import PathJob, run_path_job
from merkit.protocols.salient import SALIENT_METHOD, record_tgsr_blocks
from merkit.protocols.units import (
    TaskData,
    UnitResult,
    WorkUnit,
    cdmer_units,
    data_fingerprint,
    method_estimator,
    task_data,
)
from merkit.store import (
    ResultStore,
    grid_key,
    merge_grid,
    params_to_json,
    read_grid,
    write_grid_part,
)

log = logging.getLogger(__name__)

__all__ = ["SELECTIONS", "GridRun", "GridRunner", "grid_points"]

#: selections written as results rows besides one per label-free criterion
SELECTIONS: tuple[str, ...] = ("oracle", "default")
#: criteria that a stored fit's predictions (or no fit at all) suffice for: every one that
#: does not read the forward fit's decision values (they refit with the stored predictions)
STORED_FIT_CRITERIA = tuple(c for c in CRITERIA if c not in FORWARD_CRITERIA)
#: criteria-only units per job
CRITERIA_JOB = 64


def grid_points(
    method: str,
    grid: str | Mapping[str, Sequence[Mapping] | Mapping],
    n_source: int,
    n_target: int,
) -> list[dict]:
    """The parameter points of ``method`` on a task with ``n_source`` / ``n_target`` rows.

    Parameters
    ----------
    grid : "published", "default" or mapping
        ``"published"``: the benchmark's search space (:func:`merkit.adapt.published_grid`;
        TCA / GFK / SA k = 1..kmax of the task); ``"default"``: the documented default
        point only (:func:`merkit.adapt.default_point`); a mapping ``{method: [params,
        ...]}`` (or one params dict) gives the points explicitly, and a method's value
        ``"published"`` or ``"default"`` its points as above (e.g. TCA's published grid
        beside a few TGSR points).
    """
    key = str(method).lower()
    if isinstance(grid, str):
        if grid == "published":
            return published_grid(key, n_source, n_target)
        if grid == "default":
            return [default_point(key)]
        raise ValueError(f"grid must be 'published', 'default' or a mapping, got {grid!r}")
    if key not in grid:
        raise ValueError(f"grid mapping has no entry for method {key!r} (has {sorted(grid)})")
    points = grid[key]
    if isinstance(points, str):
        if points not in ("published", "default"):
            raise ValueError(f"grid entry of {key!r} is {points!r}: give a list of parameter "
                             "dicts, 'published' or 'default'")  # fmt: skip
        return grid_points(key, points, n_source, n_target)
    return [dict(points)] if isinstance(points, Mapping) else [dict(p) for p in points]


def _is_default(method: str, params: dict) -> bool:
    """Whether ``params`` is the method's documented default point."""
    dflt = default_point(method)
    keys = set(params) | set(dflt)
    if not keys:
        return True
    have = make_method(method, params).get_params(deep=True)
    ref = make_method(method).get_params(deep=True)
    return all(k in have and have[k] == ref.get(k) for k in keys)


def _default_index(method: str, points: Sequence[Mapping]) -> int | None:
    """Position of the documented default point among ``points`` (None if absent)."""
    want = params_to_json(default_point(method))
    for i, p in enumerate(points):
        if params_to_json(p) == want:
            return i
    for i, p in enumerate(points):
        if _is_default(method, dict(p)):
            return i
    return None


def _encode_pred(pred: np.ndarray) -> str:
    return json.dumps(np.asarray(pred).tolist(), separators=(",", ":"))


def _encode_prob(prob: np.ndarray | None) -> str:
    """Target class probabilities as JSON rows (4 decimals); "" without them."""
    if prob is None:
        return ""
    return json.dumps(np.round(np.asarray(prob, dtype=float), 4).tolist(), separators=(",", ":"))


def _criteria_of(row: Mapping) -> list[str]:
    return json.loads(row.get("criteria") or "[]")


@dataclass
class GridRun:
    """What :func:`merkit.protocols.runner.run_grid` produced.

    Attributes
    ----------
    grid : DataFrame
        The rows of ``grid.csv`` of the requested units (one per task, method, params,
        seed), in unit order.
    selected : DataFrame
        The selection results rows (``oracle``, one per criterion, ``default``) per
        (task, method, seed).
    computed, resumed : int
        Grid points fitted now / taken from the store and ``grid.csv``.
    criteria_only : int
        Grid points whose fit was stored but some criterion was computed now.
    seconds : float
        Wall time.
    """

    grid: pd.DataFrame
    selected: pd.DataFrame
    computed: int
    resumed: int
    criteria_only: int
    seconds: float


class GridRunner:
    """One grid run: its units, what the store holds of them, the jobs, the records.

    Build it with the arguments of :func:`merkit.protocols.runner.run_grid` (which
    documents them) and call :meth:`run`.
    """

    def __init__(
        self,
        features: Mapping[str, FeatureSet],
        methods: str | Sequence[str],
        *,
        grid: str | Mapping[str, Sequence[Mapping] | Mapping],
        tasks: Iterable[CdmerTask | int | str] | None,
        seed: int | Sequence[int],
        store: ResultStore | str | Path,
        criteria: Sequence[str],
        extra: Mapping | None,
        n_folds: int,
        flush_every: int,
        fast: bool,
        expensive_sample: int | None,
        class_order: str = "sorted",
    ) -> None:
        self.started = time.perf_counter()
        bad = [c for c in criteria if c not in CRITERIA]
        if bad:
            raise ValueError(f"unknown criteria {bad}; expected some of {CRITERIA}")
        names = [methods] if isinstance(methods, str) else list(methods)
        self.names = [str(m).strip().lower() for m in names]
        if not self.names:
            raise ValueError("no method given")
        self.features = features
        self.criteria = list(dict.fromkeys(criteria))
        self.store = store if isinstance(store, ResultStore) else ResultStore(store)
        self.extra = extra
        self.n_folds = n_folds
        self.flush_every = flush_every
        self.fast = fast
        self.class_order = class_order
        # checks the tasks and the class order
        probe = cdmer_units(
            features, self.names[0], tasks=tasks, seeds=seed, class_order=class_order
        )
        self.tasks = list(dict.fromkeys(u.task for u in probe))
        self.seeds = list(dict.fromkeys(u.seed for u in probe))
        self.tdata: dict[CdmerTask, TaskData] = {
            t: task_data(t, features, class_order) for t in self.tasks
        }
        self.all_units = self.expand(grid)
        self.by_key = {u.key: u for u in self.all_units}
        self.sampled = self._expensive_units(expensive_sample)
        # the store's state and what this run adds to it
        self.rows: dict[tuple, dict] = {grid_key(r): r for r in read_grid(self.store.directory)
                                        .to_dict("records")}  # fmt: skip
        self.pending: list[tuple[dict, pd.DataFrame]] = []
        self.changed: dict[tuple, None] = {}  # grid rows new or updated since the last flush
        self.last_flush = time.perf_counter()
        self.flush_cost = 0.0

    # ------------------------------------------------------------------ planning
    def expand(self, grid) -> list[WorkUnit]:
        """Methods x grid points x tasks x seeds (duplicates once), in that order; the
        parameters of every point shape are checked before any fit."""
        units: list[WorkUnit] = []
        seen: set[tuple] = set()
        for m in self.names:
            for t in self.tasks:
                td = self.tdata[t]
                data = data_fingerprint(t, self.features, self.class_order)
                checked: set[str] = set()
                for p in grid_points(m, grid, len(td.Xs), len(td.Xt)):
                    shape = json.dumps(sorted(p))
                    if shape not in checked:  # unknown names / parameters fail before any fit
                        make_method(m, **p)
                        checked.add(shape)
                    for s in self.seeds:
                        u = WorkUnit(t, m, params_to_json(p), s, data=data)
                        if u.key not in seen:
                            units.append(u)
                            seen.add(u.key)
        return units

    def _expensive_units(self, sample: int | None) -> set[tuple]:
        """Keys of the units that get the refitting criteria (``reverse``, ``iwcv``): all,
        or ``sample`` evenly spaced points of each (task, method, seed) grid."""
        keys: set[tuple] = set()
        for us in self._grouped(self.all_units).values():
            if sample is None or len(us) <= sample:
                keys.update(u.key for u in us)
                continue
            pos = np.unique(np.round(np.linspace(0, len(us) - 1, int(sample))))
            keys.update(us[int(i)].key for i in pos)
            log.info("%s %s: reverse / iwcv on %d of %d grid points (evenly spaced)",
                     us[0].task.name, us[0].method, len(pos), len(us))  # fmt: skip
        return keys

    @staticmethod
    def _grouped(units: Iterable[WorkUnit]) -> dict[tuple, list[WorkUnit]]:
        out: dict[tuple, list[WorkUnit]] = {}
        for u in units:
            out.setdefault((u.task, u.method, u.seed, u.data), []).append(u)
        return out

    def wanted(self, unit: WorkUnit) -> list[str]:
        """The criteria of ``unit``: all, or the forward ones outside the sample."""
        if unit.key in self.sampled:
            return list(self.criteria)
        return [c for c in self.criteria if c in FORWARD_CRITERIA]

    def missing(self, unit: WorkUnit, stored: set) -> list[str] | None:
        """The wanted criteria a stored point lacks; None when its fit is not stored."""
        row = self.rows.get(unit.key)
        if row is None or unit.key not in stored:
            return None
        have = set(_criteria_of(row))
        return [c for c in self.wanted(unit) if c not in have]

    def jobs(self) -> tuple[list[PathJob], list[PathJob], int]:
        """The fit jobs, the criteria-only jobs and the number of resumed units."""
        stored = self.store.keys()
        to_fit: list[WorkUnit] = []
        only: list[tuple[WorkUnit, list[str]]] = []
        for u in self.all_units:
            miss = self.missing(u, stored)
            if miss is None or (miss and not set(miss) <= set(STORED_FIT_CRITERIA)):
                to_fit.append(u)
            elif miss:
                only.append((u, miss))
        fits = []
        for (_, method, seed, _), us in self._grouped(to_fit).items():
            est = method_estimator(method, seed)
            points = [u.params for u in us]
            batches = est.fit_path_batches(points) if self.fast else [[i] for i in range(len(us))]
            for b in batches:
                fits.append(PathJob(tuple(us[i] for i in b),
                                    tuple(tuple(self.wanted(us[i])) for i in b)))  # fmt: skip
        scores = []
        miss_of = dict((u.key, m) for u, m in only)
        for us in self._grouped(u for u, _ in only).values():
            for a in range(0, len(us), CRITERIA_JOB):
                part = us[a : a + CRITERIA_JOB]
                scores.append(PathJob(
                    tuple(part), tuple(tuple(miss_of[u.key]) for u in part),
                    tuple(np.asarray(json.loads(self.rows[u.key]["y_pred"])) for u in part),
                ))  # fmt: skip
        resumed = len(self.all_units) - len(to_fit) - len(only)
        return fits, scores, resumed

    # ------------------------------------------------------------------ recording
    def record(self, key: tuple, res: PointCriteria, refit: bool) -> None:
        """Add a computed point: its store record (when fitted now) and its grid row."""
        unit = self.by_key[key]
        prev = self.rows.get(key, {})
        if not refit:
            row = dict(prev)
            row.update(res.values)
            row["criteria"] = json.dumps(sorted({*_criteria_of(prev), *res.values}))
            self.rows[key] = row
            self.changed[key] = None
            return
        td = self.tdata[unit.task]
        result = UnitResult(unit, td.yt, res.predictions, td.sample, td.clip, res.seconds,
                            td.classes)  # fmt: skip
        row, preds = result.record(self.extra)
        self.pending.append((row, preds))
        had = _criteria_of(prev)
        keep = {c: prev[c] for c in CRITERIA if c in prev and c in had and c not in res.values}
        self.rows[key] = {
            **row,
            "published_params": params_to_json(published_names(unit.method, unit.params)),
            "criteria_seconds": round(res.criteria_seconds, 4),
            "criteria": json.dumps(sorted({*keep, *res.values})),
            **keep,
            **res.values,
            "y_pred": _encode_pred(res.predictions),
            "y_prob": _encode_prob(res.probabilities),
        }
        self.changed[key] = None

    def flush(self, force: bool = False) -> None:
        """Write the new store records, then the new or updated grid rows as one part
        (after every ``flush_every`` points and at most every twice the time the last
        write took, so writes never dominate a long grid; always when forced)."""
        now = time.perf_counter()
        due = len(self.changed) >= self.flush_every and now - self.last_flush >= 2 * self.flush_cost
        if not (force or due):
            return
        if self.pending:
            self.store.add_records(self.pending)
            self.pending.clear()
        if self.changed:  # only those rows, as one part (after their store rows)
            write_grid_part(self.store.directory, [self.rows[k] for k in self.changed])
            self.changed.clear()
        self.last_flush = time.perf_counter()
        self.flush_cost = self.last_flush - now

    # ------------------------------------------------------------------ running
    def run(
        self, backend: str | Backend, n_jobs: int, address: str | None, progress: bool
    ) -> GridRun:
        """Run the jobs (on ``backend``, see :func:`merkit.parallel.open_backend`), then
        write the picks (see the module docstring)."""
        fits, scores, resumed = self.jobs()
        if resumed:
            log.info("resume: %d of %d grid points already in %s", resumed,
                     len(self.all_units), self.store)  # fmt: skip
        with (
            progress_bar(progress, label="grid") as bar,
            open_backend(backend, n_jobs, address) as be,
        ):
            self.execute([*fits, *scores], be, bar)
        grid_df = pd.DataFrame([self.rows[u.key] for u in self.all_units])
        selected = self.selections(grid_df)
        if selected:
            self.store.add_records(selected)
        self.store.compact()
        merge_grid(self.store.directory)
        sel_df = pd.DataFrame([r for r, _ in selected])
        self.record_salient(sel_df)
        return GridRun(
            grid=grid_df,
            selected=sel_df,
            computed=sum(len(j.units) for j in fits),
            resumed=resumed,
            criteria_only=sum(len(j.units) for j in scores),
            seconds=time.perf_counter() - self.started,
        )

    def execute(self, jobs: Sequence[PathJob], backend: Backend, bar) -> None:
        """Run ``jobs`` in order on ``backend``, recording and flushing as they finish (one
        progress bar per kind of work that is done: fits, criteria from stored fits)."""
        totals = {k: sum(len(j.units) for j in jobs if j.refit == k) for k in (True, False)}
        bars = {kind: bar.add_task(label, total=totals[kind], visible=bool(totals[kind]))
                for kind, label in ((True, "fits"), (False, "criteria"))}  # fmt: skip
        calls = ((run_path_job, (j, self.tdata[j.units[0].task], self.n_folds, self.fast))
                 for j in jobs)  # fmt: skip
        try:
            for job, outs in zip(jobs, backend.map(calls), strict=True):
                for key, res in outs:
                    self.record(key, res, job.refit)
                    bar.advance(bars[job.refit])
                self.flush()
        finally:
            self.flush(force=True)

    # ------------------------------------------------------------------ picks
    def selections(self, grid_df: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
        """Oracle, label-free and default picks of every (task, method, seed, data) group."""
        out = []
        if grid_df.empty:
            return out
        g = grid_df.assign(_unit=range(len(grid_df)))
        for (_, method, _, _), grp in g.groupby(["task", "method", "seed", "data"], sort=False):
            on = grp.reset_index(drop=True)
            for name, r, value in self._picks(method, on):
                u = self.all_units[int(r["_unit"])]
                td = self.tdata[u.task]
                pred = np.asarray(json.loads(r["y_pred"]), dtype=td.yt.dtype)
                row, preds = ResultStore.make_record(
                    protocol=u.protocol, task=u.task.name, source=u.task.source,
                    target=u.task.target, method=u.method, selection=name,
                    params=u.params_json, seed=u.seed, data=u.data, y_true=td.yt, y_pred=pred,
                    fold="", sample=td.sample, clip=td.clip, classes=td.classes,
                    extra={**(self.extra or {}), "seconds": r["seconds"], "grid_points": len(on),
                           "score": value},
                )  # fmt: skip
                out.append((row, preds))
        return out

    def _picks(self, method: str, on: pd.DataFrame) -> list[tuple[str, pd.Series, float]]:
        """``(selection, grid row, score)`` of one group's grid rows ``on``."""
        picks: list[tuple[str, pd.Series, float]] = []
        task = on["task"].iloc[0]
        best = select(on, "mean_f1", method=method)
        picks.append(("oracle", best, float(best["mean_f1"])))
        for c in self.criteria:
            col = pd.to_numeric(on.get(c), errors="coerce") if c in on else None
            if col is None or not np.isfinite(col.to_numpy(dtype=float)).any():
                log.warning("%s %s: no finite %r value; no %r row", task, method, c, c)
                continue
            r = select(on, c, method=method)
            picks.append((c, r, float(r[c])))
        dflt = _default_index(method, [json.loads(p) for p in on["params"]])
        if dflt is not None:
            picks.append(("default", on.iloc[dflt], float("nan")))
        else:
            log.info("%s %s: the default point is not in the grid; no 'default' row",
                     task, method)  # fmt: skip
        return picks

    def record_salient(self, selected: pd.DataFrame) -> None:
        """TGSR's selected blocks at the oracle point of each task (first seed)."""
        if SALIENT_METHOD not in self.names or selected.empty:
            return
        chosen: dict[CdmerTask, WorkUnit] = {}
        for r in selected.to_dict("records"):
            if (r["method"] == SALIENT_METHOD and r["selection"] == "oracle"
                    and int(r["seed"]) == self.seeds[0]):  # fmt: skip
                u = WorkUnit(get_task(r["task"]), SALIENT_METHOD, r["params"], self.seeds[0],
                             data=r["data"])  # fmt: skip
                chosen.setdefault(u.task, u)
        if chosen:
            record_tgsr_blocks(self.store.directory, list(chosen.values()), self.features)
