"""Feature Refinement (FR) and its ablations (Zhou, Mao, Xue, Wang & Zhao, "Feature
refinement: an expression-specific feature learning and fusion method for
micro-expression recognition", Pattern Recognition 122, 2022,
doi:10.1016/j.patcog.2021.108275).

Networks (registry names in brackets), all on flow images ``[B, C >= 2, 28, 28]``
(u = channel 0, v = channel 1; further channels are ignored):

* ``TwoStreamInception`` - the expression-shared backbone: per flow component two
  Inception-V1 layers (6 then 16 filters per branch, as in LeNet), each followed by
  2x2 max-pooling; the two flattened maps are concatenated (2 x 64 x 7 x 7 = 6272).
* :class:`BasicInception` (``basic_inception``) and :class:`DualInception`
  (``dual_inception``, Zhou et al., FG 2019, doi:10.1109/FG.2019.8756579): backbone ->
  FC 1024 -> dropout 0.5 -> FC classes. The two are the same network; FR's Table 1
  differs only in the SMIC apex frame (mid frame for Dual-Inception, interframe-Diff
  for Basic Inception), i.e. in the data given to it.
* :class:`FeatureRefinement` (``fr``, ``fr_fc``, ``fr_concat``): backbone -> FC to the
  expression-shared feature z -> K attention units ``a_k = softmax(FC_k(z))``,
  ``z*_k = a_k * z`` (``fr_fc``: ``z*_k = ReLU(FC_k(z))``, no attention) -> K detectors
  (FC -> ReLU -> FC -> sigmoid, one per class, trained with the proposal loss) ->
  fusion ``z' = sum_k z*_k`` (``fr_concat``: concatenation) -> FC -> dropout 0.5 -> FC.

Loss (Eq. 8): ``L = lambda * L_prop + L_cls`` with ``L_prop`` the mean over k of the
binary cross-entropy of detector k against "is class k" (Eq. 4-5) and ``L_cls`` the
softmax cross-entropy; lambda = 0.85. :meth:`FeatureRefinement.forward` returns a dict
``{"logits", "proposal"}`` and :meth:`FeatureRefinement.loss` computes ``L`` (the
protocol of :mod:`merkit.nets.train`).

Parameter counts (3 classes, 28 x 28 inputs): the paper gives FR 10.2418 M and Basic
Inception 6.4803 M (Table 7; 11.4231 M / 6.4813 M with 4 classes). Read literally,
attention FCs on the 6272-d flattened feature would cost 6272^2 = 39.3 M each, so the
published counts imply a 1024-d z: FR's counts fit ``a + b K`` with b = 1.1813 M per
class = FC_k 1024x1024 (1.0496 M) + detector 1024 -> 128 -> 1 (0.1313 M) + one column
of the last layer. merkit's defaults (``embed_dim=1024, detector_hidden=128,
classifier_hidden=256``) give FR 10,252,750 (paper 10,241,800; 11,433,936 vs
11,423,100 with 4 classes, the same +11 k offset) and Basic Inception 6,449,867 (paper
6,480,300). The remaining ~11-30 k lie in the Inception branches, whose exact Keras
configuration (reduce convolutions, padding, pooling) the paper does not state.
``embed_dim=None`` gives the literal 6272-d z (118 M parameters for 3 classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from merkit.nets.apexnets import check_input
from merkit.nets.augment import soft_cross_entropy
from merkit.nets.blocks import Inception2d, mlp_head

__all__ = [
    "BasicInception",
    "DualInception",
    "FeatureRefinement",
    "InceptionStream",
    "TwoStreamInception",
]


class InceptionStream(nn.Sequential):
    """One flow component: Inception(6) -> max-pool 2 -> Inception(16) -> max-pool 2.

    ``[B, 1, 28, 28] -> [B, 64, 7, 7]``.
    """

    def __init__(self, filters: tuple[int, int] = (6, 16), *, reduce: bool = True) -> None:
        f1, f2 = filters
        first = Inception2d(1, f1, reduce=reduce)
        second = Inception2d(first.out_channels, f2, reduce=reduce)
        super().__init__(first, nn.MaxPool2d(2, 2), second, nn.MaxPool2d(2, 2))
        self.out_channels = second.out_channels


class TwoStreamInception(nn.Module):
    """Expression-shared feature learning: one :class:`InceptionStream` per flow component.

    Shapes
    ------
    ``[B, C >= 2, S, S] -> [B, 2 * 64 * (S // 4) ** 2]`` (6272 for S = 28).
    """

    def __init__(
        self, filters: tuple[int, int] = (6, 16), *, input_size: int = 28, reduce: bool = True
    ) -> None:
        super().__init__()
        self.stream_u = InceptionStream(filters, reduce=reduce)
        self.stream_v = InceptionStream(filters, reduce=reduce)
        side = input_size // 4
        self.out_features = 2 * self.stream_u.out_channels * side * side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, ndim=4, min_channels=2, name=type(self).__name__)
        u = torch.flatten(self.stream_u(x[:, 0:1]), 1)
        v = torch.flatten(self.stream_v(x[:, 1:2]), 1)
        return torch.cat([u, v], dim=1)


class BasicInception(nn.Module):
    """Two-stream Inception backbone -> FC 1024 -> dropout 0.5 -> FC classes (FR's backbone).

    Shapes
    ------
    ``[B, C >= 2, 28, 28] -> logits [B, num_classes]``
    """

    def __init__(
        self, num_classes: int = 3, *, hidden: int = 1024, dropout: float = 0.5,
        input_size: int = 28, filters: tuple[int, int] = (6, 16),
    ) -> None:  # fmt: skip
        super().__init__()
        self.backbone = TwoStreamInception(filters, input_size=input_size)
        self.head = mlp_head(self.backbone.out_features, (hidden,), num_classes, dropout=dropout)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, hidden]`` (after the hidden FC and its ReLU)."""
        return self.head[:-1](self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head[-1](self.features(x))


class DualInception(BasicInception):
    """Dual-Inception (Zhou et al., FG 2019): the same network as :class:`BasicInception`."""


class FeatureRefinement(nn.Module):
    """FR: expression-shared features, K expression-specific branches, fused classification.

    Parameters
    ----------
    num_classes : int
        K, also the number of attention units and detectors.
    attention : bool
        ``True``: ``z*_k = softmax(FC_k(z)) * z`` (FR). ``False``: ``z*_k = ReLU(FC_k(z))``
        (the FR-fc ablation).
    fusion : {"sum", "concat"}
        Element-wise sum of the ``z*_k`` (FR) or their concatenation (FR-concat).
    embed_dim : int or None
        Size of z: an FC + ReLU maps the 6272-d flattened two-stream features to z
        (1024 reproduces the published parameter counts, see the module docstring);
        None uses the flattened features themselves.
    detector_hidden : int
        Hidden units of each detector (FC -> ReLU -> FC -> sigmoid).
    classifier_hidden : int
        Hidden units of the classifier (FC -> ReLU -> dropout -> FC).
    dropout : float
    lam : float
        lambda of Eq. (8), the weight of the proposal loss.

    Shapes
    ------
    ``[B, C >= 2, 28, 28] -> {"logits": [B, K], "proposal": [B, K]}`` (proposal = the K
    detector logits; ``sigmoid`` gives p(class k)). With ``return_features=True`` the
    dict also holds ``"z"`` [B, D], ``"refined"`` (z', [B, D] or [B, K*D]) and ``"hidden"``
    (the classifier's hidden layer, [B, classifier_hidden]; :meth:`features`).
    """

    #: :meth:`loss` takes probability targets (mixup, :mod:`merkit.nets.augment`)
    soft_targets = True

    def __init__(
        self,
        num_classes: int = 3,
        *,
        attention: bool = True,
        fusion: str = "sum",
        embed_dim: int | None = 1024,
        detector_hidden: int = 128,
        classifier_hidden: int = 256,
        dropout: float = 0.5,
        lam: float = 0.85,
        input_size: int = 28,
        filters: tuple[int, int] = (6, 16),
    ) -> None:
        super().__init__()
        if fusion not in ("sum", "concat"):
            raise ValueError(f"fusion={fusion!r}; expected 'sum' or 'concat'")
        if num_classes < 2:
            raise ValueError(f"FeatureRefinement needs num_classes >= 2, got {num_classes}")
        if lam < 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.num_classes = num_classes
        self.attention = attention
        self.fusion = fusion
        self.lam = float(lam)
        self.backbone = TwoStreamInception(filters, input_size=input_size)
        if embed_dim is None:
            self.embed: nn.Module = nn.Identity()
            dim = self.backbone.out_features
        else:
            self.embed = nn.Sequential(
                nn.Linear(self.backbone.out_features, embed_dim), nn.ReLU(inplace=True)
            )
            dim = int(embed_dim)
        self.feature_dim = dim
        self.units = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_classes))
        self.detectors = nn.ModuleList(
            nn.Sequential(
                nn.Linear(dim, detector_hidden),
                nn.ReLU(inplace=True),
                nn.Linear(detector_hidden, 1),
            )  # fmt: skip
            for _ in range(num_classes)
        )
        fused = dim if fusion == "sum" else dim * num_classes
        self.classifier = mlp_head(fused, (classifier_hidden,), num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor, *, return_features: bool = False) -> dict:
        z = self.embed(self.backbone(x))
        specific = []
        for unit in self.units:
            if self.attention:
                specific.append(torch.softmax(unit(z), dim=1) * z)
            else:
                specific.append(F.relu(unit(z)))
        pairs = zip(self.detectors, specific, strict=True)
        proposal = torch.cat([det(s) for det, s in pairs], dim=1)
        if self.fusion == "sum":
            refined = torch.stack(specific, dim=0).sum(dim=0)
        else:
            refined = torch.cat(specific, dim=1)
        hidden = self.classifier[:-1](refined)
        out = {"logits": self.classifier[-1](hidden), "proposal": proposal}
        if return_features:
            out["z"] = z
            out["refined"] = refined
            out["hidden"] = hidden
        return out

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, classifier_hidden]`` (the classifier's hidden layer)."""
        return self.forward(x, return_features=True)["hidden"]

    def loss(
        self, outputs: dict, targets: torch.Tensor, *, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """FR loss ``lam * L_prop + L_cls`` (Eq. 8), both averaged over the batch.

        ``weight`` (per-class, optional) weights the classification term as in
        :func:`torch.nn.functional.cross_entropy` and, for detector k, the samples of
        class k versus the rest.

        ``targets`` are ``(B,)`` class indices or ``(B, K)`` probabilities ``p`` (mixup).
        With probabilities the loss is its expectation over the class drawn from ``p``:
        :func:`merkit.nets.augment.soft_cross_entropy`, and detector k's BCE against
        ``p_k w_k / W`` with sample weight ``W = sum_c p_c w_c`` (target ``p_k`` and weight
        1 without class weights). Both equal the class-index loss for one-hot ``p``.
        """
        logits, proposal = outputs["logits"], outputs["proposal"]
        if targets.is_floating_point():
            p = targets.to(proposal.dtype)
            l_cls = soft_cross_entropy(logits, p, weight)
            if weight is None:
                l_prop = F.binary_cross_entropy_with_logits(proposal, p)
            else:
                w = weight.to(p.dtype)
                total = (p * w).sum(1, keepdim=True).clamp_min(1e-12)  # no autocast matmul
                l_prop = F.binary_cross_entropy_with_logits(
                    proposal, p * w / total, weight=total.expand_as(proposal)
                )
            return self.lam * l_prop + l_cls
        l_cls = F.cross_entropy(logits, targets, weight=weight)
        onehot = F.one_hot(targets, self.num_classes).to(proposal.dtype)
        sample_w = None if weight is None else weight[targets].unsqueeze(1).expand_as(proposal)
        # mean over samples then over k == mean over all entries (same count per k)
        l_prop = F.binary_cross_entropy_with_logits(proposal, onehot, weight=sample_w)
        return self.lam * l_prop + l_cls
