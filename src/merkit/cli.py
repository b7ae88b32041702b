"""Command-line interface: parses arguments and makes one library call per command."""

from __future__ import annotations

import errno
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # older typer runs on click itself
    from click import exceptions as _click_errors

from merkit.features.extract import FaceMissingError, Preprocess
from merkit.parallel import ClusterExtraMissing
from merkit.results.tables import to_rich
from merkit.video.magnify import FILTERS, PYRAMIDS, Magnification
from merkit.workflows.agreement import run_agreement
from merkit.workflows.cdmer import (
    run_cdmer_on_data,
    run_cdmer_on_feature_files,
    run_cdmer_on_feature_npz,
)
from merkit.workflows.databases import database_summary
from merkit.workflows.demo import run_demo
from merkit.workflows.ensemble import run_ensemble
from merkit.workflows.extract import run_extract
from merkit.workflows.predict import run_predict
from merkit.workflows.report import run_report
from merkit.workflows.stats import run_stats
from merkit.workflows.synth import run_synth
from merkit.workflows.train import run_train

#: `merkit` with no command: click shows the help (no such class in click < 8.2)
_NoArgsIsHelp = getattr(_click_errors, "NoArgsIsHelpError", ())


class _OneLineErrors(TyperGroup):
    """Command group whose usage errors (unknown option, bad value) are one ``error:`` line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NoArgsIsHelp as exc:
            exc.show()  # `merkit` alone prints its help
            sys.exit(exc.exit_code)
        except _click_errors.ClickException as exc:
            command = exc.ctx.command_path if getattr(exc, "ctx", None) else "merkit"
            msg = " ".join(exc.format_message().split())
            hint = f" (see '{command} --help')" if isinstance(exc, _click_errors.UsageError) else ""
            err_console.print(
                f"[bold red]error:[/] {escape(msg)}{escape(hint)}", highlight=False, soft_wrap=True
            )
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("[bold red]error:[/] interrupted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineErrors,
    name="merkit",
    help="Micro-expression recognition (MER) and cross-database MER (CDMER) toolkit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
#: results output; never reads rich markup, so paths, names and messages with square
#: brackets ('runs/exp [v2]', '[onset, offset]') are printed whole
console = Console(stderr=False, markup=False)
err_console = Console(stderr=True)

#: errors that are the user's input, reported as one line (no traceback)
USER_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ValueError,
    KeyError,
    ClusterExtraMissing,  # --backend ray / dask without the cluster extra
    OSError,  # disk full, read-only or unwritable folders: named with what to do (_os_message)
)

_state = {"debug": False}


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    debug: Annotated[bool, typer.Option(help="Show full tracebacks on errors.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    _state["debug"] = debug


#: what to do about an operating-system error, by errno
_OS_HINTS = {
    errno.ENOSPC: "free disk space and run the same command again: finished work is kept and "
    "the run resumes",
    errno.EDQUOT: "free disk space (quota exceeded) and run the same command again: finished "
    "work is kept and the run resumes",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "no permission: choose a folder you may write to, or fix its permissions",
    errno.EPERM: "not permitted: choose a folder you may write to, or fix its permissions",
}


def _os_message(exc: OSError) -> str:
    """One line for an operating-system error: the file, the reason, what to do."""
    if exc.strerror is None or exc.errno not in _OS_HINTS:
        return str(exc)
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror.lower()}; {_OS_HINTS[exc.errno]}"


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError):
        return _os_message(exc)
    return str(exc)


def _fail(exc: BaseException) -> None:
    if _state["debug"]:
        raise exc
    msg = _error_message(exc).strip() or type(exc).__name__
    err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _show_tables(tables: list[tuple[str, pd.DataFrame]]) -> None:
    """Every titled table a workflow returned, each followed by its footnote (if any)."""
    for title, table in tables:
        console.print(to_rich(table, title=title))
        if "note" in table.attrs:
            console.print(table.attrs["note"], highlight=False)


def _show_text_table(table: pd.DataFrame, title: str, left: tuple[str, ...] = ()) -> None:
    """A table of text cells as it is; the columns in ``left`` (all when empty) align left,
    the others right."""
    shown = Table(title=Text(title))
    for col in table.columns:
        justify = "left" if not left or col in left else "right"
        shown.add_column(Text(str(col)), justify=justify)
    for row in table.itertuples(index=False):
        shown.add_row(*(Text(str(v)) for v in row))
    console.print(shown)


OutOption = Annotated[Path, typer.Option("--out", "-o", help="Results folder (results.csv ...).")]
#: the largest seed numpy's and scikit-learn's generators accept
SEED_MAX = 2**32 - 1
SeedOption = Annotated[
    int,
    typer.Option(help=f"Random seed, 0 to {SEED_MAX}; the same seed gives the same numbers."),
]


def _seed(value: int, option: str = "--seed") -> int:
    """``value`` when it is a valid seed, else a one-line error naming ``option``."""
    if not 0 <= value <= SEED_MAX:
        raise ValueError(f"{option} {value} is out of range: give an integer from 0 to {SEED_MAX}")
    return value


@app.command()
def demo(
    out: OutOption = Path("merkit-out/demo"),
    data: Annotated[
        Path | None,
        typer.Option(help="Where to write the synthetic databases (default: a temp folder)."),
    ] = None,
    seed: SeedOption = 0,
    size: Annotated[str, typer.Option(help="Synthetic database size: tiny, default or large.")] = (
        "default"
    ),
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel workers.")] = 1,
) -> None:
    """Synthesise the CDMER databases, describe them with LBP-TOP and run the 12 tasks (SVM)."""
    try:
        result = run_demo(
            out, data_dir=data, seed=_seed(seed), size=size, n_jobs=jobs, console=console
        )
    except USER_ERRORS as exc:
        _fail(exc)
    _show_tables(result.tables)
    took = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    console.print(f"timings: {took}")
    if result.data_dir is None:
        console.print("databases: temporary, removed after the run (--data DIR keeps them)")
    else:
        console.print(f"databases: {result.data_dir}")
    console.print(f"results:   {result.out_dir / 'results.csv'}")
    console.print(f"summary:   {result.out_dir / 'summary.md'}")
    console.print(f"report:    {result.report}")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the databases into.")],
    seed: SeedOption = 0,
    size: Annotated[str, typer.Option(help="tiny, default or large.")] = "default",
    database: Annotated[
        list[str] | None,
        typer.Option(
            "--database",
            help="Database to write (repeatable): CASME2, SMIC_HS, SMIC_VIS, SMIC_NIR, SAMM, "
            "DFME, CASME1, 4DME. Default: the four CDMER databases.",
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing database folders.")] = False,
) -> None:
    """Write synthetic micro-expression databases in their native layouts and sheets."""
    try:
        summary = run_synth(
            out, seed=_seed(seed), size=size, databases=database, overwrite=overwrite
        )
    except USER_ERRORS as exc:
        _fail(exc)
    console.print(f"wrote synthetic databases to {out}")
    for name, info in summary["databases"].items():
        console.print(
            f"  {name}: {info['clips']} clips, {info['subjects']} subjects, {info['path']}"
        )


@app.command()
def datasets(
    root: Annotated[Path, typer.Argument(help="Folder holding databases in native layouts.")],
    scheme: Annotated[str | None, typer.Option(help="Apply a label scheme (e.g. cdmer3).")] = None,
) -> None:
    """List the databases found under ROOT with clip, subject and label counts."""
    try:
        table = database_summary(root, scheme)
    except USER_ERRORS as exc:
        _fail(exc)
    _show_text_table(table, f"databases under {root}")


def _size(text: str) -> tuple[int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(v) for v in parts if v.strip()]
    except ValueError:
        values = []
    if len(values) not in (1, 2):
        raise ValueError(f"--size {text!r}: expected N (square) or HxW, e.g. 112 or 112x96")
    return (values[0], values[-1])


def _preprocess(
    size: str,
    length: int,
    align: bool,
    detector: str,
    margin: float,
    magnify: Magnification | None = None,
) -> Preprocess:
    return Preprocess(
        size=_size(size),
        length=length,
        align=align,
        detector=detector,
        margin=margin,
        magnify=magnify,
    )


def _magnify_options(band: str, pyramid: str, temporal: str, cutoff: float) -> dict:
    """``--magnify-band``, ``-pyramid``, ``-filter``, ``-cutoff`` as Magnification arguments."""
    parts = band.split(",")
    try:
        low, high = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"--magnify-band {band!r}: expected LOW,HIGH in Hz, e.g. 1,10") from None
    return {"band": (low, high), "pyramid": pyramid, "filter": temporal, "cutoff": cutoff}


def _magnification(
    alpha: float, band: str, pyramid: str, temporal: str, cutoff: float
) -> Magnification | None:
    """``--magnify ALPHA`` and its options; None when ALPHA is 0 (no magnification)."""
    if alpha == 0:
        return None
    return Magnification(alpha, **_magnify_options(band, pyramid, temporal, cutoff))


MagnifyOption = Annotated[
    float,
    typer.Option(
        "--magnify",
        help="Eulerian video magnification of the frames before TIM: amplification ALPHA "
        "(0: off; docs/magnification.md).",
    ),
]
MagnifyAugmentOption = Annotated[
    str | None,
    typer.Option(
        "--magnify-augment",
        help="Magnify-and-reduce (EMR): factors ALPHA,... (> -1; negative: reduction); every "
        "training clip adds one sample per factor, magnified with the --magnify-* options; "
        "test clips are not copied (docs/magnification.md).",
    ),
]
MagnifyBandOption = Annotated[
    str, typer.Option("--magnify-band", help="Temporal pass band LOW,HIGH in Hz (< fps / 2).")
]
MagnifyPyramidOption = Annotated[
    str, typer.Option("--magnify-pyramid", help=f"Spatial pyramid: {' | '.join(PYRAMIDS)}.")
]
MagnifyFilterOption = Annotated[
    str, typer.Option("--magnify-filter", help=f"Temporal filter: {' | '.join(FILTERS)}.")
]
MagnifyCutoffOption = Annotated[
    float,
    typer.Option(
        "--magnify-cutoff", help="Cut-off wavelength lambda_c (px): finer bands get less alpha."
    ),
]


def _cache_arg(cache: Path | None, no_cache: bool) -> Path | bool | None:
    if no_cache and cache is not None:
        raise ValueError("give --cache DIR or --no-cache, not both")
    return False if no_cache else cache


DescriptorOption = Annotated[
    list[str] | None,
    typer.Option(
        "--descriptor",
        "-d",
        help="Descriptor spec, e.g. lbp_top:r3p8, lpq_top:w5, hog_top:p8, hoof:b8, mdmo, "
        "c3d:fc6 (with --weights) (repeat or comma-separate for several).",
    ),
]
LevelsOption = Annotated[
    str | None,
    typer.Option(help="Block levels, e.g. 1,2,4,8 (default: the descriptor's own)."),
]
WeightsOption = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="Network weights of a deep descriptor (c3d: a C3D Sports-1M state dict, keys "
        "conv1 ... fc8, read with weights_only=True; see docs/c3d.md). Required for c3d only.",
    ),
]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", help="Parallel workers over clips.")]
BackendOption = Annotated[
    str,
    typer.Option(
        help="Where jobs run: loky (local processes), ray or dask (the cluster at --address, "
        "or a local one of --jobs workers started for the run; needs the cluster extra)."
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        help="Cluster to run on with --backend ray (auto, ray://host:10001) or dask "
        "(tcp://host:8786); --jobs -1 uses every worker."
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="Where the network runs: auto (CUDA if available, else MPS, else CPU), cpu, "
        "cuda, cuda:N or mps."
    ),
]
CacheOption = Annotated[
    Path | None,
    typer.Option(
        help="Per-clip feature cache folder (default: DATA/.merkit-cache, or "
        "~/.cache/merkit/features when DATA is read-only). Re-runs read it; interrupted "
        "runs resume."
    ),
]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write a cache.")]
MissingOption = Annotated[
    str,
    typer.Option(
        "--missing",
        help="Clips whose frames are missing or incomplete: error (stop and list them) or "
        "skip (leave them out: their number is printed, skipped.csv lists them).",
    ),
]


@app.command()
def extract(
    data: Annotated[Path, typer.Argument(help="Folder holding databases in native layouts.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Feature file F or F.npz (writes F.npz + F.csv).")
    ],
    descriptor: Annotated[
        str,
        typer.Option(
            "--descriptor",
            "-d",
            help="Descriptor spec, e.g. lbp_top:r3p8, c3d:fc6 (with --weights).",
        ),
    ] = "lbp_top:r3p8",
    levels: LevelsOption = None,
    weights: WeightsOption = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option(help="Database to describe (repeatable; default: every one found)."),
    ] = None,
    scheme: Annotated[
        str, typer.Option(help="Label scheme (cdmer3, megc3, casme2_5...) or 'none' (all clips).")
    ] = "cdmer3",
    size: Annotated[str, typer.Option(help="Frame size N or HxW.")] = "112",
    length: Annotated[int, typer.Option(help="TIM length (frames).")] = 16,
    align: Annotated[
        bool,
        typer.Option(
            help="Detect, align and crop the face (one transform from the onset frame). "
            "Off by default: CASME II Cropped / SMIC releases are already cropped faces."
        ),
    ] = False,
    detector: Annotated[str, typer.Option(help="Face detector with --align.")] = "auto",
    margin: Annotated[float, typer.Option(help="Face crop margin with --align.")] = 0.1,
    skip_missing: Annotated[
        bool,
        typer.Option(help="With --align, drop clips without a face (listed in F.skipped.csv)."),
    ] = False,
    missing: MissingOption = "error",
    magnify: MagnifyOption = 0.0,
    magnify_band: MagnifyBandOption = "1,10",
    magnify_pyramid: MagnifyPyramidOption = "laplacian",
    magnify_filter: MagnifyFilterOption = "ideal",
    magnify_cutoff: MagnifyCutoffOption = 16.0,
    jobs: JobsOption = 1,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    backend: BackendOption = "loky",
    address: AddressOption = None,
) -> None:
    """Describe every clip (preprocess -> TIM -> descriptor) into one feature file."""
    try:
        magnification = _magnification(
            magnify, magnify_band, magnify_pyramid, magnify_filter, magnify_cutoff
        )
        result = run_extract(
            data,
            out,
            descriptor=descriptor,
            levels=levels,
            weights=weights,
            datasets=dataset,
            scheme=scheme,
            preprocess=_preprocess(size, length, align, detector, margin, magnification),
            skip_missing=skip_missing,
            n_jobs=jobs,
            cache=_cache_arg(cache, no_cache),
            console=console,
            backend=backend,
            address=address,
            missing=missing,
        )
    except FaceMissingError as exc:
        _fail(ValueError(f"{exc} (pass --skip-missing to drop such clips)"))
    except USER_ERRORS as exc:
        _fail(exc)
    per_db = ", ".join(f"{k} {n}" for k, n in result.clips.items())
    console.print(
        f"{result.descriptor}: {sum(result.clips.values())} clips x {result.dim} features "
        f"({per_db})"
    )
    console.print(
        f"computed {result.computed}, from cache {result.cached}, {result.seconds:.1f} s"
        + (f" (cache: {result.cache})" if result.cache else "")
    )
    if result.skipped_csv is not None:
        console.print(f"skipped clips: {result.skipped}, listed in {result.skipped_csv}")
    console.print(f"features: {result.npz}  table: {result.csv}")


@app.command()
def cdmer(
    features_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with the benchmark's CrossCorpus_*_112by112.mat feature files."),
    ] = None,
    features: Annotated[
        list[Path] | None,
        typer.Option(
            "--features",
            help="merkit feature file F.npz, or a folder of them (repeatable); each row's "
            "dataset is its domain.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Raw databases in native layouts; described with --descriptor."),
    ] = None,
    descriptor: DescriptorOption = None,
    levels: Annotated[
        str | None,
        typer.Option(help="Block levels of the descriptors with --data, e.g. 1,2,4,8."),
    ] = None,
    weights: WeightsOption = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Parallel workers (clips with --data; grid points).")
    ] = 1,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    missing: MissingOption = "error",
    method: Annotated[
        str,
        typer.Option(help="Method registry name, a comma list (svm,tca) or 'all' (every method)."),
    ] = "svm",
    grid: Annotated[
        str,
        typer.Option(
            help=escape(  # help texts are rich markup: show the brackets
                "Hyper-parameters: 'default' (each method's documented default point, fast), "
                "'published' (the papers' search spaces: oracle and label-free tables) or a "
                "JSON file {method: [params, ...]} (a method's value may be 'published' or "
                "'default')."
            )
        ),
    ] = "default",
    criterion: Annotated[
        str,
        typer.Option(
            help="Label-free criterion of the selection tables (with a grid): reverse, "
            "class_entropy, entropy, snd, snd_guarded, iwcv, dev, mixval (or mixval_inter, "
            "mixval_intra)."
        ),
    ] = "reverse",
    select: Annotated[
        str,
        typer.Option(
            help="'method': oracle and label-free picks within each method's grid; 'auto' "
            "(with a grid): also the label-free choice of method and parameters across all "
            "methods per task, by every criterion, next to the oracle (DIR/auto.csv)."
        ),
    ] = "method",
    tgsr_groups: Annotated[
        str | None,
        typer.Option(
            "--tgsr-groups",
            help="TGSR's column groups on the --features-dir files: 'authors' (default; the "
            "TGSR authors' 85 runs of 177 contiguous columns, reproduces their grid) or "
            "'spatial' (the true facial blocks). merkit's own features always use their blocks.",
        ),
    ] = None,
    class_order: Annotated[
        str,
        typer.Option(
            "--class-order",
            help="How the labels are coded for the fits: 'sorted' (default; scikit-learn's "
            "LibSVM gives a one-vs-one vote tie to the smallest label) or 'first-appearance' "
            "(MATLAB LibSVM's order, the papers' tool: the classes in order of first "
            "appearance in the source rows; reproduces the published C->V numbers exactly).",
        ),
    ] = "sorted",
    out: OutOption = Path("merkit-out/cdmer"),
    seed: SeedOption = 0,
    backend: BackendOption = "loky",
    address: AddressOption = None,
) -> None:
    """Run the CDMER tasks whose two databases are present; print the paper-format tables.

    Give exactly one feature source: --features-dir (released .mat files), --features
    (merkit .npz files) or --data (raw databases, with one or more --descriptor). With
    --grid published, every grid point is evaluated (DIR/grid.csv) and Tables 3 / 4 are
    printed twice: under the oracle protocol (best point scored with target labels) and
    with the label-free --criterion pick; --select auto adds, per task, the label-free
    choice of method and parameters across all methods next to the oracle.
    """
    try:
        given = [n for n, v in (("--features-dir", features_dir), ("--features", features),
                                ("--data", data)) if v]  # fmt: skip
        if len(given) != 1:
            raise ValueError(
                "give exactly one of --features-dir, --features or --data"
                + (f" (got {' and '.join(given)})" if given else "")
            )
        if data is None and (descriptor or levels or weights):
            raise ValueError(
                "--descriptor, --levels and --weights describe raw databases: use them with --data"
            )
        if data is None and (cache is not None or no_cache):
            raise ValueError("--cache / --no-cache apply to --data only")
        if data is None and missing != "error":
            raise ValueError("--missing applies to --data only (clips on disk)")
        if features_dir is None and tgsr_groups is not None:
            raise ValueError(
                "--tgsr-groups applies to --features-dir only (merkit's own features group "
                "TGSR's columns by their facial blocks)"
            )
        opts = dict(method=method, seed=_seed(seed), param_grid=grid, n_jobs=jobs,
                    criterion=criterion, select=select, backend=backend,
                    address=address, class_order=class_order)  # fmt: skip
        if features_dir is not None:
            result = run_cdmer_on_feature_files(
                features_dir, out, tgsr_groups=tgsr_groups or "authors", **opts
            )
        elif features:
            result = run_cdmer_on_feature_npz(features, out, **opts)
        else:
            result = run_cdmer_on_data(
                data,
                out,
                descriptors=descriptor or ["lbp_top:r3p8"],
                levels=levels,
                weights=weights,
                cache=_cache_arg(cache, no_cache),
                console=console,
                missing=missing,
                **opts,
            )
    except USER_ERRORS as exc:
        _fail(exc)
    _show_tables(result.tables)
    if result.grid_csv is not None:
        console.print(f"every grid point: {result.grid_csv}")
    if result.auto_csv is not None:
        console.print(f"label-free choices across methods: {result.auto_csv}")
    console.print(f"results: {result.results_csv}  summary: {result.summary_md}")


@app.command()
def agreement(
    sheet: Annotated[
        Path,
        typer.Argument(help="CSV/XLSX: per-item category counts, or per-annotator labels."),
    ],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="counts (one column per category), labels (one column per annotator) or "
            "auto (counts when every row holds whole numbers with the same total; labels for "
            "text, or numbers under annotator headers like r1, coder2; other whole numbers "
            "are refused as counts whose row totals differ).",
        ),
    ] = "auto",
    id_column: Annotated[
        str | None,
        typer.Option(help="Header of the item-id column (default: item/clip/sample/id...)."),
    ] = None,
    worksheet: Annotated[
        str | None, typer.Option(help="Worksheet of an Excel file (default: the first).")
    ] = None,
) -> None:
    """Fleiss' kappa of an annotation sheet, with its reading (DFME Table 4).

    Other sheets (a database's coding sheet, a clip list, FACS codes) are refused.
    """
    try:
        got = run_agreement(sheet, format=format, id_column=id_column, worksheet=worksheet)
    except USER_ERRORS as exc:
        _fail(exc)
    result = got.fleiss
    console.print(
        f"{sheet.name}: {result.n_items} items x {result.n_raters} annotators, "
        f"{len(result.categories)} categories ({got.sheet.format} sheet)"
    )
    _show_text_table(got.table, "per category", left=("category",))
    console.print(f"P_bar = {result.P_bar:.4f}  P_e = {result.P_e:.4f}")
    console.print(f"Fleiss' kappa = {result.kappa:.4f} ({result.band})")


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise ValueError(
            f"--seeds must be a comma list of integers like 0,1,2, got {text!r}"
        ) from None
    if not seeds:
        raise ValueError("--seeds is empty")
    return [_seed(s, "--seeds") for s in seeds]


def _model_args(items: list[str] | None) -> dict:
    """``["width=8", "hidden=[256]"]`` -> ``{"width": 8, "hidden": [256]}`` (JSON values)."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg must look like NAME=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _input_overrides(
    align: bool | None, detector: str | None, flow_preset: str | None, face_size: int | None,
    clip_size: int | None, clip_length: int | None, keyframes: str | None = None,
) -> tuple[dict, dict]:  # fmt: skip
    flow: dict = {}
    clip: dict = {}
    for d in (flow, clip):
        if align is not None:
            d["align"] = align
        if detector is not None:
            d["detector"] = detector
    if flow_preset is not None:
        flow["preset"] = flow_preset
    if face_size is not None:
        flow["face_size"] = [face_size, face_size]
    if clip_size is not None:
        clip["size"] = [clip_size, clip_size]
    if clip_length is not None:
        clip["length"] = clip_length
    if keyframes is not None:
        clip["keyframes"] = keyframes
    return flow, clip


@app.command()
def train(
    out: OutOption = Path("merkit-out/train"),
    protocol: Annotated[
        str,
        typer.Option(
            help="cde (MEGC 2019 composite, LOSO), cdmer (12 source->target tasks), loso "
            "(single database), kfold (subject-independent k-fold, DFME), au (12-AU "
            "multi-label, k-fold)."
        ),
    ] = "cde",
    model: Annotated[
        str, typer.Option("--model", "-m", help="Network registry name (fr, ststnet, r3d...).")
    ] = "fr",
    task: Annotated[
        list[str] | None,
        typer.Option(
            "--task",
            help="Task(s) of the protocol (repeatable or comma list): cdmer Exp.1..Exp.12 or "
            "C->H; loso/kfold CASME2-5, CASME2-4, SAMM-4, SMIC_HS-3, DFME-7; au DFME-AU12, "
            "CASME2-AU12, SAMM-AU12. Default: the protocol's tasks whose databases exist.",
        ),
    ] = None,
    flows_dir: Annotated[
        Path | None,
        typer.Option(
            help="MEGC 2019 flow folder (STSNet_whole_norm_u_v_os/ + "
            "combined_3_class2_for_optical_flow.csv); protocol cde or loso task SMIC_HS-3."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Databases in native layouts: onset->apex TV-L1 flow images (or clip volumes "
            "for 3-D models) are computed and cached."
        ),
    ] = None,
    n_folds: Annotated[int, typer.Option(help="Folds of kfold / au (DFME: 10).")] = 10,
    split_seed: Annotated[int, typer.Option(help="Seed of the kfold / au subject folds.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the model's preset).")] = (
        None
    ),
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: preset).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size (default: preset).")] = None,
    class_weight: Annotated[
        str | None,
        typer.Option(
            help="Loss weights per class: balanced (n / (K n_k) of each fold's training "
            "labels) or none (default: the preset's, unweighted)."
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="Training preset: fr_cde, fr_cdmer, fr_adam, ststnet, rcn_a or mersiam "
            "(default: the model's own for the protocol)."
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="torch threads per training process (default 1).", min=1),
    ] = None,
    seeds: Annotated[str, typer.Option(help="Comma list of seeds, e.g. 0,1,2.")] = "0",
    folds: Annotated[
        int | None,
        typer.Option(help="Run only K folds per task (cde: round robin over the databases)."),
    ] = None,
    final: Annotated[
        bool, typer.Option("--final", help="Also train one model on every training clip.")
    ] = False,
    fold_weights: Annotated[
        bool,
        typer.Option(
            "--fold-weights/--no-fold-weights",
            help="Save every fold's weights (FR: 41 MB each).",
        ),
    ] = True,
    model_arg: Annotated[
        list[str] | None,
        typer.Option("--model-arg", help="Model constructor argument NAME=VALUE (repeatable)."),
    ] = None,
    align: Annotated[
        bool | None,
        typer.Option(
            "--align/--no-align",
            help="Detect and align the face on the onset frame (default: align); --no-align "
            "for faces that fill the frame (cropped releases, synthetic data).",
        ),
    ] = None,
    detector: Annotated[
        str | None, typer.Option(help="Face detector: auto, dlib, haar or frame.")
    ] = None,
    flow_preset: Annotated[str | None, typer.Option(help="TV-L1 preset: default or fast.")] = None,
    face_size: Annotated[
        int | None, typer.Option(help="Side of the face crop the flow is computed on (112).")
    ] = None,
    clip_size: Annotated[
        int | None,
        typer.Option(help="Frame side of the 3-D models' clips and of mersiam's flow maps (112)."),
    ] = None,
    clip_length: Annotated[
        int | None,
        typer.Option(
            help="Frames of the 3-D models' clips after TIM (16); flows of mersiam's key-frame "
            "sequences (10)."
        ),
    ] = None,
    keyframes: Annotated[
        str | None,
        typer.Option(
            help="Key frames of mersiam's flow sequences: motion (equal steps of frame-"
            "difference energy, default), uniform, or apex (with --clip-length 1)."
        ),
    ] = None,
    prior_epochs: Annotated[
        int | None,
        typer.Option(help="Epochs of mersiam's prior (pair) stage (default: its preset's)."),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(help="Label smoothing of the cross-entropy, in [0, 1) (default 0)."),
    ] = None,
    ema_decay: Annotated[
        float | None,
        typer.Option(
            help="Predict with a bias-corrected exponential moving average of the weights "
            "with this decay per step, in [0, 1), e.g. 0.999 (default 0: the last weights)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Learning-rate schedule: none, step or cosine (default: preset's)."),
    ] = None,
    sampler: Annotated[
        str | None,
        typer.Option(
            help="Training clips per epoch: shuffle (each once, default) or balanced (drawn "
            "with replacement, every class equally likely; trains fold by fold)."
        ),
    ] = None,
    fold_epochs: Annotated[
        Path | None,
        typer.Option(
            help="JSON {fold: epochs}: each fold's own epochs, e.g. chosen per group of test "
            "subjects on training subjects only (the selection.json of benchmarks/cde.py "
            "select). Every fold needs one; not with --epochs or --final."
        ),
    ] = None,
    fold_batching: Annotated[
        str,
        typer.Option(
            "--fold-batching",
            help="Train the folds of a seed as one computation: auto (where the network has "
            "that path, STSTNet, and its C++ kernel builds here), on (required), off (fold by "
            "fold).",
        ),
    ] = "auto",
    device: DeviceOption = "auto",
    precision: Annotated[
        str,
        typer.Option(
            help="32 (float32, default: the published numbers), 16-mixed (float16 autocast, "
            "GPU) or bf16-mixed (bfloat16 autocast; GPU, or CPUs with AVX-512 BF16 / AMX).",
        ),
    ] = "32",
    augment: Annotated[
        str,
        typer.Option(
            help="Augmentation policy of the training batches, seeded: none (default, as "
            "published), flow-flip, flow, flow-mixup (flow networks), clip, clip-mixup (3-D "
            "networks); docs/augmentation.md.",
        ),
    ] = "none",
    jobs: Annotated[
        int,
        typer.Option("--jobs", "-j", help="Parallel workers (clips; folds, one per worker)."),
    ] = 1,
    workers: Annotated[
        int,
        typer.Option(
            help="DataLoader processes reading the cached clips of 3-D models (0: the training "
            "process reads them); the same numbers for any value."
        ),
    ] = 0,
    audit_every: Annotated[
        int | None,
        typer.Option(
            "--audit-every",
            help="Leak audit: record the test folds' predictions every N epochs and score "
            "the run under published test-subject epoch picking beside the honest score "
            "(audit.csv; an estimate, not a result). Default: 1 for flow-image networks, "
            "0 (off) for 3-D networks. Never changes the results.",
        ),
    ] = None,
    cache: CacheOption = None,
    no_cache: NoCacheOption = False,
    missing: MissingOption = "error",
    magnify: MagnifyOption = 0.0,
    magnify_band: MagnifyBandOption = "1,10",
    magnify_pyramid: MagnifyPyramidOption = "laplacian",
    magnify_filter: MagnifyFilterOption = "ideal",
    magnify_cutoff: MagnifyCutoffOption = 16.0,
    magnify_augment: MagnifyAugmentOption = None,
    backend: BackendOption = "loky",
    address: AddressOption = None,
) -> None:
    """Train a network under a protocol; resumable (stored folds are not retrained).

    Writes results.csv, summary.csv, history.csv (learning curves), embeddings/*.npz
    (penultimate features of the test clips), audit.csv (the leak audit), per-fold
    predictions and weights to --out.
    """
    try:
        if flows_dir is None and data is None:
            raise ValueError("give --flows-dir (flow images) or --data (clips)")
        _seed(split_seed, "--split-seed")
        flow, clip = _input_overrides(align, detector, flow_preset, face_size, clip_size,
                                      clip_length, keyframes)  # fmt: skip
        magnification = _magnification(
            magnify, magnify_band, magnify_pyramid, magnify_filter, magnify_cutoff
        )
        if magnification is not None:  # the clips' frames, before flow or TIM
            flow["magnify"] = clip["magnify"] = magnification.key()
        copies = None
        if magnify_augment is not None:  # EMR's training copies, one per factor
            copies = {"factors": magnify_augment,
                      **_magnify_options(magnify_band, magnify_pyramid, magnify_filter,
                                         magnify_cutoff)}  # fmt: skip
        result = run_train(
            out, protocol=protocol, model=model, tasks=task, flows_dir=flows_dir, data_dir=data,
            n_folds=n_folds, split_seed=split_seed, epochs=epochs, lr=lr, batch_size=batch_size,
            class_weight=class_weight, preset=preset, threads=threads, seeds=_seed_list(seeds),
            folds=folds, final=final, fold_batching=fold_batching, device=device,
            precision=precision, augment=augment, magnify_augment=copies,
            fold_weights=fold_weights, model_kwargs=_model_args(model_arg), flow=flow, clip=clip,
            cache=_cache_arg(cache, no_cache), n_jobs=jobs, console=console, missing=missing,
            backend=backend, address=address,
            workers=workers, audit_every=audit_every, prior_epochs=prior_epochs,
            label_smoothing=label_smoothing, ema_decay=ema_decay, scheduler=scheduler,
            sampler=sampler, fold_epochs=fold_epochs,
        )  # fmt: skip
    except USER_ERRORS as exc:
        _fail(exc)
    _show_tables(result.tables)
    console.print(
        f"folds trained {result.folds_done}, from cache {result.folds_cached}, "
        f"{result.seconds:.1f} s"
    )
    console.print(f"results: {out / 'results.csv'}  history: {out / 'history.csv'}")
    if len(result.weights_dirs) == 1:
        console.print(f"weights: {result.weights_dir}")
    else:
        console.print(f"weights: {out / 'weights'} ({len(result.weights_dirs)} runs, run.json)")
    for path in result.final_paths.values():
        console.print(f"final model: {path}")


@app.command()
def predict(
    clip: Annotated[Path, typer.Argument(help="Video file or folder of numbered frames.")],
    model: Annotated[
        Path, typer.Option("--model", "-m", help="Weights file (.pth) with its model card.")
    ],
    model_name: Annotated[
        str | None, typer.Option(help="Network name, only for weights without a model card.")
    ] = None,
    onset: Annotated[int | None, typer.Option(help="Onset frame (default: first).")] = None,
    apex: Annotated[int | None, typer.Option(help="Apex frame (default: spotted).")] = None,
    offset: Annotated[int | None, typer.Option(help="Offset frame (default: last).")] = None,
    align: Annotated[
        bool | None, typer.Option("--align/--no-align", help="Face alignment (default: card).")
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(help="Face detector: auto, dlib, haar or frame (default: card)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    device: DeviceOption = "auto",
    fps: Annotated[
        float | None,
        typer.Option(
            help="Frame rate of the clip, needed for a model trained on magnified clips "
            "(default: a video's own rate; a frame folder has none)."
        ),
    ] = None,
) -> None:
    """Predict the emotion (and AUs) of one clip: face -> apex -> TV-L1 flow -> network.

    A model trained with --magnify has the clip magnified the same way (its model card).
    """
    try:
        got = run_predict(clip, model, model_name=model_name, onset=onset, apex=apex,
                          offset=offset, align=align, detector=detector,
                          device=device, fps=fps)  # fmt: skip
    except USER_ERRORS as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(got.to_dict(), indent=2))
        return
    apex_text = (
        "whole clip"
        if got.apex is None
        else f"apex {got.apex} ({'spotted' if got.apex_spotted else 'given'})"
    )
    console.print(
        f"{clip.name}: frames {got.onset}..{got.offset}, {apex_text}, face {got.face}, "
        f"model {got.model}",
        highlight=False,
    )
    if got.probabilities:
        table = Table(title=f"prediction: {got.label}")
        table.add_column("class")
        table.add_column("probability", justify="right")
        for name, p in got.probabilities.items():
            table.add_row(Text(name, style="bold" if name == got.label else ""), f"{p:.4f}")
        console.print(table)
    if got.aus:
        present = ", ".join(got.aus_present) or "none"
        table = Table(title=f"action units present: {present}")
        table.add_column("AU")
        table.add_column("probability", justify="right")
        for name, p in got.aus.items():
            bold = "bold" if name in got.aus_present else ""
            table.add_row(Text(name, style=bold), f"{p:.4f}")
        console.print(table)


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="Results folder (results.csv ...).")],
    html: Annotated[
        Path | None, typer.Option("--html", help="HTML file (default RESULTS_DIR/report.html).")
    ] = None,
    md: Annotated[
        Path | None, typer.Option("--md", help="Markdown file (default RESULTS_DIR/report.md).")
    ] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 1000,
    seed: SeedOption = 0,
    face: Annotated[
        Path | None,
        typer.Option(
            help="Aligned face image under the TGSR salient-region maps "
            "(default: the synthetic neutral face)."
        ),
    ] = None,
    criterion: Annotated[
        str, typer.Option(help="Label-free selection shown beside the oracle (grid runs).")
    ] = "reverse",
) -> None:
    """Self-contained HTML + Markdown report: tables, intervals, confusion matrices, curves."""
    try:
        html_path, md_path = run_report(results_dir, html, md, n_boot=n_boot, seed=_seed(seed),
                                          face=face, criterion=criterion)  # fmt: skip
    except USER_ERRORS as exc:
        _fail(exc)
    console.print(f"html: {html_path}", highlight=False, soft_wrap=True)
    console.print(f"markdown: {md_path}", highlight=False, soft_wrap=True)


def _cells(table: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """A table with its float columns written with ``digits`` decimals (for printing)."""
    shown = table.copy()
    for col in shown.columns:
        if pd.api.types.is_float_dtype(shown[col]):
            shown[col] = [f"{v:.{digits}f}" for v in shown[col]]
    return shown


@app.command()
def stats(
    root: Annotated[Path, typer.Argument(help="Folder holding AU-coded databases' sheets.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the CSV tables and durations.png."),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(help="Only this database (CASME2, SAMM, CASME3_A, CASME3_C, DFME)."),
    ] = None,
    top: Annotated[int, typer.Option(help="AU combinations shown per emotion.")] = 3,
) -> None:
    """AU, emotion and duration statistics of coded databases (DFME Tables 5-7).

    Reads only the coding sheets (no frames). Durations use each clip's fps; a clip is a
    micro-expression when onset..offset <= 500 ms or onset..apex <= 250 ms.
    """
    try:
        result = run_stats(root, out, database=database, top=top)
    except USER_ERRORS as exc:
        _fail(exc)
    for name, db in result.databases.items():
        dist = db.au_distribution
        console.print(
            f"{name}: {db.clips} clips, {db.subjects} subjects, {dist.attrs['labels']} AU "
            f"labels ({dist.attrs['aus_per_clip']:.3f} per clip), from {db.source}",
            highlight=False,
            soft_wrap=True,
        )
        ranked = dist.sort_values(["rank", "count"], kind="stable")
        _show_text_table(_cells(ranked), f"{name}: AU labels (Table 5)", left=("au",))
        _show_text_table(
            _cells(db.high_occurrence[["emotion", "au", "clips", "percent"]]),
            f"{name}: AUs of high occurrence, % of the emotion's clips (Table 6)",
            left=("emotion", "au"),
        )
        _show_text_table(
            _cells(db.au_combinations[["emotion", "combination", "clips", "percent"]]),
            f"{name}: most frequent AU combinations per emotion (Table 7)",
            left=("emotion", "combination"),
        )
        _show_text_table(
            _cells(db.clips_per_emotion), f"{name}: clips per emotion", left=("emotion",)
        )
        _show_text_table(
            _cells(db.duration_summary),
            f"{name}: durations (ms) and the micro-expression rule",
            left=("fps",),
        )
    for path in result.files:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)


@app.command()
def ensemble(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Output folders of merkit train (each: its runs' seeds).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results folder of the ensemble.")],
    name: Annotated[str, typer.Option(help="Method name of the ensemble's results rows.")] = (
        "ensemble"
    ),
    per_seed: Annotated[
        bool,
        typer.Option(
            "--per-seed",
            help="One ensemble per seed (seed s of every run) instead of one of all members.",
        ),
    ] = False,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only these tasks (repeatable).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Only these seeds of the runs, e.g. 0,1,2.")
    ] = None,
) -> None:
    """Average the stored test probabilities of several training runs, clip by clip.

    The members (seeds and/or networks) are fixed before any test label is read, so an
    ensemble of honest runs is honest. Writes results.csv, predictions.csv, summary.csv,
    members.csv and run.json to --out (merkit report works on it).
    """
    try:
        result = run_ensemble(
            run_dirs, out, name=name, per_seed=per_seed, tasks=task,
            seeds=None if seeds is None else _seed_list(seeds),
        )  # fmt: skip
    except USER_ERRORS as exc:
        _fail(exc)
    _show_tables(result.tables)
    console.print(f"results: {escape(str(result.out_dir / 'results.csv'))}", highlight=False,
                  soft_wrap=True)  # fmt: skip


def main() -> None:
    """Entry point of the ``merkit`` command."""
    app()


if __name__ == "__main__":
    main()
