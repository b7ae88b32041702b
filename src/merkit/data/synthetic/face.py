"""A parametric face and its facial-action-unit (AU) micro-movements.

The face lives in *canonical units*: origin at the face centre, ``u`` to the image
right, ``v`` down, and the face half-width is 1. A :class:`FaceGeometry` (one per
person) fixes the landmarks, skin, lips, hair, iris and a skin-texture pattern;
a :class:`Framing` places the face in a frame of pixels; a :class:`Lighting`
says how a camera lights and sees it (direction of the key light, ambient,
white balance is applied later by the camera, near-infrared appearance).

Micro-movements are smooth displacement fields: every AU is a sum of
Gaussian-windowed translations anchored on the person's landmarks (e.g. AU12
lifts the lip corners up and out). A field is normalised so that its peak
displacement equals the requested amplitude in pixels; frames are produced by
warping the neutral face with :func:`cv2.remap` (``out(x) = face(x - D(x))``),
so texture and features move by ``D``. Side-specific AUs (``L12``) follow FACS:
``L`` is the person's left, i.e. the *image right* (``u > 0``).

AU anatomy follows the FACS manual (Ekman, Friesen & Hager 2002); emotion ->
AU combinations follow the EMFACS-style prototypes used to code CASME II
(Yan et al. 2014, doi:10.1371/journal.pone.0086041).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: action units the generator can move, with their FACS names
AU_NAMES: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    12: "lip corner puller",
    14: "dimpler",
    15: "lip corner depressor",
    17: "chin raiser",
    23: "lip tightener",
    24: "lip pressor",
}

#: emotion -> list of (AU combination, weight). A combination is a tuple of
#: AU codes; a string code with ``"L"``/``"R"`` prefix is one-sided (``"L12"``).
EMOTION_AUS: dict[str, list[tuple[tuple, float]]] = {
    "happiness": [((6, 12), 0.4), ((12,), 0.4), (("L12",), 0.1), (("R12",), 0.1)],
    "surprise": [((1, 2), 0.45), ((1, 2, 5), 0.3), ((1,), 0.1), ((2,), 0.05), ((5,), 0.1)],
    "disgust": [
        ((4, 7, 10), 0.2),
        ((4, 7), 0.15),
        ((4, 9), 0.15),
        ((4,), 0.1),
        ((9,), 0.1),
        ((14,), 0.1),
        (("L10",), 0.1),
        (("R10",), 0.1),
    ],
    "sadness": [((14,), 0.2), ((17,), 0.2), ((15,), 0.2), ((15, 17), 0.2), ((1, 4, 15), 0.2)],
    "fear": [((1, 4), 0.5), ((4, 5), 0.3), ((1, 2, 4), 0.2)],
    "anger": [((4, 5), 0.35), ((4, 23), 0.35), ((4, 7, 23), 0.3)],
    "contempt": [(("L12",), 0.35), (("R12",), 0.35), (("R14",), 0.3)],
    "repression": [((14,), 0.3), ((15,), 0.2), ((17,), 0.3), ((15, 17), 0.2)],
    "others": [
        ((4,), 0.3),
        ((1,), 0.1),
        (("L2",), 0.1),
        ((7,), 0.1),
        ((17, 24), 0.1),
        ((24,), 0.1),
        (("R10",), 0.1),
        ((23,), 0.1),
    ],
}

#: emotions whose micro-movements are weaker than usual (amplitude range scaled down)
SUBTLE_EMOTIONS: frozenset[str] = frozenset({"repression"})


def parse_au(code: int | str) -> tuple[int, str]:
    """``12 -> (12, "")``, ``"L12" -> (12, "L")``.

    Raises
    ------
    ValueError
        If the code is not a known AU (see :data:`AU_NAMES`).
    """
    text = str(code).strip().upper()
    side = ""
    if text[:1] in ("L", "R"):
        side, text = text[0], text[1:]
    if not text.isdigit() or int(text) not in AU_NAMES:
        raise ValueError(f"unknown action unit {code!r}; supported: {sorted(AU_NAMES)}")
    return int(text), side


def format_aus(aus: list[tuple[int, str]]) -> int | str:
    """AU list -> a CASME II sheet cell: ``[(4,''),(7,'')] -> '4+7'``, ``[(12,'')] -> 12``.

    A single bilateral AU is written as a number, as in the real CASME II coding sheet.
    """
    if len(aus) == 1 and aus[0][1] == "":
        return int(aus[0][0])
    return "+".join(f"{side}{au}" for au, side in sorted(aus))


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class FaceGeometry:
    """One person's face in canonical units (face half-width = 1, ``v`` down).

    Colours are linear RGB reflectances in [0, 1]. ``texture_seed`` fixes the
    person's skin-texture pattern (the same under every camera).
    """

    aspect: float = 1.3  # face half-height / half-width
    eye_x: float = 0.40  # eye centres at (+-eye_x, eye_y)
    eye_y: float = -0.25
    eye_w: float = 0.17  # eye half-width
    eye_h: float = 0.075  # upper-lid opening above the eye centre line
    brow_gap: float = 0.20  # brow height above the eye centre
    brow_thick: float = 0.055
    brow_arch: float = 0.04
    nose_y: float = 0.28  # nose tip
    nose_w: float = 0.13  # half-width of the nose wings
    mouth_y: float = 0.66
    mouth_w: float = 0.27  # half-width of the mouth
    lip_up: float = 0.065
    lip_low: float = 0.085
    hairline: float = -0.92
    fold_strength: float = 0.10  # nasolabial folds
    skin: tuple[float, float, float] = (0.72, 0.55, 0.44)
    lip: tuple[float, float, float] = (0.62, 0.36, 0.34)
    hair: tuple[float, float, float] = (0.06, 0.05, 0.045)
    iris: tuple[float, float, float] = (0.20, 0.12, 0.07)
    texture_seed: int = 0
    texture_gain: float = 0.08
    gaze: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def random(cls, rng: np.random.Generator, population: str = "east_asian") -> FaceGeometry:
        """Draw a person.

        Parameters
        ----------
        rng : Generator
            Random source (determines everything, including the texture seed).
        population : {"east_asian", "mixed"}
            Skin/hair/iris palette: CASME II recruited Chinese students; SMIC a
            more mixed group.
        """
        if population not in ("east_asian", "mixed"):
            raise ValueError(f"population must be 'east_asian' or 'mixed', got {population!r}")
        u = rng.uniform
        if population == "east_asian" or rng.random() < 0.5:
            tone = u(0.85, 1.1)
            skin = (0.74 * tone, 0.56 * tone, 0.43 * tone)
            hair = (0.05, 0.045, 0.04)
            iris = (0.18, 0.11, 0.06)
        else:
            tone = u(0.55, 1.2)
            skin = (min(0.85, 0.78 * tone), 0.58 * tone, 0.48 * tone)
            hair = tuple(
                float(c)
                for c in rng.choice([[0.05, 0.045, 0.04], [0.25, 0.17, 0.09], [0.45, 0.33, 0.18]])
            )
            iris = tuple(
                float(c)
                for c in rng.choice([[0.18, 0.11, 0.06], [0.25, 0.35, 0.45], [0.3, 0.32, 0.18]])
            )
        lip_red = u(0.75, 0.95)
        lip = (skin[0] * lip_red, skin[1] * 0.62, skin[2] * 0.75)
        return cls(
            aspect=u(1.22, 1.38),
            eye_x=u(0.37, 0.43),
            eye_y=u(-0.29, -0.21),
            eye_w=u(0.15, 0.19),
            eye_h=u(0.06, 0.09),
            brow_gap=u(0.17, 0.24),
            brow_thick=u(0.05, 0.085),
            brow_arch=u(0.01, 0.07),
            nose_y=u(0.24, 0.32),
            nose_w=u(0.11, 0.15),
            mouth_y=u(0.60, 0.72),
            mouth_w=u(0.24, 0.31),
            lip_up=u(0.05, 0.08),
            lip_low=u(0.07, 0.10),
            hairline=u(-1.0, -0.82),
            fold_strength=u(0.05, 0.16),
            skin=tuple(float(c) for c in skin),
            lip=tuple(float(c) for c in lip),
            hair=tuple(float(c) for c in hair),
            iris=tuple(float(c) for c in iris),
            texture_seed=int(rng.integers(0, 2**31 - 1)),
            texture_gain=u(0.04, 0.08),
            gaze=(u(-0.03, 0.03), u(-0.015, 0.015)),
        )

    def landmarks(self) -> dict[str, tuple[float, float]]:
        """Named landmarks in canonical units; paired ones end in ``_r`` (image left) / ``_l``."""
        pts: dict[str, tuple[float, float]] = {}
        brow_y = self.eye_y - self.brow_gap
        for name, sgn in (("r", -1.0), ("l", 1.0)):
            pts[f"brow_inner_{name}"] = (sgn * (self.eye_x - 0.21), brow_y + 0.01)
            pts[f"brow_mid_{name}"] = (sgn * self.eye_x, brow_y - self.brow_arch)
            pts[f"brow_outer_{name}"] = (sgn * (self.eye_x + 0.23), brow_y + 0.005)
            pts[f"upper_lid_{name}"] = (sgn * self.eye_x, self.eye_y - self.eye_h)
            pts[f"lower_lid_{name}"] = (sgn * self.eye_x, self.eye_y + 0.6 * self.eye_h)
            pts[f"eye_outer_{name}"] = (sgn * (self.eye_x + self.eye_w), self.eye_y)
            pts[f"cheek_{name}"] = (sgn * (self.eye_x + 0.04), self.eye_y + 0.36)
            pts[f"nose_wing_{name}"] = (sgn * self.nose_w, self.nose_y + 0.01)
            pts[f"upper_lip_{name}"] = (sgn * 0.45 * self.mouth_w, self.mouth_y - 0.8 * self.lip_up)
            pts[f"mouth_corner_{name}"] = (sgn * self.mouth_w, self.mouth_y)
            pts[f"chin_side_{name}"] = (sgn * 0.8 * self.mouth_w, self.mouth_y + 0.2)
        pts["glabella"] = (0.0, brow_y + 0.02)
        pts["nose_root"] = (0.0, self.eye_y + 0.05)
        pts["nose_tip"] = (0.0, self.nose_y)
        pts["upper_lip"] = (0.0, self.mouth_y - self.lip_up)
        pts["lower_lip"] = (0.0, self.mouth_y + self.lip_low)
        pts["chin"] = (0.0, self.mouth_y + self.lip_low + 0.24)
        return pts


@dataclass(frozen=True)
class Framing:
    """Where the face sits in a frame of ``width`` x ``height`` pixels.

    ``ipd`` is the inter-ocular distance as a fraction of the width and
    ``eye_line`` the height of the eyes as a fraction of the height (a tight
    CASME II crop has ``ipd`` ~0.52, ``eye_line`` ~0.30). ``offset`` shifts the
    face by a few pixels (a person never sits exactly at the same place).
    """

    width: int
    height: int
    ipd: float = 0.52
    eye_line: float = 0.30
    offset: tuple[float, float] = (0.0, 0.0)

    def scale(self, geometry: FaceGeometry) -> float:
        """Pixels per canonical unit for this person."""
        return self.ipd * self.width / (2.0 * geometry.eye_x)

    def centre(self, geometry: FaceGeometry) -> tuple[float, float]:
        """Pixel position of the canonical origin (pixel centres at integers)."""
        s = self.scale(geometry)
        cx = (self.width - 1) / 2.0 + self.offset[0]
        cy = self.eye_line * self.height - geometry.eye_y * s + self.offset[1]
        return cx, cy

    def canonical_coordinates(self, geometry: FaceGeometry, supersample: int = 1):
        """Canonical ``(u, v)`` of every (sub)pixel centre, each (H*k, W*k) float64."""
        k = int(supersample)
        s = self.scale(geometry)
        cx, cy = self.centre(geometry)
        xs = (np.arange(self.width * k) + 0.5) / k - 0.5
        ys = (np.arange(self.height * k) + 0.5) / k - 0.5
        uu, vv = np.meshgrid(((xs - cx) / s).astype(np.float32), ((ys - cy) / s).astype(np.float32))
        return uu, vv


@dataclass(frozen=True)
class Lighting:
    """How a camera lights and sees the face.

    ``light`` is the key-light direction (x right, y down, z toward the camera);
    ``nir`` renders near-infrared reflectances (uniform, bright skin, pale lips and
    iris, weak skin texture), ``texture_gain`` scales the skin texture.
    """

    light: tuple[float, float, float] = (0.0, -0.3, 1.0)
    ambient: float = 0.55
    key: float = 0.5
    texture_gain: float = 1.0
    nir: bool = False
    background: tuple[float, float, float] = (0.55, 0.55, 0.56)
    specular: float = 0.08


# --------------------------------------------------------------------------- rendering


def _coverage(dist_px: np.ndarray, softness: float = 0.7) -> np.ndarray:
    """Anti-aliased coverage from a signed distance in pixels (negative inside)."""
    return np.clip(0.5 - dist_px / (2.0 * softness), 0.0, 1.0)


def _gauss(u, v, cu, cv, su, sv) -> np.ndarray:
    return np.exp(-0.5 * (((u - cu) / su) ** 2 + ((v - cv) / sv) ** 2))


def _polyline_distance(u: np.ndarray, v: np.ndarray, pts: np.ndarray):
    """Distance from every point to a polyline, and the arc-length fraction of the nearest point."""
    best = np.full(u.shape, np.inf)
    frac = np.zeros(u.shape)
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    total = cum[-1]
    for i, (p, d, n) in enumerate(zip(pts[:-1], seg, lengths, strict=True)):
        t = np.clip(((u - p[0]) * d[0] + (v - p[1]) * d[1]) / (n * n), 0.0, 1.0)
        dist = np.hypot(u - p[0] - t * d[0], v - p[1] - t * d[1])
        closer = dist < best
        best = np.where(closer, dist, best)
        frac = np.where(closer, (cum[i] + t * n) / total, frac)
    return best, frac


def skin_texture(seed: int, size: int = 384) -> np.ndarray:
    """A person's skin texture: zero-mean, unit-std noise on the canonical square
    ``u, v in [-1.5, 1.5]``, (size, size) float32 (pores + blotches)."""
    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 0.9)
    blotch = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 4.0)
    fine /= fine.std() + 1e-9
    blotch /= blotch.std() + 1e-9
    tex = 0.8 * fine + 0.2 * blotch
    return (tex / (tex.std() + 1e-9)).astype(np.float32)


_TEXTURE_HALF_SPAN = 1.5


def _sample_texture(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    n = tex.shape[0]
    mx = ((u + _TEXTURE_HALF_SPAN) / (2 * _TEXTURE_HALF_SPAN) * (n - 1)).astype(np.float32)
    my = ((v + _TEXTURE_HALF_SPAN) / (2 * _TEXTURE_HALF_SPAN) * (n - 1)).astype(np.float32)
    return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def render_face(
    geometry: FaceGeometry,
    framing: Framing,
    lighting: Lighting = Lighting(),
    *,
    eyes_open: float = 1.0,
    supersample: int = 1,
) -> np.ndarray:
    """Render the neutral face.

    Parameters
    ----------
    geometry, framing, lighting
        The person, the frame and the camera's light.
    eyes_open : float
        1 = open, 0 = closed (used for blinks).
    supersample : int
        Render at ``supersample`` x resolution and average down (anti-aliasing).

    Returns
    -------
    ndarray of shape (height, width, 3), float32
        Linear RGB radiance, roughly in [0, 1] (before the camera's response).
    """
    g = geometry
    u, v = framing.canonical_coordinates(g, supersample)
    px = 1.0 / (framing.scale(g) * supersample)  # canonical units per render pixel
    a = g.aspect

    # ---- height field -> normals -> shading
    r2 = u**2 + (v / a) ** 2
    z = 0.9 * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    ridge = np.clip((v - g.eye_y) / max(g.nose_y - g.eye_y, 1e-3), 0.0, 1.0)
    z += 0.16 * ridge * np.exp(-0.5 * (u / (0.05 + 0.05 * ridge)) ** 2) * (v < g.nose_y + 0.06)
    z += 0.10 * _gauss(u, v, 0.0, g.nose_y, 0.09, 0.07)
    for sgn in (-1.0, 1.0):
        z -= 0.07 * _gauss(u, v, sgn * g.eye_x, g.eye_y, 0.16, 0.10)
        z += 0.05 * _gauss(u, v, sgn * g.eye_x, g.eye_y - g.brow_gap, 0.24, 0.06)
        z += 0.06 * _gauss(u, v, sgn * (g.eye_x + 0.05), g.eye_y + 0.42, 0.17, 0.16)
        z += 0.03 * _gauss(u, v, sgn * g.nose_w, g.nose_y, 0.05, 0.05)
    z += 0.05 * _gauss(u, v, 0.0, g.mouth_y, g.mouth_w, 0.09)
    z += 0.06 * _gauss(u, v, 0.0, g.mouth_y + g.lip_low + 0.28, 0.2, 0.12)
    dzdv, dzdu = np.gradient(z, px)
    nrm = np.stack([-dzdu, -dzdv, np.ones_like(z)], axis=-1)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    light = np.asarray(lighting.light, float)
    light /= np.linalg.norm(light)
    lambert = np.clip(nrm @ light, 0.0, None)
    shade = lighting.ambient + lighting.key * lambert
    half = light + np.array([0.0, 0.0, 1.0])
    half /= np.linalg.norm(half)
    spec = lighting.specular * np.clip(nrm @ half, 0.0, None) ** 24

    # ---- albedo
    tex = _sample_texture(skin_texture(g.texture_seed), u, v)
    tex_gain = g.texture_gain * lighting.texture_gain
    if lighting.nir:
        skin = np.array([0.80, 0.80, 0.80]) * (0.92 + 0.1 * (g.skin[0] - 0.6))
        lip = skin * 0.9
        hair = np.full(3, 0.22 + 0.5 * float(np.mean(g.hair)))
        iris = np.full(3, 0.45)
        redness = 0.0
    else:
        skin = np.asarray(g.skin)
        lip = np.asarray(g.lip)
        hair = np.asarray(g.hair)
        iris = np.asarray(g.iris)
        redness = 0.08
    alb = np.broadcast_to(skin, u.shape + (3,)) * (1.0 + tex_gain * tex)[..., None]
    for sgn in (-1.0, 1.0):  # cheek redness
        w = redness * _gauss(u, v, sgn * (g.eye_x + 0.05), g.eye_y + 0.4, 0.15, 0.12)
        alb = alb * (1.0 - w[..., None] * np.array([0.0, 0.6, 0.5]))

    def darken(alpha: np.ndarray, colour) -> None:
        nonlocal alb
        alb = alb * (1.0 - alpha[..., None]) + alpha[..., None] * np.asarray(colour)

    # nasolabial folds and chin crease
    for sgn in (-1.0, 1.0):
        fold = np.array(
            [
                [sgn * (g.nose_w + 0.03), g.nose_y - 0.02],
                [sgn * (g.nose_w + 0.12), g.nose_y + 0.15],
                [sgn * (g.mouth_w + 0.07), g.mouth_y + 0.10],
            ]
        )
        d, t = _polyline_distance(u, v, fold)
        alpha = g.fold_strength * np.exp(-0.5 * (d / 0.022) ** 2) * np.sin(np.pi * t) ** 0.5
        darken(alpha, skin * 0.45)
    crease_y = g.mouth_y + g.lip_low + 0.12
    darken(0.08 * _gauss(u, v, 0.0, crease_y, 0.14, 0.02), skin * 0.45)

    # nostrils
    for sgn in (-1.0, 1.0):
        r = np.hypot((u - sgn * 0.55 * g.nose_w) / 0.05, (v - g.nose_y - 0.045) / 0.022)
        d = (r - 1.0) * 0.022
        darken(0.85 * _coverage(d / px), skin * 0.2)

    # lips
    x = np.clip(np.abs(u) / g.mouth_w, 0.0, 1.0)
    up = g.mouth_y - g.lip_up * (1.0 - x**2) ** 0.6 + 0.012 * np.exp(-((u / 0.05) ** 2))
    low = g.mouth_y + g.lip_low * (1.0 - x**2) ** 0.8
    d_lip = np.maximum(np.maximum(up - v, v - low), (np.abs(u) - g.mouth_w))
    lip_cov = _coverage(d_lip / px, 1.0)
    lip_rgb = lip * (1.0 + 0.5 * tex_gain * tex)[..., None]
    alb = alb * (1.0 - lip_cov[..., None]) + lip_cov[..., None] * lip_rgb
    line = g.mouth_y + 0.01 * (1.0 - x**2)
    corner = 1.0 + 0.8 * x**4
    d_line = np.abs(v - line) - 0.008 * corner
    d_line = np.maximum(d_line, np.abs(u) - g.mouth_w - 0.015)
    darken(0.8 * _coverage(d_line / px), lip * 0.25)

    # eyes: sclera, iris, pupil, catch-light, lash line, crease
    eye_rgb = np.zeros(u.shape + (3,))
    eye_cov = np.zeros(u.shape)
    for sgn in (-1.0, 1.0):
        ex = (u - sgn * g.eye_x) / g.eye_w
        ey = v - g.eye_y
        curve = np.clip(1.0 - ex**2, 0.0, None)
        lo = 0.6 * g.eye_h * curve
        up_open = -g.eye_h * curve
        upper = lo + eyes_open * (up_open - lo)
        d_eye = np.maximum(np.maximum(upper - ey, ey - lo), (np.abs(ex) - 1.0) * g.eye_w)
        cov = _coverage(d_eye / px, 0.8) * (eyes_open > 0.02)
        ix, iy = sgn * g.eye_x + g.gaze[0], g.eye_y + g.gaze[1]
        ri = 0.48 * g.eye_w
        d_iris = np.hypot(u - ix, v - iy) - ri
        icov = _coverage(d_iris / px)
        pcov = _coverage((np.hypot(u - ix, v - iy) - 0.4 * ri) / px)
        col = np.broadcast_to(
            np.array([0.80, 0.78, 0.76]) if not lighting.nir else np.array([0.85, 0.85, 0.85]),
            u.shape + (3,),
        )
        col = col * (1.0 - icov[..., None]) + icov[..., None] * iris * (1 + 0.3 * tex)[..., None]
        col = col * (1.0 - pcov[..., None]) + pcov[..., None] * 0.02
        # catch-light: the key light's reflection on the cornea, offset toward the light
        lx, ly = ix + 0.35 * ri * light[0], iy + 0.35 * ri * light[1]
        col = col + (2.0 * _gauss(u, v, lx, ly, 0.1 * ri, 0.1 * ri))[..., None]
        eye_rgb += cov[..., None] * col
        eye_cov += cov
        # lash line along the upper lid, crease above it
        d_lash = np.abs(ey - upper) - 0.012 * (0.4 + curve)
        d_lash = np.maximum(d_lash, (np.abs(ex) - 1.05) * g.eye_w)
        darken(0.85 * _coverage(d_lash / px), hair * 0.8)
        d_crease = (
            np.abs(
                ey - (up_open - 0.45 * g.eye_h) * eyes_open - (1 - eyes_open) * (lo - 0.5 * g.eye_h)
            )
            - 0.006
        )
        d_crease = np.maximum(d_crease, (np.abs(ex) - 0.9) * g.eye_w)
        darken(0.15 * _coverage(d_crease / px), skin * 0.4)
    eye_cov = np.clip(eye_cov, 0.0, 1.0)

    # brows
    for sgn in (-1.0, 1.0):
        lm = g.landmarks()
        side = "l" if sgn > 0 else "r"
        pts = np.array([lm[f"brow_inner_{side}"], lm[f"brow_mid_{side}"], lm[f"brow_outer_{side}"]])
        pts = np.array(
            [
                pts[0],
                0.5 * (pts[0] + pts[1]) + [0, -0.4 * g.brow_arch],
                pts[1],
                0.5 * (pts[1] + pts[2]),
                pts[2],
            ]
        )
        d, t = _polyline_distance(u, v, pts)
        thick = g.brow_thick * (1.0 - 0.55 * t)
        cov = _coverage((d - thick / 2) / px, 1.0) * (0.85 + 0.15 * np.clip(tex, -1, 1))
        darken(0.92 * np.clip(cov, 0, 1), hair)

    # ---- compose: skin with shading, eyes, hair, background
    rgb = alb * shade[..., None] + spec[..., None] * (1.0 - eye_cov[..., None])
    eye_shade = (0.35 + 0.65 * shade)[..., None]
    rgb = rgb * (1.0 - eye_cov[..., None]) + eye_rgb * eye_shade
    d_face = (np.sqrt(r2) - 1.0) / px * 0.9
    face_cov = _coverage(d_face, 1.2)
    hairline = g.hairline + 0.22 * u**2
    head = _coverage((np.sqrt(u**2 / 1.08**2 + (v / (a * 1.06)) ** 2) - 1.0) / px, 1.2)
    hair_cov = np.clip(
        head * _coverage((v - hairline) / px, 2.0) + head * (1 - face_cov) * (v < 0.1 * a), 0.0, 1.0
    )
    hair_rgb = hair * (0.45 + 0.55 * shade[..., None]) * (1.0 + 0.25 * tex[..., None])
    rgb = rgb * (1.0 - hair_cov[..., None]) + hair_cov[..., None] * hair_rgb
    cover = np.clip(face_cov + hair_cov, 0.0, 1.0)
    ramp = np.linspace(1.08, 0.9, u.shape[0])[:, None, None]
    bg = np.asarray(lighting.background) * ramp
    rgb = rgb * cover[..., None] + bg * (1.0 - cover[..., None])
    out = rgb.astype(np.float32)
    if supersample > 1:
        out = cv2.resize(out, (framing.width, framing.height), interpolation=cv2.INTER_AREA)
    return out


# --------------------------------------------------------------------------- AU motion

#: per AU: (landmark, (sigma_u, sigma_v), (du, dv), weight). Paired landmarks end
#: in ``_{s}``; their ``du`` is mirrored: a positive ``du`` points away from the
#: face midline on both sides.
_AU_COMPONENTS: dict[int, list[tuple[str, tuple[float, float], tuple[float, float], float]]] = {
    1: [
        ("brow_inner_{s}", (0.11, 0.10), (0.0, -1.0), 1.0),
        ("glabella", (0.12, 0.12), (0.0, -1.0), 0.45),
    ],
    2: [
        ("brow_outer_{s}", (0.12, 0.10), (0.0, -1.0), 1.0),
        ("brow_mid_{s}", (0.10, 0.10), (0.0, -1.0), 0.5),
    ],
    4: [
        ("brow_inner_{s}", (0.12, 0.10), (-0.55, 0.84), 1.0),
        ("brow_mid_{s}", (0.11, 0.09), (-0.2, 0.98), 0.55),
        ("glabella", (0.06, 0.10), (0.0, 0.6), 0.3),
    ],
    5: [("upper_lid_{s}", (0.11, 0.04), (0.0, -1.0), 1.0)],
    6: [
        ("cheek_{s}", (0.15, 0.12), (0.1, -1.0), 1.0),
        ("lower_lid_{s}", (0.12, 0.045), (0.0, -1.0), 0.55),
        ("eye_outer_{s}", (0.07, 0.07), (-0.5, -0.6), 0.4),
    ],
    7: [
        ("lower_lid_{s}", (0.12, 0.045), (0.0, -1.0), 1.0),
        ("upper_lid_{s}", (0.11, 0.04), (0.0, 1.0), 0.45),
    ],
    9: [
        ("nose_wing_{s}", (0.07, 0.08), (0.15, -1.0), 1.0),
        ("nose_root", (0.08, 0.08), (0.0, -0.5), 0.5),
        ("brow_inner_{s}", (0.10, 0.09), (-0.3, 0.95), 0.4),
    ],
    10: [
        ("upper_lip_{s}", (0.11, 0.07), (0.0, -1.0), 1.0),
        ("upper_lip", (0.09, 0.06), (0.0, -1.0), 0.6),
        ("nose_wing_{s}", (0.07, 0.07), (0.0, -1.0), 0.35),
    ],
    12: [
        ("mouth_corner_{s}", (0.11, 0.09), (0.62, -0.78), 1.0),
        ("cheek_{s}", (0.14, 0.14), (0.25, -0.97), 0.45),
    ],
    14: [("mouth_corner_{s}", (0.08, 0.08), (-0.92, -0.38), 1.0)],
    15: [
        ("mouth_corner_{s}", (0.09, 0.09), (0.1, 1.0), 1.0),
        ("chin_side_{s}", (0.10, 0.10), (0.0, 1.0), 0.45),
    ],
    17: [("chin", (0.18, 0.11), (0.0, -1.0), 1.0), ("lower_lip", (0.15, 0.05), (0.0, -1.0), 0.7)],
    23: [
        ("mouth_corner_{s}", (0.07, 0.07), (-1.0, 0.0), 1.0),
        ("upper_lip", (0.18, 0.04), (0.0, 1.0), 0.45),
        ("lower_lip", (0.18, 0.04), (0.0, -1.0), 0.45),
    ],
    24: [
        ("upper_lip", (0.2, 0.045), (0.0, 1.0), 1.0),
        ("lower_lip", (0.2, 0.05), (0.0, -1.0), 1.0),
        ("mouth_corner_{s}", (0.07, 0.07), (-0.3, 0.0), 0.3),
    ],
}


#: multiplies the spatial extent (Gaussian sigmas) of every AU component
AU_SPREAD: float = 1.75


def au_weight_field(
    geometry: FaceGeometry, framing: Framing, au: int, side: str = ""
) -> np.ndarray:
    """Unit displacement field of one AU, shape (H, W, 2) float32 (dx, dy), peak |D| = 1.

    Parameters
    ----------
    side : {"", "L", "R"}
        ``""`` both sides; ``"L"`` the person's left (image right); ``"R"`` the image left.
    """
    if au not in _AU_COMPONENTS:
        raise ValueError(f"unknown action unit {au}; supported: {sorted(_AU_COMPONENTS)}")
    if side not in ("", "L", "R"):
        raise ValueError(f"side must be '', 'L' or 'R', got {side!r}")
    u, v = framing.canonical_coordinates(geometry)
    lm = geometry.landmarks()
    field = np.zeros(u.shape + (2,))
    sides = {"": ("l", "r"), "L": ("l",), "R": ("r",)}[side]
    for name, (su, sv), (du, dv), w in _AU_COMPONENTS[au]:
        su, sv = su * AU_SPREAD, sv * AU_SPREAD
        if "{s}" in name:
            for s in sides:
                cu, cv = lm[name.format(s=s)]
                sgn = 1.0 if s == "l" else -1.0
                gw = w * _gauss(u, v, cu, cv, su, sv)
                field[..., 0] += gw * sgn * du
                field[..., 1] += gw * dv
        else:
            cu, cv = lm[name]
            if side:  # a midline component of a one-sided AU moves only its half
                cu = cu + (0.5 * su if side == "L" else -0.5 * su)
            gw = w * _gauss(u, v, cu, cv, su, sv)
            field[..., 0] += gw * du
            field[..., 1] += gw * dv
    if side:  # a one-sided action stops at the face midline
        half = 0.5 * (1.0 + np.tanh((u if side == "L" else -u) / 0.025))
        field *= half[..., None]
    peak = np.hypot(field[..., 0], field[..., 1]).max()
    if peak <= 0:
        raise ValueError(f"AU{au}{side} does not touch the frame {framing.width}x{framing.height}")
    return (field / peak).astype(np.float32)


@dataclass
class FaceRenderer:
    """Render frames of one person seen by one camera: neutral face once, warps per frame.

    Parameters
    ----------
    geometry, framing, lighting
        The person, framing and light of the camera.
    """

    geometry: FaceGeometry
    framing: Framing
    lighting: Lighting = field(default_factory=Lighting)

    def __post_init__(self) -> None:
        self.base_open = render_face(self.geometry, self.framing, self.lighting)
        self._base_closed: np.ndarray | None = None
        self._fields: dict[tuple[int, str], np.ndarray] = {}
        h, w = self.framing.height, self.framing.width
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._pixel_xy = np.ascontiguousarray(np.stack([gx, gy], axis=-1))

    @property
    def base_closed(self) -> np.ndarray:
        """The neutral face with the eyes closed (rendered on first use)."""
        if self._base_closed is None:
            self._base_closed = render_face(
                self.geometry, self.framing, self.lighting, eyes_open=0.0
            )
        return self._base_closed

    def unit_field(self, au: int, side: str = "") -> np.ndarray:
        """Cached unit field of an AU (see :func:`au_weight_field`)."""
        key = (int(au), side)
        if key not in self._fields:
            self._fields[key] = au_weight_field(self.geometry, self.framing, *key)
        return self._fields[key]

    def displacement(self, amplitudes: dict[tuple[int, str], float]) -> np.ndarray:
        """Total AU displacement (H, W, 2) float32 in pixels for ``{(au, side): amplitude_px}``."""
        total = None
        for key, amp in amplitudes.items():
            if amp == 0.0:
                continue
            f = self.unit_field(*key)
            total = f * np.float32(amp) if total is None else cv2.scaleAdd(f, float(amp), total)
        if total is None:
            total = np.zeros((self.framing.height, self.framing.width, 2), np.float32)
        return total

    def frame(
        self,
        amplitudes: dict[tuple[int, str], float],
        *,
        shift: tuple[float, float] = (0.0, 0.0),
        blink: float = 0.0,
    ) -> np.ndarray:
        """One frame (H, W, 3) float32: the face warped by the AUs, shifted, blinking.

        Parameters
        ----------
        amplitudes : dict
            ``{(au, side): displacement in pixels}`` at this instant.
        shift : (dx, dy)
            Rigid head translation in pixels.
        blink : float
            Eye closure, 0 (open) .. 1 (closed).
        """
        base = self.base_open
        if blink > 0.0:
            base = cv2.addWeighted(self.base_closed, float(blink), self.base_open,
                                   1.0 - float(blink), 0.0)  # fmt: skip
        maps = cv2.subtract(self._pixel_xy, self.displacement(amplitudes))
        maps = cv2.subtract(maps, (float(shift[0]), float(shift[1]), 0.0, 0.0))
        return cv2.remap(base, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def temporal_profile(
    t: np.ndarray, onset: float, apex: float, offset: float, residual: float = 0.0
) -> np.ndarray:
    """Expression intensity in [0, 1]: raised-cosine rise onset -> apex, fall apex -> offset.

    ``residual`` is the intensity left at the offset (the face has not fully relaxed).
    """
    t = np.asarray(t, dtype=float)
    rise = np.clip((t - onset) / max(apex - onset, 1e-9), 0.0, 1.0)
    fall = np.clip((t - apex) / max(offset - apex, 1e-9), 0.0, 1.0)
    up = 0.5 - 0.5 * np.cos(np.pi * rise)
    down = residual + (1.0 - residual) * (0.5 + 0.5 * np.cos(np.pi * fall))
    return np.where(t <= apex, up, down)


__all__ = [
    "AU_NAMES",
    "EMOTION_AUS",
    "SUBTLE_EMOTIONS",
    "FaceGeometry",
    "FaceRenderer",
    "Framing",
    "Lighting",
    "au_weight_field",
    "format_aus",
    "parse_au",
    "render_face",
    "skin_texture",
    "temporal_profile",
]
