"""``merkit cdmer``: the CDMER tasks on features, with the paper-format tables.

Three feature sources, one function each: the benchmark's released ``.mat`` files
(:func:`run_cdmer_on_feature_files`), merkit feature files (:func:`run_cdmer_on_feature_npz`)
and raw databases described here (:func:`run_cdmer_on_data`); all three end in
:func:`run_cdmer_on_features`, which runs the methods through
:mod:`merkit.protocols.runner` into one results store and returns a :class:`CdmerResult`
holding the tables to show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console

from merkit._io import ensure_writable_dir
from merkit.adapt import METHODS
from merkit.adapt.selection import choose_across_methods
from merkit.data.features_io import check_features, load_cdmer_dir
from merkit.data.schema import FeatureSet
from merkit.features.extract import (
    Preprocess,
    check_clip_shape,
    configure_descriptor,
    load_feature_file,
)
from merkit.features.registry import Descriptor, get_descriptor
from merkit.parallel import Backend, open_backend
from merkit.protocols.cdmer import get_task
from merkit.protocols.runner import run_cdmer, run_grid
from merkit.protocols.units import check_class_order, class_order_of, task_data
from merkit.results.tables import (
    ORACLE_NOTE,
    auto_selection_tables,
    cdmer_table,
    cdmer_terminal_table,
    grid_tables,
    prefix_methods_with_features,
    to_markdown,
)
from merkit.store import ResultStore, write_auto_selection, write_skipped, write_summary
from merkit.workflows.databases import feature_cache, load_databases, skipped_clips
from merkit.workflows.extract import extract_databases

log = logging.getLogger(__name__)

__all__ = [
    "SELECT_MODES",
    "CdmerResult",
    "CDMER_CRITERIA",
    "across_method_choices",
    "cdmer_summary",
    "check_select",
    "feature_source_name",
    "grid_summary",
    "load_param_grid",
    "parse_methods",
    "run_cdmer_on_data",
    "run_cdmer_on_feature_files",
    "run_cdmer_on_feature_npz",
    "run_cdmer_on_features",
]

#: the label-free criteria of every grid point of a CDMER grid run by default
CDMER_CRITERIA: tuple[str, ...] = ("reverse", "class_entropy", "entropy", "snd", "snd_guarded")
#: ``--select``: per method (the oracle / criterion picks of each method's grid) or auto
#: (also the label-free choice of method and parameters across all methods)
SELECT_MODES: tuple[str, ...] = ("method", "auto")

#: title of the one table of a run at each method's default point
TABLE_TITLE = "CDMER: mean-F1 / accuracy (%)"


@dataclass
class CdmerResult:
    """What a CDMER workflow stored and the tables it shows.

    Attributes
    ----------
    results : DataFrame
        Every row of the results store in ``out_dir`` (all methods run there so far).
    markdown : str
        The Markdown summary written to ``out_dir/summary.md``.
    tables : list of (str, DataFrame)
        Titled tables to print: the paper-format table (tasks as rows when wide), or for a
        grid run Tables 3 / 4 under the oracle protocol and the label-free criterion and
        the oracle-vs-label-free table (its footnote in ``attrs["note"]``).
    out_dir : Path
    grid_csv : Path, optional
        Every grid point of a grid run (None at the default points).
    """

    results: pd.DataFrame
    markdown: str
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    out_dir: Path = Path()
    grid_csv: Path | None = None
    auto_csv: Path | None = None

    @property
    def results_csv(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def summary_md(self) -> Path:
        return self.out_dir / "summary.md"


def parse_methods(method: str | Sequence[str]) -> list[str]:
    """Registry names from ``"all"`` (every registry method, in registry order), a comma
    list (``"svm,tca"``) or a sequence of such items; unknown names are an error."""
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


def check_select(select: str, param_grid) -> None:
    """``select`` is one of :data:`SELECT_MODES`; ``"auto"`` needs a grid."""
    if select not in SELECT_MODES:
        raise ValueError(f"--select must be one of {', '.join(SELECT_MODES)}, got {select!r}")
    if select == "auto" and param_grid in (None, "default"):
        raise ValueError(
            "--select auto chooses among grid points: give --grid published or a JSON grid"
        )


def load_param_grid(grid: str | Path | dict | None) -> str | dict | None:
    """``None`` / ``"default"`` / ``"published"`` / a mapping as given; a path: a JSON file
    ``{method: [params, ...]}``."""
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


def across_method_choices(
    grid: pd.DataFrame, features: dict[str, FeatureSet], criteria: Sequence[str]
) -> pd.DataFrame:
    """The label-free choices of method and parameters of a grid run
    (:func:`merkit.adapt.selection.choose_across_methods`) for every (task, seed, data)
    group of its grid rows, with the oracle's choice and each choice's ``gap`` (mean-F1
    minus the oracle's). The target labels only score the choices."""
    out = []
    for (task, seed, data), grp in grid.groupby(["task", "seed", "data"], sort=False):
        yt = task_data(get_task(task), features, class_order_of(data)).yt
        ch = choose_across_methods(grp, [c for c in criteria if c in grp.columns], yt)
        oracle = float(ch.loc[ch["selection"] == "oracle", "mean_f1"].iloc[0])
        ch.insert(0, "task", task)
        ch.insert(1, "seed", int(seed))
        ch["gap"] = ch["mean_f1"] - oracle
        out.append(ch)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def feature_source_name(descriptor: str, levels: Sequence[int] | None, preprocess: dict) -> str:
    """Short name of a feature source: the descriptor spec plus its non-default settings
    (block levels, frame size, TIM length, alignment), e.g. ``"lbp_top:r3p8 levels1,2"``."""
    parts = [descriptor]
    if levels is not None and tuple(levels) not in ((1, 2, 4, 8), (1,)):
        parts.append("levels" + ",".join(str(v) for v in levels))
    size = tuple(preprocess.get("size", (112, 112)))
    if size != (112, 112):
        parts.append(f"{size[0]}x{size[1]}")
    if int(preprocess.get("length", 16)) != 16:
        parts.append(f"tim{preprocess['length']}")
    if preprocess.get("align"):
        parts.append("aligned")
    return " ".join(parts)


def cdmer_summary(results: pd.DataFrame, *, title: str, notes: list[str] | None = None) -> str:
    """Markdown summary of CDMER results: the paper-format table plus notes."""
    table = cdmer_table(prefix_methods_with_features(results), bold_best=True)
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


def grid_summary(
    tables: list[tuple[str, pd.DataFrame]],
    *,
    title: str,
    criterion: str = "reverse",
    notes: list[str] | None = None,
) -> str:
    """Markdown summary of a grid run: its ``tables`` (:func:`merkit.results.tables.grid_tables`)
    with their footnotes, then the notes."""
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
    for name, df in tables:
        lines += [f"## {name}", "", to_markdown(df), ""]
        if "note" in df.attrs:
            lines += [f"{df.attrs['note']}.", ""]
    if not tables:
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
    param_grid: str | Path | dict | None = None,
    n_jobs: int = 1,
    criterion: str = "reverse",
    criteria: Sequence[str] = CDMER_CRITERIA,
    backend: str | Backend = "loky",
    address: str | None = None,
    table_title: str = TABLE_TITLE,
    select: str = "method",
    class_order: str = "sorted",
) -> CdmerResult:
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
    param_grid : None, "default", "published", mapping or JSON file
        None or ``"default"``: each method at its documented default point, one table
        (nothing is selected, so oracle = label-free). ``"published"`` (the papers'
        search spaces), ``{method: [params]}`` or a JSON file of one
        (:func:`load_param_grid`): every grid point through
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
        Label-free criteria computed for every grid point (default
        :data:`CDMER_CRITERIA`; ``"iwcv"`` and ``"dev"`` cost k more fits per point, the
        MixVal criteria one).
    table_title : str
        Title of the table of a run at the default points.
    select : "method" or "auto"
        ``"auto"`` (grid runs only): also the label-free choice of method *and*
        parameters over every method's grid points per task, by each criterion, the
        cross-method agreement and the criterion votes (:func:`across_method_choices`),
        printed next to the oracle and written to ``out_dir/auto.csv``.
    class_order : {"sorted", "first-appearance"}
        How each task's labels are coded for the fits
        (:data:`merkit.protocols.units.CLASS_ORDERS`): ``"first-appearance"`` is MATLAB
        LibSVM's order, which the CDMER papers used (their one-vs-one vote ties; with it
        C -> V reproduces the published SVM, SA, GFK and TCA numbers exactly).
    """
    param_grid = load_param_grid(param_grid)
    check_select(select, param_grid)
    check_class_order(class_order)
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
            class_order=class_order,
        )  # fmt: skip
        results = store.results()
        grid_csv = out_dir / "grid.csv"
        grid_notes = [
            f"grid: {param_grid if isinstance(param_grid, str) else 'custom'}; "
            f"{len(run.grid)} grid points ({run.computed} fitted now, {run.resumed} resumed), "
            f"every point in {grid_csv}",
            *(notes or []),
        ]
        tables = grid_tables(results, criterion=criterion)
        auto_csv = None
        if select == "auto":
            choices = across_method_choices(run.grid, features, criteria)
            auto_csv = write_auto_selection(out_dir, choices)
            tables += auto_selection_tables(choices)
        markdown = grid_summary(tables, title=title, criterion=criterion, notes=grid_notes)
        write_summary(out_dir, markdown)
        return CdmerResult(results, markdown, tables, out_dir, grid_csv, auto_csv)
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
        class_order=class_order,
    )
    results = store.results()  # every method stored in out_dir so far, one table
    markdown = cdmer_summary(results, title=title, notes=notes)
    write_summary(out_dir, markdown)
    table = cdmer_terminal_table(prefix_methods_with_features(results))
    return CdmerResult(results, markdown, [(table_title, table)], out_dir)


def run_cdmer_on_feature_files(
    features_dir: str | Path,
    out_dir: str | Path,
    *,
    method: str | Sequence[str] = "svm",
    seed: int = 0,
    progress: bool = True,
    param_grid: str | Path | dict | None = None,
    n_jobs: int = 1,
    criterion: str = "reverse",
    criteria: Sequence[str] = CDMER_CRITERIA,
    select: str = "method",
    backend: str | Backend = "loky",
    address: str | None = None,
    tgsr_groups: str = "authors",
    class_order: str = "sorted",
) -> CdmerResult:
    """CDMER on the benchmark's released feature files (``CrossCorpus_*.mat``) in a folder
    (grid and backend options: :func:`run_cdmer_on_features`; ``tgsr_groups``: TGSR's
    column groups, :func:`merkit.data.features_io.load_cdmer_features`)."""
    param_grid = load_param_grid(param_grid)
    check_select(select, param_grid)
    check_class_order(class_order)
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
        criteria=criteria,
        select=select,
        backend=backend,
        address=address,
        class_order=class_order,
    )


def _methods_title(methods: Sequence[str]) -> str:
    return ", ".join(methods) if len(methods) <= 4 else f"{len(methods)} methods"


def _check_descriptors(
    descriptors: Sequence[str], levels: str | None, weights: str | Path | None = None
) -> list[Descriptor]:
    specs = [d.strip() for item in descriptors for d in str(item).split(",") if d.strip()]
    if not specs:
        raise ValueError("no descriptor given (e.g. --descriptor lbp_top:r3p8)")
    if weights is not None and not any(get_descriptor(d).family == "c3d" for d in specs):
        raise ValueError(
            f"--weights is only for the c3d descriptor, not {', '.join(specs)}; leave it out"
        )
    configured = {}
    for d in specs:  # fail before any work
        desc = get_descriptor(d)
        desc = configure_descriptor(desc, levels, weights if desc.family == "c3d" else None)
        configured.setdefault(desc.name, desc)
    return list(configured.values())


def run_cdmer_on_data(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    descriptors: Sequence[str] = ("lbp_top:r3p8",),
    method: str | Sequence[str] = "svm",
    levels: str | None = None,
    weights: str | Path | None = None,
    preprocess: Preprocess | None = None,
    n_jobs: int = 1,
    cache: str | Path | bool | None = None,
    seed: int = 0,
    console: Console | None = None,
    progress: bool = True,
    param_grid: str | Path | dict | None = None,
    criterion: str = "reverse",
    select: str = "method",
    backend: str | Backend = "loky",
    address: str | None = None,
    missing: str = "raise",
    class_order: str = "sorted",
) -> CdmerResult:
    """CDMER on raw databases: every descriptor x every available task with ``method``.

    The databases under ``data_dir`` (CDMER four, native layouts) get the ``cdmer3``
    scheme; each descriptor is extracted (cached, see
    :func:`merkit.workflows.extract.run_extract`) and evaluated into one results store,
    its rows tagged in the ``features`` column.

    Parameters
    ----------
    descriptors : sequence of str
        Registry specs; an item may be a comma list (``"lbp_top:r3p8,hog_top:p8"``).
    levels : str, optional
        Block levels of the descriptors (e.g. ``"1,2,4,8"``).
    weights : path, optional
        Weights file of the ``c3d`` descriptors (required for them; an error without one).
    param_grid, criterion : hyper-parameter grid and label-free criterion
        (:func:`run_cdmer_on_features`); ``n_jobs`` workers of ``backend`` (at
        ``address``; one :class:`merkit.parallel.Backend` for the whole run) serve
        extraction and grid points.
    missing : {"raise", "error", "skip"}
        Clips whose frames are missing: stop, or leave them out (listed in
        ``out_dir/skipped.csv`` and the summary).
    class_order : {"sorted", "first-appearance"}
        As :func:`run_cdmer_on_features`.
    """
    param_grid = load_param_grid(param_grid)
    check_select(select, param_grid)
    check_class_order(class_order)
    methods = parse_methods(method)
    configured = _check_descriptors(descriptors, levels, weights)
    for desc in configured:
        check_clip_shape(desc, preprocess)
    out_dir = ensure_writable_dir(out_dir, "--out")  # before any clip is described
    data_dir = Path(data_dir)
    tables = load_databases(data_dir, scheme="cdmer3", missing=missing)
    dropped = skipped_clips(tables)
    listed = write_skipped(out_dir, dropped)
    left_out = [f"clips left out, frames missing (--missing skip): {len(dropped)}, listed in "
                f"{listed}"] if listed is not None else []  # fmt: skip
    store = feature_cache(data_dir, cache)
    counts = ", ".join(f"{n} {len(t)}" for n, t in tables.items())
    result = CdmerResult(pd.DataFrame(), "", out_dir=out_dir)
    labels = []
    with open_backend(backend, n_jobs, address) as be:
        for desc in configured:
            got = extract_databases(
                tables,
                descriptor=desc,  # levels and weights already applied
                scheme="cdmer3",
                preprocess=preprocess,
                n_jobs=n_jobs,
                backend=be,
                cache=store,
                console=console,
                progress=progress,
            )
            ex = next(iter(got.extraction.values()))
            first = next(iter(got.features.values()))
            label = feature_source_name(ex.descriptor.name, first.levels, ex.preprocess.key())
            labels.append(label)
            log.info("%s: %d clips described, %d from the cache", label, got.computed, got.cached)
            result = run_cdmer_on_features(
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
                select=select,
                backend=be,
                class_order=class_order,
            )
    return result


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
    param_grid: str | Path | dict | None = None,
    n_jobs: int = 1,
    criterion: str = "reverse",
    select: str = "method",
    backend: str | Backend = "loky",
    address: str | None = None,
    class_order: str = "sorted",
) -> CdmerResult:
    """CDMER on merkit feature files (``merkit extract``): files, or folders of ``.npz``
    (grid and backend options: :func:`run_cdmer_on_features`).

    Each row's ``dataset`` is its domain. Files with the same descriptor and preprocessing
    are pooled (one database may come from one file only); different descriptors are run
    one after the other into the same store (descriptor x method rows).
    """
    param_grid = load_param_grid(param_grid)
    check_select(select, param_grid)
    check_class_order(class_order)
    methods = parse_methods(method)
    out_dir = ensure_writable_dir(out_dir, "--out")
    files = _feature_files(paths)
    groups: dict[str, dict[str, FeatureSet]] = {}
    origin: dict[tuple[str, str], Path] = {}
    for f in files:
        ff = load_feature_file(f)
        first = next(iter(ff.features.values()))
        label = feature_source_name(ff.descriptor, first.levels, ff.preprocess)
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
    result = CdmerResult(pd.DataFrame(), "", out_dir=out_dir)
    sources = ", ".join(str(f) for f in files)
    with open_backend(backend, n_jobs, address) as be:
        for label, features in groups.items():
            result = run_cdmer_on_features(
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
                select=select,
                backend=be,
                class_order=class_order,
            )
    return result
