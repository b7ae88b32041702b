"""LPQ-TOP: codes against a direct port of the authors' LPQ_TOP.m (scipy convolve2d per
slice), the whitening transform, histograms, blur insensitivity, invariances, a toy
motion-direction problem and the registry entries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.signal import convolve2d

from merkit.features import registry
from merkit.features.layout import BlockLayout
from merkit.features.lbp import lbp_top, lbp_top_codes
from merkit.features.lpq import lpq_top, lpq_top_codes, output_dim, whitening_matrix
from tests.features._toy import bar_clips, cv_accuracy

A_DIAG = np.diag([1.000007, 1.000006, 1.000005, 1.000004, 1.000003, 1.000002, 1.000001, 1.0])


# --------------------------------------------------------------------------- reference port
def _filters(w: int):
    x = np.arange(w) - (w - 1) / 2
    w1 = np.exp(-2j * np.pi * x / w)
    return np.ones(w), w1, np.conj(w1)


def _reference_cov(w_r: int, w_c: int, rho_s: float, rho_t: float, plane: int) -> np.ndarray:
    """lpqtopCov_ of LPQ_TOP.m: (D, C) with MATLAB's column-major window order."""
    xp, yp = np.meshgrid(np.arange(1, w_c + 1), np.arange(1, w_r + 1))  # MATLAB meshgrid
    pp = np.stack([xp.ravel(order="F"), yp.ravel(order="F")], axis=1).astype(float)
    if plane == 1:
        c = rho_s ** np.linalg.norm(pp[:, None] - pp[None], axis=-1)
    else:  # rows spatial, columns temporal
        c = rho_s ** np.abs(pp[:, None, 1] - pp[None, :, 1])
        c = c * rho_t ** np.abs(pp[:, None, 0] - pp[None, :, 0])
    w0r, w1r, _ = _filters(w_r)
    w0c, w1c, w2c = _filters(w_c)
    m = []
    for q in (np.outer(w0r, w1c), np.outer(w1r, w0c), np.outer(w1r, w1c), np.outer(w1r, w2c)):
        m += [q.real.ravel(order="F"), q.imag.ravel(order="F")]
    m = np.fliplr(np.array(m))
    return m @ c @ m.T, c


def _reference_plane_codes(img: np.ndarray, w_r: int, w_c: int, v) -> np.ndarray:
    """lpqtop_ of LPQ_TOP.m on one plane image ('valid' conv2, optional whitening)."""
    w0r, w1r, _ = _filters(w_r)
    w0c, w1c, w2c = _filters(w_c)
    parts = []
    for a, b in ((w0r, w1c), (w1r, w0c), (w1r, w1c), (w1r, w2c)):
        resp = convolve2d(convolve2d(img, a[:, None], "valid"), b[None, :], "valid")
        parts += [resp.real, resp.imag]
    f = np.stack(parts, axis=-1)
    if v is not None:
        f = f @ v
    return ((f >= 0) * (1 << np.arange(8))).sum(-1)


def reference_lpq_top_codes(clip, window=(5, 5, 5), rho=(0.1, 0.1)):
    """Per-slice LPQ_TOP.m, cropped to the voxels merkit codes on all three planes."""
    clip = np.asarray(clip, dtype=float)
    wx, wy, wt = window
    mx, my, mt = (wx - 1) // 2, (wy - 1) // 2, (wt - 1) // 2
    t, h, w = clip.shape
    deco = rho is not None

    def v(w_r, w_c, plane):
        return whitening_matrix(w_r, w_c, rho[0], rho[1], plane == 1) if deco else None

    xy = np.stack(
        [_reference_plane_codes(clip[i], wy, wx, v(wy, wx, 1)) for i in range(mt, t - mt)]
    )
    xt = np.stack(
        [_reference_plane_codes(clip[:, y, :].T, wx, wt, v(wx, wt, 3)) for y in range(my, h - my)]
    )  # (y, x, t)
    yt = np.stack(
        [_reference_plane_codes(clip[:, :, x].T, wy, wt, v(wy, wt, 2)) for x in range(mx, w - mx)]
    )  # (x, y, t)
    return xy, xt.transpose(2, 0, 1), yt.transpose(2, 1, 0)


# --------------------------------------------------------------------------- codes
@pytest.mark.parametrize(
    "window, rho",
    [((5, 5, 5), (0.1, 0.1)), ((5, 5, 5), None), ((5, 5, 5), (0.9, 0.5)), ((3, 5, 7), (0.1, 0.3))],
)
def test_codes_equal_the_lpq_top_m_port(window, rho) -> None:
    clip = np.random.default_rng(sum(window)).random((11, 19, 23)) * 255
    ours = lpq_top_codes(clip, window=window, rho=rho if rho is not None else 0)
    ref = reference_lpq_top_codes(clip, window, rho)
    wx, wy, wt = window
    shape = (11 - wt + 1, 19 - wy + 1, 23 - wx + 1)
    for plane, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert a.shape == b.shape == shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b, err_msg=f"plane {plane}")
        assert len(np.unique(a)) > 100  # real codes, not a degenerate map


def test_whitening_matrix_whitens_the_model_covariance() -> None:
    for (w_r, w_c), rho, plane in (
        ((5, 5), (0.1, 0.1), 1),
        ((5, 5), (0.1, 0.1), 2),
        ((3, 7), (0.9, 0.5), 2),
        ((5, 5), (0.9, 0.9), 1),
    ):
        d, c = _reference_cov(w_r, w_c, *rho, plane)
        assert c.shape == (w_r * w_c,) * 2 and np.allclose(np.diag(c), 1.0)
        v = whitening_matrix(w_r, w_c, *rho, plane == 1)
        np.testing.assert_allclose(v.T @ v, np.eye(8), atol=1e-12)
        s = v.T @ (A_DIAG @ d @ A_DIAG) @ v
        np.testing.assert_allclose(s - np.diag(np.diag(s)), 0.0, atol=1e-9)
        assert np.all(np.diff(np.diag(s)) <= 0)  # singular values in decreasing order
        for k in range(8):  # sign convention: first entry of magnitude > 1e-3 positive
            assert v[np.flatnonzero(np.abs(v[:, k]) > 1e-3)[0], k] > 0
    # rho = 0.1 on a 5 x 5 window: the eigenvalues of D (independent of A up to 1e-5)
    d, _ = _reference_cov(5, 5, 0.1, 0.1, 1)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(d))[::-1],
        [16.5315, 16.5315, 14.9145, 14.8238, 14.4078, 13.2515, 13.2515, 12.1694],
        atol=2e-4,
    )


def test_flat_and_static_clips_give_exact_codes() -> None:
    for rho in (0.1, 0):
        codes = lpq_top_codes(np.full((7, 12, 12), 80.0), rho=rho)
        assert all((c == 255).all() for c in codes)  # all 8 parts exactly 0
    frame = np.random.default_rng(1).random((20, 20)) * 255
    xy, xt, yt = lpq_top_codes(np.repeat(frame[None], 7, axis=0), rho=0)
    # constant in time: every part with a temporal cos/sin filter is exactly 0 (bits 0, 1,
    # 4..7 set); only the (w1 along space, box along time) pair keeps a sign
    for codes in (xt, yt):
        assert set(np.unique(codes).tolist()) == {243, 247, 251, 255}
    assert len(np.unique(xy)) > 150
    v = lpq_top(np.repeat(frame[None], 7, axis=0), rho=0, layout=BlockLayout((1,))).reshape(3, 256)
    assert v[1, [243, 247, 251, 255]].sum() == pytest.approx(1.0)


# --------------------------------------------------------------------------- histograms
def test_dimensions_and_normalisation() -> None:
    clip = np.random.default_rng(1).random((16, 112, 112)).astype(np.float32) * 255
    for rho in (0.1, 0):
        v = lpq_top(clip, rho=rho)
        assert v.dtype == np.float32 and v.shape == (65280,) == (output_dim(),)
        np.testing.assert_allclose(v.reshape(85, 3, 256).sum(-1), 1.0, atol=1e-5)
    assert lpq_top(clip, layout=BlockLayout((1, 2))).shape == (5 * 768,)


def test_histograms_are_block_histograms_of_the_codes() -> None:
    clip = np.random.default_rng(7).integers(0, 256, (9, 30, 34))
    layout = BlockLayout((1, 2, 3))
    v = lpq_top(clip, layout=layout).reshape(layout.n_blocks, 3, 256)
    codes = lpq_top_codes(clip)
    for b, (y0, y1, x0, x1) in enumerate(layout.block_bounds(26, 30)):  # frame minus 2 px
        for k in range(3):
            c = codes[k][:, y0:y1, x0:x1].ravel()
            np.testing.assert_allclose(v[b, k], np.bincount(c, minlength=256) / c.size, rtol=1e-6)


def test_decorrelation_changes_the_codes() -> None:
    clip = np.random.default_rng(2).random((9, 20, 20)) * 255
    a, b = lpq_top_codes(clip, rho=0.1)[0], lpq_top_codes(clip, rho=0)[0]
    assert (a != b).mean() > 0.9  # the whitening rotates the 8 parts: most codes change
    np.testing.assert_array_equal(lpq_top_codes(clip, rho=(0, 0))[0], b)
    np.testing.assert_array_equal(lpq_top_codes(clip, rho=None)[0], b)


def _pink_texture(seed: int, n: int = 96) -> np.ndarray:
    """Random texture with a natural-image 1/f amplitude spectrum."""
    rng = np.random.default_rng(seed)
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    f[0, 0] = 1.0
    img = np.fft.ifft2((rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / f).real
    return (img - img.mean()) / img.std() * 40 + 128


def test_blur_changes_lpq_top_less_than_lbp_top() -> None:
    """Spatial Gaussian blur of a textured clip moving in time (1/f texture, 1 px/frame
    down, 2 px/frame right). Relative L1 change of the whole-clip histograms: LPQ-TOP
    [5,5,5] below LBP-TOP R1P8 (both rho; measured ratio 0.92 at sigma 0.5, 0.72 at
    sigma 1). Per voxel, fewer LPQ codes change than LBP codes of the same 5 x 5 footprint
    (R = 2, P = 8): ratio 0.85 at sigma 0.5 (0.98 at sigma 1, not asserted). LBP-TOP R3P8
    compares pixels 3 apart and its u2 histogram changes less than either under such mild
    blur."""
    layout = BlockLayout((1,))

    def rel(f, a, b) -> float:
        fa = f(a)
        return float(np.abs(fa - f(b)).sum() / np.abs(fa).sum())

    def changed(codes_a, codes_b) -> float:
        return float(np.mean([(a != b).mean() for a, b in zip(codes_a, codes_b, strict=True)]))

    for seed in (0, 1):
        tex = _pink_texture(seed)
        clip = np.stack([tex[t : t + 48, 2 * t : 2 * t + 48] for t in range(12)])
        for sigma, bound in ((0.5, 0.97), (1.0, 0.8)):
            blurred = gaussian_filter(clip, (0, sigma, sigma))
            lbp = rel(lambda c: lbp_top(c, radii=(1, 1, 1), layout=layout), clip, blurred)
            for rho in (0.1, 0):
                lpq = rel(lambda c, r=rho: lpq_top(c, rho=r, layout=layout), clip, blurred)
                assert lpq < bound * lbp, (seed, sigma, rho, lpq, lbp)
            if sigma == 0.5:
                lpq_changed = changed(lpq_top_codes(clip, rho=0), lpq_top_codes(blurred, rho=0))
                lbp_changed = changed(
                    lbp_top_codes(clip, radii=(2, 2, 2)), lbp_top_codes(blurred, radii=(2, 2, 2))
                )
                assert lpq_changed < 0.9 * lbp_changed, (seed, lpq_changed, lbp_changed)


def test_deterministic_and_invariant_to_offset_and_gain() -> None:
    clip = np.random.default_rng(3).integers(0, 256, (12, 40, 40)).astype(np.float32)
    a = lpq_top(clip)
    np.testing.assert_array_equal(a, lpq_top(clip.copy()))
    np.testing.assert_array_equal(a, lpq_top(clip.astype(np.uint8)))
    np.testing.assert_array_equal(a, lpq_top(2.0 * clip + 17.0))  # signs unchanged
    assert not np.array_equal(a, lpq_top(clip[:, ::-1]))


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[T, H, W\].*\(20, 20\)"):
        lpq_top(np.zeros((20, 20)))
    with pytest.raises(ValueError, match="4 frames; LPQ-TOP with a temporal window of 5"):
        lpq_top(np.zeros((4, 30, 30)))
    with pytest.raises(ValueError, match="frames are 3x30"):
        lpq_top(np.zeros((9, 3, 30)))
    with pytest.raises(ValueError, match="code map of 6x26.*does not fit"):
        lpq_top(np.zeros((9, 10, 30)))
    with pytest.raises(ValueError, match="odd integers >= 3"):
        lpq_top(np.zeros((9, 30, 30)), window=4)
    with pytest.raises(ValueError, match="odd integers >= 3"):
        lpq_top(np.zeros((9, 30, 30)), window=(5, 1, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        lpq_top(np.zeros((9, 30, 30)), rho=1.0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        lpq_top(np.zeros((9, 30, 30)), rho=(0.1, -0.1))
    with pytest.raises(ValueError, match="NaN"):
        lpq_top(np.full((9, 30, 30), np.inf))


# --------------------------------------------------------------------------- toy problem
def test_separates_motion_direction_through_the_temporal_planes() -> None:
    clips, y = bar_clips()
    layout = BlockLayout((1, 2))
    for rho in (0.1, 0):
        x = np.stack([lpq_top(c, rho=rho, layout=layout) for c in clips]).reshape(40, 5, 3, 256)
        assert cv_accuracy(x.reshape(40, -1), y) > 0.8
        assert cv_accuracy(x[:, :, 0].reshape(40, -1), y) < 0.75  # XY alone: no direction


# --------------------------------------------------------------------------- registry
def test_registry_specs() -> None:
    d = registry.get_descriptor("lpq_top:w5")
    assert d.name == "lpq_top:w5" and d.family == "lpq_top"
    assert d.params["window"] == (5, 5, 5) and d.params["rho"] == (0.1, 0.1)
    assert d.dim_per_block == 768 and d.dim == 65280 and d.column_blocks()[768] == 1
    assert registry.get_descriptor("lpq_top").name == "lpq_top:w5"
    assert registry.get_descriptor("lpq_top:w5:rho0.1").name == "lpq_top:w5"
    z = registry.get_descriptor("lpq_top:w5:rho0")
    assert z.name == "lpq_top:w5:rho0" and z.params["rho"] is None and z.dim == 65280
    a = registry.get_descriptor("lpq_top:wx5wy3wt7:rhos0.1rhot0.5")
    assert a.name == "lpq_top:wx5wy3wt7:rhos0.1rhot0.5" and a.params["window"] == (5, 3, 7)
    assert a.params["rho"] == (0.1, 0.5)
    assert registry.get_descriptor("lpq_top:w7:rho0.9").name == "lpq_top:w7:rho0.9"
    assert "85 blocks x 768 values = 65280" in registry.describe("lpq_top:w5:rho0")
    with pytest.raises(ValueError, match="expected 'w<W>'"):
        registry.get_descriptor("lpq_top:r3")
    with pytest.raises(ValueError, match="odd and >= 3"):
        registry.get_descriptor("lpq_top:w4")
    with pytest.raises(ValueError, match="expected 'rho<r>'"):
        registry.get_descriptor("lpq_top:w5:decorr")
    with pytest.raises(ValueError, match="< 1"):
        registry.get_descriptor("lpq_top:w5:rho1")
    with pytest.raises(ValueError, match="one option"):
        registry.get_descriptor("lpq_top:w5:rho0:rho0.1")


def test_registry_descriptor_computes_features() -> None:
    clip = np.random.default_rng(4).integers(0, 256, (16, 112, 112)).astype(np.uint8)
    np.testing.assert_array_equal(registry.get_descriptor("lpq_top:w5")(clip), lpq_top(clip))
    np.testing.assert_array_equal(
        registry.get_descriptor("lpq_top:w5:rho0")(clip), lpq_top(clip, rho=0)
    )
