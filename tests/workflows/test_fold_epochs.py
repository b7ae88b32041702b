"""`merkit train --fold-epochs`: each fold trains its own number of epochs (e.g. chosen per
group of test subjects on training subjects), on the per-fold and the fold-batched path,
with the same numbers as a run of that many epochs for every fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.protocols.ensemble import read_members
from merkit.workflows.train import read_fold_epochs, run_train
from tests.cli._output import one_error_line
from tests.cli.test_train_predict import _flow_folder

runner = CliRunner()

#: the 6 LOSO folds of the tiny flow folder: 1 epoch for three, 2 for the others
EPOCHS = {"CASME2/01": 1, "SMIC_HS/s1": 2, "SAMM/006": 1, "CASME2/02": 2, "SMIC_HS/s2": 1,
          "SAMM/007": 2}  # fmt: skip


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return _flow_folder(tmp_path_factory.mktemp("flows") / "flows")


def _probs(out: Path) -> pd.DataFrame:
    """The stored test probabilities of the run in ``out``, by (fold, clip)."""
    (member,) = read_members([out])
    pred = member.predictions
    cols = [c for c in pred.columns if c.startswith("prob_")]
    assert len(cols) == 3
    return pred.set_index(["fold", "clip"])[cols].sort_index()


@pytest.mark.parametrize("batching", ["off", "on"])
def test_each_fold_trains_its_own_epochs_as_a_uniform_run_would(flows, tmp_path, batching):
    common = {"model": "ststnet", "flows_dir": flows, "progress": False,
              "fold_batching": batching, "audit_every": 1}  # fmt: skip
    got = run_train(tmp_path / "mixed", fold_epochs=EPOCHS, **common)
    mixed = _probs(tmp_path / "mixed")
    assert set(mixed.index.get_level_values("fold")) == set(EPOCHS)
    for e in (1, 2):
        run_train(tmp_path / f"e{e}", epochs=e, **common)
        uniform = _probs(tmp_path / f"e{e}")
        mine = [f for f, n in EPOCHS.items() if n == e]
        pd.testing.assert_frame_equal(mixed.loc[mine], uniform.loc[mine], check_exact=True)
        other = [f for f, n in EPOCHS.items() if n != e]  # the other epochs differ
        assert not np.allclose(mixed.loc[other].to_numpy(), uniform.loc[other].to_numpy())
    hist = pd.read_csv(tmp_path / "mixed" / "history.csv")
    assert hist.groupby("fold")["epoch"].max().to_dict() == EPOCHS
    params = json.loads(got.results["params"].iloc[0])
    assert params["epochs"] == "per fold" and params["fold_epochs"] == EPOCHS
    assert params.get("fold_batched", False) is (batching == "on")
    audit = pd.read_csv(tmp_path / "mixed" / "audit.csv")  # the audit takes unequal curves
    honest = audit[audit["selection"] == "honest"]
    comp = got.results[got.results["task"].astype(str) == "composite"]
    assert honest["uf1"].iloc[0] == pytest.approx(comp["mean_f1"].iloc[0], abs=1e-9)
    assert honest["mean_epoch"].iloc[0] == 1.5  # each fold's own last epoch
    pooled = audit[audit["selection"] == "best_epoch_pooled"]
    assert pooled["mean_epoch"].iloc[0] == 1  # the one epoch every fold evaluated


def test_a_subset_of_folds_shares_the_full_runs_id_and_cache(flows, tmp_path):
    common = {"model": "ststnet", "flows_dir": flows, "progress": False,
              "fold_batching": "off", "fold_epochs": EPOCHS}  # fmt: skip
    first = run_train(tmp_path / "out", folds=2, **common)
    again = run_train(tmp_path / "out", **common)
    assert first.run_dir == again.run_dir
    assert (again.folds_cached, again.folds_done) == (2, 4)
    plain = run_train(tmp_path / "plain", folds=2, model="ststnet", flows_dir=flows,
                      progress=False, fold_batching="off", epochs=1)  # fmt: skip
    assert plain.run_dir != first.run_dir


def test_selection_file_and_plain_mapping_read_the_same(tmp_path):
    sel = tmp_path / "selection.json"
    sel.write_text(json.dumps({"model": "off_apexnet", "fold_epochs": EPOCHS,
                               "chosen_epochs": {"0": 115}}))  # fmt: skip
    plain = tmp_path / "epochs.json"
    plain.write_text(json.dumps(EPOCHS))
    assert read_fold_epochs(sel) == read_fold_epochs(plain) == EPOCHS
    assert read_fold_epochs({"a": 3.0}) == {"a": 3}


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (EPOCHS, ["--epochs", "3"], "--fold-epochs and --epochs both set the epochs; give one"),
        (EPOCHS, ["--final"], "--final trains one model on every clip for one number of "
                              "epochs; with --fold-epochs train it in a run of its own"),
        ({**EPOCHS, "SAMM/006": 0}, [], "--fold-epochs {path}: fold 'SAMM/006' has epochs 0; "
                                        "each must be a whole number >= 1"),
        ({**EPOCHS, "SAMM/006": 2.5}, [], "--fold-epochs {path}: fold 'SAMM/006' has epochs "
                                          "2.5; each must be a whole number >= 1"),
        ({**EPOCHS, "SAMM/06": 3}, [], "--fold-epochs names 1 fold(s) the task does not have, "
                                       "e.g. 'SAMM/06'; its folds are named like 'CASME2/01'"),
        ({k: v for k, v in EPOCHS.items() if k != "SAMM/007"}, ["--folds", "1"],
         "--fold-epochs: task composite fold 'SAMM/007' has no epochs (1 of its 6 folds lack "
         "one); give every fold, also when --folds runs a few"),
        ([1, 2], [], '--fold-epochs {path}: expected a non-empty JSON object {"<fold>": epochs'),
        ("{not json", [], "--fold-epochs {path}: not JSON"),
        (None, [], "--fold-epochs {path}: no such file"),
    ],
)  # fmt: skip
def test_bad_fold_epochs_are_one_line_before_any_training(flows, tmp_path, content, extra,
                                                          message):  # fmt: skip
    path = tmp_path / "epochs.json"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_text(json.dumps(content))
    out = tmp_path / "out"
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), "--model", "ststnet",
                              "--fold-epochs", str(path), "--out", str(out), *extra])  # fmt: skip
    assert one_error_line(res).startswith("error: " + message.replace("{path}", str(path)))
    assert not (out / "folds").exists()  # nothing trained
