"""``run.json`` of a ``merkit train`` folder names every seed trained into its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from merkit.workflows.train import run_train
from tests.cli.test_train_predict import _flow_folder

COMMON = dict(model="ststnet", epochs=1, batch_size=4, folds=2, progress=False)


@pytest.fixture(scope="module")
def flows(tmp_path_factory) -> Path:
    return _flow_folder(tmp_path_factory.mktemp("flows") / "flows")


def _info(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def test_seeds_trained_call_by_call_are_all_named(flows, tmp_path):
    out = tmp_path / "run"
    run_train(out, flows_dir=flows, seeds=[1], **COMMON)
    assert _info(out)["seeds"] == [1]
    run_train(out, flows_dir=flows, seeds=[0], **COMMON)
    assert _info(out)["seeds"] == [0, 1]
    run_train(out, flows_dir=flows, seeds=[1, 2], **COMMON)  # seed 1 from its stored folds
    first = _info(out)
    assert first["seeds"] == [0, 1, 2]
    # other settings are another run: run.json names it and only its own seeds
    run_train(out, flows_dir=flows, seeds=[3], **{**COMMON, "epochs": 2})
    other = _info(out)
    assert other["runs"] != first["runs"] and other["seeds"] == [3]


def test_an_unreadable_run_json_is_rewritten(flows, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text("{not json")
    run_train(out, flows_dir=flows, seeds=[0], **COMMON)
    assert _info(out)["seeds"] == [0]


def test_a_resumed_run_counts_its_stored_folds_as_done_from_the_start(flows, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    import io

    from rich.console import Console

    import merkit.workflows.train as wf

    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    real = wf.progress_bar
    monkeypatch.setattr(wf, "progress_bar",
                        lambda enabled, **kw: real(True, **{**kw, "interval": 0}))  # fmt: skip
    out = tmp_path / "run"
    common = {**COMMON, "fold_batching": "off", "console": console}
    run_train(out, flows_dir=flows, seeds=[0], **{**common, "folds": 2})
    console.file.truncate(0)
    console.file.seek(0)
    run_train(out, flows_dir=flows, seeds=[0], **{**common, "folds": 4})
    counts = [ln.split()[2] for ln in console.file.getvalue().splitlines()
              if ln.startswith("cde ststnet ")]  # fmt: skip
    assert counts[:3] == ["2/4", "3/4", "4/4"], counts
