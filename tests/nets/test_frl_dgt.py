"""FRL-DGT's Transformer Fusion on flow displacement (merkit.nets.frl_dgt)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from merkit.cli import app
from merkit.nets import count_parameters, create_model, input_kind, training_preset
from merkit.nets.data import make_loader
from merkit.nets.frl_dgt import AU_REGIONS, FRLDGT, au_region_boxes, region_pixels
from merkit.nets.train import PRESETS, TrainConfig, fit
from merkit.video.face import reference_landmarks
from merkit.workflows.train import preset_for
from tests.cli.test_train_predict import _flow_folder


def _flow(n: int = 2, size: int = 28, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 255


def test_forward_shape_and_registration():
    torch.manual_seed(0)
    model = create_model("frl_dgt").eval()
    with torch.no_grad():
        out = model(_flow(5))
        feats = model.features(_flow(5))
    assert out.shape == (5, 3)
    assert feats.shape == (5, 64)
    assert torch.isfinite(out).all()
    assert input_kind("frl_dgt") == "flow"
    assert training_preset("frl_dgt") == "frl_dgt"
    assert preset_for("frl_dgt", "cde") == "frl_dgt"
    p = PRESETS["frl_dgt"]
    assert (p.optimizer, p.lr, p.batch_size, p.epochs, p.weight_decay, p.scheduler) == (
        "adamw", 5e-4, 32, 100, 0.05, "cosine",
    )  # fmt: skip


def _block(d: int, ratio: int = 4) -> int:
    """One pre-norm block: 2 LayerNorms, q/k/v + output projections, the 2-layer MLP."""
    h = ratio * d
    return 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * h + h) + (h * d + d)


def _expected_count(*, d=64, c=2, r=7, k=3, side=28, p=4, rs=8, rp=2, fused=16, depths=(1, 1, 2)):
    n_local, n_full = (rs // rp) ** 2, (side // p) ** 2
    local = (c * rp * rp * d + d) + n_local * d + r * d + 2 * d  # embed, pos, region, norm
    glob = r * d + 2 * d  # region embedding, norm
    full = (c * p * p * d + d) + n_full * d + ((r + n_full) * fused + fused)  # + token fusion
    head = 2 * d + (d * k + k)
    return local + glob + full + head + sum(depths) * _block(d)


def test_parameter_count_matches_the_layer_formula():
    assert _block(64) == 12 * 64 * 64 + 13 * 64 == 49_984
    assert count_parameters(create_model("frl_dgt")) == _expected_count() == 209_171
    assert count_parameters(create_model("frl_dgt", num_classes=5)) == _expected_count(k=5)
    strain = create_model("frl_dgt", use_strain=True, dim=32, heads=2, full_depth=1)
    assert count_parameters(strain) == _expected_count(c=3, d=32, depths=(1, 1, 1))


def test_same_seed_same_weights_after_a_tiny_fit():
    x = _flow(12, seed=3).numpy()
    y = np.arange(12) % 3
    cfg = TrainConfig.preset("frl_dgt", epochs=2, batch_size=4, threads=1)

    def trained(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        model = create_model("frl_dgt")
        fit(model, make_loader(x, y, batch_size=4, shuffle=True, seed=seed), cfg)
        return model.state_dict()

    a, b, c = trained(0), trained(0), trained(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], c["head.weight"])
    torch.manual_seed(0)
    assert not torch.equal(create_model("frl_dgt").state_dict()["head.weight"], a["head.weight"])


def test_default_regions_lie_inside_the_image_and_hold_their_landmarks():
    boxes = au_region_boxes()
    assert len(boxes) == len(AU_REGIONS) == 7
    pts = reference_landmarks((28, 28), margin=0.0) + 0.5  # pixel-corner coordinates
    for (x0, y0, x1, y1), (_aus, idx) in zip(boxes, AU_REGIONS.values(), strict=True):
        assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
        p = pts[list(idx)] / 28
        assert (p[:, 0] >= x0).all() and (p[:, 0] <= x1).all()
        assert (p[:, 1] >= y0).all() and (p[:, 1] <= y1).all()
    # the canonical face is left-right symmetric: so are the paired regions
    names = list(AU_REGIONS)
    for side in ("brow", "eye"):
        r, left = boxes[names.index(f"right_{side}")], boxes[names.index(f"left_{side}")]
        assert r[0] == pytest.approx(1 - left[2], abs=2e-4)
        assert r[1] == left[1] and r[3] == left[3]
    # the pixel boxes on the 28 x 28 composite images: non-empty, inside the image
    for x0, y0, x1, y1 in region_pixels(boxes, 28):
        assert 0 <= x0 < x1 <= 28 and 0 <= y0 < y1 <= 28
    # brows above eyes above mouth above chin bottom
    ys = {n: b[1] for n, b in zip(names, boxes, strict=True)}
    assert ys["right_brow"] < ys["right_eye"] < ys["mouth"] < ys["chin"]


def test_region_crops_are_the_regions_of_the_displacement():
    model = FRLDGT(regions=((0.25, 0.5, 0.75, 1.0), (0.0, 0.0, 0.5, 0.5)), region_size=4,
                   region_patch=2).eval()  # fmt: skip
    x = torch.zeros(1, 3, 28, 28)
    x[:, 0, 14:, 7:21] = 255.0  # u = +1 exactly on the first region
    x[:, 1, :14, :14] = 127.5  # v = 0 on the second region, -1 elsewhere
    crops = model._regions(model.displacement(x))
    assert crops.shape == (1, 2, 2, 4, 4)
    assert torch.all(crops[0, 0, 0] == 1.0) and torch.all(crops[0, 1, 0] == -1.0)
    assert torch.all(crops[0, 1, 1] == 0.0) and torch.all(crops[0, 0, 1] == -1.0)


def test_strain_is_ignored_unless_asked_and_other_sizes_are_resized():
    torch.manual_seed(0)
    model = create_model("frl_dgt").eval()
    x = _flow(3)
    x2 = x.clone()
    x2[:, 2] = 0
    with torch.no_grad():
        assert torch.equal(model(x), model(x2))
        big = F.interpolate(x, size=(56, 56), mode="bilinear", align_corners=False)
        back = F.interpolate(
            big[:, :2] / 127.5 - 1, size=(28, 28), mode="bilinear", align_corners=False
        )
        assert torch.allclose(model.displacement(big), back, atol=1e-6)
        assert model(big).shape == (3, 3)
    torch.manual_seed(0)
    strain = create_model("frl_dgt", use_strain=True).eval()
    with torch.no_grad():
        assert not torch.allclose(strain(x), strain(x2))


@pytest.mark.parametrize(
    ("regions", "match"),
    [
        ([[0.0, 0.0, 1.2, 0.5]], r"region 0 is \(0.0, 0.0, 1.2, 0.5\); needs 0 <= x0 < x1 <= 1"),
        ([[0.1, 0.1, 0.5, 0.5], [0.5, 0.5, 0.5, 0.9]], "region 1 is"),
        ([[0.1, 0.1, 0.5]], r"regions=\[\[0.1, 0.1, 0.5\]\] \(a list\) does not match"),
        ([], "at least one region"),
    ],
)
def test_bad_regions_are_one_line_errors(regions, match):
    with pytest.raises(ValueError, match=match) as err:
        create_model("frl_dgt", regions=regions)
    assert "\n" not in str(err.value)
    assert "model 'frl_dgt'" in str(err.value)


def test_a_region_of_three_numbers_built_directly_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"region 0 is \(0.1, 0.1, 0.5\); expected 4 numbers"):
        FRLDGT(regions=((0.1, 0.1, 0.5),))  # type: ignore[arg-type]


def test_bad_inputs_and_sizes_are_one_line_errors():
    model = create_model("frl_dgt")
    for x, match in [
        (torch.rand(2, 1, 28, 28), r"FRLDGT expects a 4-D tensor .* at least 2 channels"),
        (torch.rand(3, 28, 28), "FRLDGT expects a 4-D tensor"),
        (torch.rand(2, 3, 3, 28), r"at least 4 x 4 pixels, got \(3, 28\)"),
    ]:
        with pytest.raises(ValueError, match=match) as err:
            model(x)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="image_size 30 is not a multiple of patch_size 4"):
        create_model("frl_dgt", image_size=30)
    with pytest.raises(ValueError, match="dim 60 is not a multiple of heads 8"):
        create_model("frl_dgt", dim=60, heads=8)
    with pytest.raises(ValueError, match=r"at least 3 channels"):
        create_model("frl_dgt", use_strain=True)(torch.rand(1, 2, 28, 28))


def test_merkit_train_cde_end_to_end(tmp_path):
    flows = _flow_folder(tmp_path / "flows")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["train", "--protocol", "cde", "--model", "frl_dgt",
                                   "--flows-dir", str(flows), "--epochs", "1", "--folds", "2",
                                   "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = pd.read_csv(out / "results.csv")
    comp = rows[rows["task"] == "composite"].iloc[0]
    assert comp["method"] == "frl_dgt"
    assert comp["n_test"] == 6  # 2 folds x 3 clips
    assert 0.0 <= comp["mean_f1"] <= 1.0
    preds = pd.read_csv(out / "predictions.csv")
    assert (preds["task"] == "composite").sum() == 6
    assert "folds trained 2" in res.output
