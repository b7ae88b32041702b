"""`merkit ensemble`: the mean of stored test probabilities, scored and stored like a
training run; members that do not fit together are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.metrics import uar, uf1
from merkit.results.report import build_report
from merkit.workflows.ensemble import run_ensemble
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()


def _train(flows: Path, out: Path, model: str, folds: str = "3") -> Path:
    res = runner.invoke(app, ["train", "--protocol", "cde", "--model", model, "--flows-dir",
                              str(flows), "--epochs", "2", "--batch-size", "4", "--folds",
                              folds, "--seeds", "0,1", "--audit-every", "0", "--out",
                              str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ens")
    flows = _flow_folder(root / "flows")
    return {"flows": flows, "off": _train(flows, root / "off", "off_apexnet"),
            "sts": _train(flows, root / "sts", "ststnet")}  # fmt: skip


def _fold_probs(run_dir: Path) -> pd.DataFrame:
    """Every stored fold prediction of a train folder, by (seed, subject, clip)."""
    rows = [pd.read_csv(p, dtype={"subject": str, "clip": str})
            for p in sorted((run_dir / "folds").rglob("*.csv"))
            if not p.name.endswith(".history.csv")]  # fmt: skip
    return pd.concat(rows).set_index(["seed", "subject", "clip"]).sort_index()


def test_ensemble_is_the_mean_probability_scored_like_a_run(runs, tmp_path):
    res = runner.invoke(app, ["ensemble", str(runs["off"]), str(runs["sts"]), "--out",
                              str(tmp_path / "ens"), "--name", "mix"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "mix: pooled UF1" in res.output and "members alone" in res.output
    probs = [f"prob_{c}" for c in range(3)]
    off, sts = _fold_probs(runs["off"]), _fold_probs(runs["sts"])
    mean = (off[probs] + sts[probs]).groupby(level=["subject", "clip"]).sum() / 4
    y_true = off.xs(0, level="seed")["y_true"].sort_index()
    y_pred = mean.sort_index().to_numpy().argmax(1)
    results = pd.read_csv(tmp_path / "ens" / "results.csv").set_index("task")
    assert results.loc["composite", "method"] == "mix"
    assert results.loc["composite", "mean_f1"] == pytest.approx(
        uf1(y_true.to_numpy(), y_pred, labels=[0, 1, 2]))  # fmt: skip
    assert results.loc["composite", "uar"] == pytest.approx(
        uar(y_true.to_numpy(), y_pred, labels=[0, 1, 2]))  # fmt: skip
    assert set(results.index) >= {"composite", "CASME2", "SAMM", "SMIC_HS"}
    params = json.loads(results.loc["composite", "params"])
    assert len(params["members"]) == 4 and params["ensemble"] == "mean probability"
    members = pd.read_csv(tmp_path / "ens" / "members.csv")
    own = pd.read_csv(runs["off"] / "results.csv")
    own = own[own["task"] == "composite"].set_index("seed")["mean_f1"]
    got = members[members["model"] == "off_apexnet"].set_index("seed")["uf1"]
    pd.testing.assert_series_equal(got.sort_index(), own.sort_index(), check_names=False)
    assert (tmp_path / "ens" / "summary.csv").is_file()
    _, md = build_report(tmp_path / "ens", tmp_path / "r.html", tmp_path / "r.md", n_boot=20)
    assert "mix" in md.read_text()


def test_per_seed_ensembles_give_one_row_per_seed(runs, tmp_path):
    got = run_ensemble([runs["off"], runs["sts"]], tmp_path / "ens", name="mix", per_seed=True)
    comp = got.results[got.results["task"] == "composite"]
    assert sorted(comp["seed"]) == [0, 1]
    for seed in (0, 1):
        params = json.loads(comp.set_index("seed").loc[seed, "params"])
        assert params["members"] == [n for n in params["members"] if n.endswith(f"seed{seed}")]
        assert len(params["members"]) == 2
    assert got.summary.set_index("task").loc["composite", "seeds"] == 2
    # one folder's seeds alone are an ensemble too (seeds of one network)
    solo = run_ensemble([runs["off"]], tmp_path / "solo", seeds=[0, 1])
    assert json.loads(solo.results["params"].iloc[0])["members"][0].startswith("off_apexnet:")
    np.testing.assert_array_equal(solo.members["seed"], [0, 1])


def test_members_that_do_not_fit_are_one_line_errors(runs, tmp_path):
    partial = _train(runs["flows"], tmp_path / "partial", "off_apexnet", folds="2")
    res = runner.invoke(app, ["ensemble", str(runs["off"]), str(partial), "--out",
                              str(tmp_path / "e1")])  # fmt: skip
    line = one_error_line(res)
    assert "different test clips (6 vs 9); ensemble runs of the same task and folds" in line
    assert str(partial) in line
    unfinished = _train(runs["flows"], tmp_path / "unfinished", "off_apexnet")
    run = json.loads((unfinished / "run.json").read_text())["run"]
    seed1 = unfinished / "folds" / run / "seed1"
    (gone,) = [p for p in seed1.glob("SAMM_*.csv") if not p.name.endswith(".history.csv")]
    gone.unlink()  # seed 1 loses the predictions of one of its 3 folds: unfinished
    res = runner.invoke(app, ["ensemble", str(runs["off"]), str(unfinished), "--out",
                              str(tmp_path / "e5")])  # fmt: skip
    assert one_error_line(res) == (
        f"error: {unfinished}: run {run} seed 1 has 2 of its 3 folds stored (unfinished); "
        "finish it with merkit train into that folder, or choose seeds with --seeds"
    )
    res = runner.invoke(app, ["ensemble", str(tmp_path), "--out", str(tmp_path / "e2")])
    assert one_error_line(res) == (
        f"error: {tmp_path}: no run.json; give the --out folder of a finished merkit train run"
    )
    res = runner.invoke(app, ["ensemble", str(runs["off"]), "--seeds", "0", "--out",
                              str(tmp_path / "e3")])  # fmt: skip
    assert one_error_line(res).startswith("error: cde composite: one member (off_apexnet:")
    res = runner.invoke(app, ["ensemble", str(runs["off"]), str(runs["sts"]), "--per-seed",
                              "--seeds", "0,7", "--task", "composite", "--out",
                              str(tmp_path / "e4")])  # fmt: skip
    assert res.exit_code == 0, res.output  # seed 7 has no folds: seed 0's ensemble only
    assert pd.read_csv(tmp_path / "e4" / "results.csv")["seed"].unique().tolist() == [0]
