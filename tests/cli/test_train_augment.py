"""`merkit train --augment`: bad policies are one-line errors before any work, an augmented
run trains fold by fold and records its policy, a run without it keeps its identity."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return _flow_folder(tmp_path_factory.mktemp("flows") / "flows")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--augment", "rotate"], "augment='rotate' (--augment): unknown augmentation policy; "
                                  "known: none, flow, flow-flip, flow-mixup, clip, clip-mixup"),
        (["--augment", "clip"], "--augment clip is a policy for clip inputs; model 'fr' takes "
                                "flow inputs: use one of none, flow, flow-flip, flow-mixup"),
        (["--model", "ststnet", "--augment", "flow", "--fold-batching", "on"],
         "--fold-batching on: augmentation (--augment flow) is per fold only; use auto or off"),
    ],
)  # fmt: skip
def test_bad_augment_is_refused_before_any_work(flows, tmp_path, args, message):
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), "--epochs", "1", "--folds",
                              "1", "--out", str(out), *args])  # fmt: skip
    assert one_error_line(res) == f"error: {message}"
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "r3d", "--augment", "flow-mixup"],
         "--augment flow-mixup is a policy for flow inputs; model 'r3d' takes clip inputs: use "
         "one of none, clip, clip-mixup"),
        (["--protocol", "au", "--augment", "flow-mixup"],
         "--augment flow-mixup mixes labels; the au protocol is multi-label: use a policy "
         "without mixup"),
    ],
)  # fmt: skip
def test_augment_that_does_not_fit_the_model_is_refused_before_reading_clips(
    tmp_path, args, message
):
    data = tmp_path / "data"
    data.mkdir()  # no database: reading it would fail with another message
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "out"),
                              *args])  # fmt: skip
    assert one_error_line(res) == f"error: {message}"


def _ststnet(flows: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--protocol", "cde", "--model", "ststnet", "--flows-dir",
                               str(flows), "--epochs", "2", "--batch-size", "4", "--folds", "2",
                               "--fold-batching", "auto", "--out", str(out), *extra])  # fmt: skip


def test_train_with_augment_flow_records_it_and_trains_fold_by_fold(flows, tmp_path):
    aug = _ststnet(flows, tmp_path / "aug", "--augment", "flow")
    assert aug.exit_code == 0, aug.output
    assert "folds trained 2, from cache 0" in aug.output
    params = json.loads(pd.read_csv(tmp_path / "aug" / "results.csv")["params"].iloc[0])
    assert params["augment"] == "flow" and "fold_batched" not in params
    assert "flow_channels" not in params  # the flow folder is read in uvs order
    again = _ststnet(flows, tmp_path / "aug", "--augment", "flow")
    assert "folds trained 0, from cache 2" in again.output  # resumes its own folds
    plain = _ststnet(flows, tmp_path / "plain", "--fold-batching", "off")
    assert plain.exit_code == 0, plain.output
    plain_params = json.loads(pd.read_csv(tmp_path / "plain" / "results.csv")["params"].iloc[0])
    assert "augment" not in plain_params
    run = json.loads((tmp_path / "aug" / "run.json").read_text())["run"]
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["run"] != run
    a = pd.read_csv(next((tmp_path / "aug" / "folds" / run / "seed0").glob("*[!y].csv")))
    assert a.filter(like="prob_").sum(axis=1).round(5).eq(1).all()
