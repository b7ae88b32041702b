"""End-to-end workflows behind the CLI: databases on disk -> features -> protocol -> results.

Each function is one library call the CLI makes; nothing here computes a metric
(``results``) or decides a split (``protocols``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from merkit._io import atomic_write_text, ensure_writable_dir
from merkit._progress import progress_bar
from merkit.data.adapters import discover, load_dataset
from merkit.data.adapters._common import collect_skipped
from merkit.data.labels import apply_scheme, get_scheme
from merkit.data.schema import FeatureSet
from merkit.features.cache import CACHE_DIRNAME, FeatureCache
from merkit.features.extract import (
    Preprocess,
    configure_descriptor,
    extract,
    feature_file_paths,
    load_feature_file,
    save_feature_file,
)
from merkit.parallel import Backend, open_backend

log = logging.getLogger(__name__)

#: the four databases of the CDMER benchmark, in table order
CDMER_DATABASES: tuple[str, ...] = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")


def load_databases(
    root: str | Path,
    *,
    names: Sequence[str] | None = None,
    scheme: str = "cdmer3",
    missing: str = "raise",
) -> dict[str, pd.DataFrame]:
    """Read every database found under ``root`` and apply a label scheme.

    Parameters
    ----------
    root : path
        Folder holding the databases in their native layouts (``CASME2/``, ``SMIC/``...).
    names : sequence of str, optional
        Databases to read (case-insensitive); each must be present. Default: all that
        :func:`discover` finds among the CDMER four.
    scheme : str
        Label scheme name (:mod:`merkit.data.labels`), or ``"none"``: keep every clip,
        labelled with its native emotion (``label``; ``y`` indexes the sorted emotions of
        all the databases read, recorded in ``attrs["classes"]``).
    missing : {"raise", "error", "skip"}
        Clips whose frames are missing or incomplete: stop with the list (``"raise"`` or
        ``"error"``), or leave them out (``"skip"``): their ``"<clip>: <problem>"`` lines
        go to the table's ``attrs["skipped_clips"]`` (see :func:`skipped_clips`).

    Returns
    -------
    dict
        Database name -> validated, labelled Sample table.
    """
    policy = missing_policy(missing)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    found = discover(root)
    if names:
        by_upper = {n.upper(): n for n in found}
        missing = [n for n in names if n.upper() not in by_upper]
        if missing:
            raise FileNotFoundError(
                f"database(s) {missing} not found under {root} (found: {found or 'none'})"
            )
        wanted = list(dict.fromkeys(by_upper[n.upper()] for n in names))
    else:
        wanted = [n for n in CDMER_DATABASES if n in found]
    if not wanted:
        raise FileNotFoundError(
            f"no database found in {root}: expected one of {list(names or CDMER_DATABASES)} "
            "in its native layout (CASME2/ with a coding sheet, SMIC/HS|VIS|NIR/...)"
        )
    tables = {}
    for n in wanted:
        with collect_skipped() as lines:
            tables[n] = load_dataset(n, root, missing=policy)
        if lines:
            tables[n].attrs["skipped_clips"] = tuple(lines)
    if str(scheme).lower() == "none":
        return _label_native(tables)
    return {n: apply_scheme(t, scheme) for n, t in tables.items()}


def missing_policy(missing: str) -> str:
    """``"error"`` / ``"raise"`` -> ``"raise"``, ``"skip"`` -> ``"skip"``: what to do with
    clips whose frames are missing (the CLI's ``--missing error|skip``)."""
    value = str(missing).strip().lower()
    if value in ("error", "raise", "skip"):
        return "skip" if value == "skip" else "raise"
    raise ValueError(
        f"--missing {missing!r}: expected 'error' (stop and list the clips whose frames are "
        "missing) or 'skip' (leave them out, listed)"
    )


#: columns of the lists of left-out clips (``F.skipped.csv``, ``skipped.csv``)
SKIPPED_COLUMNS: tuple[str, ...] = ("dataset", "subject", "clip", "reason")


def skipped_clips(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """``dataset, subject, clip, reason`` of the clips :func:`load_databases` left out
    (``missing="skip"``; ``clip`` is the adapter's clip name, ``subject`` is empty)."""
    rows = []
    for name, t in tables.items():
        for line in t.attrs.get("skipped_clips", ()):
            clip, _, reason = str(line).partition(": ")
            rows.append({"dataset": name, "subject": "", "clip": clip, "reason": reason})
    return pd.DataFrame(rows, columns=list(SKIPPED_COLUMNS))


def write_skipped(out_dir: Path, skipped: pd.DataFrame) -> Path | None:
    """``out_dir/skipped.csv`` listing ``skipped`` (with a warning naming their number),
    or None, removing a stale list, when nothing was left out."""
    path = out_dir / "skipped.csv"
    if not len(skipped):
        path.unlink(missing_ok=True)
        return None
    write_text_atomic(path, skipped.to_csv(index=False))
    log.warning("%d clip(s) left out (--missing skip), listed in %s", len(skipped), path)
    return path


def _label_native(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``label`` = native emotion, ``y`` = its index among the sorted emotions of all tables."""
    classes = tuple(sorted({str(e) for t in tables.values() for e in t["emotion"]}))
    out = {}
    for name, t in tables.items():
        t = t.copy()
        t["label"] = t["emotion"].astype(str)
        t["y"] = np.array([classes.index(e) for e in t["label"]], dtype=np.int64)
        t.attrs = {**t.attrs, "scheme": "none", "classes": classes, "dropped": {}}
        out[name] = t
    return out


def scheme_classes(tables: dict[str, pd.DataFrame], scheme: str) -> tuple[str, ...]:
    """Class names indexed by ``y`` for tables labelled by :func:`load_databases`."""
    if str(scheme).lower() == "none":
        first = next(iter(tables.values()), None)
        return tuple(first.attrs.get("classes", ())) if first is not None else ()
    return get_scheme(scheme).classes


def default_cache_dir(data_dir: str | Path) -> Path:
    """``<data_dir>/.merkit-cache``, or a per-user folder when ``data_dir`` is read-only.

    The fallback is ``$XDG_CACHE_HOME/merkit/features`` (``~/.cache/merkit/features``);
    cache keys hold the clip identity and its frame files' names, sizes and times, so
    databases never share entries by accident.
    """
    data_dir = Path(data_dir)
    cache = data_dir / CACHE_DIRNAME
    try:
        cache.mkdir(exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache, prefix=".probe", delete=True)
        probe.close()
        return cache
    except OSError as err:
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        fallback = home / "merkit" / "features"
        log.warning("cannot write the feature cache %s (%s); using %s", cache, err, fallback)
        return fallback


def _cache_of(data_dir: str | Path, cache: str | Path | bool | None) -> FeatureCache | None:
    """``cache``: a folder, True/None (default folder of ``data_dir``) or False (no cache)."""
    if cache is False:
        return None
    if cache is None or cache is True:
        return FeatureCache(default_cache_dir(data_dir))
    return FeatureCache(cache)


@dataclass
class DatabaseFeatures:
    """Features of several databases with one descriptor (:func:`extract_databases`).

    Attributes
    ----------
    features : dict
        Database name -> FeatureSet.
    skipped : DataFrame
        ``dataset, subject, clip, reason`` of dropped clips (no face, skip mode).
    computed, cached : int
        Clips described now / read from the cache.
    descriptor : str
        Canonical descriptor spec.
    extraction : dict
        Database name -> :class:`merkit.features.extract.Extraction`.
    """

    features: dict[str, FeatureSet]
    skipped: pd.DataFrame
    computed: int
    cached: int
    descriptor: str
    extraction: dict = field(default_factory=dict)


def extract_databases(
    tables: dict[str, pd.DataFrame],
    *,
    descriptor: str = "lbp_top:r3p8",
    grid: str | None = None,
    scheme: str = "cdmer3",
    preprocess: Preprocess | None = None,
    on_missing: str = "raise",
    n_jobs: int = 1,
    cache: FeatureCache | str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
    backend: str | Backend = "loky",
    address: str | None = None,
) -> DatabaseFeatures:
    """Extract one descriptor for every database, with a progress bar per database
    (``n_jobs`` workers of ``backend``, one :class:`merkit.parallel.Backend` for all)."""
    desc = configure_descriptor(descriptor, grid)
    classes = scheme_classes(tables, scheme)
    out: dict[str, FeatureSet] = {}
    runs = {}
    with (
        progress_bar(progress, console=console) as bar,
        open_backend(backend, n_jobs, address) as be,
    ):
        for name, table in tables.items():
            task = bar.add_task(f"{desc.name} {name}", total=len(table))
            runs[name] = extract(
                table,
                desc,
                preprocess=preprocess,
                n_jobs=n_jobs,
                backend=be,
                cache=cache,
                on_missing=on_missing,
                classes=classes,
                name=name,
                progress=lambda k, task=task: bar.advance(task, k),
            )
            out[name] = runs[name].features
    skipped = [r.skipped for r in runs.values() if len(r.skipped)]
    return DatabaseFeatures(
        features=out,
        skipped=pd.concat(skipped, ignore_index=True)
        if skipped
        else next(iter(runs.values())).skipped,
        computed=sum(r.computed for r in runs.values()),
        cached=sum(r.cached for r in runs.values()),
        descriptor=desc.name,
        extraction=runs,
    )


def describe_databases(
    tables: dict[str, pd.DataFrame],
    *,
    descriptor: str = "lbp_top:r3p8",
    grid: str | None = None,
    scheme: str = "cdmer3",
    n_jobs: int = 1,
    console: Console | None = None,
    progress: bool = True,
    cache: FeatureCache | str | Path | None = None,
    preprocess: Preprocess | None = None,
    on_missing: str = "raise",
) -> dict[str, FeatureSet]:
    """Extract one descriptor for every database (see :func:`extract_databases`)."""
    return extract_databases(
        tables,
        descriptor=descriptor,
        grid=grid,
        scheme=scheme,
        preprocess=preprocess,
        on_missing=on_missing,
        n_jobs=n_jobs,
        cache=cache,
        console=console,
        progress=progress,
    ).features


@dataclass
class ExtractResult:
    """What :func:`run_extract` wrote."""

    npz: Path
    csv: Path
    skipped_csv: Path | None
    features: dict[str, FeatureSet]
    descriptor: str
    computed: int
    cached: int
    cache: Path | None
    seconds: float
    skipped: int = 0  # clips left out (frames missing, no face), listed in skipped_csv


def run_extract(
    data_dir: str | Path,
    out: str | Path,
    *,
    descriptor: str = "lbp_top:r3p8",
    grid: str | None = None,
    datasets: Sequence[str] | None = None,
    scheme: str = "cdmer3",
    preprocess: Preprocess | None = None,
    skip_missing: bool = False,
    n_jobs: int = 1,
    cache: str | Path | bool | None = None,
    console: Console | None = None,
    progress: bool = True,
    backend: str | Backend = "loky",
    address: str | None = None,
    missing: str = "raise",
) -> ExtractResult:
    """Describe every clip of the databases under ``data_dir`` and write one feature file.

    Parameters
    ----------
    data_dir : path
        Databases in their native layouts.
    out : path
        ``F`` or ``F.npz``: writes ``F.npz`` and ``F.csv`` (and ``F.skipped.csv`` when
        clips were dropped), see :func:`merkit.features.extract.save_feature_file`.
    datasets : sequence of str, optional
        Databases to describe (default: every one found).
    scheme : str
        Label scheme, or ``"none"`` (native emotions, every clip kept).
    preprocess : Preprocess, optional
        Frame size, TIM length, alignment.
    skip_missing : bool
        With alignment, drop (and list) clips without a face instead of failing.
    cache : path, bool or None
        Per-clip cache folder; None/True: ``<data_dir>/.merkit-cache``; False: none.
    n_jobs, backend, address
        Workers over clips: local processes (``"loky"``) or a Ray / Dask cluster
        (:class:`merkit.parallel.Backend`).
    missing : {"raise", "error", "skip"}
        Clips whose frames are missing: stop, or leave them out (listed in
        ``F.skipped.csv`` with the clips without a face).

    Raises
    ------
    PermissionError, NotADirectoryError
        The folder of ``out`` cannot be written (checked before any clip is read).
    """
    t0 = time.perf_counter()
    desc = configure_descriptor(descriptor, grid)  # unknown descriptors fail before reading
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist")
    ensure_writable_dir(feature_file_paths(out)[0].parent, "--out")  # before any clip
    names = list(datasets) if datasets else discover(data_dir)
    tables = load_databases(data_dir, names=names or None, scheme=scheme, missing=missing)
    store = _cache_of(data_dir, cache)
    got = extract_databases(
        tables,
        descriptor=desc,
        scheme=scheme,
        preprocess=preprocess,
        on_missing="skip" if skip_missing else "raise",
        n_jobs=n_jobs,
        cache=store,
        console=console,
        progress=progress,
        backend=backend,
        address=address,
    )
    pre = next(iter(got.extraction.values())).preprocess
    lists = [s for s in (skipped_clips(tables), got.skipped) if len(s)]
    skipped = pd.concat(lists, ignore_index=True) if lists else got.skipped
    npz, csv = save_feature_file(
        got.features,
        out,
        descriptor=desc,
        preprocess=pre,
        scheme=str(scheme),
        skipped=skipped,
    )
    skipped_csv = npz.with_name(npz.stem + ".skipped.csv") if len(skipped) else None
    return ExtractResult(
        npz=npz,
        csv=csv,
        skipped_csv=skipped_csv,
        features=got.features,
        descriptor=desc.name,
        computed=got.computed,
        cached=got.cached,
        cache=store.directory if store is not None else None,
        seconds=time.perf_counter() - t0,
        skipped=len(skipped),
    )


@dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    data_dir: Path | None  # None: the synthetic databases were temporary and are removed
    out_dir: Path
    results: pd.DataFrame
    table_markdown: str
    seconds: dict[str, float] = field(default_factory=dict)
    report: Path | None = None


def default_demo_dir() -> Path:
    """A fresh temporary folder for the demo's synthetic databases."""
    return Path(tempfile.mkdtemp(prefix="merkit-demo-"))


def cdmer_report(results: pd.DataFrame, *, title: str, notes: list[str] | None = None) -> str:
    """Markdown summary of CDMER results: the paper-format table plus notes."""
    from merkit.results.tables import cdmer_table, to_markdown

    table = cdmer_table(label_features(results), bold_best=True)
    lines = [
        f"# {title}",
        "",
        "Cells are mean-F1 / accuracy (%); TYPE-I = Exp.1-6, "
        "TYPE-II = Exp.7-12 (averages over the tasks shown).",
        "",
        to_markdown(table),
        "",
    ]
    for note in notes or []:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def label_features(results: pd.DataFrame) -> pd.DataFrame:
    """Results with ``method`` prefixed by the ``features`` column (descriptor x method rows).

    Rows without a ``features`` entry (e.g. the released benchmark features) keep their
    method name, so tables of a single feature source look as before.
    """
    if "features" not in results.columns:
        return results
    feats = results["features"].fillna("").astype(str)
    if not (feats != "").any():
        return results
    out = results.copy()
    out["method"] = [
        f"{f} {m}" if f else str(m) for f, m in zip(feats, out["method"].astype(str), strict=True)
    ]
    return out


def features_label(descriptor: str, levels: Sequence[int] | None, preprocess: dict) -> str:
    """Short name of a feature source: the descriptor spec plus non-default settings."""
    parts = [descriptor]
    if levels is not None and tuple(levels) not in ((1, 2, 4, 8), (1,)):
        parts.append("grid" + ",".join(str(v) for v in levels))
    size = tuple(preprocess.get("size", (112, 112)))
    if size != (112, 112):
        parts.append(f"{size[0]}x{size[1]}")
    if int(preprocess.get("length", 16)) != 16:
        parts.append(f"tim{preprocess['length']}")
    if preprocess.get("align"):
        parts.append("aligned")
    return " ".join(parts)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def parse_methods(method: str | Sequence[str]) -> list[str]:
    """Registry names from ``"all"`` (every registry method, in registry order), a comma
    list (``"svm,tca"``) or a sequence of such items; unknown names are an error."""
    from merkit.adapt import METHODS

    items = [method] if isinstance(method, str) else list(method)
    names: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip().lower()
            if not part:
                continue
            names.extend(METHODS if part == "all" else [part])
    if not names:
        raise ValueError("no method given (a registry name, a comma list or 'all')")
    bad = [n for n in names if n not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; known methods: {', '.join(sorted(METHODS))}")
    return list(dict.fromkeys(names))


def load_param_grid(grid: str | Path | dict | None) -> str | dict | None:
    """``None`` / ``"default"`` / ``"published"`` as given; a path: a JSON file
    ``{method: [params, ...]}``."""
    import json

    if grid is None or isinstance(grid, dict):
        return grid
    text = str(grid)
    if text in ("default", "published"):
        return text
    path = Path(text)
    if not path.is_file():
        raise ValueError(
            f"--grid must be 'default', 'published' or a JSON file of {{method: [params]}}; "
            f"{text!r} is none of these"
        )
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a JSON object {{method: [params, ...]}}")
    return {str(k).lower(): v for k, v in spec.items()}


def _type_tables(results: pd.DataFrame, selection: str) -> list[tuple[str, pd.DataFrame]]:
    """Tables 3 (TYPE-I) and 4 (TYPE-II) of the rows of one selection (those present)."""
    from merkit.protocols.cdmer import get_task
    from merkit.results.tables import cdmer_table

    rows = results[results["selection"].astype(str) == selection].copy()
    if rows.empty:
        return []
    rows["params"] = "{}"  # the chosen params differ per task
    present = sorted({get_task(t) for t in rows["task"]}, key=lambda t: t.exp)
    out = []
    for number, typ, span in ((3, "TYPE-I", "Exp.1-6"), (4, "TYPE-II", "Exp.7-12")):
        tasks = [t for t in present if t.type == typ]
        if tasks:
            out.append((f"Table {number} ({typ}, {span})",
                        cdmer_table(rows, tasks=tasks, bold_best=True)))  # fmt: skip
    return out


def grid_tables(
    results: pd.DataFrame, *, criterion: str = "reverse"
) -> list[tuple[str, pd.DataFrame]]:
    """The tables of a grid run: Tables 3 / 4 under the oracle protocol, Tables 3 / 4 with
    the label-free ``criterion``'s picks, and the per-method oracle-vs-label-free table
    (:func:`merkit.results.tables.selection_table`). Titles name the protocol."""
    from merkit.results.tables import selection_table

    res = label_features(results)
    out = [(f"Oracle protocol (best grid point scored with target labels): {t}", df)
           for t, df in _type_tables(res, "oracle")]  # fmt: skip
    out += [(f"Label-free selection ({criterion}, no target label): {t}", df)
            for t, df in _type_tables(res, criterion)]  # fmt: skip
    sel = res[res["selection"].astype(str) != "none"]
    if len(sel):
        out.append(("Oracle vs label-free selection per method", selection_table(sel)))
    return out


def cdmer_grid_report(
    results: pd.DataFrame,
    *,
    title: str,
    criterion: str = "reverse",
    notes: list[str] | None = None,
) -> str:
    """Markdown summary of a grid run (see :func:`grid_tables`)."""
    from merkit.results.tables import ORACLE_NOTE, to_markdown

    lines = [
        f"# {title}",
        "",
        "Cells are mean-F1 / accuracy (%); TYPE-I = Exp.1-6, TYPE-II = Exp.7-12 "
        "(averages over the tasks shown). The oracle protocol picks, per task, the grid "
        "point with the best mean-F1 on the target labels (as the papers did): an "
        f"optimistic upper bound. The label-free selection picks by {criterion!r} and never "
        "sees a target label.",
        "",
    ]
    for name, df in grid_tables(results, criterion=criterion):
        lines += [f"## {name}", "", to_markdown(df), ""]
        if "note" in df.attrs:
            lines += [f"{df.attrs['note']}.", ""]
    if not any(line.startswith("## ") for line in lines):
        lines += ["(no selection rows)", ""]
    lines += [f"- {ORACLE_NOTE}"]
    for note in notes or []:
        lines.append(f"- {note}")
    return "\n".join(lines).rstrip() + "\n"


def run_cdmer_on_features(
    features: dict[str, FeatureSet],
    out_dir: str | Path,
    *,
    method: str | Sequence[str] = "svm",
    params: dict | list[dict] | None = None,
    seed: int = 0,
    progress: bool = True,
    title: str = "CDMER results",
    notes: list[str] | None = None,
    label: str | None = None,
    param_grid: str | dict | None = None,
    n_jobs: int = 1,
    criterion: str = "reverse",
    criteria: Sequence[str] = ("reverse", "class_entropy", "entropy"),
    backend: str | Backend = "loky",
    address: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Run methods over every available CDMER task; store results and a Markdown summary.

    Writes ``out_dir/results.csv``, ``predictions.csv`` and ``summary.md``; a re-run
    resumes (units already in the store are not recomputed). ``label`` names the feature
    source (e.g. ``"lbp_top:r3p8"``): it goes into the store's ``features`` column and the
    tables show ``"<label> <method>"`` rows.

    Parameters
    ----------
    method : str or sequence of str
        Registry name, comma list or ``"all"`` (:func:`parse_methods`).
    params : dict or list of dict, optional
        Parameters of a single method (without ``param_grid``).
    param_grid : None, "default", "published" or mapping
        None or ``"default"``: each method at its documented default point, one table
        (nothing is selected, so oracle = label-free). ``"published"`` (the papers'
        search spaces) or ``{method: [params]}``: every grid point through
        :func:`merkit.protocols.runner.run_grid` (``grid.csv`` written), then Tables 3 / 4
        under the oracle protocol and under the label-free ``criterion``, plus the
        oracle-vs-label-free table.
    n_jobs : int
        Workers over grid points (units).
    backend, address
        Local processes (``"loky"``) or a Ray / Dask cluster at ``address`` or started
        for the run (:class:`merkit.parallel.Backend`).
    criterion : str
        The label-free criterion of the second set of tables (one of ``criteria``).
    criteria : sequence of str
        Label-free criteria computed for every grid point.
    """
    from merkit.data.features_io import check_features
    from merkit.protocols.runner import run_cdmer, run_grid
    from merkit.store import ResultStore

    names = parse_methods(method)
    out_dir = ensure_writable_dir(out_dir, "--out")
    check_features(features)  # finite, labelled, one width: before the first unit runs
    extra = None if label is None else {"features": label}
    if param_grid not in (None, "default"):
        if params is not None:
            raise ValueError("give params or a parameter grid, not both")
        if criterion not in criteria:
            raise ValueError(f"criterion {criterion!r} is not among the criteria {list(criteria)}")
        store = ResultStore(out_dir)
        run = run_grid(
            features, names, grid=param_grid, seed=seed, store=store, n_jobs=n_jobs,
            criteria=criteria, progress=progress, extra=extra, backend=backend, address=address,
        )  # fmt: skip
        results = store.results()
        grid_notes = [
            f"grid: {param_grid if isinstance(param_grid, str) else 'custom'}; "
            f"{len(run.grid)} grid points ({run.computed} fitted now, {run.resumed} resumed), "
            f"every point in {out_dir / 'grid.csv'}",
            *(notes or []),
        ]
        markdown = cdmer_grid_report(results, title=title, criterion=criterion, notes=grid_notes)
        write_text_atomic(out_dir / "summary.md", markdown)
        return results, markdown
    if params is not None and len(names) > 1:
        raise ValueError("params apply to a single method")
    store = ResultStore(out_dir)
    spec = names[0] if len(names) == 1 else {n: None for n in names}
    run_cdmer(
        features,
        spec,
        params=params if len(names) == 1 else None,
        seed=seed,
        progress=progress,
        store=store,
        extra=extra,
        n_jobs=n_jobs,
        backend=backend,
        address=address,
    )
    results = store.results()  # every method stored in out_dir so far, one table
    markdown = cdmer_report(results, title=title, notes=notes)
    write_text_atomic(out_dir / "summary.md", markdown)
    return results, markdown


def run_cdmer_on_feature_files(
    features_dir: str | Path,
    out_dir: str | Path,
    *,
    method: str | Sequence[str] = "svm",
    seed: int = 0,
    progress: bool = True,
    param_grid: str | dict | None = None,
    n_jobs: int = 1,
    criterion: str = "reverse",
    backend: str | Backend = "loky",
    address: str | None = None,
    tgsr_groups: str = "authors",
) -> tuple[pd.DataFrame, str]:
    """CDMER on the benchmark's released feature files (``CrossCorpus_*.mat``) in a folder
    (grid and backend options: :func:`run_cdmer_on_features`; ``tgsr_groups``: TGSR's
    column groups, :func:`merkit.data.features_io.load_cdmer_features`)."""
    from merkit.data.features_io import check_features, load_cdmer_dir

    methods = parse_methods(method)
    ensure_writable_dir(out_dir, "--out")
    features = load_cdmer_dir(features_dir, tgsr_groups=tgsr_groups)
    check_features(features, {k: Path(features_dir) for k in features})
    names = ", ".join(f"{k} (n={len(v)})" for k, v in features.items())
    return run_cdmer_on_features(
        features,
        out_dir,
        method=methods,
        seed=seed,
        progress=progress,
        title=f"CDMER, released LBP-TOP features, {_methods_title(methods)}",
        notes=[f"features: {Path(features_dir).resolve()}: {names}"]
        + ([f"TGSR groups: {tgsr_groups} (--tgsr-groups)"] if "tgsr" in methods else []),
        param_grid=param_grid,
        n_jobs=n_jobs,
        criterion=criterion,
        backend=backend,
        address=address,
    )


def _methods_title(methods: Sequence[str]) -> str:
    return ", ".join(methods) if len(methods) <= 4 else f"{len(methods)} methods"


def _check_descriptors(descriptors: Sequence[str], grid: str | None) -> list[str]:
    specs = [d.strip() for item in descriptors for d in str(item).split(",") if d.strip()]
    if not specs:
        raise ValueError("no descriptor given (e.g. --descriptor lbp_top:r3p8)")
    names = [configure_descriptor(d, grid).name for d in specs]  # fail before any work
    return list(dict.fromkeys(names))


def run_cdmer_on_data(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    descriptors: Sequence[str] = ("lbp_top:r3p8",),
    method: str | Sequence[str] = "svm",
    grid: str | None = None,
    preprocess: Preprocess | None = None,
    n_jobs: int = 1,
    cache: str | Path | bool | None = None,
    seed: int = 0,
    console: Console | None = None,
    progress: bool = True,
    param_grid: str | dict | None = None,
    criterion: str = "reverse",
    backend: str | Backend = "loky",
    address: str | None = None,
    missing: str = "raise",
) -> tuple[pd.DataFrame, str]:
    """CDMER on raw databases: every descriptor x every available task with ``method``.

    The databases under ``data_dir`` (CDMER four, native layouts) get the ``cdmer3``
    scheme; each descriptor is extracted (cached, see :func:`run_extract`) and evaluated
    into one results store, its rows tagged in the ``features`` column.

    Parameters
    ----------
    descriptors : sequence of str
        Registry specs; an item may be a comma list (``"lbp_top:r3p8,hog_top:p8"``).
    grid : str, optional
        Block-grid levels of the descriptors (e.g. ``"1,2,4,8"``).
    param_grid, criterion : hyper-parameter grid and label-free criterion
        (:func:`run_cdmer_on_features`); ``n_jobs`` workers of ``backend`` (at
        ``address``; one :class:`merkit.parallel.Backend` for the whole run) serve
        extraction and grid points.
    missing : {"raise", "error", "skip"}
        Clips whose frames are missing: stop, or leave them out (listed in
        ``out_dir/skipped.csv`` and the summary).
    """
    methods = parse_methods(method)
    names = _check_descriptors(descriptors, grid)
    out_dir = ensure_writable_dir(out_dir, "--out")  # before any clip is described
    data_dir = Path(data_dir)
    tables = load_databases(data_dir, scheme="cdmer3", missing=missing)
    dropped = skipped_clips(tables)
    listed = write_skipped(out_dir, dropped)
    left_out = [f"clips left out, frames missing (--missing skip): {len(dropped)}, listed in "
                f"{listed}"] if listed is not None else []  # fmt: skip
    store = _cache_of(data_dir, cache)
    counts = ", ".join(f"{n} {len(t)}" for n, t in tables.items())
    results, markdown = pd.DataFrame(), ""
    labels = []
    with open_backend(backend, n_jobs, address) as be:
        for spec in names:
            got = extract_databases(
                tables,
                descriptor=spec,
                grid=grid,
                scheme="cdmer3",
                preprocess=preprocess,
                n_jobs=n_jobs,
                backend=be,
                cache=store,
                console=console,
                progress=progress,
            )
            ex = next(iter(got.extraction.values()))
            levels = ex.descriptor.grid.levels
            label = features_label(ex.descriptor.name, levels, ex.preprocess.key())
            labels.append(label)
            log.info("%s: %d clips described, %d from the cache", label, got.computed, got.cached)
            results, markdown = run_cdmer_on_features(
                got.features,
                out_dir,
                method=methods,
                seed=seed,
                progress=progress,
                title=f"CDMER on the databases in {data_dir}, {_methods_title(methods)}",
                notes=[
                    f"databases: {data_dir.resolve()} ({counts} clips, cdmer3 labels)",
                    *left_out,
                    f"features: {', '.join(labels)}",
                ],
                label=label,
                param_grid=param_grid,
                n_jobs=n_jobs,
                criterion=criterion,
                backend=be,
            )
    return results, markdown


def _feature_files(paths: Sequence[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(f for f in p.glob("*.npz") if f.is_file())
            if not found:
                raise FileNotFoundError(
                    f"no .npz feature file in {p} (write one with 'merkit extract')"
                )
            files.extend(found)
        elif p.suffix.lower() != ".npz" and p.with_name(p.name + ".npz").is_file():
            files.append(p.with_name(p.name + ".npz"))
        elif p.is_file() and p.suffix.lower() == ".npz":
            files.append(p)
        elif p.is_file():
            raise ValueError(
                f"{p} is not a merkit feature file (expected F.npz from 'merkit extract')"
            )
        else:
            raise FileNotFoundError(f"feature file {p} does not exist")
    return list(dict.fromkeys(files))


def run_cdmer_on_feature_npz(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    method: str | Sequence[str] = "svm",
    seed: int = 0,
    progress: bool = True,
    param_grid: str | dict | None = None,
    n_jobs: int = 1,
    criterion: str = "reverse",
    backend: str | Backend = "loky",
    address: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """CDMER on merkit feature files (``merkit extract``): files, or folders of ``.npz``
    (grid and backend options: :func:`run_cdmer_on_features`).

    Each row's ``dataset`` is its domain. Files with the same descriptor and preprocessing
    are pooled (one database may come from one file only); different descriptors are run
    one after the other into the same store (descriptor x method rows).
    """
    from merkit.data.features_io import check_features

    methods = parse_methods(method)
    ensure_writable_dir(out_dir, "--out")
    files = _feature_files(paths)
    groups: dict[str, dict[str, FeatureSet]] = {}
    origin: dict[tuple[str, str], Path] = {}
    for f in files:
        ff = load_feature_file(f)
        first = next(iter(ff.features.values()))
        label = features_label(ff.descriptor, first.levels, ff.preprocess)
        group = groups.setdefault(label, {})
        for name, fs in ff.features.items():
            if name in group:
                raise ValueError(
                    f"database {name} with {label} is in both {origin[(label, name)]} and {f}"
                )
            group[name] = fs
            origin[(label, name)] = f
    for label, group in groups.items():  # every file, before the first unit runs
        check_features(group, {name: origin[(label, name)] for name in group})
    results, markdown = pd.DataFrame(), ""
    sources = ", ".join(str(f) for f in files)
    with open_backend(backend, n_jobs, address) as be:
        for label, features in groups.items():
            results, markdown = run_cdmer_on_features(
                features,
                out_dir,
                method=methods,
                seed=seed,
                progress=progress,
                title=f"CDMER on merkit feature files, {_methods_title(methods)}",
                notes=[f"feature files: {sources}", f"features: {', '.join(groups)}"],
                label=label,
                param_grid=param_grid,
                n_jobs=n_jobs,
                criterion=criterion,
                backend=be,
            )
    return results, markdown


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

    Synthesises CASME II and SMIC-HS/VIS/NIR in their native layouts (in ``data_dir``,
    reused when it already holds the same seed and size, or in a temporary folder that
    is removed afterwards: the default size takes ~210 MB), reads them back through the
    adapters, applies the CDMER 3-class scheme, describes every clip (112x112, TIM 16
    frames, LBP-TOP R3P8 on 85 blocks), runs the 12 CDMER tasks with the SVM baseline and writes
    ``results.csv``, ``predictions.csv``, ``summary.md`` and the HTML/Markdown report
    (``report.html``, ``report.md``) to ``out_dir``.
    """
    import shutil

    from merkit.data.synthetic import is_synthesized, synthesize

    seconds: dict[str, float] = {}
    out_dir = ensure_writable_dir(out_dir, "--out")  # before minutes of synthesis
    if data_dir is not None and not is_synthesized(data_dir, seed=seed, size=size):
        ensure_writable_dir(data_dir, "--data")
    temporary = data_dir is None
    data_dir = default_demo_dir() if temporary else Path(data_dir)
    try:
        t0 = time.perf_counter()
        if is_synthesized(data_dir, seed=seed, size=size):
            log.info("reusing the synthetic databases in %s (same seed and size)", data_dir)
        else:
            synthesize(data_dir, seed=seed, size=size)
        seconds["synthesise"] = time.perf_counter() - t0
        result = _demo_on(data_dir, out_dir, seed, size, n_jobs, console, progress, seconds)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    if temporary:
        result.data_dir = None
    return result


def _demo_on(
    data_dir: Path,
    out_dir: Path,
    seed: int,
    size: str,
    n_jobs: int,
    console: Console | None,
    progress: bool,
    seconds: dict[str, float],
) -> DemoResult:

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
            f"synthetic databases (seed {seed}, size {size!r}): {counts}",
            "pipeline: frames onset..offset -> 112x112 grey -> TIM 16 frames -> "
            "LBP-TOP R3P8, 85 blocks (15045 values) -> SVC(kernel='linear', C=1)",
        ],
    )
    seconds["cdmer"] = time.perf_counter() - t0

    from merkit.results.report import build_report

    t0 = time.perf_counter()
    html, _ = build_report(out_dir, seed=seed)
    seconds["report"] = time.perf_counter() - t0
    return DemoResult(data_dir, out_dir, results, markdown, seconds, report=html)


# --------------------------------------------------------------------------- deep models
# The train workflow lives in merkit.workflows.train; these wrappers keep the pipeline API.


def composite_flows_from_data(
    data_dir: str | Path,
    *,
    cache: str | Path | bool | None = None,
    n_jobs: int = 1,
    params: dict | None = None,
):
    """The CDE flow set from clips (:func:`merkit.workflows.train.composite_flows_from_data`)."""
    from merkit.workflows.train import composite_flows_from_data as _flows

    return _flows(data_dir, cache=cache, n_jobs=n_jobs, params=params)


def run_train(out_dir: str | Path, **kwargs):
    """Train a network under a protocol (:func:`merkit.workflows.train.run_train`)."""
    from merkit.workflows.train import run_train as _run_train

    return _run_train(out_dir, **kwargs)


def run_predict(clip: str | Path, weights: str | Path, **kwargs):
    """Emotion / AUs of one clip with trained weights (:func:`merkit.nets.predict.predict_clip`)."""
    from merkit.workflows.train import run_predict as _run_predict

    return _run_predict(clip, weights, **kwargs)
