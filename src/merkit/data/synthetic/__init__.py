"""Synthetic micro-expression databases in the native CASME II and SMIC layouts.

``synthesize(out_dir, seed=0)`` writes small CASME II, SMIC-HS, SMIC-VIS and SMIC-NIR
databases (parametric faces moved by AU displacement fields, filmed by four simulated
cameras) that the real adapters read like the real data. See
:mod:`merkit.data.synthetic.writer` for the layouts, :mod:`.face` for the face and AU
model and :mod:`.camera` for the camera domains.
"""

from merkit.data.synthetic.camera import CAMERAS, Camera, get_camera
from merkit.data.synthetic.face import (
    AU_NAMES,
    EMOTION_AUS,
    FaceGeometry,
    FaceRenderer,
    Framing,
    Lighting,
    au_weight_field,
    render_face,
    temporal_profile,
)
from merkit.data.synthetic.writer import DATABASES, SIZES, is_synthesized, synthesize

__all__ = [
    "AU_NAMES",
    "CAMERAS",
    "DATABASES",
    "EMOTION_AUS",
    "SIZES",
    "Camera",
    "FaceGeometry",
    "FaceRenderer",
    "Framing",
    "Lighting",
    "au_weight_field",
    "get_camera",
    "is_synthesized",
    "render_face",
    "synthesize",
    "temporal_profile",
]
