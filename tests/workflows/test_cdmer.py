"""The cdmer workflow returns what the CLI prints: titled tables, the files it wrote."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from merkit.data.schema import FeatureSet
from merkit.results.tables import SELECTION_NOTE, cdmer_terminal_table
from merkit.workflows.cdmer import (
    TABLE_TITLE,
    feature_source_name,
    load_param_grid,
    parse_methods,
    run_cdmer_on_features,
)


def _two_domains() -> dict[str, FeatureSet]:
    """Synthetic CASME2 and SMIC_VIS features (tasks Exp.9 and Exp.10)."""
    sets, classes = {}, ("negative", "positive", "surprise")
    for name, n, shift, seed in (("CASME2", 40, 0.0, 1), ("SMIC_VIS", 25, -0.7, 3)):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        X = np.eye(3, 6)[y] * 1.2 + rng.normal(size=(n, 6)) + shift
        table = pd.DataFrame({"dataset": name, "subject": [f"{name}/{i % 5}" for i in range(n)],
                              "clip": [f"c{i:03d}" for i in range(n)], "y": y,
                              "label": [classes[v] for v in y]})  # fmt: skip
        sets[name] = FeatureSet(X, table, name=name, classes=classes)
    return sets


def test_default_points_give_one_titled_table(tmp_path) -> None:
    got = run_cdmer_on_features(_two_domains(), tmp_path, method="svm,tca", progress=False,
                                label="lbp_top:r3p8 levels1,2")  # fmt: skip
    assert got.grid_csv is None and got.results_csv == tmp_path / "results.csv"
    assert got.summary_md.read_text() == got.markdown
    [(title, table)] = got.tables
    assert title == TABLE_TITLE
    assert list(table.index) == ["lbp_top:r3p8 levels1,2 svm", "lbp_top:r3p8 levels1,2 tca"]
    labelled = got.results.assign(method=lambda r: "lbp_top:r3p8 levels1,2 " + r["method"])
    pd.testing.assert_frame_equal(table, cdmer_terminal_table(labelled))


def test_a_grid_run_gives_the_selection_tables(tmp_path) -> None:
    got = run_cdmer_on_features(_two_domains(), tmp_path, progress=False,
                                param_grid={"svm": [{"C": 0.05}, {"C": 1.0}]})  # fmt: skip
    assert got.grid_csv == tmp_path / "grid.csv" and got.grid_csv.is_file()
    titles = [t for t, _ in got.tables]
    table_4 = "Table 4 (TYPE-II, Exp.7-12)"
    assert titles == [
        f"Oracle protocol (best grid point scored with target labels): {table_4}",
        f"Label-free selection (reverse, no target label): {table_4}",
        "Oracle vs label-free selection per method",
    ]
    assert got.tables[-1][1].attrs["note"] == SELECTION_NOTE
    assert all(f"## {t}" in got.markdown for t in titles)


def test_feature_source_names_say_levels_not_grid() -> None:
    assert feature_source_name("lbp_top:r3p8", (1, 2, 4, 8), {}) == "lbp_top:r3p8"
    assert feature_source_name("lbp_top:r3p8", (1, 2), {"size": (64, 64), "length": 8,
                                                         "align": True}) == (
        "lbp_top:r3p8 levels1,2 64x64 tim8 aligned")  # fmt: skip


def test_methods_and_grids_are_parsed_before_any_work(tmp_path) -> None:
    assert parse_methods("svm, TCA,svm") == ["svm", "tca"]
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope'\]"):
        parse_methods(["svm", "nope"])
    spec = tmp_path / "grid.json"
    spec.write_text('{"SVM": [{"C": 1}]}')
    assert load_param_grid(spec) == {"svm": [{"C": 1}]}
    assert load_param_grid("published") == "published" and load_param_grid(None) is None
    with pytest.raises(ValueError, match="--grid must be 'default', 'published' or a JSON"):
        load_param_grid("best")
