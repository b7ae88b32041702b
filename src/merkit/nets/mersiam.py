"""MERSiam: a siamese C3D on key-frame optical-flow sequences, trained in two stages.

Zhao, Tao, Zhang, Xu, Zhang, Hao & Chen, "A two-stage 3D CNN based learning method for
spontaneous micro-expression recognition", Neurocomputing 448:276-289, 2021
("MERSiamC3D"; the DFME baseline "MERSiam"). The paper's abstract (its full text was not
available to merkit) gives: a siamese 3-D CNN; a *prior-learning* stage in which the
siamese network learns generic micro-expression features from pairs; a *target-learning*
stage in which the network is adjusted and trained with the focal loss; key-frame
optical-flow sequences as input. DFME (Zhao et al. 2023) feeds it sequences of 10 flow
maps of 112 x 112 and trains with SGD (momentum 0.9), batch 8.

Everything else is merkit's choice (docs/mersiam.md):

* encoder: the C3D trunk (Tran et al., ICCV 2015, doi:10.1109/ICCV.2015.510) -- conv1a,
  pool1 (spatial only), conv2a, pool2, conv3a/b, pool3, conv4a/b, pool4, conv5a/b, pool5,
  3 x 3 x 3 kernels -- with ``width`` x (1, 2, 4, 4, 8, 8, 8, 8) channels (C3D: width 64),
  each convolution followed by BatchNorm and ReLU (C3D has no normalisation; it was
  pre-trained on a million videos, this network is trained from scratch on hundreds),
  max-pooling with ``ceil_mode`` (a length-1 sequence of 28 x 28 maps passes), global
  average pooling and an embedding layer ``Linear(8 width, embed_dim) -> ReLU ->
  Dropout``;
* prior stage: the siamese head of Koch, Zemel & Salakhutdinov (ICML deep-learning
  workshop 2015): ``Linear(|e_i - e_j|) -> 1 logit``, binary cross-entropy on pairs formed
  inside each mini-batch (:func:`within_batch_pairs`: same class -> 1, else 0, balanced);
* target stage: a new linear classifier on the same encoder and embedding (every weight
  trained), focal loss (Lin et al., ICCV 2017, doi:10.1109/ICCV.2017.324) with
  gamma = 2 (:func:`focal_loss`).

The stages are driven by :func:`merkit.nets.train.fit` (``TrainConfig.prior_epochs``),
which calls :meth:`MERSiam.set_stage`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from merkit.nets.apexnets import check_input

__all__ = ["MERSiam", "focal_loss", "within_batch_pairs"]

#: C3D's channel multipliers of conv1a, conv2a, conv3a, conv3b, conv4a, conv4b, conv5a, conv5b
C3D_MULTIPLIERS = (1, 2, 4, 4, 8, 8, 8, 8)
#: C3D's layer names; the pooling that follows a convolution (None: none)
_LAYERS = (
    ("conv1a", "pool1"), ("conv2a", "pool2"), ("conv3a", None), ("conv3b", "pool3"),
    ("conv4a", None), ("conv4b", "pool4"), ("conv5a", None), ("conv5b", "pool5"),
)  # fmt: skip


def within_batch_pairs(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced pairs of the samples of one mini-batch (the prior stage's training pairs).

    Every unordered pair ``i < j`` of the batch is a candidate; its target is 1 when
    ``y[i] == y[j]``, else 0. When both kinds exist, ``m = min(#same, #different)`` of
    each are kept, drawn without replacement from the global torch RNG (seeded by
    :func:`merkit.nets.train.torch_session`); when only one kind exists all candidates
    are kept. Pairs never cross batches, so only the rows the loader gives (training
    rows) are ever paired.

    Parameters
    ----------
    y : Tensor of int64, shape (B,)

    Returns
    -------
    i, j : Tensor of int64, shape (P,)
        Positions in the batch, ``i < j``, in the order of the candidates (row-major).
    target : Tensor of float32, shape (P,)
    """
    y = torch.as_tensor(y).reshape(-1)
    b = int(y.numel())
    ii, jj = torch.triu_indices(b, b, offset=1, device=y.device)
    same = y[ii] == y[jj]
    pos, neg = torch.nonzero(same).flatten(), torch.nonzero(~same).flatten()
    m = min(pos.numel(), neg.numel())
    if m > 0:
        if pos.numel() > m:
            pos = pos[torch.randperm(pos.numel())[:m].to(pos.device)]
        if neg.numel() > m:
            neg = neg[torch.randperm(neg.numel())[:m].to(neg.device)]
    keep = torch.sort(torch.cat([pos, neg])).values
    return ii[keep], jj[keep], same[keep].float()


def focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, gamma: float = 2.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Multi-class focal loss ``-alpha_t (1 - p_t)^gamma log p_t``, weighted mean.

    Parameters
    ----------
    logits : Tensor, shape (B, K)
    targets : Tensor of int64, shape (B,)
    gamma : float
        Focusing parameter (0: cross-entropy).
    weight : Tensor, shape (K,), optional
        ``alpha`` per class (e.g. balanced class weights).

    Returns
    -------
    Tensor (scalar)
        ``sum_b alpha_b (1 - p_b)^gamma (-log p_b) / sum_b alpha_b`` (``alpha_b = 1``
        without weights): with ``gamma = 0`` exactly
        ``F.cross_entropy(logits, targets, weight=weight)``.
    """
    logp = F.log_softmax(logits.float(), dim=1).gather(1, targets.reshape(-1, 1)).squeeze(1)
    term = -logp if gamma == 0 else -((1.0 - logp.exp()) ** gamma) * logp
    if weight is None:
        return term.mean()
    alpha = weight.to(term)[targets]
    return (alpha * term).sum() / alpha.sum()


class MERSiam(nn.Module):
    """Siamese C3D encoder with a pair head (prior stage) and a classifier (target stage).

    Parameters
    ----------
    num_classes : int
    in_channels : int
        3 for merkit's flow maps (u, v, strain).
    width : int
        Channels of conv1a; the trunk has width x (1, 2, 4, 4, 8, 8, 8, 8) (64 = C3D).
        Default 16: small enough to train on a CPU (docs/mersiam.md).
    embed_dim : int
        Size of the embedding both heads read.
    dropout : float
        Dropout after the embedding.
    gamma : float
        Focal-loss focusing parameter of the target stage.

    Shapes
    ------
    ``[B, in_channels, T, H, W] -> logits [B, num_classes]`` for any T, H, W >= 1
    (DFME: T = 10, H = W = 112; the MEGC 2019 flow images: T = 1, H = W = 28). In the
    prior stage the output is a dict ``{"logits", "embedding" [B, embed_dim]}``.
    """

    #: key-frame flow sequences ``[B, 3, T, H, W]`` (channels u, v, strain)
    input_kind: ClassVar[str] = "flowseq"
    training_preset: ClassVar[str] = "mersiam"
    #: training stages before the target stage (:func:`merkit.nets.train.fit`)
    training_stages: ClassVar[tuple[str, ...]] = ("prior",)

    def __init__(
        self, num_classes: int = 3, in_channels: int = 3, *, width: int = 16,
        embed_dim: int = 128, dropout: float = 0.5, gamma: float = 2.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if width < 1 or embed_dim < 1:
            raise ValueError(f"width and embed_dim must be >= 1, got {width}, {embed_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.in_channels, self.gamma, self.stage = in_channels, float(gamma), "target"
        layers: list[tuple[str, nn.Module]] = []
        cin = in_channels
        for (conv, pool), mult in zip(_LAYERS, C3D_MULTIPLIERS, strict=True):
            cout = width * mult
            layers.append((conv, nn.Sequential(
                nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout),
                nn.ReLU(inplace=True))))  # fmt: skip
            if pool == "pool1":  # C3D keeps the time axis in the first pooling
                layers.append((pool, nn.MaxPool3d((1, 2, 2), (1, 2, 2), ceil_mode=True)))
            elif pool is not None:
                layers.append((pool, nn.MaxPool3d(2, 2, ceil_mode=True)))
            cin = cout
        self.encoder = nn.Sequential(OrderedDict(layers))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.embed = nn.Sequential(nn.Linear(cin, embed_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.pair_head = nn.Linear(embed_dim, 1)
        self.fc = nn.Linear(embed_dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def set_stage(self, stage: str) -> None:
        """``"prior"`` (pairs, siamese head) or ``"target"`` (classes, focal loss)."""
        if stage not in (*self.training_stages, "target"):
            raise ValueError(f"MERSiam stage {stage!r}; expected 'prior' or 'target'")
        self.stage = stage

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding ``[B, embed_dim]`` both heads read (before dropout)."""
        check_input(x, ndim=5, min_channels=self.in_channels, name="MERSiam")
        return self.embed(torch.flatten(self.pool(self.encoder(x)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        e = self.features(x)
        logits = self.fc(self.dropout(e))
        if self.stage == "prior":
            return {"logits": logits, "embedding": e}
        return logits

    def pair_logits(self, e: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Same-class logits ``[P]`` of pairs ``(i, j)`` of embeddings ``e``."""
        return self.pair_head(self.dropout(torch.abs(e[i] - e[j]))).squeeze(1)

    def loss(self, outputs, targets: torch.Tensor, *, weight: torch.Tensor | None = None):
        """Prior stage: binary cross-entropy of the balanced within-batch pairs (class
        weights unused: the pairs are balanced); target stage: focal loss (``weight`` as
        alpha)."""
        if targets.is_floating_point():
            raise ValueError("MERSiam's losses take class indices (no mixup)")
        if self.stage == "prior":
            i, j, t = within_batch_pairs(targets)
            e = outputs["embedding"]
            if t.numel() == 0:  # a batch of one: nothing to compare
                return e.sum() * 0.0
            return F.binary_cross_entropy_with_logits(self.pair_logits(e, i, j), t)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs
        return focal_loss(logits, targets, gamma=self.gamma, weight=weight)

    def stage_accuracy(self, outputs, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Prior stage: correct same/different decisions over every within-batch pair
        (no sampling) and the number of pairs."""
        e = outputs["embedding"].detach()
        i, j = torch.triu_indices(len(targets), len(targets), offset=1, device=e.device)
        same = targets[i] == targets[j]
        with torch.no_grad():  # no dropout: this draws nothing from the RNG
            logit = self.pair_head(torch.abs(e[i] - e[j])).squeeze(1)
        return ((logit > 0) == same).sum(), int(same.numel())
