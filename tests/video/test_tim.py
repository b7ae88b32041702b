"""Temporal interpolation model."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.video.tim import tim, tim_matrix


def _original_tim(frames: np.ndarray, length: int) -> np.ndarray:
    """TIM as formulated by Zhou et al. (2011): project the mean-removed frames (PCA
    coordinates) onto the path-graph Laplacian eigenvectors, then map points of the
    continuous curve back (needs linearly independent frames)."""
    n = frames.shape[0]
    x = frames.reshape(n, -1).T.astype(np.float64)  # pixels x frames
    mu = x.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(x - mu, full_matrices=False)
    u, q = u[:, : n - 1], (np.diag(s) @ vt)[: n - 1]  # q: (n-1) x n
    lap = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    lap[0, 0] = lap[-1, -1] = 1
    _, vecs = np.linalg.eigh(lap)
    v0 = vecs[:, 1:]  # drop the constant eigenvector
    w = np.linalg.solve(q @ q.T, q @ v0)  # q.T @ w = v0
    k = np.arange(1, n)
    scale = v0[0] / np.sin(np.pi * k / n + np.pi * (n - k) / (2 * n))  # eigvec / formula
    out = []
    for pos in np.linspace(0, 1, length):
        t = pos * (1 - 1 / n) + 1 / n
        curve = np.sin(np.pi * k * t + np.pi * (n - k) / (2 * n)) * scale
        out.append(u @ np.linalg.solve(w.T, curve) + mu[:, 0])
    return np.stack(out).reshape((length,) + frames.shape[1:])


@pytest.fixture
def clip() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (9, 6, 7)).astype(np.uint8)


def test_matches_original_formulation(clip) -> None:
    for length in (16, 5, 9, 30):
        np.testing.assert_allclose(tim(clip, length), _original_tim(clip, length), atol=2e-3)


def test_same_length_reproduces_input(clip) -> None:
    out = tim(clip, clip.shape[0])
    assert out.dtype == np.float32 and out.shape == clip.shape
    np.testing.assert_allclose(out, clip, atol=1e-4 * 255)
    np.testing.assert_allclose(tim_matrix(9, 9), np.eye(9), atol=1e-10)


@pytest.mark.parametrize("length", [2, 4, 16, 64])
def test_endpoints_are_first_and_last_frames(clip, length) -> None:
    out = tim(clip, length)
    assert out.shape == (length, 6, 7)
    np.testing.assert_allclose(out[0], clip[0], atol=1e-3)
    np.testing.assert_allclose(out[-1], clip[-1], atol=1e-3)


def test_rows_of_matrix_sum_to_one() -> None:
    # a constant clip stays constant: the interpolation weights sum to 1
    np.testing.assert_allclose(tim_matrix(11, 16).sum(axis=1), 1.0, atol=1e-10)
    out = tim(np.full((5, 3, 3), 77.0), 16)
    np.testing.assert_allclose(out, 77.0, atol=1e-4)


def test_linear_ramp_stays_monotone_and_near_linear() -> None:
    n = 10
    ramp = np.arange(n, dtype=np.float64)[:, None, None] * np.ones((1, 2, 2)) * 10
    for length in (16, 25, 7):
        out = tim(ramp, length)[:, 0, 0]
        assert np.all(np.diff(out) > 0)
        linear = np.linspace(0, 90, length)
        assert np.abs(out - linear).max() < 0.01 * 90  # within 1 % of the range


def test_smooth_on_real_clip(shared_data) -> None:
    folder = shared_data / "clips" / "casme2_frames"
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    from merkit.video.io import read_frames

    frames = read_frames(folder).astype(np.float32)  # 10 frames, 340 x 280
    out = tim(frames, 16)
    np.testing.assert_allclose(out[0], frames[0], atol=1e-3)
    np.testing.assert_allclose(out[-1], frames[-1], atol=1e-3)
    # a smooth curve through the frames: second differences shrink with the sampling step
    # (the 10 noisy input frames: 3.8 grey levels; 16 samples: 1.8; 28 samples: 0.6)
    d2_in = np.abs(np.diff(frames, n=2, axis=0)).mean()
    d2_16 = np.abs(np.diff(out, n=2, axis=0)).mean()
    d2_28 = np.abs(np.diff(tim(frames, 28), n=2, axis=0)).mean()
    assert d2_16 < 0.6 * d2_in
    assert d2_28 < 0.5 * d2_16
    # and close to piecewise-linear interpolation (mean 0.37 grey levels apart)
    pos = np.linspace(0, 9, 16)
    lo = np.minimum(np.floor(pos).astype(int), 8)
    a = (pos - lo)[:, None, None]
    linear = (1 - a) * frames[lo] + a * frames[lo + 1]
    assert np.abs(out - linear).mean() < 1.0
    # no overshoot beyond the input range worth mentioning
    assert out.min() > frames.min() - 5 and out.max() < frames.max() + 5


def test_short_and_colour_inputs() -> None:
    one = np.random.default_rng(0).random((1, 4, 4))
    out = tim(one, 5)
    assert out.shape == (5, 4, 4)
    np.testing.assert_allclose(out, np.repeat(one, 5, axis=0), atol=1e-6)
    two = np.stack([np.zeros((3, 3)), np.full((3, 3), 100.0)])
    out = tim(two, 5)[:, 0, 0]
    np.testing.assert_allclose(out[[0, -1]], [0, 100], atol=1e-4)
    np.testing.assert_allclose(out[2], 50, atol=1e-4)  # symmetric midpoint
    assert np.all(np.diff(out) > 0)
    colour = np.random.default_rng(1).random((4, 5, 6, 3)) * 255
    out = tim(colour, 8)
    assert out.shape == (8, 5, 6, 3)
    np.testing.assert_allclose(out[-1], colour[-1], atol=1e-3)
    # channels are interpolated independently
    np.testing.assert_allclose(out[..., 1], tim(colour[..., 1], 8), atol=1e-4)


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        tim(np.zeros((4, 3, 3)), 1)
    with pytest.raises(ValueError, match="empty clip"):
        tim(np.zeros((0, 3, 3)), 16)
    with pytest.raises(ValueError, match=r"\[T, H, W\]"):
        tim(np.zeros((3, 3)), 16)
    with pytest.raises(ValueError, match="integer"):
        tim(np.zeros((4, 3, 3)), 2.5)
