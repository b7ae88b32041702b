"""TV-L1 flow, optical strain, flow images and .flo files."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.video.flow import (
    FLO_MAGIC,
    PRESETS,
    TVL1,
    clip_flows,
    flow_image,
    get_tvl1,
    load_flow_image,
    onset_apex_image,
    optical_strain,
    read_flo,
    save_flow_image,
    tvl1_flow,
    write_flo,
)

CASME2_FRAMES = "clips/casme2_frames"
CASME2_AVI = "clips/casme2_sub01_EP02_01f.avi"
STSTNET_PNGS = "megc2019_flow/STSNet_whole_norm_u_v_os"


def _texture(size: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size, size)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255  # smooth, high contrast


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy): the flow from ``image`` to the result is (dx, dy)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, image.shape[::-1], borderMode=cv2.BORDER_REFLECT)


# ----------------------------------------------------------------------------- TV-L1
@pytest.mark.parametrize("preset", ["default", "fast"])
def test_tvl1_recovers_a_translation(preset):
    a = np.clip(_texture(), 0, 255)
    b = _shifted(a, 1.5, -0.75)
    flow = tvl1_flow(a, b, preset=preset)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(
        np.median(flow[8:-8, 8:-8].reshape(-1, 2), axis=0), [1.5, -0.75], atol=0.1
    )


def test_uint8_and_float_frames_give_the_same_flow():
    a = np.clip(_texture(seed=1), 0, 255)
    b = _shifted(a, -1.0, 0.5)
    f_float = tvl1_flow(a, b, preset="fast")
    f_uint8 = tvl1_flow(np.rint(a).astype(np.uint8), np.rint(b).astype(np.uint8), preset="fast")
    assert np.abs(f_float - f_uint8).mean() < 0.05


def test_presets_and_overrides():
    assert PRESETS["default"] == TVL1()
    assert (TVL1().tau, TVL1().lambda_, TVL1().theta) == (0.25, 0.15, 0.3)
    fast = get_tvl1("fast", warps=2)
    assert (fast.nscales, fast.warps, fast.epsilon) == (3, 2, 0.02)
    assert get_tvl1(TVL1(lambda_=0.3)).lambda_ == 0.3
    with pytest.raises(TypeError, match="unknown TV-L1 parameter"):
        get_tvl1("default", lambda_value=1)
    with pytest.raises(ValueError, match="unknown TV-L1 preset 'slow'"):
        get_tvl1("slow")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tau": 0}, "tau must be positive"),
        ({"nscales": 0}, "nscales must be a positive integer"),
        ({"warps": 2.5}, "warps must be a positive integer"),
        ({"scale_step": 1.0}, "scale_step"),
        ({"median_filtering": 4}, "must be odd"),
        ({"gamma": -1}, "gamma"),
    ],
)
def test_tvl1_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TVL1(**kwargs)


def test_tvl1_frame_errors():
    with pytest.raises(ValueError, match="one size"):
        tvl1_flow(np.zeros((10, 10)), np.zeros((10, 12)))
    with pytest.raises(ValueError, match="grey"):
        tvl1_flow(np.zeros((2, 10, 10)), np.zeros((2, 10, 10)))


def test_clip_flows_pairs():
    a = np.clip(_texture(32, seed=2), 0, 255)
    clip = np.stack([a, _shifted(a, 1, 0), _shifted(a, 2, 0)])
    consecutive = clip_flows(clip, preset="fast")
    onset = clip_flows(clip, pairs="onset", preset="fast")
    assert consecutive.shape == onset.shape == (2, 32, 32, 2)
    med = lambda f: np.median(f[:, 6:-6, 6:-6, 0].reshape(2, -1), axis=1)  # noqa: E731
    np.testing.assert_allclose(med(consecutive), [1, 1], atol=0.15)
    np.testing.assert_allclose(med(onset), [1, 2], atol=0.15)
    with pytest.raises(ValueError, match="pairs="):
        clip_flows(clip, pairs="apex")
    with pytest.raises(ValueError, match="T >= 2"):
        clip_flows(clip[:1])


# ----------------------------------------------------------------------------- strain
def test_strain_of_a_linear_flow():
    yy, xx = np.mgrid[0:20, 0:30].astype(np.float64)
    a, b, c, d = 0.02, 0.03, -0.01, 0.05  # u = a x + b y, v = c x + d y
    flow = np.stack([a * xx + b * yy, c * xx + d * yy], axis=-1)
    expected = np.sqrt(a**2 + d**2 + 0.5 * (b + c) ** 2)
    np.testing.assert_allclose(optical_strain(flow), expected, rtol=1e-5)


def test_rigid_motions_have_no_strain():
    yy, xx = np.mgrid[0:20, 0:30].astype(np.float64)
    w = 0.01
    rotation = np.stack([-w * yy, w * xx], axis=-1)
    translation = np.stack([np.full_like(xx, 3.0), np.full_like(xx, -1.0)], axis=-1)
    assert optical_strain(rotation).max() < 1e-7
    assert optical_strain(translation).max() == 0.0


def test_strain_errors():
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        optical_strain(np.zeros((5, 5, 3)))
    with pytest.raises(ValueError, match="2 x 2"):
        optical_strain(np.zeros((1, 5, 2)))


# ----------------------------------------------------------------------------- images
def test_flow_image_channels_are_min_max_normalised():
    rng = np.random.default_rng(3)
    flow = cv2.GaussianBlur(rng.normal(size=(90, 80, 2)).astype(np.float32), (0, 0), 3)
    img = flow_image(flow)
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert img.reshape(-1, 3).min(axis=0).tolist() == [0, 0, 0]
    assert img.reshape(-1, 3).max(axis=0).tolist() == [255, 255, 255]
    # channel 0 is u: its ranking equals that of the resized u
    u = cv2.resize(flow[..., 0], (28, 28), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(u.ravel(), img[..., 0].ravel())[0, 1] > 0.999
    two = flow_image(flow, size=(14, 20), strain=False)
    assert two.shape == (14, 20, 2)


def test_flow_image_of_a_constant_flow_is_zero():
    flow = np.zeros((40, 40, 2), np.float32)
    flow[..., 0] = 2.0
    assert flow_image(flow).max() == 0


def test_onset_apex_image_of_a_translation():
    a = np.clip(_texture(56, seed=4), 0, 255)
    img = onset_apex_image(a, _shifted(a, 1.0, 0.0), preset="fast")
    assert img.shape == (28, 28, 3)


def test_flow_image_png_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (28, 28, 3)).astype(np.uint8)
    path = save_flow_image(tmp_path / "s01_x .png", img)
    np.testing.assert_array_equal(load_flow_image(path), img)
    np.testing.assert_array_equal(load_flow_image(path, channels="svu"), img[..., ::-1])
    # the PNG stores RGB = (u, v, strain): cv2 reads it as BGR = (strain, v, u)
    np.testing.assert_array_equal(cv2.imread(str(path))[..., 2], img[..., 0])


def test_load_flow_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_flow_image(tmp_path / "none.png")
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.zeros((28, 28), np.uint8))
    with pytest.raises(ValueError, match="3 channels"):
        load_flow_image(grey)
    with pytest.raises(ValueError, match="channels="):
        load_flow_image(grey, channels="rgb")


def test_shared_ststnet_images_load(shared_data):
    folder = shared_data / STSTNET_PNGS
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    files = sorted(folder.glob("*.png"))
    assert len(files) == 442
    img = load_flow_image(files[0])
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    # min-max normalised per channel, like flow_image
    assert img.reshape(-1, 3).min(axis=0).tolist() == [0, 0, 0]
    assert img.reshape(-1, 3).max(axis=0).tolist() == [255, 255, 255]
    np.testing.assert_array_equal(load_flow_image(files[0], channels="svu"), img[..., ::-1])


# ----------------------------------------------------------------------------- .flo
def test_flo_round_trip(tmp_path):
    flow = np.random.default_rng(6).normal(size=(7, 5, 2)).astype(np.float32)
    path = write_flo(tmp_path / "a.flo", flow)
    assert path.stat().st_size == 12 + 7 * 5 * 8
    head = path.read_bytes()[:12]
    assert struct.unpack("<fii", head) == (FLO_MAGIC, 5, 7)
    np.testing.assert_array_equal(read_flo(path), flow)


def test_flo_errors(tmp_path):
    bad = tmp_path / "bad.flo"
    bad.write_bytes(struct.pack("<fii", 1.0, 2, 2) + bytes(32))
    with pytest.raises(ValueError, match="magic number 1.0, expected 202021.25"):
        read_flo(bad)
    big = tmp_path / "big_endian.flo"
    big.write_bytes(struct.pack(">fii", FLO_MAGIC, 2, 2) + bytes(32))
    with pytest.raises(ValueError, match="big-endian"):
        read_flo(big)
    short = tmp_path / "short.flo"
    short.write_bytes(struct.pack("<fii", FLO_MAGIC, 4, 3) + bytes(40))
    with pytest.raises(ValueError, match="expected 108 for a 4 x 3 flow"):
        read_flo(short)
    tiny = tmp_path / "tiny.flo"
    tiny.write_bytes(b"PIEH")
    with pytest.raises(ValueError, match="header needs 12"):
        read_flo(tiny)
    with pytest.raises(FileNotFoundError):
        read_flo(tmp_path / "none.flo")
    with pytest.raises(ValueError, match="NaN"):
        write_flo(tmp_path / "nan.flo", np.full((2, 2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 2\)"):
        write_flo(tmp_path / "x.flo", np.zeros((2, 2)))


# ----------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def casme2_frames(shared_data):
    folder = shared_data / CASME2_FRAMES
    if not folder.is_dir():
        pytest.skip(f"{folder} not available")
    frames = {i: cv2.imread(str(folder / f"{i:03d}.jpg"), cv2.IMREAD_GRAYSCALE) for i in (1, 2, 10)}
    return frames, read_flo(folder / "tvl1_001_010.flo")


def _warp_error(a: np.ndarray, b: np.ndarray, flow: np.ndarray) -> float:
    """Mean |b(x + flow) - a(x)| on blurred frames, away from the border."""
    h, w = a.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(
        b.astype(np.float32),
        xx + flow[..., 0],
        yy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    blur = lambda x: cv2.GaussianBlur(x.astype(np.float32), (0, 0), 2)  # noqa: E731
    return float(np.abs(blur(warped) - blur(a))[10:-10, 10:-10].mean())


def test_shipped_flo_is_the_flow_of_frames_1_to_2(casme2_frames):
    """The shipped ``tvl1_001_010.flo`` explains the motion 001 -> 002, not 001 -> 010."""
    frames, ref = casme2_frames
    assert ref.shape == (340, 280, 2)
    zero = np.zeros_like(ref)
    assert _warp_error(frames[1], frames[2], ref) < 0.85 * _warp_error(frames[1], frames[2], zero)
    assert _warp_error(frames[1], frames[10], ref) > 0.95 * _warp_error(frames[1], frames[10], zero)


def test_default_tvl1_matches_the_shipped_flow(casme2_frames):
    """Measured: EPE 0.074 px against a mean reference magnitude of 0.189 px."""
    frames, ref = casme2_frames
    flow = tvl1_flow(frames[1], frames[2])
    epe = np.linalg.norm(flow - ref, axis=2).mean()
    magnitude = np.linalg.norm(ref, axis=2).mean()
    assert magnitude == pytest.approx(0.189, abs=0.002)
    assert epe < 0.45 * magnitude
    for k in range(2):
        assert np.corrcoef(flow[..., k].ravel(), ref[..., k].ravel())[0, 1] > 0.9


@pytest.mark.parametrize("landmarks, detector", [("auto", "auto"), ("none", "haar")])
def test_real_clip_lip_corners_move_more_than_the_forehead(shared_data, landmarks, detector):
    """CASME II sub01 EP02_01f (happiness, AU12) at 30 fps: the whole sequence, so the
    200 fps frames 46 (onset), 59 (apex), 86 (offset) are at about 7, 9 and 13; the clip
    ends with a head movement (about frame 38) that the difference rule would pick."""
    from merkit.video.apex import spot_apex
    from merkit.video.face import align_clip
    from merkit.video.io import read_video

    path = shared_data / CASME2_AVI
    if not path.is_file():
        pytest.skip(f"{path} not available")
    frames = read_video(path, grey=True)
    aligned, info = align_clip(
        frames, landmarks=landmarks, detector=detector, name="casme2/sub01/EP02_01f"
    )
    assert info["found"]
    apex = spot_apex(aligned, offset_index=13)
    assert 7 <= apex <= 11
    flow = tvl1_flow(aligned[0], aligned[apex])
    magnitude = np.linalg.norm(flow, axis=2)
    pts = info["aligned_landmarks"]  # dlib landmarks, or the mean shape without dlib

    def patch(i, r=4):
        x, y = int(round(pts[i, 0])), int(round(pts[i, 1]))
        return magnitude[y - r : y + r + 1, x - r : x + r + 1].mean()

    # a band 6 px above the brows, between the middles of the two brows
    top = int(round(pts[17:27, 1].min())) - 6
    forehead = magnitude[max(0, top - 3) : top + 4, int(pts[19, 0]) : int(pts[24, 0]) + 1].mean()
    lips = 0.5 * (patch(48) + patch(54))
    # measured at the spotted apex (frame 8): ratio 1.53 with dlib landmarks, 1.38 from the
    # Haar box without landmarks
    assert lips > 1.25 * forehead


# ----------------------------------------------------------------------------- samples
def _sample_table(tmp_path, apex):
    """One clip of 9 frames (numbered 20..28) moving right by 0.25 px per frame."""
    from merkit.video.io import list_frames

    a = np.clip(_texture(48, seed=7), 0, 255)
    folder = tmp_path / "sub01" / "EP01"
    folder.mkdir(parents=True)
    for k in range(9):
        dx = 0.25 * k if k <= 6 else 0.25 * (12 - k)  # peak at frame 26 (index 6)
        cv2.imwrite(str(folder / f"img{20 + k}.png"), np.rint(_shifted(a, dx, 0)).astype(np.uint8))
    assert len(list_frames(folder)) == 9
    row = {
        "dataset": "T",
        "subject": "T/01",
        "clip": "EP01",
        "frames_dir": str(folder),
        "video_path": None,
        "onset": 20,
        "apex": apex,
        "offset": 28,
    }
    return pd.DataFrame([row])


def test_sample_flow_uses_the_annotated_apex(tmp_path):
    from merkit.video.flow import sample_flow

    table = _sample_table(tmp_path, apex=24)  # index 4: 1 px to the right
    flow, info = sample_flow(table.iloc[0], align=False, face_size=(48, 48), preset="fast")
    assert info == {"apex_index": 4, "apex_spotted": False, "face": None}
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(1.0, abs=0.1)


def test_sample_flow_spots_a_missing_apex_and_aligns(tmp_path):
    from merkit.video.flow import flow_images, sample_flow

    table = _sample_table(tmp_path, apex=pd.NA)
    flow, info = sample_flow(
        table.iloc[0], face_size=(48, 48), landmarks="none", detector="frame", margin=0.0
    )
    assert info["apex_spotted"] and info["apex_index"] == 6
    assert info["face"]["method"] == "box"
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(1.5, abs=0.15)
    images = flow_images(table, align=False, face_size=(48, 48), preset="fast")
    assert images.shape == (1, 28, 28, 3) and images.dtype == np.uint8


def test_sample_flow_names_the_sample(tmp_path):
    from merkit.video.flow import sample_flow

    table = _sample_table(tmp_path, apex=40)
    with pytest.raises(ValueError, match="flow of sample T/T/01/EP01: apex frame 40"):
        sample_flow(table.iloc[0], align=False)
