"""A self-contained HTML report (and a Markdown twin) of a results store.

:func:`build_report` reads a results folder (:class:`merkit.results.store.ResultStore`:
``results.csv`` + ``predictions.csv``; optionally ``grid.csv`` of
:func:`merkit.protocols.runner.run_grid` and ``tgsr_blocks.json``) and writes

* ``report.html``: one file, every figure embedded as a base64 PNG;
* ``report.md``: the same tables, figures saved beside it as PNG files
  (``report_files/*.png``) and linked relatively.

Sections:

1. CDMER tables (protocol ``"cdmer"``): the paper format "mean-F1 / accuracy" per task
   with TYPE-I / TYPE-II averages, best of each column in bold
   (:func:`merkit.results.tables.cdmer_table`). With a grid run, rows are the
   selections (oracle, the label-free criteria, default) of the grid methods, and the
   fixed-parameter rows of methods without a grid; the individual grid points are
   summarised by the sensitivity curves instead. When selections other than ``"none"``
   exist, the oracle vs label-free table (:func:`merkit.results.tables.selection_table`)
   follows. Rows of other protocols get a plain long table of their stored metrics.
2. Bootstrap 95% confidence intervals of mean-F1 per (row, task), "mean-F1 [low, high]",
   from the stored predictions (:func:`merkit.results.metrics.bootstrap_ci`, percentile
   bootstrap over test clips). Several seeds of a row are pooled and resampled by test
   sample (cluster bootstrap: a clip is drawn with all its seeds' predictions), so the
   estimate is the mean-F1 of the pooled predictions.
3. Confusion matrices of every row and task (pooled predictions, colour = row-normalised
   rate, text = count and rate).
4. Hyper-parameter sensitivity from ``grid.csv``: mean-F1 (averaged over seeds) against
   each swept parameter with the other parameters at the oracle point of that task (the
   params of the stored oracle row; the best grid point when there is none or seeds
   disagree), log x-axis for multiplicative grids, parameters under the papers' names.
5. TGSR salient regions from ``tgsr_blocks.json``, if present.

``tgsr_blocks.json`` (written by the user or a future runner version): a JSON object
mapping a task (``"Exp.1"``, ``"C->H"``... anything :func:`merkit.protocols.cdmer.get_task`
reads, or any label) to the list of TGSR block ids selected on it
(``TransferGroupSparseRegression.selected_blocks_``, ids of
:class:`merkit.features.grid.Grid` ``(1, 2, 4, 8)``: 0..84). Optionally
``{"levels": [1, 2, 4, 8], "tasks": {task: [ids...]}}`` for another grid.

The report computes no metric itself: tables show the stored scores, intervals and
confusion matrices come from :mod:`merkit.results.metrics` on ``predictions.csv``.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.protocols.cdmer import get_task
from merkit.results.metrics import bootstrap_ci
from merkit.results.store import ResultStore, result_keys
from merkit.results.tables import cdmer_table, row_order, selection_table, to_markdown

log = logging.getLogger(__name__)

__all__ = ["TGSR_BLOCKS_FILE", "build_report", "read_tgsr_blocks"]

#: optional file of a results folder: selected TGSR blocks per task
TGSR_BLOCKS_FILE = "tgsr_blocks.json"

_CDMER = "cdmer"


@dataclass
class _Doc:
    """Report content, rendered to HTML and Markdown."""

    parts: list[tuple] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(("h", level, text))

    def para(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, df: pd.DataFrame, note: str | None = None) -> None:
        self.parts.append(("table", df, note))

    def image(self, name: str, png: bytes, caption: str) -> None:
        self.images.append((name, png))
        self.parts.append(("img", name, png, caption))


# ---------------------------------------------------------------- rendering
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _cell_html(value) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    return _BOLD.sub(r"<b>\1</b>", html.escape(text))


def _table_html(df: pd.DataFrame) -> str:
    if isinstance(df.index, pd.MultiIndex):
        names = [str(n or "") for n in df.index.names]
        labels = [[str(v) for v in k] for k in df.index]
    else:
        names = [str(df.index.name or "")]
        labels = [[str(k)] for k in df.index]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    head += "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for lab, values in zip(labels, df.itertuples(index=False), strict=True):
        cells = "".join(f'<th class="row">{html.escape(v)}</th>' for v in lab)
        cells += "".join(f"<td>{_cell_html(v)}</td>" for v in values)
        rows.append(f"<tr>{cells}</tr>")
    return (
        f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:3px 7px;white-space:nowrap}
td{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f0f0f0}th.row{text-align:left;background:#fafafa;font-weight:normal}
p.note{font-size:.85em;color:#555}figure{margin:1em 0}
figcaption{font-size:.85em;color:#555}img{max-width:100%}
"""


def _render_html(doc: _Doc, title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for part in doc.parts:
        kind = part[0]
        if kind == "h":
            out.append(f"<h{part[1]}>{html.escape(part[2])}</h{part[1]}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(part[1])}</p>")
        elif kind == "table":
            out.append(_table_html(part[1]))
            if part[2]:
                out.append(f'<p class="note">{html.escape(part[2])}</p>')
        elif kind == "img":
            data = base64.b64encode(part[2]).decode("ascii")
            cap = html.escape(part[3])
            out.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{cap}</figcaption></figure>")  # fmt: skip
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _render_md(doc: _Doc, title: str, image_dir: str) -> str:
    out = [f"# {title}", ""]
    for part in doc.parts:
        kind = part[0]
        if kind == "h":
            out += ["#" * part[1] + " " + part[2], ""]
        elif kind == "p":
            out += [part[1], ""]
        elif kind == "table":
            out.append(to_markdown(part[1]))
            if part[2]:
                out += [f"_{part[2]}_", ""]
        elif kind == "img":
            out += [f"![{part[3]}]({image_dir}/{part[1]})", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- data
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def _task_name(task: str) -> str:
    try:
        return get_task(task).name
    except (KeyError, ValueError):
        return str(task)


def _table_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Rows tabulated: selection rows, and fixed-params rows of methods without a grid.

    Grid points (``selection == "none"``) of a (protocol, task, method) that also has
    selection rows are left out (they are the sensitivity curves); selection rows get
    ``params = "{}"`` since their chosen params differ per task.
    """
    sel = results["selection"].astype(str)
    has_sel = set(
        zip(results.loc[sel != "none", "protocol"], results.loc[sel != "none", "task"],
            results.loc[sel != "none", "method"], strict=True)
    )  # fmt: skip
    keep = [
        s != "none" or (p, t, m) not in has_sel
        for s, p, t, m in zip(sel, results["protocol"], results["task"], results["method"],
                              strict=True)
    ]  # fmt: skip
    rows = results[keep].copy()
    rows["params"] = np.where(rows["selection"].astype(str) != "none", "{}", rows["params"])
    return rows


def _unit_predictions(results: pd.DataFrame, preds: pd.DataFrame) -> dict:
    """Row label ``(protocol, task name, method, selection, params)`` -> prediction rows."""
    tabulated = _table_rows(results)
    if preds.empty or tabulated.empty:
        return {}
    positions: dict[tuple, np.ndarray] = {}
    for key, idx in pd.Series(range(len(preds))).groupby(pd.Series(result_keys(preds))):
        positions[key] = idx.to_numpy()
    out: dict[tuple, list[tuple[np.ndarray, int]]] = {}
    full_keys = result_keys(results.loc[tabulated.index])
    for (_, row), key in zip(tabulated.iterrows(), full_keys, strict=True):
        label = (str(row["protocol"]), _task_name(row["task"]), str(row["method"]),
                 str(row["selection"]), str(row["params"]))  # fmt: skip
        if key not in positions:
            log.warning("no stored predictions for results row %s", key)
            continue
        out.setdefault(label, []).append((positions[key], str(row.get("labels", ""))))
    return {
        label: (preds.iloc[np.concatenate([p for p, _ in parts])], len(parts), parts[0][1])
        for label, parts in out.items()
    }


def _intervals(units: dict, n_boot: int, seed: int) -> dict[tuple, tuple[float, float, float]]:
    cis = {}
    for label, (p, n_units, _) in units.items():
        groups = p["sample"].astype(str).to_numpy() if n_units > 1 else None
        ci = bootstrap_ci(p["y_true"].to_numpy(), p["y_pred"].to_numpy(), "mean_f1",
                          n_boot=n_boot, seed=seed, groups=groups)  # fmt: skip
        cis[label] = (ci.estimate, ci.low, ci.high)
    return cis


def _ci_table(cis: dict, protocol: str) -> pd.DataFrame | None:
    """Wide "mean-F1 [low, high]" table of one protocol (rows as :func:`cdmer_table`)."""
    cells = {k[1:]: v for k, v in cis.items() if k[0] == protocol}
    if not cells:
        return None
    tasks = list(dict.fromkeys(t for t, *_ in cells))
    if protocol == _CDMER:
        tasks.sort(key=lambda t: get_task(t).exp)
    rows = list(dict.fromkeys(tuple(k[1:]) for k in cells))
    index = pd.MultiIndex.from_tuples(rows, names=["method", "selection", "params"])
    index = pd.MultiIndex.from_tuples(row_order(index), names=index.names)
    df = pd.DataFrame(index=index, columns=tasks, dtype=object)
    for (task, *row), (est, lo, hi) in cells.items():
        df.loc[tuple(row), task] = f"{est:.4f} [{lo:.4f}, {hi:.4f}]"
    df = df.fillna("-")
    drop = [lvl for lvl in ("selection", "params") if index.get_level_values(lvl).nunique() == 1]
    if drop:
        df = df.droplevel(drop)
    return df


def _other_protocol_table(results: pd.DataFrame) -> pd.DataFrame:
    rows = _table_rows(results)
    g = rows.groupby(["protocol", "task", "method", "selection", "params"], sort=False)
    out = g[["mean_f1", "uar", "accuracy"]].mean()
    out["seeds"] = g.size()
    return out.round({"mean_f1": 4, "uar": 4, "accuracy": 2})


def _oracle_params(results: pd.DataFrame, grid: pd.DataFrame, method: str, task: str) -> dict:
    o = results[(results["method"] == method) & (results["task"] == task)
                & (results["selection"].astype(str) == "oracle")]  # fmt: skip
    if not o.empty and o["params"].nunique() == 1:
        return json.loads(o["params"].iloc[0])
    g = grid[(grid["method"] == method) & (grid["task"] == task)]
    mean = g.groupby("params", sort=False)["mean_f1"].mean()
    return json.loads(mean.idxmax())


def _sensitivity(results: pd.DataFrame, grid: pd.DataFrame) -> list[tuple[str, dict, dict]]:
    """Per method: ``(method, {param: {task: (xs, ys)}}, {param: {task: oracle x}})``."""
    from merkit.protocols.runner import published_names

    if grid.empty:
        return []
    if "protocol" in grid.columns:
        grid = grid[grid["protocol"].astype(str) == _CDMER]
    out = []
    for method, gm in grid.groupby("method", sort=False):
        curves: dict[str, dict] = {}
        marks: dict[str, dict] = {}
        for task, gt in gm.groupby("task", sort=False):
            mean = gt.groupby("params", sort=False)["mean_f1"].mean()
            points = [(json.loads(p), f) for p, f in mean.items()]
            names = sorted({k for p, _ in points for k in p})
            swept = [
                k
                for k in names
                if len({json.dumps(p.get(k), sort_keys=True) for p, _ in points}) > 1
            ]
            if not swept:
                continue
            best = _oracle_params(results, gt, method, task)
            label = _task_name(task)
            for k in swept:
                xs, ys = [], []
                for p, f in points:
                    if all(p.get(o) == best.get(o) for o in swept if o != k):
                        xs.append(p.get(k))
                        ys.append(f)
                if len(xs) < 2:
                    continue
                name = next(iter(published_names(str(method), {k: 0})))
                curves.setdefault(name, {})[label] = (xs, ys)
                marks.setdefault(name, {})[label] = best.get(k)
        if curves:
            out.append((str(method), curves, marks))
    return out


def read_tgsr_blocks(path: str | Path) -> tuple[tuple[int, ...], dict[str, list[int]]]:
    """Grid levels and ``{task: selected block ids}`` of a ``tgsr_blocks.json`` file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    levels: tuple[int, ...] = (1, 2, 4, 8)
    if isinstance(data, dict) and "tasks" in data:
        levels = tuple(int(v) for v in data.get("levels", levels))
        data = data["tasks"]
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object {{task: [block ids...]}}")
    try:
        blocks = {str(t): [int(b) for b in v] for t, v in data.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: block ids must be integers ({err})") from err
    return levels, blocks


# ---------------------------------------------------------------- report
def build_report(
    results_dir: str | Path,
    out_html: str | Path | None = None,
    out_md: str | Path | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write the HTML and Markdown report of a results folder (module docstring).

    Parameters
    ----------
    results_dir : str or Path
        Folder holding ``results.csv`` and ``predictions.csv`` (and optionally
        ``grid.csv``, ``tgsr_blocks.json``).
    out_html, out_md : str or Path, optional
        Output files (default ``results_dir/report.html`` and ``results_dir/report.md``);
        the Markdown figures go to ``<md stem>_files/`` beside the Markdown file.
    n_boot : int
        Bootstrap resamples per confidence interval.
    seed : int
        Seed of the bootstrap (equal seeds give equal intervals).

    Returns
    -------
    html_path, md_path : Path
    """
    from merkit.protocols.runner import read_grid
    from merkit.results import plots

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise NotADirectoryError(f"{results_dir}: results folder not found")
    store = ResultStore(results_dir)
    if not store.results_path.is_file():
        raise FileNotFoundError(f"{store.results_path}: no results.csv in the results folder")
    results = store.results()
    if results.empty:
        raise ValueError(f"{store.results_path}: no results rows to report")
    preds = store.predictions()
    html_path = Path(out_html) if out_html is not None else results_dir / "report.html"
    md_path = Path(out_md) if out_md is not None else results_dir / "report.md"

    doc = _Doc()
    protocols = list(dict.fromkeys(results["protocol"].astype(str)))
    n_pred = len(preds)
    doc.para(
        f"Results folder {results_dir.resolve()}: {len(results)} results rows "
        f"({', '.join(protocols)}), {n_pred} stored predictions; generated "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}."
    )
    tabulated = _table_rows(results)

    # ---- tables
    if _CDMER in protocols:
        cd = tabulated[tabulated["protocol"].astype(str) == _CDMER]
        doc.heading("CDMER results: mean-F1 / accuracy (%)")
        doc.table(cdmer_table(cd, bold_best=True),
                  "best mean-F1 and best accuracy of each column in bold; TYPE-I / TYPE-II = "
                  "mean over the shown tasks of that type")  # fmt: skip
        cdr = results[results["protocol"].astype(str) == _CDMER]
        if (cdr["selection"].astype(str) != "none").any():
            doc.heading("Oracle vs label-free hyper-parameter selection")
            st = selection_table(cdr)
            doc.table(st, st.attrs.get("note"))
    others = [p for p in protocols if p != _CDMER]
    if others:
        doc.heading("Other protocols: stored scores")
        doc.table(
            _other_protocol_table(results[results["protocol"].astype(str).isin(others)]),
            "mean over seeds of the stored mean-F1, UAR (0..1) and accuracy (%)",
        )

    # ---- confidence intervals
    units = _unit_predictions(results, preds)
    cis = _intervals(units, n_boot, seed)
    if cis:
        doc.heading("Bootstrap 95% confidence intervals of mean-F1")
        for p in protocols:
            ct = _ci_table(cis, p)
            if ct is not None:
                if len(protocols) > 1:
                    doc.heading(f"protocol {p}", 3)
                doc.table(ct, f"mean-F1 [low, high]: percentile bootstrap over test clips, "
                              f"{n_boot} resamples, seed {seed}; several seeds pooled and "
                              "resampled by clip")  # fmt: skip

    # ---- confusion matrices
    if units:
        doc.heading("Confusion matrices")
        doc.para("Per table row and task, pooled predictions; colour = share of the true "
                 "class (row-normalised), text = count and share.")  # fmt: skip
        rows: dict[tuple, list] = {}
        for (proto, task, method, selection, params), (p, _, labels) in units.items():
            rows.setdefault((proto, method, selection, params), []).append((task, p, labels))
        for i, ((proto, method, selection, params), panels) in enumerate(rows.items()):
            if proto == _CDMER:
                panels.sort(key=lambda x: get_task(x[0]).exp)
            name = " ".join(v for v in (method, "" if selection == "none" else selection,
                                        "" if params == "{}" else params) if v)  # fmt: skip
            title = name if len(protocols) == 1 else f"{proto}: {name}"
            label_sets = [json.loads(lab) for _, _, lab in panels if lab]
            fig = plots.confusion_grid(
                [
                    (
                        f"{t} {get_task(t).code}" if proto == _CDMER else t,
                        p["y_true"].to_numpy(),
                        p["y_pred"].to_numpy(),
                    )
                    for t, p, _ in panels
                ],
                labels=label_sets[0] if label_sets and len(label_sets) == len(panels)
                and all(s == label_sets[0] for s in label_sets) else None,
                title=title, ncols=6,
            )  # fmt: skip
            doc.image(
                f"confusion_{i:02d}_{_slug(title)}.png",
                plots.figure_png(fig),
                f"confusion matrices: {title}",
            )

    # ---- sensitivity
    grid = read_grid(results_dir)
    sens = _sensitivity(results, grid) if not grid.empty else []
    if sens:
        doc.heading("Hyper-parameter sensitivity (grid.csv)")
        doc.para("Mean-F1 (mean over seeds) against each swept parameter, the others held "
                 "at the task's oracle point (star); log axis for multiplicative grids. "
                 "The oracle point is chosen with target labels.")  # fmt: skip
        for method, curves, marks in sens:
            fig = plots.sensitivity_figure(curves, title=method, oracle=marks)
            doc.image(
                f"sensitivity_{_slug(method)}.png", plots.figure_png(fig), f"sensitivity: {method}"
            )

    # ---- TGSR salient regions
    blocks_path = results_dir / TGSR_BLOCKS_FILE
    if blocks_path.is_file():
        levels, blocks = read_tgsr_blocks(blocks_path)
        doc.heading("TGSR salient facial regions")
        doc.para(f"Blocks with a non-zero coefficient group per task ({TGSR_BLOCKS_FILE}), "
                 "drawn over a neutral synthetic face.")  # fmt: skip
        face = plots.neutral_face()
        for task, ids in blocks.items():
            label = _task_name(task)
            fig = plots.salient_map(ids, levels=levels, image=face, title=label)
            doc.image(
                f"tgsr_{_slug(label)}.png", plots.figure_png(fig), f"TGSR selected blocks: {label}"
            )

    title = f"merkit report: {results_dir.name}"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(_render_html(doc, title), encoding="utf-8")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    image_dir = md_path.parent / f"{md_path.stem}_files"
    image_dir.mkdir(exist_ok=True)
    for name, png in doc.images:
        (image_dir / name).write_bytes(png)
    md_path.write_text(_render_md(doc, title, image_dir.name), encoding="utf-8")
    log.info("report: %s, %s (%d figures)", html_path, md_path, len(doc.images))
    return html_path, md_path
