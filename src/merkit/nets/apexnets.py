"""Shallow networks on onset->apex optical flow images: STSTNet and OFF-ApexNet.

Inputs are flow images ``[B, C, 28, 28]`` float32 (see :func:`merkit.video.flow.flow_image`
and :func:`merkit.nets.data.read_megc2019_flow`). Dual-Inception, the third network of
this family, lives in :mod:`merkit.nets.fr` with the FR ablations that share its backbone.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from merkit.nets.blocks import mlp_head

__all__ = ["OffApexNet", "STSTNet", "check_input"]


def check_input(x: torch.Tensor, *, ndim: int, min_channels: int, name: str) -> None:
    """Raise a ValueError naming the model when ``x`` is not ``ndim``-D with enough channels."""
    if x.ndim != ndim or x.shape[1] < min_channels:
        layout = "[B, C, H, W]" if ndim == 4 else "[B, C, T, H, W]"
        raise ValueError(
            f"{name} expects a {ndim}-D tensor {layout} with at least {min_channels} channels, "
            f"got shape {tuple(x.shape)}"
        )


class STSTNet(nn.Module):
    """Shallow Triple Stream Three-dimensional CNN (Liong et al., FG 2019,
    doi:10.1109/FG.2019.8756567).

    Three parallel convolutions (3, 5 and 8 filters, 3x3, padding 2) each see all three
    input channels, then ReLU -> BatchNorm -> 3x3 max-pool (stride 3, padding 1) ->
    dropout 0.5; the 16 maps are concatenated, 2x2 average-pooled and fed to one linear
    layer (400 -> classes). 1,683 trainable parameters for 3 classes.

    The module and parameter names (``conv1..3``, ``bn1..3``, ``fc``) are those of the
    authors' code, so their released state_dicts load with ``load_state_dict``. Those
    weights expect raw 0..255 inputs in the channel order (strain, v, u)
    (``load_flow_image(path, channels="svu")``).

    Parameters
    ----------
    num_classes : int
    in_channels : int
        3 for (u, v, strain) flow images.
    dropout : float

    Shapes
    ------
    ``[B, in_channels, 28, 28] -> logits [B, num_classes]`` (other sizes work when the
    pooled maps are 5x5, i.e. H = W in 26..31).
    """

    #: trains with its authors' setting, :data:`merkit.nets.train.PRESETS` ``'ststnet'``
    training_preset: ClassVar[str | None] = "ststnet"

    def __init__(self, num_classes: int = 3, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv1 = nn.Conv2d(in_channels, 3, kernel_size=3, padding=2)
        self.conv2 = nn.Conv2d(in_channels, 5, kernel_size=3, padding=2)
        self.conv3 = nn.Conv2d(in_channels, 8, kernel_size=3, padding=2)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(3)
        self.bn2 = nn.BatchNorm2d(5)
        self.bn3 = nn.BatchNorm2d(8)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(5 * 5 * 16, num_classes)

    def _stream(self, x: torch.Tensor, conv: nn.Conv2d, bn: nn.BatchNorm2d) -> torch.Tensor:
        return self.dropout(self.maxpool(bn(self.relu(conv(x)))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, 400]`` (the pooled maps the classifier sees)."""
        check_input(x, ndim=4, min_channels=self.in_channels, name="STSTNet")
        x = torch.cat(
            [
                self._stream(x, self.conv1, self.bn1),
                self._stream(x, self.conv2, self.bn2),
                self._stream(x, self.conv3, self.bn3),
            ],
            dim=1,
        )
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class _ApexStream(nn.Sequential):
    """conv 3x3 (6) -> ReLU -> max-pool 2 -> conv 3x3 (16) -> ReLU -> max-pool 2."""

    def __init__(self, filters: tuple[int, int] = (6, 16)) -> None:
        f1, f2 = filters
        super().__init__(
            nn.Conv2d(1, f1, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
            nn.Conv2d(f1, f2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        )  # fmt: skip


class OffApexNet(nn.Module):
    """OFF-ApexNet (Gan et al., Signal Processing: Image Communication 74, 2019,
    doi:10.1016/j.image.2019.02.005).

    Two streams, one per flow component (u = channel 0, v = channel 1), each
    ``conv 3x3x6 -> ReLU -> pool 2 -> conv 3x3x16 -> ReLU -> pool 2``; the flattened
    maps (2 x 7 x 7 x 16 = 1568) are concatenated and classified by fully connected
    layers (default ``FC 1024 -> dropout 0.5 -> FC classes``).

    Parameters
    ----------
    num_classes : int
    hidden : tuple of int
        Hidden fully connected sizes. ``(1024,)`` (default) follows the brief of the
        paper's Fig. 3; some re-implementations use ``(1024, 1024)`` (2.66 M parameters).
    dropout : float
        Dropout after each hidden layer.

    Shapes
    ------
    ``[B, C >= 2, 28, 28] -> logits [B, num_classes]``; channels beyond the first two
    (e.g. strain) are ignored.
    """

    def __init__(
        self, num_classes: int = 3, hidden: tuple[int, ...] = (1024,), dropout: float = 0.5,
        input_size: int = 28,
    ) -> None:  # fmt: skip
        super().__init__()
        self.stream_u = _ApexStream()
        self.stream_v = _ApexStream()
        side = input_size // 4
        self.head = mlp_head(2 * 16 * side * side, hidden, num_classes, dropout=dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, hidden[-1]]`` (the last hidden layer of the head)."""
        check_input(x, ndim=4, min_channels=2, name="OffApexNet")
        u = torch.flatten(self.stream_u(x[:, 0:1]), 1)
        v = torch.flatten(self.stream_v(x[:, 1:2]), 1)
        return self.head[:-1](torch.cat([u, v], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head[-1](self.features(x))
