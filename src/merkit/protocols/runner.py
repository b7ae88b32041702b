"""Run DA methods over the CDMER protocol: units of work, scored and stored.

A unit of work is one (protocol, task, method, params, seed) with a stable key
(:meth:`WorkUnit.key`, the results-store key). :func:`cdmer_units` expands methods x
parameter grids x tasks x seeds into units; :func:`run_unit` fits one (source rows
labelled, target rows ``y = -1`` with negative ``sample_domain``, the
:mod:`merkit.adapt.base` convention) and predicts the target; :func:`run_cdmer`
runs a list of units, skipping those already in a :class:`ResultStore` when
``resume`` is set, and returns the tidy results table. Metrics come from
:mod:`merkit.metrics` via the store's record builder; no target label
reaches ``fit``.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from merkit._progress import progress_bar
from merkit.adapt import make_method
from merkit.adapt.base import MASKED_LABEL
from merkit.data.schema import FeatureSet
from merkit.parallel import Backend, open_backend
from merkit.protocols.cdmer import CdmerTask, available_tasks, get_task, resolve_tasks
from merkit.protocols.splits import stack_domains
from merkit.store import (
    COMPACT_BELOW_BYTES,
    MAX_PARTS,
    PARTS_DIR,
    RESULT_COLUMNS,
    ResultStore,
    _atomic_write_csv,
    _key_strings,
    _remove_empty_dir,
    directory_lock,
    list_parts,
    merge_due,
    params_to_json,
    remove_parts,
    result_key,
    result_keys,
    write_part,
)

log = logging.getLogger(__name__)

__all__ = [
    "GRID_FILE",
    "PUBLISHED_NAMES",
    "SELECTIONS",
    "GridRun",
    "UnitResult",
    "WorkUnit",
    "cdmer_units",
    "grid_points",
    "published_names",
    "read_grid",
    "run_cdmer",
    "run_grid",
    "run_unit",
    "write_tgsr_blocks",
]

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
    classes: tuple[str, ...] = ()  # class names indexed by the labels (for reports)

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
            classes=self.classes,
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


def _pair_groups(src: FeatureSet, tgt: FeatureSet, task: CdmerTask) -> np.ndarray | None:
    """The column groups (``FeatureSet.tgsr_groups``) both domains share, or None."""
    gs, gt = src.tgsr_groups, tgt.tgsr_groups
    if gs is None or gt is None:
        return None
    if not np.array_equal(gs, gt):
        raise ValueError(
            f"{task}: {src.name} and {tgt.name} group their columns differently "
            f"({src.grouping} vs {tgt.grouping}); load both with the same layout"
        )
    return gs


def _group_metadata(est, params: Mapping, groups: np.ndarray | None) -> dict:
    """``{"column_groups": groups}`` for an estimator whose ``fit`` takes column groups
    (TGSR), unless ``params`` fix them (``groups`` / ``group_size``: an explicit
    hyper-parameter replaces the features' layout); else ``{}``."""
    import inspect

    if groups is None or "column_groups" not in inspect.signature(est.fit).parameters:
        return {}
    if any(params.get(k) is not None for k in ("groups", "group_size")):
        return {}
    return {"column_groups": groups}


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
    meta = _group_metadata(est, unit.params, _pair_groups(src, tgt, task))
    t0 = time.perf_counter()
    est.fit(X[fit_idx], y_fit[fit_idx], sample_domain=domain[fit_idx], **meta)
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
        classes=src.classes or tgt.classes,
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
    n_jobs: int = 1,
    backend: str | Backend = "loky",
    address: str | None = None,
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

    Returns
    -------
    DataFrame
        One results row per unit (columns of :data:`merkit.store.RESULT_COLUMNS`
        plus ``seconds``), in unit order; resumed units are read back from the store.

    With a store, TGSR units also write ``DIR/tgsr_blocks.json`` (see
    :func:`write_tgsr_blocks`).
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

    with (
        progress_bar(progress, label="CDMER") as bar,
        open_backend(backend, n_jobs, address) as be,
    ):
        job = bar.add_task("", total=len(todo))
        shared = _Shared(features)  # one object: sent to a cluster once, not once per unit
        try:
            runs = be.map((_run_unit_shared, (u, shared)) for u in todo)
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
            if u.method == "tgsr" and u.key in rows:
                f1 = float(rows[u.key]["mean_f1"])
                if u.task not in best or f1 > best[u.task][0]:
                    best[u.task] = (f1, u)
        if best:
            write_tgsr_blocks(store.directory, [u for _, u in best.values()], features)
    extra = [c for c in out.columns if c not in RESULT_COLUMNS]
    return out[list(RESULT_COLUMNS) + extra].reset_index(drop=True)


class _Shared:
    """Holds the features of a run so that a cluster receives them once (Dask scatters
    only weak-referenceable arguments: a plain dict would travel with every unit)."""

    def __init__(self, features: Mapping[str, FeatureSet]) -> None:
        self.features = features


def _run_unit_shared(unit: WorkUnit, shared: _Shared) -> UnitResult:
    return run_unit(unit, shared.features)


#: written next to the results store when TGSR runs (read by :mod:`merkit.results.report`)
TGSR_BLOCKS_FILE = "tgsr_blocks.json"


def write_tgsr_blocks(
    directory: str | Path, units: Sequence[WorkUnit], features: Mapping[str, FeatureSet]
) -> Path:
    """Refit TGSR at the chosen point of each task and write ``DIR/tgsr_blocks.json``.

    The file (format of :func:`merkit.results.report.read_tgsr_blocks`) is
    ``{"levels": [grid levels], "tasks": {task name: [selected block ids]}}``:
    ``selected_blocks_`` of :class:`~merkit.adapt.tgsr.TransferGroupSparseRegression`
    fitted as :func:`run_unit` does. When TGSR's groups are not the facial blocks (the
    authors' column runs of the benchmark files), ``"grouping"`` names them, ``"groups"``
    holds the selected group ids per task and ``"tasks"`` the facial blocks (of
    ``FeatureSet.blocks``) that hold at least one column of a selected group. Tasks of
    an existing file with the same levels and grouping are kept (a task given here
    replaces its entry). The write is atomic.
    """
    from merkit.store import atomic_write_text

    path = Path(directory) / TGSR_BLOCKS_FILE
    levels: list[int] = []
    tasks: dict[str, list[int]] = {}
    grouping = "spatial"
    runs: dict[str, list[int]] = {}
    for u in units:
        src = features[u.task.source]
        levels = [int(v) for v in (src.levels or (1, 2, 4, 8))]
        td = _task_data(u.task, features)
        X = np.vstack([td.Xs, td.Xt])
        y = np.r_[td.ys, np.full(len(td.Xt), MASKED_LABEL, dtype=np.int64)]
        sd = np.r_[np.ones(len(td.Xs), dtype=np.int64), -np.ones(len(td.Xt), dtype=np.int64)]
        est = make_method(u.method, **u.params)
        meta = _group_metadata(est, u.params, td.groups)
        est.fit(X, y, sample_domain=sd, **meta)
        sel = [int(b) for b in est.selected_blocks_]
        if meta and src.column_groups is not None and src.blocks is not None:
            # the groups are not facial blocks: record the blocks their columns fall in
            grouping = src.grouping
            runs[u.task.name] = sel
            used = np.isin(est.column_groups_, sel)
            tasks[u.task.name] = np.unique(src.blocks[used]).astype(int).tolist()
        else:
            tasks[u.task.name] = sel
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        same = isinstance(old, dict) and old.get("levels") == levels
        if same and "tasks" in old and old.get("grouping", "spatial") == grouping:
            tasks = {**old["tasks"], **tasks}
            runs = {**old.get("groups", {}), **runs}
    rows = ",\n".join(f"  {json.dumps(t)}: {json.dumps(ids)}" for t, ids in tasks.items())
    head = f'{{"levels": {json.dumps(levels)}, '
    if grouping != "spatial":
        grp = ",\n".join(f"  {json.dumps(t)}: {json.dumps(ids)}" for t, ids in runs.items())
        head += f'"grouping": {json.dumps(grouping)}, "groups": {{\n{grp}\n}}, '
    atomic_write_text(path, f'{head}"tasks": {{\n{rows}\n}}}}\n')
    log.info("TGSR selected blocks of %s: %s", ", ".join(tasks), path)
    return path


# ============================================================================ grid runs
#: name of the per-grid-point table written next to the results store
GRID_FILE = "grid.csv"

#: constructor parameter name -> the name the CDMER papers use, per registry method
PUBLISHED_NAMES: dict[str, dict[str, str]] = {
    "ulsif": {"weighting__lam": "lambda"},
    "tca": {"n_components": "k"},
    "gfk": {"n_components": "k"},
    "sa": {"n_components": "k"},
    "tkl": {"damping": "zeta"},
    "stm": {"lam": "lambda"},
    "tsrg": {"lam": "lambda"},
    "drfs_t": {"lam": "lambda"},
    "drls": {"lam": "lambda"},
}

#: selections written as results rows besides one per label-free criterion
SELECTIONS: tuple[str, ...] = ("oracle", "default")

#: TGSR parameters the fast path handles (others must be left at their defaults)
_TGSR_AXES = ("kappa", "xi")
_TGSR_CONST = ("group_size", "tol", "max_iter")


def published_names(method: str, params: Mapping | str) -> dict:
    """Hyper-parameters renamed to the papers' names (``{"n_components": 24}`` of TCA ->
    ``{"k": 24}``; uLSIF ``weighting__lam`` -> ``lambda``); other names are kept."""
    p = json.loads(params) if isinstance(params, str) else dict(params)
    names = PUBLISHED_NAMES.get(str(method).lower(), {})
    return {names.get(k, k): v for k, v in p.items()}


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
        ``"published"``: the benchmark's search space
        (:func:`merkit.adapt.selection.published_grid`; TCA / GFK / SA k = 1..kmax of the
        task); ``"default"``: the documented default point only
        (:data:`merkit.adapt.selection.DEFAULTS`); a mapping ``{method: [params, ...]}``
        (or one params dict) gives the points explicitly.
    """
    from merkit.adapt.selection import DEFAULTS, published_grid

    key = str(method).lower()
    if isinstance(grid, str):
        if grid == "published":
            return published_grid(key, n_source, n_target)
        if grid == "default":
            return [dict(DEFAULTS.get(key, {}))]
        raise ValueError(f"grid must be 'published', 'default' or a mapping, got {grid!r}")
    if key not in grid:
        raise ValueError(f"grid mapping has no entry for method {key!r} (has {sorted(grid)})")
    points = grid[key]
    return [dict(points)] if isinstance(points, Mapping) else [dict(p) for p in points]


def _default_index(method: str, points: Sequence[Mapping]) -> int | None:
    """Position of the documented default point among ``points`` (None if absent)."""
    from merkit.adapt.selection import DEFAULTS

    want = params_to_json(DEFAULTS.get(method, {}))
    for i, p in enumerate(points):
        if params_to_json(p) == want:
            return i
    for i, p in enumerate(points):
        if _is_default(method, dict(p)):
            return i
    return None


def _is_default(method: str, params: dict) -> bool:
    """Whether ``params`` is the method's documented default point."""
    from merkit.adapt.selection import DEFAULTS

    dflt = DEFAULTS.get(method, {})
    keys = set(params) | set(dflt)
    if not keys:
        return True
    have = make_method(method, params).get_params(deep=True)
    ref = make_method(method).get_params(deep=True)
    return all(k in have and have[k] == ref.get(k) for k in keys)


@dataclass(frozen=True)
class _TaskData:
    """Arrays of one task, built once in the parent process (shared with the workers)."""

    Xs: np.ndarray
    ys: np.ndarray
    Xt: np.ndarray
    yt: np.ndarray
    sample: np.ndarray
    clip: np.ndarray
    classes: tuple[str, ...] = ()
    #: column groups of the features (``FeatureSet.tgsr_groups``), fit metadata of TGSR
    groups: np.ndarray | None = None


def _task_data(task: CdmerTask, features: Mapping[str, FeatureSet]) -> _TaskData:
    src, tgt = features[task.source], features[task.target]
    _check_pair(src, tgt, task)
    _, split = stack_domains(src.table, tgt.table)  # leakage-checked, as run_unit
    X = np.vstack([src.X, tgt.X]).astype(np.float64)
    y = np.concatenate([src.y, tgt.y])
    rows = split.test_idx - len(src)
    return _TaskData(
        Xs=np.ascontiguousarray(X[split.train_idx]),
        ys=y[split.train_idx],
        Xt=np.ascontiguousarray(X[split.test_idx]),
        yt=y[split.test_idx],
        sample=rows,
        clip=tgt.table["clip"].astype(str).to_numpy()[rows],
        classes=src.classes or tgt.classes,
        groups=_pair_groups(src, tgt, task),
    )


def _neg_entropy(S: np.ndarray | None) -> float:
    from merkit.adapt.selection import softmax_entropy

    return float("nan") if S is None else -float(softmax_entropy(S).mean())


def _fit_grid_point(unit: WorkUnit, td: _TaskData, criteria: Sequence[str], n_folds: int) -> dict:
    """Fit one grid point as :func:`run_unit` does, then its label-free criteria."""
    from merkit.adapt import selection as sel

    X = np.vstack([td.Xs, td.Xt])
    y = np.r_[td.ys, np.full(len(td.Xt), MASKED_LABEL, dtype=np.int64)]
    sd = np.r_[np.ones(len(td.Xs), dtype=np.int64), -np.ones(len(td.Xt), dtype=np.int64)]
    est = make_method(unit.method, **unit.params)
    if "random_state" in est.get_params() and "random_state" not in unit.params:
        est.set_params(random_state=unit.seed)
    meta = _group_metadata(est, unit.params, td.groups)
    # the label-free criteria refit from parameters: the groups go in as ``groups``
    params = {**unit.params, "groups": meta["column_groups"]} if meta else unit.params
    t0 = time.perf_counter()
    est.fit(X, y, sample_domain=sd, **meta)
    pred = np.asarray(est.predict(td.Xt))
    seconds = time.perf_counter() - t0
    vals: dict[str, float] = {}
    for c in criteria:
        if c == "entropy":
            vals[c] = _neg_entropy(sel.target_scores(est, td.Xt))
        elif c == "class_entropy":
            vals[c] = sel.class_entropy(pred)
        elif c == "reverse":
            vals[c] = sel.reverse_validation(unit.method, params, td.Xs, td.ys, td.Xt, pred)
        elif c == "iwcv":
            vals[c] = sel.iwcv_score(unit.method, params, td.Xs, td.ys, td.Xt, n_folds, unit.seed)
    return {"key": unit.key, "y_pred": pred, "criteria": vals, "seconds": seconds,
            "criteria_seconds": time.perf_counter() - t0 - seconds}  # fmt: skip


def _tgsr_setting(unit: WorkUnit) -> tuple | None:
    """``(consts, kappa, xi)`` when the TGSR fast path can run ``unit``, else None."""
    if unit.method != "tgsr":
        return None
    p = unit.params
    if not set(p) <= {*_TGSR_AXES, *_TGSR_CONST}:
        return None
    from merkit.adapt.tgsr import TransferGroupSparseRegression

    d = TransferGroupSparseRegression().get_params()
    consts = tuple((k, p.get(k, d[k])) for k in _TGSR_CONST)
    return consts, int(p.get("kappa", d["kappa"])), float(p.get("xi", d["xi"]))


def _tgsr_groups(td: _TaskData, consts: dict) -> np.ndarray:
    """TGSR's column groups of a task: contiguous runs when the unit sets ``group_size``,
    else the features' groups (``td.groups``) as :func:`_group_metadata` passes them."""
    from merkit.adapt.tgsr import block_ids

    size = consts["group_size"]
    return block_ids(td.Xs.shape[1], td.groups if size is None else None, size)


def _tgsr_scores(prob, K: np.ndarray, kappas, xis, consts: dict, labels=None) -> np.ndarray:
    """Label scores (n, n_rows, c) of the settings (kappas[i], xis[i]) of one task, solved
    together in the dual (:func:`merkit.adapt.tgsr.tgsr_dual_solve`; no C formed)."""
    from merkit.adapt.tgsr import tgsr_dual_solve

    S, _ = tgsr_dual_solve(prob, kappas, xis, labels=labels, K=K, tol=consts["tol"],
                           max_iter=consts["max_iter"])  # fmt: skip
    return S


def _tgsr_forward(
    units: list[WorkUnit], td: _TaskData, consts: tuple, criteria: Sequence[str]
) -> list[dict]:
    """TGSR points of one task in one dual solve: predictions, entropy, class_entropy.

    Equal to fitting :class:`~merkit.adapt.tgsr.TransferGroupSparseRegression` per point
    (same ALM iterates); ``reverse`` / ``iwcv`` are left to :func:`_tgsr_reverse`.
    """
    from merkit.adapt import selection as sel
    from merkit.adapt.tgsr import TGSRProblem

    c = dict(consts)
    t0 = time.perf_counter()
    g = _tgsr_groups(td, c)
    classes, codes = np.unique(td.ys, return_inverse=True)
    prob = TGSRProblem.from_data(td.Xs, np.eye(len(classes))[codes], td.Xt, g)
    K = prob.cross_gram(td.Xt)
    S = _tgsr_scores(prob, K, [_tgsr_setting(u)[1] for u in units],
                     [_tgsr_setting(u)[2] for u in units], c)  # fmt: skip
    seconds = (time.perf_counter() - t0) / len(units)
    out = []
    for u, s in zip(units, S, strict=True):
        pred = classes[np.argmax(s, axis=1)]
        vals = {}
        if "entropy" in criteria:
            vals["entropy"] = _neg_entropy(s)
        if "class_entropy" in criteria:
            vals["class_entropy"] = sel.class_entropy(pred)
        out.append({"key": u.key, "y_pred": pred, "criteria": vals, "seconds": seconds,
                    "criteria_seconds": 0.0})  # fmt: skip
    return out


def _tgsr_reverse(
    td: _TaskData, consts: tuple, points: list[tuple[tuple, int, float, np.ndarray]]
) -> list[tuple[tuple, float]]:
    """Reverse validation of TGSR points ``(key, kappa, xi, target pseudo-labels)``.

    The swapped problem (pseudo-labelled target as source) depends on the labels only
    through its label matrix, so its Grams are built once and every point is solved in
    one :func:`~merkit.adapt.tgsr.tgsr_dual_solve` call with its own labels (one-hot over
    the source classes; a class absent from a pseudo-labelling is an all-zero label
    column, which stays zero in the ALM and is never predicted) and scored on the true
    source labels; equal to :func:`merkit.adapt.selection.score_unlabelled`
    (``"reverse"``) per point.
    """
    from sklearn.metrics import f1_score

    from merkit.adapt.tgsr import TGSRProblem

    out = [(key, 0.0) for key, _, _, pseudo in points if np.unique(pseudo).size < 2]
    todo = [p for p in points if np.unique(p[3]).size >= 2]
    if not todo:
        return out
    c = dict(consts)
    g = _tgsr_groups(td, c)
    classes = np.unique(np.concatenate([td.ys, *[p[3] for p in todo]]))
    onehot = np.stack([(p[3][:, None] == classes[None]).astype(float) for p in todo])
    prob = TGSRProblem.from_data(td.Xt, onehot[0], td.Xs, g)
    K = prob.cross_gram(td.Xs)
    S = _tgsr_scores(prob, K, [p[1] for p in todo], [p[2] for p in todo], c, labels=onehot)
    for p, s, oh in zip(todo, S, onehot, strict=True):
        s = np.where(oh.any(axis=0)[None], s, -np.inf)  # only the pseudo-labels' classes
        back = classes[np.argmax(s, axis=1)]
        out.append((p[0], float(f1_score(td.ys, back, average="macro"))))
    return out


@dataclass
class GridRun:
    """What :func:`run_grid` produced.

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


def _encode_pred(pred: np.ndarray) -> str:
    return json.dumps(np.asarray(pred).tolist(), separators=(",", ":"))


def read_grid(directory: str | Path) -> pd.DataFrame:
    """The grid rows of ``DIR`` as a DataFrame (empty when there are none); ``criteria``
    and ``y_pred`` stay JSON strings.

    Layout: ``DIR/grid.csv`` holds the merged rows, one per key (task, method, params,
    seed, data); ``DIR/parts/NNNNNNNN.grid.csv`` (next to the store's parts, written with
    the same helpers of :mod:`merkit.store`) the rows :func:`run_grid` wrote or
    updated since the last merge, each part written atomically (its rename commits it).
    Reading applies the parts oldest first: the newest version of a key wins and keeps
    the place where its key first appeared, so the table is the same, column order and
    dtypes included, whether or not the parts are merged.
    """
    directory = Path(directory)
    path = directory / GRID_FILE
    for _ in range(20):
        found = _grid_parts(directory)
        if not found:
            return _read_grid_csv(path) if path.is_file() else pd.DataFrame()
        try:
            rows = _merged_grid(directory, found)
        except FileNotFoundError:  # a merge removed a part meanwhile: read again
            continue
        other = [c for c in rows.columns if c not in _GRID_STR_COLUMNS]
        if not other:
            return rows
        # the types a merged file reads with (the string columns are read as strings)
        typed = _read_grid_csv(io.StringIO(rows[other].to_csv(index=False)))
        return pd.concat([rows.drop(columns=other), typed], axis=1)[rows.columns]
    raise RuntimeError(f"{directory}: the grid parts kept changing while being read")


_GRID_COLUMNS = (*RESULT_COLUMNS, "published_params", "seconds", "criteria_seconds",
                 "criteria", "entropy", "class_entropy", "reverse", "iwcv", "y_pred")  # fmt: skip
_GRID_STR_COLUMNS = ("protocol", "task", "source", "target", "method", "selection",
                     "params", "published_params", "data", "labels", "created", "criteria",
                     "y_pred")  # fmt: skip
_GRID_FLOAT_COLUMNS = ("mean_f1", "uar", "accuracy", "seconds", "criteria_seconds", "score",
                       "entropy", "class_entropy", "reverse", "iwcv")  # fmt: skip
#: kind of the grid's part files (``DIR/parts/NNNNNNNN.grid.csv``)
GRID_PART = "grid"
#: merge the grid parts after every write while ``grid.csv`` is smaller than this (bytes)
GRID_COMPACT_BELOW = COMPACT_BELOW_BYTES
#: merge the grid parts when this many have accumulated
GRID_MAX_PARTS = MAX_PARTS


def _read_grid_csv(source) -> pd.DataFrame:
    df = pd.read_csv(source, dtype={c: str for c in _GRID_STR_COLUMNS}, keep_default_na=False,
                     na_values=[])  # fmt: skip
    for c in _GRID_FLOAT_COLUMNS:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c].replace("", np.nan)).astype(float)
    return df


def _grid_frame(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Grid rows as a table: the standard columns first, others in order of appearance."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    first = [c for c in _GRID_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def _grid_parts(directory: Path) -> dict[int, dict[str, Path]]:
    return list_parts(directory / PARTS_DIR, (GRID_PART,))


def _merged_grid(directory: Path, found: Mapping[int, Mapping[str, Path]]) -> pd.DataFrame:
    """``grid.csv`` and the parts ``found`` as the strings written: per key the row of the
    newest part, at the place its key first appeared."""
    files = [found[n][GRID_PART] for n in sorted(found)]
    if (directory / GRID_FILE).is_file():
        files.insert(0, directory / GRID_FILE)
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[]) for f in files]
    df = pd.concat(frames, ignore_index=True).fillna("")
    keys = _key_strings(df.assign(selection="none"))  # as _grid_key
    first, _ = pd.factorize(keys)  # numbered in order of first appearance
    newest = ~keys.duplicated(keep="last").to_numpy()
    df = df[newest].iloc[np.argsort(first[newest])]
    return _grid_frame(df).reset_index(drop=True)


def _write_grid_part(directory: Path, rows: Iterable[Mapping]) -> None:
    """Write the new or changed ``rows`` as one grid part, then merge the parts when the
    store's policy says so (:func:`merkit.store.merge_due`); under the store's
    directory lock."""
    frame = _grid_frame(rows)
    with directory_lock(directory):
        number = write_part(directory / PARTS_DIR, [(GRID_PART, frame)])
        found = _grid_parts(directory)
        main = directory / GRID_FILE
        size = sum(f.stat().st_size for part in found.values() for f in part.values())
        if merge_due(main.stat().st_size if main.is_file() else 0, size, len(found),
                     GRID_COMPACT_BELOW, GRID_MAX_PARTS):  # fmt: skip
            _merge_grid(directory)
        else:
            log.debug("%s: grid rows in part %d", directory, number)


def _merge_grid(directory: Path) -> None:
    """Merge the grid parts into ``grid.csv`` (atomic write), then remove them oldest
    first (a crash leaves newer parts, which re-apply the same rows); also removes the
    temporary files of a killed writer (under the store's directory lock)."""
    with directory_lock(directory):
        _merge_grid_locked(directory)


def _merge_grid_locked(directory: Path) -> None:
    parts_dir = directory / PARTS_DIR
    stale = list(directory.glob(f".{GRID_FILE}.*.tmp"))
    if parts_dir.is_dir():
        stale += parts_dir.glob(f".*.{GRID_PART}.csv.*.tmp")
    for f in stale:
        f.unlink(missing_ok=True)
    found = _grid_parts(directory)
    if found:
        _atomic_write_csv(_merged_grid(directory, found), directory / GRID_FILE)
        remove_parts(found, (GRID_PART,))
    _remove_empty_dir(parts_dir)


def _grid_key(row: Mapping) -> tuple[str, ...]:
    return result_key(row["protocol"], row["task"], row["method"], "none", row["params"],
                      row["seed"], row.get("data", ""))  # fmt: skip


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
        See :func:`grid_points`.
    tasks, seed : as :func:`run_cdmer`.
    store : ResultStore or path
    n_jobs : int
        Parallel workers over units; the numbers equal a serial run.
    backend, address : str
        Where the jobs run (:class:`merkit.parallel.Backend`): ``"loky"`` (local
        processes), ``"ray"`` or ``"dask"`` (the cluster at ``address``, or a local one of
        ``n_jobs`` workers started for the run and shut down after it); or an open Backend.
    criteria : sequence of str
        Label-free criteria (:data:`merkit.adapt.selection.CRITERIA`).
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
        Route TGSR points through the dual solver (the points of two xi values per job;
        reverse validation 64 points per solve, each with its own pseudo-labels). Same
        predictions and criterion values as per-point fits.

    Resuming: a point whose key is in the store and whose ``grid.csv`` row holds every
    requested criterion is not recomputed; one whose row lacks a criterion is refitted
    (TGSR ``reverse`` is computed from the stored predictions alone).

    Grid rows are written incrementally: each flush writes only the rows new or updated
    since the last one, as a part ``DIR/parts/NNNNNNNN.grid.csv`` (after their store
    rows); the parts are merged into ``grid.csv`` with the store's policy (at once while
    ``grid.csv`` is under 4 MiB, when the parts outgrow it or number 128) and at the end
    of the run. :func:`read_grid` reads the same table either way.

    With TGSR among the methods, ``DIR/tgsr_blocks.json`` gets the blocks selected at the
    oracle point of each task (first seed; :func:`write_tgsr_blocks`).
    """
    from merkit.adapt import selection as sel

    t_start = time.perf_counter()
    bad = [c for c in criteria if c not in sel.CRITERIA]
    if bad:
        raise ValueError(f"unknown criteria {bad}; expected some of {sel.CRITERIA}")
    criteria = list(dict.fromkeys(criteria))
    names = [methods] if isinstance(methods, str) else list(methods)
    names = [str(m).strip().lower() for m in names]
    if not names:
        raise ValueError("no method given")
    if not isinstance(store, ResultStore):
        store = ResultStore(store)
    probe = cdmer_units(features, names[0], tasks=tasks, seeds=seed)  # checks tasks / method
    task_list = list(dict.fromkeys(u.task for u in probe))
    seeds = list(dict.fromkeys(u.seed for u in probe))
    tdata = {t: _task_data(t, features) for t in task_list}

    # ---------------------------------------------------------------- units
    units: list[WorkUnit] = []
    seen: set[tuple] = set()
    prints = {
        t: f"{features[t.source].fingerprint()}>{features[t.target].fingerprint()}"
        for t in task_list
    }
    for m in names:
        for t in task_list:
            td = tdata[t]
            pts = grid_points(m, grid, len(td.Xs), len(td.Xt))
            checked: set[str] = set()
            for p in pts:
                shape = json.dumps(sorted(p))
                if shape not in checked:  # unknown names / parameters fail before any fit
                    make_method(m, **p)
                    checked.add(shape)
                for s in seeds:
                    u = WorkUnit(t, m, params_to_json(p), s, data=prints[t])
                    if u.key not in seen:
                        units.append(u)
                        seen.add(u.key)
    by_key = {u.key: u for u in units}
    cheap = [c for c in criteria if c in ("entropy", "class_entropy")]
    sampled: set[tuple] = set()  # units that get the expensive criteria
    groups_mt: dict[tuple, list[WorkUnit]] = {}
    for u in units:
        groups_mt.setdefault((u.task, u.method, u.seed), []).append(u)
    for us in groups_mt.values():
        if expensive_sample is None or len(us) <= expensive_sample:
            sampled.update(u.key for u in us)
        else:
            pos = np.unique(np.round(np.linspace(0, len(us) - 1, int(expensive_sample))))
            sampled.update(us[int(i)].key for i in pos)
            log.info("%s %s: reverse / iwcv on %d of %d grid points (evenly spaced)",
                     us[0].task.name, us[0].method, len(pos), len(us))  # fmt: skip

    def wanted(u: WorkUnit) -> list[str]:
        return list(criteria) if u.key in sampled else [c for c in criteria if c in cheap]

    # ---------------------------------------------------------------- resume state
    rows: dict[tuple, dict] = {}
    old = read_grid(store.directory)
    for r in old.to_dict("records"):
        rows[_grid_key(r)] = r
    stored = store.keys()

    def have(key) -> set[str]:
        r = rows.get(key)
        if r is None or key not in stored:
            return set()
        return {"_fit", *json.loads(r.get("criteria") or "[]")}

    need_fit: list[WorkUnit] = []
    need_rev: list[WorkUnit] = []  # TGSR fast path: only reverse missing
    for u in units:
        got = have(u.key)
        missing = [c for c in wanted(u) if c not in got]
        if "_fit" not in got:
            need_fit.append(u)
        elif missing:
            if fast and _tgsr_setting(u) is not None and missing == ["reverse"]:
                need_rev.append(u)
            else:
                need_fit.append(u)
    resumed = len(units) - len(need_fit) - len(need_rev)
    if resumed:
        log.info("resume: %d of %d grid points already in %s", resumed, len(units), store)

    # ---------------------------------------------------------------- jobs
    jobs: list[tuple] = []  # (n_units, callable, args)
    tg_groups: dict[tuple, dict[float, list[WorkUnit]]] = {}
    for u in need_fit:
        s = _tgsr_setting(u) if fast and "iwcv" not in wanted(u) else None
        if s is None:
            jobs.append((1, _fit_grid_point, (u, tdata[u.task], wanted(u), n_folds)))
        else:
            tg_groups.setdefault((u.task, u.seed, u.data, s[0]), {}).setdefault(s[2], []).append(u)
    for (task, _, _, consts), by_xi in tg_groups.items():  # two xi values per dual solve
        crit = [c for c in criteria if c in cheap]
        groups = list(by_xi.values())
        for i in range(0, len(groups), 2):
            us = [u for g in groups[i : i + 2] for u in g]
            jobs.append((len(us), _tgsr_forward, (us, tdata[task], consts, crit)))

    pending: list[tuple[dict, pd.DataFrame]] = []
    state = {"last": time.perf_counter(), "cost": 0.0}
    changed: dict[tuple, None] = {}  # keys of the grid rows new or updated since the last flush

    def record(unit: WorkUnit, pred: np.ndarray, vals: dict, seconds: float, csec: float):
        td = tdata[unit.task]
        res = UnitResult(unit, td.yt, pred, td.sample, td.clip, seconds, td.classes)
        row, preds = res.record(extra)
        pending.append((row, preds))
        prev = rows.get(unit.key, {})
        keep = {c: prev[c] for c in sel.CRITERIA if c in prev and c in json.loads(
            prev.get("criteria") or "[]") and c not in vals}  # fmt: skip
        done = sorted({*keep, *vals})
        rows[unit.key] = {
            **row,
            "published_params": params_to_json(published_names(unit.method, unit.params)),
            "criteria_seconds": round(csec, 4),
            "criteria": json.dumps(done),
            **keep,
            **vals,
            "y_pred": _encode_pred(pred),
        }
        changed[unit.key] = None

    def flush(force: bool = False) -> None:
        now = time.perf_counter()
        if not force and (len(pending) < flush_every or now - state["last"] < 2 * state["cost"]):
            return
        if pending:
            store.add_records(pending)
            pending.clear()
        if changed:  # only those rows, as one part (after their store rows)
            _write_grid_part(store.directory, [rows[k] for k in changed])
            changed.clear()
        state["last"] = time.perf_counter()
        state["cost"] = state["last"] - now

    n_new = sum(n for n, _, _ in jobs)
    with (
        progress_bar(progress, label="grid") as bar,
        open_backend(backend, n_jobs, address) as be,
    ):
        job = bar.add_task("fits", total=n_new)
        try:
            for outs in _execute(jobs, be):
                for o in outs if isinstance(outs, list) else [outs]:
                    u = by_key[o["key"]]
                    record(u, o["y_pred"], o["criteria"], o["seconds"], o["criteria_seconds"])
                    bar.advance(job)
                flush()
            flush(force=True)
            # TGSR reverse validation, 64 points (own pseudo-labels each) per dual solve
            if fast and "reverse" in criteria:
                todo = [
                    u
                    for u in units
                    if u.key in sampled
                    and _tgsr_setting(u) is not None
                    and "reverse" not in json.loads(rows[u.key].get("criteria") or "[]")
                ]
                groups: dict[tuple, list] = {}
                for u in todo:
                    consts, kappa, xi = _tgsr_setting(u)
                    pseudo = np.asarray(json.loads(rows[u.key]["y_pred"]))
                    groups.setdefault((u.task, consts), []).append((u.key, kappa, xi, pseudo))
                rjobs = [
                    (len(pts[i:i + 64]), _tgsr_reverse, (tdata[task], consts, pts[i:i + 64]))
                    for (task, consts), pts in groups.items()
                    for i in range(0, len(pts), 64)
                ]  # fmt: skip
                # shown only when there is TGSR work: no stray "TGSR reverse 0/0" on other runs
                rjob = bar.add_task("TGSR reverse", total=len(todo), visible=bool(todo))
                for outs in _execute(rjobs, be):
                    for key, v in outs:
                        r = rows[key]
                        r["reverse"] = v
                        r["criteria"] = json.dumps(sorted({*json.loads(r["criteria"]), "reverse"}))
                        changed[key] = None
                        bar.advance(rjob)
                    if time.perf_counter() - state["last"] > max(30.0, 2 * state["cost"]):
                        flush(force=True)
        finally:
            flush(force=True)

    # ---------------------------------------------------------------- selections
    grid_df = pd.DataFrame([rows[u.key] for u in units])
    selected = _select_rows(grid_df, units, tdata, criteria, extra)
    if selected:
        store.add_records(selected)
    store.compact()
    _merge_grid(store.directory)
    sel_df = pd.DataFrame([r for r, _ in selected])
    chosen: dict[CdmerTask, WorkUnit] = {}
    for r in sel_df.to_dict("records") if "tgsr" in names else []:
        if r["method"] == "tgsr" and r["selection"] == "oracle" and int(r["seed"]) == seeds[0]:
            u = WorkUnit(get_task(r["task"]), "tgsr", r["params"], seeds[0], data=r["data"])
            chosen.setdefault(u.task, u)
    if chosen:
        write_tgsr_blocks(store.directory, list(chosen.values()), features)
    return GridRun(
        grid=grid_df,
        selected=sel_df,
        computed=len(need_fit),
        resumed=resumed,
        criteria_only=len(need_rev),
        seconds=time.perf_counter() - t_start,
    )


def _execute(jobs: list[tuple], backend: Backend):
    """Run ``(n, func, args)`` jobs on ``backend``, yielding results in job order."""
    yield from backend.map((func, args) for _, func, args in jobs)


def _select_rows(
    grid_df: pd.DataFrame,
    units: list[WorkUnit],
    tdata: Mapping[CdmerTask, _TaskData],
    criteria: Sequence[str],
    extra: Mapping | None,
) -> list[tuple[dict, pd.DataFrame]]:
    """Oracle, label-free and default picks of every (task, method, seed, data) group."""
    from merkit.adapt.selection import select

    out = []
    if grid_df.empty:
        return out
    g = grid_df.assign(_unit=range(len(grid_df)))
    for (_, method, _, _), grp in g.groupby(["task", "method", "seed", "data"], sort=False):
        on = grp.reset_index(drop=True)
        picks: list[tuple[str, pd.Series, float]] = []
        if len(on):
            best = select(on, "mean_f1", method=method)
            picks.append(("oracle", best, float(best["mean_f1"])))
            for c in criteria:
                col = pd.to_numeric(on.get(c), errors="coerce") if c in on else None
                if col is None or not np.isfinite(col.to_numpy(dtype=float)).any():
                    log.warning("%s %s: no finite %r value; no %r row",
                                grp["task"].iloc[0], method, c, c)  # fmt: skip
                    continue
                r = select(on, c, method=method)
                picks.append((c, r, float(r[c])))
        dflt = _default_index(method, [json.loads(p) for p in on["params"]])
        if dflt is not None:
            picks.append(("default", on.iloc[dflt], float("nan")))
        else:
            log.info("%s %s: the default point is not in the grid; no 'default' row",
                     grp["task"].iloc[0], method)  # fmt: skip
        for name, r, value in picks:
            u = units[int(r["_unit"])]
            td = tdata[u.task]
            pred = np.asarray(json.loads(r["y_pred"]), dtype=td.yt.dtype)
            row, preds = ResultStore.make_record(
                protocol=u.protocol, task=u.task.name, source=u.task.source,
                target=u.task.target, method=u.method, selection=name, params=u.params_json,
                seed=u.seed, data=u.data, y_true=td.yt, y_pred=pred, fold="",
                sample=td.sample, clip=td.clip, classes=td.classes,
                extra={**(extra or {}), "seconds": r["seconds"], "grid_points": len(on),
                       "score": value},
            )  # fmt: skip
            out.append((row, preds))
    return out
