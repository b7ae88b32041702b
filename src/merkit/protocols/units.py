"""Units of work of the CDMER protocol: who trains on which rows and who is tested.

A unit of work is one (protocol, task, method, params, seed) with a stable key
(:meth:`WorkUnit.key`, the results-store key). :func:`cdmer_units` expands methods x
parameter grids x tasks x seeds into units; :func:`task_data` builds the rows of a task
once (source rows labelled, target rows to predict, leakage-checked); :func:`run_unit`
fits one unit (source rows labelled, target rows ``y = -1`` with negative
``sample_domain``, the :mod:`merkit.adapt.base` convention) and predicts the target. No
target label reaches ``fit``. Column groups of the features (``FeatureSet.tgsr_groups``)
travel as fit metadata to the methods that request them (:func:`fit_metadata`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from merkit.adapt import MASKED_LABEL, DomainAdaptationClassifier, make_method
from merkit.adapt.base import first_appearance_codes
from merkit.data.schema import FeatureSet
from merkit.protocols.cdmer import CdmerTask, available_tasks, get_task, resolve_tasks
from merkit.protocols.splits import stack_domains
from merkit.store import ResultStore, params_to_json, result_key

__all__ = [
    "CLASS_ORDERS",
    "PROTOCOL",
    "TaskData",
    "UnitResult",
    "WorkUnit",
    "cdmer_units",
    "data_fingerprint",
    "fit_metadata",
    "method_estimator",
    "check_class_order",
    "class_order_of",
    "run_unit",
    "task_data",
]

PROTOCOL = "cdmer"
#: how a task's class labels are coded for its fits: ``"sorted"`` (scikit-learn's LibSVM
#: order; a one-vs-one vote tie goes to the smallest label) or ``"first-appearance"``
#: (MATLAB LibSVM's order, which the CDMER papers used: the classes in order of first
#: appearance in the source rows, so a tie goes to the first of them)
CLASS_ORDERS = ("sorted", "first-appearance")
_ORDER_TAG = ";classes="


def check_class_order(class_order: str) -> str:
    """``class_order`` if it is one of :data:`CLASS_ORDERS`, else ValueError (one line)."""
    if class_order not in CLASS_ORDERS:
        raise ValueError(
            f"class order {class_order!r} is unknown; use one of {', '.join(CLASS_ORDERS)}"
        )
    return class_order


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
    data : str
        Fingerprints of the two domains' features (results of other features never mix),
        followed by ``;classes=first-appearance`` when the labels are coded in that order
        (:func:`data_fingerprint`).
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

    @property
    def class_order(self) -> str:
        """How the task's labels are coded for the fit (:data:`CLASS_ORDERS`), as ``data``
        records it."""
        return class_order_of(self.data)

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


def class_order_of(data: str) -> str:
    """The class order (:data:`CLASS_ORDERS`) a units' ``data`` value records."""
    _, _, order = str(data).partition(_ORDER_TAG)
    return order or "sorted"


def data_fingerprint(
    task: CdmerTask, features: Mapping[str, FeatureSet], class_order: str = "sorted"
) -> str:
    """The ``data`` of a task's units: the fingerprints of its two domains' features, and
    the class order when it is not ``"sorted"`` (results of the two orders never mix)."""
    return _with_order(
        f"{features[task.source].fingerprint()}>{features[task.target].fingerprint()}",
        class_order,
    )


def _with_order(data: str, class_order: str) -> str:
    """``data`` tagged with ``class_order`` unless it is ``"sorted"``."""
    return (
        data if check_class_order(class_order) == "sorted" else f"{data}{_ORDER_TAG}{class_order}"
    )


def cdmer_units(
    features: Mapping[str, FeatureSet] | Iterable[str],
    methods: str | Mapping[str, dict | Sequence[dict] | None] = "svm",
    *,
    params: dict | Sequence[dict] | None = None,
    tasks: Iterable[CdmerTask | int | str] | None = None,
    seeds: int | Sequence[int] = 0,
    class_order: str = "sorted",
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
    class_order : {"sorted", "first-appearance"}
        How each task's labels are coded for its fits (:data:`CLASS_ORDERS`,
        :func:`task_data`); recorded in the units' ``data``.

    Returns
    -------
    list of WorkUnit
        Ordered by method, params, task, seed.
    """
    check_class_order(class_order)
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
    units = []
    for name, grid in spec.items():
        for p in _param_grid(grid):
            make_method(name, **p)  # fail early on unknown names / parameters
            pj = params_to_json(p)
            for t in chosen:
                task = get_task(t)
                data = (
                    data_fingerprint(task, features, class_order)
                    if isinstance(features, Mapping)
                    else _with_order("", class_order)
                )
                for s in seed_list:
                    units.append(WorkUnit(task, name.lower(), pj, s, data=data))
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


@dataclass(frozen=True)
class TaskData:
    """Arrays of one task, built once in the parent process (shared with the workers).

    Attributes
    ----------
    Xs, ys : source rows (float64) and their labels.
    Xt, yt : target rows and their labels (``yt`` only scores the predictions).
    sample : positions of the target rows in the target table.
    clip : clip names of the target rows.
    classes : class names indexed by the labels.
    groups : column groups of the features (``FeatureSet.tgsr_groups``), fit metadata.
    """

    Xs: np.ndarray
    ys: np.ndarray
    Xt: np.ndarray
    yt: np.ndarray
    sample: np.ndarray
    clip: np.ndarray
    classes: tuple[str, ...] = ()
    groups: np.ndarray | None = None

    def fit_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, y, sample_domain)`` of a fit: source rows labelled, then the target rows
        with ``y = -1`` and domain -1."""
        X = np.vstack([self.Xs, self.Xt])
        y = np.r_[self.ys, np.full(len(self.Xt), MASKED_LABEL, dtype=np.int64)]
        sd = np.r_[np.ones(len(self.Xs), dtype=np.int64), -np.ones(len(self.Xt), dtype=np.int64)]
        return X, y, sd


def task_data(
    task: CdmerTask, features: Mapping[str, FeatureSet], class_order: str = "sorted"
) -> TaskData:
    """The rows of ``task``: the source domain labelled, the target domain to predict.

    ``class_order="first-appearance"`` recodes the labels of both domains so that their
    sorted order is the order in which the classes first appear in the source rows
    (classes absent from the source follow in their own order), and reorders
    ``classes`` to match: every LibSVM-classified method then breaks a one-vs-one vote
    tie as MATLAB LibSVM does, towards the class that appears first (the CDMER papers'
    numbers; :func:`merkit.adapt.base.first_appearance_codes`, docs/da-reproduction.md).
    Mean-F1, UAR and accuracy do not depend on the coding; the predictions of tied rows
    do.

    Raises
    ------
    ValueError
        The domains differ in width, class list or column groups, or share clips.
    """
    src, tgt = features[task.source], features[task.target]
    _check_pair(src, tgt, task)
    _, split = stack_domains(src.table, tgt.table)  # leakage-checked
    # float64: LibSVM converts float32 input on every call (about 10x slower per fit)
    X = np.vstack([src.X, tgt.X]).astype(np.float64)
    y = np.concatenate([src.y, tgt.y])
    rows = split.test_idx - len(src)  # positions in the target table
    ys, yt = y[split.train_idx], y[split.test_idx]
    classes = tuple(src.classes or tgt.classes)
    if check_class_order(class_order) == "first-appearance":
        ys, yt, classes = _first_appearance(ys, yt, classes)
    return TaskData(
        Xs=np.ascontiguousarray(X[split.train_idx]),
        ys=ys,
        Xt=np.ascontiguousarray(X[split.test_idx]),
        yt=yt,
        sample=rows,
        clip=tgt.table["clip"].astype(str).to_numpy()[rows],
        classes=classes,
        groups=_pair_groups(src, tgt, task),
    )


def _first_appearance(
    ys: np.ndarray, yt: np.ndarray, classes: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Labels recoded 0, 1, ... in order of first appearance in ``ys`` (then the other
    labels of ``classes`` / ``yt`` in sorted order) and the class names in that order."""
    order = [int(v) for v in first_appearance_codes(ys)[1]]
    width = max(len(classes), int(max(ys.max(initial=-1), yt.max(initial=-1))) + 1)
    order += [v for v in range(width) if v not in order]
    code = np.empty(width, dtype=np.int64)
    code[order] = np.arange(width)
    named = tuple(classes[v] for v in order) if classes else ()
    return code[ys], code[yt], named


def method_estimator(method: str, seed: int, params: Mapping | None = None):
    """The registry method with ``params``, seeded with ``seed`` when it has a
    ``random_state`` that ``params`` leave unset."""
    params = dict(params or {})
    est = make_method(method, **params)
    if "random_state" in est.get_params() and "random_state" not in params:
        est.set_params(random_state=seed)
    return est


def fit_metadata(est: DomainAdaptationClassifier, td: TaskData) -> dict:
    """The features' metadata offered to ``est``'s fit: ``{"column_groups": groups}`` when
    the task has column groups and ``est`` requests them (TGSR), else ``{}``."""
    if td.groups is None:
        return {}
    if "column_groups" not in est.get_metadata_routing().consumes("fit", ["column_groups"]):
        return {}
    return {"column_groups": td.groups}


def run_unit(unit: WorkUnit, features: Mapping[str, FeatureSet]) -> UnitResult:
    """Fit ``unit.method`` on the task's source (labelled) + target (unlabelled) rows and
    predict the target rows."""
    td = task_data(unit.task, features, unit.class_order)
    est = method_estimator(unit.method, unit.seed, unit.params)
    X, y, sd = td.fit_inputs()
    (fit,) = est.fit_path(X, y, sd, batched=False, **fit_metadata(est, td))
    return UnitResult(
        unit=unit,
        y_true=td.yt,
        y_pred=fit.predictions,
        sample=td.sample,
        clip=td.clip,
        seconds=fit.seconds,
        classes=td.classes,
    )
