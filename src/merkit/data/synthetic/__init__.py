"""Synthetic micro-expression databases in the native CASME II, SMIC, SAMM and DFME layouts.

``synthesize(out_dir, seed=0)`` writes small CASME II, SMIC-HS, SMIC-VIS and SMIC-NIR
databases (parametric faces moved by AU displacement fields, filmed by four simulated
cameras) that the real adapters read like the real data; ``databases=("SAMM", "DFME")``
adds SAMM-style (grey, 200 fps) and DFME-style (colour, 200/300/500 fps) databases. See
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
from merkit.data.synthetic.writer import (
    DATABASES,
    DEFAULT_DATABASES,
    SIZES,
    is_synthesized,
    synthesize,
)

__all__ = [
    "AU_NAMES",
    "CAMERAS",
    "DATABASES",
    "DEFAULT_DATABASES",
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
