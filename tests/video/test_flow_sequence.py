"""Key-frame flow sequences (MERSiam's input) on a synthetic clip with known motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from merkit.video.flow import (
    flow_image,
    flow_sequence,
    keyframe_positions,
    sample_flow,
    sample_flow_sequence,
)

#: horizontal shift (px) of each of the 16 frames: still, a ramp of 1 px per frame, still
SHIFT = [0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 4]


def _frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    tex = cv2.GaussianBlur(rng.uniform(0, 255, (96, 96)).astype(np.float32), (0, 0), 2.0)
    return np.stack([np.roll(tex, s, axis=1)[16:80, 16:80] for s in SHIFT])


@pytest.fixture(scope="module")
def row(tmp_path_factory) -> dict:
    folder: Path = tmp_path_factory.mktemp("ramp")
    for i, f in enumerate(_frames()):
        grey = np.clip(np.rint(f), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"img{i + 1:03d}.png"), grey)
    return {"dataset": "synth", "subject": "s1", "clip": "ramp", "frames_dir": str(folder),
            "onset": 1, "offset": 16, "apex": 10}  # fmt: skip


def test_motion_key_frames_sit_where_the_face_moves():
    frames = _frames()
    # the frame differences are non-zero only for frames 6..9 (the ramp)
    assert keyframe_positions(frames, 4, "motion").tolist() == [6, 7, 8, 9]
    assert keyframe_positions(frames, 4, "uniform").tolist() == [4, 8, 11, 15]
    assert keyframe_positions(frames, 8, "motion").tolist() == [6, 6, 7, 7, 8, 8, 9, 9]
    still = np.repeat(frames[:1], 5, axis=0)  # nothing moves: uniform
    assert keyframe_positions(still, 2, "motion").tolist() == [2, 4]
    with pytest.raises(ValueError, match="keyframes='peak'"):
        keyframe_positions(frames, 2, "peak")


def test_sequence_flows_follow_the_known_shift(row):
    seq, info = sample_flow_sequence(row, length=4, align=False, face_size=(64, 64),
                                     size=(32, 32))  # fmt: skip
    assert seq.shape == (3, 4, 32, 32) and seq.dtype == np.uint8
    assert info["keyframes"] == [6, 7, 8, 9]
    inner = info["flows"][:, 12:52, 12:52]  # away from the wrapped border
    np.testing.assert_allclose(inner[..., 0].mean(axis=(1, 2)), [1, 2, 3, 4], atol=0.1)
    assert np.abs(inner[..., 1]).mean() < 0.05
    # one min-max over the sequence: the u maps brighten with the shift
    u = seq[0, :, 6:26, 6:26].mean(axis=(1, 2))
    assert np.all(np.diff(u) > 20) and seq[0].min() == 0 and seq[0].max() == 255


def test_an_apex_sequence_of_one_is_the_flow_image(row):
    seq, info = sample_flow_sequence(row, length=1, keyframes="apex", align=False,
                                     face_size=(64, 64), size=(28, 28))  # fmt: skip
    flow, _ = sample_flow(row, align=False, face_size=(64, 64))
    assert info["keyframes"] == [9]  # apex frame 10 of onset 1
    np.testing.assert_array_equal(seq[:, 0].transpose(1, 2, 0), flow_image(flow, size=(28, 28)))
    with pytest.raises(ValueError, match="keyframes='apex' gives one flow"):
        sample_flow_sequence(row, length=2, keyframes="apex", align=False)


def test_flow_sequence_normalises_once_per_channel():
    flows = np.zeros((2, 8, 8, 2), np.float32)
    flows[0, ..., 0], flows[1, ..., 0] = 1.0, 3.0  # a uniform u of 1 then 3 px
    flows[1, 4:, :, 0] = 2.0
    seq = flow_sequence(flows, size=(8, 8))
    assert seq[0, 0].max() == 0 and seq[0, 1, 0, 0] == 255 and seq[0, 1, 7, 0] == 128
