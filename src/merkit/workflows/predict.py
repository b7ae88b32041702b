"""``merkit predict``: the emotion (and AUs) of one clip with trained weights.

The network code needs torch (the ``[nets]`` extra), so :mod:`merkit.nets.predict` is
imported when a prediction is made, not with this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from merkit.nets.predict import ClipPrediction

__all__ = ["run_predict"]


def run_predict(
    clip: str | Path,
    weights: str | Path,
    *,
    model_name: str | None = None,
    onset: int | None = None,
    apex: int | None = None,
    offset: int | None = None,
    align: bool | None = None,
    detector: str | None = None,
    device: str = "auto",
    fps: float | None = None,
) -> ClipPrediction:
    """Emotion and/or AUs of one clip (:func:`merkit.nets.predict.predict_clip`).

    ``align`` and ``detector`` override the model card's face alignment and face
    detector (``"auto"``, ``"dlib"``, ``"haar"`` or ``"frame"``); None keeps the card's.
    ``device``: where the network runs (``auto``: CUDA, else MPS, else CPU); ``fps``: the
    clip's frame rate, for a model trained on magnified clips (default: a video's own).
    """
    from merkit.nets.predict import predict_clip

    return predict_clip(clip, weights, model_name=model_name, onset=onset, apex=apex,
                        offset=offset, align=align, detector=detector,
                        device=device, fps=fps)  # fmt: skip
