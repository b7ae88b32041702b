"""3-D CNNs on whole clips ``[B, C, T, H, W]`` (e.g. 16 TIM-interpolated frames).

* :class:`R3D` (``r3d``): ResNet-18-style 3-D network (Hara, Kataoka & Satoh, CVPR 2018,
  doi:10.1109/CVPR.2018.00685; the "R3D-18" of Tran et al., CVPR 2018): stem
  ``conv 3x7x7, stride (1, 2, 2)``, four stages of two :class:`BasicBlock3d` (64, 128,
  256, 512 channels; stride 2 from stage 2), global average pooling, FC. 33.2 M
  parameters at the default width; ``width`` scales every stage for small data.
* :class:`I3DLite` (``i3d``): a small Inception-3D network in the spirit of I3D
  (Carreira & Zisserman, CVPR 2017): stem ``conv 7x7x7 / 2 -> pool (1,3,3)/(1,2,2)
  -> 1x1x1 -> 3x3x3 -> pool``, two stages of two :class:`Inception3d` blocks with a
  3x3x3 max-pool between them, global average pooling, dropout, FC. Trained from scratch
  (merkit ships no Kinetics weights), with a quarter of I3D's channels by default.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from merkit.nets.apexnets import check_input
from merkit.nets.blocks import BasicBlock3d, Inception3d, conv3d_bn_relu

__all__ = ["I3DLite", "R3D"]


class R3D(nn.Module):
    """ResNet-18-style 3-D CNN.

    Parameters
    ----------
    num_classes : int
    in_channels : int
        3 for RGB, 1 for grey clips, 2 or 3 for flow clips.
    width : int
        Channels of the first stage (64 = R3D-18); stages use width x (1, 2, 4, 8).
    layers : tuple of int
        Blocks per stage ((2, 2, 2, 2) = 18 layers).
    dropout : float
        Dropout before the classifier.

    Shapes
    ------
    ``[B, in_channels, T, H, W] -> logits [B, num_classes]`` (any T, H, W >= 1; designed
    for T = 16, H = W = 112).
    """

    #: takes video clips ``[B, C, T, H, W]`` (flow networks take flow images)
    input_kind: ClassVar[str] = "clip"

    def __init__(
        self, num_classes: int = 3, in_channels: int = 3, *, width: int = 64,
        layers: tuple[int, int, int, int] = (2, 2, 2, 2), dropout: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            nn.Conv3d(
                in_channels, width, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False
            ),  # fmt: skip
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(layers):
            cout = width * 2**i
            blocks = [BasicBlock3d(cin, cout, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock3d(cout, cout) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, 8 * width]`` (globally pooled last stage)."""
        check_input(x, ndim=5, min_channels=self.in_channels, name="R3D")
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


class I3DLite(nn.Module):
    """Small Inception-3D network (I3D layout, ``width`` x I3D's channels).

    Parameters
    ----------
    num_classes : int
    in_channels : int
    width : float
        Channel multiplier relative to I3D (1.0 = I3D's 64/192/Mixed_3b.. channels).
    dropout : float

    Shapes
    ------
    ``[B, in_channels, T, H, W] -> logits [B, num_classes]`` (T, H, W >= 1).
    """

    #: takes video clips ``[B, C, T, H, W]`` (flow networks take flow images)
    input_kind: ClassVar[str] = "clip"

    def __init__(
        self, num_classes: int = 3, in_channels: int = 3, *, width: float = 0.25,
        dropout: float = 0.5,
    ) -> None:  # fmt: skip
        super().__init__()
        self.in_channels = in_channels

        def c(n: int) -> int:
            return max(1, round(n * width))

        self.stem = nn.Sequential(
            conv3d_bn_relu(in_channels, c(64), 7, stride=2, padding=3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            conv3d_bn_relu(c(64), c(64), 1),
            conv3d_bn_relu(c(64), c(192), 3, padding=1),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        # Mixed_3b, Mixed_3c, pool, Mixed_4b, Mixed_4c of I3D
        m3b = Inception3d(c(192), c(64), c(96), c(128), c(16), c(32), c(32))
        m3c = Inception3d(m3b.out_channels, c(128), c(128), c(192), c(32), c(96), c(64))
        m4b = Inception3d(m3c.out_channels, c(192), c(96), c(208), c(16), c(48), c(64))
        m4c = Inception3d(m4b.out_channels, c(160), c(112), c(224), c(24), c(64), c(64))
        self.mixed = nn.Sequential(m3b, m3c, nn.MaxPool3d(3, stride=2, padding=1), m4b, m4c)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(m4c.out_channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, C]`` (globally pooled Mixed_4c maps)."""
        check_input(x, ndim=5, min_channels=self.in_channels, name="I3DLite")
        return torch.flatten(self.pool(self.mixed(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))
