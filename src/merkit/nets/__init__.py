"""PyTorch networks for micro-expression recognition, built by registry name.

>>> from merkit.nets import create_model, count_parameters
>>> count_parameters(create_model("ststnet"))
1683

Inputs (float32, channel first):

=====================  ===========================  =====================================
name                   input                        module
=====================  ===========================  =====================================
``ststnet``            flow ``[B, 3, 28, 28]``      :class:`~merkit.nets.apexnets.STSTNet`
``off_apexnet``        flow ``[B, >=2, 28, 28]``    :class:`~merkit.nets.apexnets.OffApexNet`
``dual_inception``     flow ``[B, >=2, 28, 28]``    :class:`~merkit.nets.fr.DualInception`
``basic_inception``    flow ``[B, >=2, 28, 28]``    :class:`~merkit.nets.fr.BasicInception`
``fr``                 flow ``[B, >=2, 28, 28]``    :class:`~merkit.nets.fr.FeatureRefinement`
``fr_fc``              flow ``[B, >=2, 28, 28]``    FR without attention (ablation)
``fr_concat``          flow ``[B, >=2, 28, 28]``    FR with concatenation fusion (ablation)
``rcn_a``              flow ``[B, 3, H, W]``        :class:`~merkit.nets.rcn.RCNA`
``htnet``              flow ``[B, 3, 28, 28]``      :class:`~merkit.nets.htnet.HTNet`
``frl_dgt``            flow ``[B, >=2, H, W]``      :class:`~merkit.nets.frl_dgt.FRLDGT`
``r3d``                clip ``[B, C, T, H, W]``     :class:`~merkit.nets.video3d.R3D`
``i3d``                clip ``[B, C, T, H, W]``     :class:`~merkit.nets.video3d.I3DLite`
``mersiam``            flowseq ``[B, 3, T, H, W]``  :class:`~merkit.nets.mersiam.MERSiam`
=====================  ===========================  =====================================

Flow channels are (u, v, strain) unless a model's docstring says otherwise. Every model
returns logits ``[B, num_classes]`` except the FR family, which returns a dict with
``"logits"`` and defines ``loss(outputs, targets, weight=None)`` (see
:mod:`merkit.nets.train`). Every model has ``features(x)``: the penultimate features
``[B, d]`` its last linear layer classifies (:func:`merkit.nets.train.embed`).
Multi-label (AU) training wraps a model in :class:`merkit.nets.multilabel.MultiLabelNet`.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
from torch import nn

from merkit.nets.apexnets import OffApexNet, STSTNet
from merkit.nets.fr import BasicInception, DualInception, FeatureRefinement
from merkit.nets.frl_dgt import FRLDGT
from merkit.nets.htnet import HTNet
from merkit.nets.mersiam import MERSiam
from merkit.nets.rcn import RCNA
from merkit.nets.video3d import R3D, I3DLite

__all__ = [
    "MODELS",
    "check_model_kwargs",
    "count_parameters",
    "create_model",
    "input_kind",
    "model_arguments",
    "network_class",
    "training_preset",
]

#: registry name -> constructor (keyword arguments are passed through)
MODELS: dict[str, Callable[..., nn.Module]] = {
    "ststnet": STSTNet,
    "off_apexnet": OffApexNet,
    "dual_inception": DualInception,
    "basic_inception": BasicInception,
    "fr": FeatureRefinement,
    "fr_fc": partial(FeatureRefinement, attention=False),
    "fr_concat": partial(FeatureRefinement, fusion="concat"),
    "rcn_a": RCNA,
    "htnet": HTNet,
    "frl_dgt": FRLDGT,
    "r3d": R3D,
    "i3d": I3DLite,
    "mersiam": MERSiam,
}


def network_class(name: str) -> type[nn.Module]:
    """The class a registry name builds (through an ablation's ``partial``).

    A network declares what it needs next to its code, as class attributes read here:
    ``input_kind`` ("flow" 4-D images, the default, "clip" 5-D videos, or "flowseq" 5-D
    sequences of flow maps ``[B, 3, T, H, W]``) and
    ``training_preset`` (its authors' :data:`merkit.nets.train.PRESETS` entry; None, the
    default, trains with FR's setting for the protocol).

    Raises
    ------
    KeyError
        Unknown name (the message lists the registered ones).
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None
    return builder.func if isinstance(builder, partial) else builder


def training_preset(name: str) -> str | None:
    """The network's own training preset (e.g. ``"ststnet"``), None for FR's settings."""
    return getattr(network_class(name), "training_preset", None)


def input_kind(name: str) -> str:
    """What the network takes: ``"flow"`` (4-D images), ``"clip"`` (5-D videos) or
    ``"flowseq"`` (5-D sequences of flow maps)."""
    return getattr(network_class(name), "input_kind", "flow")


def _type_name(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def _article(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _fits(value: Any, hint: Any) -> bool:
    """Whether a (JSON-like) value fits a constructor annotation (lists stand for tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None) or hint is None:
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
            value, bool
        )
    if origin is tuple or hint is tuple:
        if not isinstance(value, (tuple, list)):
            return False
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_fits(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            _fits(v, a) for v, a in zip(value, args, strict=True)
        )
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # an annotation not checked here


def model_arguments(name: str) -> dict[str, Any]:
    """Keyword arguments of a registered network's constructor and their annotations.

    Raises
    ------
    KeyError
        Unknown name (the message lists the registered ones).
    """
    cls = network_class(name)
    builder = MODELS[name]
    hints = typing.get_type_hints(cls.__init__)
    params = inspect.signature(builder).parameters.values()
    return {
        p.name: hints.get(p.name, Any)
        for p in params
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Check keyword arguments against a registered network's constructor.

    Lists may stand for tuples (JSON has no tuples); an int fits a float.

    Raises
    ------
    KeyError
        Unknown model name.
    ValueError
        An argument the constructor does not take, or a value of the wrong type; the
        one-line message names the model, the argument and the expected type.
    """
    known = model_arguments(name)
    for key, value in kwargs.items():
        if key not in known:
            raise ValueError(
                f"model {name!r} takes no argument {key!r}; its arguments: "
                f"{', '.join(f'{k} ({_type_name(h)})' for k, h in known.items())}"
            )
        if not _fits(value, known[key]):
            raise ValueError(
                f"model {name!r}: argument {key}={value!r} ({_article(type(value).__name__)}) "
                f"does not match the expected type {_type_name(known[key])}"
            )


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the network registered under ``name`` (e.g. ``create_model("fr", num_classes=3)``).

    The keyword arguments are checked first (:func:`check_model_kwargs`).

    Raises
    ------
    KeyError
        Unknown name (the message lists the registered ones).
    ValueError
        An unknown argument, a value of the wrong type, or values the network cannot be
        built with (e.g. ``dropout=1.5``).
    """
    check_model_kwargs(name, kwargs)
    try:
        return MODELS[name](**kwargs)
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError) as err:
        reason = (str(err).strip().splitlines() or [""])[0] or type(err).__name__
        raise ValueError(f"model {name!r} cannot be built with {dict(kwargs)}: {reason}") from err


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, weights and biases; BatchNorm buffers excluded."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
