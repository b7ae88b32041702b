"""Face detection, landmarks, similarity alignment and cropping."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from merkit.video import face
from merkit.video.face import (
    MEAN_SHAPE,
    STABLE_POINTS,
    FaceNotFoundError,
    align_clip,
    reference_landmarks,
    similarity_transform,
)
from merkit.video.flow import tvl1_flow

CASME2_AVI = "clips/casme2_sub01_EP02_01f.avi"
CASME2_FRAMES = "clips/casme2_frames"
needs_dlib = pytest.mark.skipif(
    not face.landmark_model_available(),
    reason="dlib + face_recognition_models not installed (pip install 'merkit[landmarks]')",
)


@pytest.fixture(scope="module")
def real_clip(shared_data):
    from merkit.video.io import read_video

    path = shared_data / CASME2_AVI
    if not path.is_file():
        pytest.skip(f"{path} not available")
    return read_video(path, grey=True)


@pytest.fixture
def no_dlib(monkeypatch):
    """Pretend dlib / the landmark model is not installed."""
    monkeypatch.setattr(face, "_dlib_models", lambda: None)


# ----------------------------------------------------------------------------- geometry
def test_similarity_transform_recovers_a_known_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (13, 2))
    angle, scale, t = np.deg2rad(20.0), 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], scale * rot, atol=1e-10)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)


def test_similarity_transform_never_reflects():
    src = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [0.5, 2.0]])
    mirrored = src * [-1.0, 1.0]
    m = similarity_transform(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0
    # a mirror image cannot be reached: the fit leaves a residual
    residual = np.abs(src @ m[:, :2].T + m[:, 2] - mirrored).max()
    assert residual > 0.5


@pytest.mark.parametrize(
    "src, dst, message",
    [
        (np.zeros((3, 2)), np.zeros((3, 2)), "coincide"),
        (np.zeros((3, 2)), np.zeros((4, 2)), r"\(n, 2\)"),
        (np.zeros((1, 2)), np.zeros((1, 2)), "n >= 2"),
    ],
)
def test_similarity_transform_errors(src, dst, message):
    with pytest.raises(ValueError, match=message):
        similarity_transform(src, dst)


def test_mean_shape_is_left_right_symmetric_and_read_only():
    from merkit.features.flowhist import MIRROR_68

    mirrored = MEAN_SHAPE[list(MIRROR_68)] * [-1.0, 1.0] + [1.0, 0.0]
    np.testing.assert_allclose(mirrored, MEAN_SHAPE, atol=2e-4)
    with pytest.raises(ValueError):
        MEAN_SHAPE[0, 0] = 0.0


def test_reference_landmarks_fill_the_crop_symmetrically():
    pts = reference_landmarks((112, 112), margin=0.1)
    assert pts.shape == (68, 2)
    # the eye corners are mirror images about the vertical centre line (x = 55.5)
    assert pts[36, 0] + pts[45, 0] == pytest.approx(111.0, abs=0.1)
    # the tight face square (forehead strip to chin) plus 10 % of its side on every edge
    height = pts[:, 1].max() - pts[:, 1].min()
    assert height / 112 == pytest.approx((1.0697 - 0.1627) / (1.2 * (1.0697 - 0.0827)), abs=0.005)
    tight = reference_landmarks((112, 112), margin=0.0)
    assert tight[:, 1].max() == pytest.approx(111.5, abs=1e-6)  # the chin touches the bottom
    assert tight[:, 0].min() + tight[:, 0].max() == pytest.approx(111.0, abs=0.01)
    wide = reference_landmarks((56, 112), margin=0.1)  # (H, W): y is squeezed by half
    np.testing.assert_allclose((wide[:, 1] + 0.5) * 2, pts[:, 1] + 0.5, atol=1e-9)


@pytest.mark.parametrize("margin", [-0.1, 1.5])
def test_reference_landmarks_reject_bad_margin(margin):
    with pytest.raises(ValueError, match="margin"):
        reference_landmarks((112, 112), margin=margin)


# ----------------------------------------------------------------------------- box mode
def test_frame_detector_without_landmarks_is_a_resize(no_dlib):
    yy, xx = np.mgrid[0:60, 0:50]
    frames = np.stack(
        [127 + 100 * np.sin(xx / 7.0 + k) * np.cos(yy / 9.0) for k in range(3)]
    ).astype(np.uint8)
    out, info = align_clip(frames, size=(30, 25), margin=0.0, landmarks="auto", detector="frame")
    assert info["found"] and info["method"] == "box" and info["landmarks"] is None
    assert out.shape == (3, 30, 25) and out.dtype == np.uint8
    expected = np.stack([cv2.resize(f, (25, 30), interpolation=cv2.INTER_AREA) for f in frames])
    assert np.abs(out.astype(int) - expected).max() <= 2
    # without landmarks the aligned landmarks are the mean shape of the crop
    np.testing.assert_allclose(info["aligned_landmarks"], reference_landmarks((30, 25), 0.0))


def test_float_and_colour_frames_keep_their_dtype(no_dlib):
    frames = np.random.default_rng(2).uniform(0, 255, (2, 40, 40, 3)).astype(np.float32)
    out, _ = align_clip(frames, size=(20, 20), margin=0.0, detector="frame")
    assert out.shape == (2, 20, 20, 3) and out.dtype == np.float32


def test_missing_face_raises_with_the_clip_name_or_skips(no_dlib, caplog):
    blank = np.full((4, 120, 160), 128, dtype=np.uint8)
    with pytest.raises(FaceNotFoundError, match="'sub01/EP02_01f'.*no face"):
        align_clip(blank, name="sub01/EP02_01f")
    with caplog.at_level(logging.WARNING, logger="merkit.video.face"):
        out, info = align_clip(blank, name="s3_ne_01", on_missing="skip")
    assert out is None and info["found"] is False
    assert "s3_ne_01" in caplog.text and "skipped" in caplog.text


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"landmarks": "ibug"}, ValueError, "landmarks="),
        ({"detector": "mtcnn"}, ValueError, "unknown face detector"),
        ({"on_missing": "ignore"}, ValueError, "on_missing="),
        ({"onset_index": 9}, IndexError, "onset_index 9"),
        ({"size": (0, 112)}, ValueError, "positive"),
    ],
)
def test_align_clip_argument_errors(kwargs, error, message):
    frames = np.zeros((3, 40, 40), dtype=np.uint8)
    with pytest.raises(error, match=message):
        align_clip(frames, **{"detector": "frame", **kwargs})


def test_align_clip_rejects_bad_frame_arrays():
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        align_clip(np.zeros((40, 40)), detector="frame")
    with pytest.raises(ValueError, match="no frames"):
        align_clip(np.zeros((0, 40, 40)), detector="frame")


def test_dlib_requested_but_missing_is_an_import_error(no_dlib):
    with pytest.raises(ImportError, match="merkit\\[landmarks\\]"):
        align_clip(np.zeros((2, 40, 40), np.uint8), landmarks="dlib", name="x")


# ----------------------------------------------------------------------------- real faces
def test_real_clip_box_crop_without_landmarks(real_clip, no_dlib):
    out, info = align_clip(real_clip, landmarks="auto", name="casme2/sub01/EP02_01f")
    assert info["method"] == "box" and info["detector"] == "haar"
    assert out.shape == (44, 112, 112) and out.dtype == np.uint8
    x, y, w, h = info["box"]
    # the face is in the middle of the 640 x 480 frame, about 370 pixels wide
    assert 100 < x < 200 and 50 < y < 150 and 300 < w < 450
    # the pupils (darkest pixels) lie within 4 px of the mean-shape eye centres
    pts = reference_landmarks()
    for centre in (pts[36:42].mean(0), pts[42:48].mean(0)):
        x0, y0 = int(round(centre[0])), int(round(centre[1]))
        window = out[0, y0 - 4 : y0 + 5, x0 - 4 : x0 + 5]
        assert window.min() < 0.4 * out[0].mean()


@needs_dlib
def test_real_clip_landmark_alignment(real_clip):
    out, info = align_clip(real_clip, name="casme2/sub01/EP02_01f")
    assert info["method"] == "landmarks" and info["landmarks"].shape == (68, 2)
    assert out.shape == (44, 112, 112)
    ref = reference_landmarks()
    stable = list(STABLE_POINTS)
    err = np.linalg.norm(info["aligned_landmarks"][stable] - ref[stable], axis=1)
    assert err.mean() < 1.5  # pixels in the 112 x 112 crop
    eyes = info["aligned_landmarks"]
    tilt = np.degrees(np.arctan2(*(eyes[42:48].mean(0) - eyes[36:42].mean(0))[::-1]))
    assert abs(tilt) < 3.0
    # the onset landmarks (640 x 480 frame) lie inside the detected face box
    x, y, w, h = info["box"]
    assert np.all(info["landmarks"][:, 0] > x - 0.1 * w)
    assert np.all(info["landmarks"][:, 0] < x + 1.1 * w)


@needs_dlib
def test_one_transform_keeps_the_motion_of_later_frames(real_clip):
    """Frame 1 = the onset moved 6 px right: alignment must not undo the move."""
    onset = real_clip[0]
    moved = np.roll(onset, 6, axis=1)
    out, info = align_clip(np.stack([onset, moved]), size=(224, 224))
    expected = info["transform"][:, :2] @ [6.0, 0.0]  # the move seen in the aligned crop
    flow = tvl1_flow(out[0], out[1], preset="fast")
    measured = np.median(flow[40:180, 40:180].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(measured, expected, atol=0.15)
    assert expected[0] > 3.0  # not undone by a per-frame re-alignment


@needs_dlib
def test_rotated_and_scaled_face_aligns_to_the_same_crop(real_clip):
    onset = real_clip[0]
    m = cv2.getRotationMatrix2D((320, 240), 12.0, 0.8)
    turned = cv2.warpAffine(onset, m, (640, 480), borderMode=cv2.BORDER_REPLICATE)
    a, _ = align_clip(onset[None])
    b, _ = align_clip(turned[None])
    diff = np.abs(a[0].astype(float) - b[0].astype(float))
    assert np.median(diff) < 8  # grey levels; the unaligned crops differ by far more
    assert np.median(np.abs(a[0].astype(float) - np.roll(a[0], 4, axis=1))) > np.median(diff)


@needs_dlib
def test_pre_cropped_casme2_frames_are_found(shared_data):
    folder = shared_data / CASME2_FRAMES
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    frames = np.stack([cv2.imread(str(folder / f"{i:03d}.jpg"), 0) for i in (1, 2)])
    out, info = align_clip(frames, name="casme2_frames")
    assert info["found"] and info["method"] == "landmarks"
    # the face fills the 280 x 340 crop: eyes in its upper half, mouth in its lower half
    pts = info["landmarks"]
    assert pts[36:48, 1].mean() < 170 < pts[48:60, 1].mean()


def test_load_aligned_clip_reads_a_sample_row(tmp_path, no_dlib):
    import pandas as pd

    from merkit.video.face import load_aligned_clip

    folder = tmp_path / "clip"
    folder.mkdir()
    yy, xx = np.mgrid[0:40, 0:30]
    for k in range(5):
        cv2.imwrite(str(folder / f"img{10 + k}.png"), (xx * 8 + yy + k).astype(np.uint8))
    row = pd.Series(
        {
            "dataset": "T",
            "subject": "T/1",
            "clip": "c",
            "frames_dir": str(folder),
            "video_path": None,
            "onset": 11,
            "offset": 13,
        }
    )
    out, info = load_aligned_clip(row, size=(20, 20), detector="frame", margin=0.0)
    assert out.shape == (3, 20, 20) and out.dtype == np.float32
    assert info["method"] == "box"
    with pytest.raises(FaceNotFoundError, match="'T/T/1/c'"):
        load_aligned_clip(row, detector="haar")  # a gradient has no face


@needs_dlib
def test_landmark_model_is_found_without_pkg_resources():
    """``face_recognition_models/__init__`` imports pkg_resources; it must not be imported."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pkg_resources'] = None\n"
        "from merkit.video import face\n"
        "assert face.landmark_model_path().name == 'shape_predictor_68_face_landmarks.dat'\n"
        "assert face.landmark_model_available()\n"
        "assert 'face_recognition_models' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_missing_dlib_is_logged_once(monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_dlib_import(name, *args, **kwargs):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dlib_import)
    face._dlib_models.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="merkit.video.face"):
            assert not face.landmark_model_available()
            assert not face.landmark_model_available()
            frames = np.zeros((2, 30, 30), np.uint8)
            _, info = align_clip(frames, detector="frame")
        assert info["method"] == "box"
        warnings = [r for r in caplog.records if "dlib is not installed" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        face._dlib_models.cache_clear()
