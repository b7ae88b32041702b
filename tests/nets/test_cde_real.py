"""One real CDE fold: ``merkit train`` on the MEGC 2019 flow images, deterministic and learning.

Reads ``../shared/data/megc2019_flow`` in place (licensed data, never copied into the
repository) and skips when it is absent. OFF-ApexNet (the cheapest network with
channels-last training) on the fold of CASME II subject 17 (31 test clips: 23 negative,
7 positive, 1 surprise; 411 training clips), FR's CDE preset (SGD lr 1e-3, batch 32)
for 5 epochs: about 2 s of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.metrics import uf1
from merkit.workflows.train import run_train

FLOW_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "megc2019_flow"
FOLD = "CASME2/17"


def _fold_predictions(out: Path) -> pd.DataFrame:
    files = [f for f in out.glob("folds/*/seed0/*.csv") if not f.name.endswith(".history.csv")]
    assert [f.name for f in files] == ["CASME2_17.csv"]
    return pd.read_csv(files[0], dtype={"fold": str, "subject": str, "clip": str})


def test_one_real_cde_fold_is_deterministic_and_learns(tmp_path):
    if not (FLOW_ROOT / "combined_3_class2_for_optical_flow.csv").is_file():
        pytest.skip(f"MEGC 2019 flow images not available at {FLOW_ROOT}")
    runs = []
    for name in ("a", "b"):
        run_train(tmp_path / name, protocol="cde", model="off_apexnet", flows_dir=FLOW_ROOT,
                  epochs=5, seeds=[0], folds=[FOLD], progress=False)  # fmt: skip
        runs.append(_fold_predictions(tmp_path / name))
    a, b = runs
    probs = [f"prob_{c}" for c in range(3)]
    # same seed -> the same numbers, bit for bit
    assert np.array_equal(a[probs].to_numpy(), b[probs].to_numpy())
    assert a["y_pred"].tolist() == b["y_pred"].tolist()
    assert (a["subject"] == FOLD).all() and len(a) == 31
    assert np.bincount(a["y_true"], minlength=3).tolist() == [23, 7, 1]
    # it learns: above the majority class (23 / 31 = 0.742) and not one class for all
    acc = float((a["y_true"] == a["y_pred"]).mean())
    assert acc >= 0.8, acc
    assert len(set(a["y_pred"])) >= 2
    assert uf1(a["y_true"], a["y_pred"], labels=[0, 1, 2]) > 0.5


def test_preset_reaches_the_stored_params(tmp_path):
    if not (FLOW_ROOT / "combined_3_class2_for_optical_flow.csv").is_file():
        pytest.skip(f"MEGC 2019 flow images not available at {FLOW_ROOT}")
    import json

    from merkit.store import ResultStore

    run_train(tmp_path, protocol="cde", model="off_apexnet", flows_dir=FLOW_ROOT, epochs=1,
              preset="fr_adam", threads=2, seeds=[0], folds=[FOLD], progress=False)  # fmt: skip
    res = ResultStore(tmp_path).results()
    params = json.loads(res["params"].iloc[0])
    assert (params["optimizer"], params["lr"], params["batch_size"], params["epochs"]) == (
        "adam",
        1e-4,
        32,
        1,
    )
    assert params["threads"] == 2
    assert json.loads(res["classes"].iloc[0]) == ["negative", "positive", "surprise"]


def test_balanced_class_weight_reaches_the_params_and_the_loss(tmp_path):
    if not (FLOW_ROOT / "combined_3_class2_for_optical_flow.csv").is_file():
        pytest.skip(f"MEGC 2019 flow images not available at {FLOW_ROOT}")
    import json

    from merkit.store import ResultStore

    for name, cw in (("plain", None), ("balanced", "balanced")):
        run_train(tmp_path / name, protocol="cde", model="off_apexnet", flows_dir=FLOW_ROOT,
                  epochs=2, class_weight=cw, seeds=[0], folds=[FOLD], progress=False)  # fmt: skip
    params = json.loads(ResultStore(tmp_path / "balanced").results()["params"].iloc[0])
    assert params["class_weight"] == "balanced"
    plain, balanced = (_fold_predictions(tmp_path / n) for n in ("plain", "balanced"))
    probs = [f"prob_{c}" for c in range(3)]
    # same seed and batches, other loss: other weights; the rare classes gain probability
    assert not np.allclose(plain[probs].to_numpy(), balanced[probs].to_numpy())
    assert balanced["prob_0"].mean() < plain["prob_0"].mean()
