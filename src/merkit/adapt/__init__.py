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

__all__ = [
    "MASKED_LABEL",
    "METHODS",
    "DomainAdaptationClassifier",
    "SVMBaseline",
    "check_da_inputs",
    "make_method",
    "split_source_target",
]

#: registry name (the paper abbreviation, lower case) -> estimator class
METHODS: dict[str, type] = {
    "svm": SVMBaseline,
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
    return cls(**params)
