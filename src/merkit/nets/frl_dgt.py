"""FRL-DGT's Transformer Fusion on a given displacement field (Zhai, Zhao, Long, Xu, He &
Zhao, "Feature Representation Learning with Adaptive Displacement Generation and
Transformer Fusion for Micro-Expression Recognition", CVPR 2023,
doi:10.1109/CVPR52729.2023.02115, arXiv:2304.04420).

What the paper has, and what merkit keeps
-----------------------------------------
FRL-DGT is (i) a Displacement Generation Module (DGM), a CNN trained with self-supervision
on onset / apex frames to generate a displacement field between them, and (ii) a
Transformer Fusion of three modules - *local* and *global* fusion over AU-based facial
regions and *full-face* fusion - whose output is classified; its fusion layers fuse
linearly *before* attention ("Fu-B-Attn"; the paper's ablation credits it with +0.5 %
UF1 at ~7 % less run time). Published MEGC 2019 composite (CDE): UF1 0.812 / UAR 0.811
(without the DGM: UF1 0.778, as a third-party summary of the ablation quotes it).

merkit's composite data are the released STSTNet flow images (u, v, optical strain;
min-max encoded per image to 0..255; 28 x 28), without frames. So the **DGM is replaced
by the given optical flow**: channels u, v are the displacement field (the optical strain
is not a displacement and is ignored unless ``use_strain=True``). A frame-pair variant
(DGM + fusion, trained on onset / apex frames) is left for when frames are available.

Only the paper's title, abstract and a summary of its ablations could be read while this
module was written (the search corpus holds the opening of the arXiv HTML page only; no
authors' code is indexed). Every number below that is not the paper's is marked
*merkit*; the docs (docs/cde-reproduction.md, "FRL-DGT") list them.

Architecture (``[B, C >= 2, H, W] -> logits [B, K]``)
-----------------------------------------------------
1. **Displacement.** ``d = x[:, :2] / 127.5 - 1`` (0..255 -> -1..1; *merkit*), bilinearly
   resized to ``image_size`` when the input has another size (default 28, the composite
   size: no resizing there).
2. **Local fusion** (paper: over AU regions). Each of the R regions (``regions``, boxes in
   fractions of the image; default :func:`au_region_boxes`: 7 AU regions of merkit's
   canonical aligned face) is cropped and bilinearly resized to ``region_size`` (8,
   *merkit*), cut into ``region_patch`` x ``region_patch`` patches (2: 16 tokens,
   *merkit*), linearly embedded to ``dim`` (64, *merkit*) with a learned position
   embedding and a learned region embedding, and fused by ``local_depth`` (1, *merkit*)
   pre-norm Transformer blocks shared by the regions; the mean of a region's tokens is
   its token.
3. **Global fusion** (paper: over AU regions). The R region tokens, with a second learned
   region embedding, pass ``global_depth`` (1, *merkit*) Transformer blocks.
4. **Full-face fusion** with linear fusion before attention (paper: Fu-B-Attn). The
   displacement map is cut into ``patch_size`` x ``patch_size`` patches (4: 49 tokens,
   *merkit*) and embedded like the regions; the R global region tokens and the full-face
   tokens are concatenated and a linear layer *over the token axis* fuses the R + N tokens
   into ``fused_tokens`` (16, *merkit*) tokens before ``full_depth`` (2, *merkit*)
   Transformer blocks attend over them (fewer tokens attend: the paper's run-time saving).
   This is merkit's reading of the one-line description of Fu-B-Attn, not the authors'
   layer.
5. **Classification.** LayerNorm, mean over the fused tokens (the ``dim``-d penultimate
   features of :meth:`FRLDGT.features`), one linear layer to K classes.

A Transformer block is ViT's pre-norm block (Dosovitskiy et al., ICLR 2021):
``x + MHSA(LN(x))``, ``x + MLP(LN(x))`` with ``heads`` (4, *merkit*) heads, a GELU MLP of
``mlp_ratio * dim`` (4, ViT's) hidden units and dropout ``dropout`` (0.1, *merkit*).
Its parameters: ``12 dim^2 + 13 dim`` (49,984 for dim 64).

Parameter count (defaults, 3 classes, u + v): 209,171 (the paper reports no count that
could be read; the formula is in tests/nets/test_frl_dgt.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from merkit.nets.apexnets import check_input
from merkit.video.face import reference_landmarks

__all__ = [
    "AU_REGIONS",
    "FRLDGT",
    "FusionBlock",
    "au_region_boxes",
    "region_pixels",
]

#: AU regions of FRL-DGT's local / global fusion mapped onto the 68-point landmark layout
#: (0-based dlib / iBUG indices; "right" = the subject's right = image left): region name
#: -> (the Action Units whose muscles move it, the landmarks whose box it is). *merkit*'s
#: mapping of the usual AU regions (brows: AU1/2/4; eyes: AU6/7; nose: AU9/10;
#: mouth: AU12/14/15/25; chin: AU17) onto the landmark groups.
AU_REGIONS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "right_brow": ((1, 2, 4), tuple(range(17, 22))),
    "left_brow": ((1, 2, 4), tuple(range(22, 27))),
    "right_eye": ((6, 7), tuple(range(36, 42))),
    "left_eye": ((6, 7), tuple(range(42, 48))),
    "nose": ((9, 10), tuple(range(27, 36))),
    "mouth": ((12, 14, 15, 25), tuple(range(48, 68))),
    "chin": ((17,), (7, 8, 9, 57)),
}

Box = tuple[float, float, float, float]


def au_region_boxes(pad: float = 0.05, margin: float = 0.0) -> tuple[Box, ...]:
    """The boxes of :data:`AU_REGIONS` on merkit's canonical aligned face.

    Each box is the bounding box of the region's landmarks in
    :func:`merkit.video.face.reference_landmarks` (the mean 68-point shape in an aligned
    crop; ``margin=0`` is the tight face square of the cropped database releases, the
    crop of the composite flow images), enlarged by ``pad`` (a fraction of the image side)
    on every edge and clipped to the image.

    Returns
    -------
    tuple of (x0, y0, x1, y1)
        Fractions of the image width / height, in :data:`AU_REGIONS` order.
    """
    if not 0.0 <= pad < 0.5:
        raise ValueError(f"pad must lie in [0, 0.5), got {pad}")
    side = 1000  # any size: the boxes are returned as fractions
    points = (reference_landmarks((side, side), margin=margin) + 0.5) / side
    boxes = []
    for _aus, idx in AU_REGIONS.values():
        p = points[list(idx)]
        lo = np.clip(p.min(axis=0) - pad, 0.0, 1.0)
        hi = np.clip(p.max(axis=0) + pad, 0.0, 1.0)
        boxes.append(tuple(round(float(v), 4) for v in (lo[0], lo[1], hi[0], hi[1])))
    return tuple(boxes)


def region_pixels(regions: Sequence[Sequence[float]], size: int) -> list[tuple[int, ...]]:
    """Integer pixel boxes ``(x0, y0, x1, y1)`` (end exclusive) of fractional boxes.

    A box covers every pixel it touches (floor of the start, ceiling of the end).

    Raises
    ------
    ValueError
        No regions, a box that is not 4 numbers, lies outside ``[0, 1]`` or is empty.
    """
    if len(regions) == 0:
        raise ValueError("FRLDGT needs at least one region (x0, y0, x1, y1)")
    out = []
    for i, box in enumerate(regions):
        if len(box) != 4:
            raise ValueError(f"region {i} is {tuple(box)}; expected 4 numbers (x0, y0, x1, y1)")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            raise ValueError(
                f"region {i} is {tuple(box)}; needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                "(fractions of the image)"
            )
        px = (
            int(np.floor(x0 * size)), int(np.floor(y0 * size)),
            int(np.ceil(x1 * size)), int(np.ceil(y1 * size)),
        )  # fmt: skip
        out.append(px)
    return out


class FusionBlock(nn.Module):
    """Pre-norm Transformer block: ``x + MHSA(LN(x))``, then ``x + MLP(LN(x))`` (GELU).

    ``12 dim^2 + 13 dim`` parameters with ``mlp_ratio=4``.

    Shapes
    ------
    ``[B, T, dim] -> [B, T, dim]``
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden = int(round(dim * mlp_ratio))
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, dim), nn.Dropout(dropout),
        )  # fmt: skip
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
        return x + self.mlp(self.norm2(x))


def _patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C, H, W] -> [B, (H/p)(W/p), C p p]`` non-overlapping patches, row-major."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


class FRLDGT(nn.Module):
    """FRL-DGT's Transformer Fusion (local, global, full-face) on an optical-flow
    displacement field; the DGM is replaced by the given flow (see the module docstring).

    Parameters
    ----------
    num_classes : int
    regions : sequence of (x0, y0, x1, y1) or None
        AU regions as fractions of the image (x right, y down); None = the 7 boxes of
        :func:`au_region_boxes` (merkit's canonical aligned face).
    use_strain : bool
        Also feed the third (optical strain) channel; the default feeds the displacement
        u, v only, as the paper's fusion sees the DGM's displacement.
    image_size : int
        Side the displacement map is (bilinearly) resized to; 28, the composite size.
    patch_size : int
        Full-face patch side (``image_size`` must be a multiple).
    region_size, region_patch : int
        Side each region crop is resized to, and its patch side (a divisor).
    dim, heads : int
        Token width and attention heads (``dim`` a multiple of ``heads``).
    mlp_ratio : float
    local_depth, global_depth, full_depth : int
        Transformer blocks of the local, global and full-face fusion (>= 1 each).
    fused_tokens : int
        Tokens left by the linear fusion before the full-face attention.
    dropout : float

    Shapes
    ------
    ``[B, C, H, W] -> logits [B, num_classes]`` with C >= 2 (>= 3 with ``use_strain``) and
    H, W >= 4; channels u, v, strain in that order.
    """

    #: flow images ``[B, 3, 28, 28]`` (u, v, strain)
    input_kind: ClassVar[str] = "flow"
    #: :data:`merkit.nets.train.PRESETS` ``'frl_dgt'``
    training_preset: ClassVar[str | None] = "frl_dgt"

    def __init__(
        self,
        num_classes: int = 3,
        *,
        regions: tuple[tuple[float, float, float, float], ...] | None = None,
        use_strain: bool = False,
        image_size: int = 28,
        patch_size: int = 4,
        region_size: int = 8,
        region_patch: int = 2,
        dim: int = 64,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        local_depth: int = 1,
        global_depth: int = 1,
        full_depth: int = 2,
        fused_tokens: int = 16,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"FRLDGT needs num_classes >= 2, got {num_classes}")
        for name, value in (("image_size", image_size), ("patch_size", patch_size),
                            ("region_size", region_size), ("region_patch", region_patch),
                            ("dim", dim), ("heads", heads), ("local_depth", local_depth),
                            ("global_depth", global_depth), ("full_depth", full_depth),
                            ("fused_tokens", fused_tokens)):  # fmt: skip
            if value < 1:
                raise ValueError(f"FRLDGT: {name} must be >= 1, got {value}")
        if image_size % patch_size:
            raise ValueError(
                f"image_size {image_size} is not a multiple of patch_size {patch_size}"
            )
        if region_size % region_patch:
            raise ValueError(
                f"region_size {region_size} is not a multiple of region_patch {region_patch}"
            )
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        boxes = au_region_boxes() if regions is None else tuple(tuple(r) for r in regions)
        self.regions: tuple[tuple[float, ...], ...] = tuple(
            tuple(float(v) for v in b) for b in boxes
        )
        self.region_boxes = region_pixels(self.regions, image_size)
        self.in_channels = 3 if use_strain else 2
        self.image_size = int(image_size)
        self.patch_size = int(patch_size)
        self.region_size = int(region_size)
        self.region_patch = int(region_patch)
        self.num_classes = int(num_classes)
        n_regions = len(self.regions)
        c = self.in_channels
        n_local = (region_size // region_patch) ** 2
        n_full = (image_size // patch_size) ** 2

        def blocks(depth: int) -> nn.Sequential:
            return nn.Sequential(
                *(FusionBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
            )

        # local fusion: tokens inside each AU region (encoder shared by the regions)
        self.local_embed = nn.Linear(c * region_patch**2, dim)
        self.local_pos = nn.Parameter(torch.zeros(1, n_local, dim))
        self.local_region = nn.Parameter(torch.zeros(n_regions, 1, dim))
        self.local_blocks = blocks(local_depth)
        self.local_norm = nn.LayerNorm(dim)
        # global fusion: across the AU regions
        self.global_region = nn.Parameter(torch.zeros(1, n_regions, dim))
        self.global_blocks = blocks(global_depth)
        self.global_norm = nn.LayerNorm(dim)
        # full-face fusion: linear fusion of region + full-face tokens before attention
        self.full_embed = nn.Linear(c * patch_size**2, dim)
        self.full_pos = nn.Parameter(torch.zeros(1, n_full, dim))
        self.token_fusion = nn.Linear(n_regions + n_full, fused_tokens)
        self.full_blocks = blocks(full_depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        for p in (self.local_pos, self.local_region, self.global_region, self.full_pos):
            nn.init.trunc_normal_(p, std=0.02)

    def displacement(self, x: torch.Tensor) -> torch.Tensor:
        """The displacement map the fusion sees: ``[B, in_channels, image_size, image_size]``
        in -1..1 (inputs are 0..255 flow images)."""
        check_input(x, ndim=4, min_channels=self.in_channels, name="FRLDGT")
        if min(x.shape[-2:]) < 4:
            raise ValueError(
                f"FRLDGT expects images of at least 4 x 4 pixels, got {tuple(x.shape[-2:])}"
            )
        d = x[:, : self.in_channels].float() / 127.5 - 1.0
        if tuple(d.shape[-2:]) != (self.image_size, self.image_size):
            d = F.interpolate(d, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        return d

    def _regions(self, d: torch.Tensor) -> torch.Tensor:
        """Crops of the AU regions resized to ``region_size``: ``[B, R, C, s, s]``."""
        s = (self.region_size, self.region_size)
        crops = [
            F.interpolate(d[:, :, y0:y1, x0:x1], size=s, mode="bilinear", align_corners=False)
            for x0, y0, x1, y1 in self.region_boxes
        ]
        return torch.stack(crops, dim=1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, dim]`` (the pooled fused tokens the head classifies)."""
        d = self.displacement(x)
        b = d.shape[0]
        crops = self._regions(d)
        r = crops.shape[1]
        local = self.local_embed(_patches(crops.flatten(0, 1), self.region_patch))
        local = local.reshape(b, r, -1, local.shape[-1]) + self.local_pos + self.local_region
        local = self.local_blocks(local.flatten(0, 1))
        region_tokens = self.local_norm(local).mean(dim=1).reshape(b, r, -1)
        region_tokens = self.global_norm(self.global_blocks(region_tokens + self.global_region))
        full = self.full_embed(_patches(d, self.patch_size)) + self.full_pos
        tokens = torch.cat([region_tokens, full], dim=1)
        fused = self.token_fusion(tokens.transpose(1, 2)).transpose(1, 2)
        return self.norm(self.full_blocks(fused)).mean(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
