"""Domain-adaptation estimators for CDMER and the registry that names them.

Every method follows :mod:`merkit.adapt.base`: ``fit(X, y, sample_domain)`` with
target rows labelled ``-1``, then ``predict(X)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from merkit.adapt.base import (
    MASKED_LABEL,
    DomainAdaptationClassifier,
    SVMBaseline,
    check_da_inputs,
    split_source_target,
)
from merkit.adapt.regenerate import (
    DomainRegenerationLabelSpace,
    DomainRegenerationTarget,
    TargetSampleRegenerator,
)
from merkit.adapt.reweight import KLIEP, KMM, ULSIF, WEIGHTINGS, ImportanceWeightedSVM
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
    "KLIEP",
    "KMM",
    "MASKED_LABEL",
    "METHODS",
    "PRESETS",
    "ULSIF",
    "DomainAdaptationClassifier",
    "DomainRegenerationLabelSpace",
    "DomainRegenerationTarget",
    "GeodesicFlowKernel",
    "CorrelationAlignment",
    "ImportanceWeightedSVM",
    "SVMBaseline",
    "SelectiveTransferMachine",
    "SubspaceAlignment",
    "TargetSampleRegenerator",
    "TransferComponentAnalysis",
    "TransferGroupSparseRegression",
    "TransferKernelLearning",
    "check_da_inputs",
    "make_method",
    "split_source_target",
]

#: registry name (the paper abbreviation, lower case) -> estimator class
METHODS: dict[str, type] = {
    "svm": SVMBaseline,
    "kmm": ImportanceWeightedSVM,
    "kliep": ImportanceWeightedSVM,
    "ulsif": ImportanceWeightedSVM,
    "tca": TransferComponentAnalysis,
    "gfk": GeodesicFlowKernel,
    "sa": SubspaceAlignment,
    "tkl": TransferKernelLearning,
    "tsrg": TargetSampleRegenerator,
    "drfs_t": DomainRegenerationTarget,
    "drls": DomainRegenerationLabelSpace,
    "tgsr": TransferGroupSparseRegression,
    "stm": SelectiveTransferMachine,
    "coral": CorrelationAlignment,
}

#: fixed constructor parameters of a registry name (IW-SVM with a given weighting)
PRESETS: dict[str, dict] = {
    "kmm": {"weighting": "kmm"},
    "kliep": {"weighting": "kliep"},
    "ulsif": {"weighting": "ulsif"},
}


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
        (a preset weighting name becomes its estimator first, so
        ``make_method("ulsif", {"weighting__lam": 100})`` is
        ``ImportanceWeightedSVM(weighting=ULSIF(lam=100))``).
    **kwargs
        More hyper-parameters (merged with ``params``).

    Raises
    ------
    ValueError
        Unknown name (the known names are listed), a parameter the method does not have
        (its parameters are listed), or a parameter the registry name fixes.
    """
    key = str(name).strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    p = {**(json.loads(params) if isinstance(params, str) else dict(params or {})), **kwargs}
    cls = METHODS[key]
    valid = cls._get_param_names()
    bad = sorted({k.split("__", 1)[0] for k in p} - set(valid))
    if bad:
        raise ValueError(
            f"method {key!r} ({cls.__name__}) has no parameter(s) {bad}; "
            f"its parameters are {list(valid)}"
        )
    preset = PRESETS.get(key, {})
    flat = {k: v for k, v in p.items() if "__" not in k}
    nested = {k: v for k, v in p.items() if "__" in k}
    clash = sorted(set(preset) & set(flat))
    if clash:
        raise ValueError(f"method {key!r} fixes {clash}; use another registry name to change it")
    init = {**preset, **flat}
    for outer in {k.split("__", 1)[0] for k in nested}:
        if outer == "weighting" and isinstance(init.get(outer), str):
            init[outer] = WEIGHTINGS[init[outer]]()
    est = cls(**init)
    if nested:
        est.set_params(**nested)
    return est
