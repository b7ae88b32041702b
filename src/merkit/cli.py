"""Command-line interface: parses arguments and makes one library call per command."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

app = typer.Typer(
    name="merkit",
    help="Micro-expression recognition (MER) and cross-database MER (CDMER) toolkit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=False)
err_console = Console(stderr=True)

#: errors that are the user's input, reported as one line (no traceback)
USER_ERRORS = (FileNotFoundError, NotADirectoryError, PermissionError, ValueError, KeyError)

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


def _fail(exc: BaseException) -> None:
    if _state["debug"]:
        raise exc
    msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _show_table(results, title: str) -> None:
    """Paper-format table; tasks as rows when it would not fit the terminal as columns."""
    from merkit.protocols.cdmer import get_task
    from merkit.results.tables import cdmer_table, to_rich

    table = cdmer_table(results, bold_best=True)
    if len(table.columns) > 4:
        table = table.T
        table.index = [
            f"{c} {get_task(c).code}" if c.startswith("Exp.") else c for c in table.index
        ]
        table.index.name = "task"
        table.columns = [
            " ".join(str(v) for v in c) if isinstance(c, tuple) else str(c) for c in table.columns
        ]
    console.print(to_rich(table, title=title))


OutOption = Annotated[Path, typer.Option("--out", "-o", help="Results folder (results.csv ...).")]
SeedOption = Annotated[int, typer.Option(help="Random seed; the same seed gives the same numbers.")]


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
    from merkit.pipeline import run_demo

    try:
        result = run_demo(out, data_dir=data, seed=seed, size=size, n_jobs=jobs, console=console)
    except USER_ERRORS as exc:
        _fail(exc)
    _show_table(result.results, "merkit demo: mean-F1 / accuracy (%) per CDMER task")
    took = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    console.print(f"timings: {took}")
    console.print(f"databases: {result.data_dir}")
    console.print(f"results:   {result.out_dir / 'results.csv'}")
    console.print(f"summary:   {result.out_dir / 'summary.md'}")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the databases into.")],
    seed: SeedOption = 0,
    size: Annotated[str, typer.Option(help="tiny, default or large.")] = "default",
) -> None:
    """Write synthetic micro-expression databases in the native CASME II / SMIC layouts."""
    from merkit.data.synthetic import synthesize

    try:
        summary = synthesize(out, seed=seed, size=size)
    except USER_ERRORS as exc:
        _fail(exc)
    console.print(f"wrote synthetic databases to {out}")
    for name, info in summary.get("databases", summary).items():
        console.print(f"  {name}: {info}")


@app.command()
def datasets(
    root: Annotated[Path, typer.Argument(help="Folder holding databases in native layouts.")],
    scheme: Annotated[str | None, typer.Option(help="Apply a label scheme (e.g. cdmer3).")] = None,
) -> None:
    """List the databases found under ROOT with clip, subject and label counts."""
    from rich.table import Table

    from merkit.data.adapters import discover, load_dataset
    from merkit.data.labels import apply_scheme

    try:
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist")
        names = discover(root)
        if not names:
            raise FileNotFoundError(f"no database in a native layout found under {root}")
        table = Table(title=f"databases under {root}")
        for col in ("database", "clips", "subjects", "fps", "labels"):
            table.add_column(col)
        for name in names:
            t = load_dataset(name, root)
            column = "emotion"
            if scheme:
                t = apply_scheme(t, scheme)
                column = "label"
            counts = ", ".join(f"{k} {v}" for k, v in t[column].value_counts().sort_index().items())
            fps = ", ".join(f"{f:g}" for f in sorted(t["fps"].unique()))
            table.add_row(name, str(len(t)), str(t["subject"].nunique()), fps, counts)
    except USER_ERRORS as exc:
        _fail(exc)
    console.print(table)


@app.command()
def cdmer(
    features_dir: Annotated[
        Path,
        typer.Option(help="Folder with the benchmark's CrossCorpus_*_112by112.mat feature files."),
    ],
    method: Annotated[str, typer.Option(help="Method registry name.")] = "svm",
    out: OutOption = Path("merkit-out/cdmer"),
    seed: SeedOption = 0,
) -> None:
    """Run the CDMER tasks whose two databases are present; print the paper-format table."""
    from merkit.pipeline import run_cdmer_on_feature_files

    try:
        results, _ = run_cdmer_on_feature_files(features_dir, out, method=method, seed=seed)
    except USER_ERRORS as exc:
        _fail(exc)
    _show_table(results, "CDMER: mean-F1 / accuracy (%)")
    console.print(f"results: {out / 'results.csv'}  summary: {out / 'summary.md'}")


def main() -> None:
    """Entry point of the ``merkit`` command."""
    app()


if __name__ == "__main__":
    main()
