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
``r3d``                clip ``[B, C, T, H, W]``     :class:`~merkit.nets.video3d.R3D`
``i3d``                clip ``[B, C, T, H, W]``     :class:`~merkit.nets.video3d.I3DLite`
=====================  ===========================  =====================================

Flow channels are (u, v, strain) unless a model's docstring says otherwise. Every model
returns logits ``[B, num_classes]`` except the FR family, which returns a dict with
``"logits"`` and defines ``loss(outputs, targets, weight=None)`` (see
:mod:`merkit.nets.train`). Every model has ``features(x)``: the penultimate features
``[B, d]`` its last linear layer classifies (:func:`merkit.nets.train.embed`).
Multi-label (AU) training wraps a model in :class:`merkit.nets.multilabel.MultiLabelNet`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from merkit.nets.apexnets import OffApexNet, STSTNet
from merkit.nets.fr import BasicInception, DualInception, FeatureRefinement
from merkit.nets.rcn import RCNA
from merkit.nets.video3d import R3D, I3DLite

__all__ = ["INPUT_KIND", "MODELS", "count_parameters", "create_model"]

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
    "r3d": R3D,
    "i3d": I3DLite,
}

#: registry name -> "flow" (4-D images) or "clip" (5-D videos)
INPUT_KIND: dict[str, str] = {
    name: ("clip" if name in ("r3d", "i3d") else "flow") for name in MODELS
}


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the network registered under ``name`` (e.g. ``create_model("fr", num_classes=3)``).

    Raises
    ------
    KeyError
        Unknown name (the message lists the registered ones).
    """
    try:
        builder = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}") from None
    return builder(**kwargs)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, weights and biases; BatchNorm buffers excluded."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
