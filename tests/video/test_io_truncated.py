"""Truncated videos: the frames the container declares must decode, or the clip is refused.

The videos are written here (a synthetic face, MJPEG in AVI with PyAV) and cut to half
their bytes and to 20 KB, as a half-finished copy leaves them.
"""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest

from merkit.video.io import TruncatedVideoError, load_clip, read_video
from tests.video._clips import smile_frames, truncate, write_video

N = 44  # frames written (as in the CASME II clip of the issue)


def _decodable(path: Path) -> int:
    """Whole frames of an MJPEG file (one packet each), counted without merkit: the packets
    before the first one the demuxer flags as corrupt (cut off by the end of the file)."""
    with av.open(str(path)) as container:
        n = 0
        for packet in container.demux(container.streams.video[0]):
            if packet.size == 0:
                continue
            if packet.is_corrupt:
                break
            n += 1
    return n


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("truncated")
    full = write_video(root / "clip.avi", smile_frames(N))
    size = full.stat().st_size
    assert size > 60_000  # so that 20 KB is a small part of it
    return {
        "full": full,
        "half": truncate(full, root / "half.avi", size // 2),
        "k20": truncate(full, root / "k20.avi", 20_000),
    }


@pytest.mark.parametrize("cut", ["half", "k20"])
def test_truncated_video_is_refused_with_both_counts(videos, cut):
    frames = read_video(videos["full"])  # the intact file: every declared frame decodes
    assert frames.shape == (N, 128, 160) and frames.dtype == np.uint8
    with av.open(str(videos["full"])) as container:
        assert container.streams.video[0].frames == N  # the AVI header's count
    path = videos[cut]
    decoded = _decodable(path)
    assert 1 < decoded < N - 10  # the cut removed frames; the header still says N
    with pytest.raises(TruncatedVideoError) as err:
        read_video(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"video {str(path)!r} is truncated: its container declares {N} frames")
    assert f"but only {decoded} decode;" in msg
    assert "re-export or re-copy the video" in msg
    assert f"offset <= {decoded}" in msg
    assert isinstance(err.value, ValueError)  # the CLI reports it in one line
    # an open end past the surviving frames, or a range reaching into the lost ones
    with pytest.raises(TruncatedVideoError, match=f"only {decoded} decode"):
        read_video(path, 2)
    with pytest.raises(TruncatedVideoError, match=f"only {decoded} decode"):
        read_video(path, 1, decoded + 1)


def test_frames_that_survive_can_still_be_asked_for(videos, caplog):
    decoded = _decodable(videos["half"])
    full = read_video(videos["full"])
    with caplog.at_level("WARNING", logger="merkit.video.io"):
        part = read_video(videos["half"], 2, decoded)
    np.testing.assert_array_equal(part, full[1:decoded])  # the same bytes decode the same
    assert f"truncated after frame {decoded} (of {N} declared)" in caplog.text


def test_sample_row_past_the_surviving_frames_is_refused(videos):
    decoded = _decodable(videos["half"])
    row = {"dataset": "TOY", "subject": "TOY/01", "clip": "cut", "frames_dir": None,
           "video_path": str(videos["half"]), "onset": 3, "offset": N - 2}  # fmt: skip
    with pytest.raises(TruncatedVideoError, match=re.escape(f"declares {N} frames but only "
                                                            f"{decoded} decode")):  # fmt: skip
        load_clip(row, size=(32, 32))
    inside = load_clip({**row, "offset": decoded}, size=(32, 32))
    assert inside.shape == (decoded - 2, 32, 32)
