"""`merkit train` (every protocol, flow and 3-D networks, flow folder or clips) and
`merkit predict` (one clip: emotion and AUs) end to end, on tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from merkit.cli import app
from merkit.metrics import per_au_f1, score_all, uf1
from merkit.nets.predict import read_model_card
from merkit.video.flow import save_flow_image
from tests.cli._output import one_error_line

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
CLIP = SHARED / "clips" / "casme2_sub01_EP02_01f.avi"
runner = CliRunner()
#: tests of the licensed CASME II clip skip before any fixture trains a network for them
needs_shared_clip = pytest.mark.skipif(
    not CLIP.is_file(), reason=f"licensed clip {CLIP.name} absent (../shared/data/clips)"
)


@pytest.fixture(scope="module")
def smile_clip(tmp_path_factory) -> Path:
    """A synthetic 24-frame clip (a face that smiles, MJPEG AVI): predict without the data."""
    from tests.video._clips import smile_frames, write_video

    return write_video(tmp_path_factory.mktemp("smile") / "smile.avi", smile_frames())


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
    folder = out / "folds" / run / "seed1"
    fold_csv = sorted(p for p in folder.glob("*.csv") if not p.name.endswith(".history.csv"))
    assert [p.stem for p in fold_csv] == ["CASME2_01", "SAMM_006", "SMIC_HS_s1"]
    features = [p for p in folder.glob("*.npz") if not p.name.endswith(".audit.npz")]
    assert len(list(folder.glob("*.history.csv"))) == len(features) == 3
    assert len(list(folder.glob("*.audit.npz"))) == 3  # the leak audit: on for flow networks
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


def test_parallel_folds_give_the_same_numbers(trained, tmp_path):
    flows, out, _ = trained
    res = _train(flows, tmp_path / "par", "--jobs", "2")
    assert res.exit_code == 0, res.output
    assert "folds trained 6, from cache 0" in res.output
    run = json.loads((out / "run.json").read_text())["run"]
    assert json.loads((tmp_path / "par" / "run.json").read_text())["run"] == run
    for seed in (0, 1):
        for f in sorted((out / "folds" / run / f"seed{seed}").glob("*.csv")):
            a = pd.read_csv(f)
            b = pd.read_csv(tmp_path / "par" / "folds" / run / f"seed{seed}" / f.name)
            cols = [c for c in a.columns if c != "seconds"]
            pd.testing.assert_frame_equal(a[cols], b[cols])
    before = pd.read_csv(out / "results.csv").sort_values(["task", "seed"])
    after = pd.read_csv(tmp_path / "par" / "results.csv").sort_values(["task", "seed"])
    np.testing.assert_array_equal(after["mean_f1"], before["mean_f1"])


def test_flow_folder_feeds_cde_and_smic_loso_only(trained, tmp_path):
    flows, _, _ = trained
    out = tmp_path / "o"
    res = runner.invoke(app, ["train", "--protocol", "loso", "--task", "SMIC_HS-3", "--model",
                              "ststnet", "--flows-dir", str(flows), "--epochs", "1", "--out",
                              str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    row = pd.read_csv(out / "results.csv").iloc[0]
    got = (row["protocol"], row["task"], row["n_test"], row["target"])
    assert got == ("loso", "SMIC_HS-3", 6, "SMIC_HS")
    hist = pd.read_csv(out / "history.csv", dtype={"fold": str})
    assert sorted(hist["fold"].unique()) == ["SMIC_HS/s1", "SMIC_HS/s2"]
    res = runner.invoke(app, ["train", "--protocol", "loso", "--flows-dir", str(flows),
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2
    assert "--flows-dir holds the MEGC 2019 3-class composite labels only" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["train", "--model", "r3d", "--flows-dir", str(flows), "--out",
                              str(out)])  # fmt: skip
    assert res.exit_code == 2 and "3-D network that takes whole clips" in res.output
    res = runner.invoke(app, ["train", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "--flows-dir" in res.output


@needs_shared_clip
def test_predict_clip_prints_probabilities(trained):
    _, out, _ = trained
    run = json.loads((out / "run.json").read_text())["run"]
    weights = out / "weights" / run / "final.pth"
    res = runner.invoke(app, ["predict", str(CLIP), "--model", str(weights), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
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
    # the run folder instead of a file: one line pointing at the final weights inside
    res = runner.invoke(app, ["predict", str(tmp_path), "--model", str(out / "weights")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "is a folder, not a weights file" in res.output and "final.pth" in res.output


# --------------------------------------------------------------------------- --data (clips)
#: flow settings for the synthetic faces (they fill the frame: no face detection)
FAST = ["--no-align", "--flow-preset", "fast", "--face-size", "56", "--epochs", "2"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("synth")
    # tiny databases at half the frame size (4x faster to write; the flows use 56 x 56 faces)
    synthesize(root / "data", seed=0, size={"preset": "tiny", "scale": 0.5},
               databases=("CASME2", "SMIC_HS", "SMIC_VIS", "SAMM", "DFME"))  # fmt: skip
    return root / "data", root / "cache"


def _train_data(synth, out: Path, *args: str):
    data, cache = synth
    return runner.invoke(app, ["train", "--data", str(data), "--cache", str(cache), *FAST,
                               "--out", str(out), *args])  # fmt: skip


def test_data_cde_writes_history_embeddings_and_resumes(synth, tmp_path):
    out = tmp_path / "cde"
    res = _train_data(synth, out, "--model", "ststnet", "--folds", "4")
    assert res.exit_code == 0, res.output
    assert "folds trained 4, from cache 0" in res.output
    results = pd.read_csv(out / "results.csv")
    assert results["task"].tolist() == ["composite", "SMIC_HS", "CASME2", "SAMM"]
    preds = pd.read_csv(out / "predictions.csv", dtype={"fold": str})
    comp = preds[preds["task"] == "composite"]
    n = len(comp)
    assert results["n_test"].iloc[0] == n and comp["fold"].nunique() == 4
    hist = pd.read_csv(out / "history.csv", dtype={"fold": str})
    assert list(hist.columns) == ["protocol", "task", "method", "seed", "fold", "epoch", "loss",
                                  "accuracy", "lr"]  # fmt: skip
    assert len(hist) == 4 * 2 and set(hist["epoch"]) == {1, 2}
    assert set(hist["task"]) == {"composite"} and set(hist["method"]) == {"ststnet"}
    assert (hist["lr"] == 5e-5).all()  # the STSTNet preset
    emb = np.load(out / "embeddings" / "cde__composite__ststnet__seed0.npz")
    assert emb["z"].shape == (n, 400) and emb["z"].dtype == np.float32
    assert list(emb["classes"]) == ["negative", "positive", "surprise"]
    order = comp.sort_values("sample")
    np.testing.assert_array_equal(emb["y_pred"], order["y_pred"].to_numpy())
    np.testing.assert_array_equal(emb["y_true"], order["y_true"].to_numpy())
    assert all(s.endswith("/" + c) for s, c in zip(emb["sample_id"], order["clip"], strict=True))
    assert set(emb["fold"]) == set(comp["fold"])
    # resume: nothing retrained, same numbers, history blocks replaced (not duplicated)
    res = _train_data(synth, out, "--model", "ststnet", "--folds", "4")
    assert res.exit_code == 0, res.output
    assert "folds trained 0, from cache 4" in res.output
    assert len(pd.read_csv(out / "history.csv")) == 8
    again = np.load(out / "embeddings" / "cde__composite__ststnet__seed0.npz")
    np.testing.assert_array_equal(again["z"], emb["z"])
    # same seed in a fresh folder: the same predictions
    res = _train_data(synth, tmp_path / "cde2", "--model", "ststnet", "--folds", "4")
    assert res.exit_code == 0, res.output
    fresh = np.load(tmp_path / "cde2" / "embeddings" / "cde__composite__ststnet__seed0.npz")
    np.testing.assert_allclose(fresh["z"], emb["z"], rtol=1e-6)


def test_data_cdmer_rows_render_in_the_paper_table(synth, tmp_path):
    from merkit.results.tables import cdmer_table
    from merkit.store import ResultStore

    out = tmp_path / "cdmer"
    res = _train_data(synth, out, "--protocol", "cdmer", "--model", "ststnet", "--task",
                      "Exp.1,C->H", "--no-fold-weights")  # fmt: skip
    assert res.exit_code == 0, res.output
    r = pd.read_csv(out / "results.csv")
    assert r[["task", "source", "target"]].values.tolist() == [
        ["Exp.1", "SMIC_HS", "SMIC_VIS"], ["Exp.7", "CASME2", "SMIC_HS"]]  # fmt: skip
    assert r["n_test"].tolist() == [6, 9]  # every clip of the target database
    assert json.loads(r["params"][0])["momentum"] == 0.0  # STSTNet keeps its Adam preset
    table = cdmer_table(ResultStore(out).results())
    assert list(table.columns) == ["Exp.1", "Exp.7", "TYPE-I", "TYPE-II"]
    assert table.index.tolist() == ["ststnet"]
    hist = pd.read_csv(out / "history.csv")
    assert sorted(set(hist["fold"])) == ["CASME2->SMIC_HS", "SMIC_HS->SMIC_VIS"]
    run = json.loads((out / "run.json").read_text())["runs"]
    card = read_model_card(out / "weights" / run["Exp.7"] / "model.json")
    assert card.info["task"] == "Exp.7" and card.classes == ("negative", "positive", "surprise")
    assert not list((out / "weights").rglob("*.pth"))  # --no-fold-weights


def test_data_loso_and_kfold_fold_averages(synth, tmp_path):
    out = tmp_path / "single"
    res = _train_data(synth, out, "--protocol", "loso", "--model", "off_apexnet", "--task",
                      "CASME2-5,SAMM-4")  # fmt: skip
    assert res.exit_code == 0, res.output
    r = pd.read_csv(out / "results.csv")
    assert r["task"].tolist() == ["CASME2-5", "SAMM-4"]
    params = json.loads(r["params"][0])
    assert (params["lr"], params["momentum"], params["batch_size"]) == (5e-4, 0.8, 32)
    assert json.loads(r["classes"][1]) == ["negative", "positive", "surprise", "others"]
    assert r["n_test"].tolist() == [8, 9]  # casme2_5 drops the CASME II sadness clip
    res = _train_data(synth, out, "--protocol", "kfold", "--model", "ststnet", "--n-folds", "3")
    assert res.exit_code == 0, res.output
    r = pd.read_csv(out / "results.csv")
    row = r[r["protocol"] == "kfold"].iloc[0]
    assert row["task"] == "DFME-7" and row["folds"] == 3
    preds = pd.read_csv(out / "predictions.csv")
    p = preds[preds["protocol"] == "kfold"]
    per = [score_all(g["y_true"], g["y_pred"]) for _, g in p.groupby("fold")]
    assert row["fold_mean_f1"] == pytest.approx(np.mean([s["mean_f1"] for s in per]))
    assert row["fold_uar"] == pytest.approx(np.mean([s["uar"] for s in per]))
    assert row["mean_f1"] == pytest.approx(uf1(p["y_true"], p["y_pred"], labels=range(7)))
    summary = pd.read_csv(out / "summary.csv")
    assert summary.columns[-3:].tolist() == ["fold_uf1", "fold_uar", "fold_accuracy"]
    res = _train_data(synth, out, "--protocol", "kfold", "--model", "ststnet")
    assert res.exit_code == 2
    assert "10 folds need at least 10 subjects, the data has 5" in res.output


@pytest.fixture(scope="module")
def au_run(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("au") / "au"
    res = _train_data(synth, out, "--protocol", "au", "--model", "fr", "--n-folds", "3",
                      "--final")  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def _predict_aus(clip: Path, final: Path, names: list[str]) -> None:
    res = runner.invoke(app, ["predict", str(clip), "--model", str(final), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["label"] == "" and got["probabilities"] == {}
    assert list(got["aus"]) == names
    assert all(0 < p < 1 for p in got["aus"].values())
    assert got["aus_present"] == [a for a, p in got["aus"].items() if p > 0.5]
    res = runner.invoke(app, ["predict", str(clip), "--model", str(final)])
    assert res.exit_code == 0 and "action units present" in res.output and "AU17" in res.output


def test_data_au_rows_and_predict_prints_aus(au_run, smile_clip):
    out = au_run
    r = pd.read_csv(out / "results.csv")
    assert (r["protocol"] == "au").all() and r["task"].str.startswith("DFME-AU12/AU").all()
    emb = np.load(out / "embeddings" / "au__DFME-AU12__fr__seed0.npz")
    assert emb["y_true"].shape == emb["y_pred"].shape == (10, 12)
    assert emb["z"].shape == (10, 256)
    f1 = per_au_f1(emb["y_true"], emb["y_pred"])
    names = list(emb["classes"])
    for _, row in r.iterrows():
        assert row["mean_f1"] == pytest.approx(f1[names.index(row["task"].split("/")[1])])
    assert len(r) == int(emb["y_true"].any(axis=0).sum())  # AUs absent from every clip: no row
    mean = pd.read_csv(out / "summary.csv").set_index("task").loc["DFME-AU12/mean", "uf1"]
    assert mean == pytest.approx(r["mean_f1"].mean())
    hist = pd.read_csv(out / "history.csv")
    assert ((hist["accuracy"] >= 0) & (hist["accuracy"] <= 1)).all()  # exact-match ratio
    run = json.loads((out / "run.json").read_text())["run"]
    _predict_aus(smile_clip, out / "weights" / run / "final.pth", names)


@needs_shared_clip
def test_predict_prints_aus_of_the_shared_clip(au_run):
    run = json.loads((au_run / "run.json").read_text())["run"]
    names = list(np.load(au_run / "embeddings" / "au__DFME-AU12__fr__seed0.npz")["classes"])
    _predict_aus(CLIP, au_run / "weights" / run / "final.pth", names)


@pytest.fixture(scope="module")
def r3d_run(synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("r3d") / "r3d"
    res = _train_data(synth, out, "--protocol", "loso", "--task", "SAMM-4", "--model", "r3d",
                      "--model-arg", "width=4", "--clip-size", "32", "--clip-length", "8",
                      "--final")  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def _predict_r3d(clip: Path, final: Path) -> dict:
    res = runner.invoke(app, ["predict", str(clip), "--model", str(final), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["apex"] is None and got["model"] == "r3d"
    assert list(got["probabilities"]) == ["negative", "positive", "surprise", "others"]
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert got["label"] == max(got["probabilities"], key=got["probabilities"].get)
    return got


def test_data_r3d_on_clips_and_predict(r3d_run, smile_clip):
    out = r3d_run
    r = pd.read_csv(out / "results.csv").iloc[0]
    assert (r["method"], r["task"], r["n_test"]) == ("r3d", "SAMM-4", 9)
    params = json.loads(r["params"])
    assert (params["width"], params["in_channels"]) == (4, 1)
    emb = np.load(out / "embeddings" / "loso__SAMM-4__r3d__seed0.npz")
    assert emb["z"].shape == (9, 32)  # 8 x width
    run = json.loads((out / "run.json").read_text())["run"]
    card = read_model_card(out / "weights" / run / "model.json")
    assert card.input_kind == "clip" and card.size == (32, 32) and card.clip["length"] == 8
    sd = torch.load(out / "weights" / run / "final.pth", weights_only=True)
    assert sd["stem.0.weight"].shape == (4, 1, 3, 7, 7)
    got = _predict_r3d(smile_clip, out / "weights" / run / "final.pth")
    assert (got["onset"], got["offset"], got["face"]) == (1, 24, "none")  # card: --no-align


@needs_shared_clip
def test_r3d_predicts_the_shared_clip(r3d_run):
    run = json.loads((r3d_run / "run.json").read_text())["run"]
    got = _predict_r3d(CLIP, r3d_run / "weights" / run / "final.pth")
    assert (got["onset"], got["offset"]) == (1, 44)


def test_data_errors_name_the_mismatch(synth, tmp_path):
    data, _ = synth
    out = tmp_path / "err"
    res = _train_data(synth, out, "--protocol", "loso", "--task", "CASME2-7")
    assert res.exit_code == 2 and "unknown loso task 'CASME2-7'" in res.output
    res = _train_data(synth, out, "--protocol", "au", "--task", "SAMM-AU12", "--model", "nope")
    assert res.exit_code == 2 and "unknown model 'nope'" in res.output
    res = _train_data(synth, out, "--protocol", "xyz")
    assert res.exit_code == 2 and "unknown protocol 'xyz'" in res.output
    res = _train_data(synth, out, "--model-arg", "width")
    assert res.exit_code == 2 and "NAME=VALUE" in res.output
    only_smic = tmp_path / "smic"
    only_smic.mkdir()
    (only_smic / "SMIC").symlink_to(data / "SMIC")
    res = runner.invoke(app, ["train", "--protocol", "au", "--data", str(only_smic), *FAST,
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2 and "no au task can run: its tasks need ['DFME']" in res.output
    assert "Traceback" not in res.output


def _ststnet(flows: Path, out: Path, *extra: str):
    return runner.invoke(app, ["train", "--protocol", "cde", "--model", "ststnet", "--flows-dir",
                               str(flows), "--epochs", "3", "--batch-size", "4", "--out",
                               str(out), *extra])  # fmt: skip


def test_ststnet_folds_train_batched_and_a_partial_run_gives_the_same_folds(trained, tmp_path):
    from merkit.nets.kernels import load_kernel

    if load_kernel("ststnet_folds") is None:
        pytest.skip("no C++ compiler / ninja to build the fold-batched kernel")
    flows = trained[0]
    full = _ststnet(flows, tmp_path / "full")
    assert full.exit_code == 0, full.output
    assert "folds trained 6, from cache 0" in full.output
    info = json.loads((tmp_path / "full" / "run.json").read_text())
    results = pd.read_csv(tmp_path / "full" / "results.csv")
    assert json.loads(results["params"].iloc[0])["fold_batched"] is True
    part = _ststnet(flows, tmp_path / "part", "--folds", "3")
    assert part.exit_code == 0, part.output
    run = info["run"]
    assert json.loads((tmp_path / "part" / "run.json").read_text())["run"] == run
    names = sorted(p.name for p in (tmp_path / "part" / "folds" / run / "seed0").glob("*.csv"))
    assert len([n for n in names if not n.endswith(".history.csv")]) == 3
    for name in names:  # each fold trains as in the full run, whoever it is batched with
        a = pd.read_csv(tmp_path / "full" / "folds" / run / "seed0" / name)
        b = pd.read_csv(tmp_path / "part" / "folds" / run / "seed0" / name)
        cols = [c for c in a.columns if c != "seconds"]
        pd.testing.assert_frame_equal(a[cols], b[cols])
    off = _ststnet(flows, tmp_path / "off", "--fold-batching", "off")
    assert off.exit_code == 0, off.output
    assert json.loads((tmp_path / "off" / "run.json").read_text())["run"] != run
    bad = runner.invoke(app, ["train", "--protocol", "cde", "--model", "fr", "--flows-dir",
                              str(flows), "--fold-batching", "on",
                              "--out", str(tmp_path / "x")])  # fmt: skip
    assert bad.exit_code != 0 and "Traceback" not in bad.output
    assert "--fold-batching on: fr has no fold-batched implementation" in bad.output
    assert not (tmp_path / "x" / "results.csv").exists()


def test_data_magnify_trains_on_magnified_flows_and_predict_applies_it(synth, smile_clip,
                                                                       tmp_path):  # fmt: skip
    """`--magnify` magnifies every clip before its flow (a new input identity, recorded in
    the model card); `merkit predict` magnifies a new clip the same way, at a video's own
    frame rate (the 30 fps test video: the band stays below 15 Hz), and asks a frame folder
    for `--fps`."""
    args = ["--model", "ststnet", "--folds", "2", "--fold-batching", "off"]
    plain = _train_data(synth, tmp_path / "plain", *args)
    assert plain.exit_code == 0, plain.output
    mag = _train_data(synth, tmp_path / "mag", *args, "--magnify", "4", "--magnify-band",
                      "2,12", "--final")  # fmt: skip
    assert mag.exit_code == 0, mag.output
    info = json.loads((tmp_path / "mag" / "run.json").read_text())
    assert info["inputs"]["magnify"] == {"alpha": 4.0, "band": [2.0, 12.0],
                                         "pyramid": "laplacian", "filter": "ideal",
                                         "cutoff": 16.0, "levels": None}  # fmt: skip
    r_plain = pd.read_csv(tmp_path / "plain" / "results.csv")
    r_mag = pd.read_csv(tmp_path / "mag" / "results.csv")
    assert r_plain["data"].iloc[0] != r_mag["data"].iloc[0]  # other flow images
    final = next((tmp_path / "mag" / "weights").rglob("final.pth"))
    card = json.loads(final.with_suffix(".json").read_text())
    assert card["flow"]["magnify"]["alpha"] == 4.0
    res = runner.invoke(app, ["predict", str(smile_clip), "--model", str(final), "--json",
                              "--no-align"])  # fmt: skip
    assert res.exit_code == 0, res.output
    magnified = json.loads(res.output)["probabilities"]
    assert abs(sum(magnified.values()) - 1) < 1e-6
    plain_card = tmp_path / "plain_card"  # the same weights, a card without magnification
    plain_card.mkdir()
    (plain_card / "final.pth").write_bytes(final.read_bytes())
    del card["flow"]["magnify"]
    (plain_card / "final.json").write_text(json.dumps(card))
    res = runner.invoke(app, ["predict", str(smile_clip), "--model",
                              str(plain_card / "final.pth"), "--json", "--no-align"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["probabilities"] != magnified  # the card's magnification ran
    frames = tmp_path / "frames"
    frames.mkdir()
    from tests.video._clips import smile_frames

    for i, f in enumerate(smile_frames(), start=1):
        cv2.imwrite(str(frames / f"img{i}.jpg"), f)
    res = runner.invoke(app, ["predict", str(frames), "--model", str(final), "--no-align"])
    assert one_error_line(res) == (
        f"error: the model {str(final)!r} was trained on magnified clips: give the frame rate "
        f"of {str(frames)!r} (a frame folder) with --fps"
    )
    res = runner.invoke(app, ["predict", str(frames), "--model", str(final), "--no-align",
                              "--fps", "30", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output


def test_magnify_with_the_flow_folder_is_one_error_line(tmp_path):
    flows = _flow_folder(tmp_path / "flows")
    res = runner.invoke(app, ["train", "--flows-dir", str(flows), "--magnify", "2", "--out",
                              str(tmp_path / "out")])  # fmt: skip
    assert one_error_line(res) == (
        "error: --magnify needs the clips (--data): the MEGC 2019 flow images of --flows-dir "
        "are already computed"
    )


def test_clip_inputs_are_magnified_before_tim(synth):
    """The 3-D networks' clip volumes: `magnify` in the clip parameters magnifies the frames
    (at each clip's fps) before TIM, and changes only the clips' moving parts."""
    from merkit.video.magnify import Magnification
    from merkit.workflows.databases import load_databases
    from merkit.workflows.train import clip_inputs

    data, _ = synth
    table = load_databases(data, names=["CASME2"])["CASME2"].head(2)
    base = {"align": False, "size": [32, 32], "length": 8}
    plain = clip_inputs(table, params=base)
    mag = Magnification(4.0, band=(2.0, 20.0)).key()
    magnified = clip_inputs(table, params={**base, "magnify": mag})
    assert magnified.shape == plain.shape == (2, 1, 8, 32, 32)
    assert not np.array_equal(magnified, plain)
    # magnification amplifies temporal change: the frames move further from the first one
    assert np.abs(np.diff(magnified, axis=2)).mean() > np.abs(np.diff(plain, axis=2)).mean()
