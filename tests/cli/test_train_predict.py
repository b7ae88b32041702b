"""`merkit train` (CDE, flow networks) and `merkit predict` (one clip) end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from merkit.cli import app
from merkit.nets.predict import read_model_card
from merkit.video.flow import save_flow_image

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CLIP = SHARED / "clips" / "casme2_sub01_EP02_01f.avi"
runner = CliRunner()


def _flow_folder(root: Path) -> Path:
    """A tiny folder in the MEGC 2019 flow layout: 6 subjects (2 per database), 3 clips each."""
    rng = np.random.default_rng(0)
    img_dir = root / "STSNet_whole_norm_u_v_os"
    img_dir.mkdir(parents=True)
    rows = []
    subjects = [("casme2", "sub01", "EP0{}_01f"), ("casme2", "sub02", "EP1{}_02f"),
                ("smic", "s01", "s01_ne_0{}"), ("smic", "s02", "s02_po_0{}"),
                ("samm", "006", "006_1_{}"), ("samm", "007", "007_2_{}")]  # fmt: skip
    for db, sub, pattern in subjects:
        for c in range(3):
            clip = pattern.format(c + 1)
            label = c
            img = rng.integers(0, 60, (28, 28, 3)).astype(np.uint8)
            img[4 + 8 * label : 12 + 8 * label, :, label] = 255  # class-dependent band
            name = f"{sub}_{clip} .png" if db != "smic" else f"{sub}_{clip} .png"
            save_flow_image(img_dir / name, img)
            rows.append({"dataset": db, "sub": sub, "filename_o": clip, "label": label})
    pd.DataFrame(rows).to_csv(root / "combined_3_class2_for_optical_flow.csv", index=False)
    return root


def _train(flows: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--protocol", "cde", "--model", "fr", "--flows-dir",
                               str(flows), "--epochs", "2", "--seeds", "0,1", "--folds", "3",
                               "--out", str(out), *extra])  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cde")
    flows = _flow_folder(root / "flows")
    out = root / "out"
    res = _train(flows, out, "--final")
    assert res.exit_code == 0, res.output
    return flows, out, res.output


def test_train_writes_store_rows_per_database(trained):
    _, out, output = trained
    res = pd.read_csv(out / "results.csv")
    assert len(res) == 8  # 2 seeds x (composite + 3 databases)
    assert set(res["protocol"]) == {"cde"}
    assert sorted(res["task"].unique()) == ["CASME2", "SAMM", "SMIC_HS", "composite"]
    comp = res[res["task"] == "composite"]
    assert comp["n_test"].tolist() == [9, 9]  # 3 folds x 3 clips
    assert res[res["task"] == "SAMM"]["n_test"].tolist() == [3, 3]
    assert ((res["mean_f1"] >= 0) & (res["mean_f1"] <= 1)).all()
    preds = pd.read_csv(out / "predictions.csv")
    assert len(preds) == 2 * (9 + 9)
    assert "folds trained 6, from cache 0" in output
    assert "composite" in output


def test_train_resumes_and_weights_load(trained):
    flows, out, _ = trained
    run = json.loads((out / "run.json").read_text())["run"]
    fold_csv = sorted((out / "folds" / run / "seed1").glob("*.csv"))
    assert [p.stem for p in fold_csv] == ["CASME2_01", "SAMM_006", "SMIC_HS_s1"]
    probs = pd.read_csv(fold_csv[0])[["prob_0", "prob_1", "prob_2"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    before = pd.read_csv(out / "results.csv").sort_values(["task", "seed"])
    res = _train(flows, out)
    assert res.exit_code == 0, res.output
    assert "folds trained 0, from cache 6" in res.output
    after = pd.read_csv(out / "results.csv").sort_values(["task", "seed"])
    np.testing.assert_allclose(after["mean_f1"], before["mean_f1"])
    sd = torch.load(out / "weights" / run / "seed0" / "SAMM_006.pth", weights_only=True)
    assert isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())
    card = read_model_card(out / "weights" / run / "final.json")
    assert card.model == "fr" and card.classes == ("negative", "positive", "surprise")
    assert card.channels == "uvs"


def test_train_rejects_other_protocols(tmp_path):
    res = runner.invoke(app, ["train", "--protocol", "loso", "--flows-dir", str(tmp_path),
                              "--out", str(tmp_path / "o")])  # fmt: skip
    assert res.exit_code == 2
    assert "only 'cde'" in res.output
    assert len(res.output.strip().splitlines()) <= 2  # one error message, no traceback
    res = runner.invoke(app, ["train", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--flows-dir" in res.output


def test_predict_clip_prints_probabilities(trained):
    if not CLIP.is_file():
        pytest.skip("shared clip casme2_sub01_EP02_01f.avi is absent")
    _, out, _ = trained
    run = json.loads((out / "run.json").read_text())["run"]
    weights = out / "weights" / run / "final.pth"
    res = runner.invoke(app, ["predict", str(CLIP), "--model", str(weights), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert list(got["probabilities"]) == ["negative", "positive", "surprise"]
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert got["label"] == max(got["probabilities"], key=got["probabilities"].get)
    assert got["onset"] == 1 and got["offset"] == 44 and got["apex_spotted"]
    assert 1 < got["apex"] <= 44
    # given frames, a per-fold weights file (card found in the run folder), rich table
    res = runner.invoke(app, ["predict", str(CLIP), "--model",
                              str(out / "weights" / run / "seed0" / "CASME2_01.pth"),
                              "--onset", "3", "--apex", "30", "--offset", "40"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "frames 3..40, apex 30 (given)" in res.output
    assert "prediction:" in res.output and "surprise" in res.output


def test_predict_errors_are_one_line(trained, tmp_path):
    _, out, _ = trained
    run = json.loads((out / "run.json").read_text())["run"]
    weights = out / "weights" / run / "final.pth"
    res = runner.invoke(app, ["predict", str(tmp_path / "missing.avi"), "--model", str(weights)])
    assert res.exit_code == 2
    assert res.output.strip().startswith("error:") and "missing.avi" in res.output
    assert "Traceback" not in res.output
    lonely = tmp_path / "w.pth"
    lonely.write_bytes(weights.read_bytes())
    res = runner.invoke(app, ["predict", str(tmp_path), "--model", str(lonely)])
    assert res.exit_code == 2 and "no model card" in res.output
