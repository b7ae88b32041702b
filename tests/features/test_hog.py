"""HOG-TOP and HIGO-TOP: orientation binning, plane conventions on analytic clips,
histograms against a per-block numpy reference, invariances, a toy motion-direction
problem and the registry entries."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.features import registry
from merkit.features.hog import (
    gradient_orientations,
    higo_top,
    hog_top,
    orientation_bins,
    output_dim,
)
from merkit.features.layout import BlockLayout
from tests.features._toy import bar_clips, cv_accuracy


def reference_histograms(
    clip: np.ndarray, bins: int, layout: BlockLayout, weighted: bool
) -> np.ndarray:
    """Straightforward per-block version: np.gradient, arctan of the ratio, np.histogram."""
    gt, gy, gx = np.gradient(clip.astype(float))
    inner = (slice(1, -1),) * 3
    gt, gy, gx = gt[inner], gy[inner], gx[inner]
    out = []
    for y0, y1, x0, x1 in layout.block_bounds(clip.shape[1] - 2, clip.shape[2] - 2):
        for h, v in ((gx, gy), (gx, gt), (gy, gt)):
            hb, vb = h[:, y0:y1, x0:x1].ravel(), v[:, y0:y1, x0:x1].ravel()
            theta = np.arctan2(vb, hb)
            theta = np.where(theta >= np.pi / 2, theta - np.pi, theta)
            theta = np.where(theta < -np.pi / 2, theta + np.pi, theta)  # [-pi/2, pi/2)
            w = np.hypot(hb, vb) if weighted else (np.hypot(hb, vb) > 0).astype(float)
            hist, _ = np.histogram(theta, bins=bins, range=(-np.pi / 2, np.pi / 2), weights=w)
            out.append(hist / hist.sum())
    return np.concatenate(out)


# --------------------------------------------------------------------------- binning
def test_orientation_bins_by_hand() -> None:
    h = np.array([1, 0, 0, 1, 1, -1, -1, 2, 1, -3, 0])
    v = np.array([0, 1, -1, 1, -1, -1, 0, 1, 3, 0, 0])
    # degrees: 0, 90=-90, -90, 45, -45, 45, 0, 26.6, 71.6, 0, undefined (bin 0)
    assert orientation_bins(h, v, 4).tolist() == [2, 0, 0, 3, 1, 3, 2, 2, 3, 2, 0]
    assert orientation_bins(h, v, 8).tolist() == [4, 0, 0, 6, 2, 6, 4, 5, 7, 4, 0]
    assert orientation_bins(np.array([1.0, 1.0]), np.array([-3.0, 0.3]), 8).tolist() == [0, 4]
    assert orientation_bins(np.array([1.0]), np.array([-1e-12]), 2).tolist() == [0]
    assert orientation_bins(np.array([1.0]), np.array([0.0]), 2).tolist() == [1]


@pytest.mark.parametrize("bins", [2, 3, 4, 8, 9, 36])
def test_orientation_bins_equal_the_arctangent_rule(bins) -> None:
    rng = np.random.default_rng(bins)
    h, v = rng.normal(size=(2, 20000))
    theta = np.arctan(v / h)  # (-pi/2, pi/2)
    expected = np.floor((theta + np.pi / 2) / (np.pi / bins)).astype(int)
    np.testing.assert_array_equal(orientation_bins(h, v, bins), expected)
    np.testing.assert_array_equal(orientation_bins(-h, -v, bins), expected)  # unsigned


def test_plane_conventions_on_moving_ramps() -> None:
    t, y, x = np.meshgrid(np.arange(7), np.arange(12), np.arange(12), indexing="ij")
    # a horizontal ramp moving right by 1 px/frame: f = 2 (x - t)
    (xy_b, xy_m), (xt_b, xt_m), (yt_b, yt_m) = gradient_orientations(2.0 * (x - t), 4)
    assert (xy_b == 2).all() and np.allclose(xy_m, 4.0)  # (g_x, g_y) = (4, 0): 0 degrees
    assert (xt_b == 1).all() and np.allclose(xt_m, np.hypot(4, 4))  # (4, -4): -45 degrees
    assert (yt_b == 0).all() and np.allclose(yt_m, 4.0)  # (0, -4): vertical
    v = hog_top(2.0 * (x - t), bins=4, layout=BlockLayout((1,))).reshape(3, 4)
    np.testing.assert_array_equal(v, [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    v = hog_top(2.0 * (x + t), bins=4, layout=BlockLayout((1,))).reshape(3, 4)  # moving left: +45
    np.testing.assert_array_equal(v[1], [0, 0, 0, 1])
    # a vertical ramp moving down: XY and XT vertical, YT at -45 degrees
    v = hog_top(3.0 * (y - t), bins=4, layout=BlockLayout((1,))).reshape(3, 4)
    np.testing.assert_array_equal(v, [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(
        higo_top(3.0 * (y - t), bins=4, layout=BlockLayout((1,))), v.ravel()
    )
    # a static horizontal ramp: no gradient on YT at all, whose histogram is then uniform
    v = higo_top(2.0 * x, bins=4, layout=BlockLayout((1,))).reshape(3, 4)
    np.testing.assert_array_equal(v, [[0, 0, 1, 0], [0, 0, 1, 0], [0.25] * 4])


# --------------------------------------------------------------------------- histograms
def test_dimensions_and_normalisation() -> None:
    clip = np.random.default_rng(1).random((16, 112, 112)).astype(np.float32) * 255
    for bins in (4, 8):
        for fn in (hog_top, higo_top):
            v = fn(clip, bins=bins)
            assert v.dtype == np.float32 and v.shape == (85 * 3 * bins,) == (output_dim(bins),)
            np.testing.assert_allclose(v.reshape(85, 3, bins).sum(-1), 1.0, atol=1e-6)
    assert hog_top(clip, bins=4).shape == (1020,) and higo_top(clip, bins=8).shape == (2040,)


@pytest.mark.parametrize("bins", [4, 8])
def test_histograms_equal_the_per_block_reference(bins) -> None:
    clip = np.random.default_rng(bins).random((8, 29, 33)) * 255
    layout = BlockLayout((1, 2, 3))
    for fn, weighted in ((hog_top, True), (higo_top, False)):
        ours = fn(clip, bins=bins, layout=layout)
        ref = reference_histograms(clip, bins, layout, weighted)
        np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_hog_and_higo_differ_only_by_magnitude_weights() -> None:
    # central differences of 0,0,2,2,0,0,2,2,... are +-2 everywhere: every gradient on every
    # plane has magnitude 2*sqrt(2), the orientations still vary
    def square(n: int) -> np.ndarray:
        return 2.0 * ((np.arange(n) // 2) % 2)

    clip = square(9)[:, None, None] + square(20)[None, :, None] + square(24)[None, None, :]
    for _, mag in gradient_orientations(clip, 8):
        np.testing.assert_allclose(mag, 2 * np.sqrt(2))
    hog, higo = hog_top(clip, bins=8), higo_top(clip, bins=8)
    np.testing.assert_allclose(hog, higo, rtol=1e-6)
    assert (hog.reshape(85, 3, 8)[0] > 0).sum() == 6  # two diagonals per plane
    rough = np.random.default_rng(5).random((9, 20, 24)) * 255
    assert np.abs(hog_top(rough) - higo_top(rough)).max() > 0.02


def test_invariances_and_determinism() -> None:
    clip = np.random.default_rng(3).integers(0, 256, (12, 40, 40)).astype(np.float32)
    for fn in (hog_top, higo_top):
        a = fn(clip, bins=8)
        np.testing.assert_array_equal(a, fn(clip.copy(), bins=8))
        np.testing.assert_array_equal(a, fn(clip + 37.0, bins=8))  # brightness offset
        np.testing.assert_allclose(a, fn(clip * 3.0, bins=8), rtol=1e-6)  # contrast gain
        np.testing.assert_array_equal(a, fn(clip.astype(np.uint8), bins=8))
    # unsigned orientations: the negative image has the same histograms
    np.testing.assert_array_equal(hog_top(clip), hog_top(255.0 - clip))
    # a local contrast change: left half vertical stripes, right half horizontal ones, the
    # right half at 4x contrast. HIGO (one vote per pixel) barely moves, HOG follows the
    # stronger gradients
    _, y, x = np.meshgrid(np.arange(6), np.arange(40), np.arange(40), indexing="ij")
    stripes = np.where(x < 20, np.sin(x), np.sin(y)) * 20.0 + 100.0
    boosted = np.where(x < 20, stripes, 4.0 * stripes - 300.0)
    g = BlockLayout((1,))
    higo_a, higo_b = higo_top(stripes, bins=4, layout=g), higo_top(boosted, bins=4, layout=g)
    hog_a, hog_b = hog_top(stripes, bins=4, layout=g), hog_top(boosted, bins=4, layout=g)
    assert np.abs(higo_a - higo_b).max() < 0.03
    assert 0.4 < hog_a[0] < 0.6 and hog_b[0] > 0.75  # XY bin 0: vertical gradients


def test_flat_blocks_are_uniform() -> None:
    clip = np.full((5, 20, 20), 3.0)
    clip[:, :, 12:] = np.random.default_rng(0).random((5, 20, 8)) * 9
    v = hog_top(clip, bins=4, layout=BlockLayout((1, 2))).reshape(5, 3, 4)
    np.testing.assert_array_equal(v[1], 0.25)  # top-left block: flat
    assert (v[2] != 0.25).any()  # top-right: textured


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[T, H, W\].*\(20, 20\)"):
        hog_top(np.zeros((20, 20)))
    with pytest.raises(ValueError, match="2 frames; HIGO-TOP needs at least 3"):
        higo_top(np.zeros((2, 30, 30)))
    with pytest.raises(ValueError, match="frames are 2x30"):
        hog_top(np.zeros((5, 2, 30)))
    with pytest.raises(ValueError, match="HOG-TOP code map of 6x28.*does not fit"):
        hog_top(np.zeros((5, 8, 30)))
    with pytest.raises(ValueError, match="in 2..360"):
        hog_top(np.zeros((5, 30, 30)), bins=1)
    with pytest.raises(ValueError, match="must be an integer"):
        hog_top(np.zeros((5, 30, 30)), bins=4.0)
    with pytest.raises(ValueError, match="must be an integer"):
        higo_top(np.zeros((5, 30, 30)), bins=True)
    with pytest.raises(ValueError, match="NaN"):
        hog_top(np.full((5, 30, 30), np.nan))
    with pytest.raises(ValueError, match="real-valued"):
        hog_top(np.zeros((5, 30, 30), dtype=complex))


# --------------------------------------------------------------------------- toy problem
def test_separates_motion_direction_through_the_temporal_planes() -> None:
    clips, y = bar_clips()
    layout = BlockLayout((1, 2))
    for fn in (hog_top, higo_top):
        for bins in (4, 8):
            x = np.stack([fn(c, bins=bins, layout=layout) for c in clips]).reshape(40, 5, 3, bins)
            assert cv_accuracy(x.reshape(40, -1), y) > 0.8
            assert cv_accuracy(x[:, 0, 2].reshape(40, -1), y) > 0.8  # whole-face YT alone
            assert cv_accuracy(x[:, :, 0].reshape(40, -1), y) < 0.75  # XY alone


# --------------------------------------------------------------------------- registry
def test_registry_specs() -> None:
    for family, fn in (("hog_top", hog_top), ("higo_top", higo_top)):
        for bins in (4, 8):
            d = registry.get_descriptor(f"{family}:p{bins}")
            assert d.name == f"{family}:p{bins}" and d.family == family
            assert d.function is fn and d.params["bins"] == bins
            assert d.dim_per_block == 3 * bins and d.dim == 85 * 3 * bins
            assert d.column_blocks()[3 * bins] == 1
        assert registry.get_descriptor(family).name == f"{family}:p8"
    assert "85 blocks x 12 values = 1020" in registry.describe("higo_top:p4")
    with pytest.raises(ValueError, match="expected 'p<bins>'"):
        registry.get_descriptor("hog_top:b8")
    with pytest.raises(ValueError, match="2..360"):
        registry.get_descriptor("higo_top:p1")
    with pytest.raises(ValueError, match="no options"):
        registry.get_descriptor("hog_top:p8:signed")


def test_registry_descriptor_computes_features() -> None:
    clip = np.random.default_rng(4).integers(0, 256, (16, 112, 112)).astype(np.uint8)
    np.testing.assert_array_equal(
        registry.get_descriptor("hog_top:p4")(clip), hog_top(clip, bins=4)
    )
    np.testing.assert_array_equal(registry.get_descriptor("higo_top:p8")(clip), higo_top(clip))
