"""Descriptor registry: a name with parameters -> a callable ``clip -> feature vector``.

Spec grammar
------------
``<family>:<params>``, e.g. ``"lbp_top:r3p8"`` (radius 3 along x, y and t, 8 neighbours
on every plane), ``"lbp_top:rx1ry1rt4p8"`` (per-axis radii) or ``"lbp_top:r3p8:riu2"``
(extra tokens are family options; for LBP-TOP a mapping name). A bare family name uses the
family's defaults. Families:

``lbp_top``
    :func:`merkit.features.lbp.lbp_top` over ``BlockLayout((1, 2, 4, 8))`` in merkit's
    (block, plane, bin) column order.
``c3d``
    C3D fc6 / fc7 activations (:mod:`merkit.features.c3d`) with user-supplied weights
    (:func:`with_weights`).
``lbp_top_cdmer``
    The same codes with the CDMER benchmark's block layout (column-major, cdmer partition) and
    (level, plane, block, bin) column order, comparable column by column with the
    benchmark's ``CrossCorpus_LBPTOP_R3P8_*`` files.

New families register with one decorated parser::

    @register("lbp_sip", summary="LBP on six intersection points")
    def _lbp_sip(params: str, options: tuple[str, ...]) -> Descriptor:
        ...
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from merkit.features import c3d, flowhist, hog, lbpsip, lpq
from merkit.features import lbp as _lbp
from merkit.features.layout import BlockLayout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Descriptor:
    """A configured descriptor.

    Attributes
    ----------
    name : str
        Canonical spec (``"lbp_top:r3p8"``, ``"lbp_top:rx1ry1rt4p8"``).
    family : str
        Registry family (``"lbp_top"``).
    params : dict
        Keyword arguments given to ``function``.
    function : callable
        ``function(clip, **params) -> 1-D float32 array``.
    dim_per_block : int
        Feature values per block.
    layout : BlockLayout
        Blocks behind the vector.
    column_order : str
        Column order: ``"block"`` (block, value) or ``"level_plane"`` (level, plane, block,
        bin — the CDMER benchmark files).
    n_planes : int
        Planes per block (for ``"level_plane"`` column maps).
    """

    name: str
    family: str
    params: dict[str, Any]
    function: Callable[..., np.ndarray] = field(repr=False)
    dim_per_block: int
    layout: BlockLayout
    column_order: str = "block"
    n_planes: int = 1

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        """Feature vector of one clip."""
        return self.function(clip, **self.params)

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        return self.layout.n_blocks * self.dim_per_block

    def column_blocks(self) -> np.ndarray:
        """Block index of each feature column (for FeatureSet.blocks)."""
        return self.layout.column_blocks(
            self.dim_per_block, column_order=self.column_order, n_planes=self.n_planes
        )


class UnknownDescriptorError(KeyError):
    """No descriptor family of that name; the message lists the available ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


Parser = Callable[[str, tuple[str, ...]], Descriptor]


@dataclass(frozen=True)
class _Entry:
    parser: Parser
    summary: str
    example: str


_REGISTRY: dict[str, _Entry] = {}


def register(
    family: str, *, summary: str, example: str | None = None
) -> Callable[[Parser], Parser]:
    """Decorator registering a spec parser ``(params, options) -> Descriptor`` for a family."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", family):
        raise ValueError(f"descriptor family {family!r}: use lower-case letters, digits, '_'")

    def deco(parser: Parser) -> Parser:
        if family in _REGISTRY:
            raise ValueError(f"descriptor family {family!r} is already registered")
        _REGISTRY[family] = _Entry(parser, summary, example or family)
        return parser

    return deco


def available() -> list[str]:
    """Registered descriptor families (sorted)."""
    return sorted(_REGISTRY)


def get_descriptor(spec: str) -> Descriptor:
    """Descriptor for a spec such as ``"lbp_top:r3p8"``.

    Raises
    ------
    UnknownDescriptorError
        (a KeyError) Unknown family; the message lists the available ones.
    ValueError
        Malformed parameters.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"descriptor spec must be a non-empty string, got {spec!r}")
    family, *rest = spec.strip().lower().split(":")
    if family not in _REGISTRY:
        raise UnknownDescriptorError(
            f"unknown descriptor {family!r} (from {spec!r}); available: {', '.join(available())}"
        )
    params = rest[0] if rest else ""
    return _REGISTRY[family].parser(params, tuple(rest[1:]))


def describe(spec: str) -> str:
    """One-paragraph description of a family or a full spec."""
    family = spec.strip().lower().split(":")[0]
    if family not in _REGISTRY:
        raise UnknownDescriptorError(
            f"unknown descriptor {family!r}; available: {', '.join(available())}"
        )
    entry = _REGISTRY[family]
    d = get_descriptor(spec if ":" in spec else entry.example)
    params = ", ".join(f"{k}={v}" for k, v in d.params.items())
    return (
        f"{d.name}: {entry.summary}. Parameters: {params}. {d.layout.n_blocks} blocks x "
        f"{d.dim_per_block} values = {d.dim} features ({d.column_order} column order)."
    )


# --------------------------------------------------------------------------- LBP-TOP
_LBP_SPEC = re.compile(
    r"^(?:r(?P<r>\d+(?:\.\d+)?)|rx(?P<rx>\d+(?:\.\d+)?)ry(?P<ry>\d+(?:\.\d+)?)"
    r"rt(?P<rt>\d+(?:\.\d+)?))p(?P<p>\d+)$"
)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def _lbp_params(family: str, params: str, options: tuple[str, ...]):
    params = params or "r3p8"
    m = _LBP_SPEC.match(params)
    if not m:
        raise ValueError(
            f"{family} parameters {params!r}: expected 'r<R>p<P>' (e.g. r3p8) or "
            f"'rx<Rx>ry<Ry>rt<Rt>p<P>' (e.g. rx1ry1rt4p8)"
        )
    if m["r"] is not None:
        radii = (_number(m["r"]),) * 3
    else:
        radii = (_number(m["rx"]), _number(m["ry"]), _number(m["rt"]))
    if any(r <= 0 for r in radii):
        raise ValueError(f"{family} parameters {params!r}: radii must be positive")
    p = int(m["p"])
    mapping = "u2"
    for opt in options:
        if opt in _lbp.MAPPINGS:
            mapping = opt
        else:
            raise ValueError(
                f"{family} option {opt!r}: expected a mapping name {list(_lbp.MAPPINGS)}"
            )
    points = (p, p, p)
    dim_per_block = 3 * _lbp.n_bins(p, mapping)
    rx, ry, rt = radii
    shape = f"r{rx}" if rx == ry == rt else f"rx{rx}ry{ry}rt{rt}"
    name = f"{family}:{shape}p{p}" + ("" if mapping == "u2" else f":{mapping}")
    return name, radii, points, mapping, dim_per_block


@register(
    "lbp_top",
    summary="LBP-TOP histograms (Zhao & Pietikäinen 2007) over 1x1..8x8 blocks",
    example="lbp_top:r3p8",
)
def _lbp_top(params: str, options: tuple[str, ...]) -> Descriptor:
    name, radii, points, mapping, dpb = _lbp_params("lbp_top", params, options)
    layout = BlockLayout((1, 2, 4, 8))
    kwargs = {
        "radii": radii,
        "points": points,
        "layout": layout,
        "mapping": mapping,
        "column_order": "block",
    }
    return Descriptor(name, "lbp_top", kwargs, _lbp.lbp_top, dpb, layout, "block", 3)


@register(
    "lbp_top_cdmer",
    summary=(
        "LBP-TOP with the CDMER benchmark's block layout (column-major blocks, round(n/k) "
        "partition) and column order (level, plane, block, bin)"
    ),
    example="lbp_top_cdmer:r3p8",
)
def _lbp_top_cdmer(params: str, options: tuple[str, ...]) -> Descriptor:
    name, radii, points, mapping, dpb = _lbp_params("lbp_top_cdmer", params, options)
    layout = _lbp.cdmer_layout()
    kwargs = {
        "radii": radii,
        "points": points,
        "layout": layout,
        "mapping": mapping,
        "column_order": "level_plane",
    }
    return Descriptor(name, "lbp_top_cdmer", kwargs, _lbp.lbp_top, dpb, layout, "level_plane", 3)


# --------------------------------------------------------------------------- LBP-SIP
_RADII_SPEC = re.compile(r"^(?:r(?P<r>\d+)|rx(?P<rx>\d+)ry(?P<ry>\d+)rt(?P<rt>\d+))$")


@register(
    "lbp_sip",
    summary=(
        "LBP with six intersection points (Wang et al. 2014): 16-bin spatial + 4-bin "
        "temporal histograms over 1x1..8x8 blocks; spec r<R> or rx<Rx>ry<Ry>rt<Rt> "
        "(integer radii)"
    ),
    example="lbp_sip:r1",
)
def _lbp_sip(params: str, options: tuple[str, ...]) -> Descriptor:
    params = params or "r1"
    m = _RADII_SPEC.match(params)
    if not m:
        raise ValueError(
            f"lbp_sip parameters {params!r}: expected 'r<R>' (e.g. r1, r3) or "
            f"'rx<Rx>ry<Ry>rt<Rt>' with positive integer radii"
        )
    if options:
        raise ValueError(f"lbp_sip takes no options, got {':'.join(options)!r}")
    if m["r"] is not None:
        radii = (int(m["r"]),) * 3
    else:
        radii = (int(m["rx"]), int(m["ry"]), int(m["rt"]))
    if min(radii) < 1:
        raise ValueError(f"lbp_sip parameters {params!r}: radii must be positive")
    rx, ry, rt = radii
    name = f"lbp_sip:r{rx}" if rx == ry == rt else f"lbp_sip:rx{rx}ry{ry}rt{rt}"
    layout = BlockLayout((1, 2, 4, 8))
    kwargs = {"radii": radii, "layout": layout}
    dpb = lbpsip.DIM_PER_BLOCK
    return Descriptor(name, "lbp_sip", kwargs, lbpsip.lbp_sip, dpb, layout, "block", 2)


# --------------------------------------------------------------------------- LPQ-TOP
_WINDOW_SPEC = re.compile(r"^(?:w(?P<w>\d+)|wx(?P<wx>\d+)wy(?P<wy>\d+)wt(?P<wt>\d+))$")
_RHO_SPEC = re.compile(
    r"^(?:rho(?P<rho>\d+(?:\.\d+)?)|rhos(?P<rs>\d+(?:\.\d+)?)rhot(?P<rt>\d+(?:\.\d+)?))$"
)


@register(
    "lpq_top",
    summary=(
        "LPQ-TOP (Päivärinta et al. 2011): 256-bin local phase quantization codes on XY, "
        "XT, YT over 1x1..8x8 blocks; spec w<W> or wx<Wx>wy<Wy>wt<Wt> (odd windows), "
        "option rho<r> (decorrelation rho_s = rho_t = r, default 0.1; rho0: none) or "
        "rhos<a>rhot<b>"
    ),
    example="lpq_top:w5",
)
def _lpq_top(params: str, options: tuple[str, ...]) -> Descriptor:
    params = params or "w5"
    m = _WINDOW_SPEC.match(params)
    if not m:
        raise ValueError(
            f"lpq_top parameters {params!r}: expected 'w<W>' (e.g. w5) or "
            f"'wx<Wx>wy<Wy>wt<Wt>' with odd window sizes >= 3"
        )
    if m["w"] is not None:
        window = (int(m["w"]),) * 3
    else:
        window = (int(m["wx"]), int(m["wy"]), int(m["wt"]))
    if any(w < 3 or w % 2 == 0 for w in window):
        raise ValueError(f"lpq_top parameters {params!r}: window sizes must be odd and >= 3")
    rho: tuple[float, float] = (0.1, 0.1)
    if len(options) > 1:
        raise ValueError(f"lpq_top takes one option (rho), got {':'.join(options)!r}")
    for opt in options:
        r = _RHO_SPEC.match(opt)
        if not r:
            raise ValueError(
                f"lpq_top option {opt!r}: expected 'rho<r>' (e.g. rho0.1, rho0) or 'rhos<a>rhot<b>'"
            )
        rho = (float(r["rho"]),) * 2 if r["rho"] is not None else (float(r["rs"]), float(r["rt"]))
        if any(v >= 1 for v in rho):
            raise ValueError(f"lpq_top option {opt!r}: correlation coefficients must be < 1")
    wx, wy, wt = window
    name = f"lpq_top:w{wx}" if wx == wy == wt else f"lpq_top:wx{wx}wy{wy}wt{wt}"
    if rho[0] == rho[1]:
        if rho[0] != 0.1:
            name += f":rho{_number(str(rho[0]))}"
    else:
        name += f":rhos{_number(str(rho[0]))}rhot{_number(str(rho[1]))}"
    layout = BlockLayout((1, 2, 4, 8))
    kwargs = {"window": window, "rho": None if rho == (0.0, 0.0) else rho, "layout": layout}
    return Descriptor(name, "lpq_top", kwargs, lpq.lpq_top, 3 * lpq.N_BINS, layout, "block", 3)


# --------------------------------------------------------------------------- HOG/HIGO-TOP
_BINS_SPEC = re.compile(r"^p(?P<p>\d+)$")


def _gradient_descriptor(family: str, params: str, options: tuple[str, ...]) -> Descriptor:
    params = params or "p8"
    m = _BINS_SPEC.match(params)
    if not m:
        raise ValueError(f"{family} parameters {params!r}: expected 'p<bins>' (e.g. p4, p8)")
    if options:
        raise ValueError(f"{family} takes no options, got {':'.join(options)!r}")
    bins = int(m["p"])
    if not 2 <= bins <= 360:
        raise ValueError(f"{family} parameters {params!r}: bins must be in 2..360")
    layout = BlockLayout((1, 2, 4, 8))
    function = hog.hog_top if family == "hog_top" else hog.higo_top
    kwargs = {"bins": bins, "layout": layout}
    return Descriptor(f"{family}:p{bins}", family, kwargs, function, 3 * bins, layout, "block", 3)


@register(
    "hog_top",
    summary=(
        "HOG-TOP (Li et al. 2018): magnitude-weighted unsigned gradient-orientation "
        "histograms on XY, XT, YT over 1x1..8x8 blocks; spec p<bins>"
    ),
    example="hog_top:p8",
)
def _hog_top(params: str, options: tuple[str, ...]) -> Descriptor:
    return _gradient_descriptor("hog_top", params, options)


@register(
    "higo_top",
    summary=(
        "HIGO-TOP (Li et al. 2018): unweighted (one vote per pixel) unsigned gradient-"
        "orientation histograms on XY, XT, YT over 1x1..8x8 blocks; spec p<bins>"
    ),
    example="higo_top:p8",
)
def _higo_top(params: str, options: tuple[str, ...]) -> Descriptor:
    return _gradient_descriptor("higo_top", params, options)


# --------------------------------------------------------------------------- HOOF / MDMO
_HOOF_SPEC = re.compile(r"^b(?P<b>\d+)$")
_HOOF_OPTIONS = ("mirror", "count", "onset")


@register(
    "hoof",
    summary=(
        "HOOF (Chaudhry et al. 2009): histograms of oriented TV-L1 optical flow between "
        "consecutive frames over 1x1..8x8 blocks, magnitude-weighted, each block summing to 1; "
        "spec b<bins>; options mirror (Chaudhry's left-right symmetric primary-angle bins), "
        "count (unweighted votes), onset (flows from the first frame)"
    ),
    example="hoof:b8",
)
def _hoof(params: str, options: tuple[str, ...]) -> Descriptor:
    params = params or "b8"
    m = _HOOF_SPEC.match(params)
    if not m:
        raise ValueError(f"hoof parameters {params!r}: expected 'b<bins>' (e.g. b8)")
    bins = int(m["b"])
    if not 2 <= bins <= 360:
        raise ValueError(f"hoof parameters {params!r}: bins must be in 2..360")
    bad = [o for o in options if o not in _HOOF_OPTIONS]
    if bad or len(set(options)) != len(options):
        raise ValueError(
            f"hoof options {':'.join(options)!r}: expected distinct options from {_HOOF_OPTIONS}"
        )
    layout = BlockLayout((1, 2, 4, 8))
    kwargs = {
        "bins": bins,
        "magnitude": "count" not in options,
        "binning": "mirror" if "mirror" in options else "full",
        "layout": layout,
        "pairs": "onset" if "onset" in options else "consecutive",
    }
    name = ":".join([f"hoof:b{bins}", *[o for o in _HOOF_OPTIONS if o in options]])
    return Descriptor(name, "hoof", kwargs, flowhist.hoof_clip, bins, layout, "block", 1)


@register(
    "mdmo",
    summary=(
        "MDMO (Liu et al. 2016): main-direction mean TV-L1 flow (first frame -> each frame) "
        "in 36 landmark ROIs, averaged over the clip, as (normalised magnitude, angle); "
        "option mean (mean-shape landmarks of an aligned crop instead of dlib landmarks)"
    ),
    example="mdmo",
)
def _mdmo(params: str, options: tuple[str, ...]) -> Descriptor:
    tokens = [t for t in (params, *options) if t]
    if any(t != "mean" for t in tokens) or len(tokens) > 1:
        raise ValueError(f"mdmo options {':'.join(tokens)!r}: the only option is 'mean'")
    landmarks = "mean" if tokens else "auto"
    layout = BlockLayout((1,))
    kwargs = {"landmarks": landmarks}
    name = "mdmo:mean" if landmarks == "mean" else "mdmo"
    dim = 2 * len(flowhist.MDMO_ROIS)
    return Descriptor(name, "mdmo", kwargs, flowhist.mdmo_clip, dim, layout, "block", 1)


# --------------------------------------------------------------------------- C3D
@register(
    "c3d",
    summary=(
        "C3D (Tran et al. 2015) fc6 or fc7 activations (the CDMER benchmark's C3D-FC1 / "
        "C3D-FC2) of the 16 x 112 x 112 clip, grey repeated on RGB, with user-supplied "
        "Sports-1M weights (--weights FILE); spec fc6 or fc7"
    ),
    example="c3d:fc6",
)
def _c3d(params: str, options: tuple[str, ...]) -> Descriptor:
    layer = params or "fc6"
    if layer not in c3d.FEATURE_LAYERS or options:
        spec = ":".join(["c3d", params, *options])
        raise ValueError(f"c3d spec {spec!r}: expected c3d:fc6 or c3d:fc7")
    kwargs = {"layer": layer, "weights": None, "digest": ""}
    return Descriptor(f"c3d:{layer}", "c3d", kwargs, c3d.c3d_features, 4096, BlockLayout((1,)))


#: descriptor families that take a weights file
WEIGHTED_FAMILIES = ("c3d",)


def with_weights(desc: Descriptor, weights: str | Path | None) -> Descriptor:
    """``desc`` with its weights file attached (families of :data:`WEIGHTED_FAMILIES`).

    The file is checked (keys and shapes) before any clip is described; its SHA-256
    becomes part of the descriptor's parameters, hence of the feature cache key.

    Raises
    ------
    ValueError
        Weights for a descriptor that takes none, or none for one that needs them.
    FileNotFoundError, merkit.features.c3d.C3DWeightsError
        The file is missing or not a C3D state dict.
    """
    if desc.family not in WEIGHTED_FAMILIES:
        if weights is not None:
            raise ValueError(
                f"--weights is only for the c3d descriptor, not {desc.name}; leave it out"
            )
        return desc
    if weights is None:
        if desc.params.get("weights"):
            return desc
        raise ValueError(
            f"descriptor {desc.name} needs a weights file: give --weights FILE (a C3D "
            "Sports-1M state dict, keys conv1 ... fc8; see docs/c3d.md)"
        )
    path = Path(weights).expanduser().resolve()
    c3d.load_weights(path)  # missing file, wrong keys or shapes fail here, before any clip
    params = {**desc.params, "weights": str(path), "digest": c3d.weights_digest(path)}
    return replace(desc, params=params)
