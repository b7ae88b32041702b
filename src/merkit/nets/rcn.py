"""RCN-A: recurrent convolutional network with a parameter-free attention unit (Xia,
Peng, Hong, Zhao, "Revealing the invisible with model and data shrinking for
composite-database micro-expression recognition", IEEE TIP 29, 2020,
doi:10.1109/TIP.2020.3018222).

Architecture (as in the authors' released PyTorch code, model version 3, the default of
their training script: ``featuremaps=64, num_layers=1, pool_size=7``; SGD lr 5e-4,
momentum 0.9, batch 64, 100 epochs, step decay x0.5 every 10 epochs):

1. ``conv 5x5 (no padding) -> BN -> ReLU -> max-pool 2 -> dropout 0.5``;
2. ``num_layers`` recurrent convolutional layers (RCL, Liang & Hu, CVPR 2015): a
   feed-forward ``1x1 conv -> BN -> ReLU`` and ONE recurrent ``3x3 conv -> BN -> ReLU``
   unrolled twice, ``y = r(x + f(x)); y = r(x + y)``, then max-pool 2 and dropout 0.5;
3. adaptive average pooling to ``pool_size x pool_size``;
4. attention unit without parameters: a class activation map is computed from the
   classifier's own weights (reshaped to ``[K, C, p, p]``) on the pooled step-1 maps,
   ``cam_k = mean_c(W_k * l)``, min-max normalised per sample, averaged over the K
   classes, and multiplies the pooled step-3 maps;
5. one linear classifier ``C p^2 -> K``.

What is uncertain: the input the authors fed (their data "version 66": a 3-channel
optical-flow image whose exact channels and size are not documented in the code); the
paper's other variants (RCN-S/W/P/C/F) are not implemented here.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from merkit.nets.apexnets import check_input

__all__ = ["RCNA", "RecurrentConvLayer"]


class RecurrentConvLayer(nn.Module):
    """RCL with two unrolled steps of one shared 3x3 convolution, then pool 2 + dropout.

    Shapes
    ------
    ``[B, C, H, W] -> [B, C, H // 2, W // 2]``
    """

    def __init__(self, channels: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.feedforward = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.recurrent = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.down = nn.Sequential(nn.MaxPool2d(2, 2), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.recurrent(x + self.feedforward(x))
        y = self.recurrent(x + y)
        return self.down(y)


class RCNA(nn.Module):
    """RCN-A (registry name ``rcn_a``).

    Parameters
    ----------
    num_classes : int
    in_channels : int
        3 for (u, v, strain) flow images.
    featuremaps : int
        Channels of every layer (authors: 64).
    num_layers : int
        Number of RCLs (authors: 1).
    pool_size : int
        Side of the pooled maps (authors: 7).
    dropout : float

    Shapes
    ------
    ``[B, in_channels, H, W] -> logits [B, num_classes]`` for H, W >= 8 (28 x 28 flow
    images work; the pooled maps are resampled to ``pool_size``).
    """

    #: trains with its authors' setting, :data:`merkit.nets.train.PRESETS` ``'rcn_a'``
    training_preset: ClassVar[str | None] = "rcn_a"

    def __init__(
        self, num_classes: int = 3, in_channels: int = 3, *, featuremaps: int = 64,
        num_layers: int = 1, pool_size: int = 7, dropout: float = 0.5,
    ) -> None:  # fmt: skip
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.featuremaps = featuremaps
        self.pool_size = pool_size
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, featuremaps, 5),
            nn.BatchNorm2d(featuremaps),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Dropout(dropout),
        )
        self.rcls = nn.Sequential(
            *(RecurrentConvLayer(featuremaps, dropout) for _ in range(num_layers))
        )
        self.classifier = nn.Linear(pool_size * pool_size * featuremaps, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def attention_map(self, low: torch.Tensor) -> torch.Tensor:
        """Parameter-free attention ``[B, 1, p, p]`` from pooled stem maps ``[B, C, p, p]``."""
        w = self.classifier.weight.view(self.num_classes, self.featuremaps, self.pool_size,
                                        self.pool_size)  # fmt: skip
        cam = (w.unsqueeze(0) * low.unsqueeze(1)).mean(dim=2)  # [B, K, p, p]
        flat = cam.flatten(2)
        flat = flat - flat.amin(dim=2, keepdim=True)
        flat = flat / flat.amax(dim=2, keepdim=True).clamp_min(1e-12)
        return flat.view_as(cam).mean(dim=1, keepdim=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, featuremaps * pool_size ** 2]`` (attended pooled maps)."""
        check_input(x, ndim=4, min_channels=self.in_channels, name="RCNA")
        x = self.stem(x)
        att = self.attention_map(F.adaptive_avg_pool2d(x, self.pool_size))
        x = F.adaptive_avg_pool2d(self.rcls(x), self.pool_size) * att
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
