"""Cameras are domains: frame rate, framing, light, colour response, optics, noise, compression.

Each recording setup of the synthetic databases is one :class:`Camera`. The same
facial movement seen by two cameras gives different pixels for the reasons that
make cross-database MER hard: frame rate (200 / 100 / 25 fps), how tightly the
face is cropped, the direction and colour of the light, colour versus
near-infrared, optical blur, sensor noise and lossy compression.

The four built-in cameras (:data:`CAMERAS`) imitate the published setups:

============  ====  =========  =======================================================
camera        fps   frame      look
============  ====  =========  =======================================================
CASME2        200   140x170    colour, 4 diffuse LED lamps (flat, neutral white), tight
                               crop (inter-ocular 52 % of the width), JPEG files
SMIC_HS       100   128x150    colour, side tungsten light (warm, stronger shading),
                               looser crop, lamp flicker, BMP files
SMIC_VIS      25    100x118    colour, cool daylight from the other side, optical blur,
                               strong JPEG-like block artefacts, BMP files
SMIC_NIR      25    100x118    grey near-infrared: LED ring below the lens, flattened
                               skin texture, vignetting, heavy sensor noise, BMP files
============  ====  =========  =======================================================

CASME II frames are 280x340 crops in the real database: ``CASME2`` here is that
crop at half scale (``scale=2`` reproduces it). References: CASME II, Yan et al.
2014 (doi:10.1371/journal.pone.0086041); SMIC, Li et al. 2013
(doi:10.1109/FG.2013.6553717).

More setups write the SAMM-, DFME-, CASME I- and 4DME-style databases (not part of the CDMER four):

============  ====  =========  =======================================================
camera        fps   frame      look
============  ====  =========  =======================================================
SAMM          200   272x180    grey (monochrome high-speed sensor), two diffused LED
                               lamps (flat light, no flicker), wide frame with studio
                               background on both sides, the largest face of all
                               (inter-ocular 84 px), JPEG files
DFME_500      500   144x176    colour, three LED lamps with umbrella reflectors (bright,
DFME_300      300   144x176    even); the same camera at three frame-rate settings: the
DFME_200      200   144x176    shorter exposure of a faster setting needs more gain, so
                               noise grows with the frame rate; PNG files
CASME1        60    140x170    colour, the CASME2 setup at 60 fps, a little more sensor
                               noise and JPEG compression
4DME          60    272x180    grey, the SAMM setup at 60 fps (4DME's grey texture frames)
============  ====  =========  =======================================================

SAMM was filmed at 2040x1088 with a grey camera (Davison et al. 2018,
doi:10.1109/TAFFC.2016.2573832); ``SAMM`` keeps its wide aspect at a size that still
renders quickly. DFME used one self-built 1024x768 colour high-speed camera at 500, 300
or 200 fps (parts A, B, C; Zhao et al. 2023, doi:10.1109/TAFFC.2023.3341918) and releases
face crops: ``DFME_*`` are such crops.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from merkit.data.synthetic.face import Framing, Lighting

log = logging.getLogger(__name__)

#: inter-ocular distance in pixels of the reference camera (CASME2 at scale 1);
#: AU amplitudes are given in pixels of this reference and scale with each camera
REFERENCE_IPD_PX: float = 0.52 * 140


@dataclass(frozen=True)
class Camera:
    """One recording setup (a domain).

    Parameters
    ----------
    name : str
        Database/camera name (``"CASME2"``, ``"SMIC_HS"``...).
    kind : str
        Camera domain as written in the Sample table (``"colour"``, ``"hs"``, ``"vis"``, ``"nir"``).
    fps : float
        Frame rate.
    width, height : int
        Frame size in pixels.
    ipd, eye_line : float
        Face framing (see :class:`~merkit.data.synthetic.face.Framing`).
    lighting : Lighting
        Light and reflectance model used to render the face.
    colour : bool
        Colour or grey frames.
    white_balance : (r, g, b)
        Channel gains (colour cast of the light and sensor).
    exposure : float
        Overall gain before the tone curve.
    gamma : float
        Encoding exponent of the tone curve (``out = radiance ** gamma``).
    blur : float
        Optical blur, Gaussian sigma in pixels (0 = none).
    noise : float
        Temporal sensor noise (new in every frame), standard deviation in 8-bit levels.
    pattern_noise : float
        Fixed-pattern sensor noise (the same in every frame of the camera), std in 8-bit levels.
    compression : int or None
        JPEG quality of in-camera compression artefacts (None = none). Applied
        before the file is written, independently of ``image_format``.
    flicker : float
        Relative amplitude of lamp flicker (aliased mains frequency).
    vignette : float
        Relative darkening at the frame corners.
    drift : float
        Illumination drift, relative gain change per second.
    image_format : {"jpg", "bmp", "png"}
        File format on disk.
    jpeg_quality : int
        Quality of written JPEG files.
    """

    name: str
    kind: str
    fps: float
    width: int
    height: int
    ipd: float
    eye_line: float
    lighting: Lighting = field(default_factory=Lighting)
    colour: bool = True
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    exposure: float = 1.0
    gamma: float = 1 / 2.2
    blur: float = 0.0
    noise: float = 1.0
    pattern_noise: float = 0.0
    compression: int | None = None
    flicker: float = 0.0
    vignette: float = 0.0
    drift: float = 0.03
    image_format: str = "jpg"
    jpeg_quality: int = 95

    def framing(self, offset: tuple[float, float] = (0.0, 0.0)) -> Framing:
        """The face placement of this camera (optionally shifted by ``offset`` pixels)."""
        return Framing(self.width, self.height, self.ipd, self.eye_line, offset)

    @property
    def amplitude_scale(self) -> float:
        """Pixels of this camera per pixel of the reference (CASME2, scale 1)."""
        return self.ipd * self.width / REFERENCE_IPD_PX

    def scaled(self, factor: float) -> Camera:
        """The same camera with frames ``factor`` times larger (e.g. 2 -> real CASME II size)."""
        if factor <= 0:
            raise ValueError(f"camera scale must be positive, got {factor}")
        return replace(
            self,
            width=max(16, int(round(self.width * factor))),
            height=max(16, int(round(self.height * factor))),
        )

    def noise_bank(self, seed: int, n: int = 16, margin: int = 32) -> np.ndarray:
        """Unit Gaussian sensor noise, (n, H + margin, W + margin[, 3]) float32, fixed by ``seed``.

        A frame's noise is a random ``(H, W)`` window of a random bank entry.
        """
        rng = np.random.default_rng(seed)
        shape = (n, self.height + margin, self.width + margin) + ((3,) if self.colour else ())
        return rng.standard_normal(shape, dtype=np.float32)

    def develop(
        self,
        radiance: np.ndarray,
        *,
        gain: float = 1.0,
        noise: np.ndarray | None = None,
        pattern: np.ndarray | None = None,
    ) -> np.ndarray:
        """Turn rendered radiance into the 8-bit frame this camera stores.

        Parameters
        ----------
        radiance : ndarray (H, W, 3) float32
            Linear RGB from :meth:`FaceRenderer.frame`.
        gain : float
            Illumination gain at this instant (drift, flicker).
        noise : ndarray, optional
            Unit noise of the frame's shape (e.g. a window of :meth:`noise_bank`);
            scaled by the camera's ``noise``.
        pattern : ndarray, optional
            Unit fixed-pattern noise of the frame's shape; scaled by ``pattern_noise``.

        Returns
        -------
        ndarray
            (H, W, 3) uint8 in OpenCV's BGR order for colour cameras, (H, W) uint8 for grey.
        """
        if radiance.shape[:2] != (self.height, self.width):
            raise ValueError(
                f"{self.name}: radiance is {radiance.shape[:2]}, camera frames are "
                f"{(self.height, self.width)}"
            )
        g = self.exposure * gain
        img = cv2.multiply(radiance, tuple(g * w for w in self.white_balance) + (0.0,))
        if self.vignette > 0:
            img = cv2.multiply(img, _vignette_map(self.height, self.width, self.vignette))
        if self.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.blur)
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR if self.colour else cv2.COLOR_RGB2GRAY)
        img = np.power(np.clip(img, 0.0, 1.0), np.float32(self.gamma))
        if noise is not None and self.noise > 0:
            img = cv2.scaleAdd(noise, self.noise / 255.0, img)
        if pattern is not None and self.pattern_noise > 0:
            img = cv2.scaleAdd(pattern, self.pattern_noise / 255.0, img)
        out = cv2.convertScaleAbs(np.maximum(img, 0.0, out=img), alpha=255.0)
        if self.compression is not None:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(self.compression)])
            if not ok:
                raise RuntimeError(f"{self.name}: JPEG compression of a frame failed")
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        return out


@functools.lru_cache(maxsize=16)
def _vignette_map(height: int, width: int, strength: float) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2
    vig = (1.0 - strength * r2 / 2.0).astype(np.float32)
    return cv2.merge([vig, vig, vig])


#: the built-in recording setups (the CDMER four, SAMM and DFME at its three frame rates)
CAMERAS: dict[str, Camera] = {
    "CASME2": Camera(
        name="CASME2",
        kind="colour",
        fps=200.0,
        width=140,
        height=170,
        ipd=0.52,
        eye_line=0.30,
        lighting=Lighting(
            light=(0.0, -0.25, 1.0),
            ambient=0.55,
            key=0.5,
            background=(0.60, 0.60, 0.62),
            specular=0.06,
        ),
        white_balance=(1.0, 1.0, 1.0),
        exposure=1.0,
        blur=0.0,
        noise=0.5,
        drift=0.02,
        pattern_noise=1.5,
        image_format="jpg",
        jpeg_quality=95,
    ),
    "SMIC_HS": Camera(
        name="SMIC_HS",
        kind="hs",
        fps=100.0,
        width=128,
        height=150,
        ipd=0.42,
        eye_line=0.36,
        lighting=Lighting(
            light=(-0.6, -0.35, 0.72),
            ambient=0.3,
            key=0.8,
            background=(0.22, 0.2, 0.18),
            specular=0.12,
        ),
        white_balance=(1.12, 0.98, 0.78),
        exposure=0.95,
        blur=0.8,
        noise=2.0,
        flicker=0.01,
        drift=0.03,
        pattern_noise=2.0,
        image_format="bmp",
    ),
    "SMIC_VIS": Camera(
        name="SMIC_VIS",
        kind="vis",
        fps=25.0,
        width=100,
        height=118,
        ipd=0.44,
        eye_line=0.35,
        lighting=Lighting(
            light=(0.5, -0.4, 0.77),
            ambient=0.4,
            key=0.65,
            background=(0.35, 0.38, 0.42),
            specular=0.1,
        ),
        white_balance=(0.9, 1.0, 1.12),
        exposure=1.05,
        blur=0.6,
        noise=0.8,
        compression=70,
        drift=0.04,
        pattern_noise=1.5,
        image_format="bmp",
    ),
    "SMIC_NIR": Camera(
        name="SMIC_NIR",
        kind="nir",
        fps=25.0,
        width=100,
        height=118,
        ipd=0.43,
        eye_line=0.37,
        lighting=Lighting(
            light=(0.1, 0.45, 0.89),
            ambient=0.25,
            key=0.85,
            texture_gain=0.3,
            nir=True,
            background=(0.08, 0.08, 0.08),
            specular=0.15,
        ),
        colour=False,
        exposure=1.0,
        gamma=0.6,
        blur=0.6,
        noise=1.5,
        vignette=0.35,
        drift=0.04,
        pattern_noise=3.0,
        image_format="bmp",
    ),
    "SAMM": Camera(
        name="SAMM",
        kind="grey",
        fps=200.0,
        width=272,
        height=180,
        ipd=0.31,
        eye_line=0.36,
        lighting=Lighting(
            light=(0.0, -0.15, 1.0),
            ambient=0.6,
            key=0.45,
            background=(0.42, 0.42, 0.42),
            specular=0.05,
        ),
        colour=False,
        exposure=0.85,
        gamma=1 / 2.2,
        blur=0.3,
        noise=1.0,
        vignette=0.1,
        drift=0.01,
        pattern_noise=1.0,
        image_format="jpg",
        jpeg_quality=92,
    ),
}


def _dfme_camera(fps: float) -> Camera:
    """DFME's colour high-speed camera at one frame-rate setting (gain and noise grow with
    the frame rate: the exposure time is shorter)."""
    gain = fps / 200.0
    return Camera(
        name=f"DFME_{int(fps)}",
        kind="colour",
        fps=float(fps),
        width=144,
        height=176,
        ipd=0.48,
        eye_line=0.33,
        lighting=Lighting(
            light=(0.15, -0.3, 0.94),
            ambient=0.5,
            key=0.6,
            background=(0.72, 0.72, 0.74),
            specular=0.08,
        ),
        white_balance=(1.03, 1.0, 0.95),
        exposure=1.05 - 0.03 * gain,
        blur=0.4,
        noise=0.8 * gain,
        drift=0.02,
        pattern_noise=1.0 + 0.3 * gain,
        image_format="png",
    )


CAMERAS.update({f"DFME_{fps}": _dfme_camera(fps) for fps in (500, 300, 200)})
#: CASME I (Yan et al. 2013, doi:10.1109/FG.2013.6553799): a colour camera at 60 fps under
#: the same kind of diffuse lab lighting as CASME II, a little noisier, JPEG files
CAMERAS["CASME1"] = replace(CAMERAS["CASME2"], name="CASME1", fps=60.0, noise=0.8,
                            jpeg_quality=90)  # fmt: skip
#: 4DME's grey texture frames (Li et al. 2022): a grey camera at 60 fps, the SAMM-like
#: setup of two diffused lamps
CAMERAS["4DME"] = replace(CAMERAS["SAMM"], name="4DME", fps=60.0)


def get_camera(name: str) -> Camera:
    """A built-in camera by name.

    Raises
    ------
    KeyError
        Naming the known cameras.
    """
    try:
        return CAMERAS[name]
    except KeyError:
        raise KeyError(f"unknown camera {name!r}; known: {sorted(CAMERAS)}") from None


__all__ = ["CAMERAS", "REFERENCE_IPD_PX", "Camera", "get_camera"]
