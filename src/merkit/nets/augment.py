"""Seeded data augmentation of training batches: flow images and clips, named policies.

Every transform works on a whole batch of torch tensors and draws its random numbers
from an explicit ``torch.Generator`` (never the global RNG), so the same generator state
gives the same output, bit for bit. Inputs:

* flow images ``[B, C, H, W]`` (kind ``"flow"``): the channels named by ``channels``
  (``"uvs"`` = u, v, strain; ``"svu"`` = strain, v, u, the order the released STSTNet
  weights need; ``"uvs"`` with C = 2 = u, v only, OFF-ApexNet's input);
* grey clips ``[B, C, T, H, W]`` (kind ``"clip"``), the 3-D networks' input.

Flow encodings
--------------
A flow image is not a picture: u (rightward) and v (downward) are signed displacements
(:mod:`merkit.video.flow`), so mirroring the image must also negate u, and rotating it
must rotate the (u, v) vectors. How that reads on the stored values depends on how
they encode the displacement (``encoding``):

``"minmax"`` (every merkit flow image, and the MEGC 2019 release)
    Each channel is min-max normalised per image: ``u_img = lo + (hi - lo) (u - min u) /
    (max u - min u)`` with ``[lo, hi] = [0, 255]`` (or ``[0, 1]`` after ``scale=1/255``);
    all 442 MEGC 2019 images reach exactly 0 and 255 in every channel. The level of zero
    motion, ``lo + (hi - lo) (0 - min u) / (max u - min u)``, differs per image (the
    medians of the released u channels range over 66..194) and is not stored. It is not
    needed for the mirror: ``min(-u) = -max u`` and ``max(-u) = -min u``, so the encoding
    of ``-u`` is exactly ``lo + hi - u_img``, with ``lo`` and ``hi`` the image's own
    minimum and maximum of that channel. Mirroring twice gives the input back, exactly.

    Rotation and scaling cannot be exact in this encoding: mixing u and v needs their
    zero levels and their ratio of scales, and a scale factor on the displacement is
    normalised away (the encoding of ``s u`` is that of ``u``: scaling the magnitude
    leaves a min-max image unchanged, which is why no factor appears below). merkit
    decodes each of u, v as its value minus the image's median of that channel (most of
    a face does not move between onset and apex, so the median is the zero level of the
    static majority) in the stored units (assuming u and v share one scale), rotates
    the vectors, warps the image with zero motion outside it, and min-max normalises
    each channel back to its own ``[lo, hi]``. Channels other than u and v (strain)
    are warped only, their minimum standing for zero outside the image.

``"raw"`` (signed displacements, zero motion = 0, e.g. pixels of a ``.flo`` file)
    Mirror: ``u -> -u``. Rotation by theta and zoom by s map every vector d to
    ``s R(theta) d`` (a displacement of p pixels becomes one of s p pixels in the zoomed
    image); outside the image is zero motion. Exact.

The strain channel (the magnitude of the strain tensor) is mirrored / warped only: it
does not change sign under a mirror, its tensor rotates with the image (its magnitude is
invariant) and a zoom scales displacements and distances alike (strain is unchanged).

Conventions: image x to the right, y downwards; a positive angle turns the picture
counter-clockwise as seen on screen, so 90 degrees turns a rightward flow (u > 0, v = 0)
into an upward one (u = 0, v < 0).

Policies
--------
:data:`POLICIES` maps a name (``merkit train --augment NAME``) to a :class:`Policy`;
``policy(x, y, generator)`` returns ``(x, targets)``: class indices unchanged, or soft
``[B, K]`` probabilities after mixup. Published presets train with ``"none"``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ENCODINGS",
    "POLICIES",
    "Policy",
    "affine_flow",
    "augment_generator",
    "crop_resize",
    "flip",
    "get_policy",
    "input_kind_of",
    "mixup",
    "random_affine",
    "random_crop",
    "random_flip",
    "random_frame_rate",
    "resample_frames",
    "soft_cross_entropy",
    "temporal_jitter",
    "temporal_shift",
]

#: how a flow image stores its displacements (module docstring)
ENCODINGS = ("minmax", "raw")
_KIND_SHAPES = {"flow": "flow images [B, C, H, W]", "clip": "clips [B, C, T, H, W]"}


# --------------------------------------------------------------------------- helpers
def input_kind_of(x: torch.Tensor) -> str:
    """``"flow"`` for a 4-D batch ``[B, C, H, W]``, ``"clip"`` for a 5-D ``[B, C, T, H, W]``."""
    if x.ndim == 4:
        return "flow"
    if x.ndim == 5:
        return "clip"
    raise ValueError(
        f"augmentation takes flow images [B, C, H, W] or clips [B, C, T, H, W], got shape "
        f"{tuple(x.shape)}"
    )


def _need(x: torch.Tensor, kind: str, what: str) -> None:
    got = input_kind_of(x)
    if got != kind:
        raise ValueError(f"{what} takes {_KIND_SHAPES[kind]}, got shape {tuple(x.shape)}")


def _uv(channels: str, n: int) -> tuple[int, int, list[int]]:
    """Positions of u and v among ``n`` channels named by ``channels``, and the others."""
    if channels == "uvs" and n == 2:
        channels = "uv"
    ok = set(channels) <= set("uvs") and len(set(channels)) == len(channels)
    if not ok or "u" not in channels or "v" not in channels:
        raise ValueError(f"channels={channels!r}: name each flow channel once, e.g. 'uvs' or "
                         "'svu'")  # fmt: skip
    if len(channels) != n:
        raise ValueError(
            f"flow images have {n} channels but channels={channels!r} names {len(channels)}; "
            "give the order of the input's channels ('uvs' or 'svu')"
        )
    iu, iv = channels.index("u"), channels.index("v")
    return iu, iv, [i for i in range(n) if i not in (iu, iv)]


def _check_encoding(encoding: str) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding={encoding!r}; expected one of {', '.join(ENCODINGS)}")


def _rows(mask: torch.Tensor | None, b: int) -> torch.Tensor:
    if mask is None:
        return torch.ones(b, dtype=torch.bool)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape != (b,):
        raise ValueError(f"mask must have one entry per sample ({b}), got {tuple(mask.shape)}")
    return mask


def _per_sample(value, b: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(b)
    if t.numel() != b:
        raise ValueError(f"{name} must be one value or one per sample ({b}), got {t.numel()}")
    return t


def _uniform(generator: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)


def augment_generator(seed: int, fold_seed: int | None = None) -> torch.Generator:
    """The generator :func:`merkit.nets.train.fit` augments with.

    Seeded with the first 63 bits of ``sha256("merkit-augment:<seed>:<fold_seed>")``: a
    stream of its own, unrelated to the batch order's (seeded with the fold seed itself)
    and to the global torch RNG (dropout); the same seeds give the same augmentations.
    """
    text = f"merkit-augment:{int(seed)}:{'-' if fold_seed is None else int(fold_seed)}"
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
    return torch.Generator().manual_seed(value)


# --------------------------------------------------------------------------- flip
def flip(
    x: torch.Tensor, *, mask: torch.Tensor | None = None, channels: str = "uvs",
    encoding: str = "minmax",
) -> torch.Tensor:  # fmt: skip
    """Horizontal mirror; for flow images also the sign of u (module docstring).

    Parameters
    ----------
    x : Tensor
        Flow images ``[B, C, H, W]`` or clips ``[B, C, T, H, W]`` (plain mirror).
    mask : bool Tensor of shape (B,), optional
        Samples to mirror (default: all).
    channels : str
        Flow channel order (``"uvs"``, ``"svu"``); unused for clips.
    encoding : {"minmax", "raw"}
        Flow encoding: u becomes ``min u + max u - u`` of each image, or ``-u``.

    Returns
    -------
    Tensor, shape of ``x``
    """
    rows = _rows(mask, x.shape[0])
    out = x.clone()
    if not bool(rows.any()):
        return out
    sel = x[rows].flip(-1)
    if input_kind_of(x) == "flow":
        _check_encoding(encoding)
        iu, _, _ = _uv(channels, x.shape[1])
        u = sel[:, iu]
        if encoding == "raw":
            sel[:, iu] = -u
        else:
            sel[:, iu] = (u.amin(dim=(-2, -1), keepdim=True)
                          + u.amax(dim=(-2, -1), keepdim=True)) - u  # fmt: skip
    out[rows] = sel
    return out


def random_flip(
    x: torch.Tensor, generator: torch.Generator, *, p: float = 0.5, channels: str = "uvs",
    encoding: str = "minmax",
) -> torch.Tensor:  # fmt: skip
    """:func:`flip` of each sample with probability ``p`` (one uniform draw per sample)."""
    mask = torch.rand(x.shape[0], generator=generator, dtype=torch.float64) < p
    return flip(x, mask=mask, channels=channels, encoding=encoding)


# --------------------------------------------------------------------------- affine
def _theta(
    h: int, w: int, angle: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``affine_grid`` matrices ``[B, 2, 3]`` (output -> input, normalised coordinates,
    ``align_corners=False``) of ``q = s R p + t`` about the image centre, and R ``[B, 2, 2]``.
    """
    rad = torch.deg2rad(angle)
    c, s = torch.cos(rad), torch.sin(rad)
    rot = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], -2)  # y down
    inv = rot.transpose(1, 2) / scale.view(-1, 1, 1)  # p = R^T (q - t) / s
    b = -(inv @ shift.unsqueeze(-1)).squeeze(-1)
    d = torch.tensor([2.0 / w, 2.0 / h], dtype=torch.float64)  # pixel -> normalised
    m = d.view(1, 2, 1) * inv / d.view(1, 1, 2)
    theta = torch.cat([m, (d * b).unsqueeze(-1)], dim=2)
    return theta, rot


def affine_flow(
    x: torch.Tensor, angle, scale=1.0, shift=0.0, *, channels: str = "uvs",
    encoding: str = "minmax",
) -> torch.Tensor:  # fmt: skip
    """Rotate, zoom and shift flow images, with their vectors (module docstring).

    Parameters
    ----------
    x : Tensor, shape (B, C, H, W)
    angle : float or Tensor of shape (B,)
        Degrees, counter-clockwise on screen, about the image centre.
    scale : float or Tensor of shape (B,)
        Zoom (> 1 magnifies); raw displacements are multiplied by it.
    shift : float or Tensor of shape (B, 2)
        ``(dx, dy)`` in pixels (right, down) after rotation and zoom.
    channels : str
        Channel order (``"uvs"``, ``"svu"``).
    encoding : {"minmax", "raw"}

    Returns
    -------
    Tensor, shape (B, C, H, W)
        Bilinear resampling; outside the input is zero motion.
    """
    _need(x, "flow", "affine_flow")
    _check_encoding(encoding)
    b, n, h, w = x.shape
    iu, iv, _ = _uv(channels, n)  # other channels (strain) are warped only
    angle, scale = _per_sample(angle, b, "angle"), _per_sample(scale, b, "scale")
    if not bool((scale > 0).all()):
        raise ValueError(f"scale must be > 0, got {scale.tolist()}")
    shift = torch.as_tensor(shift, dtype=torch.float64)
    shift = shift.expand(b, 2) if shift.numel() in (1, 2) else shift.reshape(b, 2)
    theta, rot = _theta(h, w, angle, scale, shift)
    xd = x.double()
    if encoding == "minmax":  # decode: u, v about their medians; other channels from 0
        lo, hi = xd.amin(dim=(-2, -1), keepdim=True), xd.amax(dim=(-2, -1), keepdim=True)
        zero = lo.clone()
        flat = xd[:, [iu, iv]].reshape(b, 2, -1)
        zero[:, [iu, iv]] = flat.median(dim=-1).values.view(b, 2, 1, 1)
        xd = xd - zero
    grid = F.affine_grid(theta, [b, n, h, w], align_corners=False)
    warped = F.grid_sample(xd, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = warped.clone()
    gain = rot if encoding == "minmax" else rot * scale.view(-1, 1, 1)
    uv = torch.stack([warped[:, iu], warped[:, iv]], 1)  # [B, 2, H, W]
    new = torch.einsum("bij,bjhw->bihw", gain, uv)
    out[:, iu], out[:, iv] = new[:, 0], new[:, 1]
    if encoding == "minmax":  # each channel back to the image's own [lo, hi]
        o_lo, o_hi = out.amin(dim=(-2, -1), keepdim=True), out.amax(dim=(-2, -1), keepdim=True)
        span = o_hi - o_lo
        unit = torch.where(span > 0, (out - o_lo) / torch.where(span > 0, span, 1.0), 0.0)
        out = lo + (hi - lo) * unit
    return out.to(x.dtype)


def random_affine(
    x: torch.Tensor, generator: torch.Generator, *, degrees: float = 10.0,
    scale: tuple[float, float] = (0.9, 1.1), translate: float = 0.05, channels: str = "uvs",
    encoding: str = "minmax",
) -> torch.Tensor:  # fmt: skip
    """:func:`affine_flow` with per-sample angle ``U(-degrees, degrees)``, zoom
    ``U(*scale)`` and shift ``U(-translate, translate)`` times the width / height (drawn in
    that order, B values each)."""
    b, _, h, w = x.shape
    angle = _uniform(generator, b, -degrees, degrees)
    zoom = _uniform(generator, b, float(scale[0]), float(scale[1]))
    dx = _uniform(generator, b, -translate, translate) * w
    dy = _uniform(generator, b, -translate, translate) * h
    return affine_flow(x, angle, zoom, torch.stack([dx, dy], 1), channels=channels,
                       encoding=encoding)  # fmt: skip


# --------------------------------------------------------------------------- crop
def crop_resize(x: torch.Tensor, size, center) -> torch.Tensor:
    """Crop a box and resize it (bilinear) back to ``H x W``; a clip's frames share the box.

    Parameters
    ----------
    x : Tensor
        ``[B, C, H, W]`` or ``[B, C, T, H, W]`` intensities (grey clips). Flow vectors are
        not rescaled: zoom flow images with :func:`affine_flow`.
    size : float or Tensor of shape (B,)
        Box side as a fraction of the image side, in (0, 1].
    center : Tensor of shape (B, 2) or (2,)
        Box centre ``(x, y)`` in normalised coordinates (-1 left/top, 1 right/bottom);
        the box must lie inside the image: ``|center| <= 1 - size``.

    Returns
    -------
    Tensor, shape of ``x``
    """
    shape = x.shape
    b, h, w = shape[0], shape[-2], shape[-1]
    size = _per_sample(size, b, "size")
    center = torch.as_tensor(center, dtype=torch.float64)
    center = center.expand(b, 2) if center.numel() == 2 else center.reshape(b, 2)
    if not bool(((size > 0) & (size <= 1)).all()):
        raise ValueError(f"crop size must be in (0, 1], got {size.tolist()}")
    if bool((center.abs() > (1 - size).unsqueeze(1) + 1e-9).any()):
        raise ValueError("crop box leaves the image: |center| must be <= 1 - size")
    zero = torch.zeros_like(size)
    theta = torch.stack([torch.stack([size, zero, center[:, 0]], -1),
                         torch.stack([zero, size, center[:, 1]], -1)], 1)  # fmt: skip
    flat = x.reshape(b, -1, h, w).double()
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(shape).to(x.dtype)


def random_crop(
    x: torch.Tensor, generator: torch.Generator, *, scale: tuple[float, float] = (0.85, 1.0)
) -> torch.Tensor:
    """:func:`crop_resize` with a box side ``U(*scale)`` of the image side (aspect kept) at a
    uniform position inside the image (drawn: sides, then x, then y centres)."""
    b = x.shape[0]
    size = _uniform(generator, b, float(scale[0]), float(scale[1]))
    cx = (2 * torch.rand(b, generator=generator, dtype=torch.float64) - 1) * (1 - size)
    cy = (2 * torch.rand(b, generator=generator, dtype=torch.float64) - 1) * (1 - size)
    return crop_resize(x, size, torch.stack([cx, cy], 1))


# --------------------------------------------------------------------------- time
def _sample_time(clip: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of ``clip [C, T, H, W]`` at frame positions ``pos`` (clamped)."""
    t = clip.shape[1]
    pos = pos.clamp(0, t - 1)
    lo = pos.floor().long().clamp(max=t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    wgt = (pos - lo.double()).view(1, -1, 1, 1)
    return clip[:, lo] * (1 - wgt) + clip[:, hi] * wgt


def temporal_shift(x: torch.Tensor, shift) -> torch.Tensor:
    """Sample each clip at frames ``t + shift`` (linear interpolation; the first and last
    frames repeat beyond the ends).

    Parameters
    ----------
    x : Tensor, shape (B, C, T, H, W)
    shift : float or Tensor of shape (B,)
        Frames (positive = later).

    Returns
    -------
    Tensor, shape (B, C, T, H, W)
    """
    _need(x, "clip", "temporal_shift")
    b, t = x.shape[0], x.shape[2]
    shift = _per_sample(shift, b, "shift")
    base = torch.arange(t, dtype=torch.float64)
    xd = x.double()
    return torch.stack([_sample_time(xd[i], base + shift[i]) for i in range(b)]).to(x.dtype)


def temporal_jitter(
    x: torch.Tensor, generator: torch.Generator, *, max_shift: float = 1.0
) -> torch.Tensor:
    """:func:`temporal_shift` by ``U(-max_shift, max_shift)`` frames per clip."""
    return temporal_shift(x, _uniform(generator, x.shape[0], -max_shift, max_shift))


def resample_frames(x: torch.Tensor, factor) -> torch.Tensor:
    """A clip as seen at ``factor`` times its frame rate, brought back to its T frames.

    The onset..offset span is sampled at ``T' = max(2, round(factor * T))`` evenly spaced
    frames (``round`` halves up), then those at T evenly spaced frames again, both by
    linear interpolation (as TIM brings every clip to T frames): ``factor = 0.5`` makes a
    200 fps clip (CASME II, SAMM) look like a 100 fps one (SMIC-HS). A clip linear in time
    is unchanged.

    Parameters
    ----------
    x : Tensor, shape (B, C, T, H, W)
    factor : float or Tensor of shape (B,)
        > 0.

    Returns
    -------
    Tensor, shape (B, C, T, H, W)
    """
    _need(x, "clip", "resample_frames")
    b, t = x.shape[0], x.shape[2]
    factor = _per_sample(factor, b, "factor")
    if not bool((factor > 0).all()):
        raise ValueError(f"frame-rate factor must be > 0, got {factor.tolist()}")
    xd, out = x.double(), []
    for i in range(b):
        k = max(2, math.floor(float(factor[i]) * t + 0.5))
        mid = _sample_time(xd[i], torch.linspace(0, t - 1, k, dtype=torch.float64))
        out.append(_sample_time(mid, torch.linspace(0, k - 1, t, dtype=torch.float64)))
    return torch.stack(out).to(x.dtype)


def random_frame_rate(
    x: torch.Tensor, generator: torch.Generator, *, factors: tuple[float, float] = (0.5, 1.0)
) -> torch.Tensor:
    """:func:`resample_frames` at a factor ``U(*factors)`` per clip."""
    return resample_frames(x, _uniform(generator, x.shape[0], float(factors[0]),
                                       float(factors[1])))  # fmt: skip


# --------------------------------------------------------------------------- mixup
def _soft(y: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    if y.is_floating_point() and y.ndim == 2:
        return y
    if num_classes is None:
        raise ValueError("mixup needs num_classes to turn class indices into probabilities")
    return F.one_hot(y.long(), int(num_classes)).to(torch.float32)


def mixup(
    x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, *, alpha: float = 0.2,
    num_classes: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Mixup (Zhang, Cisse, Dauphin & Lopez-Paz, ICLR 2018): ``lam x + (1 - lam) x[perm]``.

    One ``lam ~ Beta(alpha, alpha)`` per batch (numpy's Beta, seeded from ``generator``)
    and one random permutation of the batch (drawn after it).

    Parameters
    ----------
    x : Tensor, shape (B, ...)
    y : Tensor
        ``(B,)`` class indices or ``(B, K)`` probabilities.
    alpha : float
        > 0; 0.2, the paper's ImageNet setting, keeps most mixes close to one sample.
    num_classes : int
        K, needed with class indices.

    Returns
    -------
    x : Tensor, shape of ``x``
    targets : Tensor of float32, shape (B, K)
        ``lam onehot(y) + (1 - lam) onehot(y[perm])``; every row sums to 1.
    """
    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, got {alpha}")
    soft = _soft(y, num_classes)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator)
    mixed = lam * x + (1 - lam) * x[perm]
    return mixed.to(x.dtype), (lam * soft + (1 - lam) * soft[perm]).to(torch.float32)


def soft_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy with probability targets, normalised as with class indices.

    ``sum_i sum_k p_ik w_k (-log q_ik) / sum_i W_i`` with ``W_i = sum_k p_ik w_k`` (w = 1
    without weights): the expected weighted loss under the target distribution, equal to
    ``F.cross_entropy(logits, y, weight)`` when ``targets`` is ``one_hot(y)`` (PyTorch's
    own probability-target form divides by B instead of the weights). With
    ``label_smoothing`` eps the numerator's targets are ``(1 - eps) p + eps / K`` and the
    denominator keeps ``W_i``: ``F.cross_entropy(logits, y, weight, label_smoothing=eps)``
    for one-hot targets.

    Parameters
    ----------
    logits : Tensor, shape (B, K)
    targets : Tensor, shape (B, K)
        Rows sum to 1.
    weight : Tensor, shape (K,), optional
    label_smoothing : float
        In [0, 1).
    """
    if weight is None:
        return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)
    w = weight.to(targets.dtype)
    smoothed = targets * (1 - label_smoothing) + label_smoothing / targets.shape[1]
    total = (smoothed * w * -torch.log_softmax(logits, dim=1)).sum()
    return total / (targets * w).sum().clamp_min(1e-12)


# --------------------------------------------------------------------------- policies
@dataclass(frozen=True)
class Policy:
    """A named augmentation: ``policy(x, y, generator) -> (x, targets)``.

    Steps, in this order, each skipped when off: mirror (``flip_p``), for flow images the
    rotation / zoom / shift (``degrees``, ``scale``, ``translate``), for clips the crop
    (``crop``), frame rate (``frame_rate``) and temporal jitter (``jitter``), then mixup
    (``mixup_alpha``). Each step draws its numbers from the generator in turn.

    Attributes
    ----------
    name : str
    kind : {"flow", "clip"} or None
        The input the policy is for (None: any, the identity ``"none"``).
    flip_p : float
        Probability of the horizontal mirror (:func:`random_flip`).
    degrees : float
        Rotations ``U(-degrees, degrees)`` (:func:`random_affine`).
    scale : (float, float)
        Zoom range.
    translate : float
        Shift range, a fraction of the side.
    crop : (float, float) or None
        Box side range (:func:`random_crop`).
    jitter : float
        Temporal shift range in frames (:func:`temporal_jitter`).
    frame_rate : (float, float) or None
        Frame-rate factor range (:func:`random_frame_rate`).
    mixup_alpha : float or None
        Beta parameter of :func:`mixup` (None: no mixup, targets stay class indices).
    channels : str
        Flow channel order of the inputs (``"uvs"``, ``"svu"``).
    encoding : {"minmax", "raw"}
        Flow encoding (merkit's images: ``"minmax"``).
    num_classes : int or None
        K of the soft targets (mixup).
    """

    name: str
    kind: str | None = None
    flip_p: float = 0.0
    degrees: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    crop: tuple[float, float] | None = None
    jitter: float = 0.0
    frame_rate: tuple[float, float] | None = None
    mixup_alpha: float | None = None
    channels: str = "uvs"
    encoding: str = "minmax"
    num_classes: int | None = None

    @property
    def mixes(self) -> bool:
        """Whether the targets become soft ``[B, K]`` probabilities."""
        return self.mixup_alpha is not None

    @property
    def affine(self) -> bool:
        return self.degrees > 0 or self.scale != (1.0, 1.0) or self.translate > 0

    def bind(self, *, channels: str = "uvs", encoding: str = "minmax",
             num_classes: int | None = None) -> Policy:  # fmt: skip
        """The policy for inputs of this channel order / encoding and K classes."""
        _check_encoding(encoding)
        return replace(self, channels=channels, encoding=encoding, num_classes=num_classes)

    def check_kind(self, kind: str) -> None:
        """ValueError (one line) when the policy is not for inputs of ``kind``."""
        if self.kind is not None and kind != self.kind:
            fits = ", ".join(n for n, p in POLICIES.items() if p.kind in (None, kind))
            raise ValueError(
                f"augment policy {self.name!r} is for {_KIND_SHAPES[self.kind]}, not "
                f"{_KIND_SHAPES[kind]}; for {kind} inputs use one of: {fits}"
            )

    def __call__(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch.

        Parameters
        ----------
        x : Tensor
            ``[B, C, H, W]`` flow images or ``[B, C, T, H, W]`` clips.
        y : Tensor, shape (B,)
            Class indices (or multi-label codes, without mixup).
        generator : torch.Generator

        Returns
        -------
        x : Tensor, shape of ``x``
        targets : Tensor
            ``y`` itself, or float32 ``[B, K]`` probabilities with mixup.
        """
        kind = input_kind_of(x)
        self.check_kind(kind)
        with torch.no_grad():
            if self.flip_p > 0:
                x = random_flip(x, generator, p=self.flip_p, channels=self.channels,
                                encoding=self.encoding)  # fmt: skip
            if kind == "flow" and self.affine:
                x = random_affine(x, generator, degrees=self.degrees, scale=self.scale,
                                  translate=self.translate, channels=self.channels,
                                  encoding=self.encoding)  # fmt: skip
            if kind == "clip":
                if self.crop is not None:
                    x = random_crop(x, generator, scale=self.crop)
                if self.frame_rate is not None:
                    x = random_frame_rate(x, generator, factors=self.frame_rate)
                if self.jitter > 0:
                    x = temporal_jitter(x, generator, max_shift=self.jitter)
            if self.mixes:
                return mixup(x, y, generator, alpha=float(self.mixup_alpha),
                             num_classes=self.num_classes)  # fmt: skip
        return x, y


#: the shared magnitudes of the flow and clip policies (docs/augmentation.md)
_FLOW = {"flip_p": 0.5, "degrees": 10.0, "scale": (0.9, 1.1), "translate": 0.05}
_CLIP = {"flip_p": 0.5, "crop": (0.85, 1.0), "frame_rate": (0.5, 1.0), "jitter": 1.0}
_MIXUP_ALPHA = 0.2

#: name -> policy (``merkit train --augment NAME``); "none" is the published presets'
POLICIES: dict[str, Policy] = {
    "none": Policy("none"),
    "flow": Policy("flow", "flow", **_FLOW),
    "flow-flip": Policy("flow-flip", "flow", flip_p=0.5),
    "flow-mixup": Policy("flow-mixup", "flow", **_FLOW, mixup_alpha=_MIXUP_ALPHA),
    "clip": Policy("clip", "clip", **_CLIP),
    "clip-mixup": Policy("clip-mixup", "clip", **_CLIP, mixup_alpha=_MIXUP_ALPHA),
}


def get_policy(name: str, **bind) -> Policy:
    """The registered policy ``name``, bound to the inputs (:meth:`Policy.bind`) when keyword
    arguments are given.

    Raises
    ------
    ValueError
        Unknown name (one line listing the known policies).
    """
    if name not in POLICIES:
        raise ValueError(
            f"augment={name!r} (--augment): unknown augmentation policy; known: "
            f"{', '.join(POLICIES)}"
        )
    policy = POLICIES[name]
    return policy.bind(**bind) if bind else policy
