"""HTNet: parameter count from the layer formula, region boxes, mosaic, errors, training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from merkit.cli import app
from merkit.nets import count_parameters, create_model, training_preset
from merkit.nets.htnet import (
    AUTHORS_FALLBACK_REGIONS,
    CANONICAL_REGIONS,
    ConvAttention,
    HTNet,
    canonical_regions,
)
from merkit.nets.train import PRESETS, TrainConfig, train_fold
from merkit.video.face import LANDMARK_GROUPS, reference_landmarks
from tests.cli.test_train_predict import _flow_folder

#: a small HTNet of the same structure (the registered one has 139.6 M parameters)
SMALL = {"dim": 8, "heads": 2, "depths": (1, 1, 1), "mlp_mult": 2}


def htnet_parameters(
    num_classes=3, channels=3, patch=7, dim=256, heads=3, depths=(2, 2, 10), mlp=4, mosaic=28
) -> int:
    """Trainable parameters of HTNet from the layer formula of the authors' Model.py."""
    levels = len(depths)
    seq_len = (mosaic // patch // 2 ** (levels - 1)) ** 2
    total = channels * patch**2 * dim + dim  # 1x1 patch embedding
    for i, depth in enumerate(depths):
        d, h = dim * 2**i, heads * 2**i
        inner = (d // h) * h
        layer = (
            2 * d  # pre-norm of attention
            + d * 3 * inner  # q, k, v (no bias)
            + (inner * d + d)  # output projection
            + 2 * d  # pre-norm of the MLP
            + (d * mlp * d + mlp * d + mlp * d * d + d)  # MLP: two 1x1 convs
        )
        total += seq_len + depth * layer  # positional scalars + layers
        if i < levels - 1:
            total += d * 2 * d * 9 + 2 * d + 2 * (2 * d)  # aggregate: 3x3 conv + norm
    last = dim * 2 ** (levels - 1)
    return total + 2 * last + last * num_classes + num_classes  # head: norm + linear


@pytest.fixture(scope="module")
def full():
    """The registered network (139.6 M parameters: built once, 2 s)."""
    torch.manual_seed(0)
    return create_model("htnet").eval()


def test_parameter_count_is_the_authors_formula(full):
    assert htnet_parameters() == 139_582_982  # Model.py with main_HTNet.py's arguments
    assert count_parameters(full) == htnet_parameters()
    small = HTNet(num_classes=5, **SMALL)
    assert count_parameters(small) == htnet_parameters(num_classes=5, dim=8, heads=2,
                                                       depths=(1, 1, 1), mlp=2)  # fmt: skip


def test_forward_shape_and_declarations(full):
    with torch.no_grad():
        out = full(torch.rand(4, 3, 28, 28) * 255)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    assert HTNet.input_kind == "flow" and training_preset("htnet") == "htnet"
    assert PRESETS["htnet"] == TrainConfig(epochs=800, batch_size=256, optimizer="adam", lr=5e-5)


def test_canonical_boxes_are_derived_from_the_canonical_face():
    assert canonical_regions() == CANONICAL_REGIONS
    pts = reference_landmarks((28, 28), margin=0.1)
    centres = [pts[list(LANDMARK_GROUPS["right_eye"])].mean(0), pts[48],
               pts[list(LANDMARK_GROUPS["left_eye"])].mean(0), pts[54]]  # fmt: skip
    for (x0, y0, x1, y1), (cx, cy) in zip(CANONICAL_REGIONS, centres, strict=True):
        assert (x1 - x0, y1 - y0) == (14, 14)
        assert 0 <= x0 and 0 <= y0 and x1 <= 28 and y1 <= 28
        # centred to the nearest pixel: box centre (x0 + 6.5) within half a pixel
        assert abs(x0 + 6.5 - cx) <= 0.5 and abs(y0 + 6.5 - cy) <= 0.5
    (le, ll, re, rl) = CANONICAL_REGIONS
    assert le[1] < ll[1] and re[1] < rl[1]  # eyes above lips
    assert le[0] < re[0] and ll[0] < rl[0]  # image left first
    assert re[0] == 28 - le[2] and rl[0] == 28 - ll[2]  # mirror images about the midline
    for box in AUTHORS_FALLBACK_REGIONS:
        assert box[2] - box[0] == box[3] - box[1] == 14
        assert min(box) >= 0 and max(box) <= 28


def test_mosaic_tiles_are_the_boxes_and_other_sizes_are_resized():
    x = torch.arange(2 * 3 * 28 * 28, dtype=torch.float32).reshape(2, 3, 28, 28)
    m = HTNet(**SMALL).mosaic(x)
    assert m.shape == (2, 3, 28, 28)
    tiles = [m[..., :14, :14], m[..., :14, 14:], m[..., 14:, :14], m[..., 14:, 14:]]
    for tile, (x0, y0, x1, y1) in zip(tiles, CANONICAL_REGIONS, strict=True):
        assert torch.equal(tile, x[..., y0:y1, x0:x1])
    small = HTNet(regions=[[0, 0, 7, 7], [21, 0, 28, 7], [0, 21, 7, 28], [21, 21, 28, 28]],
                  **SMALL)  # fmt: skip
    ramp = torch.linspace(0, 1, 28).expand(1, 3, 28, 28)
    out = small.mosaic(ramp)
    assert out.shape == (1, 3, 28, 28)
    row = out[0, 0, 0, :14]  # the 7 columns 0..6, bilinearly stretched to 14
    assert torch.all(row.diff() >= 0) and abs(float(row[-1]) - float(ramp[0, 0, 0, 6])) < 0.02


def test_only_pixels_inside_the_regions_reach_the_output():
    torch.manual_seed(0)
    model = HTNet(**SMALL).eval()
    x = torch.rand(1, 3, 28, 28)
    with torch.no_grad():
        base = model(x)
        outside = x.clone()
        outside[..., 0, 0] += 5.0  # pixel (x 0, y 0): in no canonical box
        outside[..., 27, :] += 5.0  # bottom row: below the lips boxes
        inside = x.clone()
        inside[..., 20, 8] += 5.0  # in the left lips box
        assert torch.equal(model(outside), base)
        assert not torch.allclose(model(inside), base)


def test_attention_is_scaled_dot_product_attention():
    torch.manual_seed(0)
    att = ConvAttention(dim=12, heads=3).eval()
    x = torch.randn(2, 12, 2, 3)
    q, k, v = (t.reshape(2, 3, 4, 6).transpose(-1, -2) for t in att.qkv(x).chunk(3, dim=1))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    ref = att.out(ref.transpose(-1, -2).reshape(2, 12, 2, 3))
    torch.testing.assert_close(att(x), ref)


def test_bad_boxes_and_inputs_raise_one_line():
    with pytest.raises(ValueError, match=r"^HTNet region 1 = \(0, 0, 30, 14\): a box is 4 "):
        HTNet(regions=[[0, 0, 14, 14], [0, 0, 30, 14], [0, 0, 14, 14], [0, 0, 14, 14]])
    with pytest.raises(ValueError, match="HTNet needs 4 region boxes"):
        HTNet(regions=[[0, 0, 14, 14]])
    with pytest.raises(ValueError, match=r"region 0 = \(5, 0, 5, 14\)"):
        HTNet(regions=[[5, 0, 5, 14]] * 4)
    with pytest.raises(ValueError, match=r"model 'htnet' cannot be built with .*HTNet region 3"):
        create_model("htnet", regions=[[0, 0, 14, 14]] * 3 + [[20, 20, 34, 34]])
    with pytest.raises(ValueError, match=r"argument regions=.* does not match the expected type"):
        create_model("htnet", regions=[[0.5, 0, 14, 14]] * 4)
    with pytest.raises(ValueError, match="divisible by 2"):
        HTNet(region_size=14, patch_size=14)
    model = HTNet(**SMALL)
    for shape in [(2, 3, 32, 32), (2, 2, 28, 28), (3, 28, 28)]:
        with pytest.raises(ValueError) as err:
            model(torch.rand(shape))
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("HTNet expects [B, 3, 28, 28]")


def test_same_seed_same_weights_after_a_tiny_fit():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 255, (12, 3, 28, 28)).astype(np.float32)
    y = np.arange(12) % 3
    cfg = PRESETS["htnet"]
    idx = np.arange(10), np.arange(10, 12)

    def weights(seed, epochs=2):
        got = train_fold("htnet", X, y, *idx, cfg.preset("htnet", epochs=epochs, batch_size=4),
                         seed=seed, model_kwargs=SMALL)  # fmt: skip
        return got.model.state_dict(), got.probs

    (w0, p0) = weights(0)
    torch.manual_seed(123)  # the global RNG does not matter
    (w1, p1) = weights(0)
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    np.testing.assert_array_equal(p0, p1)
    w2, _ = weights(1)
    assert any(not torch.equal(w0[k], w2[k]) for k in w0)
    w_one, _ = weights(0, epochs=1)  # the second epoch moved the weights
    assert not torch.equal(w0["fc.weight"], w_one["fc.weight"])


def test_cli_trains_htnet_on_a_flow_folder(tmp_path):
    flows = _flow_folder(tmp_path / "flows")
    out = tmp_path / "out"
    args = ["train", "--protocol", "cde", "--model", "htnet", "--flows-dir", str(flows),
            "--epochs", "1", "--folds", "2", "--seeds", "0", "--no-fold-weights",
            "--out", str(out), "--model-arg", "dim=8", "--model-arg", "heads=2",
            "--model-arg", "depths=[1,1,1]"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    results = pd.read_csv(out / "results.csv").set_index("task")
    assert set(results["method"]) == {"htnet"}
    assert results.loc["composite", "folds"] == 2 and results.loc["composite", "n_test"] == 6
    assert '"depths":[1,1,1]' in results.loc["composite", "params"]
    assert '"lr":5e-05' in results.loc["composite", "params"]  # the htnet preset
    assert len(list(out.glob("folds/htnet-*/seed0/*.audit.npz"))) == 2
    audit = pd.read_csv(out / "audit.csv")
    assert set(audit["selection"]) == {"honest", "best_epoch_per_subject", "best_epoch_pooled",
                                       "best_test_loss"}  # fmt: skip
    assert (audit["folds"] == 2).all() and (audit["epochs_evaluated"] == 1).all()
