"""HTNet: a hierarchical transformer over four facial regions of a flow image (Wang, Zhang,
Luo, Sankaranarayana, "HTNet for micro-expression recognition", Neurocomputing 602, 2024,
arXiv:2307.14637; code github.com/wangzhifengharrison/HTNet).

Architecture (the authors' ``Model.py`` and ``main_HTNet.py``; the paper's abstract names
the parts; docs/cde-reproduction.md, section HTNet, compares paper, code and merkit):

1. **Regions.** Four 14 x 14 boxes are cut from the 28 x 28 onset -> apex flow image
   (u, v, strain) and tiled into a 28 x 28 mosaic, ``[[left eye, left lips], [right eye,
   right lips]]`` (the layout of the authors' ``l_eye_lips`` / ``r_eye_lips`` tiles).
   The authors centre their boxes on MTCNN landmarks of the apex frame; merkit's flows
   carry no landmarks, so the default boxes (:data:`CANONICAL_REGIONS`) are centred on
   merkit's canonical face, :func:`canonical_regions`. A box of another size is resized
   to 14 x 14 (bilinear).
2. **Patch embedding.** 7 x 7 patches (4 x 4 of them, 147 values each) -> 1x1 conv to
   ``dim`` = 256.
3. **Three levels** (finest first) of pre-norm transformer layers run independently in
   each of ``4 x 4``, ``2 x 2`` and ``1`` blocks: dims 256 / 512 / 1024, heads 3 / 6 / 12
   (``dim // heads`` = 85 per head, so 255 / 510 / 1020 inner dims), depths 2 / 2 / 10,
   MLP x4 with GELU, dropout 0, a learned scalar positional embedding per position of a
   block. Layer norm is over channels (scale and shift per channel).
4. **Aggregation** between levels: 3x3 conv (dim -> 2 dim) -> channel layer norm ->
   3x3 max-pool, stride 2, padding 1 (4 x 4 -> 2 x 2 -> 1 x 1).
5. **Head**: channel layer norm -> spatial mean -> linear 1024 -> classes.

With the authors' sizes every block holds a single token (``(4 // 4)^2 = 1``) at every
level, so each attention is over one key: its output is the projected value of the token
itself. The regions interact only through the aggregation convolutions and pooling.
139,582,982 trainable parameters for 3 classes (the count of the authors' module; its
abstract and README state none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from merkit.video.face import LANDMARK_GROUPS, reference_landmarks

__all__ = [
    "AUTHORS_FALLBACK_REGIONS",
    "CANONICAL_REGIONS",
    "HTNet",
    "canonical_regions",
    "check_regions",
]

Box = tuple[int, int, int, int]

#: default region boxes ``(x0, y0, x1, y1)`` (pixels, end exclusive) on a 28 x 28 flow, in
#: mosaic order (top-left, top-right, bottom-left, bottom-right) = (left eye, left lips,
#: right eye, right lips); "left" is the image left. ``canonical_regions()`` derives them.
CANONICAL_REGIONS: tuple[Box, Box, Box, Box] = (
    (2, 1, 16, 15),
    (3, 11, 17, 25),
    (12, 1, 26, 15),
    (11, 11, 25, 25),
)

#: the boxes the authors' code crops when MTCNN finds no face on the apex frame (their
#: fallback five landmarks), in the same mosaic order. Their code indexes the image
#: ``[x, y]`` with MTCNN's ``(x, y)`` points, so each box is centred on the transposed
#: landmark: the "left lips" tile is cut around the right eye's (x, y) read as (y, x).
AUTHORS_FALLBACK_REGIONS: tuple[Box, Box, Box, Box] = (
    (4, 2, 18, 16),
    (3, 14, 17, 28),
    (14, 3, 28, 17),
    (14, 13, 28, 27),
)


def canonical_regions(
    image_size: int = 28, region_size: int = 14, margin: float = 0.1
) -> tuple[Box, Box, Box, Box]:
    """Region boxes centred on the canonical face (:func:`merkit.video.face.reference_landmarks`).

    The four centres are those of MTCNN's landmarks the authors crop around: the mean of
    each eye's six points (iBUG 36-41, 42-47) and the two mouth corners (48, 54) of the
    mean shape in an aligned crop of ``image_size`` with ``margin`` (0.1, as merkit's
    aligned flows, ``FLOW_IMAGE_PARAMS``). Each box is ``region_size`` pixels wide,
    centred on its point to the nearest pixel (coordinates are pixel centres) and shifted
    inside the image if it would leave it.

    Returns
    -------
    tuple of 4 (x0, y0, x1, y1)
        Left eye, left lips, right eye, right lips (image left first): the mosaic order.
    """
    pts = reference_landmarks((image_size, image_size), margin=margin)
    centres = [
        pts[list(LANDMARK_GROUPS["right_eye"])].mean(axis=0),  # the subject's right = image left
        pts[48],
        pts[list(LANDMARK_GROUPS["left_eye"])].mean(axis=0),
        pts[54],
    ]
    boxes = []
    for cx, cy in centres:
        x0, y0 = (int(np.clip(round(c - (region_size - 1) / 2), 0, image_size - region_size))
                  for c in (cx, cy))  # fmt: skip
        boxes.append((x0, y0, x0 + region_size, y0 + region_size))
    return tuple(boxes)  # type: ignore[return-value]


def check_regions(regions: Sequence[Sequence[int]], image_size: int) -> tuple[Box, ...]:
    """Four integer boxes ``(x0, y0, x1, y1)`` with ``0 <= x0 < x1 <= image_size`` (and y).

    Raises
    ------
    ValueError
        One line naming the first bad box and the rule.
    """
    boxes = tuple(tuple(b) for b in regions)
    if len(boxes) != 4:
        raise ValueError(f"HTNet needs 4 region boxes (x0, y0, x1, y1), got {len(boxes)}")
    for i, box in enumerate(boxes):
        ok = len(box) == 4 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in box
        )
        if ok:
            x0, y0, x1, y1 = box
            ok = 0 <= x0 < x1 <= image_size and 0 <= y0 < y1 <= image_size
        if not ok:
            raise ValueError(
                f"HTNet region {i} = {box}: a box is 4 integers (x0, y0, x1, y1) with "
                f"0 <= x0 < x1 <= {image_size} and 0 <= y0 < y1 <= {image_size}"
            )
    return tuple((int(a), int(b), int(c), int(d)) for a, b, c, d in boxes)


class ChannelLayerNorm(nn.Module):
    """Layer norm over the channels of ``[B, C, H, W]`` (biased variance, per-channel
    scale and shift)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, unbiased=False, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class ConvAttention(nn.Module):
    """Multi-head self-attention over the positions of ``[B, C, H, W]`` with 1x1-conv
    projections: q, k, v without bias (``heads x (dim // heads)`` each), output with bias."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        inner = self.heads * self.head_dim
        self.qkv = nn.Conv2d(dim, 3 * inner, 1, bias=False)
        self.attn_drop = nn.Dropout(dropout)
        self.out = nn.Sequential(nn.Conv2d(inner, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, self.head_dim, h * w).transpose(-1, -2)
                   for t in self.qkv(x).chunk(3, dim=1))  # fmt: skip
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.head_dim**-0.5, dim=-1)
        y = self.attn_drop(attn) @ v  # [b, heads, h*w, head_dim]
        return self.out(y.transpose(-1, -2).reshape(b, self.heads * self.head_dim, h, w))


class TransformerStage(nn.Module):
    """``depth`` pre-norm layers (attention, then a x``mlp_mult`` GELU MLP of 1x1 convs),
    each with a residual, after adding a learned scalar per position (``seq_len`` of them)."""

    def __init__(
        self, dim: int, seq_len: int, depth: int, heads: int, mlp_mult: int, dropout: float
    ) -> None:
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(seq_len))
        self.layers = nn.ModuleList()
        for _ in range(depth):
            mlp = nn.Sequential(
                nn.Conv2d(dim, dim * mlp_mult, 1), nn.GELU(), nn.Dropout(dropout),
                nn.Conv2d(dim * mlp_mult, dim, 1), nn.Dropout(dropout),
            )  # fmt: skip
            self.layers.append(nn.ModuleList([
                ChannelLayerNorm(dim), ConvAttention(dim, heads, dropout),
                ChannelLayerNorm(dim), mlp,
            ]))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = x + self.pos_emb[: h * w].reshape(1, 1, h, w)
        for norm1, attn, norm2, mlp in self.layers:
            x = x + attn(norm1(x))
            x = x + mlp(norm2(x))
        return x


def _to_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[B, C, n h, n w] -> [B n n, C, h, w]`` (block row-major)."""
    b, c, hh, ww = x.shape
    x = x.reshape(b, c, n, hh // n, n, ww // n).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * n * n, c, hh // n, ww // n)


def _from_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`_to_blocks`."""
    bnn, c, h, w = x.shape
    x = x.reshape(bnn // (n * n), n, n, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(bnn // (n * n), c, n * h, n * w)


class HTNet(nn.Module):
    """Hierarchical Transformer Network on four facial regions of a flow image.

    See the module docstring for the architecture and its sources.

    Parameters
    ----------
    num_classes : int
    in_channels : int
        3 for (u, v, strain) flow images.
    regions : sequence of 4 (x0, y0, x1, y1)
        Boxes in input pixels (end exclusive), in mosaic order: left eye, left lips,
        right eye, right lips. Default :data:`CANONICAL_REGIONS`; pass boxes from your
        own landmarks, or :data:`AUTHORS_FALLBACK_REGIONS`.
    image_size : int
        Input height and width (28).
    region_size : int
        Side of a tile of the mosaic (14, the authors' crops); other box sizes are resized
        to it.
    patch_size, dim, heads : int
        7, 256, 3: patch side, and width and heads of the finest level (doubled per level).
    depths : tuple of int
        Transformer layers per level, finest first: (2, 2, 10); its length is the number
        of levels.
    mlp_mult : int
    dropout : float
        In attention and MLPs (0, the authors' default).

    Shapes
    ------
    ``[B, in_channels, image_size, image_size] -> logits [B, num_classes]``.
    """

    #: trains with its authors' setting, :data:`merkit.nets.train.PRESETS` ``'htnet'``
    training_preset: ClassVar[str | None] = "htnet"
    input_kind: ClassVar[str] = "flow"

    def __init__(
        self,
        num_classes: int = 3,
        in_channels: int = 3,
        regions: tuple[tuple[int, int, int, int], ...] = CANONICAL_REGIONS,
        image_size: int = 28,
        region_size: int = 14,
        patch_size: int = 7,
        dim: int = 256,
        heads: int = 3,
        depths: tuple[int, ...] = (2, 2, 10),
        mlp_mult: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.regions = check_regions(regions, image_size)
        self.in_channels, self.image_size, self.region_size = in_channels, image_size, region_size
        levels = len(depths)
        mosaic = 2 * region_size
        if levels < 1 or min(depths) < 1:
            raise ValueError(f"HTNet depths={tuple(depths)}: at least one level, each >= 1 layer")
        fmap = mosaic // patch_size if patch_size >= 1 else 0
        if patch_size < 1 or mosaic % patch_size or fmap % 2 ** (levels - 1):
            raise ValueError(
                f"HTNet: the {mosaic} x {mosaic} mosaic must split into patches of "
                f"{patch_size} whose grid is divisible by 2^(levels-1) = {2 ** (levels - 1)}"
            )
        if heads < 1 or dim < heads:
            raise ValueError(f"HTNet: heads={heads} must be between 1 and dim={dim}")
        self.patch_size = patch_size
        self.embed = nn.Conv2d(in_channels * patch_size**2, dim, 1)
        seq_len = (fmap // 2 ** (levels - 1)) ** 2
        self.stages = nn.ModuleList()
        self.aggregates = nn.ModuleList()
        for i, depth in enumerate(depths):
            d = dim * 2**i
            self.stages.append(TransformerStage(d, seq_len, depth, heads * 2**i, mlp_mult, dropout))
            if i < levels - 1:
                self.aggregates.append(nn.Sequential(
                    nn.Conv2d(d, 2 * d, 3, padding=1), ChannelLayerNorm(2 * d),
                    nn.MaxPool2d(3, stride=2, padding=1),
                ))  # fmt: skip
        last = dim * 2 ** (levels - 1)
        self.norm = ChannelLayerNorm(last)
        self.fc = nn.Linear(last, num_classes)

    def mosaic(self, x: torch.Tensor) -> torch.Tensor:
        """The four regions tiled ``[[0, 1], [2, 3]]``: ``[B, C, 2 r, 2 r]`` (r = region_size)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[-2:]) != (
            self.image_size, self.image_size,
        ):  # fmt: skip
            raise ValueError(
                f"HTNet expects [B, {self.in_channels}, {self.image_size}, {self.image_size}] "
                f"flow images (its region boxes are in those pixels), got {tuple(x.shape)}"
            )
        r = self.region_size
        tiles = []
        for x0, y0, x1, y1 in self.regions:
            t = x[:, :, y0:y1, x0:x1]
            if t.shape[-2:] != (r, r):
                t = F.interpolate(t, size=(r, r), mode="bilinear", align_corners=False)
            tiles.append(t)
        return torch.cat([torch.cat(tiles[:2], dim=3), torch.cat(tiles[2:], dim=3)], dim=2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, dim * 2^(levels-1)]`` (normalised, spatially averaged)."""
        m = self.mosaic(x)
        b, c, hh, ww = m.shape
        p = self.patch_size
        # patches -> vectors ordered (row in patch, column in patch, channel), as the authors
        patches = m.reshape(b, c, hh // p, p, ww // p, p).permute(0, 3, 5, 1, 2, 4)
        z = self.embed(patches.reshape(b, p * p * c, hh // p, ww // p))
        levels = len(self.stages)
        for i, stage in enumerate(self.stages):
            n = 2 ** (levels - 1 - i)  # blocks per side: 4, 2, 1
            z = _from_blocks(stage(_to_blocks(z, n)), n)
            if i < levels - 1:
                z = self.aggregates[i](z)
        return self.norm(z).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
