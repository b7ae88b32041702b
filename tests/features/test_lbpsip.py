"""LBP-SIP: hand-computed codes, agreement with LBP-TOP P=4 / scikit-image, histograms,
invariances, a toy motion-direction problem and the registry entries."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import local_binary_pattern

from merkit.features import registry
from merkit.features.layout import BlockLayout
from merkit.features.lbp import lbp_top_codes
from merkit.features.lbpsip import lbp_sip, lbp_sip_codes, output_dim
from tests.features._toy import bar_clips, cv_accuracy


def _rng_clip(shape=(9, 20, 24), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


# --------------------------------------------------------------------------- codes
def test_hand_built_neighbourhood() -> None:
    cube = np.zeros((3, 3, 3), dtype=np.float32)
    cube[1, 1, 1] = 50  # centre
    cube[1, 1, 2] = 60  # right: bit 0 = 1
    cube[1, 0, 1] = 40  # up: bit 1 = 0
    cube[1, 1, 0] = 50  # left, tie: bit 2 = 1
    cube[1, 2, 1] = 10  # down: bit 3 = 0
    cube[0, 1, 1] = 70  # previous frame: temporal bit 0 = 1
    cube[2, 1, 1] = 30  # next frame: temporal bit 1 = 0
    spatial, temporal = lbp_sip_codes(cube, radii=1)
    assert spatial.shape == temporal.shape == (1, 1, 1)
    assert int(spatial[0, 0, 0]) == 0b0101 == 5
    assert int(temporal[0, 0, 0]) == 0b01 == 1
    v = lbp_sip(cube, radii=1, layout=BlockLayout((1,)))
    expected = np.zeros(20, dtype=np.float32)
    expected[5] = expected[16 + 1] = 1.0
    np.testing.assert_array_equal(v, expected)
    # the corners and edges (not on the three axes) are never looked at
    noisy = cube.copy()
    noisy[[0, 2, 0, 2], [0, 0, 2, 2], [0, 2, 2, 0]] = [255, 0, 3, 99]
    np.testing.assert_array_equal(lbp_sip(noisy, radii=1, layout=BlockLayout((1,))), expected)


def test_radius_three_neighbourhood() -> None:
    clip = np.full((7, 7, 7), 100.0)
    clip[3, 3, 6] = 101  # right at distance 3: bit 0
    clip[3, 0, 3] = 99  # up: 0
    clip[3, 3, 0] = 99  # left: 0
    clip[3, 6, 3] = 100  # down, tie: bit 3
    clip[0, 3, 3] = 20  # previous: 0
    clip[6, 3, 3] = 200  # next: bit 1
    clip[3, 3, 4] = 0  # distance 1: ignored with R = 3
    spatial, temporal = lbp_sip_codes(clip, radii=3)
    assert spatial.shape == (1, 1, 1)
    assert (int(spatial[0, 0, 0]), int(temporal[0, 0, 0])) == (0b1001, 0b10)
    spatial, temporal = lbp_sip_codes(clip, radii=(3, 3, 1))  # Rt = 1: t = 1..5 coded
    assert spatial.shape == (5, 1, 1) and temporal[2, 0, 0] == 0b11  # flat in time


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_codes_equal_lbp_top_p4_and_skimage(radius) -> None:
    clip = _rng_clip((2 * radius + 5, 21, 26), seed=radius)
    spatial, temporal = lbp_sip_codes(clip, radii=radius)
    xy, xt, yt = lbp_top_codes(clip, radii=(radius,) * 3, points=(4, 4, 4))
    np.testing.assert_array_equal(spatial, xy)
    # temporal bits are bits 1 (previous) and 3 (next) of the 4-point XT and YT codes
    for plane in (xt, yt):
        np.testing.assert_array_equal(temporal, ((plane >> 1) & 1) | (((plane >> 3) & 1) << 1))
    r = radius
    for t in range(r, clip.shape[0] - r):
        ref = local_binary_pattern(clip[t], 4, r, "default")[r:-r, r:-r]
        np.testing.assert_array_equal(spatial[t - r], ref)


# --------------------------------------------------------------------------- histograms
def test_dimensions_and_normalisation() -> None:
    clip = np.random.default_rng(1).random((16, 112, 112)).astype(np.float32) * 255
    for radius in (1, 3):
        v = lbp_sip(clip, radii=radius)
        assert v.dtype == np.float32 and v.shape == (1700,) == (output_dim(),)
        h = v.reshape(85, 20)
        np.testing.assert_allclose(h[:, :16].sum(1), 1.0, atol=1e-6)
        np.testing.assert_allclose(h[:, 16:].sum(1), 1.0, atol=1e-6)
    assert (
        lbp_sip(clip, layout=BlockLayout((1, 2))).shape
        == (100,)
        == (output_dim(BlockLayout((1, 2))),)
    )


def test_histograms_are_block_histograms_of_the_codes() -> None:
    clip = _rng_clip((9, 30, 34), seed=7)
    layout = BlockLayout((1, 2, 3))
    v = lbp_sip(clip, radii=3, layout=layout).reshape(layout.n_blocks, 20)
    spatial, temporal = lbp_sip_codes(clip, radii=3)
    for b, (y0, y1, x0, x1) in enumerate(layout.block_bounds(24, 28)):  # frame minus 3 px
        s = spatial[:, y0:y1, x0:x1].ravel()
        t = temporal[:, y0:y1, x0:x1].ravel()
        np.testing.assert_allclose(v[b, :16], np.bincount(s, minlength=16) / s.size, rtol=1e-6)
        np.testing.assert_allclose(v[b, 16:], np.bincount(t, minlength=4) / t.size, rtol=1e-6)


def test_flat_static_and_moving_clips() -> None:
    flat = lbp_sip(np.full((5, 20, 20), 7.0), layout=BlockLayout((1, 2)))
    expected = np.zeros(20)
    expected[15] = expected[19] = 1.0  # all ties: every bit set
    np.testing.assert_array_equal(flat.reshape(5, 20), np.tile(expected, (5, 1)))
    frame = np.random.default_rng(2).random((30, 30)) * 255
    static = lbp_sip(np.repeat(frame[None], 6, axis=0), layout=BlockLayout((1,)))
    np.testing.assert_array_equal(static[16:], [0, 0, 0, 1])  # past = now = future
    assert (static[:16] > 0).sum() >= 10  # spatial texture spread over the 16 codes
    brightening = np.stack([frame + 10 * t for t in range(6)])
    np.testing.assert_array_equal(lbp_sip(brightening, layout=BlockLayout((1,)))[16:], [0, 0, 1, 0])


def test_deterministic_and_monotonic_grey_invariant() -> None:
    clip = _rng_clip((12, 40, 40), seed=3).astype(np.float32)
    a = lbp_sip(clip, radii=3)
    np.testing.assert_array_equal(a, lbp_sip(clip.copy(), radii=3))
    np.testing.assert_array_equal(a, lbp_sip(clip + 17.0, radii=3))
    np.testing.assert_array_equal(a, lbp_sip(np.sqrt(clip) * 3.0, radii=3))
    np.testing.assert_array_equal(a, lbp_sip(clip.astype(np.uint8), radii=(3, 3, 3)))
    assert not np.array_equal(a, lbp_sip(clip, radii=1))


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[T, H, W\].*\(20, 20\)"):
        lbp_sip(np.zeros((20, 20)))
    with pytest.raises(ValueError, match="2 frames; LBP-SIP with Rt=1 needs at least 3"):
        lbp_sip(np.zeros((2, 30, 30)))
    with pytest.raises(ValueError, match="6 frames; LBP-SIP with Rt=3 needs at least 7"):
        lbp_sip(np.zeros((6, 30, 30)), radii=3)
    with pytest.raises(ValueError, match="frames are 2x30"):
        lbp_sip(np.zeros((5, 2, 30)))
    with pytest.raises(ValueError, match="code map of 4x28.*does not fit"):
        lbp_sip(np.zeros((5, 6, 30)))  # 8x8 blocks over 4 rows
    with pytest.raises(ValueError, match="positive integers"):
        lbp_sip(np.zeros((9, 30, 30)), radii=1.5)
    with pytest.raises(ValueError, match="positive integers"):
        lbp_sip(np.zeros((9, 30, 30)), radii=(1, 0, 1))
    with pytest.raises(ValueError, match="three integers"):
        lbp_sip(np.zeros((9, 30, 30)), radii=(1, 1))
    with pytest.raises(ValueError, match="NaN"):
        lbp_sip(np.full((9, 30, 30), np.nan))
    with pytest.raises(ValueError, match="real-valued"):
        lbp_sip(np.zeros((9, 30, 30), dtype=complex))


# --------------------------------------------------------------------------- toy problem
def test_separates_motion_direction_through_the_temporal_codes() -> None:
    clips, y = bar_clips()
    layout = BlockLayout((1, 2))
    for radius in (1, 3):
        x = np.stack([lbp_sip(c, radii=radius, layout=layout) for c in clips]).reshape(40, 5, 20)
        assert cv_accuracy(x.reshape(40, -1), y) > 0.8
        assert cv_accuracy(x[:, :, 16:].reshape(40, -1), y) > 0.8  # temporal codes alone
        # the spatial codes alone do not see the direction (the bar sweeps the same rows)
        assert cv_accuracy(x[:, :, :16].reshape(40, -1), y) < 0.75


# --------------------------------------------------------------------------- registry
def test_registry_specs() -> None:
    for spec, radii in (("lbp_sip:r1", (1, 1, 1)), ("lbp_sip:r3", (3, 3, 3))):
        d = registry.get_descriptor(spec)
        assert d.name == spec and d.family == "lbp_sip" and d.params["radii"] == radii
        assert d.dim_per_block == 20 and d.dim == 1700 and d.layout.n_blocks == 85
        cols = d.column_blocks()
        assert cols.shape == (1700,) and cols[19] == 0 and cols[20] == 1 and cols[-1] == 84
    assert registry.get_descriptor("lbp_sip").name == "lbp_sip:r1"
    assert registry.get_descriptor("LBP_SIP:RX3RY3RT3").name == "lbp_sip:r3"
    e = registry.get_descriptor("lbp_sip:rx1ry1rt2")
    assert e.name == "lbp_sip:rx1ry1rt2" and e.params["radii"] == (1, 1, 2)
    assert "85 blocks x 20 values = 1700" in registry.describe("lbp_sip:r3")
    with pytest.raises(ValueError, match="expected 'r<R>'"):
        registry.get_descriptor("lbp_sip:r1p8")
    with pytest.raises(ValueError, match="expected 'r<R>'"):
        registry.get_descriptor("lbp_sip:r1.5")
    with pytest.raises(ValueError, match="positive"):
        registry.get_descriptor("lbp_sip:r0")
    with pytest.raises(ValueError, match="no options"):
        registry.get_descriptor("lbp_sip:r1:u2")


def test_registry_descriptor_computes_features() -> None:
    clip = _rng_clip((16, 112, 112), seed=4)
    d = registry.get_descriptor("lbp_sip:r3")
    np.testing.assert_array_equal(d(clip), lbp_sip(clip, radii=3))
