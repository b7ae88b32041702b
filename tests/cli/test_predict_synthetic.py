"""`merkit predict` end to end on a synthetic clip (no licensed data): face detection ->
apex -> TV-L1 flow -> network, bad clips (truncated videos) and bad weights files.

The clip is a parametric face that smiles (:mod:`tests.video._clips`), written as an MJPEG
AVI with PyAV and as a frame folder; the weights are a seeded, untrained STSTNet with a
model card beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from merkit.cli import app
from merkit.nets.predict import ModelCard, write_model_card
from merkit.nets.train import save_weights
from tests.cli._output import one_error_line
from tests.video._clips import (
    APEX,
    N_FRAMES,
    smile_frames,
    truncate,
    write_frame_folder,
    write_video,
)

runner = CliRunner()
CLASSES = ("negative", "positive", "surprise")
#: face detection on the onset frame (OpenCV's Haar cascade finds the synthetic face)
FLOW = {"detector": "haar", "landmarks": "none", "preset": "fast"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clip")
    frames = smile_frames()
    return {
        "video": write_video(root / "smile.avi", frames),
        "folder": write_frame_folder(root / "EP01_smile", frames, first=101),
        "root": root,
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    card = ModelCard(model="ststnet", classes=CLASSES, scale=1 / 255, flow=FLOW)
    torch.manual_seed(0)
    path = save_weights(card.build(), root / "ststnet.pth")
    write_model_card(path.with_suffix(".json"), card)
    return path


def _expected_probabilities(video: Path, weights: Path, apex: int) -> np.ndarray:
    """The chain recomputed step by step from the library's parts (not predict_clip)."""
    from merkit.nets.predict import load_predictor
    from merkit.video.face import align_clip
    from merkit.video.flow import flow_image, tvl1_flow

    with av.open(str(video)) as container:
        grey = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
    faces, info = align_clip(grey, size=(112, 112), margin=0.1, landmarks="none",
                             detector="haar")  # fmt: skip
    assert info["found"] and info["method"] == "box"
    image = flow_image(tvl1_flow(faces[0], faces[apex - 1], preset="fast"), size=(28, 28))
    model, _ = load_predictor(weights)
    x = torch.as_tensor(image.transpose(2, 0, 1)[None].astype(np.float32) / 255)
    with torch.no_grad():
        return torch.softmax(model(x).double(), dim=1).numpy()[0]


def test_predict_synthetic_video_end_to_end(clip, weights):
    res = runner.invoke(app, ["predict", str(clip["video"]), "--model", str(weights), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["model"], got["face"], got["onset"], got["offset"]) == ("ststnet", "box", 1,
                                                                        N_FRAMES)  # fmt: skip
    assert got["apex_spotted"] and abs(got["apex"] - APEX) <= 1  # the smile's peak
    probs = got["probabilities"]
    assert list(probs) == list(CLASSES) and got["label"] in CLASSES
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert got["label"] == max(probs, key=probs.get)
    assert all(0.01 < p < 0.99 for p in probs.values())  # scaled inputs: not saturated
    expected = _expected_probabilities(clip["video"], weights, got["apex"])
    np.testing.assert_allclose(list(probs.values()), expected, rtol=1e-6)
    # the table, with given frames
    res = runner.invoke(app, ["predict", str(clip["video"]), "--model", str(weights),
                              "--onset", "2", "--apex", "12", "--offset", "20"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "smile.avi: frames 2..20, apex 12 (given), face box, model ststnet" in res.output
    assert "prediction:" in res.output and all(c in res.output for c in CLASSES)


def test_predict_synthetic_frame_folder_keeps_native_numbers(clip, weights):
    res = runner.invoke(app, ["predict", str(clip["folder"]), "--model", str(weights), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert (got["onset"], got["offset"]) == (101, 100 + N_FRAMES)
    assert abs(got["apex"] - (100 + APEX)) <= 1 and got["face"] == "box"
    assert sum(got["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)


def test_predict_truncated_video_is_one_line_error(clip, weights):
    video = clip["video"]
    half = truncate(video, clip["root"] / "half.avi", video.stat().st_size // 2)
    with av.open(str(half)) as container:  # whole frames: the packets before the cut one
        whole = 0
        for packet in container.demux(video=0):
            if packet.size and packet.is_corrupt:
                break
            whole += bool(packet.size)
    assert 2 < whole < N_FRAMES - 5
    line = one_error_line(runner.invoke(app, ["predict", str(half), "--model", str(weights)]))
    assert f"video {str(half)!r} is truncated: its container declares {N_FRAMES} frames but " \
           f"only {whole} decode; re-export or re-copy the video" in line  # fmt: skip
    # 20 KB of it: the truncation, not "offset 1 must come after onset 1"
    k20 = truncate(video, clip["root"] / "k20.avi", 20_000)
    line = one_error_line(runner.invoke(app, ["predict", str(k20), "--model", str(weights)]))
    assert "k20.avi' is truncated: its container declares 24 frames" in line
    # the frames that decode whole can still be used, given explicitly
    res = runner.invoke(app, ["predict", str(half), "--model", str(weights), "--offset",
                              str(whole), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout[res.stdout.index("{") :])
    assert (got["onset"], got["offset"]) == (1, whole)


class _Payload:
    """Pickles as a call to ``open(marker, "w")``: loading it would create the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def bad_weights(tmp_path, weights) -> dict[str, Path]:
    good = weights.read_bytes()
    files = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "text": b"this is not a weights file\n",
    }
    out = {}
    for name, data in files.items():
        (tmp_path / f"{name}.pth").write_bytes(data)
        out[name] = tmp_path / f"{name}.pth"
    torch.save({"w": _Payload(tmp_path / "EXECUTED")}, tmp_path / "pickled.pth")
    out["pickled"] = tmp_path / "pickled.pth"
    for path in out.values():
        write_model_card(path.with_suffix(".json"), ModelCard(model="ststnet", classes=CLASSES))
    return out


#: what each bad file's one line says
BAD = {
    "empty": "is empty (0 bytes); re-copy it or save the weights again with torch.save(",
    "truncated": "is truncated (",
    "text": "is not a PyTorch weights file (neither a torch.save zip archive nor a pickle)",
    "pickled": "carries pickled Python objects (io.open), not only tensors, so it was not loaded",
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_weights_file_is_one_line_error(clip, bad_weights, name):
    path = bad_weights[name]
    res = runner.invoke(app, ["predict", str(clip["video"]), "--model", str(path)])
    line = one_error_line(res)
    assert line.startswith(f"error: weights file {str(path)!r} ")
    assert BAD[name] in line
    assert "Aborted" not in res.output
    marker = path.parent / "EXECUTED"
    assert not marker.exists()  # nothing in the file ran
    if name == "pickled":  # ...though it would have, loaded without weights_only
        torch.load(path, weights_only=False)["w"].close()
        assert marker.exists()


def test_predict_detector_option_reaches_the_face_detector(clip, weights):
    """`--detector` overrides the card's detector (haar) all the way down to face detection:
    an unknown detector is refused by the detector itself, and `frame` (no detection: the
    whole frame is the face) gives other inputs, so other probabilities, than the card's."""
    line = one_error_line(runner.invoke(app, ["predict", str(clip["video"]), "--model",
                                              str(weights), "--detector", "bogus"]))  # fmt: skip
    assert line.startswith("error: unknown face detector 'bogus'"), line
    runs = {}
    for extra in ([], ["--detector", "frame"]):
        res = runner.invoke(app, ["predict", str(clip["video"]), "--model", str(weights),
                                  "--apex", str(APEX), "--json", *extra])  # fmt: skip
        assert res.exit_code == 0, res.output
        runs[tuple(extra)] = list(json.loads(res.stdout)["probabilities"].values())
    assert not np.allclose(runs[()], runs[("--detector", "frame")], rtol=1e-3)
