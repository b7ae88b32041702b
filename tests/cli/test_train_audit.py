"""`merkit train --audit-every`: the leak audit is written beside the honest results
(audit.csv, per-fold records, the printed table, the report) without changing them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.results.audit import SELECTIONS
from merkit.results.report import build_report
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return _flow_folder(tmp_path_factory.mktemp("flows") / "flows")


def _train(flows: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--protocol", "cde", "--model", "off_apexnet",
                               "--flows-dir", str(flows), "--epochs", "4", "--batch-size", "4",
                               "--folds", "3", "--seeds", "0,1", "--out", str(out),
                               *extra])  # fmt: skip


@pytest.fixture(scope="module")
def audited(flows, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("audited") / "out"
    res = _train(flows, out)  # flow network: the audit is on by default (every epoch)
    assert res.exit_code == 0, res.output
    return out, res


def test_audit_is_written_beside_the_honest_results(audited):
    out, res = audited
    audit = pd.read_csv(out / "audit.csv")
    assert len(audit) == 2 * len(SELECTIONS)  # 2 seeds
    assert set(audit["selection"]) == set(SELECTIONS)
    results = pd.read_csv(out / "results.csv")
    composite = results[results["task"] == "composite"].set_index("seed")
    honest = audit[audit["selection"] == "honest"].set_index("seed")
    for seed in (0, 1):  # the honest row is the run's own score
        assert honest.loc[seed, "uf1"] == pytest.approx(composite.loc[seed, "mean_f1"])
        assert honest.loc[seed, "uar"] == pytest.approx(composite.loc[seed, "uar"])
    assert (audit["epochs_evaluated"] == 4).all() and (audit["folds"] == 3).all()
    per_subject = audit[audit["selection"] == "best_epoch_per_subject"].set_index("seed")
    assert (per_subject["uf1"] >= honest["uf1"] - 1e-12).all()  # a per-fold best cannot lose
    records = sorted((out / "folds").rglob("*.audit.npz"))
    assert len(records) == 6  # 3 folds x 2 seeds
    with np.load(records[0]) as f:
        assert f["probs"].shape[:2] == (4, len(f["sample"])) and list(f["epochs"]) == [1, 2, 3, 4]
    assert "leak audit" in res.output and "best_epoch_per_subject" in res.output


def test_audit_changes_neither_results_nor_run_id_and_resumes_from_the_records(
    audited, flows, tmp_path
):
    out, _ = audited
    off = _train(flows, tmp_path / "off", "--audit-every", "0")
    assert off.exit_code == 0, off.output
    assert not (tmp_path / "off" / "audit.csv").exists()
    assert not list((tmp_path / "off" / "folds").rglob("*.audit.npz"))
    a, b = pd.read_csv(out / "results.csv"), pd.read_csv(tmp_path / "off" / "results.csv")
    assert json.loads(a["params"].iloc[0]) == json.loads(b["params"].iloc[0])
    assert a["mean_f1"].tolist() == b["mean_f1"].tolist()
    assert sorted(p.name for p in (out / "weights").iterdir()) == sorted(
        p.name for p in (tmp_path / "off" / "weights").iterdir()
    )
    before = pd.read_csv(out / "audit.csv")
    (out / "audit.csv").unlink()
    again = _train(flows, out)
    assert "folds trained 0, from cache 6" in again.output
    pd.testing.assert_frame_equal(pd.read_csv(out / "audit.csv"), before)


def test_report_shows_the_audit_labelled_as_an_estimate(audited, tmp_path):
    out, _ = audited
    _, md = build_report(out, tmp_path / "r.html", tmp_path / "r.md", n_boot=50)
    text = md.read_text()
    assert "## Leak audit: test-subject selection (an estimate, not a result)" in text
    assert "| best_epoch_per_subject (leaks) |" in text and "| honest " in text
    assert "3 of 3 folds recorded, 4 evaluated epochs" in text


def test_bad_audit_every_is_one_line_before_any_work(flows, tmp_path):
    res = _train(flows, tmp_path / "out", "--audit-every", "-1")
    assert one_error_line(res) == (
        "error: audit_every=-1 (--audit-every): must be a whole number >= 0"
    )
    assert not (tmp_path / "out").exists()
