"""Building blocks shared by the merkit networks.

* :class:`Inception2d` - the Inception-V1 block (Szegedy et al., CVPR 2015,
  doi:10.1109/CVPR.2015.7298594) used by Dual-Inception and FR.
* :class:`Inception3d` - its 3-D counterpart (the "Inc." block of I3D, Carreira &
  Zisserman, CVPR 2017, doi:10.1109/CVPR.2017.502).
* :class:`BasicBlock3d` - the two-convolution residual block of 3-D ResNet-18
  (Hara et al., CVPR 2018, doi:10.1109/CVPR.2018.00685; Tran et al., CVPR 2018).
* :func:`mlp_head` - ``Linear -> ReLU -> Dropout -> ... -> Linear`` classifier heads.

All blocks take channel-first tensors: images ``[B, C, H, W]``, clips ``[B, C, T, H, W]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = [
    "BasicBlock3d",
    "Inception2d",
    "Inception3d",
    "conv3d_bn_relu",
    "logits_of",
    "mlp_head",
]


class Inception2d(nn.Module):
    """Inception-V1 block with four parallel branches, concatenated on channels.

    Branches: 1x1 conv; 1x1 reduce -> 3x3 conv; 1x1 reduce -> 5x5 conv;
    3x3 max-pool (stride 1) -> 1x1 projection. Every convolution is followed by ReLU
    and keeps the spatial size ("same" padding).

    Parameters
    ----------
    in_channels : int
        Input channels.
    filters : int
        Filters of every branch (and of the reduce / projection convolutions); the
        output has ``4 * filters`` channels.
    reduce : bool
        Use the 1x1 reduce convolutions before the 3x3 and 5x5 convolutions (V1 default).

    Shapes
    ------
    ``[B, in_channels, H, W] -> [B, 4 * filters, H, W]``
    """

    def __init__(self, in_channels: int, filters: int, *, reduce: bool = True) -> None:
        super().__init__()
        if in_channels < 1 or filters < 1:
            raise ValueError(
                f"Inception2d needs in_channels >= 1 and filters >= 1, got {in_channels}, {filters}"
            )
        f = filters

        def conv(cin: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, f, k, padding=k // 2), nn.ReLU(inplace=True))

        self.branch1 = conv(in_channels, 1)
        if reduce:
            self.branch3 = nn.Sequential(conv(in_channels, 1), conv(f, 3))
            self.branch5 = nn.Sequential(conv(in_channels, 1), conv(f, 5))
        else:
            self.branch3 = conv(in_channels, 3)
            self.branch5 = conv(in_channels, 5)
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv(in_channels, 1))
        self.out_channels = 4 * f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


def conv3d_bn_relu(
    cin: int,
    cout: int,
    kernel: int | tuple[int, int, int],
    stride: int | tuple[int, int, int] = 1,
    padding: int | tuple[int, int, int] = 0,
) -> nn.Sequential:
    """``Conv3d (no bias) -> BatchNorm3d -> ReLU``."""
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class Inception3d(nn.Module):
    """I3D Inception block: 1x1x1 | 1x1x1 -> 3x3x3 | 1x1x1 -> 3x3x3 | pool -> 1x1x1.

    As in I3D, the "5x5" branch uses a 3x3x3 kernel. Every convolution is
    Conv3d + BatchNorm3d + ReLU.

    Parameters
    ----------
    in_channels : int
    out1, red3, out3, red5, out5, pool_proj : int
        Channels of the branches (GoogLeNet naming).

    Shapes
    ------
    ``[B, in_channels, T, H, W] -> [B, out1 + out3 + out5 + pool_proj, T, H, W]``
    """

    def __init__(
        self, in_channels: int, out1: int, red3: int, out3: int, red5: int, out5: int,
        pool_proj: int,
    ) -> None:  # fmt: skip
        super().__init__()
        self.branch1 = conv3d_bn_relu(in_channels, out1, 1)
        self.branch3 = nn.Sequential(
            conv3d_bn_relu(in_channels, red3, 1), conv3d_bn_relu(red3, out3, 3, padding=1)
        )
        self.branch5 = nn.Sequential(
            conv3d_bn_relu(in_channels, red5, 1), conv3d_bn_relu(red5, out5, 3, padding=1)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool3d(3, stride=1, padding=1), conv3d_bn_relu(in_channels, pool_proj, 1)
        )
        self.out_channels = out1 + out3 + out5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


class BasicBlock3d(nn.Module):
    """3-D residual basic block: two 3x3x3 convolutions with BatchNorm and a shortcut.

    Shapes
    ------
    ``[B, in_channels, T, H, W] -> [B, channels, ceil(T/s), ceil(H/s), ceil(W/s)]``
    with ``s = stride``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm3d(channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def mlp_head(
    in_features: int, hidden: Sequence[int], out_features: int, *, dropout: float = 0.5
) -> nn.Sequential:
    """``Linear -> ReLU -> Dropout`` for every hidden size, then ``Linear`` to the output.

    Shapes
    ------
    ``[B, in_features] -> [B, out_features]``
    """
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    cin = in_features
    for h in hidden:
        layers += [nn.Linear(cin, int(h)), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        cin = int(h)
    layers.append(nn.Linear(cin, out_features))
    return nn.Sequential(*layers)


def logits_of(outputs: torch.Tensor | Mapping) -> torch.Tensor:
    """Logits from a model output (tensor, or dict with ``"logits"``)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping) and "logits" in outputs:
        return outputs["logits"]
    raise TypeError(
        f"model output must be a logits tensor or a dict with 'logits', got {type(outputs)}"
    )
