"""LBP-TOP: codes against scikit-image, histograms, the real CDMER benchmark features,
and the descriptor registry."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import local_binary_pattern

from merkit.features import registry
from merkit.features.layout import BlockLayout
from merkit.features.lbp import (
    cdmer_layout,
    cdmer_to_block_layout,
    lbp_top,
    lbp_top_codes,
    map_codes,
    n_bins,
    neighbour_offsets,
    output_dim,
    uniform_codes,
)

BENCHMARK = "cdmer_lbptop_r3p8/CrossCorpus_LBPTOP_R3P8_{}_112by112.mat"
#: codes of a near-static face in XT/YT: one spatial side brighter, the temporal pair
#: (bits 2 and 6) both set, one set, or none
STATIC_CODES = (56, 60, 120, 124, 131, 135, 195, 199)


def _rng_clip(shape=(9, 20, 24), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def _skimage_nri_bin(code: int, points: int) -> int:
    """scikit-image's 'nri_uniform' number of a raw code: 0 for no ones, then by
    (number of ones, rotation counted downwards), all ones, non-uniform last."""
    bits = [(code >> i) & 1 for i in range(points)]
    ones = sum(bits)
    transitions = sum(bits[i] != bits[(i + 1) % points] for i in range(points))
    if transitions > 2:
        return points * (points - 1) + 2
    if ones == 0:
        return 0
    if ones == points:
        return points * (points - 1) + 1
    start = next(i for i in range(points) if bits[i] and not bits[i - 1])
    return 1 + (ones - 1) * points + (points - start) % points


# --------------------------------------------------------------------------- mapping
def test_u2_mapping_matches_matlab_getmapping_order() -> None:
    u = uniform_codes(8)
    assert len(u) == 58 and u[:8].tolist() == [0, 1, 2, 3, 4, 6, 7, 8] and u[-1] == 255
    bins = map_codes(np.arange(256), 8, "u2")
    assert bins[0] == 0 and bins[1] == 1 and bins[255] == 57 and bins[5] == 58
    assert bins[[56, 60, 120, 124, 131, 135, 195, 199]].tolist() == [18, 19, 25, 26, 31, 32, 38, 39]
    assert np.bincount(bins).tolist() == [1] * 58 + [256 - 58]
    assert n_bins(8) == 59 and n_bins(4) == 15 and n_bins(8, "riu2") == 10
    assert n_bins(4, "none") == 16
    riu2 = map_codes(np.array([0, 7, 255, 5]), 8, "riu2")
    assert riu2.tolist() == [0, 3, 8, 9]


def test_mapping_beyond_lookup_tables() -> None:
    u = uniform_codes(20)
    assert len(u) == 20 * 19 + 2
    assert map_codes(u, 20, "u2").tolist() == list(range(382))
    assert map_codes(np.array([0b101]), 20, "u2").tolist() == [382]
    assert map_codes(np.array([0b111, 0b1011]), 20, "riu2").tolist() == [3, 21]
    # the search path agrees with the lookup table where both exist
    codes = np.random.default_rng(0).integers(0, 1 << 16, 5000)
    from merkit.features import lbp as lbp_module

    searched = np.searchsorted(uniform_codes(16), codes)
    hit = uniform_codes(16)[np.minimum(searched, 241)] == codes
    np.testing.assert_array_equal(
        lbp_module.map_codes(codes, 16, "u2"), np.where(hit, searched, 242)
    )
    with pytest.raises(ValueError, match="2\\^20 bins"):
        n_bins(20, "none")
    with pytest.raises(ValueError, match="unknown LBP mapping"):
        n_bins(8, "ri")


# --------------------------------------------------------------------------- codes
@pytest.mark.parametrize("radius, points", [(3, 8), (1, 8), (1, 4), (2, 4), (2, 16)])
def test_xy_codes_equal_skimage(radius, points) -> None:
    clip = _rng_clip((2 * radius + 3, 21, 26), seed=radius * points)
    xy, _, _ = lbp_top_codes(clip, radii=(radius,) * 3, points=(points,) * 3)
    r = radius
    for t in range(r, clip.shape[0] - r):
        raw = local_binary_pattern(clip[t], points, radius, "default")[r:-r, r:-r]
        np.testing.assert_array_equal(xy[t - r], raw)
        if points <= 8:
            nri = local_binary_pattern(clip[t], points, radius, "nri_uniform")[r:-r, r:-r]
            # the fixed bijection between skimage's numbering and the u2 bins
            to_nri = np.array([_skimage_nri_bin(c, points) for c in range(1 << points)])
            u2_to_nri = np.full(n_bins(points), -1)
            u2_to_nri[map_codes(np.arange(1 << points), points)] = to_nri
            np.testing.assert_array_equal(u2_to_nri[map_codes(xy[t - r], points)], nri)


def test_u2_nri_bijection_is_one_to_one() -> None:
    for points in (4, 8):
        nri = np.array([_skimage_nri_bin(c, points) for c in range(1 << points)])
        u2 = map_codes(np.arange(1 << points), points)
        pairs = set(zip(u2.tolist(), nri.tolist(), strict=True))
        assert len(pairs) == n_bins(points)  # one nri number per u2 bin and vice versa
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == n_bins(points)


def test_xt_yt_codes_equal_skimage_on_time_slices() -> None:
    clip = _rng_clip((11, 18, 22), seed=5)
    _, xt, yt = lbp_top_codes(clip, radii=(3, 3, 3), points=(8, 8, 8))
    for y in range(3, 15):
        ref = local_binary_pattern(clip[:, y, :], 8, 3, "default")[3:-3, 3:-3]
        np.testing.assert_array_equal(xt[:, y - 3, :], ref)
    for x in range(3, 19):
        ref = local_binary_pattern(clip[:, :, x], 8, 3, "default")[3:-3, 3:-3]
        np.testing.assert_array_equal(yt[:, :, x - 3], ref)


def test_anisotropic_radii_offsets_and_shapes() -> None:
    off = neighbour_offsets("XY", 8, (3, 2, 1))
    np.testing.assert_allclose(off[0], [0, 0, 3])
    np.testing.assert_allclose(off[2], [0, -2, 0])  # bit 2 is above the centre
    np.testing.assert_allclose(neighbour_offsets("XT", 4, (3, 2, 1))[1], [-1, 0, 0])
    np.testing.assert_allclose(neighbour_offsets("YT", 4, (3, 2, 1))[0], [0, 2, 0])
    xy, xt, yt = lbp_top_codes(_rng_clip((9, 20, 24)), radii=(3, 2, 1), points=(8, 4, 4))
    assert xy.shape == xt.shape == yt.shape == (7, 16, 18)
    assert xt.max() < 16


# --------------------------------------------------------------------------- histograms
def test_output_dims_and_normalisation() -> None:
    clip = np.random.default_rng(1).random((16, 112, 112)).astype(np.float32) * 255
    v = lbp_top(clip)
    assert v.dtype == np.float32 and v.shape == (15045,) == (output_dim(),)
    np.testing.assert_allclose(v.reshape(85, 3, 59).sum(-1), 1.0, atol=1e-5)
    v4 = lbp_top(clip, radii=(1, 1, 1), points=(4, 4, 4))
    assert v4.shape == (85 * 45,)
    np.testing.assert_allclose(v4.reshape(85, 3, 15).sum(-1), 1.0, atol=1e-5)
    assert lbp_top(clip, mapping="riu2").shape == (85 * 30,)
    assert lbp_top(clip, points=(4, 4, 4), mapping="none").shape == (85 * 48,)
    mixed = lbp_top(clip, points=(8, 4, 4), layout=BlockLayout((1, 2)))
    assert mixed.shape == (5 * (59 + 15 + 15),)


def test_histograms_are_block_histograms_of_the_codes() -> None:
    clip = _rng_clip((9, 30, 34), seed=7)
    layout = BlockLayout((1, 2, 3))
    v = lbp_top(clip, layout=layout).reshape(layout.n_blocks, 3, 59)
    codes = lbp_top_codes(clip)
    bounds = layout.block_bounds(24, 28)  # the code map: frame minus a 3-pixel border
    for b, (y0, y1, x0, x1) in enumerate(bounds):
        for k in range(3):
            bins = map_codes(codes[k][:, y0:y1, x0:x1], 8).ravel()
            np.testing.assert_allclose(v[b, k], np.bincount(bins, minlength=59) / bins.size)


def test_constant_and_static_clips() -> None:
    flat = lbp_top(np.full((7, 20, 20), 90.0), layout=BlockLayout((1, 2)))
    h = flat.reshape(5, 3, 59)
    np.testing.assert_allclose(h[..., 57], 1.0)  # all neighbours >= centre: code 255
    frame = np.random.default_rng(2).random((30, 30)) * 255
    static = np.repeat(frame[None], 9, axis=0)
    _, xt, yt = lbp_top_codes(static)
    for codes in (xt, yt):
        bits = [(codes >> p) & 1 for p in range(8)]
        assert (bits[2] == 1).all() and (bits[6] == 1).all()  # tied temporal neighbours
        assert all((bits[p] == bits[(8 - p) % 8]).all() for p in (1, 3))  # time-symmetric
    v = lbp_top(static, layout=BlockLayout((1,))).reshape(3, 59)
    allowed = np.unique(map_codes(np.unique(np.concatenate([xt.ravel(), yt.ravel()])), 8))
    assert v[1, allowed].sum() == pytest.approx(1.0)
    # of the 59 bins, the static codes reach only those with bits 2 and 6 set
    reachable = [c for c in range(256) if (c >> 2) & 1 and (c >> 6) & 1]
    assert set(allowed.tolist()) <= set(map_codes(np.array(reachable), 8).tolist())
    # the XY plane keeps the spatial texture (spread over many bins)
    assert (v[0] > 0).sum() > 30


def test_deterministic_and_grey_shift_invariant() -> None:
    clip = _rng_clip((12, 40, 40), seed=3).astype(np.float32)
    a = lbp_top(clip)
    np.testing.assert_array_equal(a, lbp_top(clip.copy()))
    np.testing.assert_array_equal(a, lbp_top(clip + 17.0))
    np.testing.assert_array_equal(a, lbp_top(clip.astype(np.uint8)))


def test_invalid_inputs() -> None:
    with pytest.raises(ValueError, match=r"\[T, H, W\].*\(20, 20\)"):
        lbp_top(np.zeros((20, 20)))
    with pytest.raises(ValueError, match="6 frames.*Rt=3 needs at least 7"):
        lbp_top(np.zeros((6, 30, 30)))
    with pytest.raises(ValueError, match="frames are 5x30"):
        lbp_top(np.zeros((9, 5, 30)))
    with pytest.raises(ValueError, match="code map of 4x24.*does not fit"):
        lbp_top(np.zeros((9, 10, 30)))  # 8x8 blocks over 4 rows
    with pytest.raises(ValueError, match="NaN"):
        lbp_top(np.full((9, 30, 30), np.nan))
    with pytest.raises(ValueError, match="radii"):
        lbp_top(np.zeros((9, 30, 30)), radii=(3, 0, 3))
    with pytest.raises(ValueError, match="neighbour count"):
        lbp_top(np.zeros((9, 30, 30)), points=(8, 1, 8))
    with pytest.raises(ValueError, match="unknown LBP mapping"):
        lbp_top(np.zeros((9, 30, 30)), mapping="rotation")
    with pytest.raises(ValueError, match="column order"):
        lbp_top(np.zeros((9, 30, 30)), column_order="plane")
    with pytest.raises(ValueError, match="real-valued"):
        lbp_top(np.zeros((9, 30, 30), dtype=complex))


def test_cdmer_layout_is_a_reordering_of_the_block_layout() -> None:
    clip = _rng_clip((16, 112, 112), seed=11)
    bench = lbp_top(clip, layout=cdmer_layout(), column_order="level_plane")
    ours = lbp_top(clip, layout=BlockLayout(partition="cdmer"))
    np.testing.assert_array_equal(bench[cdmer_to_block_layout()], ours)
    layout = cdmer_layout()
    np.testing.assert_array_equal(
        bench, lbp_top(clip, layout=layout)[layout.level_plane_order(3, 59)]
    )


# --------------------------------------------------------------------------- real benchmark
def _benchmark(shared_data, db: str) -> np.ndarray:
    h5py = pytest.importorskip("h5py")
    path = shared_data / BENCHMARK.format(db)
    if not path.is_file():
        pytest.skip(f"{path} not available")
    with h5py.File(path, "r") as f:
        return np.asarray(f[f"{db}_micro_feature"]).T


@pytest.fixture(scope="module")
def casme2_features(shared_data) -> np.ndarray:
    return _benchmark(shared_data, "CASME2")


def test_benchmark_u2_bin_order(casme2_features) -> None:
    x = casme2_features.reshape(-1, 255, 59)
    assert x.shape[0] == 130
    np.testing.assert_allclose(x.sum(-1), 1.0, atol=1e-9)
    xt_whole_face = x[:, 1].mean(0)  # level 1, plane XT
    top8 = set(np.argsort(xt_whole_face)[::-1][1:9].tolist())  # [0] is the non-uniform bin
    assert np.argmax(xt_whole_face) == 58
    assert top8 == set(map_codes(np.array(STATIC_CODES), 8).tolist())


def test_benchmark_partition_and_layout(casme2_features) -> None:
    """Each histogram is counts / (voxels of its block): the denominators implied by the
    cdmer block layout and column order make every value of every row an integer count."""
    layout = cdmer_layout()
    voxels = np.array(
        [(y1 - y0) * (x1 - x0) * 10 for y0, y1, x0, x1 in layout.block_bounds(106, 106)]
    )
    per_group = np.concatenate([np.tile(voxels[sl], 3) for sl in layout.level_slices])
    counts = casme2_features.reshape(-1, 255, 59) * per_group[None, :, None]
    assert np.abs(counts - np.round(counts)).max() < 1e-6
    assert sorted(set(per_group.tolist())) == [1690, 1950, 2250, 6250, 6750, 7290, 28090, 112360]
    # the block layout (block, plane, bin) with these denominators does not fit
    wrong = np.repeat(voxels, 3)
    counts = casme2_features.reshape(-1, 255, 59) * wrong[None, :, None]
    assert np.abs(counts - np.round(counts)).max() > 0.1


def test_benchmark_blocks_are_column_major(casme2_features) -> None:
    """Faces are left-right symmetric: a block's XY histogram resembles the mirrored
    (bits p <-> 4 - p) histogram of its mirror block — if the blocks are read column-major."""
    x = casme2_features.reshape(-1, 255, 59)
    mirror_bits = np.array(
        [
            map_codes(np.array([sum(((c >> p) & 1) << ((4 - p) % 8) for p in range(8))]), 8)[0]
            for c in range(256)
        ]
    )
    perm = np.zeros(59, int)
    perm[map_codes(np.arange(256), 8)] = mirror_bits
    level = 4
    xy = x[:, 15 : 15 + 16]  # level 4, plane XY

    def mirror_distance(column_major: bool) -> float:
        d = []
        for k in range(16):
            a, b = divmod(k, level)
            partner = (level - 1 - a) * level + b if column_major else a * level + level - 1 - b
            mirrored = np.empty_like(xy[:, partner])
            mirrored[:, perm] = xy[:, partner]
            d.append(np.abs(xy[:, k] - mirrored).sum(-1).mean())
        return float(np.mean(d))

    assert mirror_distance(True) < 0.6 * mirror_distance(False)


def test_benchmark_row_reproduced_from_official_cropped_frames(
    shared_data, casme2_features
) -> None:
    """The 10 cropped CASME II frames, resized and TIM-interpolated like the benchmark,
    land next to benchmark row 0 — only with this module's neighbour conventions."""
    import cv2

    from merkit.video.io import read_frames
    from merkit.video.tim import tim

    folder = shared_data / "clips" / "casme2_frames"
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    frames = read_frames(folder)
    small = np.stack([cv2.resize(f, (112, 112), interpolation=cv2.INTER_AREA) for f in frames])
    v = lbp_top(tim(small, 16), layout=cdmer_layout(), column_order="level_plane")
    dist = np.abs(casme2_features - v).reshape(130, 255, 59).sum(-1).mean(1)
    order = np.argsort(dist)
    assert order[0] == 0
    assert dist[0] < 0.15 and dist[order[1]] > 2 * dist[0]
    # flipping XY up-down or reversing time in XT/YT moves the vector away from row 0
    groups = v.reshape(255, 59)
    plane = np.concatenate([np.repeat([0, 1, 2], n * n) for n in (1, 2, 4, 8)])
    flip = np.array([sum(((c >> p) & 1) << ((8 - p) % 8) for p in range(8)) for c in range(256)])
    perm = np.zeros(59, int)
    perm[map_codes(np.arange(256), 8)] = map_codes(flip, 8)
    ref = casme2_features[0].reshape(255, 59)
    for p in range(3):
        flipped = np.empty_like(groups[plane == p])
        flipped[:, perm] = groups[plane == p]
        as_is = np.abs(ref[plane == p] - groups[plane == p]).sum(-1).mean()
        assert as_is < 0.5 * np.abs(ref[plane == p] - flipped).sum(-1).mean()


# --------------------------------------------------------------------------- registry
def test_registry_specs() -> None:
    d = registry.get_descriptor("lbp_top:r3p8")
    assert d.name == "lbp_top:r3p8" and d.family == "lbp_top"
    assert d.params["radii"] == (3, 3, 3) and d.params["points"] == (8, 8, 8)
    assert d.dim_per_block == 177 and d.dim == 15045
    assert d.column_blocks().shape == (15045,)
    assert registry.get_descriptor("LBP_TOP:R3P8").name == "lbp_top:r3p8"
    assert registry.get_descriptor("lbp_top").name == "lbp_top:r3p8"
    e = registry.get_descriptor("lbp_top:rx1ry1rt4p4")
    assert e.name == "lbp_top:rx1ry1rt4p4" and e.params["radii"] == (1, 1, 4)
    assert e.dim_per_block == 45
    assert registry.get_descriptor("lbp_top:rx3ry3rt3p8").name == "lbp_top:r3p8"
    assert registry.get_descriptor("lbp_top:r2p8:riu2").dim_per_block == 30
    c = registry.get_descriptor("lbp_top_cdmer:r3p8")
    assert c.column_order == "level_plane" and c.layout == cdmer_layout()
    assert c.column_blocks()[177 + 59 * 4] == 1
    assert set(registry.available()) >= {"lbp_top", "lbp_top_cdmer"}


def test_registry_descriptor_computes_features() -> None:
    clip = _rng_clip((16, 112, 112), seed=4)
    d = registry.get_descriptor("lbp_top:r3p8")
    np.testing.assert_array_equal(d(clip), lbp_top(clip))
    c = registry.get_descriptor("lbp_top_cdmer:r3p8")
    np.testing.assert_array_equal(
        c(clip), lbp_top(clip, layout=cdmer_layout(), column_order="level_plane")
    )


def test_registry_errors_and_describe() -> None:
    with pytest.raises(KeyError, match="unknown descriptor 'sift_top'.*available: .*lbp_top"):
        registry.get_descriptor("sift_top:r3")
    with pytest.raises(ValueError, match="expected 'r<R>p<P>'"):
        registry.get_descriptor("lbp_top:r3")
    with pytest.raises(ValueError, match="mapping name"):
        registry.get_descriptor("lbp_top:r3p8:fast")
    with pytest.raises(ValueError, match="non-empty"):
        registry.get_descriptor("")
    text = registry.describe("lbp_top")
    assert "lbp_top:r3p8" in text and "85 blocks x 177 values = 15045" in text
    assert "85 blocks x 45 values = 3825" in registry.describe("lbp_top:r1p4")
    with pytest.raises(KeyError, match="available"):
        registry.describe("sift_top")


def test_registering_a_new_family(monkeypatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @registry.register("mean_block", summary="mean grey level per block", example="mean_block")
    def _mean(params: str, options: tuple[str, ...]) -> registry.Descriptor:
        layout = BlockLayout((1, 2))

        def fn(clip, layout):
            return np.array(
                [
                    clip[:, y0:y1, x0:x1].mean()
                    for y0, y1, x0, x1 in layout.block_bounds(*clip.shape[1:])
                ],
                dtype=np.float32,
            )

        return registry.Descriptor("mean_block", "mean_block", {"layout": layout}, fn, 1, layout)

    assert "mean_block" in registry.available()
    out = registry.get_descriptor("mean_block")(np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4))
    assert out.shape == (5,) and out[0] == pytest.approx(15.5)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("mean_block", summary="again")(_mean)
