"""A self-contained HTML report (and a Markdown twin) of a results store.

:func:`build_report` reads a results folder through the readers of
:mod:`merkit.store` (``results.csv`` + ``predictions.csv`` of
:class:`~merkit.store.ResultStore`; optionally ``grid.csv`` of a grid run,
``tgsr_blocks.json``, and of a deep training run ``history.csv`` and ``embeddings/*.npz``)
and writes

* ``report.html``: one file, every figure embedded as a base64 PNG;
* ``report.md``: the same tables, figures saved beside it as PNG files
  (``report_files/*.png``) and linked relatively.

Sections:

1. CDMER tables (protocol ``"cdmer"``): the paper format "mean-F1 / accuracy" per task
   with TYPE-I / TYPE-II averages, best of each column in bold
   (:func:`merkit.results.tables.cdmer_table`), split into a TYPE-I table (Exp.1-6)
   and a TYPE-II table (Exp.7-12) so that each fits a page; a summary of the two
   averages comes first. With a grid run, a grid method has two rows: ``oracle*`` (best
   grid point scored with target labels, the papers' protocol) and the pick of one
   label-free ``criterion``; methods without a grid keep their fixed-parameter rows, and
   the individual grid points are summarised by the sensitivity curves instead. The
   oracle vs label-free table (:func:`merkit.results.tables.selection_table`, every
   stored criterion and the default point, with the gap to the oracle) follows. Other
   protocols (e.g. ``"cde"``) get one "mean-F1 / UAR" table each, tasks as columns.
   Parameters that differ between rows of a method label the rows; the constant ones
   are listed once under the table.
   A ``merkit cdmer --select auto`` run (``auto.csv``) adds the label-free choice of
   method and parameters across methods per task next to the oracle, and where each
   criterion and vote lands against the oracle over all tasks
   (:func:`merkit.results.tables.auto_selection_tables`).
2. Bootstrap 95% confidence intervals of mean-F1 per (row, task), "mean-F1 [low, high]",
   from the stored predictions (:func:`merkit.metrics.bootstrap_ci`, percentile
   bootstrap over test clips), as a forest plot and as tables. Several seeds of a row
   are pooled and resampled by test sample (cluster bootstrap: a clip is drawn with all
   its seeds' predictions), so the estimate is the mean-F1 of the pooled predictions.
3. Confusion matrices per row of the main table and task (pooled predictions, colour =
   row-normalised rate, text = count and rate), axes named by the stored ``classes`` of
   the results rows (else by the ``classes`` of the run's embedding files; class
   indices for older stores).
4. Hyper-parameter sensitivity from ``grid.csv``: mean-F1 (averaged over seeds) against
   each swept parameter with the other parameters at the oracle point of that task (the
   params of the stored oracle row; the best grid point when there is none or seeds
   disagree), log x-axis for multiplicative grids, parameters under the papers' names.
5. TGSR salient regions from ``tgsr_blocks.json``, if present, drawn over the synthetic
   neutral face or a given face frame.
6. Deep training runs: learning curves from ``history.csv`` (loss and training
   accuracy against epoch, a thin line per fold, the mean over folds thick, one row of
   panels per seed, one figure per (protocol, task, model)) and a seeded 2-D t-SNE of
   the learned features of every ``embeddings/*.npz`` (coloured by true class,
   misclassified clips ringed).

``tgsr_blocks.json`` (:func:`merkit.store.write_tgsr_blocks`, when TGSR runs: the oracle
point of a grid, else the best point; or by the user): a JSON object mapping a task
(``"Exp.1"``, ``"C->H"``... anything :func:`merkit.protocols.cdmer.get_task` reads, or any
label) to the list of TGSR block ids selected on it
(``TransferGroupSparseRegression.selected_blocks_``, ids of
:class:`merkit.features.layout.BlockLayout` ``(1, 2, 4, 8)``: 0..84). Optionally
``{"levels": [1, 2, 4, 8], "tasks": {task: [ids...]}}`` for other block levels
(:func:`merkit.store.read_tgsr_blocks`).

``history.csv``: columns ``protocol, task, method`` (the model), ``seed, fold, epoch``
(1-based), ``loss, accuracy`` (training), optionally ``lr, val_loss, val_accuracy``.
``embeddings/<protocol>__<task>__<model>__seed<seed>.npz``: arrays ``z`` (n, d)
features, ``y_true``, ``y_pred`` (n,) int, ``sample_id`` (n,) str, ``classes`` str.

The report computes no metric itself: tables show the stored scores, intervals and
confusion matrices come from :mod:`merkit.metrics` on ``predictions.csv``.
Before anything is rendered the two files are checked against each other: a file that is
not merkit's CSV, a score out of range (UF1 and UAR 0..1, accuracy 0..100 %), a results
row repeated, without ``n_test`` predictions, or whose predictions do not re-score to its
stored scores (a stale or edited file) is refused with a one-line ``ValueError`` naming
the file and the row.
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

from merkit._io import atomic_write_bytes, ensure_writable_dir
from merkit.adapt import published_names
from merkit.metrics import bootstrap_ci, score_all
from merkit.protocols.cdmer import TASKS, TYPES, get_task
from merkit.results import plots
from merkit.results.audit import SELECTIONS
from merkit.results.tables import (
    ORACLE_LABEL,
    auto_selection_tables,
    cdmer_table,
    selection_table,
    to_markdown,
)
from merkit.store import (
    AUDIT_FILE,
    EMBEDDINGS_DIR,
    HISTORY_FILE,
    PARTS_DIR,
    PREDICTION_COLUMNS,
    RESULT_COLUMNS,
    TGSR_BLOCKS_FILE,
    ResultStore,
    read_audit,
    read_auto_selection,
    read_embeddings,
    result_keys,
)

log = logging.getLogger(__name__)

__all__ = [
    "TSNE_MAX_POINTS",
    "build_report",
]

#: most points embedded by t-SNE per file (a seeded subset above it)
TSNE_MAX_POINTS = 2000

_CDMER = "cdmer"
_DOMAINS = "C = CASME II, H = SMIC-HS, V = SMIC-VIS, N = SMIC-NIR"


@dataclass
class _Doc:
    """Report content, rendered to HTML and Markdown."""

    parts: list[tuple] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(("h", level, text))

    def para(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(
        self, df: pd.DataFrame, note: str | None = None, subheads: dict | None = None
    ) -> None:
        """A table; ``subheads`` = a second header line per column (e.g. task code, n)."""
        self.parts.append(("table", df, note, subheads or {}))

    def image(self, name: str, png: bytes, caption: str) -> None:
        self.images.append((name, png))
        self.parts.append(("img", name, png, caption))


# ---------------------------------------------------------------- rendering
_BOLD = re.compile(r"\*\*(.+?)\*\*")
#: "0.5 [0.3, 0.7]" or "0.5 / 50.00 (+0.0100)": the bracket goes on a second line in HTML
_TRAILER = re.compile(r"^(.*\S) ((?:\[[^\[\]]*\])|(?:\([^()]*\)))$")


def _cell_html(value) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    m = _TRAILER.match(text)
    if m:
        main, sub = (_BOLD.sub(r"<b>\1</b>", html.escape(g)) for g in m.groups())
        return f'{main}<br><span class="sub">{sub}</span>'
    return _BOLD.sub(r"<b>\1</b>", html.escape(text))


def _sub_html(text: str) -> str:
    return html.escape(text).replace("-&gt;", "\u2192")


def _table_html(df: pd.DataFrame, subheads: dict) -> str:
    if isinstance(df.index, pd.MultiIndex):
        names = [str(n or "") for n in df.index.names]
        labels = [[str(v) for v in k] for k in df.index]
    else:
        names = [str(df.index.name or "")]
        labels = [[str(k)] for k in df.index]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    for c in df.columns:
        sub = subheads.get(c)
        extra = f'<br><span class="sub">{_sub_html(sub)}</span>' if sub else ""
        head += f"<th>{html.escape(str(c))}{extra}</th>"
    rows = []
    for lab, values in zip(labels, df.itertuples(index=False), strict=True):
        cells = "".join(f'<th class="row">{html.escape(v)}</th>' for v in lab)
        cells += "".join(f"<td>{_cell_html(v)}</td>" for v in values)
        rows.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="tbl"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table></div>"
    )


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1280px;padding:0 1.5em;color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em;margin-top:1.2em}
div.tbl{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.5em 0;font-size:.8em}
th,td{border:1px solid #ccc;padding:3px 6px;white-space:nowrap;vertical-align:top}
td{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f0f0f0;text-align:center}
th.row{text-align:left;background:#fafafa;font-weight:normal}
span.sub{font-size:.85em;color:#666;font-weight:normal}
p.note{font-size:.85em;color:#555;margin-top:.2em}figure{margin:1em 0}
figcaption{font-size:.85em;color:#555}img{max-width:100%}
nav ul{font-size:.9em;margin:.3em 0}
"""


def _anchor(text: str) -> str:
    return "s-" + _slug(text)


def _render_html(doc: _Doc, title: str) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    sections = [p[2] for p in doc.parts if p[0] == "h" and p[1] == 2]
    if len(sections) > 1:
        items = "".join(f'<li><a href="#{_anchor(s)}">{html.escape(s)}</a></li>' for s in sections)
        out.append(f"<nav><ul>{items}</ul></nav>")
    for part in doc.parts:
        kind = part[0]
        if kind == "h":
            ident = f' id="{_anchor(part[2])}"' if part[1] == 2 else ""
            out.append(f"<h{part[1]}{ident}>{html.escape(part[2])}</h{part[1]}>")
        elif kind == "p":
            out.append(f"<p>{html.escape(part[1])}</p>")
        elif kind == "table":
            out.append(_table_html(part[1], part[3]))
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
            df, note, subheads = part[1], part[2], part[3]
            if subheads:
                df = df.rename(columns={c: f"{c} ({subheads[c]})" for c in subheads})
            out.append(to_markdown(df))
            if note:
                out += [f"_{note}_", ""]
        elif kind == "img":
            out += [f"![{part[3]}]({image_dir}/{part[1]})", ""]
    return "\n".join(out)


# ---------------------------------------------------------------- data
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def _task_name(task: str, protocol: str = _CDMER) -> str:
    """``Exp.n`` of a CDMER task given by any name :func:`get_task` reads; others as is."""
    if protocol != _CDMER:
        return str(task)
    try:
        return get_task(task).name
    except (KeyError, ValueError):
        return str(task)


def _value_text(v) -> str:
    return json.dumps(v) if isinstance(v, (list, dict)) else str(v)


def _param_labels(results: pd.DataFrame) -> tuple[dict[tuple, str], dict[tuple, str]]:
    """Short row labels of fixed-parameter rows, and the settings common to a method.

    Returns
    -------
    labels : dict
        ``(protocol, method, params JSON) -> "k=v, ..."`` with only the parameters that
        differ between the rows of that (protocol, method) (``""`` when none differ).
    settings : dict
        ``(protocol, method) -> "k=v, ..."`` of the parameters equal in all its rows.
    """
    labels: dict[tuple, str] = {}
    settings: dict[tuple, str] = {}
    fixed = results[results["selection"].astype(str) == "none"]
    for (proto, method), g in fixed.groupby(["protocol", "method"], sort=False):
        texts = list(dict.fromkeys(g["params"].astype(str)))
        dicts = [json.loads(t) if t else {} for t in texts]
        keys = sorted({k for d in dicts for k in d})
        varying = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True)
                                           for d in dicts}) > 1]  # fmt: skip
        for t, d in zip(texts, dicts, strict=True):
            labels[(str(proto), str(method), t)] = ", ".join(
                f"{k}={_value_text(d[k])}" for k in varying if k in d
            )
        const = [k for k in keys if k not in varying]
        if const:
            settings[(str(proto), str(method))] = ", ".join(
                f"{k}={_value_text(dicts[0][k])}" for k in const
            )
    return labels, settings


def _criterion(results: pd.DataFrame, criterion: str | None) -> str | None:
    """The label-free selection shown beside the oracle: ``criterion`` if stored, else the
    first stored one (None without label-free rows)."""
    stored = [s for s in dict.fromkeys(results["selection"].astype(str))
              if s not in ("none", "oracle", "default")]  # fmt: skip
    if criterion in stored:
        return criterion
    return stored[0] if stored else None


def _table_rows(results: pd.DataFrame, shown: set[str] | None = None) -> pd.DataFrame:
    """Rows tabulated: selection rows, and fixed-params rows of methods without a grid.

    Grid points (``selection == "none"``) of a (protocol, task, method) that also has
    selection rows are left out (they are the sensitivity curves); selection rows get
    ``params = ""`` since their chosen params differ per task, fixed rows the short label
    of :func:`_param_labels`. ``shown``: the selections kept (default all).
    """
    if shown is not None:
        results = results[results["selection"].astype(str).isin(shown | {"none"})]
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
    labels, _ = _param_labels(rows)
    rows["params"] = [
        "" if s != "none" else labels[(str(p), str(m), str(pj))]
        for s, p, m, pj in zip(rows["selection"].astype(str), rows["protocol"], rows["method"],
                               rows["params"], strict=True)
    ]  # fmt: skip
    return rows


def _settings_note(results: pd.DataFrame, protocol: str) -> str | None:
    _, settings = _param_labels(results[results["protocol"].astype(str) == protocol])
    if not settings:
        return None
    return "settings: " + "; ".join(f"{m}: {s}" for (_, m), s in settings.items())


@dataclass
class _Unit:
    """Pooled predictions of one table row on one task."""

    preds: pd.DataFrame
    n_units: int
    labels: list | None
    classes: list[str] | None


def _json_list(text) -> list | None:
    text = "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
    return json.loads(text) if text else None


def _unit_predictions(
    results: pd.DataFrame,
    preds: pd.DataFrame,
    fallback_classes: dict[tuple, list[str]],
    shown: set[str] | None = None,
) -> dict[tuple, _Unit]:
    """Row label ``(protocol, task name, method, selection, params label)`` -> predictions."""
    tabulated = _table_rows(results, shown)
    if preds.empty or tabulated.empty:
        return {}
    positions: dict[tuple, np.ndarray] = {}
    for key, idx in pd.Series(range(len(preds))).groupby(pd.Series(result_keys(preds))):
        positions[key] = idx.to_numpy()
    parts: dict[tuple, list[tuple[np.ndarray, list | None, list | None]]] = {}
    full_keys = result_keys(results.loc[tabulated.index])
    for (_, row), key in zip(tabulated.iterrows(), full_keys, strict=True):
        label = (str(row["protocol"]), _task_name(row["task"], str(row["protocol"])),
                 str(row["method"]),
                 str(row["selection"]), str(row["params"]))  # fmt: skip
        if key not in positions:
            log.warning("no stored predictions for results row %s", key)
            continue
        classes = _json_list(row.get("classes", ""))
        if classes is None:
            classes = fallback_classes.get((label[0], label[2]))
        parts.setdefault(label, []).append(
            (positions[key], _json_list(row.get("labels", "")), classes)
        )
    return {
        label: _Unit(
            preds.iloc[np.concatenate([p for p, _, _ in ps])],
            len(ps),
            ps[0][1],
            next((c for _, _, c in ps if c), None),
        )
        for label, ps in parts.items()
    }


def _intervals(units: dict, n_boot: int, seed: int) -> dict[tuple, tuple[float, float, float]]:
    cis = {}
    for label, u in units.items():
        groups = u.preds["sample"].astype(str).to_numpy() if u.n_units > 1 else None
        ci = bootstrap_ci(u.preds["y_true"].to_numpy(), u.preds["y_pred"].to_numpy(),
                          "mean_f1", n_boot=n_boot, seed=seed, groups=groups)  # fmt: skip
        cis[label] = (ci.estimate, ci.low, ci.high)
    return cis


_SEL_RANK = {"none": 0, "oracle": 1, "default": 3}


def _order_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows by method (svm first, then first appearance), then fixed, oracle, label-free
    criteria, default; ``oracle`` shown as ``oracle*``, ``none`` (params given) as
    ``fixed``."""
    if not isinstance(df.index, pd.MultiIndex) or "selection" not in df.index.names:
        return df
    names = list(df.index.names)
    im, js = names.index("method"), names.index("selection")
    methods = list(dict.fromkeys(k[im] for k in df.index))
    if "svm" in methods:
        methods.insert(0, methods.pop(methods.index("svm")))
    keys = [(methods.index(k[im]), _SEL_RANK.get(str(k[js]), 2)) for k in df.index]
    df = df.iloc[sorted(range(len(df)), key=keys.__getitem__)]
    shown = {"oracle": ORACLE_LABEL, "none": "fixed"}
    tuples = [tuple(shown.get(str(v), v) if j == js else v for j, v in enumerate(k))
              for k in df.index]  # fmt: skip
    return df.set_axis(pd.MultiIndex.from_tuples(tuples, names=names), axis=0)


def _row_name(method: str, selection: str, params: str) -> str:
    sel = "" if selection == "none" else ("oracle*" if selection == "oracle" else selection)
    return " ".join(v for v in (method, sel, f"({params})" if params else "") if v)


def _protocol_tasks(results: pd.DataFrame, protocol: str) -> list[str]:
    tasks = list(dict.fromkeys(
        _task_name(t, protocol)
        for t in results.loc[results["protocol"].astype(str) == protocol, "task"]
    ))  # fmt: skip
    if protocol == _CDMER:
        tasks.sort(key=lambda t: get_task(t).exp)
    return tasks


def _n_test(results: pd.DataFrame, protocol: str) -> dict[str, int]:
    r = results[results["protocol"].astype(str) == protocol]
    names = [_task_name(t, protocol) for t in r["task"]]
    return {str(k): int(v) for k, v in r.groupby(names)["n_test"].max().items()}


def _subheads(columns, protocol: str, n_test: dict[str, int]) -> dict:
    out = {}
    for c in columns:
        if protocol == _CDMER and c in {t.name for t in TASKS}:
            code = get_task(c).code
            out[c] = f"{code}, n={n_test[c]}" if c in n_test else code
        elif c in n_test:
            out[c] = f"n={n_test[c]}"
    return out


def _type_split(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """CDMER columns split into a TYPE-I and a TYPE-II table (each with its average)."""
    out = []
    for typ in TYPES:
        cols = [t.name for t in TASKS if t.type == typ and t.name in df.columns]
        if typ in df.columns:
            cols.append(typ)
        if cols:
            out.append((typ, df[cols]))
    return out


def _ci_text(ci: tuple[float, float, float] | None) -> str:
    return "-" if ci is None else f"{ci[0]:.4f} [{ci[1]:.4f}, {ci[2]:.4f}]"


def _ci_table(cis: dict, protocol: str, tasks: list[str]) -> pd.DataFrame | None:
    """Wide "mean-F1 [low, high]" table of one protocol (rows as :func:`cdmer_table`)."""
    cells = {k[1:]: v for k, v in cis.items() if k[0] == protocol}
    if not cells:
        return None
    rows = list(dict.fromkeys(tuple(k[1:]) for k in cells))
    cols = [t for t in tasks if any(k[0] == t for k in cells)]
    data = [[_ci_text(cells.get((t, *r))) for t in cols] for r in rows]
    index = pd.MultiIndex.from_tuples(rows, names=["method", "selection", "params"])
    df = _order_rows(pd.DataFrame(data, index=index, columns=cols, dtype=object))
    drop = [lvl for lvl in ("selection", "params") if index.get_level_values(lvl).nunique() == 1]
    if drop:
        df = df.droplevel(drop)
    return df


def _protocol_table(rows: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    """Cells "mean-F1 / UAR" per task (mean over seeds), best of each column in bold."""
    df = rows.assign(_task=rows["task"].astype(str))
    levels = ["method", "selection", "params"]
    g = df.groupby([*levels, "_task"], sort=False)[["mean_f1", "uar"]].mean()
    seeds = df.groupby(levels, sort=False)["seed"].nunique()
    f1 = g["mean_f1"].unstack("_task").reindex(columns=tasks)
    uar = g["uar"].unstack("_task").reindex(columns=tasks)
    f1, uar = f1.round(4), uar.round(4)
    data = {}
    for t in tasks:
        col = []
        for a, b in zip(f1[t], uar[t], strict=True):
            if np.isnan(a) or np.isnan(b):
                col.append("-")
                continue
            sa, sb = f"{a:.4f}", f"{b:.4f}"
            if len(f1) > 1:
                sa = f"**{sa}**" if a == f1[t].max() else sa
                sb = f"**{sb}**" if b == uar[t].max() else sb
            col.append(f"{sa} / {sb}")
        data[t] = col
    out = pd.DataFrame(data, index=f1.index, dtype=object)
    out["seeds"] = seeds.reindex(f1.index).astype(int).astype(str).to_numpy()
    out = _order_rows(out)
    drop = [lvl for lvl in ("selection", "params") if f1.index.get_level_values(lvl).nunique() == 1]
    if drop:
        out = out.droplevel(drop)
    return out


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


# ---------------------------------------------------------------- sections
def _results_tables(
    doc: _Doc, results: pd.DataFrame, protocols: list[str], crit: str | None
) -> None:
    shown = {"oracle"} | ({crit} if crit else set())
    tabulated = _table_rows(results, shown)
    if _CDMER in protocols:
        cd = tabulated[tabulated["protocol"].astype(str) == _CDMER]
        n_test = _n_test(results, _CDMER)
        full = _order_rows(cdmer_table(cd, bold_best=True))
        doc.heading("CDMER results: mean-F1 / accuracy (%)")
        n_seeds = int(cd["seed"].nunique())
        doc.para(
            f"Tasks are source->target ({_DOMAINS}); n = test clips of the target. "
            "TYPE-I = the SMIC-internal tasks Exp.1-6, TYPE-II = CASME II <-> SMIC, "
            "Exp.7-12; each TYPE column is the mean over that type's tasks shown. Best "
            "mean-F1 and best accuracy of each column in bold"
            + (f"; cells are means over {n_seeds} seeds." if n_seeds > 1 else ".")
        )
        splits = _type_split(full)
        if len(splits) > 1:
            doc.heading("Summary: TYPE averages", 3)
            doc.table(full[[typ for typ in TYPES if typ in full.columns]])
        for typ, part in splits:
            if len(splits) > 1:
                doc.heading(f"{typ} tasks", 3)
            doc.table(part, None, _subheads(part.columns, _CDMER, n_test))
        cdr = results[results["protocol"].astype(str) == _CDMER]
        notes = [_settings_note(results, _CDMER)]
        if (cdr["selection"].astype(str) != "none").any():
            notes.append(
                f"Methods with a grid: {ORACLE_LABEL} = the best grid point scored with target "
                "labels (the papers' protocol)"
                + (f", {crit} = the label-free pick" if crit else "")
                + "; every criterion in the next table, every grid point in grid.csv."
            )
        for note in notes:
            if note:
                doc.para(note)
        if (cdr["selection"].astype(str) != "none").any():
            doc.heading("Oracle vs label-free hyper-parameter selection")
            st = selection_table(cdr)
            for typ, part in _type_split(st):
                doc.heading(f"{typ} tasks", 3)
                doc.table(part, st.attrs.get("note"), _subheads(part.columns, _CDMER, n_test))
    for p in (p for p in protocols if p != _CDMER):
        rows = tabulated[tabulated["protocol"].astype(str) == p]
        tasks = _protocol_tasks(results, p)
        doc.heading(f"{p} results: mean-F1 / UAR")
        doc.table(
            _protocol_table(rows, tasks),
            "mean-F1 (UF1) / UAR of the pooled test predictions, mean over seeds; best of "
            "each column in bold; n = test clips",
            _subheads(tasks, p, _n_test(results, p)),
        )
        note = _settings_note(results, p)
        if note:
            doc.para(note)


def _auto_section(doc: _Doc, results_dir: Path) -> None:
    """The label-free choices of method and parameters across methods (``auto.csv`` of a
    ``merkit cdmer --select auto`` run) against the oracle, per task and over all tasks."""
    auto = read_auto_selection(results_dir)
    if auto is None or auto.empty:
        return
    doc.heading("Label-free choice of method and parameters across methods")
    for title, df in auto_selection_tables(auto):
        doc.heading(title, 3)
        doc.table(df.round(4), df.attrs.get("note"))


def _interval_section(
    doc: _Doc, results: pd.DataFrame, protocols: list[str], cis: dict, n_boot: int, seed: int
) -> None:
    doc.heading("Bootstrap 95% confidence intervals of mean-F1")
    doc.para(
        f"Each interval is the 2.5-97.5 percentile range of the mean-F1 over {n_boot} "
        f"bootstrap resamples of the test clips (seed {seed}); several seeds of a row are "
        "pooled and resampled by clip. With a few dozen test clips per task the intervals "
        "are wide: two methods whose intervals overlap widely are not shown to differ."
    )
    for p in protocols:
        tasks = _protocol_tasks(results, p)
        ct = _ci_table(cis, p, tasks)
        if ct is None:
            continue
        if len(protocols) > 1:
            doc.heading(f"protocol {p}", 3)
        n_test = _n_test(results, p)
        cells: dict[str, dict] = {}
        groups: dict[str, str] = {}
        methods = list(dict.fromkeys(["svm", *(k[2] for k in cis)]))
        ordered = sorted(cis.items(), key=lambda kv: (methods.index(kv[0][2]),
                                                      _SEL_RANK.get(kv[0][3], 2)))  # fmt: skip
        for (proto, task, method, selection, params), v in ordered:
            if proto == p:
                name = _row_name(method, selection, params)
                cells.setdefault(name, {})[task] = v
                groups[name] = method
        shown = [t for t in tasks if any(t in c for c in cells.values())]
        labels = {t: (f"{t} {get_task(t).code}" if p == _CDMER else t)
                  + (f", n={n_test[t]}" if t in n_test else "") for t in shown}  # fmt: skip
        fig = plots.interval_figure(cells, shown, task_labels=labels, groups=groups,
                                    title=f"{p}: mean-F1 with 95% bootstrap interval")  # fmt: skip
        caption = f"{p}: mean-F1 (dot) and 95% bootstrap interval (bar) per row and task"
        doc.image(f"intervals_{_slug(p)}.png", plots.figure_png(fig), caption)
        note = "mean-F1 [low, high]; n = test clips"
        parts = _type_split(ct) if p == _CDMER else [("", ct)]
        for _, part in parts:
            doc.table(part, note, _subheads(part.columns, p, n_test))


def _confusion_section(doc: _Doc, units: dict[tuple, _Unit], protocols: list[str]) -> None:
    doc.heading("Confusion matrices")
    doc.para("Per table row and task, predictions pooled over the seeds of the row (n counts "
             "predictions); colour = share of the true class (row-normalised), text = count "
             "and share.")  # fmt: skip
    rows: dict[tuple, list] = {}
    for (proto, task, method, selection, params), u in units.items():
        rows.setdefault((proto, method, selection, params), []).append((task, u))
    for i, ((proto, method, selection, params), panels) in enumerate(rows.items()):
        if proto == _CDMER:
            panels.sort(key=lambda x: get_task(x[0]).exp)
        name = _row_name(method, selection, params)
        title = name if len(protocols) == 1 else f"{proto}: {name}"
        names = next((u.classes for _, u in panels if u.classes), None)
        label_sets = [u.labels for _, u in panels]
        labels = None
        if all(s is not None for s in label_sets) and all(s == label_sets[0] for s in label_sets):
            labels = label_sets[0]
        elif names is not None and all(
            pd.api.types.is_integer_dtype(u.preds["y_true"])
            and pd.api.types.is_integer_dtype(u.preds["y_pred"]) for _, u in panels
        ):  # fmt: skip
            labels = list(range(len(names)))
        fig = plots.confusion_panels(
            [
                (
                    f"{t} {get_task(t).code}" if proto == _CDMER else t,
                    u.preds["y_true"].to_numpy(),
                    u.preds["y_pred"].to_numpy(),
                )
                for t, u in panels
            ],
            labels=labels, class_names=names, title=title, ncols=6,
        )  # fmt: skip
        doc.image(f"confusion_{i:02d}_{_slug(title)}.png", plots.figure_png(fig),
                  f"confusion matrices: {title}")  # fmt: skip


def _audit_section(doc: _Doc, directory: Path) -> None:
    """The leak audit of the training runs (``audit.csv``, :mod:`merkit.results.audit`)."""
    audit = read_audit(directory)
    if audit is None or audit.empty:
        return
    doc.heading("Leak audit: test-subject selection (an estimate, not a result)")
    doc.para(
        f"From {AUDIT_FILE}: each run scored as trained (honest: the last epoch, chosen "
        "without the test subjects) and under the checkpoint selections of published "
        "training scripts, which read the test labels: "
        + "; ".join(f"{k} = {v}" for k, v in SELECTIONS.items() if k != "honest")
        + ". The gap to the honest row estimates how much such a selection inflates a "
        "published score; only the honest row is a result. UF1 / UAR pooled over the "
        "folds, mean over seeds; the interval is the 95 % cluster bootstrap over test "
        "subjects of the first seed."
    )
    keys = ["protocol", "task", "method", "run"]
    for (proto, task, method, run), g in audit.groupby(keys, sort=False):
        first = g[g["seed"] == g["seed"].min()].set_index("selection")
        mean = g.groupby("selection", sort=False)[["uf1", "uar", "uf1_gain",
                                                   "mean_epoch"]].mean()  # fmt: skip
        rows = []
        for sel in [s for s in SELECTIONS if s in mean.index]:
            m, f = mean.loc[sel], first.loc[sel]
            rows.append({"selection": sel + ("" if sel == "honest" else " (leaks)"),
                         "UF1": f"{m['uf1']:.4f}", "UAR": f"{m['uar']:.4f}",
                         "UF1 gain": f"{m['uf1_gain']:+.4f}",
                         "UF1 95% CI": f"{f['uf1_low']:.3f}-{f['uf1_high']:.3f}",
                         "mean epoch": f"{m['mean_epoch']:.1f}"})  # fmt: skip
        seeds = sorted(g["seed"].unique())
        folds = int(g["folds"].min())
        total = int(g["folds_total"].max()) if "folds_total" in g else folds
        note = (f"{proto} {task}: {method} (run {run}), seeds {', '.join(map(str, seeds))}, "
                f"{folds} of {total} folds recorded, {int(g['epochs_evaluated'].min())} "
                "evaluated epochs")  # fmt: skip
        doc.table(pd.DataFrame(rows).set_index("selection"), note=note)


def _deep_section(doc: _Doc, store: ResultStore, seed: int) -> None:
    history = store.history()
    if history is not None:
        doc.heading("Deep training: learning curves")
        doc.para(
            f"From {HISTORY_FILE}: training loss and accuracy per epoch; a thin line per "
            "fold (held-out subject), the mean over folds thick; dashed = validation, "
            "where logged."
        )
        for (proto, task, method), h in history.groupby(["protocol", "task", "method"],
                                                         sort=False):  # fmt: skip
            title = f"{proto} {task}: {method}"
            fig = plots.learning_curves(h, title=title)
            doc.image(f"history_{_slug(title)}.png", plots.figure_png(fig),
                      f"learning curves: {title} ({h['fold'].nunique()} folds, seeds "
                      f"{', '.join(map(str, sorted(h['seed'].unique())))})")  # fmt: skip
    files = store.embedding_files()
    if not files:
        return
    doc.heading("Deep features: t-SNE")
    doc.para(
        f"From {EMBEDDINGS_DIR}/: the learned features of the test clips, projected to 2-D "
        f"by t-SNE (scikit-learn, random_state {seed}, PCA to 50 dimensions first when "
        "wider, perplexity min(30, (n - 1) / 3)); colour = true class, black ring = "
        "misclassified. Distances between far-apart clusters carry little meaning."
    )
    groups: dict[tuple, list] = {}
    multilabel = []
    for f in files:
        e = read_embeddings(f)
        if e["multilabel"]:
            multilabel.append(f.name)
            continue
        nm = e["name"]
        key = (nm["protocol"], nm["task"], nm["model"]) if nm else (f.stem,)
        groups.setdefault(key, []).append((f, e))
    for key, items in groups.items():
        panels, notes, names = [], [], None
        for f, e in items:
            if len(e["z"]) < 5:
                log.warning("%s: %d feature rows, too few for t-SNE; skipped", f, len(e["z"]))
                continue
            xy, rows, perp = plots.embed_2d(e["z"], random_state=seed,
                                            max_points=TSNE_MAX_POINTS)  # fmt: skip
            label = f"seed {e['name']['seed']}" if e["name"] else f.stem
            n = len(e["z"])
            sub = f"{len(rows)} of {n} clips (seeded random subset)" if len(rows) < n else (
                f"{n} clips")  # fmt: skip
            panels.append((f"{label}: {sub}, perplexity {perp:.0f}", xy, e["y_true"][rows],
                           e["y_pred"][rows]))  # fmt: skip
            if len(rows) < n:
                notes.append(f"{label}: subsampled to {len(rows)} of {n} points")
            names = names or e["classes"] or None
        if not panels:
            continue
        title = " ".join(key) if len(key) == 3 else key[0]
        fig = plots.embedding_figure(panels, class_names=names, title=f"t-SNE: {title}")
        caption = f"t-SNE of the learned features: {title}"
        if notes:
            caption += f" ({'; '.join(notes)}, seed {seed})"
        doc.image(f"tsne_{_slug(title)}.png", plots.figure_png(fig), caption)
    if multilabel:
        doc.para(f"Not drawn (multi-label AU tasks, no single class to colour by): "
                 f"{', '.join(multilabel)}.")  # fmt: skip


def _embedding_classes(store: ResultStore) -> dict[tuple, list[str]]:
    """``(protocol, model) -> class names`` from the embedding files (when they agree;
    files that cannot be read are left to :func:`_deep_section` to report)."""
    out: dict[tuple, list[str]] = {}
    bad: set[tuple] = set()
    for f in store.embedding_files():
        parts = f.stem.split("__")
        if len(parts) != 4:
            continue
        try:
            e = read_embeddings(f)
        except (ValueError, OSError):
            continue
        if e["multilabel"]:
            continue  # AU names of a multi-label task
        classes = e["classes"]
        key = (parts[0], parts[2])
        if classes and out.setdefault(key, classes) != classes:
            bad.add(key)
    return {k: v for k, v in out.items() if k not in bad}


# ---------------------------------------------------------------- validation
#: stored score ranges: UF1 and UAR are fractions, accuracy is in percent
_METRIC_RANGES = {"mean_f1": (0.0, 1.0), "uar": (0.0, 1.0), "accuracy": (0.0, 100.0)}
#: largest difference between a stored score and its re-scored predictions (accuracy in %)
_METRIC_TOLERANCE = {"mean_f1": 1e-6, "uar": 1e-6, "accuracy": 1e-4}
_STALE = "re-run into a fresh --out, or delete the stale file"
_WRITERS = "merkit cdmer, demo or train (--out DIR)"


def _read_store(store: ResultStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results and predictions of a store, a file that is not merkit's named in one line.

    Raises
    ------
    FileNotFoundError
        No ``results.csv`` in the folder.
    ValueError
        A file that is not readable CSV or lacks merkit's columns.
    """
    if not store.results_path.is_file():
        raise FileNotFoundError(f"{store.results_path}: no results.csv in the results folder; "
                                f"expected a results folder written by {_WRITERS}")  # fmt: skip
    frames = []
    for path, columns, read in ((store.results_path, RESULT_COLUMNS, store.results),
                                (store.predictions_path, PREDICTION_COLUMNS,
                                 store.predictions)):  # fmt: skip
        try:
            frames.append(read())
        except ValueError as err:  # pandas' parser, decoding and empty-file errors too
            head, reason = str(path), " ".join(str(err).split())
            if reason.startswith(str(store.directory)):  # the store named the file (a part?)
                head, _, reason = reason.partition(": ")
            if isinstance(err, UnicodeDecodeError):
                reason = "not UTF-8 text"
            elif isinstance(err, pd.errors.EmptyDataError):
                reason = "empty"
            reason = reason.removeprefix("not a merkit results file, ") or type(err).__name__
            raise ValueError(
                f"{head}: not a merkit {path.stem} file ({reason}); expected a CSV with "
                f"columns {', '.join(columns)}, as {_WRITERS} write it"
            ) from err
    return frames[0], frames[1]


def _row_text(row: dict) -> str:
    """``protocol/task/method`` with selection, params and seed: how errors name a row."""
    return (f"row {row['protocol']}/{row['task']}/{row['method']} (selection "
            f"{row['selection']}, params {row['params']}, seed {row['seed']})")  # fmt: skip


def _validate(store: ResultStore, results: pd.DataFrame, preds: pd.DataFrame) -> None:
    """Refuse a store whose results and predictions do not describe the same evaluation.

    Checks every results row: scores in range (UF1, UAR in 0..1, accuracy in 0..100 %),
    JSON columns readable, key not repeated, as many predictions as ``n_test``, and the
    predictions re-scored by :func:`merkit.metrics.score_all` (over the row's
    ``labels``) equal to the stored scores (within :data:`_METRIC_TOLERANCE`).
    Predictions without a results row are not shown and not checked.

    Raises
    ------
    ValueError
        One line naming the file, the row, the stored and the recomputed value, and
        what to do.
    """
    rname, pname = store.results_path.name, store.predictions_path.name
    rpath, ppath = str(store.results_path), str(store.predictions_path)
    if store.has_parts():  # rows not merged yet
        rpath, ppath = (f"{p} (+ {PARTS_DIR}/)" for p in (rpath, ppath))
    if preds.empty and not results.empty:
        state = "is empty" if store.predictions_path.is_file() else "is missing"
        raise ValueError(f"{ppath} {state}, but {rname} has {len(results)} rows; merkit "
                         "writes the predictions of every row beside it: re-run into a fresh "
                         "--out")  # fmt: skip
    rows = results.to_dict("records")
    for col, (low, high) in _METRIC_RANGES.items():
        v = results[col].to_numpy(dtype=float)
        bad = np.flatnonzero(~((v >= low) & (v <= high)))  # NaN too
        if bad.size:
            raise ValueError(
                f"{rpath}: {_row_text(rows[bad[0]])}: {col} = {v[bad[0]]:.6g} is outside "
                f"{low:g}..{high:g} (mean_f1 and uar are fractions, accuracy a percentage); "
                f"{_STALE}"
            )
    keys = result_keys(results)
    dup = np.flatnonzero(pd.Series(keys).duplicated().to_numpy())
    if dup.size:
        raise ValueError(f"{rpath}: {_row_text(rows[dup[0]])} appears more than once; {_STALE}")
    labels: list[list | None] = []
    for row in rows:
        try:
            labels.append(_json_list(row["labels"]))
            _json_list(row["classes"])
            json.loads(str(row["params"]))
        except ValueError as err:
            raise ValueError(f"{rpath}: {_row_text(row)}: labels, classes or params is not "
                             f"valid JSON ({err}); {_STALE}") from err  # fmt: skip
    positions: dict[tuple, np.ndarray] = {}
    for key, idx in pd.Series(range(len(preds))).groupby(pd.Series(result_keys(preds))):
        positions[key] = idx.to_numpy()
    none = np.zeros(0, dtype=np.int64)
    y_true, y_pred = preds["y_true"].to_numpy(), preds["y_pred"].to_numpy()
    for row, key, lab in zip(rows, keys, labels, strict=True):
        idx = positions.get(key, none)
        if idx.size != int(row["n_test"]):
            found = f"has {idx.size} predictions" if idx.size else "has no predictions"
            raise ValueError(f"{ppath}: {_row_text(row)} {found}, {rname} says n_test = "
                             f"{int(row['n_test'])}; {_STALE}")  # fmt: skip
        try:
            got = score_all(y_true[idx], y_pred[idx], labels=lab)
        except ValueError as err:
            raise ValueError(f"{ppath}: the predictions of {_row_text(row)} cannot be scored "
                             f"({err}); {_STALE}") from err  # fmt: skip
        for col, tol in _METRIC_TOLERANCE.items():
            stored, recomputed = float(row[col]), float(got[col])
            if not abs(stored - recomputed) <= tol:
                raise ValueError(
                    f"{rpath}: {_row_text(row)}: {col} = {stored:.6g} in {rname}, but its "
                    f"{idx.size} predictions in {pname} re-score to {recomputed:.6g} (the "
                    f"two files disagree, one is stale or edited); {_STALE}"
                )


# ---------------------------------------------------------------- report
def build_report(
    results_dir: str | Path,
    out_html: str | Path | None = None,
    out_md: str | Path | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    face: str | Path | np.ndarray | None = None,
    criterion: str | None = "reverse",
) -> tuple[Path, Path]:
    """Write the HTML and Markdown report of a results folder (module docstring).

    Parameters
    ----------
    results_dir : str or Path
        Folder holding ``results.csv`` and ``predictions.csv`` (and optionally
        ``grid.csv``, ``tgsr_blocks.json``, ``history.csv``, ``embeddings/``).
    out_html, out_md : str or Path, optional
        Output files (default ``results_dir/report.html`` and ``results_dir/report.md``);
        the Markdown figures go to ``<md stem>_files/`` beside the Markdown file.
    n_boot : int
        Bootstrap resamples per confidence interval.
    seed : int
        Seed of the bootstrap and of the t-SNE projections (equal seeds, equal report).
    face : path or ndarray, optional
        Face frame under the TGSR salient-region maps (an aligned face crop; default
        the synthetic neutral face).
    criterion : str, optional
        Label-free selection shown beside the oracle in the main table, the intervals and
        the confusion matrices (default ``"reverse"``; the first stored criterion when
        that one is absent).

    Returns
    -------
    html_path, md_path : Path
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise NotADirectoryError(f"{results_dir}: results folder not found")
    store = ResultStore(results_dir)
    results, preds = _read_store(store)
    if results.empty:
        raise ValueError(f"{store.results_path}: no results rows to report")
    _validate(store, results, preds)
    face_img = None
    if face is not None:
        face_img = plots.read_face(face) if isinstance(face, (str, Path)) else np.asarray(face)
    html_path = Path(out_html) if out_html is not None else results_dir / "report.html"
    md_path = Path(out_md) if out_md is not None else results_dir / "report.md"

    ensure_writable_dir(html_path.parent, "--html" if out_html is not None else "results folder")
    ensure_writable_dir(md_path.parent, "--md" if out_md is not None else "results folder")

    doc = _Doc()
    protocols = list(dict.fromkeys(results["protocol"].astype(str)))
    doc.para(
        f"Results folder {results_dir.resolve()}: {len(results)} results rows "
        f"({', '.join(protocols)}), {len(preds)} stored predictions; generated "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}."
    )

    crit = _criterion(results, criterion)
    _results_tables(doc, results, protocols, crit)
    _auto_section(doc, results_dir)

    shown = {"oracle"} | ({crit} if crit else set())
    units = _unit_predictions(results, preds, _embedding_classes(store), shown)
    cis = _intervals(units, n_boot, seed)
    if cis:
        _interval_section(doc, results, protocols, cis, n_boot, seed)
    if units:
        _confusion_section(doc, units, protocols)

    # ---- sensitivity
    grid = store.grid()
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
    tgsr = store.tgsr_blocks()
    if tgsr is not None:
        levels, blocks = tgsr
        grouping, groups = store.tgsr_grouping()
        doc.heading("TGSR salient facial regions")
        where = "the given face frame" if face is not None else "the synthetic neutral face"
        doc.para(f"Blocks with a non-zero coefficient group per task ({TGSR_BLOCKS_FILE}: "
                 "TGSR refitted at the oracle point of a grid run, or at the best point), "
                 f"drawn over {where}: one panel per block level (selected blocks filled), "
                 "then how many levels select each pixel.")  # fmt: skip
        if grouping != "spatial":
            what = (
                "the TGSR authors' runs of contiguous columns of the feature vector, "
                "each holding parts of several blocks"
                if grouping == "authors"
                else "column groups that are not the facial blocks"
            )
            doc.para(f"TGSR's groups were the {grouping!r} grouping ({what}). Drawn are the "
                     "facial blocks holding at least one column of a selected group: the map "
                     "shows where the selected groups reach, not blocks TGSR chose.")  # fmt: skip
        img = face_img if face_img is not None else plots.neutral_face()
        for task, ids in blocks.items():
            label = _task_name(task)
            if label.startswith("Exp."):
                label = f"{label} {get_task(label).code}"
            title = f"{label} ({len(groups[task])} {grouping} groups)" if task in groups else label
            fig = plots.salient_map(ids, levels=levels, image=img, title=title)
            doc.image(
                f"tgsr_{_slug(label)}.png", plots.figure_png(fig), f"TGSR selected blocks: {label}"
            )

    # ---- deep runs
    _audit_section(doc, results_dir)
    _deep_section(doc, store, seed)

    title = f"merkit report: {results_dir.name}"
    atomic_write_bytes(html_path, _render_html(doc, title).encode("utf-8"))
    image_dir = md_path.parent / f"{md_path.stem}_files"
    if doc.images:
        image_dir.mkdir(parents=True, exist_ok=True)
    for name, png in doc.images:
        atomic_write_bytes(image_dir / name, png)
    atomic_write_bytes(md_path, _render_md(doc, title, image_dir.name).encode("utf-8"))
    log.info("report: %s, %s (%d figures)", html_path, md_path, len(doc.images))
    return html_path, md_path
