"""Golden test: the STSTNet authors' released weights reproduce their LOSO log exactly.

Reads ``../shared/data/megc2019_flow`` in place (licensed data, never copied into the
repository) and skips when it is absent; the tests that load the released weights
(``megc2019_flow/ststnet_released_weights/<subject>.pth``) skip at their start when those
are absent.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from merkit.metrics import uar, uf1
from merkit.nets import create_model
from merkit.nets.data import make_loader, read_megc2019_flow
from merkit.nets.train import load_weights, predict

FLOW_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "megc2019_flow"
WEIGHTS = FLOW_ROOT / "ststnet_released_weights"


@pytest.fixture(scope="module")
def flows():
    if not (FLOW_ROOT / "combined_3_class2_for_optical_flow.csv").is_file():
        pytest.skip(f"MEGC 2019 flow images not available at {FLOW_ROOT}")
    return read_megc2019_flow(FLOW_ROOT, channels="svu")


@pytest.fixture(scope="module")
def weights(flows) -> Path:
    """Folder of the released per-subject weights; skips when it or a subject's file is
    absent (the flow images alone are not enough)."""
    if not WEIGHTS.is_dir():
        pytest.skip(f"released STSTNet weights not available at {WEIGHTS}")
    missing = sorted(
        s for s in flows.table["native_subject"].unique() if not (WEIGHTS / f"{s}.pth").is_file()
    )
    if missing:
        pytest.skip(
            f"released STSTNet weights incomplete in {WEIGHTS}: no .pth for {len(missing)} "
            f"subject(s), e.g. {missing[:3]}"
        )
    return WEIGHTS


def _released_predictions(flows, weights: Path) -> np.ndarray:
    model = create_model("ststnet")
    preds = np.full(len(flows), -1, dtype=np.int64)
    for native, rows in flows.table.groupby("native_subject"):
        load_weights(model, weights / f"{native}.pth")
        idx = rows.index.to_numpy()
        preds[idx], _ = predict(model, make_loader(flows.X[idx], batch_size=64))
    return preds


def test_all_rows_match_exactly_one_image(flows):
    t = flows.table
    assert len(t) == 442
    assert t["path"].is_unique
    assert len(list((FLOW_ROOT / "STSNet_whole_norm_u_v_os").glob("*.png"))) == 442
    assert flows.X.shape == (442, 3, 28, 28)
    assert t["subject"].nunique() == 68
    assert t.groupby("dataset")["subject"].nunique().to_dict() == {
        "CASME2": 24,
        "SAMM": 28,
        "SMIC_HS": 16,
    }
    assert np.bincount(flows.y).tolist() == [250, 109, 83]
    smic = t[t["dataset"] == "SMIC_HS"].iloc[0]
    assert (smic["native_subject"], smic["subject"], smic["clip"]) == (
        "s01",
        "SMIC_HS/s1",
        "s1_ne_01",
    )
    assert smic["path"].endswith("s01_s01_ne_01 .png")
    # every image reaches 0 and 255 in every channel (min-max normalised)
    assert flows.X.min(axis=(2, 3)).max() == 0 and flows.X.max(axis=(2, 3)).min() == 255


def test_released_weights_reproduce_the_authors_log(flows, weights):
    torch.set_num_threads(1)
    preds = _released_predictions(flows, weights)
    assert round(uf1(flows.y, preds), 4) == 0.7209
    assert round(uar(flows.y, preds), 4) == 0.7250
    # per subject, the (prediction, ground truth) pairs equal the log's (the log lists each
    # subject's clips in its own file-system order, so compare as multisets)
    log = (FLOW_ROOT / "STSTNet_python_logfile.txt").read_text()
    blocks = re.findall(
        r"Subject: (\S+)\s*\nPredicted\s*: \[([^\]]*)\]\s*\nGround Truth: \[([^\]]*)\]", log
    )
    assert len(blocks) == 68
    for native, p, g in blocks:
        idx = flows.table.index[flows.table["native_subject"] == native].to_numpy()
        logged = sorted(zip(map(int, p.split(",")), map(int, g.split(",")), strict=True))
        ours = sorted(zip(preds[idx].tolist(), flows.y[idx].tolist(), strict=True))
        assert ours == logged, native


def test_rgb_order_does_not_reproduce(flows, weights):
    rgb = flows.X[:, ::-1].copy()
    model = create_model("ststnet")
    load_weights(model, weights / "sub17.pth")  # 31 clips
    idx = flows.table.index[flows.table["native_subject"] == "sub17"].to_numpy()
    bgr_pred, _ = predict(model, make_loader(flows.X[idx]))
    rgb_pred, _ = predict(model, make_loader(rgb[idx]))
    assert not np.array_equal(bgr_pred, rgb_pred)
