"""Protocols of the deep models: which clips train, which test, and how a run is scored.

A *task* is one training unit of a protocol (a labelled table, its folds and its scoring);
:func:`task_spec` names the databases and labels it needs, :func:`make_task` builds it
from the loaded Sample table. Splits come from :mod:`merkit.protocols.splits` (leakage
checked); scores from :meth:`merkit.store.ResultStore.make_record`, i.e. from the
pooled predictions. :func:`run_loso` runs leave-one-subject-out directly on a flow set
(one network per held-out subject and seed, trained by :func:`merkit.nets.train.train_fold`;
torch is imported only when it runs).

Each protocol is one :class:`DeepProtocol` in :data:`DEEP_PROTOCOLS` (its default tasks,
how a task name becomes a :class:`TaskSpec`, how a task's folds are made, and how its
rows are scored); :data:`PROTOCOLS`, :func:`task_spec`, :func:`resolve_specs`,
:func:`make_task` and :meth:`DeepTask.score` read that declaration.

Protocols (tasks, default ones first; folds; results rows):

``cde``
    ``composite``; LOSO over the SMIC-HS + CASME II + SAMM subjects (MEGC 2019); rows
    ``composite`` and one per database.
``cdmer``
    ``Exp.1`` .. ``Exp.12``; one fold: train = source database, test = target database;
    rows ``Exp.n`` with ``source`` and ``target``.
``loso``
    ``CASME2-5``, ``CASME2-4``, ``SAMM-4``, ``SMIC_HS-3`` (also ``DFME-7``); LOSO within
    one database; one row per task.
``kfold``
    ``DFME-7`` (or any loso task); subject-independent, class-stratified k-fold (10 in the
    DFME paper); one row per task, with fold averages.
``au``
    ``DFME-AU12`` (also ``CASME2-AU12``, ``SAMM-AU12``); subject-independent k-fold; one
    row per AU, ``<task>/AU<n>``.

Single-database tasks (Zhou et al., "Feature refinement", Pattern Recognition 122, 2022,
doi:10.1016/j.patcog.2021.108275, Sec. 6.1.4): CASME II 5 classes (``casme2_5``) and
4 classes (``four_class``), SAMM 4 classes, SMIC-HS 3 classes (``cdmer3``); DFME 7 classes
(``dfme7``; Zhao et al., IEEE TAFFC 2023, doi:10.1109/TAFFC.2023.3341918).

Scores
------
Every row's ``mean_f1`` (UF1), ``uar`` and ``accuracy`` come from the predictions pooled
over the folds, with ``labels`` = all classes of the task. ``kfold`` rows also carry the
DFME paper's numbers, the mean over folds of each fold's scores (each fold averaged over
the classes present in its test set): ``fold_mean_f1``, ``fold_uar``, ``fold_accuracy``
and their standard deviations over the folds (``*_std``).

``au`` rows hold one AU each: ``task = "<task>/AU<n>"``, ``y_true`` / ``y_pred`` the 0/1
occurrence of that AU in each test clip and ``labels = [1]``, so ``mean_f1`` is the AU's
binary F1 over the pooled folds (TP, FP, FN counted over all folds, as in the DFME paper
and :func:`merkit.metrics.per_au_f1`), ``uar`` its recall and ``accuracy`` the
share of clips where its presence is right. An AU that occurs in no test clip gets no
row (its recall, and so its F1, is undefined; logged). :func:`summarize` adds the mean AU
F1 over the AU rows as the row ``task = "<task>/mean"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from merkit.data.labels import au_labels, get_scheme
from merkit.metrics import score_all
from merkit.protocols.cdmer import TASKS as CDMER_TASKS
from merkit.protocols.cdmer import get_task
from merkit.protocols.composite import CDE, COMPOSITE_TASK, CompositeProtocol
from merkit.protocols.splits import (
    Split,
    check_leakage,
    leave_one_subject_out,
    source_target,
    subject_kfold,
)
from merkit.store import ResultStore

if TYPE_CHECKING:
    from merkit.nets.data import FlowSet
    from merkit.nets.train import TrainConfig

log = logging.getLogger(__name__)

__all__ = [
    "AU_TASKS",
    "DEEP_PROTOCOLS",
    "PROTOCOLS",
    "SINGLE_DATABASE_TASKS",
    "DeepProtocol",
    "DeepTask",
    "Fold",
    "LosoRun",
    "TaskSpec",
    "deep_protocol",
    "make_task",
    "folds_from_splits",
    "resolve_specs",
    "run_loso",
    "summarize",
    "task_spec",
    "with_training_copies",
]

#: single-database task name -> (database, label scheme)
SINGLE_DATABASE_TASKS: dict[str, tuple[str, str]] = {
    "CASME2-5": ("CASME2", "casme2_5"),
    "CASME2-4": ("CASME2", "four_class"),
    "SAMM-4": ("SAMM", "four_class"),
    "SMIC_HS-3": ("SMIC_HS", "cdmer3"),
    "DFME-7": ("DFME", "dfme7"),
}
#: AU task name -> (database, AU set, label scheme selecting the clips; "none" keeps all)
AU_TASKS: dict[str, tuple[str, str, str]] = {
    "DFME-AU12": ("DFME", "au12", "dfme7"),
    "CASME2-AU12": ("CASME2", "au12", "none"),
    "SAMM-AU12": ("SAMM", "au12", "none"),
}


@dataclass(frozen=True)
class TaskSpec:
    """What a task needs before it can be built.

    Attributes
    ----------
    protocol, name : str
        E.g. ``("cdmer", "Exp.7")``, ``("loso", "CASME2-5")``.
    datasets : tuple of str
        Databases whose clips the task uses (cde: those present of the three).
    scheme : str
        Label scheme applied when loading (``"none"``: every clip, native emotion).
    aus : str or None
        AU set of a multi-label task (``"au12"``).
    source, target : str
        CDMER source and target databases (empty otherwise).
    """

    protocol: str
    name: str
    datasets: tuple[str, ...]
    scheme: str
    aus: str | None = None
    source: str = ""
    target: str = ""

    @property
    def multilabel(self) -> bool:
        return self.aus is not None


@dataclass(frozen=True, eq=False)
class Fold:
    """One train/test partition of a task.

    Attributes
    ----------
    name : str
        Fold id: held-out subject (LOSO), ``"fold<k>"`` (k-fold) or ``"<source>-><target>"``.
    index : int
        Position among all folds of the task (seeds the fold's initial weights).
    train_idx, test_idx : ndarray of int
        Row positions in the task's table.
    """

    name: str
    index: int
    train_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def file_name(self) -> str:
        """File-system-safe name (``"CASME2/01"`` -> ``"CASME2_01"``,
        ``"CASME2->SMIC_HS"`` -> ``"CASME2-to-SMIC_HS"``)."""
        return self.name.replace("->", "-to-").replace("/", "_")


#: ``(protocol name, task name) -> TaskSpec``; a ValueError naming the known tasks otherwise
SpecBuilder = Callable[[str, str], TaskSpec]
#: ``(spec, the task's labelled table, n_folds, split_seed) -> its leakage-checked folds``
FoldMaker = Callable[[TaskSpec, pd.DataFrame, int, int], list[Fold]]


@dataclass(frozen=True)
class DeepProtocol:
    """One protocol of the deep models: everything that differs from one protocol to another.

    A protocol is one of these, registered in :data:`DEEP_PROTOCOLS`.

    Attributes
    ----------
    name : str
        Protocol name (``"loso"``), written to the results store.
    default_tasks : tuple of str
        Tasks run when none is named (those whose databases are all available).
    spec : callable
        ``(protocol name, task name) -> TaskSpec`` (:data:`SpecBuilder`).
    folds : callable
        How a task's folds are made (:data:`FoldMaker`).
    takes_n_folds : bool
        The folds are k subject-independent folds, so ``n_folds`` and ``split_seed``
        matter.
    fold_averages : bool
        Rows also carry the mean and std over folds of each fold's scores.
    multilabel : bool
        Tasks are AU tasks (one row per AU); :func:`summarize` adds their mean AU F1.
    composite : CompositeProtocol or None
        Tasks pool several databases and run on those present (at least one; named tasks
        are only checked, the defaults run); the pooled table is checked, a quick subset
        of folds chosen and the rows scored (overall and per database) by this object.
    """

    name: str
    default_tasks: tuple[str, ...]
    spec: SpecBuilder
    folds: FoldMaker
    takes_n_folds: bool = False
    fold_averages: bool = False
    multilabel: bool = False
    composite: CompositeProtocol | None = None


# --------------------------------------------------------------------------- task specs
def _composite_spec(protocol: str, name: str) -> TaskSpec:
    if name != COMPOSITE_TASK:
        raise ValueError(f"{protocol} has one task, {COMPOSITE_TASK!r}; got {name!r}")
    return TaskSpec(protocol, COMPOSITE_TASK, CDE.databases, "megc3")


def _cdmer_spec(protocol: str, name: str) -> TaskSpec:
    try:
        t = get_task(name)
    except KeyError as err:
        raise ValueError(str(err.args[0])) from None
    return TaskSpec(protocol, t.name, (t.source, t.target), "cdmer3", source=t.source,
                    target=t.target)  # fmt: skip


def _single_database_spec(protocol: str, name: str) -> TaskSpec:
    if name not in SINGLE_DATABASE_TASKS:
        raise ValueError(
            f"unknown {protocol} task {name!r}; known: {sorted(SINGLE_DATABASE_TASKS)} (database-"
            "number of classes)"
        )
    db, scheme = SINGLE_DATABASE_TASKS[name]
    return TaskSpec(protocol, name, (db,), scheme)


def _au_spec(protocol: str, name: str) -> TaskSpec:
    if name not in AU_TASKS:
        raise ValueError(f"unknown {protocol} task {name!r}; known: {sorted(AU_TASKS)}")
    db, aus, scheme = AU_TASKS[name]
    return TaskSpec(protocol, name, (db,), scheme, aus=aus)


# --------------------------------------------------------------------------- folds
def folds_from_splits(table: pd.DataFrame, splits: Sequence[Split], prefix: str = "") -> list[Fold]:
    """The folds of ``splits`` (:mod:`merkit.protocols.splits`) of ``table``, each
    leakage-checked, in order (``index`` = position), named without ``prefix``."""
    out = []
    for k, s in enumerate(splits):
        check_leakage(table, s)
        out.append(Fold(s.name.removeprefix(prefix), k, s.train_idx, s.test_idx))
    return out


def _composite_folds(
    spec: TaskSpec, table: pd.DataFrame, n_folds: int, split_seed: int
) -> list[Fold]:
    """LOSO over every subject of the pooled databases (``CDE.splits``)."""
    return folds_from_splits(table, CDE.splits(table), "loso/")


def _source_target_folds(
    spec: TaskSpec, table: pd.DataFrame, n_folds: int, split_seed: int
) -> list[Fold]:
    """One fold: train = ``spec.source``, test = ``spec.target``."""
    return folds_from_splits(table, [source_target(table, spec.source, spec.target)])


def _loso_folds(spec: TaskSpec, table: pd.DataFrame, n_folds: int, split_seed: int) -> list[Fold]:
    """Leave one subject out."""
    return folds_from_splits(table, leave_one_subject_out(table), "loso/")


def _subject_kfold_folds(
    spec: TaskSpec, table: pd.DataFrame, n_folds: int, split_seed: int
) -> list[Fold]:
    """``n_folds`` subject-independent folds, stratified by class (by emotion for AU tasks)."""
    n_sub = table["subject"].nunique()
    if not 2 <= n_folds <= n_sub:
        raise ValueError(
            f"{spec.protocol} task {spec.name}: {n_folds} folds need at least {n_folds} "
            f"subjects, the data has {n_sub}; pass fewer folds"
        )
    strat = "emotion" if spec.multilabel else "y"
    splits = subject_kfold(table.assign(_strat=table[strat].astype(str)), n_folds,
                           seed=split_seed, stratify=True, label_col="_strat")  # fmt: skip
    return folds_from_splits(table, splits)


#: the protocols of the deep models, in order (a new protocol is one entry here)
DEEP_PROTOCOLS: dict[str, DeepProtocol] = {p.name: p for p in (
    DeepProtocol("cde", (COMPOSITE_TASK,), _composite_spec, _composite_folds, composite=CDE),
    DeepProtocol("cdmer", tuple(t.name for t in CDMER_TASKS), _cdmer_spec,
                 _source_target_folds),
    DeepProtocol("loso", ("CASME2-5", "CASME2-4", "SAMM-4", "SMIC_HS-3"),
                 _single_database_spec, _loso_folds),
    DeepProtocol("kfold", ("DFME-7",), _single_database_spec, _subject_kfold_folds,
                 takes_n_folds=True, fold_averages=True),
    DeepProtocol("au", ("DFME-AU12",), _au_spec, _subject_kfold_folds, takes_n_folds=True,
                 multilabel=True),
)}  # fmt: skip
#: names of the protocols of :data:`DEEP_PROTOCOLS`
PROTOCOLS: tuple[str, ...] = tuple(DEEP_PROTOCOLS)


def deep_protocol(protocol: str) -> DeepProtocol:
    """The declaration of a protocol (case-insensitive name in :data:`DEEP_PROTOCOLS`).

    Raises
    ------
    ValueError
        Unknown protocol (the message lists the declared ones).
    """
    p = str(protocol).lower()
    if p not in DEEP_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(DEEP_PROTOCOLS)}")
    return DEEP_PROTOCOLS[p]


def task_spec(protocol: str, name: str) -> TaskSpec:
    """The spec of one task (names as in the module table; CDMER also takes ``"C->H"``)."""
    declared = deep_protocol(protocol)
    return declared.spec(declared.name, name)


def _task_names(tasks: str | Iterable[str]) -> list[str]:
    """``"a, b"`` / ``["a", "b,c"]`` -> the stripped, non-empty names."""
    items = [tasks] if isinstance(tasks, str) else list(tasks)
    return [n.strip() for item in items for n in str(item).split(",") if n.strip()]


def resolve_specs(
    protocol: str, tasks: str | Iterable[str] | None = None, *, available: Iterable[str] = ()
) -> list[TaskSpec]:
    """Specs of the named tasks, or of the protocol's default tasks whose databases are
    all ``available`` (cde: at least one of its three).

    Raises
    ------
    ValueError
        Unknown protocol / task, or no default task has its databases available.
    """
    declared = deep_protocol(protocol)
    p = declared.name
    have = set(available)
    if declared.composite is not None and tasks is not None:
        for name in _task_names(tasks):
            task_spec(p, name)  # a task of the protocol, or an error naming it
        tasks = None
    if tasks is not None:
        seen: dict[tuple[str, str], TaskSpec] = {}
        for s in (task_spec(p, n) for n in _task_names(tasks)):
            seen.setdefault((s.protocol, s.name), s)
        return list(seen.values())
    specs = [task_spec(p, n) for n in declared.default_tasks]
    if declared.composite is not None:
        pooled = []
        for s in specs:
            present = tuple(d for d in s.datasets if d in have) if have else s.datasets
            if not present:
                raise ValueError(
                    f"{p} needs at least one of {list(s.datasets)}; found {sorted(have) or 'none'}"
                )
            pooled.append(replace(s, datasets=present))
        return pooled
    usable = [s for s in specs if set(s.datasets) <= have]
    if not usable:
        need = sorted({d for s in specs for d in s.datasets})
        raise ValueError(
            f"no {p} task can run: its tasks need {need}; found {sorted(have) or 'none'}"
        )
    return usable


@dataclass
class DeepTask:
    """A built task: its table, labels, classes and folds, and its scoring.

    Attributes
    ----------
    spec : TaskSpec
    table : DataFrame
        The task's clips (positions index the inputs ``X`` and ``y``).
    y : ndarray
        ``(n,)`` int64 class indices, or ``(n, L)`` int8 AU occurrences (multi-label).
    classes : tuple of str
        Class names, or AU names (``"AU1"``...) for multi-label tasks.
    folds : list of Fold
    """

    spec: TaskSpec
    table: pd.DataFrame
    y: np.ndarray
    classes: tuple[str, ...]
    folds: list[Fold] = field(default_factory=list)

    @property
    def protocol(self) -> str:
        return self.spec.protocol

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def multilabel(self) -> bool:
        return self.spec.multilabel

    def sample_ids(self) -> np.ndarray:
        """``"<subject>/<clip>"`` of every row (``"CASME2/01/EP02_01f"``)."""
        return (self.table["subject"].astype(str) + "/" + self.table["clip"].astype(str)).to_numpy()

    def select_folds(self, folds: int | Iterable[str] | None) -> list[Fold]:
        """All folds (None), a quick subset of ``k`` (cde: round robin over its databases,
        otherwise the first ``k``; all when the task has fewer) or the named ones."""
        if folds is None:
            return list(self.folds)
        names = [f.name for f in self.folds]
        if isinstance(folds, (int, np.integer)):
            if int(folds) < 1:
                raise ValueError(f"{self.name}: folds must be at least 1, got {int(folds)}")
            k = min(int(folds), len(names))
            composite = deep_protocol(self.protocol).composite
            if composite is not None:
                chosen = set(composite.select_folds(self.table, k))
                return [f for f in self.folds if f.name in chosen]
            return list(self.folds[:k])
        wanted = [str(f) for f in folds]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise ValueError(f"{self.name}: folds {unknown} are not folds of the task")
        return [f for f in self.folds if f.name in set(wanted)]

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        predictions: pd.DataFrame,
        *,
        method: str,
        params: Mapping | None = None,
        seed: int = 0,
        data: str = "",
        extra: Mapping | None = None,
    ) -> list[tuple[dict, pd.DataFrame]]:
        """Results records of one (method, seed) from its pooled fold predictions.

        Parameters
        ----------
        predictions : DataFrame
            ``fold``, ``sample`` (row position in :attr:`table`) and ``y_true``, ``y_pred``
            (single-label) or ``true_<AU>``, ``pred_<AU>`` per AU (multi-label).
        """
        if predictions.empty:
            raise ValueError(f"{self.name}: no predictions to score ({method}, seed {seed})")
        sample = predictions["sample"].to_numpy(np.int64)
        if np.unique(sample).size != sample.size:
            raise ValueError(f"{self.name}: a sample is predicted twice ({method}, seed {seed})")
        if sample.min() < 0 or sample.max() >= len(self.table):
            raise ValueError(f"{self.name}: prediction sample positions outside the table")
        common = {"protocol": self.protocol, "method": method, "params": params,
                  "seed": int(seed), "data": data}  # fmt: skip
        declared = deep_protocol(self.protocol)
        if declared.composite is not None:
            return declared.composite.score(predictions, self.table, method=method,
                                            params=params, seed=seed, data=data,
                                            extra=extra)  # fmt: skip
        fold = predictions["fold"].astype(str).to_numpy()
        clip = self.table["clip"].astype(str).to_numpy()[sample]
        dataset = "+".join(sorted(set(self.table["dataset"].astype(str).to_numpy()[sample])))
        if self.multilabel:
            records = []
            for name in self.classes:
                yt_au = predictions[f"true_{name}"].to_numpy(np.int64)
                if not yt_au.any():
                    log.warning("%s: %s occurs in no test clip; no row (its F1 is undefined)",
                                self.name, name)  # fmt: skip
                    continue
                records.append(ResultStore.make_record(
                    **common, task=f"{self.name}/{name}", y_true=yt_au,
                    y_pred=predictions[f"pred_{name}"].to_numpy(np.int64),
                    fold=fold, sample=sample, clip=clip, labels=[1], target=dataset,
                    classes=("absent", "present"), extra=extra,
                ))  # fmt: skip
            return records
        yt = predictions["y_true"].to_numpy(np.int64)
        yp = predictions["y_pred"].to_numpy(np.int64)
        more = dict(extra or {})
        if declared.fold_averages:
            more.update(_fold_averages(yt, yp, fold))
        source, target = self.spec.source, self.spec.target or dataset
        return [ResultStore.make_record(
            **common, task=self.name, y_true=yt, y_pred=yp, fold=fold, sample=sample,
            clip=clip, labels=list(range(len(self.classes))), classes=self.classes,
            source=source, target=target, extra=more,
        )]  # fmt: skip


def _fold_averages(y_true: np.ndarray, y_pred: np.ndarray, fold: np.ndarray) -> dict:
    """Mean and std over folds of each fold's UF1, UAR, accuracy (classes of its test set)."""
    per = [score_all(y_true[fold == f], y_pred[fold == f]) for f in dict.fromkeys(fold)]
    out = {}
    for key in ("mean_f1", "uar", "accuracy"):
        values = np.array([p[key] for p in per], dtype=float)
        out[f"fold_{key}"] = float(np.mean(values))
        out[f"fold_{key}_std"] = float(np.std(values))
    out["folds"] = len(per)
    return out


def make_task(
    spec: TaskSpec,
    table: pd.DataFrame,
    *,
    classes: Sequence[str] | None = None,
    n_folds: int = 10,
    split_seed: int = 0,
) -> DeepTask:
    """Build a task from the Sample table of its databases.

    Parameters
    ----------
    spec : TaskSpec
    table : DataFrame
        The clips of ``spec.datasets``, labelled by ``spec.scheme`` (``y`` column) and,
        for AU tasks, with the ``aus`` column.
    classes : sequence of str, optional
        Class names indexed by ``y`` (default: those of the scheme).
    n_folds, split_seed : int
        k and the seed of the subject assignment of the k-fold protocols (kfold, au).

    Raises
    ------
    ValueError
        Missing databases or labels (the message says what the task needs).
    """
    declared = deep_protocol(spec.protocol)
    where = f"{spec.protocol} task {spec.name}"
    for col in ("dataset", "subject", "clip"):
        if col not in table.columns:
            raise ValueError(f"{where}: the table has no {col!r} column")
    ds = table["dataset"].astype(str)
    missing = [d for d in spec.datasets if not (ds == d).any()]
    if declared.composite is not None:
        missing = [] if ds.isin(spec.datasets).any() else list(spec.datasets)
    if missing:
        raise ValueError(f"{where} needs clips of {missing}; the data has {sorted(set(ds))}")
    table = table[ds.isin(spec.datasets).to_numpy()].reset_index(drop=True)
    if spec.multilabel:
        if "aus" not in table.columns:
            raise ValueError(f"{where} needs AU labels: the table has no 'aus' column")
        Y, names = au_labels(table, spec.aus)
        if not Y.any():
            raise ValueError(
                f"{where} needs AU labels: no clip of {list(spec.datasets)} is coded with any of "
                f"{names}"
            )
        y, cls = Y, tuple(names)
    else:
        if "y" not in table.columns:
            raise ValueError(f"{where}: the table has no 'y' labels (scheme {spec.scheme})")
        y = table["y"].to_numpy(np.int64).copy()
        cls = tuple(classes) if classes is not None else get_scheme(spec.scheme).classes
        if y.size and (y.min() < 0 or y.max() >= len(cls)):
            raise ValueError(f"{where}: labels outside 0..{len(cls) - 1} ({', '.join(cls)})")
    if declared.composite is not None:
        declared.composite.check(table, y)
    folds = declared.folds(spec, table, n_folds, split_seed)
    return DeepTask(spec, table, y, cls, folds)


#: column of :func:`with_training_copies`' table: 0 for a clip itself, c for its c-th copy
COPY_COLUMN = "copy"


def with_training_copies(task: DeepTask, copies: int) -> DeepTask:
    """The task with ``copies`` extra training versions of every clip (input augmentation).

    The returned task's table is ``task.table`` (rows ``0..n-1``, column ``copy`` = 0)
    followed by ``copies`` blocks of the same rows (block ``c`` at ``c n .. c n + n - 1``,
    ``copy`` = c), each carrying its clip's subject and label; its inputs must be stacked in
    that order (the clips, then each copy's inputs). Every fold trains on its training
    clips and their copies and tests on the same clips as before, never a copy: a copy
    shares its clip's subject, so the subject-wise folds keep the copies of a test
    subject out of training, and every fold is checked for it
    (:func:`merkit.protocols.splits.check_leakage` on the extended table).

    Parameters
    ----------
    task : DeepTask
        A built task (:func:`make_task`).
    copies : int
        Extra versions per clip (>= 1), e.g. one per magnification factor.

    Returns
    -------
    DeepTask
        Same spec, classes and fold names / indices; ``len(table) == (1 + copies) n``,
        ``y`` repeated, each fold's ``train_idx`` = its training rows in every block,
        ``test_idx`` unchanged (all ``< n``).

    Raises
    ------
    ValueError
        ``copies`` < 1, or a fold that would train on a copy of one of its test subjects'
        clips (the subjects named).
    """
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise ValueError(f"{task.name}: copies must be a whole number >= 1, got {copies!r}")
    n = len(task.table)
    blocks = [task.table.assign(**{COPY_COLUMN: c}) for c in range(copies + 1)]
    table = pd.concat(blocks, ignore_index=True)
    y = np.concatenate([task.y] * (copies + 1))
    folds = []
    for fold in task.folds:
        train = np.concatenate([fold.train_idx + c * n for c in range(copies + 1)])
        split = Split(fold.name, train, fold.test_idx)
        check_leakage(table, split)
        folds.append(Fold(fold.name, fold.index, split.train_idx, split.test_idx))
    return DeepTask(task.spec, table, y, task.classes, folds)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (protocol, task, method).

    Columns ``protocol, task, method, seeds, uf1, uf1_std, uar, uar_std, accuracy,
    accuracy_std, n_test`` (+ ``fold_uf1, fold_uar, fold_accuracy`` when the rows have fold
    averages). For every AU task a ``<task>/mean`` row holds the mean AU F1 (``uf1``: the
    mean over seeds of the mean over AUs).
    """
    cols = ["protocol", "task", "method", "seeds", "uf1", "uf1_std", "uar", "uar_std",
            "accuracy", "accuracy_std", "n_test"]  # fmt: skip
    if results.empty:
        return pd.DataFrame(columns=cols)
    res = results.copy()
    for c in ("mean_f1", "uar", "accuracy", *(c for c in res.columns if c.startswith("fold_"))):
        res[c] = pd.to_numeric(res[c].replace("", np.nan), errors="coerce")
    au = res["protocol"].isin([p.name for p in DEEP_PROTOCOLS.values() if p.multilabel])
    if au.any():
        unit = res.loc[au, "task"].str.rsplit("/", n=1).str[0]
        means = (res[au].assign(task=unit.to_numpy() + "/mean")
                 .groupby(["protocol", "task", "method", "seed"], as_index=False)
                 .agg(mean_f1=("mean_f1", "mean"), uar=("uar", "mean"),
                      accuracy=("accuracy", "mean"), n_test=("n_test", "max")))  # fmt: skip
        res = pd.concat([res, means], ignore_index=True)
    agg = {"seeds": ("seed", "nunique"), "uf1": ("mean_f1", "mean"), "uf1_std": ("mean_f1", "std"),
           "uar": ("uar", "mean"), "uar_std": ("uar", "std"), "accuracy": ("accuracy", "mean"),
           "accuracy_std": ("accuracy", "std"), "n_test": ("n_test", "max")}  # fmt: skip
    extra = []
    for key in ("mean_f1", "uar", "accuracy"):
        if f"fold_{key}" in res.columns and res[f"fold_{key}"].notna().any():
            name = "fold_uf1" if key == "mean_f1" else f"fold_{key}"
            agg[name] = (f"fold_{key}", "mean")
            extra.append(name)
    out = res.groupby(["protocol", "task", "method"], sort=False).agg(**agg).reset_index()
    stds = ["uf1_std", "uar_std", "accuracy_std"]
    out[stds] = out[stds].fillna(0.0)
    return out[cols + extra].reset_index(drop=True)


@dataclass
class LosoRun:
    """Result of :func:`run_loso`.

    Attributes
    ----------
    predictions : DataFrame
        One row per (seed, test sample): ``seed, fold, sample, subject, clip, y_true,
        y_pred, prob_0..prob_{K-1}``.
    records : list of (dict, DataFrame)
        One scored unit per seed (pooled over the folds), from ``ResultStore.make_record``.
    histories : dict
        ``(seed, fold) -> fit history``.
    seconds : dict
        ``(seed, fold) -> training + prediction time``.
    """

    predictions: pd.DataFrame
    records: list = field(default_factory=list)
    histories: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)


def run_loso(
    model_name: str,
    dataset: FlowSet,
    cfg: TrainConfig,
    seeds: Sequence[int] = (0,),
    *,
    model_kwargs: Mapping | None = None,
    store: ResultStore | None = None,
    protocol: str = "loso",
    task: str = "megc2019",
    data: str = "",
    weights_dir: str | Path | None = None,
    folds: Iterable[str] | None = None,
    fold_batching: str = "auto",
    device: str = "cpu",
) -> LosoRun:
    """Leave-one-subject-out: one freshly initialised model per held-out subject and seed.

    Parameters
    ----------
    model_name : str
        Registry name (:data:`merkit.nets.MODELS`); built with ``num_classes=cfg.num_classes``
        and ``model_kwargs`` under the fold's seed.
    dataset : FlowSet
        Inputs, labels and the table whose ``subject`` column defines the folds.
    cfg : TrainConfig
        ``cfg.seed`` is replaced by each of ``seeds``.
    seeds : sequence of int
    store : ResultStore, optional
        When given, one unit per seed is added (method = model_name, fold = subject).
    weights_dir : path, optional
        Save each fold's weights to ``<weights_dir>/seed<seed>/<subject with / -> _>.pth``.
    folds : iterable of str, optional
        Only these test subjects (a partial run: the records then cover only them).
    fold_batching : {"auto", "on", "off"}
        Train the folds of a seed as one computation where the network has that path
        (:func:`merkit.nets.fold_batched.train_folds`); its records then carry
        ``fold_batched: true`` in their parameters.
    device : str
        Where to train (``merkit.nets.device.resolve_device``); records of runs off the
        CPU carry ``device`` in their parameters.

    Returns
    -------
    LosoRun
        Metrics in the records are computed from the pooled predictions.

    Notes
    -----
    The networks need torch (the ``[nets]`` extra): :mod:`merkit.nets.train` is imported
    here, not with this module.
    """
    from merkit.nets.fold_batched import FoldSpec, batching_problem, train_folds
    from merkit.nets.train import save_weights

    # the fold's position among ALL subjects seeds it, so a partial run reproduces a full one
    splits = list(enumerate(leave_one_subject_out(dataset.table)))
    n_protocol = len(splits)
    if folds is not None:
        wanted = set(folds)
        splits = [(k, s) for k, s in splits if s.name.removeprefix("loso/") in wanted]
        unknown = wanted - {s.name.removeprefix("loso/") for _, s in splits}
        if unknown:
            raise ValueError(f"run_loso: folds {sorted(unknown)} are not subjects of the dataset")
    kwargs = dict(model_kwargs or {})
    batched = fold_batching != "off" and batching_problem(
        model_name, n_folds=len(splits), model_kwargs=kwargs, device=device,
        precision=cfg.precision, augment=cfg.augment, sampler=cfg.sampler) is None  # fmt: skip
    kind = str(device).split(":")[0]
    params = {"model": model_name, **kwargs, **cfg.to_dict(),
              **({"fold_batched": True} if batched else {}),
              **({"device": kind} if kind != "cpu" else {})}  # fmt: skip
    params.pop("seed")
    rows, records, histories, seconds = [], [], {}, {}
    for seed in seeds:
        fold_cfg = replace(cfg, seed=int(seed))
        parts = []
        specs = [FoldSpec(split.train_idx, split.test_idx, k) for k, split in splits]
        trained = train_folds(model_name, dataset.X, dataset.y, specs, fold_cfg, seed=int(seed),
                              model_kwargs=kwargs, fold_batching=fold_batching,
                              protocol_folds=n_protocol, device=device)  # fmt: skip
        for (_, split), got in zip(splits, trained, strict=True):
            subject = split.name.removeprefix("loso/")
            te = split.test_idx
            histories[(int(seed), subject)] = got.history
            y_pred, probs = got.y_pred, got.probs
            seconds[(int(seed), subject)] = got.seconds
            if weights_dir is not None:
                save_weights(got.model, Path(weights_dir) / f"seed{seed}" /
                             f"{subject.replace('/', '_')}.pth")  # fmt: skip
            part = pd.DataFrame({
                "seed": int(seed), "fold": subject, "sample": te,
                "subject": dataset.table["subject"].to_numpy()[te],
                "clip": dataset.table["clip"].to_numpy()[te],
                "y_true": dataset.y[te], "y_pred": y_pred,
            })  # fmt: skip
            for c in range(probs.shape[1]):
                part[f"prob_{c}"] = probs[:, c]
            parts.append(part)
            log.info("%s seed %d fold %s: %d test, %.1f s", model_name, seed, subject,
                     len(te), seconds[(int(seed), subject)])  # fmt: skip
        pooled = pd.concat(parts, ignore_index=True)
        rows.append(pooled)
        records.append(ResultStore.make_record(
            protocol=protocol, task=task, method=model_name, params=params, seed=int(seed),
            data=data, y_true=pooled["y_true"].to_numpy(), y_pred=pooled["y_pred"].to_numpy(),
            fold=pooled["fold"].to_numpy(), sample=pooled["sample"].to_numpy(),
            clip=pooled["clip"].to_numpy(), labels=list(range(cfg.num_classes)),
            extra={"seconds": float(sum(v for (s, _), v in seconds.items() if s == int(seed)))},
        ))  # fmt: skip
    if store is not None:
        store.add_records(records)
    return LosoRun(pd.concat(rows, ignore_index=True), records, histories, seconds)
