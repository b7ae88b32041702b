"""End-to-end workflows behind the CLI: databases on disk -> features -> protocol -> results.

Each function is one library call the CLI makes; nothing here computes a metric
(``results``) or decides a split (``protocols``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from merkit.data.adapters import discover, load_dataset
from merkit.data.labels import apply_scheme, get_scheme
from merkit.data.schema import FeatureSet
from merkit.features.extract import extract_features

log = logging.getLogger(__name__)

#: the four databases of the CDMER benchmark, in table order
CDMER_DATABASES: tuple[str, ...] = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")


def _progress(console: Console | None, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


def load_databases(
    root: str | Path,
    *,
    names: tuple[str, ...] | None = None,
    scheme: str = "cdmer3",
) -> dict[str, pd.DataFrame]:
    """Read every database found under ``root`` and apply a label scheme.

    Parameters
    ----------
    root : path
        Folder holding the databases in their native layouts (``CASME2/``, ``SMIC/``...).
    names : tuple of str, optional
        Databases to read (default: all that :func:`discover` finds among the CDMER four).
    scheme : str
        Label scheme name (:mod:`merkit.data.labels`).

    Returns
    -------
    dict
        Database name -> validated, labelled Sample table.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    found = discover(root)
    wanted = [n for n in (names or CDMER_DATABASES) if n in found]
    if not wanted:
        raise FileNotFoundError(
            f"no database found in {root}: expected one of {list(names or CDMER_DATABASES)} "
            "in its native layout (CASME2/ with a coding sheet, SMIC/HS|VIS|NIR/...)"
        )
    return {n: apply_scheme(load_dataset(n, root), scheme) for n in wanted}


def describe_databases(
    tables: dict[str, pd.DataFrame],
    *,
    descriptor: str = "lbp_top:r3p8",
    grid: str | None = None,
    scheme: str = "cdmer3",
    n_jobs: int = 1,
    console: Console | None = None,
    progress: bool = True,
) -> dict[str, FeatureSet]:
    """Extract one descriptor for every database, with a progress bar per database."""
    classes = get_scheme(scheme).classes
    out: dict[str, FeatureSet] = {}
    with _progress(console, progress) as bar:
        for name, table in tables.items():
            task = bar.add_task(f"{descriptor} {name}", total=len(table))
            out[name] = extract_features(
                table,
                descriptor,
                grid=grid,
                n_jobs=n_jobs,
                classes=classes,
                name=name,
                progress=lambda k, task=task: bar.advance(task, k),
            )
    return out


@dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    data_dir: Path
    out_dir: Path
    results: pd.DataFrame
    table_markdown: str
    seconds: dict[str, float] = field(default_factory=dict)


def default_demo_dir() -> Path:
    """A fresh temporary folder for the demo's synthetic databases."""
    return Path(tempfile.mkdtemp(prefix="merkit-demo-"))


def cdmer_report(results: pd.DataFrame, *, title: str, notes: list[str] | None = None) -> str:
    """Markdown summary of CDMER results: the paper-format table plus notes."""
    from merkit.results.tables import cdmer_table, to_markdown

    table = cdmer_table(results, bold_best=True)
    lines = [f"# {title}", "", "Cells are mean-F1 / accuracy (%); TYPE-I = Exp.1-6, "
             "TYPE-II = Exp.7-12 (averages over the tasks shown).", "", to_markdown(table), ""]
    for note in notes or []:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_cdmer_on_features(
    features: dict[str, FeatureSet],
    out_dir: str | Path,
    *,
    method: str = "svm",
    params: dict | list[dict] | None = None,
    seed: int = 0,
    progress: bool = True,
    title: str = "CDMER results",
    notes: list[str] | None = None,
) -> tuple[pd.DataFrame, str]:
    """Run ``method`` over every available CDMER task; store results and a Markdown table.

    Writes ``out_dir/results.csv``, ``predictions.csv`` and ``summary.md``; a re-run
    resumes (units already in the store are not recomputed).
    """
    from merkit.protocols.runner import run_cdmer
    from merkit.results.store import ResultStore

    out_dir = Path(out_dir)
    store = ResultStore(out_dir)
    run_cdmer(features, method, params=params, seed=seed, progress=progress, store=store)
    results = store.results()  # every method stored in out_dir so far, one table
    markdown = cdmer_report(results, title=title, notes=notes)
    write_text_atomic(out_dir / "summary.md", markdown)
    return results, markdown


def run_cdmer_on_feature_files(
    features_dir: str | Path,
    out_dir: str | Path,
    *,
    method: str = "svm",
    seed: int = 0,
    progress: bool = True,
) -> tuple[pd.DataFrame, str]:
    """CDMER on the benchmark's released feature files (``CrossCorpus_*.mat``) in a folder."""
    from merkit.data.features_io import load_cdmer_dir

    features = load_cdmer_dir(features_dir)
    names = ", ".join(f"{k} (n={len(v)})" for k, v in features.items())
    return run_cdmer_on_features(
        features,
        out_dir,
        method=method,
        seed=seed,
        progress=progress,
        title=f"CDMER, released LBP-TOP features, {method}",
        notes=[f"features: {Path(features_dir).resolve()}: {names}"],
    )


def run_demo(
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    seed: int = 0,
    size: str = "default",
    n_jobs: int = 1,
    console: Console | None = None,
    progress: bool = True,
) -> DemoResult:
    """The walking skeleton end to end on synthetic databases.

    Synthesises CASME II and SMIC-HS/VIS/NIR in their native layouts (in ``data_dir``
    or a fresh temporary folder), reads them back through the adapters, applies the
    CDMER 3-class scheme, describes every clip (112x112, TIM 16 frames, LBP-TOP R3P8
    on 85 blocks), runs the 12 CDMER tasks with the SVM baseline and writes
    ``results.csv``, ``predictions.csv`` and ``summary.md`` to ``out_dir``.
    """
    from merkit.data.synthetic import synthesize

    seconds: dict[str, float] = {}
    data_dir = Path(data_dir) if data_dir is not None else default_demo_dir()
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    synthesize(data_dir, seed=seed, size=size)
    seconds["synthesise"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    tables = load_databases(data_dir, scheme="cdmer3")
    seconds["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    features = describe_databases(
        tables, descriptor="lbp_top:r3p8", n_jobs=n_jobs, console=console, progress=progress
    )
    seconds["describe"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    counts = ", ".join(
        f"{n} {len(t)} clips/{t['subject'].nunique()} subjects" for n, t in tables.items()
    )
    results, markdown = run_cdmer_on_features(
        features,
        out_dir,
        method="svm",
        seed=seed,
        progress=progress,
        title="merkit demo: CDMER on synthetic databases, LBP-TOP R3P8 + linear SVM (C = 1)",
        notes=[
            f"synthetic databases (seed {seed}, size {size!r}) in {data_dir}: {counts}",
            "pipeline: frames onset..offset -> 112x112 grey -> TIM 16 frames -> "
            "LBP-TOP R3P8, 85 blocks (15045 values) -> SVC(kernel='linear', C=1)",
        ],
    )
    seconds["cdmer"] = time.perf_counter() - t0
    return DemoResult(data_dir, out_dir, results, markdown, seconds)
