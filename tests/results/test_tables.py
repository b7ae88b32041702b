"""Tests of the paper-format CDMER tables."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from merkit.results.tables import cdmer_scores, cdmer_table, to_markdown, to_rich


def rows(method, cells, selection="none", params="{}", seed=0):
    return [
        dict(protocol="cdmer", task=t, method=method, selection=selection, params=params,
             seed=seed, mean_f1=f, accuracy=a)
        for t, (f, a) in cells.items()
    ]  # fmt: skip


@pytest.fixture
def results() -> pd.DataFrame:
    r = rows("svm", {"Exp.10": (0.5367, 53.08), "Exp.9": (0.4701, 50.70), "Exp.1": (0.4, 45.0)})
    r += rows("tca", {"Exp.9": (0.6834, 69.01), "Exp.10": (0.5789, 59.23), "Exp.1": (0.5, 40.0)})
    r += rows("gfk", {"Exp.9": (0.6361, 66.20), "Exp.10": (0.6056, 61.50)})
    r += rows("other", {"Exp.9": (0.9, 90.0)}, seed=0)
    r += rows("other", {"Exp.9": (0.7, 80.0)}, seed=1)
    r.append(dict(protocol="cde", task="Exp.9", method="svm", selection="none", params="{}",
                  seed=0, mean_f1=1.0, accuracy=100.0))  # fmt: skip
    return pd.DataFrame(r)


def test_scores_and_averages(results: pd.DataFrame) -> None:
    f1, acc = cdmer_scores(results)
    assert list(f1.columns) == ["Exp.1", "Exp.9", "Exp.10", "TYPE-I", "TYPE-II"]
    assert list(f1.index) == ["svm", "tca", "gfk", "other"]  # svm first, then order seen
    assert f1.loc["tca", "TYPE-II"] == pytest.approx((0.6834 + 0.5789) / 2)
    assert acc.loc["svm", "TYPE-II"] == pytest.approx((53.08 + 50.70) / 2)
    assert f1.loc["svm", "TYPE-I"] == pytest.approx(0.4)
    assert np.isnan(f1.loc["gfk", "TYPE-I"])  # no Exp.1 result: no TYPE-I average
    assert np.isnan(f1.loc["other", "TYPE-II"])  # lacks Exp.10: no misleading average
    assert f1.loc["other", "Exp.9"] == pytest.approx(0.8)  # mean over two seeds
    assert acc.loc["other", "Exp.9"] == pytest.approx(85.0)
    f1_all, _ = cdmer_scores(results, all_tasks=True)
    assert list(f1_all.columns) == [f"Exp.{i}" for i in range(1, 13)] + ["TYPE-I", "TYPE-II"]
    f1_sel, _ = cdmer_scores(results, tasks=["C->V", "V->C"], averages=False)
    assert list(f1_sel.columns) == ["Exp.9", "Exp.10"]
    f1_cde, _ = cdmer_scores(results, protocol="cde")
    assert f1_cde.loc["svm", "Exp.9"] == 1.0
    with pytest.raises(ValueError, match="no results rows"):
        cdmer_scores(results, protocol="hde")


def test_cells_and_bold(results: pd.DataFrame) -> None:
    t = cdmer_table(results, tasks=[9, 10])
    assert t.loc["svm", "Exp.10"] == "0.5367 / 53.08"
    assert t.loc["svm", "Exp.9"] == "0.4701 / 50.70"
    assert t.loc["gfk", "TYPE-II"] == "0.6208 / 63.85"  # 0.62085 in binary is below .5
    assert t.loc["other", "Exp.10"] == "-"
    b = cdmer_table(results, tasks=[9, 10], bold_best=True)
    assert b.loc["other", "Exp.9"] == "**0.8000** / **85.00**"
    assert b.loc["gfk", "Exp.10"] == "**0.6056** / **61.50**"
    assert b.loc["tca", "Exp.9"] == "0.6834 / 69.01"
    assert b.loc["tca", "TYPE-II"] == "**0.6312** / **64.12**"
    assert b.loc["gfk", "TYPE-II"] == "0.6208 / 63.85"


def test_rows_split_by_selection_and_params() -> None:
    r = rows("tca", {"Exp.9": (0.6, 60.0)}, selection="oracle", params='{"k":3}')
    r += rows("tca", {"Exp.9": (0.5, 50.0)}, selection="dev", params='{"k":7}')
    t = cdmer_table(pd.DataFrame(r))
    assert t.index.names == ["method", "selection", "params"]
    assert t.loc[("tca", "oracle", '{"k":3}'), "Exp.9"] == "0.6000 / 60.00"
    r2 = rows("tca", {"Exp.9": (0.6, 60.0)}, selection="oracle")
    r2 += rows("tca", {"Exp.9": (0.5, 50.0)}, selection="dev")
    t2 = cdmer_table(pd.DataFrame(r2))
    assert t2.index.names == ["method", "selection"]  # constant params level dropped
    assert list(t2.index) == [("tca", "dev"), ("tca", "oracle")]


def test_markdown(results: pd.DataFrame) -> None:
    t = cdmer_table(results, tasks=[9, 10], averages=False, bold_best=True)
    md = to_markdown(t)
    lines = md.splitlines()
    assert lines[0] == "| method |                  Exp.9 |                 Exp.10 |"
    assert lines[1] == "| ------ | ---------------------: | ---------------------: |"
    assert lines[2] == "| svm    |         0.4701 / 50.70 |         0.5367 / 53.08 |"
    assert lines[5] == "| other  | **0.8000** / **85.00** |                      - |"
    assert len(lines) == 6 and md.endswith("\n")
    plain = pd.DataFrame({"name": ["a|b", "c"], "x": [1.5, 10.25]})
    assert to_markdown(plain, index=False).splitlines() == [
        "| name |       x |",
        "| ---- | ------: |",
        "| a\\|b |  1.5000 |",
        "| c    | 10.2500 |",
    ]


def test_rich_table(results: pd.DataFrame) -> None:
    t = cdmer_table(results, tasks=[9, 10], bold_best=True)
    table = to_rich(t, title="CDMER")
    assert [c.header.plain for c in table.columns] == ["method", "Exp.9", "Exp.10", "TYPE-II"]
    assert table.row_count == 4
    buf = io.StringIO()
    Console(file=buf, width=120, color_system=None).print(table)
    out = buf.getvalue()
    assert "0.8000 / 85.00" in out and "**" not in out
    assert "0.5367 / 53.08" in out and "CDMER" in out


def test_selection_table_oracle_vs_label_free() -> None:
    from merkit.results.tables import ORACLE_LABEL, ORACLE_NOTE, selection_scores, selection_table

    r = rows("sa", {"Exp.9": (0.6030, 60.56), "Exp.10": (0.5243, 51.54)}, "oracle", '{"k":31}')
    r += rows("sa", {"Exp.9": (0.5189, 52.11), "Exp.10": (0.4639, 46.15)}, "reverse")
    r += rows("sa", {"Exp.9": (0.4292, 47.89), "Exp.10": (0.3741, 37.69)}, "default")
    r += rows("svm", {"Exp.9": (0.48, 52.11), "Exp.10": (0.5367, 53.08)}, "oracle")
    r += rows("svm", {"Exp.9": (0.48, 52.11), "Exp.10": (0.5367, 53.08)}, "reverse")
    r += rows("sa", {"Exp.9": (0.1, 10.0)}, "none", '{"k":1}')  # grid rows are ignored
    f1, acc, gap = selection_scores(pd.DataFrame(r))
    assert list(f1.index) == [("svm", "oracle"), ("svm", "reverse"), ("sa", "oracle"),
                              ("sa", "reverse"), ("sa", "default")]  # fmt: skip
    assert gap.loc[("sa", "reverse"), "Exp.9"] == pytest.approx(0.6030 - 0.5189)
    assert gap.loc[("sa", "reverse"), "TYPE-II"] == pytest.approx(
        (0.6030 + 0.5243) / 2 - (0.5189 + 0.4639) / 2)  # fmt: skip
    assert gap.loc[("sa", "oracle"), "Exp.10"] == 0.0
    t = selection_table(pd.DataFrame(r))
    assert list(t.columns) == ["Exp.9", "Exp.10", "TYPE-II"]
    assert t.loc[("sa", ORACLE_LABEL), "Exp.9"] == "0.6030 / 60.56"
    assert t.loc[("sa", "reverse"), "Exp.9"] == "0.5189 / 52.11 (+0.0841)"
    assert t.loc[("sa", "default"), "Exp.10"] == "0.3741 / 37.69 (+0.1502)"
    assert t.loc[("svm", "reverse"), "TYPE-II"].endswith("(+0.0000)")
    assert t.attrs["note"].startswith(ORACLE_NOTE)
    md = to_markdown(t)
    assert "| sa     | oracle*   | 0.6030 / 60.56           |" in md.splitlines()[4]
    buf = io.StringIO()
    Console(file=buf, width=200).print(to_rich(t, title="oracle vs label-free"))
    assert "0.5189 / 52.11 (+0.0841)" in buf.getvalue()
    with pytest.raises(ValueError, match="no selection rows"):
        selection_table(pd.DataFrame(rows("sa", {"Exp.9": (0.1, 10.0)})))
