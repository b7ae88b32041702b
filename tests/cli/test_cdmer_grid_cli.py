"""`merkit cdmer` with several methods and hyper-parameter grids (oracle vs label-free)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app

runner = CliRunner()
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cdmer_lbptop_r3p8"


@pytest.fixture(scope="module")
def features_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"CDMER reference features not found at {SHARED}")
    return SHARED


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error:") and "Traceback" not in res.output
    return " ".join(res.output.split())


def test_grid_file_gives_oracle_and_label_free_tables(features_dir, tmp_path) -> None:
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({"svm": [{}], "sa": [{"n_components": 31},
                                                    {"n_components": 60}]}))  # fmt: skip
    out = tmp_path / "res"
    res = runner.invoke(app, ["cdmer", "--features-dir", str(features_dir), "--method", "svm,sa",
                              "--grid", str(spec), "--jobs", "2", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 2 * 3 and set(grid["method"]) == {"svm", "sa"}
    assert {"reverse", "class_entropy", "entropy", "published_params"} <= set(grid.columns)
    results = pd.read_csv(out / "results.csv")
    pick = results.set_index(["task", "method", "selection"])
    # the oracle picks the published best points (SA: k 31 on C->V, 60 on V->C)
    assert pick.loc[("Exp.9", "sa", "oracle"), "params"] == '{"n_components":31}'
    assert pick.loc[("Exp.9", "sa", "oracle"), "mean_f1"] == pytest.approx(0.6030, abs=5e-5)
    assert pick.loc[("Exp.10", "sa", "oracle"), "mean_f1"] == pytest.approx(0.5243, abs=5e-5)
    assert pick.loc[("Exp.10", "svm", "reverse"), "mean_f1"] == pytest.approx(0.5367, abs=5e-5)
    rev = pick.loc[("Exp.9", "sa", "reverse")]
    g = grid[(grid.task == "Exp.9") & (grid.method == "sa")]
    assert rev["params"] == g.loc[g["reverse"].idxmax(), "params"]
    summary = (out / "summary.md").read_text()
    assert "## Oracle protocol (best grid point scored with target labels): Table 4" in summary
    assert "## Label-free selection (reverse, no target label): Table 4" in summary
    assert "oracle*: best grid point scored with target labels" in summary
    assert "| sa     | oracle*" in summary
    assert "Table 4 (TYPE-II, Exp.7-12)" in res.output and "0.6030 / 60.56" in res.output
    assert "grid.csv" in res.output


def test_several_methods_at_their_default_points(features_dir, tmp_path) -> None:
    res = runner.invoke(app, ["cdmer", "--features-dir", str(features_dir), "--method",
                              "svm, tgsr", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    results = pd.read_csv(tmp_path / "results.csv").set_index(["method", "task"])
    assert len(results) == 4 and (results["selection"] == "none").all()
    # TGSR default kappa 85, xi 0.01: C->V equals the published point (0.5906 / 59.15)
    assert results.loc[("tgsr", "Exp.9"), "mean_f1"] == pytest.approx(0.5906, abs=5e-5)
    assert results.loc[("svm", "Exp.10"), "accuracy"] == pytest.approx(53.08, abs=5e-3)
    assert "| tgsr" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "grid.csv").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--method", "svm,nope"], "unknown method(s) ['nope']"),
        (["--grid", "best"], "--grid must be 'default', 'published' or a JSON file"),
        (["--grid", "published", "--criterion", "luck"], "criterion 'luck' is not among"),
        (["--block-grid", "1,2"], "use them with --data"),
    ],
)
def test_grid_option_errors(features_dir, extra, expected, tmp_path) -> None:
    res = runner.invoke(app, ["cdmer", "--features-dir", str(features_dir), *extra,
                              "--out", str(tmp_path)])  # fmt: skip
    assert expected in _one_line_error(res)
