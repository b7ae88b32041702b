"""C3D (Tran et al. 2015): network size, forward shapes, weights checks, the c3d descriptor.

The weights are random (``c3d_weights`` in conftest.py: full shapes, the Sports-1M
conversion's keys); the forward pass is compared with an independent ``torch.nn`` stack.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from merkit.features import c3d  # noqa: E402
from merkit.features.extract import _descriptor_key, configure_descriptor  # noqa: E402
from merkit.features.registry import describe, get_descriptor  # noqa: E402
from merkit.nets import count_parameters  # noqa: E402
from merkit.nets.c3d import C3D  # noqa: E402
from merkit.nets.train import read_state_dict  # noqa: E402

KEYS = [
    f"{n}.{p}"
    for n in ("conv1", "conv2", "conv3a", "conv3b", "conv4a", "conv4b", "conv5a", "conv5b",
              "fc6", "fc7", "fc8")
    for p in ("weight", "bias")
]  # fmt: skip


def _clip(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, c3d.CLIP_SHAPE).astype(np.float32)


def _reference(state: dict, x: torch.Tensor, layer: str) -> torch.Tensor:
    """C3D written out layer by layer with torch.nn modules (Tran et al., Fig. 3)."""
    nn = torch.nn
    convs = [("conv1", 3, 64), ("conv2", 64, 128), ("conv3a", 128, 256), ("conv3b", 256, 256),
             ("conv4a", 256, 512), ("conv4b", 512, 512), ("conv5a", 512, 512),
             ("conv5b", 512, 512)]  # fmt: skip
    pools = {"conv1": nn.MaxPool3d((1, 2, 2), (1, 2, 2)), "conv2": nn.MaxPool3d(2, 2),
             "conv3b": nn.MaxPool3d(2, 2), "conv4b": nn.MaxPool3d(2, 2),
             "conv5b": nn.MaxPool3d(2, 2, padding=(0, 1, 1))}  # fmt: skip
    for name, cin, cout in convs:
        conv = nn.Conv3d(cin, cout, (3, 3, 3), padding=(1, 1, 1))
        conv.load_state_dict({"weight": state[f"{name}.weight"], "bias": state[f"{name}.bias"]})
        x = torch.relu(conv(x))
        if name in pools:
            x = pools[name](x)
    assert x.shape[1:] == (512, 1, 4, 4)
    x = x.reshape(x.shape[0], 8192)
    for name in ("fc6", "fc7"):
        x = torch.relu(x @ state[f"{name}.weight"].T + state[f"{name}.bias"])
        if name == layer:
            return x
    return x @ state["fc8.weight"].T + state["fc8.bias"]


def test_parameter_count_is_the_sports1m_networks() -> None:
    convs = 27 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 256 + 256 * 512 + 3 * 512 * 512)
    conv_bias = 64 + 128 + 2 * 256 + 4 * 512
    fcs = 8192 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 487 + 487
    assert convs + conv_bias + fcs == 79_991_015
    assert c3d.n_parameters() == 79_991_015
    assert c3d.n_parameters(101) == 79_991_015 - 386 * 4097  # UCF101 head
    assert list(c3d.SHAPES) == KEYS
    assert c3d.SHAPES["fc6.weight"] == (4096, 8192)  # pool5 padded: 512 x 1 x 4 x 4
    model = C3D()
    assert count_parameters(model) == 79_991_015
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == c3d.SHAPES


@pytest.fixture(scope="module")
def state(c3d_weights) -> dict:
    return c3d.load_weights(c3d_weights)


def test_forward_matches_an_independent_torch_nn_stack(state) -> None:
    x = torch.from_numpy(np.stack([_clip(0), _clip(1)]))[:, None].repeat(1, 3, 1, 1, 1)
    with torch.inference_mode():
        fc6 = c3d.forward(state, x, "fc6")
        ref6 = _reference(state, x, "fc6")
    assert fc6.shape == (2, 4096)
    assert float(fc6.min()) == 0.0 and float((fc6 > 0).float().mean()) > 0.2  # after ReLU
    torch.testing.assert_close(fc6, ref6, rtol=1e-4, atol=1e-3 * float(ref6.abs().max()))
    assert not torch.allclose(fc6[0], fc6[1])


def test_descriptor_features_are_deterministic_grey_on_rgb(state, c3d_weights) -> None:
    digest = c3d.weights_digest(c3d_weights)
    clip = _clip(3)
    a = c3d.c3d_features(clip, "fc7", str(c3d_weights), digest)
    b = c3d.c3d_features(clip.copy(), "fc7", str(c3d_weights), digest)
    assert a.shape == (4096,) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert (a >= 0).all() and (a > 0).mean() > 0.2
    fc6 = torch.from_numpy(c3d.c3d_features(clip, "fc6", str(c3d_weights), digest))
    fc7 = torch.relu(fc6 @ state["fc7.weight"].T + state["fc7.bias"]).numpy()
    np.testing.assert_allclose(a, fc7, rtol=1e-5, atol=1e-5 * np.abs(fc7).max())
    x = torch.from_numpy(clip)[None, None].repeat(1, 3, 1, 1, 1)
    model = C3D().eval()
    model.load_state_dict(read_state_dict(c3d_weights))
    with torch.inference_mode():  # the nn.Module runs the same forward, on to fc8
        logits = model(x)
    assert logits.shape == (1, 487)
    with pytest.raises(ValueError, match="expected fc6 or fc7"):
        model.features(x, "fc8")
    ref = (torch.from_numpy(a) @ state["fc8.weight"].T + state["fc8.bias"]).numpy()
    np.testing.assert_allclose(logits[0].numpy(), ref, rtol=1e-5, atol=1e-4)


def test_registry_descriptor_and_weights_identity(c3d_weights, tmp_path) -> None:
    desc = get_descriptor("c3d:fc7")
    assert (desc.name, desc.dim, desc.params["weights"]) == ("c3d:fc7", 4096, None)
    assert get_descriptor("c3d").name == "c3d:fc6"
    assert "4096 features" in describe("c3d")
    with pytest.raises(ValueError, match="expected c3d:fc6 or c3d:fc7"):
        get_descriptor("c3d:fc8")
    with pytest.raises(ValueError, match=r"needs a weights file: give --weights FILE"):
        configure_descriptor("c3d:fc6")
    with pytest.raises(ValueError, match=r"--weights is only for the c3d descriptor"):
        configure_descriptor("lbp_top:r3p8", weights=c3d_weights)
    with pytest.raises(ValueError, match="does not take a block layout"):
        configure_descriptor("c3d:fc6", "1,2", weights=c3d_weights)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        configure_descriptor("c3d:fc6", weights=tmp_path / "none.pt")
    got = configure_descriptor("c3d:fc6", weights=c3d_weights)
    assert (
        got.params["digest"] == c3d.weights_digest(c3d_weights) and len(got.params["digest"]) == 64
    )
    # the cache identity: the weights' digest, not where the file lies
    moved = replace(got, params={**got.params, "weights": "/elsewhere/c3d.pt"})
    other = replace(got, params={**got.params, "digest": "0" * 64})
    assert _descriptor_key(moved) == _descriptor_key(got) != _descriptor_key(other)
    vec = got(_clip(5))
    assert vec.shape == (4096,) and (vec >= 0).all() and vec.any()
    with pytest.raises(ValueError, match=r"grey clips of 16 frames of 112x112"):
        got(np.zeros((8, 112, 112), np.float32))


def _meta_state(**changes) -> dict:
    state = {k: torch.empty(s, device="meta") for k, s in c3d.SHAPES.items()}
    state.update(changes)
    return {k: v for k, v in state.items() if v is not None}


def test_wrong_keys_and_shapes_are_one_line_errors(tmp_path) -> None:
    renamed = _meta_state(**{"conv1.weight": None, "conv1a.weight": torch.empty(1)})
    with pytest.raises(c3d.C3DWeightsError) as err:
        c3d.check_state_dict(renamed, "weights file 'x.pt'")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("weights file 'x.pt': missing keys conv1.weight;")
    assert "unexpected keys conv1a.weight" in msg and "conv1 ... fc8" in msg
    wrong = _meta_state(**{"fc6.weight": torch.empty((4096, 4608), device="meta")})
    with pytest.raises(c3d.C3DWeightsError, match=r"wrong shapes fc6.weight \(4096, 4608\) "
                       r"\(expected \(4096, 8192\)\)"):  # fmt: skip
        c3d.check_state_dict(wrong)
    c3d.check_state_dict(_meta_state())  # the right layout passes
    ucf = _meta_state(**{"fc8.weight": torch.empty((101, 4096), device="meta"),
                         "fc8.bias": torch.empty((101,), device="meta")})  # fmt: skip
    c3d.check_state_dict(ucf)  # any number of classes
    path = tmp_path / "small.pt"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3, 3)}, path)
    with pytest.raises(c3d.C3DWeightsError, match=r"small.pt': missing keys conv1.bias, conv2"):
        c3d.load_weights(path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(c3d.C3DWeightsError, match=r"junk.pt' cannot be read as PyTorch weights"):
        c3d.load_weights(junk)


def test_missing_torch_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(c3d.TorchMissingError, match=r"install the nets extra"):
        c3d.check_state_dict({})
