"""Synthetic clips for tests: a parametric face that smiles, written as a video or frames.

No licensed data: the face is :class:`merkit.data.synthetic.FaceRenderer`'s, moved by
AU6 + AU12 along a raised-cosine profile (onset frame 1, apex frame ``APEX``), in a frame
larger than the face so that face detection has something to find.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from merkit.data.synthetic import FaceGeometry, FaceRenderer, Framing, temporal_profile

#: frames of :func:`smile_frames` and the 1-based frame of its apex
N_FRAMES = 24
APEX = 13


def smile_frames(n: int = N_FRAMES, *, width: int = 160, height: int = 128) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 RGB frames: a neutral face that smiles (apex at ``APEX``)."""
    renderer = FaceRenderer(FaceGeometry(), Framing(width=width, height=height, ipd=0.30,
                                                    eye_line=0.38))  # fmt: skip
    intensity = temporal_profile(np.arange(n, dtype=float), 0.0, APEX - 1.0, n - 1.0)
    frames = []
    for level in intensity:
        radiance = renderer.frame({(12, ""): 3.0 * float(level), (6, ""): 2.0 * float(level)})
        frames.append((np.clip(radiance, 0.0, 1.0) ** (1 / 2.2) * 255).round().astype(np.uint8))
    return np.stack(frames)


def write_video(path: Path, frames: np.ndarray, *, codec: str = "mjpeg", fps: int = 30) -> Path:
    """Write RGB (or grey) uint8 frames as a video with PyAV (MJPEG AVI by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = frames if frames.ndim == 4 else np.repeat(frames[..., None], 3, axis=3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = rgb.shape[2], rgb.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for f in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(folder: Path, frames: np.ndarray, *, first: int = 1) -> Path:
    """Write frames as ``img<N>.png`` numbered from ``first`` (the CASME II naming)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        bgr = f[..., ::-1] if f.ndim == 3 else f
        assert cv2.imwrite(str(folder / f"img{first + i}.png"), bgr)
    return folder


def truncate(src: Path, dst: Path, size: int) -> Path:
    """Copy the first ``size`` bytes of ``src`` to ``dst`` (a cut-off copy)."""
    dst.write_bytes(src.read_bytes()[:size])
    return dst
