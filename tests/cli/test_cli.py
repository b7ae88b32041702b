"""The command line: one library call per command, one clear line per user error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app

runner = CliRunner()

REQUIRED = ["protocol", "task", "source", "target", "method", "selection", "params",
            "mean_f1", "accuracy", "uar"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> tuple[Path, Path, object]:
    base = tmp_path_factory.mktemp("demo")
    out, data = base / "out", base / "data"
    res = runner.invoke(
        app, ["demo", "--out", str(out), "--data", str(data), "--size", "tiny", "--seed", "3"]
    )
    return out, data, res


def test_demo_runs_the_twelve_tasks_and_writes_results(tiny_demo) -> None:
    out, data, res = tiny_demo
    assert res.exit_code == 0, res.output
    results = pd.read_csv(out / "results.csv")
    assert set(REQUIRED) <= set(results.columns)
    assert sorted(results["task"], key=lambda t: int(t[4:])) == [f"Exp.{i}" for i in range(1, 13)]
    assert (results["method"] == "svm").all()
    assert results["mean_f1"].between(0, 1).all() and results["accuracy"].between(0, 100).all()
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == results["n_test"].sum()
    summary = (out / "summary.md").read_text()
    assert "| method |" in summary and "Exp.12" in summary and "TYPE-II" in summary
    assert "Exp.12 N->C" in res.output and "summary:" in res.output
    html = (out / "report.html").read_text()
    assert f"report:    {out / 'report.html'}" in res.output.replace("\n", "")
    assert "Exp.12" in html and html.count("data:image/png;base64,") >= 1
    assert (data / "CASME2" / "Cropped").is_dir() and (data / "SMIC" / "NIR").is_dir()


def test_demo_is_deterministic_and_resumes(tiny_demo, tmp_path) -> None:
    out, data, _ = tiny_demo
    first = pd.read_csv(out / "results.csv")
    res = runner.invoke(
        app, ["demo", "--out", str(tmp_path), "--data", str(tmp_path / "d"), "--size", "tiny",
              "--seed", "3"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    again = pd.read_csv(tmp_path / "results.csv")
    cols = ["task", "mean_f1", "uar", "accuracy", "data"]
    pd.testing.assert_frame_equal(
        first[cols].sort_values("task").reset_index(drop=True),
        again[cols].sort_values("task").reset_index(drop=True),
    )


def test_datasets_lists_the_synthetic_databases(tiny_demo) -> None:
    _, data, _ = tiny_demo
    res = runner.invoke(app, ["datasets", str(data), "--scheme", "cdmer3"])
    assert res.exit_code == 0, res.output
    for name in ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR"):
        assert name in res.output
    assert "negative" in res.output and "surprise" in res.output


def test_broken_layout_is_one_error_line(tiny_demo, tmp_path) -> None:
    _, data, _ = tiny_demo
    broken = tmp_path / "broken"
    shutil.copytree(data / "CASME2", broken / "CASME2")
    for sheet in (broken / "CASME2").glob("*.xlsx"):
        sheet.unlink()
    res = runner.invoke(app, ["datasets", str(broken)])
    assert res.exit_code == 2
    assert res.output.startswith("error:") and "Traceback" not in res.output
    assert "coding sheet" in res.output and str(broken) in res.output.replace("\n", "")


@pytest.mark.parametrize(
    "args",
    [
        ["cdmer", "--features-dir", "/no/such/folder"],
        ["datasets", "/no/such/folder"],
        ["demo", "--size", "enormous"],
    ],
)
def test_bad_input_gives_one_clear_line(args, tmp_path) -> None:
    if args[0] == "demo":
        args = [*args, "--out", str(tmp_path / "o"), "--data", str(tmp_path / "d")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error:") and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) <= 3


def test_cdmer_on_the_released_features_reproduces_the_svm_baseline(shared_data, tmp_path):
    folder = shared_data / "cdmer_lbptop_r3p8"
    res = runner.invoke(app, ["cdmer", "--features-dir", str(folder), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "0.5367 / 53.08" in res.output and "0.4800 / 52.11" in res.output
    results = pd.read_csv(tmp_path / "results.csv").set_index("task")
    assert set(REQUIRED) - {"task"} <= set(results.columns)
    assert results.loc["Exp.10", "mean_f1"] == pytest.approx(0.5367, abs=5e-5)
    assert results.loc["Exp.10", "accuracy"] == pytest.approx(53.08, abs=5e-3)
    assert "| svm" in (tmp_path / "summary.md").read_text()


def test_synth_writes_samm_and_dfme_that_datasets_reads(tmp_path) -> None:
    res = runner.invoke(
        app, ["synth", str(tmp_path), "--size", "tiny", "--database", "SAMM,dfme", "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "SAMM: 9 clips, 3 subjects" in res.output and "DFME: 10 clips, 5 subjects" in res.output
    listed = runner.invoke(app, ["datasets", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    assert "200, 300, 500" in listed.output  # DFME's per-clip frame rates
    again = runner.invoke(app, ["synth", str(tmp_path), "--size", "tiny", "--database", "SAMM"])
    assert again.exit_code == 2 and again.output.startswith("error:")
    assert "already exists" in again.output
