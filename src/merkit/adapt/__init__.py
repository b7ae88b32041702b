"""Domain-adaptation estimators for CDMER and the registry that names them.

Every method follows :mod:`merkit.adapt.base`: ``fit(X, y, sample_domain)`` with
target rows labelled ``-1``, then ``predict(X)``.
"""

from __future__ import annotations

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
from merkit.adapt.reweight import KLIEP, KMM, ULSIF, ImportanceWeightedSVM
from merkit.adapt.subspace import (
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
    "ImportanceWeightedSVM",
    "SVMBaseline",
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
}

#: fixed constructor parameters of a registry name (IW-SVM with a given weighting)
PRESETS: dict[str, dict] = {
    "kmm": {"weighting": "kmm"},
    "kliep": {"weighting": "kliep"},
    "ulsif": {"weighting": "ulsif"},
}


def make_method(name: str, **params) -> DomainAdaptationClassifier:
    """Build a registered method with the given hyper-parameters.

    Parameters
    ----------
    name : str
        Registry name (case-insensitive), e.g. ``"svm"``.
    **params
        Constructor parameters of the method.

    Raises
    ------
    ValueError
        Unknown name (the known names are listed) or a parameter the method does not
        have (its parameters are listed).
    """
    key = str(name).strip().lower()
    if key not in METHODS:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    cls = METHODS[key]
    valid = cls._get_param_names()
    bad = sorted(set(params) - set(valid))
    if bad:
        raise ValueError(
            f"method {key!r} ({cls.__name__}) has no parameter(s) {bad}; "
            f"its parameters are {list(valid)}"
        )
    preset = PRESETS.get(key, {})
    clash = sorted(set(preset) & set(params))
    if clash:
        raise ValueError(f"method {key!r} fixes {clash}; use another registry name to change it")
    return cls(**preset, **params)
