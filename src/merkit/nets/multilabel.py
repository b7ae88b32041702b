"""Multi-label (action-unit) training through the one training loop of :mod:`merkit.nets.train`.

AU classification (e.g. the 12-AU task of DFME, Zhao et al., IEEE TAFFC 2023,
doi:10.1109/TAFFC.2023.3341918) gives every clip a 0/1 target per AU. Any registered
network built with ``num_classes = n_aus`` scores the AUs with its logits; the
:class:`MultiLabelNet` wrapper trains them with the binary cross-entropy of every AU
(FR: plus ``lam`` times the BCE of its detectors against the same targets, the
multi-label form of its proposal loss).

:func:`merkit.nets.train.fit` moves one integer target per sample, so the multi-hot
rows travel as bit codes (:func:`encode_multilabel`: AU ``j`` -> bit ``j``) that the
wrapper's :meth:`~MultiLabelNet.loss` decodes. The wrapper's ``"logits"`` output is the
one-hot vector of the predicted code, so the loop's running "accuracy" is the exact-match
ratio (every AU right). The network's own AU logits are ``"au_logits"``; the weights
worth saving are those of :attr:`MultiLabelNet.net` (a plain registry network).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from merkit.nets.blocks import logits_of

__all__ = ["MAX_LABELS", "MultiLabelNet", "decode_multilabel", "encode_multilabel"]

#: most labels a bit code carries (the one-hot "logits" have 2 ** n columns)
MAX_LABELS = 16


def _check_width(n: int) -> None:
    if not 1 <= n <= MAX_LABELS:
        raise ValueError(f"multi-label targets need 1..{MAX_LABELS} labels, got {n}")


def encode_multilabel(Y: np.ndarray) -> np.ndarray:
    """Multi-hot rows ``(n, L)`` of 0/1 -> int64 codes ``(n,)`` (label ``j`` is bit ``j``)."""
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"multi-label targets must be (n, n_labels), got shape {Y.shape}")
    _check_width(Y.shape[1])
    if not np.isin(Y, (0, 1)).all():
        raise ValueError(f"multi-label targets must be 0/1, found {np.unique(Y)[:10].tolist()}")
    return (Y.astype(np.int64) << np.arange(Y.shape[1], dtype=np.int64)).sum(axis=1)


def decode_multilabel(codes: np.ndarray | torch.Tensor, n_labels: int):
    """Inverse of :func:`encode_multilabel` (NumPy int8 or a float32 tensor, ``(n, L)``)."""
    _check_width(n_labels)
    if isinstance(codes, torch.Tensor):
        bits = torch.arange(n_labels, device=codes.device)
        return ((codes.unsqueeze(1) >> bits) & 1).to(torch.float32)
    codes = np.asarray(codes, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_labels)) & 1).astype(np.int8)


class MultiLabelNet(nn.Module):
    """A registry network trained as ``n_labels`` independent sigmoid outputs.

    Parameters
    ----------
    net : nn.Module
        Built with ``num_classes = n_labels``; returns logits or a dict with ``"logits"``
        (and, for FR, ``"proposal"``).
    n_labels : int
        L, at most :data:`MAX_LABELS`.
    threshold : float
        Probability above which a label is predicted (for the exact-match "logits").
    pos_weight : sequence of float, optional
        Per-label weight of the positives in the BCE (``None``: unweighted).

    Shapes
    ------
    ``x -> {"logits": [B, 2 ** L] one-hot of the predicted code, "au_logits": [B, L]}``
    """

    def __init__(
        self, net: nn.Module, n_labels: int, *, threshold: float = 0.5,
        pos_weight: np.ndarray | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_width(n_labels)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.net = net
        self.n_labels = int(n_labels)
        self.threshold = float(threshold)
        self.lam = float(getattr(net, "lam", 0.0))
        pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        if pw is not None and pw.shape != (self.n_labels,):
            raise ValueError(f"pos_weight needs {self.n_labels} values, got {tuple(pw.shape)}")
        self.register_buffer("pos_weight", pw, persistent=False)
        self.register_buffer("_bits", torch.arange(self.n_labels), persistent=False)

    def forward(self, x: torch.Tensor) -> dict:
        out = self.net(x)
        au = logits_of(out)
        if au.shape[1] != self.n_labels:
            raise ValueError(
                f"MultiLabelNet: the network gives {au.shape[1]} outputs for {self.n_labels} labels"
            )
        code = ((au.detach() > np.log(self.threshold / (1 - self.threshold))).long()
                << self._bits).sum(dim=1)  # fmt: skip
        result = {"logits": F.one_hot(code, 2**self.n_labels).to(au.dtype), "au_logits": au}
        if isinstance(out, dict) and "proposal" in out:
            result["proposal"] = out["proposal"]
        return result

    def loss(
        self, outputs: dict, targets: torch.Tensor, *, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean BCE over labels and samples (+ ``lam`` x the detectors' BCE for FR).

        ``targets`` are the bit codes of :func:`encode_multilabel`; ``weight`` (per-class
        weights of the single-label loop) does not apply and must be None.
        """
        if weight is not None:
            raise ValueError("MultiLabelNet: per-class weights do not apply; use pos_weight")
        y = decode_multilabel(targets, self.n_labels)
        loss = F.binary_cross_entropy_with_logits(outputs["au_logits"], y,
                                                  pos_weight=self.pos_weight)  # fmt: skip
        if "proposal" in outputs and self.lam > 0:
            loss = loss + self.lam * F.binary_cross_entropy_with_logits(outputs["proposal"], y)
        return loss

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features of the wrapped network."""
        return self.net.features(x)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Per-label probabilities ``[B, L]`` (sigmoid of the network's logits)."""
        return torch.sigmoid(logits_of(self.net(x)))
