"""Descriptor registry: a name with parameters -> a callable ``clip -> feature vector``.

Spec grammar
------------
``<family>:<params>``, e.g. ``"lbp_top:r3p8"`` (radius 3 along x, y and t, 8 neighbours
on every plane), ``"lbp_top:rx1ry1rt4p8"`` (per-axis radii) or ``"lbp_top:r3p8:riu2"``
(extra tokens are family options; for LBP-TOP a mapping name). A bare family name uses the
family's defaults. Families:

``lbp_top``
    :func:`merkit.features.lbp.lbp_top` over ``Grid((1, 2, 4, 8))`` in merkit's (block,
    plane, bin) layout.
``lbp_top_cdmer``
    The same codes with the CDMER benchmark's grid (column-major, cdmer partition) and
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from merkit.features import lbp as _lbp
from merkit.features.grid import Grid

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
        Feature values per grid block.
    grid : Grid
        Blocks behind the vector.
    layout : str
        Column layout: ``"block"`` (block, value) or ``"level_plane"`` (level, plane, block,
        bin — the CDMER benchmark files).
    n_planes : int
        Planes per block (for ``"level_plane"`` column maps).
    """

    name: str
    family: str
    params: dict[str, Any]
    function: Callable[..., np.ndarray] = field(repr=False)
    dim_per_block: int
    grid: Grid
    layout: str = "block"
    n_planes: int = 1

    def __call__(self, clip: np.ndarray) -> np.ndarray:
        """Feature vector of one clip."""
        return self.function(clip, **self.params)

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        return self.grid.n_blocks * self.dim_per_block

    def column_blocks(self) -> np.ndarray:
        """Block index of each feature column (for FeatureSet.blocks)."""
        return self.grid.column_blocks(
            self.dim_per_block, layout=self.layout, n_planes=self.n_planes
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
        f"{d.name}: {entry.summary}. Parameters: {params}. {d.grid.n_blocks} blocks x "
        f"{d.dim_per_block} values = {d.dim} features ({d.layout} layout)."
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
    grid = Grid((1, 2, 4, 8))
    kwargs = {"radii": radii, "points": points, "grid": grid, "mapping": mapping, "layout": "block"}
    return Descriptor(name, "lbp_top", kwargs, _lbp.lbp_top, dpb, grid, "block", 3)


@register(
    "lbp_top_cdmer",
    summary=(
        "LBP-TOP with the CDMER benchmark's grid (column-major blocks, round(n/k) partition) "
        "and column order (level, plane, block, bin)"
    ),
    example="lbp_top_cdmer:r3p8",
)
def _lbp_top_cdmer(params: str, options: tuple[str, ...]) -> Descriptor:
    name, radii, points, mapping, dpb = _lbp_params("lbp_top_cdmer", params, options)
    grid = _lbp.cdmer_grid()
    kwargs = {"radii": radii, "points": points, "grid": grid, "mapping": mapping, "layout": "cdmer"}
    return Descriptor(name, "lbp_top_cdmer", kwargs, _lbp.lbp_top, dpb, grid, "level_plane", 3)
