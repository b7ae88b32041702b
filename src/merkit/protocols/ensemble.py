"""Ensembles of trained runs: the mean of their stored test probabilities, per test clip.

A *member* is one seed of one run of ``merkit train`` (a network, its settings, a seed).
Members of the same protocol and task, whose folds held out the same test clips with the
same labels, are combined clip by clip: the ensemble's probabilities are the unweighted
mean of the members' softmax outputs and its class their argmax. Nothing is chosen: the
members and their weights are fixed before any test label is read, so an ensemble of
honest runs is honest. Scoring is the task's own (:meth:`merkit.protocols.deep.DeepTask.
score`): pooled UF1 / UAR / accuracy and, under ``cde``, one row per database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.protocols.deep import DeepTask, task_spec
from merkit.store import (
    ResultStore,
    read_fold,
    read_run_info,
    stored_folds,
    stored_seeds,
)

__all__ = ["Member", "combine", "read_members", "score_ensemble"]

_KEY = ["subject", "clip"]


@dataclass(frozen=True)
class Member:
    """One seed of one stored run.

    Attributes
    ----------
    directory : Path
        The ``merkit train`` output folder.
    protocol, task, model, run : str
        What was trained (``run`` = the run id, ``<model>-<hash>``).
    seed : int
    classes : tuple of str
    data : str
        Fingerprint of the run's inputs.
    predictions : DataFrame
        Its pooled test predictions: ``fold``, ``subject``, ``clip``, ``y_true`` and
        ``prob_0`` .. ``prob_{K-1}``, one row per test clip.
    """

    directory: Path
    protocol: str
    task: str
    model: str
    run: str
    seed: int
    classes: tuple[str, ...]
    data: str
    predictions: pd.DataFrame

    @property
    def name(self) -> str:
        """``<model>:<run>:seed<S>`` (how the ensemble's parameters list it)."""
        return f"{self.model}:{self.run}:seed{self.seed}"


def _classes(directory: Path, protocol: str, task: str, model: str) -> tuple[str, ...]:
    results = ResultStore(directory).results()
    rows = results[(results["protocol"].astype(str) == protocol)
                   & (results["task"].astype(str) == task)
                   & (results["method"].astype(str) == model)]  # fmt: skip
    if rows.empty:
        raise ValueError(f"{directory}: results.csv has no {protocol} {task} row of {model}; "
                         "give a folder merkit train finished")  # fmt: skip
    return tuple(json.loads(rows["classes"].iloc[0]))


def read_members(
    directories: Iterable[str | Path],
    *,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[Member]:
    """The members stored in ``merkit train`` output folders.

    Parameters
    ----------
    directories : iterable of path
        Output folders; each contributes the runs its ``run.json`` names (one per task)
        with every seed that has stored folds.
    tasks : sequence of str, optional
        Keep these tasks only (default: all).
    seeds : sequence of int, optional
        Keep these seeds only (default: every stored one).

    Raises
    ------
    FileNotFoundError, ValueError
        A folder is not a finished ``merkit train`` folder, a seed has fewer stored folds
        than its run (``run.json``'s ``folds``), a multi-label (AU) run is given, or
        nothing is left after the filters; the message names the folder.
    """
    members = []
    for d in directories:
        d = Path(d)
        info = read_run_info(d)
        protocol, model = str(info.get("protocol", "")), str(info.get("model", ""))
        runs = info.get("runs") or {}
        if not protocol or not model or not isinstance(runs, dict) or not runs:
            raise ValueError(f"{d}/run.json lacks protocol, model or runs; rerun merkit train "
                             "into that folder")  # fmt: skip
        data = info.get("data") or {}
        n_folds = info.get("folds") or {}
        for task, run in runs.items():
            if tasks is not None and task not in tasks:
                continue
            if task_spec(protocol, task).multilabel:
                raise ValueError(f"{d}: {protocol} {task} is multi-label (AU); ensembles "
                                 "average class probabilities of single-label runs")  # fmt: skip
            classes = _classes(d, protocol, task, model)
            for seed in stored_seeds(d, run):
                if seeds is not None and seed not in seeds:
                    continue
                bases = stored_folds(d, run, seed)
                if not bases:
                    continue
                want = n_folds.get(task) if isinstance(n_folds, dict) else None
                if isinstance(want, int) and len(bases) < want:
                    raise ValueError(
                        f"{d}: run {run} seed {seed} has {len(bases)} of its {want} folds "
                        "stored (unfinished); finish it with merkit train into that folder, "
                        "or choose seeds with --seeds"
                    )
                parts = [read_fold(base)[0] for base in bases]
                pred = pd.concat(parts, ignore_index=True)
                probs = [f"prob_{c}" for c in range(len(classes))]
                missing = [c for c in ["fold", *_KEY, "y_true", *probs] if c not in pred]
                if missing:
                    raise ValueError(f"{d}: run {run} seed {seed}: fold files lack {missing}")
                members.append(Member(d, protocol, task, model, str(run), int(seed), classes,
                                      str(data.get(task, "")) if isinstance(data, dict) else "",
                                      pred[["fold", *_KEY, "y_true", *probs]]))  # fmt: skip
    if not members:
        raise ValueError("no stored run matches (check the folders, --task and --seeds)")
    return members


def combine(members: Sequence[Member]) -> pd.DataFrame:
    """The ensemble's pooled test predictions: mean probabilities per clip and their argmax.

    All members must share protocol, task, classes and the same test clips (subject,
    clip) with the same labels and folds.

    Returns
    -------
    DataFrame
        ``fold``, ``sample`` (0..n-1, clips sorted by subject and clip), ``subject``,
        ``clip``, ``dataset``, ``y_true``, ``y_pred``, ``prob_0`` .. ``prob_{K-1}``.

    Raises
    ------
    ValueError
        Members that do not fit together (the message names the first pair that differs).
    """
    if not members:
        raise ValueError("an ensemble needs at least one member")
    first = members[0]
    ref = first.predictions.sort_values(_KEY, kind="stable").reset_index(drop=True)
    probs = [f"prob_{c}" for c in range(len(first.classes))]
    total = ref[probs].to_numpy(np.float64)
    for m in members[1:]:
        where = f"{m.directory} ({m.name}) and {first.directory} ({first.name})"
        if (m.protocol, m.task) != (first.protocol, first.task):
            raise ValueError(f"{where}: different tasks ({m.protocol} {m.task} vs "
                             f"{first.protocol} {first.task})")  # fmt: skip
        if m.classes != first.classes:
            raise ValueError(f"{where}: different classes {m.classes} vs {first.classes}")
        got = m.predictions.sort_values(_KEY, kind="stable").reset_index(drop=True)
        if len(got) != len(ref) or not (got[_KEY].to_numpy() == ref[_KEY].to_numpy()).all():
            raise ValueError(f"{where}: different test clips ({len(got)} vs {len(ref)}); "
                             "ensemble runs of the same task and folds")  # fmt: skip
        if not np.array_equal(got["y_true"].to_numpy(), ref["y_true"].to_numpy()):
            raise ValueError(f"{where}: the same clips carry different labels")
        if not (got["fold"].astype(str).to_numpy() == ref["fold"].astype(str).to_numpy()).all():
            raise ValueError(f"{where}: the clips sit in different folds")
        total += got[probs].to_numpy(np.float64)
    mean = total / len(members)
    out = ref[["fold", *_KEY, "y_true"]].copy()
    out.insert(1, "sample", np.arange(len(out), dtype=np.int64))
    out["dataset"] = out["subject"].astype(str).str.split("/").str[0]
    out["y_pred"] = mean.argmax(1).astype(np.int64)
    for c, col in enumerate(probs):
        out[col] = mean[:, c].astype(np.float32)
    return out


def score_ensemble(
    members: Sequence[Member], pooled: pd.DataFrame, *, name: str, seed: int = 0
) -> list[tuple[dict, pd.DataFrame]]:
    """Results records of an ensemble (:meth:`DeepTask.score` of its task) with the
    members listed in ``params``."""
    m = members[0]
    table = pooled[["subject", "clip", "dataset"]].reset_index(drop=True)
    task = DeepTask(task_spec(m.protocol, m.task), table, pooled["y_true"].to_numpy(np.int64),
                    m.classes)  # fmt: skip
    data = sorted({x.data for x in members})
    params = {"ensemble": "mean probability", "members": [x.name for x in members]}
    return task.score(pooled, method=name, params=params, seed=seed, data="+".join(data),
                      extra={"members": len(members)})  # fmt: skip
