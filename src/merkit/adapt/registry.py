"""The registry of DA methods, built from the declarations next to each method.

Every estimator class lists its registry names in ``method_specs``
(:class:`merkit.adapt.spec.MethodSpec`: name, fixed parameters, published grid, the
papers' parameter names); :func:`register` adds a class under those names and this module
registers merkit's methods in the benchmark's order. A new method is a class with a
``method_specs`` declaration, registered once (``register(MyMethod)``): the runner, the
grids (``--grid published`` / ``default``), the label-free selection and the report's
parameter names then know it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from merkit.adapt.base import DomainAdaptationClassifier, SVMBaseline
from merkit.adapt.regenerate import (
    DomainRegenerationLabelSpace,
    DomainRegenerationTarget,
    TargetSampleRegenerator,
)
from merkit.adapt.reweight import ImportanceWeightedSVM
from merkit.adapt.spec import MethodSpec
from merkit.adapt.stm import SelectiveTransferMachine
from merkit.adapt.subspace import (
    CorrelationAlignment,
    GeodesicFlowKernel,
    SubspaceAlignment,
    TransferComponentAnalysis,
    TransferKernelLearning,
)
from merkit.adapt.tgsr import TransferGroupSparseRegression

__all__ = [
    "FAMILIES",
    "METHODS",
    "default_point",
    "make_method",
    "method_family",
    "method_spec",
    "published_grid",
    "published_names",
    "register",
]

#: registry name (the paper abbreviation, lower case) -> estimator class
METHODS: dict[str, type[DomainAdaptationClassifier]] = {}


def register(cls: type[DomainAdaptationClassifier]) -> type[DomainAdaptationClassifier]:
    """Register ``cls`` under every name of its ``method_specs`` declaration.

    Raises
    ------
    ValueError
        The class declares no name, or a name belongs to another class.
    """
    specs = getattr(cls, "method_specs", ())
    if not specs:
        raise ValueError(f"{cls.__name__} declares no registry name (its method_specs is empty)")
    for spec in specs:
        taken = METHODS.get(spec.name, cls)
        if taken is not cls:
            raise ValueError(f"registry name {spec.name!r} already belongs to {taken.__name__}")
    for spec in specs:
        METHODS[spec.name] = cls
    return cls


for _cls in (
    SVMBaseline,
    ImportanceWeightedSVM,  # kmm, kliep, ulsif
    TransferComponentAnalysis,
    GeodesicFlowKernel,
    SubspaceAlignment,
    TransferKernelLearning,
    TargetSampleRegenerator,
    DomainRegenerationTarget,
    DomainRegenerationLabelSpace,
    TransferGroupSparseRegression,
    SelectiveTransferMachine,
    CorrelationAlignment,
):
    register(_cls)


#: method families (the label-free ensembles over families take one point of each, so
#: that near-identical methods of one family do not outvote the others): the plain SVM and
#: the instance reweighting methods; the feature subspace / alignment methods; the sample
#: and domain regenerators and TGSR (sparse regressions between the domains); STM
FAMILIES: dict[str, tuple[str, ...]] = {
    "reweighting": ("svm", "kmm", "kliep", "ulsif"),
    "subspace": ("sa", "gfk", "tca", "tkl", "coral"),
    "regenerator": ("tsrg", "drfs_t", "drls", "tgsr"),
    "stm": ("stm",),
}


def method_family(name: str) -> str:
    """The family of a method (:data:`FAMILIES`); a method of none (registered at run
    time) is a family of its own, named as the method."""
    key = str(name).strip().lower()
    for family, members in FAMILIES.items():
        if key in members:
            return family
    return key


def _key(name: str) -> str:
    key = str(name).strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return key


def method_spec(name: str) -> MethodSpec:
    """The declaration of a registry name (case-insensitive).

    Raises
    ------
    ValueError
        Unknown name, or a class registered under a name its ``method_specs`` lacks.
    """
    key = _key(name)
    cls = METHODS[key]
    for spec in cls.method_specs:
        if spec.name == key:
            return spec
    raise ValueError(
        f"{cls.__name__} is registered as {key!r} but declares no MethodSpec of that name "
        f"(it declares {[s.name for s in cls.method_specs]})"
    )


def make_method(
    name: str, params: Mapping | str | None = None, **kwargs
) -> DomainAdaptationClassifier:
    """Build a registered method with the given hyper-parameters.

    Parameters
    ----------
    name : str
        Registry name (case-insensitive), e.g. ``"svm"``.
    params : mapping or JSON str, optional
        Hyper-parameters; nested ``outer__inner`` keys set a sub-estimator's parameter
        (``make_method("ulsif", {"weighting__lam": 100})`` is
        ``ImportanceWeightedSVM(weighting=ULSIF(lam=100))``).
    **kwargs
        More hyper-parameters (merged with ``params``).

    Raises
    ------
    ValueError
        Unknown name (the known names are listed), a parameter the method does not have
        (its parameters are listed), or a parameter the registry name fixes.
    """
    spec = method_spec(name)
    p = {**(json.loads(params) if isinstance(params, str) else dict(params or {})), **kwargs}
    cls = METHODS[spec.name]
    valid = cls._get_param_names()
    bad = sorted({k.split("__", 1)[0] for k in p} - set(valid))
    if bad:
        raise ValueError(
            f"method {spec.name!r} ({cls.__name__}) has no parameter(s) {bad}; "
            f"its parameters are {list(valid)}"
        )
    flat = {k: v for k, v in p.items() if "__" not in k}
    nested = {k: v for k, v in p.items() if "__" in k}
    clash = sorted(set(spec.preset) & set(flat))
    if clash:
        raise ValueError(
            f"method {spec.name!r} fixes {clash}; use another registry name to change it"
        )
    est = cls(**{**spec.preset, **flat})
    if nested:
        est.set_params(**nested)
    return est


def published_grid(
    method: str, n_source: int | None = None, n_target: int | None = None
) -> list[dict]:
    """The published search space of a registry method as a list of parameter dicts.

    Values are rounded to 10 decimals and the duplicates that the published ranges produce
    are kept once, in first-appearance order (:mod:`merkit.adapt.spec`).

    Parameters
    ----------
    method : str
        Registry name (case-insensitive).
    n_source, n_target : int, optional
        Sizes of the two domains; required for a grid that depends on them (the subspace
        dimension ``k = 1 .. kmax`` of TCA, GFK and SA).

    Raises
    ------
    ValueError
        Unknown method, or missing sizes for a size-dependent grid.
    """
    key = str(method).strip().lower()
    if key not in METHODS:
        raise ValueError(f"no published grid for {method!r}; known: {', '.join(sorted(METHODS))}")
    return method_spec(key).published_grid(n_source, n_target)


def default_point(method: str) -> dict:
    """The documented default point of a registry method in the coordinates of its grid:
    the class's default of every grid parameter (``{"kappa": 85, "xi": 0.01}`` of TGSR,
    ``{}`` for a method without a searched parameter)."""
    spec = method_spec(method)
    params = make_method(spec.name).get_params(deep=True)
    return {k: params[k] for k in spec.axes}


def published_names(method: str, params: Mapping | str) -> dict:
    """Hyper-parameters renamed to the papers' names (``{"n_components": 24}`` of TCA ->
    ``{"k": 24}``; uLSIF ``weighting__lam`` -> ``lambda``); other names, and the
    parameters of a method the registry does not know, are kept."""
    p = json.loads(params) if isinstance(params, str) else dict(params)
    key = str(method).strip().lower()
    if key not in METHODS:
        return p
    return method_spec(key).paper_params(p)
