"""How tables are shown: whole footnotes, one number format, no rich markup in user text."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from rich.console import Console

from merkit.results.tables import ORACLE_NOTE, selection_table, to_markdown, to_rich


def shown(table, width: int = 200) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None).print(table)
    return buf.getvalue()


def selection_rows() -> pd.DataFrame:
    rows = []
    for sel, f1 in (("oracle", 0.6), ("reverse", 0.5)):
        for task in ("Exp.9", "Exp.10"):
            rows.append({"protocol": "cdmer", "task": task, "method": "sa", "selection": sel,
                         "params": "{}", "seed": 0, "mean_f1": f1,
                         "accuracy": 100 * f1})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_selection_table_footnote_is_a_whole_sentence() -> None:
    note = selection_table(selection_rows()).attrs["note"]
    assert note == (
        "oracle*: best grid point scored with target labels (the papers' protocol); "
        "(x) = oracle mean-F1 minus this row's mean-F1 (positive: how much the oracle "
        "overstates what a label-free pick gets)"
    )
    assert note.startswith(ORACLE_NOTE)


def test_floats_are_shown_with_four_decimals_in_every_row() -> None:
    df = pd.DataFrame(
        {"uf1": [0.5, 0.26666667], "uar": [0.5, 0.2666667], "n_test": [30, 45]},
        index=pd.Index(["CASME2-5", "SAMM-4"], name="task"),
    )
    out = shown(to_rich(df, title="loso"))
    assert "CASME2-5 │ 0.5000 │ 0.5000 │     30" in out, out
    assert "SAMM-4   │ 0.2667 │ 0.2667 │     45" in out, out
    md = to_markdown(df).splitlines()
    assert md[2] == "| CASME2-5 | 0.5000 | 0.5000 |     30 |"
    assert md[3] == "| SAMM-4   | 0.2667 | 0.2667 |     45 |"
    gap = to_markdown(df.assign(uar=[np.nan, 0.25])).splitlines()
    assert gap[2] == "| CASME2-5 | 0.5000 |        |     30 |"  # NaN: empty
    assert gap[3] == "| SAMM-4   | 0.2667 | 0.2500 |     45 |"


def test_brackets_in_titles_headers_and_cells_are_shown_whole() -> None:
    df = pd.DataFrame({"[ref] uar": ["[bold]x[/bold] [onset, offset]"]},
                      index=pd.Index(["exp [v2]"], name="run [a]"))  # fmt: skip
    out = shown(to_rich(df, title="runs/exp [v2] [red]"))
    for text in ("runs/exp [v2] [red]", "run [a]", "[ref] uar", "exp [v2]",
                 "[bold]x[/bold] [onset, offset]"):  # fmt: skip
        assert text in out, (text, out)
