"""Frame folders, video files and Sample-row clips."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.video.io import frame_number, list_frames, load_clip, read_frames, read_video

CASME2_AVI = "clips/casme2_sub01_EP02_01f.avi"


def _write_frames(folder: Path, frames: np.ndarray, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, frames, strict=True):
        assert cv2.imwrite(str(folder / name), frame)


def _write_video(path: Path, frames: np.ndarray) -> None:
    """Lossless grey FFV1 video written with PyAV."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def grey_frames() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 24, 32)).astype(np.uint8)


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("img46.jpg", 46),
        ("image559740.bmp", 559740),
        ("reg_img046.jpg", 46),
        ("006_05562.jpg", 5562),
        ("/data/sub01/EP02_01f/img1.jpg", 1),
        ("s3_ne_01/image000123.bmp", 123),
    ],
)
def test_frame_number(name: str, number: int) -> None:
    assert frame_number(name) == number


def test_frame_number_without_digits_names_file() -> None:
    with pytest.raises(ValueError, match="apex.jpg"):
        frame_number("apex.jpg")


def test_list_frames_sorts_numerically_and_skips_other_files(tmp_path, grey_frames) -> None:
    names = ["img10.png", "img2.png", "img1.png", "img33.bmp"]
    _write_frames(tmp_path, grey_frames[:4], names)
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_frames(tmp_path)] == [
        "img1.png",
        "img2.png",
        "img10.png",
        "img33.bmp",
    ]


def test_list_frames_errors(tmp_path, grey_frames) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_frames(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="empty.*holds no images"):
        list_frames(empty)
    dup = tmp_path / "dup"
    _write_frames(dup, grey_frames[:2], ["img1.png", "img01.png"])
    with pytest.raises(ValueError, match="both carry frame number 1"):
        list_frames(dup)


def test_read_frames_range_grey_and_rgb(tmp_path, grey_frames) -> None:
    _write_frames(tmp_path, grey_frames, [f"reg_img{n:03d}.png" for n in range(40, 46)])
    out = read_frames(tmp_path, 42, 44)
    assert out.dtype == np.uint8 and out.shape == (3, 24, 32)
    np.testing.assert_array_equal(out, grey_frames[2:5])
    np.testing.assert_array_equal(read_frames(tmp_path), grey_frames)
    np.testing.assert_array_equal(read_frames(tmp_path, None, 40), grey_frames[:1])

    colour = tmp_path / "colour"
    bgr = np.zeros((2, 8, 8, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's BGR order
    bgr[..., 2] = 10
    _write_frames(colour, bgr, ["img1.png", "img2.png"])
    rgb = read_frames(colour, grey=False)
    assert rgb.shape == (2, 8, 8, 3)
    assert (rgb[..., 0] == 10).all() and (rgb[..., 2] == 200).all()


def test_read_frames_errors(tmp_path, grey_frames) -> None:
    _write_frames(tmp_path, grey_frames[:3], ["img1.png", "img2.png", "img3.png"])
    with pytest.raises(ValueError, match=r"no frame numbered in \[7, 9\]"):
        read_frames(tmp_path, 7, 9)
    with pytest.raises(ValueError, match="start 3 > end 1"):
        read_frames(tmp_path, 3, 1)
    (tmp_path / "img4.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match="cannot read frame image .*img4.png"):
        read_frames(tmp_path)
    other = tmp_path / "sizes"
    _write_frames(other, grey_frames[:1], ["img1.png"])
    _write_frames(other, np.zeros((1, 10, 10), np.uint8), ["img2.png"])
    with pytest.raises(ValueError, match=r"img2.png' is 10x10, but 'img1.png' is 32x24"):
        read_frames(other)


def test_read_video_written_with_pyav(tmp_path, grey_frames) -> None:
    path = tmp_path / "clip.mkv"
    _write_video(path, grey_frames)
    full = read_video(path)
    assert full.shape == (6, 24, 32) and full.dtype == np.uint8
    np.testing.assert_array_equal(full, grey_frames)  # FFV1 is lossless
    np.testing.assert_array_equal(read_video(path, 2, 4), grey_frames[1:4])  # 1-based
    np.testing.assert_array_equal(read_video(path, 5), grey_frames[4:])
    rgb = read_video(path, 1, 1, grey=False)
    assert rgb.shape == (1, 24, 32, 3)
    np.testing.assert_array_equal(rgb[0, ..., 1], grey_frames[0])
    with pytest.raises(ValueError, match=r"clip.mkv.*no frame with 1-based index in \[9, 12\]"):
        read_video(path, 9, 12)


def test_read_video_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.avi"):
        read_video(tmp_path / "absent.avi")
    bad = tmp_path / "bad.avi"
    bad.write_text("not a video")
    with pytest.raises(ValueError, match="cannot decode video .*bad.avi"):
        read_video(bad)


def test_read_real_casme2_video(shared_data) -> None:
    path = shared_data / CASME2_AVI
    if not path.is_file():
        pytest.skip(f"{path} not available")
    full = read_video(path)
    assert full.shape == (44, 480, 640) and full.dtype == np.uint8
    part = read_video(path, 10, 12)
    np.testing.assert_array_equal(part, full[9:12])
    # a face in the middle of a lit background: mid-grey frame, not blank
    assert 60 < full.mean() < 200 and full.std() > 20


def test_load_clip_from_frames_and_video(tmp_path, grey_frames) -> None:
    folder = tmp_path / "sub01" / "EP01"
    _write_frames(folder, grey_frames, [f"img{n}.png" for n in range(11, 17)])
    row = pd.Series(
        {
            "dataset": "TOY",
            "subject": "TOY/01",
            "clip": "EP01",
            "frames_dir": str(folder),
            "video_path": None,
            "onset": 12,
            "offset": 15,
        }
    )
    clip = load_clip(row, size=(12, 16))
    assert clip.dtype == np.float32 and clip.shape == (4, 12, 16)
    expected = cv2.resize(grey_frames[1], (16, 12), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(clip[0], expected.astype(np.float32))
    up = load_clip(row, size=(48, 64))
    expected = cv2.resize(grey_frames[1], (64, 48), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(up[0], expected.astype(np.float32))
    native = load_clip(row, size=None)
    np.testing.assert_array_equal(native, grey_frames[1:5].astype(np.float32))

    video = tmp_path / "clip.mkv"
    _write_video(video, grey_frames)
    vrow = {
        "dataset": "TOY",
        "subject": "TOY/01",
        "clip": "v",
        "frames_dir": float("nan"),
        "video_path": str(video),
        "onset": 2,
        "offset": 3,
    }
    np.testing.assert_array_equal(load_clip(vrow, size=None), grey_frames[1:3].astype(np.float32))


def test_load_clip_errors(tmp_path) -> None:
    row = {
        "dataset": "TOY",
        "subject": "TOY/01",
        "clip": "EP09",
        "frames_dir": None,
        "video_path": None,
        "onset": 1,
        "offset": 3,
    }
    with pytest.raises(ValueError, match="TOY/TOY/01/EP09: neither frames_dir nor video_path"):
        load_clip(row)
    with pytest.raises(ValueError, match="EP09: onset/offset missing"):
        load_clip({**row, "onset": None})
