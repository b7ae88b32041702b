"""Domain-adaptation estimators for CDMER and the registry that names them.

Every method follows :mod:`merkit.adapt.base`: ``fit(X, y, sample_domain)`` with
target rows labelled ``-1``, then ``predict(X)``; ``fit_path`` fits many hyper-parameter
points at once. Each class declares its registry names, published grid and the papers'
parameter names (:class:`merkit.adapt.spec.MethodSpec`) and :mod:`merkit.adapt.registry`
builds :data:`METHODS` from those declarations.
"""

from __future__ import annotations

from merkit.adapt.base import (
    MASKED_LABEL,
    DomainAdaptationClassifier,
    PathFit,
    SVMBaseline,
    check_da_inputs,
    split_source_target,
)
from merkit.adapt.regenerate import (
    DomainRegenerationLabelSpace,
    DomainRegenerationTarget,
    TargetSampleRegenerator,
)
from merkit.adapt.registry import (
    METHODS,
    default_point,
    make_method,
    method_spec,
    published_grid,
    published_names,
    register,
)
from merkit.adapt.reweight import KLIEP, KMM, ULSIF, ImportanceWeightedSVM
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
    "KLIEP",
    "KMM",
    "MASKED_LABEL",
    "METHODS",
    "ULSIF",
    "CorrelationAlignment",
    "DomainAdaptationClassifier",
    "DomainRegenerationLabelSpace",
    "DomainRegenerationTarget",
    "GeodesicFlowKernel",
    "ImportanceWeightedSVM",
    "MethodSpec",
    "PathFit",
    "SVMBaseline",
    "SelectiveTransferMachine",
    "SubspaceAlignment",
    "TargetSampleRegenerator",
    "TransferComponentAnalysis",
    "TransferGroupSparseRegression",
    "TransferKernelLearning",
    "check_da_inputs",
    "default_point",
    "make_method",
    "method_spec",
    "published_grid",
    "published_names",
    "register",
    "split_source_target",
]
