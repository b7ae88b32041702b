"""``merkit ensemble``: average the stored test probabilities of several training runs.

Each ``merkit train`` output folder given contributes its runs (one per task) and their
seeds as members (:mod:`merkit.protocols.ensemble`); members of a task must share its
folds' test clips. The ensemble is the mean of the members' softmax outputs per test clip,
scored like a training run and written the same way: ``results.csv`` and
``predictions.csv`` (the results store), ``summary.csv``, ``run.json`` (the members), plus
``members.csv`` (each member's own pooled score), so ``merkit report`` works on it.

``per_seed``: members are grouped by seed (seed ``s`` of every run) and one ensemble is
made per seed, stored under that seed, so the summary gives a mean and standard
deviation over seeds; otherwise every member goes into one ensemble (seed 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from merkit._io import ensure_writable_dir
from merkit.protocols.deep import summarize
from merkit.protocols.ensemble import Member, combine, read_members, score_ensemble
from merkit.store import (
    ResultStore,
    write_run_info,
    write_stats,
    write_summary_table,
)

log = logging.getLogger(__name__)

__all__ = ["EnsembleResult", "run_ensemble"]


@dataclass
class EnsembleResult:
    """What :func:`run_ensemble` wrote: the ensemble's results rows and summary, the
    members' own scores, and the titled tables to print."""

    out_dir: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    members: pd.DataFrame
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)


def _member_row(m: Member) -> dict:
    """One member's own pooled score (the ensemble of itself alone)."""
    row, _ = score_ensemble([m], combine([m]), name=m.model, seed=m.seed)[0]
    return {"task": m.task, "model": m.model, "run": m.run, "seed": m.seed,
            "folder": str(m.directory), "uf1": row["mean_f1"], "uar": row["uar"],
            "accuracy": row["accuracy"], "n_test": row["n_test"]}  # fmt: skip


def run_ensemble(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    name: str = "ensemble",
    per_seed: bool = False,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> EnsembleResult:
    """Ensemble the runs stored in ``run_dirs`` and write the result to ``out_dir``.

    Parameters
    ----------
    run_dirs : sequence of path
        ``merkit train`` output folders (at least one; one folder with several seeds
        ensembles its seeds).
    out_dir : path
        Where the results store of the ensemble goes (may be a results folder already;
        rows of the same ensemble are replaced).
    name : str
        The ensemble's ``method`` in the results.
    per_seed : bool
        One ensemble per seed (module docstring) instead of one of every member.
    tasks, seeds : sequence, optional
        Use only these tasks / seeds of the runs.

    Raises
    ------
    ValueError, FileNotFoundError
        No folder, a folder that is not a ``merkit train`` output, members that do not fit
        together (different task, classes, test clips, labels or folds), or a per-seed
        ensemble with fewer than two members in a seed; one line naming the folders.
    """
    if not run_dirs:
        raise ValueError("give at least one merkit train output folder")
    if not str(name).strip():
        raise ValueError("name='' (--name): the ensemble needs a name for its results rows")
    out_dir = ensure_writable_dir(out_dir, "--out")
    members = read_members(run_dirs, tasks=tasks, seeds=seeds)
    groups: dict[tuple[str, str, int], list[Member]] = {}
    for m in members:
        key = (m.protocol, m.task, m.seed if per_seed else 0)
        groups.setdefault(key, []).append(m)
    for (protocol, task, seed), group in groups.items():
        if len(group) < 2:
            where = f"seed {seed} of {protocol} {task}" if per_seed else f"{protocol} {task}"
            raise ValueError(f"{where}: one member ({group[0].name} in {group[0].directory}); "
                             "an ensemble needs at least two")  # fmt: skip
    pooled = {key: combine(group) for key, group in groups.items()}  # checks every pair first
    records = []
    for (protocol, task, seed), group in groups.items():
        records += score_ensemble(group, pooled[protocol, task, seed], name=name, seed=seed)
        log.info("%s %s seed %d: ensemble of %d members", protocol, task, seed, len(group))
    store = ResultStore(out_dir)
    store.add_records(records)
    results = store.results_of(records)
    summary = summarize(results)
    write_summary_table(out_dir, summary)
    member_table = pd.DataFrame([_member_row(m) for m in members])
    write_stats(out_dir, {"members": member_table})
    write_run_info(out_dir, {
        "ensemble": name, "rule": "mean of the members' softmax probabilities per test clip",
        "per_seed": bool(per_seed), "folders": [str(Path(d)) for d in run_dirs],
        "members": {f"{p} {t} seed {s}": [m.name for m in g] for (p, t, s), g in groups.items()},
    })  # fmt: skip
    shown = summary.set_index(["method", "task"])[["uf1", "uar", "accuracy", "n_test", "seeds",
                                                   "uf1_std"]].round(4)  # fmt: skip
    own = (member_table.groupby(["model", "task"], sort=False)[["uf1", "uar"]]
           .agg(["mean", "std", "count"]).round(4))  # fmt: skip
    own.columns = [f"{a}_{b}" if b != "count" else ("seeds" if a == "uf1" else "_")
                   for a, b in own.columns]  # fmt: skip
    own = own.drop(columns="_")
    return EnsembleResult(out_dir, results, summary, member_table,
                          tables=[(f"{name}: pooled UF1, UAR, accuracy (%)", shown),
                                  ("members alone: pooled UF1, UAR (mean, std over seeds)",
                                   own)])  # fmt: skip
