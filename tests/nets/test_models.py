"""Shapes, parameter counts and input checks of every registered network."""

from __future__ import annotations

import pytest
import torch

from merkit.nets import MODELS, count_parameters, create_model, input_kind, training_preset
from merkit.nets.fr import FeatureRefinement
from merkit.workflows.train import preset_for

# small clips keep the 3-D models fast; the flow models use the real 28 x 28 size
CLIP = (2, 3, 8, 32, 32)
FLOW = (2, 3, 28, 28)


def _logits(out):
    return out["logits"] if isinstance(out, dict) else out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_shapes(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    shape = FLOW if input_kind(name) == "flow" else CLIP
    with torch.no_grad():
        out = _logits(model(torch.rand(shape)))
    assert out.shape == (2, 4)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ststnet", 1683),
        # 2 streams x (1284 + 10336) Inception weights + 6272*1024+1024 + 1024*3+3
        ("basic_inception", 6_449_867),
        ("dual_inception", 6_449_867),
        # backbone + 6272->1024 z + 3 x (1024x1024 unit + 1024-128-1 detector)
        # + 1024-256-3 classifier (paper 10.2418 M, see merkit.nets.fr)
        ("fr", 10_252_750),
        ("fr_fc", 10_252_750),
        ("fr_concat", 10_777_038),
        # 2 x (60 + 880) conv + 1568*1024+1024 + 1024*3+3
        ("off_apexnet", 1_611_611),
        ("rcn_a", 55_747),
        # the authors' Model.py with main_HTNet.py's arguments (tests/nets/test_htnet.py)
        ("htnet", 139_582_982),
        # 4 pre-norm blocks of 12 d^2 + 13 d (d = 64) + embeddings (tests/nets/test_frl_dgt.py)
        ("frl_dgt", 209_171),
        ("r3d", 33_167_811),
    ],
)
def test_parameter_counts(name, expected):
    assert count_parameters(create_model(name)) == expected


def test_fr_counts_scale_with_classes_like_the_paper():
    # paper Table 7: FR 10.2418 M (3 classes) -> 11.4231 M (4): +1.1813 M per class
    three = count_parameters(create_model("fr", num_classes=3))
    four = count_parameters(create_model("fr", num_classes=4))
    assert abs((four - three) - 1_181_300) < 200
    assert abs(three - 10_241_800) / 10_241_800 < 0.002
    basic4 = count_parameters(create_model("basic_inception", num_classes=4))
    assert basic4 - count_parameters(create_model("basic_inception")) == 1025


def test_ststnet_state_dict_keys_match_authors():
    keys = set(create_model("ststnet").state_dict())
    expected = {f"{m}{i}.{p}" for m in ("conv",) for i in (1, 2, 3) for p in ("weight", "bias")}
    expected |= {
        f"bn{i}.{p}"
        for i in (1, 2, 3)
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    expected |= {"fc.weight", "fc.bias"}
    assert keys == expected


def test_fr_outputs_and_loss():
    torch.manual_seed(0)
    model = FeatureRefinement(num_classes=3)
    out = model(torch.rand(FLOW), return_features=True)
    assert out["proposal"].shape == (2, 3)
    assert out["z"].shape == (2, 1024)
    assert out["refined"].shape == (2, 1024)
    y = torch.tensor([0, 2])
    loss = model.loss(out, y)
    l_cls = torch.nn.functional.cross_entropy(out["logits"], y)
    onehot = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    l_prop = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out["proposal"]), onehot)
    assert torch.allclose(loss, 0.85 * l_prop + l_cls, atol=1e-6)


def test_fr_attention_is_softmax_over_z():
    torch.manual_seed(0)
    model = FeatureRefinement(num_classes=3).eval()
    x = torch.rand(FLOW)
    with torch.no_grad():
        out = model(x, return_features=True)
        z = out["z"]
        a = [torch.softmax(u(z), dim=1) for u in model.units]
    assert torch.allclose(out["refined"], sum(ak * z for ak in a), atol=1e-6)
    assert torch.allclose(a[0].sum(1), torch.ones(2), atol=1e-5)


def test_fr_concat_and_literal_z_dimensions():
    m = FeatureRefinement(num_classes=3, fusion="concat")
    assert m(torch.rand(FLOW), return_features=True)["refined"].shape == (2, 3 * 1024)
    literal = FeatureRefinement(
        num_classes=2, embed_dim=None, classifier_hidden=8, detector_hidden=4
    )
    assert literal.feature_dim == 6272
    assert literal.units[0].weight.shape == (6272, 6272)


def test_off_apexnet_ignores_strain_channel():
    torch.manual_seed(0)
    m = create_model("off_apexnet").eval()
    x = torch.rand(FLOW)
    x2 = x.clone()
    x2[:, 2] = 0
    with torch.no_grad():
        assert torch.equal(m(x), m(x2))
        assert torch.equal(m(x), m(x[:, :2]))


def test_rcn_attention_map_range():
    torch.manual_seed(0)
    m = create_model("rcn_a").eval()
    with torch.no_grad():
        att = m.attention_map(torch.rand(2, 64, 7, 7))
    assert att.shape == (2, 1, 7, 7)
    assert float(att.min()) >= 0.0
    assert float(att.max()) <= 1.0 + 1e-6


def test_bad_inputs_raise_with_model_name():
    with pytest.raises(ValueError, match="STSTNet expects a 4-D tensor"):
        create_model("ststnet")(torch.rand(2, 2, 28, 28))
    with pytest.raises(ValueError, match=r"R3D expects a 5-D tensor \[B, C, T, H, W\]"):
        create_model("r3d")(torch.rand(2, 3, 28, 28))
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        create_model("nope")
    with pytest.raises(ValueError, match="fusion='max'"):
        FeatureRefinement(fusion="max")


def test_what_each_network_takes_and_trains_with() -> None:
    kinds = {name: input_kind(name) for name in MODELS}
    assert {n for n, k in kinds.items() if k == "clip"} == {"r3d", "i3d"}
    assert {n for n, k in kinds.items() if k == "flowseq"} == {"mersiam"}
    assert set(kinds.values()) == {"flow", "clip", "flowseq"}
    own = {name: training_preset(name) for name in MODELS}
    assert {n: p for n, p in own.items() if p} == {
        "ststnet": "ststnet", "rcn_a": "rcn_a", "mersiam": "mersiam",
        "htnet": "htnet", "frl_dgt": "frl_dgt"}  # fmt: skip
    assert [preset_for("fr_fc", p) for p in ("cde", "loso")] == ["fr_cde", "fr_cdmer"]
    assert preset_for("ststnet", "cde") == "ststnet"
    with pytest.raises(KeyError, match="unknown model 'nope'; registered: "):
        input_kind("nope")


def test_a_network_is_declared_in_one_place(monkeypatch) -> None:
    """A new network: its class (with what it takes and how it trains) and one MODELS entry."""

    class Tiny3d(torch.nn.Module):
        input_kind = "clip"
        training_preset = "rcn_a"

        def __init__(self, num_classes: int = 3) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(3, num_classes)

        def forward(self, x):
            return self.fc(x.mean(dim=(2, 3, 4)))

    monkeypatch.setitem(MODELS, "tiny3d", Tiny3d)
    assert input_kind("tiny3d") == "clip"
    assert preset_for("tiny3d", "cde") == "rcn_a"
    assert create_model("tiny3d", num_classes=5)(torch.rand(CLIP)).shape == (2, 5)
