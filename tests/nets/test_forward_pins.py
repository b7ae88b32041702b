"""Every registered network's forward output, pinned on fixed weights and a fixed input.

Without the licensed data no other nets test sees an architecture change: swapping
STSTNet's ReLU and BatchNorm, for one, keeps every shape, parameter count and training
test green. Here each network (default arguments, eval mode) gets weights and BatchNorm
statistics drawn from a seeded NumPy generator (:func:`seeded_model`, independent of
torch's initialisers and random stream) and a seeded input (:func:`seeded_input`); its
logits, the sum of its ``features`` and, for the FR family, its detector proposals must
equal the values computed once and stored in ``PINS`` (relative tolerance 1e-4).

BatchNorm gets non-trivial running statistics and affine parameters on purpose: with the
defaults (mean 0, variance 1, scale 1, shift 0) eval-mode BatchNorm is the identity, and
ReLU -> BN would equal BN -> ReLU. ``test_ststnet_relu_batchnorm_swap_changes_the_pins``
proves the pins see that swap.

A deliberate architecture change must update ``PINS``: print the new values with
``python -m tests.nets.test_forward_pins`` and paste them here.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from merkit.nets import MODELS, create_model, input_kind
from merkit.nets.apexnets import STSTNet

#: input shape per kind: two samples; small clips keep the 3-D networks fast
SHAPES = {"flow": (2, 3, 28, 28), "clip": (2, 3, 8, 32, 32), "flowseq": (2, 3, 8, 32, 32)}
#: relative tolerance; a vector is compared with ``RTOL * max|pinned value|`` absolute
#: tolerance too, so that a logit near 0 does not ask for more than float32 can repeat
RTOL = 1e-4

#: name -> {"logits": the [2, 3] logits row by row, "features_sum": sum of features(x); FR
#: family: "proposal" (detector logits row by row), "z_sum" and "refined_sum" (sums of the
#: shared and the refined features, which its softmax attention scales down)}; computed once
#: with torch 2.13.0 (CPU)
PINS: dict[str, dict[str, list[float] | float]] = {
    "basic_inception": {
        "logits": [-0.2922073, 0.2470056, -2.365795, -0.5531713, 0.3716792, -2.585041],
        "features_sum": 933.8591,
    },
    "dual_inception": {
        "logits": [-0.2922073, 0.2470056, -2.365795, -0.5531713, 0.3716792, -2.585041],
        "features_sum": 933.8591,
    },
    "fr": {
        "logits": [-0.02213115, 1.132951, -0.2654404, -0.02175781, 1.134999, -0.2639577],
        "features_sum": 112.3452,
        "proposal": [-0.3462621, -0.7602631, -0.4433152, -0.3458832, -0.7603076, -0.4429707],
        "z_sum": 933.8591,
        "refined_sum": 2.623637,
    },
    "fr_concat": {
        "logits": [-0.02672738, 0.1689789, 0.6715273, -0.02694768, 0.1691496, 0.6717185],
        "features_sum": 106.5114,
        "proposal": [-0.3462621, -0.7602631, -0.4433152, -0.3458832, -0.7603076, -0.4429707],
        "z_sum": 933.8591,
        "refined_sum": 2.623637,
    },
    "frl_dgt": {
        "logits": [1.677958, 0.005460884, -0.7899686, 1.688441, -0.006189559, -0.7949356],
        "features_sum": 2.487803,
    },
    "fr_fc": {
        "logits": [0.1788305, 0.9066586, 1.037952, 0.4403345, 0.8753813, 1.066243],
        "features_sum": 291.184,
        "proposal": [-0.3997533, -0.7083201, -0.07009201, -0.4548532, -0.7752785, -0.03781252],
        "z_sum": 933.8591,
        "refined_sum": 2272.044,
    },
    "htnet": {
        "logits": [-0.7838903, -1.329343, -1.162338, -0.7838947, -1.32934, -1.162338],
        "features_sum": 35.25037,
    },
    "i3d": {
        "logits": [-0.252921, 0.1916482, -0.7056482, -0.2815156, 0.219203, -0.765101],
        "features_sum": 130.2498,
    },
    "mersiam": {
        "logits": [-0.1709712, 0.4835699, 0.2111778, -0.1710112, 0.4821926, 0.2125317],
        "features_sum": 89.37061,
    },
    "off_apexnet": {
        "logits": [0.2795209, 1.253024, -0.9015411, -0.006826781, 1.605919, 0.03973076],
        "features_sum": 925.4382,
    },
    "r3d": {
        "logits": [3.799625, -2.877022, -0.3925038, 3.412424, -3.218221, -0.5876772],
        "features_sum": 1223.537,
    },
    "rcn_a": {
        "logits": [2.449696, -0.301793, -2.2788, 2.18701, -0.2534598, -1.922906],
        "features_sum": 7254.769,
    },
    "ststnet": {
        "logits": [-2.06668, -2.338195, 2.986645, -1.839904, -1.893915, 3.212795],
        "features_sum": 1199.784,
    },
}


@contextmanager
def _deterministic():
    """One thread and deterministic algorithms for the duration of the block."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(det)
        torch.set_num_threads(threads)


def seeded_model(name: str) -> torch.nn.Module:
    """Network ``name`` (default arguments, eval mode) with seeded weights and BN statistics.

    Every floating tensor of the state_dict, in its order, is drawn from
    ``numpy.random.default_rng(0)``: weights ``N(0, 1 / fan_in)``, biases and BatchNorm
    shifts and running means ``N(0, 0.5^2)``, BatchNorm scales and running variances
    ``U(0.5, 1.5)``.
    """
    torch.manual_seed(0)
    model = create_model(name).eval()
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for key, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point():
                continue
            leaf = key.rsplit(".", 1)[-1]
            if leaf == "running_var" or (leaf == "weight" and t.ndim == 1):
                v = rng.uniform(0.5, 1.5, t.shape)
            elif leaf in ("bias", "running_mean"):
                v = 0.5 * rng.standard_normal(t.shape)
            else:
                v = rng.standard_normal(t.shape) / math.sqrt(t[0].numel())
            t.copy_(torch.from_numpy(v.astype(np.float32)))
    return model


def seeded_input(name: str) -> torch.Tensor:
    """The fixed input of network ``name``: ``N(0, 1)`` float32 from ``default_rng(1)``."""
    shape = SHAPES[input_kind(name)]
    return torch.from_numpy(np.random.default_rng(1).standard_normal(shape).astype(np.float32))


def forward_values(name: str) -> dict[str, list[float] | float]:
    """The pinned quantities of network ``name`` (see ``PINS``)."""
    with _deterministic(), torch.no_grad():
        model, x = seeded_model(name), seeded_input(name)
        out = model(x)
        feats = model.features(x)
        parts = model(x, return_features=True) if isinstance(out, dict) else {}
    values: dict[str, list[float] | float] = {}
    logits = out["logits"] if isinstance(out, dict) else out
    values["logits"] = logits.double().flatten().tolist()
    values["features_sum"] = float(feats.double().sum())
    if isinstance(out, dict):
        values["proposal"] = out["proposal"].double().flatten().tolist()
        for key in ("z", "refined"):
            values[f"{key}_sum"] = float(parts[key].double().sum())
    return values


def check_pins(name: str) -> None:
    """Assert that network ``name`` reproduces its ``PINS`` entry."""
    got, want = forward_values(name), PINS[name]
    assert set(got) == set(want), f"{name}: pinned {sorted(want)}, computed {sorted(got)}"
    for key, expected in want.items():
        atol = RTOL * float(np.max(np.abs(expected)))
        np.testing.assert_allclose(
            got[key], expected, rtol=RTOL, atol=atol, err_msg=f"{name}: {key} moved from its pin"
        )


def test_every_registered_network_is_pinned():
    assert set(PINS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_matches_pins(name):
    check_pins(name)


@pytest.mark.parametrize("name", ["ststnet", "fr", "r3d"])
def test_pins_are_reproducible(name):
    assert forward_values(name) == forward_values(name)


def test_ststnet_relu_batchnorm_swap_changes_the_pins(monkeypatch):
    def swapped(self, x, conv, bn):  # BN -> ReLU instead of the authors' ReLU -> BN
        return self.dropout(self.maxpool(self.relu(bn(conv(x)))))

    monkeypatch.setattr(STSTNet, "_stream", swapped)
    with pytest.raises(AssertionError, match="ststnet: logits moved from its pin"):
        check_pins("ststnet")


if __name__ == "__main__":  # print PINS for a deliberate architecture change
    for _name in sorted(MODELS):
        _v = forward_values(_name)
        print(f"    {_name!r}: {{")  # noqa: T201
        for _k, _x in _v.items():
            _s = [float(f"{a:.7g}") for a in _x] if isinstance(_x, list) else float(f"{_x:.7g}")
            print(f"        {_k!r}: {_s},")  # noqa: T201
        print("    },")  # noqa: T201
