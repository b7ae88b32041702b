"""Linear EVM on a synthetic sub-pixel sinusoidal translation of a grating.

The grating ``128 + 60 sin(2 pi (x - d(t)) / lam)`` moves by ``d(t) = a sin(2 pi f t)``
with ``a = 0.2`` px; its displacement is measured from the phase of the grating along x
(central rows, a whole number of periods), and the gain is the least-squares slope of the
measured output displacement on the true input displacement.
"""

from __future__ import annotations

import numpy as np
import pytest

from merkit.video.magnify import Magnification, level_alphas, magnify

FPS = 30.0
BAND = (1.0, 4.0)
ALPHA = 3.0


def grating(f: float, lam: float, *, n: int = 60, a: float = 0.2, h: int = 64, w: int = 128):
    """(T, H, W) float32 moving grating and its displacement d(t)."""
    d = a * np.sin(2 * np.pi * f * np.arange(n) / FPS)
    x = np.arange(w, dtype=np.float64)
    rows = 128 + 60 * np.sin(2 * np.pi * (x[None, :] - d[:, None]) / lam)
    return np.repeat(rows[:, None, :], h, axis=1).astype(np.float32), d


def displacement(clip: np.ndarray, lam: float) -> np.ndarray:
    """Per-frame displacement (px, mean removed) from the grating's phase along x."""
    w = clip.shape[2]
    margin = int((w - (w // (2 * lam)) * lam) // 2)
    cols = np.arange(margin, w - margin)
    profile = clip[:, 16:-16, margin : w - margin].astype(np.float64).mean(axis=1)
    phase = np.unwrap(np.angle((profile * np.exp(-2j * np.pi * cols / lam)).sum(axis=1)))
    return -(phase - phase.mean()) * lam / (2 * np.pi)


def gain(out: np.ndarray, d: np.ndarray, lam: float) -> float:
    ref = d - d.mean()
    return float(displacement(out, lam) @ ref / (ref @ ref))


def test_measurement_reads_the_input_motion():
    clip, d = grating(2.0, 32.0)
    assert gain(clip, d, 32.0) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("filt", ["ideal", "butterworth"])
def test_motion_in_band_is_magnified_by_one_plus_alpha(filt):
    clip, d = grating(2.0, 32.0)
    out = magnify(clip, FPS, ALPHA, band=BAND, filter=filt, order=2, cutoff=8.0)
    assert gain(out, d, 32.0) == pytest.approx(1 + ALPHA, rel=0.10)


@pytest.mark.parametrize("filt", ["ideal", "butterworth"])
def test_motion_outside_band_is_not_magnified(filt):
    clip, d = grating(10.0, 32.0)
    out = magnify(clip, FPS, ALPHA, band=BAND, filter=filt, order=2, cutoff=8.0)
    assert gain(out, d, 32.0) == pytest.approx(1.0, rel=0.10)


def test_gaussian_pyramid_magnifies_long_wavelengths():
    clip, d = grating(2.0, 64.0)
    out = magnify(clip, FPS, ALPHA, band=BAND, pyramid="gaussian", levels=2, cutoff=8.0)
    assert gain(out, d, 64.0) == pytest.approx(1 + ALPHA, rel=0.10)


def test_wavelengths_below_the_cutoff_are_not_magnified():
    # a 6 px grating with lambda_c = 32 px: (1 + alpha) d = 0.8 px > lambda / 8
    clip, d = grating(2.0, 6.0)
    out = magnify(clip, FPS, ALPHA, band=BAND, cutoff=32.0)
    assert gain(out, d, 6.0) == pytest.approx(1.0, abs=0.05)
    # the same grating with lambda_c = 8 px is magnified on its levels above the cut-off
    out = magnify(clip, FPS, ALPHA, band=BAND, cutoff=8.0)
    assert gain(out, d, 6.0) > 2.0


def test_level_alphas_follow_the_wavelength_bound():
    # d_c = lambda_c / (8 (1 + alpha)); alpha_l = min(alpha, lambda_l / (8 d_c) - 1) >= 0
    got = level_alphas(3.0, 16.0, [2.0, 4.0, 8.0, 16.0, 32.0])
    np.testing.assert_allclose(got, [0.0, 0.0, 1.0, 3.0, 3.0])


REDUCE = -0.5


@pytest.mark.parametrize("filt", ["ideal", "butterworth"])
def test_negative_alpha_reduces_the_motion_in_band_to_one_plus_alpha(filt):
    clip, d = grating(2.0, 32.0)
    out = magnify(clip, FPS, REDUCE, band=BAND, filter=filt, order=2, cutoff=8.0)
    assert gain(out, d, 32.0) == pytest.approx(1 + REDUCE, rel=0.10)
    out = magnify(clip, FPS, -0.9, band=BAND, filter=filt, order=2, cutoff=8.0)
    assert gain(out, d, 32.0) == pytest.approx(0.1, abs=0.05)  # nearly still


@pytest.mark.parametrize("filt", ["ideal", "butterworth"])
def test_negative_alpha_leaves_motion_outside_the_band(filt):
    clip, d = grating(10.0, 32.0)
    out = magnify(clip, FPS, REDUCE, band=BAND, filter=filt, order=2, cutoff=8.0)
    assert gain(out, d, 32.0) == pytest.approx(1.0, rel=0.10)


def test_reduction_ignores_the_cutoff():
    # the 6 px grating that alpha = 3 leaves alone under lambda_c = 32 px is reduced too
    clip, d = grating(2.0, 6.0)
    out = magnify(clip, FPS, REDUCE, band=BAND, cutoff=32.0)
    assert gain(out, d, 6.0) == pytest.approx(1 + REDUCE, rel=0.10)
    np.testing.assert_array_equal(level_alphas(-0.5, 16.0, [4.0, 64.0]), [-0.5, -0.5])


def test_alpha_zero_is_identity_and_dtype_range_are_kept():
    clip, _ = grating(2.0, 32.0)
    np.testing.assert_array_equal(magnify(clip, FPS, 0.0, band=BAND), clip)
    tiny = magnify(clip, FPS, 1e-9, band=BAND)
    np.testing.assert_allclose(tiny, clip, atol=1e-3)

    u8 = np.clip(2.2 * (clip - 128) + 128, 0, 255).round().astype(np.uint8)
    assert u8.min() == 0 and u8.max() == 255
    out = magnify(u8, FPS, 20.0, band=BAND, cutoff=4.0)
    assert out.dtype == np.uint8 and out.shape == u8.shape
    assert np.abs(out.astype(int) - u8).max() > 10  # it did change
    f01 = clip / 255.0
    out = magnify(f01, FPS, 20.0, band=BAND, value_range=(0.0, 1.0))
    assert out.dtype == f01.dtype and out.min() >= 0.0 and out.max() <= 1.0
    out = magnify(clip.astype(np.float64) * 2, FPS, 20.0, band=BAND)
    assert out.dtype == np.float64 and out.min() >= 0.0 and out.max() <= 255.0


def test_magnification_is_deterministic_and_applies_its_parameters():
    clip, _ = grating(2.0, 32.0)
    m = Magnification(ALPHA, band=BAND, cutoff=8.0)
    np.testing.assert_array_equal(m.apply(clip, FPS), m.apply(clip, FPS))
    np.testing.assert_array_equal(
        m.apply(clip, FPS), magnify(clip, FPS, ALPHA, band=BAND, cutoff=8.0)
    )
    assert m.key() == {
        "alpha": 3.0,
        "band": [1.0, 4.0],
        "pyramid": "laplacian",
        "filter": "ideal",
        "cutoff": 8.0,
        "levels": None,
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"alpha": -1.0},
            "alpha must be a number > -1 (in (-1, 0) it reduces the motion), got -1.0",
        ),
        ({"band": (4.0, 1.0)}, "band 4,1 Hz: need 0 < LOW < HIGH"),
        ({"band": (0.0, 4.0)}, "band 0,4 Hz: need 0 < LOW < HIGH"),
        ({"band": (1.0, 15.0)}, "must lie below half the frame rate (15 Hz at 30 fps)"),
        ({"band": (0.1, 0.2)}, "holds no frequency of a 60-frame clip at 30 fps"),
        ({"pyramid": "steerable"}, "unknown pyramid 'steerable'"),
        ({"filter": "iir"}, "unknown temporal filter 'iir'"),
        ({"cutoff": 0.0}, "cut-off wavelength must be > 0 pixels"),
        ({"levels": 5}, "5 pyramid levels need frames of at least 256 px, got 64x128"),
    ],
)
def test_bad_parameters_give_one_line_errors(kwargs, message):
    clip, _ = grating(2.0, 32.0)
    args = {"alpha": ALPHA, "band": BAND} | kwargs
    alpha = args.pop("alpha")
    with pytest.raises(ValueError) as err:
        magnify(clip, FPS, alpha, **args)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_short_or_misshapen_clips_are_rejected():
    clip, _ = grating(2.0, 32.0)
    with pytest.raises(ValueError, match="at least 3 frames, got 2"):
        magnify(clip[:2], FPS, ALPHA, band=BAND)
    with pytest.raises(ValueError, match=r"grey clip \(T, H, W\), got shape \(60, 128\)"):
        magnify(clip[:, 0], FPS, ALPHA, band=BAND)
