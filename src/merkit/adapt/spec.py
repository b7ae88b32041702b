"""How a DA method declares itself to the registry: :class:`MethodSpec`.

Each estimator class lists its registry names in a class attribute next to its code::

    class SelectiveTransferMachine(DomainAdaptationClassifier):
        method_specs = (
            MethodSpec("stm", grid=[{"lam": v} for v in STM_LAM], paper_names={"lam": "lambda"}),
        )

and :mod:`merkit.adapt.registry` builds the registry (``METHODS``) from those
declarations. One declaration holds the registry name, the fixed constructor parameters
of that name (``preset``), the published search space (a list of parameter dicts, or a
function of the two domain sizes for the subspace dimension of TCA, GFK and SA) and the
names the papers give the parameters. The documented default point is the class's own
default of each grid parameter (:func:`merkit.adapt.registry.default_point`), so it is
not repeated here.

The helpers :func:`matlab_range`, :func:`unique_values` and :func:`product_grid` write the
published ranges as the papers state them (MATLAB ``start:step:stop``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "BENCHMARK_FINE",
    "MethodSpec",
    "matlab_range",
    "product_grid",
    "unique_values",
]

#: a grid that depends on the sizes of the two domains: ``(n_source, n_target) -> points``
SizedGrid = Callable[[int, int], list[dict]]


def matlab_range(start: float, stop: float, step: float) -> list[float]:
    """MATLAB ``start:step:stop`` (inclusive), rounded to 10 decimals."""
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [float(round(start + i * step, 10)) for i in range(n)]


def unique_values(values: Iterable[float]) -> list[float]:
    """``values`` with repeats dropped, in first-appearance order (the published ranges
    repeat their joints, e.g. ``0.01`` ends ``0.001:0.0002:0.01`` and starts the next)."""
    out: list[float] = []
    seen: set[float] = set()
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def product_grid(**axes: Sequence) -> list[dict]:
    """Every combination of the axes as parameter dicts, the first axis outermost."""
    rows: list[dict] = [{}]
    for k, values in axes.items():
        rows = [{**r, k: v} for r in rows for v in values]
    return rows


#: the benchmark's fine values 0.001 .. 1 (Sec. 4): STM's lambda and the regeneration mu
BENCHMARK_FINE: tuple[float, ...] = tuple(
    matlab_range(0.001, 0.009, 0.001) + matlab_range(0.01, 0.09, 0.01) + matlab_range(0.1, 1, 0.1)
)


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class MethodSpec:
    """One registry name of a DA estimator class and what the registry knows about it.

    Parameters
    ----------
    name : str
        Registry name: the paper abbreviation in lower case (``"tsrg"``, ``"drfs_t"``).
    grid : sequence of mapping, or callable
        The published search space in the constructor's parameter names (nested
        ``outer__inner`` keys reach a sub-estimator), in the papers' order; or
        ``grid(n_source, n_target) -> points`` when it depends on the data sizes. The
        default ``({},)`` is the default point only.
    axes : tuple of str, optional
        The parameter names the grid varies. Derived from the first point of a list grid;
        required with a callable grid.
    preset : mapping
        Constructor parameters this registry name fixes (``{"weighting": "kmm"}``: the
        IW-SVM with KMM weights); a caller cannot change them under this name.
    paper_names : mapping
        Constructor parameter name -> the name the papers use (``{"n_components": "k"}``);
        parameters not listed keep their name.
    """

    name: str
    grid: Sequence[Mapping[str, Any]] | SizedGrid = ({},)
    axes: tuple[str, ...] | None = None
    preset: Mapping[str, Any] = field(default_factory=dict)
    paper_names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"MethodSpec: a registry name is lower case, got {self.name!r}")
        if callable(self.grid):
            if self.axes is None:
                raise ValueError(
                    f"MethodSpec {self.name!r}: a grid that depends on the data sizes needs "
                    "its axes (the parameter names it varies)"
                )
        else:
            points = tuple(_frozen(p) for p in self.grid)
            if not points:
                raise ValueError(f"MethodSpec {self.name!r}: the grid holds no point")
            object.__setattr__(self, "grid", points)
            if self.axes is None:
                object.__setattr__(self, "axes", tuple(points[0]))
        object.__setattr__(self, "axes", tuple(self.axes))
        object.__setattr__(self, "preset", _frozen(self.preset))
        object.__setattr__(self, "paper_names", _frozen(self.paper_names))

    @property
    def sized(self) -> bool:
        """Whether the grid depends on the sizes of the two domains."""
        return callable(self.grid)

    def published_grid(self, n_source: int | None = None, n_target: int | None = None) -> list:
        """The published points as new dicts (changing them leaves the declaration alone).

        Raises
        ------
        ValueError
            A size-dependent grid without ``n_source`` and ``n_target``.
        """
        if callable(self.grid):
            if n_source is None or n_target is None:
                raise ValueError(
                    f"published_grid({self.name!r}) needs n_source and n_target (its grid "
                    f"{list(self.axes)} depends on the data sizes)"
                )
            return [dict(p) for p in self.grid(int(n_source), int(n_target))]
        return [dict(p) for p in self.grid]

    def paper_params(self, params: Mapping) -> dict:
        """``params`` with the papers' parameter names (others unchanged)."""
        return {self.paper_names.get(k, k): v for k, v in params.items()}
