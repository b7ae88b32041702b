"""Paper-format tables of CDMER results: "mean-F1 / accuracy" per task.

Rows are methods (and their selection / params when those vary), columns the tasks
``Exp.1`` .. ``Exp.12`` in experiment order (only those present, or all twelve),
then the ``TYPE-I`` and ``TYPE-II`` averages: the mean of mean-F1 and of accuracy
over the tasks of that type shown in the table. A row missing one of those tasks
gets no average ("-") rather than an average over a different set of tasks.
Several seeds of one row are averaged. Output as a pandas DataFrame of strings,
Markdown (a built-in pipe-table writer) or a :class:`rich.table.Table`.

Rows of several feature sources (the results' ``features`` column) are told apart by
:func:`prefix_methods_with_features`; a hyper-parameter grid run gives the tables of
:func:`grid_tables`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
from rich.table import Table
from rich.text import Text

from merkit.protocols.cdmer import TASKS, TYPES, CdmerTask, get_task
from merkit.protocols.units import class_order_of

log = logging.getLogger(__name__)

__all__ = [
    "ORACLE_LABEL",
    "AUTO_NOTE",
    "ORACLE_NOTE",
    "SELECTION_NOTE",
    "auto_selection_tables",
    "cdmer_scores",
    "cdmer_table",
    "cdmer_terminal_table",
    "grid_tables",
    "prefix_methods_with_features",
    "selection_scores",
    "selection_table",
    "to_markdown",
    "to_rich",
]

_ROW_LEVELS = ("method", "selection", "params")
_MISSING = "-"


def _task_columns(results: pd.DataFrame, all_tasks: bool, tasks) -> list[CdmerTask]:
    if tasks is not None:
        return sorted({get_task(t) for t in tasks}, key=lambda t: t.exp)
    if all_tasks:
        return list(TASKS)
    present = {get_task(t) for t in results["task"].unique()}
    return sorted(present, key=lambda t: t.exp)


def cdmer_scores(
    results: pd.DataFrame,
    *,
    tasks: Iterable | None = None,
    all_tasks: bool = False,
    averages: bool = True,
    protocol: str | None = "cdmer",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric mean-F1 and accuracy tables.

    Parameters
    ----------
    results : DataFrame
        Results rows (:meth:`merkit.store.ResultStore.results` or the return of
        :func:`merkit.protocols.runner.run_cdmer`).
    tasks : iterable, optional
        Task columns to show (default: the tasks present in ``results``).
    all_tasks : bool
        Show all 12 task columns, NaN where there is no result.
    averages : bool
        Add ``TYPE-I`` / ``TYPE-II`` columns for the types with a shown task.
    protocol : str or None
        Keep only rows of this protocol (None: all rows).

    Returns
    -------
    mean_f1, accuracy : DataFrame
        Index (method, selection, params) with constant levels dropped (method is
        always kept); columns ``Exp.n`` then the averages. mean-F1 in 0..1, accuracy in %.
    """
    if protocol is not None and "protocol" in results.columns:
        results = results[results["protocol"] == protocol]
    if results.empty:
        raise ValueError(f"no results rows to tabulate (protocol {protocol!r})")
    df = results.copy()
    if "data" in df.columns:  # results coded in MATLAB's class order are rows of their own
        order = [class_order_of(d) for d in df["data"].fillna("").astype(str)]
        df["method"] = [m if o == "sorted" else f"{m} ({o})"
                        for m, o in zip(df["method"].astype(str), order, strict=True)]  # fmt: skip
    for c in _ROW_LEVELS:
        if c not in df.columns:
            df[c] = "none" if c == "selection" else ("{}" if c == "params" else "")
    cols = _task_columns(df, all_tasks, tasks)
    df["_task"] = [get_task(t).name for t in df["task"]]
    grouped = df.groupby([*_ROW_LEVELS, "_task"], sort=False)[["mean_f1", "accuracy"]].mean()
    n_seeds = df.groupby([*_ROW_LEVELS, "_task"], sort=False).size()
    if (n_seeds > 1).any():
        log.info("averaging over seeds for %d cells", int((n_seeds > 1).sum()))
    names = [t.name for t in cols]
    out = []
    for metric in ("mean_f1", "accuracy"):
        wide = grouped[metric].unstack("_task").reindex(columns=names)
        if averages:
            for typ in TYPES:
                of_type = [t.name for t in cols if t.type == typ]
                if of_type:
                    # mean over the shown tasks of this type; NaN if a row lacks one
                    wide[typ] = wide[of_type].mean(axis=1, skipna=False)
        out.append(wide)
    f1, acc = out
    order = row_order(f1.index)
    f1, acc = f1.loc[order], acc.loc[order]
    drop = [lvl for lvl in ("selection", "params") if f1.index.get_level_values(lvl).nunique() == 1]
    if drop:
        f1 = f1.droplevel(drop)
        acc = acc.droplevel(drop)
    f1.columns.name = acc.columns.name = None
    return f1, acc


def row_order(index: pd.MultiIndex) -> list:
    """Methods in order of first appearance ('svm' first), then selection, params."""
    methods = list(dict.fromkeys(index.get_level_values("method")))
    if "svm" in methods:
        methods.remove("svm")
        methods.insert(0, "svm")
    rank = {m: i for i, m in enumerate(methods)}
    return sorted(index, key=lambda k: (rank[k[0]], str(k[1]) != "none", str(k[1]), str(k[2])))


def cdmer_table(
    results: pd.DataFrame,
    *,
    tasks: Iterable | None = None,
    all_tasks: bool = False,
    averages: bool = True,
    bold_best: bool = False,
    protocol: str | None = "cdmer",
    f1_digits: int = 4,
    acc_digits: int = 2,
) -> pd.DataFrame:
    """Paper-format table: cells ``"0.5367 / 53.08"`` (mean-F1 / accuracy %).

    Parameters
    ----------
    results, tasks, all_tasks, averages, protocol
        As in :func:`cdmer_scores`.
    bold_best : bool
        Wrap the best mean-F1 and the best accuracy of each column in ``**..**``
        (each number separately; ties are all marked).
    f1_digits, acc_digits : int
        Decimals of mean-F1 and accuracy.

    Returns
    -------
    DataFrame of str
        Same index and columns as :func:`cdmer_scores`; ``"-"`` where no result.
    """
    f1, acc = cdmer_scores(
        results, tasks=tasks, all_tasks=all_tasks, averages=averages, protocol=protocol
    )
    f1r = f1.round(f1_digits)
    accr = acc.round(acc_digits)
    best_f1 = f1r.max(axis=0)
    best_acc = accr.max(axis=0)
    data = {}
    for col in f1.columns:
        column = []
        for a, b in zip(f1r[col].to_numpy(), accr[col].to_numpy(), strict=True):
            if np.isnan(a) or np.isnan(b):
                column.append(_MISSING)
                continue
            sa, sb = f"{a:.{f1_digits}f}", f"{b:.{acc_digits}f}"
            if bold_best and len(f1) > 1:
                if a == best_f1[col]:
                    sa = f"**{sa}**"
                if b == best_acc[col]:
                    sb = f"**{sb}**"
            column.append(f"{sa} / {sb}")
        data[col] = column
    return pd.DataFrame(data, index=f1.index, columns=list(f1.columns), dtype=object)


def prefix_methods_with_features(results: pd.DataFrame) -> pd.DataFrame:
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


def cdmer_terminal_table(results: pd.DataFrame) -> pd.DataFrame:
    """:func:`cdmer_table` (best cells bold) for a terminal: with more than four columns
    the tasks become the rows (``"Exp.n S->T"``), so the table fits the width."""
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
    return table


#: how oracle rows are labelled in selection tables, and the note explaining it
ORACLE_LABEL = "oracle*"
ORACLE_NOTE = "oracle*: best grid point scored with target labels (the papers' protocol)"
#: the footnote of :func:`selection_table` (``table.attrs["note"]``): what ``(x)`` is
SELECTION_NOTE = (
    ORACLE_NOTE + "; (x) = oracle mean-F1 minus this row's mean-F1 (positive: how much the "
    "oracle overstates what a label-free pick gets)"
)


def selection_scores(
    results: pd.DataFrame,
    *,
    tasks: Iterable | None = None,
    all_tasks: bool = False,
    averages: bool = True,
    protocol: str | None = "cdmer",
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Numeric oracle-vs-label-free tables from selection rows.

    Parameters
    ----------
    results : DataFrame
        Results rows; only those with ``selection != "none"`` are used (the rows
        :func:`merkit.protocols.runner.run_grid` writes: ``oracle``, one per criterion,
        ``default``). Their params differ per task, so rows are (method, selection).
    tasks, all_tasks, averages, protocol
        As in :func:`cdmer_scores`.

    Returns
    -------
    mean_f1, accuracy, gap : DataFrame
        Index (method, selection), selections in the order oracle, the criteria (as
        first seen), default; ``gap`` = oracle mean-F1 minus the row's mean-F1 (0 on the
        oracle row, NaN where the method has no oracle row).
    """
    if "selection" not in results.columns:
        raise ValueError("results have no 'selection' column; run a grid (run_grid) first")
    df = results[results["selection"].astype(str) != "none"].copy()
    if df.empty:
        raise ValueError(
            "no selection rows (oracle / criterion / default) among the results; "
            "run a grid (merkit.protocols.runner.run_grid) first"
        )
    df["params"] = "{}"
    f1, acc = cdmer_scores(
        df, tasks=tasks, all_tasks=all_tasks, averages=averages, protocol=protocol
    )
    if not isinstance(f1.index, pd.MultiIndex):  # one selection only: keep the level
        sel = df["selection"].astype(str).iloc[0]
        idx = pd.MultiIndex.from_tuples([(m, sel) for m in f1.index], names=["method", "selection"])
        f1.index = acc.index = idx
    seen = list(dict.fromkeys(df["selection"].astype(str)))
    rank = {s: i for i, s in enumerate(["oracle", *[s for s in seen if s not in ("oracle",
            "default")], "default"])}  # fmt: skip
    methods = list(dict.fromkeys(f1.index.get_level_values("method")))
    order = sorted(f1.index, key=lambda k: (methods.index(k[0]), rank.get(k[1], len(rank))))
    f1, acc = f1.loc[order], acc.loc[order]
    gap = pd.DataFrame(np.nan, index=f1.index, columns=f1.columns)
    for m in methods:
        if (m, "oracle") in f1.index:
            gap.loc[m] = (f1.loc[(m, "oracle")] - f1.loc[m]).to_numpy()
    return f1, acc, gap


#: footnote of the across-method tables (``--select auto``)
AUTO_NOTE = (
    "label-free choice of method and parameters over every method's grid points: the "
    "point with the best criterion value; vote:<criterion> = majority vote (ties: smallest "
    "label) of each method's criterion-best point; family:<criterion> = class-probability "
    "average of each method family's criterion-best point (reweighting, subspace, "
    "regenerator, stm); mean:<criterion>:<k> = class-probability average of the k "
    "criterion-best points of any method; agreement = macro-F1 against the consensus vote "
    "of all points (each method weighs 1); snd_guarded = snd among non-collapsed points; "
    "gap = mean-F1 minus the oracle's (best point of any method scored with target labels)"
)


def auto_selection_tables(choices: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The tables of an across-method choice (rows of
    :func:`merkit.adapt.selection.choose_across_methods` with ``task``, ``seed`` and
    ``gap`` columns): per task the choice of each selection next to the oracle, and where
    each selection lands against the oracle over all tasks (mean mean-F1, mean and worst
    gap, tasks where it reaches the oracle's mean-F1)."""
    if choices.empty:
        return []
    per = choices.set_index(["task", "seed", "selection"])[["method", "params", "mean_f1", "gap"]]
    per.attrs["note"] = AUTO_NOTE
    g = choices.groupby("selection", sort=False)
    summary = pd.DataFrame({
        "mean_f1": g["mean_f1"].mean(),
        "mean gap": g["gap"].mean(),
        "worst gap": g["gap"].min(),
        "at oracle": g["gap"].apply(lambda v: f"{int((v >= -1e-9).sum())}/{len(v)}"),
    })  # fmt: skip
    summary.index.name = "selection"
    summary.attrs["note"] = AUTO_NOTE
    return [
        ("Label-free choice of method and parameters per task (vs the oracle)", per),
        ("Label-free choices against the oracle, all tasks and seeds", summary),
    ]


def selection_table(
    results: pd.DataFrame,
    *,
    tasks: Iterable | None = None,
    all_tasks: bool = False,
    averages: bool = True,
    protocol: str | None = "cdmer",
    f1_digits: int = 4,
    acc_digits: int = 2,
) -> pd.DataFrame:
    """Per method, the oracle row and every label-free row side by side, with the gap.

    Cells are ``"mean-F1 / accuracy"``; non-oracle cells end with ``(gap)``, the oracle
    mean-F1 minus the row's (positive = the optimism of the oracle). Oracle rows are
    labelled :data:`ORACLE_LABEL`; ``table.attrs["note"]`` (:data:`SELECTION_NOTE`) explains
    both. Columns: tasks then TYPE averages (see :func:`cdmer_scores`).
    """
    f1, acc, gap = selection_scores(
        results, tasks=tasks, all_tasks=all_tasks, averages=averages, protocol=protocol
    )
    data = {}
    for col in f1.columns:
        cells = []
        for key, a, b, g in zip(f1.index, f1[col], acc[col], gap[col], strict=True):
            if np.isnan(a) or np.isnan(b):
                cells.append(_MISSING)
                continue
            cell = f"{a:.{f1_digits}f} / {b:.{acc_digits}f}"
            if key[1] != "oracle" and not np.isnan(g):
                cell += f" ({g:+.{f1_digits}f})"
            cells.append(cell)
        data[col] = cells
    index = pd.MultiIndex.from_tuples(
        [(m, ORACLE_LABEL if s == "oracle" else s) for m, s in f1.index],
        names=["method", "selection"],
    )
    out = pd.DataFrame(data, index=index, columns=list(f1.columns), dtype=object)
    out.attrs["note"] = SELECTION_NOTE
    return out


def _type_tables(results: pd.DataFrame, selection: str) -> list[tuple[str, pd.DataFrame]]:
    """Tables 3 (TYPE-I) and 4 (TYPE-II) of the rows of one selection (those present)."""
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
    (:func:`selection_table`). Titles name the protocol; rows of several feature sources
    are told apart (:func:`prefix_methods_with_features`)."""
    res = prefix_methods_with_features(results)
    out = [(f"Oracle protocol (best grid point scored with target labels): {t}", df)
           for t, df in _type_tables(res, "oracle")]  # fmt: skip
    out += [(f"Label-free selection ({criterion}, no target label): {t}", df)
            for t, df in _type_tables(res, criterion)]  # fmt: skip
    sel = res[res["selection"].astype(str) != "none"]
    if len(sel):
        out.append(("Oracle vs label-free selection per method", selection_table(sel)))
    return out


def _index_labels(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    if isinstance(df.index, pd.MultiIndex):
        names = [str(n) if n is not None else "" for n in df.index.names]
        rows = [[str(v) for v in k] for k in df.index]
    else:
        names = [str(df.index.name) if df.index.name is not None else ""]
        rows = [[str(k)] for k in df.index]
    return names, rows


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _cell(value, digits: int) -> str:
    """A cell's text: floats with ``digits`` decimals (``0.5000`` beside ``0.2667``, never
    ``0.5``), NaN / None empty, anything else ``str``."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(df: pd.DataFrame, *, index: bool = True, digits: int = 4) -> str:
    """A GitHub pipe table of a DataFrame (no tabulate needed); numbers right-aligned.

    Float cells get ``digits`` decimals (the same for every row); string cells (such as
    :func:`cdmer_table`'s) are shown as they are.
    """
    header = [str(c) for c in df.columns]
    body = [[_cell(v, digits) for v in row] for row in df.itertuples(index=False)]
    align = ["right" if pd.api.types.is_numeric_dtype(df[c]) else "left" for c in df.columns]
    for j in range(len(header)):
        if body and all(_looks_numeric(r[j]) or r[j] in ("", _MISSING) for r in body):
            align[j] = "right"
    if index:
        names, labels = _index_labels(df)
        header = names + header
        body = [lab + row for lab, row in zip(labels, body, strict=True)]
        align = ["left"] * len(names) + align
    header = [_md_escape(h) for h in header]
    body = [[_md_escape(c) for c in row] for row in body]
    widths = [max([len(header[j]), 3, *(len(r[j]) for r in body)]) for j in range(len(header))]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if a == "right" else c.ljust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    sep = (
        "| "
        + " | ".join(
            ("-" * (w - 1) + ":") if a == "right" else "-" * w
            for w, a in zip(widths, align, strict=True)
        )
        + " |"
    )
    return "\n".join([line(header), sep, *(line(r) for r in body)]) + "\n"


_NUM = re.compile(r"^[\s*]*[-+]?\d+(\.\d+)?[\s*]*(/[\s*]*[-+]?\d+(\.\d+)?[\s*]*)?$")


def _looks_numeric(s: str) -> bool:
    return bool(_NUM.match(s))


def to_rich(
    df: pd.DataFrame, *, title: str | None = None, index: bool = True, digits: int = 4
) -> Table:
    """A :class:`rich.table.Table` of a DataFrame; ``**x**`` cells are shown bold.

    Float cells get ``digits`` decimals. The title, headers and cells are plain text, never
    rich markup: names and paths with square brackets are shown whole.
    """
    table = Table(title=None if title is None else Text(title), show_lines=False)
    names, labels = _index_labels(df)
    if index:
        for n in names:
            table.add_column(Text(n), style="bold cyan", no_wrap=True)
    for c in df.columns:
        table.add_column(Text(str(c)), justify="right", no_wrap=True)
    for lab, row in zip(labels, df.itertuples(index=False), strict=True):
        cells = [Text(x) for x in lab] if index else []
        for v in row:
            cells.append(_bold_text(_cell(v, digits)))
        table.add_row(*cells)
    return table


def _bold_text(s: str) -> Text:
    text = Text()
    for i, part in enumerate(s.split("**")):
        text.append(part, style="bold" if i % 2 else "")
    return text
