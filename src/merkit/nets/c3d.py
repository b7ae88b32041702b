"""C3D (Tran et al. 2015, doi:10.1109/ICCV.2015.510) as an ``nn.Module``.

The layers, the pooling (``pool5`` padded (0, 1, 1)) and the forward pass are those of
:mod:`merkit.features.c3d` (one implementation): this module holds them as parameters
with the key layout of the shared Sports-1M conversion (``conv1.weight`` ... ``fc8.bias``),
so that ``C3D().load_state_dict(read_state_dict(path))`` reads such a file and
``count_parameters`` gives the paper's network size. It is not in ``MODELS``: C3D is used
as a fixed, pretrained feature extractor (the ``c3d`` descriptor), not trained on
micro-expression sets (80 M parameters for a few hundred clips).
"""

from __future__ import annotations

import torch
from torch import nn

from merkit.features import c3d as _c3d

__all__ = ["C3D"]


class C3D(nn.Module):
    """C3D: 8 convolutions, 5 poolings, fc6, fc7 (4096) and fc8 (``num_classes``).

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc8`` (487 for Sports-1M).

    Input ``[B, 3, 16, 112, 112]`` (RGB, 0..255); output logits ``[B, num_classes]``. A
    pretrained extractor: no dropout layers (they only act in training).
    """

    input_kind = "clip"

    def __init__(self, num_classes: int = 487) -> None:
        super().__init__()
        for name, cin, cout in _c3d.CONVS:
            self.add_module(name, nn.Conv3d(cin, cout, kernel_size=3, padding=1))
        for name, cin, cout in _c3d.FCS:
            self.add_module(name, nn.Linear(cin, num_classes if name == "fc8" else cout))

    def _weights(self) -> dict[str, torch.Tensor]:
        return dict(self.named_parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores ``[B, num_classes]`` (inference: the training dropout of fc6 and fc7
        is not applied)."""
        return _c3d.forward(self._weights(), x, "fc8")

    def features(self, x: torch.Tensor, layer: str = "fc7") -> torch.Tensor:
        """``fc6`` or ``fc7`` activations (after ReLU) ``[B, 4096]``, no dropout."""
        if layer not in _c3d.FEATURE_LAYERS:
            raise ValueError(f"C3D feature layer {layer!r}: expected fc6 or fc7")
        return _c3d.forward(self._weights(), x, layer)
