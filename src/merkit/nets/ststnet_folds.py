"""k STSTNets trained as one computation over a shared mini-batch (fold-batched training).

STSTNet (:class:`merkit.nets.apexnets.STSTNet`) is one 16-channel 3x3 convolution,
ReLU, BatchNorm, a 3x3/3 max-pool, dropout, a 2x2 average pool and a linear layer. Its
training step is bound by memory passes over the 16 x 30 x 30 maps of every sample, not
by arithmetic (docs/cde-reproduction.md). For k folds that see the same mini-batch (each
fold's loss and statistics masked to its own training rows), the C++ kernel
``kernels/ststnet_folds.cpp`` keeps each (sample, fold) map in cache and returns only

* ``H1 = avgpool2(d * maxpool3(r))`` and ``H0 = avgpool2(d)``, ``[N, k, 16, 25]``, where
  ``r = relu(conv(x))`` and ``d`` is the dropout mask (0 or ``1 / (1 - p)``);
* ``S1 = sum r`` and ``S2 = sum r^2`` per fold and channel over the fold's rows.

The network's pooled features then are ``a * H1 + (beta - a * mu) * H0`` with
``mu = S1 / m``, ``var = S2 / m - mu^2`` (m = the fold's rows x 900 positions),
``a = gamma / sqrt(var + eps)``: BatchNorm is a per-channel affine map, max-pooling
commutes with it when ``gamma > 0`` (and pools the minimum of ``r`` when ``gamma < 0``;
the kernel pools ``sign(gamma) * r``), dropout and average-pooling are linear. So the
loss is computed from small tensors with autograd, and the kernel's backward only needs
the gradients of ``H1``, ``S1``, ``S2``: ``dW = G + dS1 * Q1 + 2 dS2 * Q2`` with
``Q1 = sum 1[z > 0] patch``, ``Q2 = sum r patch`` (accumulated in the forward pass) and
``G`` the gradient through the pooled elements (one patch per pooled element).

:func:`stst_layer` is that layer with autograd, computed by the kernel when it can be
built (:mod:`merkit.nets.kernels`) and by the same math in plain PyTorch ops otherwise
(also the reference the tests hold the kernel to). :func:`fold_linear` is the linear
layer on the pooled features with the BatchNorm map folded into its weights, also in the
kernel. :class:`StackedSTSTNet` holds k networks' parameters stacked (row f = fold f) and
computes the k masked losses.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from merkit.nets.apexnets import STSTNet
from merkit.nets.kernels import load_kernel

__all__ = ["StackedSTSTNet", "dropout_keep", "fold_linear", "stst_layer"]

_KERNEL = "ststnet_folds"


def _mix64(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_keep(
    seed: int, fold: int, step: int, rows: np.ndarray, n_elements: int, p: float
) -> np.ndarray:
    """The kernel's dropout decisions ``(len(rows), n_elements)`` bool (True = kept).

    Elements ``2i`` and ``2i + 1`` of sample ``row`` in fold ``fold`` at optimizer step
    ``step`` are kept when bits 40-63 and 16-39 of a counter-based hash of
    ``(seed, fold, step, row, i)`` reach ``p * 2^24``: a fold's masks depend on nothing
    else (not on the other folds of its batch, not on the thread count). Elements are
    ordered ``channel * 100 + pooled cell``.
    """
    with np.errstate(over="ignore"):
        golden = np.uint64(0x9E3779B97F4A7C15)
        k = _mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + golden)
        k = _mix64(k ^ (np.uint64(fold & 0xFFFFFFFFFFFFFFFF) * np.uint64(0xD1B54A32D192ED03)))
        k = _mix64(k ^ (np.uint64(step & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x8CB92BA72F3D8DD7)))
        rows = np.asarray(rows, dtype=np.int64).astype(np.uint64)
        k = _mix64(k ^ (rows * np.uint64(0xABC98388FB8FAC03)))
        i = np.arange((n_elements + 1) // 2, dtype=np.uint64)
        h = _mix64(k[:, None] + i[None, :] * golden)
    hi = (h >> np.uint64(40)).astype(np.int64)
    lo = ((h >> np.uint64(16)) & np.uint64(0xFFFFFF)).astype(np.int64)
    both = np.stack([hi, lo], axis=2).reshape(len(rows), 2 * len(i))[:, :n_elements]
    return both >= int(p * 16777216.0)


def _geometry(x: torch.Tensor) -> tuple[int, int, int, int]:
    """Conv map (Ho, Wo) and max-pooled (Ph, Pw) sizes of padded inputs ``x``."""
    ho, wo = x.shape[2] - 2, x.shape[3] - 2
    return ho, wo, (ho - 1) // 3 + 1, (wo - 1) // 3 + 1


class _KernelLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xpad, wb, sgn, mask, rows, folds, seed, step, p):  # noqa: D102
        ext = load_kernel(_KERNEL)
        h1, h0, arg, s, q = ext.forward(
            xpad, wb.detach().contiguous(), sgn, mask, rows, folds, int(seed), int(step), float(p)
        )
        ctx.save_for_backward(xpad, mask, arg, q)
        ctx.p, ctx.j = float(p), wb.shape[2]
        ctx.mark_non_differentiable(h0)
        ctx.set_materialize_grads(False)  # no zero-filled (N, k, 16, 25) gradient for H0
        return h1, h0, s[:, 0], s[:, 1]

    @staticmethod
    def backward(ctx, g_h1, g_h0, g_s1, g_s2):  # noqa: D102
        xpad, mask, arg, q = ctx.saved_tensors
        ext = load_kernel(_KERNEL)
        q1 = q[:, 0].transpose(1, 2)  # (F, 16, JS)
        q2 = q[:, 1].transpose(1, 2)
        grad = (  # (F, 16, JS)
            torch.zeros_like(q1)
            if g_h1 is None
            else ext.backward(xpad, mask, arg, g_h1.contiguous().float(), ctx.p)
        )
        if g_s1 is not None:
            grad = grad + g_s1[..., None] * q1
        if g_s2 is not None:
            grad = grad + 2.0 * g_s2[..., None] * q2
        return None, grad[..., : ctx.j].float(), None, None, None, None, None, None, None


class _KernelLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h1, h0, w1, w0):  # noqa: D102
        ctx.save_for_backward(h1, h0, w1)
        return load_kernel(_KERNEL).linear_forward(h1, h0, w1, w0)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        h1, h0, w1 = ctx.saved_tensors
        gh1, gw1, gw0 = load_kernel(_KERNEL).linear_backward(h1, h0, w1, g.contiguous().float())
        return (gh1.view_as(h1) if ctx.needs_input_grad[0] else None), None, gw1, gw0


def fold_linear(
    h1: torch.Tensor,
    h0: torch.Tensor,
    w1: torch.Tensor,
    w0: torch.Tensor,
    *,
    kernel: bool = True,
) -> torch.Tensor:
    """The k folds' linear layers on their pooled features ``a * H1 + shift * H0``.

    With the BatchNorm map folded into the weights (``w1 = fc_w * a``,
    ``w0 = fc_w * shift``, per channel): ``out[n, f] = w1[f] @ H1[n, f] + w0[f] @ H0[n, f]``
    (``H1``, ``H0`` ``[N, k, 16, 25]`` flattened as the module flattens; ``w1``, ``w0``
    ``[k, O, 400]``), so no pass over the features is spent on the map. Computed by the
    kernel in one pass when it can be built (``kernel``), else by ``einsum``; gradients for
    ``h1``, ``w1``, ``w0`` (``h0`` has none).
    """
    if kernel and load_kernel(_KERNEL) is not None:
        return _KernelLinear.apply(
            h1.contiguous(), h0.contiguous(), w1.contiguous(), w0.contiguous()
        )
    return torch.einsum("nkd,kod->nko", h1.flatten(2), w1) + torch.einsum(
        "nkd,kod->nko", h0.flatten(2), w0
    )


def _eager_layer(xpad, wb, sgn, mask, rows, folds, seed, step, p):
    """:func:`stst_layer` in plain PyTorch ops (one fold at a time), autograd included."""
    n, k = mask.shape
    ho, wo, ph, pw = _geometry(xpad)
    ah, aw = ph // 2, pw // 2
    cin = xpad.shape[1]
    h1 = xpad.new_zeros(n, k, 16, ah * aw)
    h0 = xpad.new_zeros(n, k, 16, ah * aw)
    s1, s2 = [], []
    scale = 1.0 / (1.0 - p) if p < 1 else 0.0
    for f in range(k):
        sel = torch.nonzero(mask[:, f]).flatten()
        w = wb[f, :, :-1].reshape(16, cin, 3, 3)
        r = torch.relu(F.conv2d(xpad[sel], w, wb[f, :, -1]))
        s1.append(r.sum(dim=(0, 2, 3)).double())
        s2.append((r * r).sum(dim=(0, 2, 3)).double())
        sg = sgn[f].view(1, 16, 1, 1)
        pooled = sg * F.max_pool2d(sg * r, 3, 3, padding=1)
        keep = dropout_keep(seed, int(folds[f]), step, rows[sel].numpy(), 16 * ph * pw, p)
        d = torch.as_tensor(keep, dtype=xpad.dtype).view(-1, 16, ph, pw) * scale
        h1[sel, f] = F.avg_pool2d(d * pooled, 2).flatten(2)
        h0[sel, f] = F.avg_pool2d(d, 2).flatten(2)
    return h1, h0, torch.stack(s1), torch.stack(s2)


def stst_layer(
    xpad: torch.Tensor,
    wb: torch.Tensor,
    sgn: torch.Tensor,
    mask: torch.Tensor,
    rows: torch.Tensor,
    folds: torch.Tensor,
    *,
    seed: int,
    step: int,
    p: float,
    kernel: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """STSTNet's convolution layer for k folds over a shared batch (module docstring).

    Parameters
    ----------
    xpad : Tensor
        ``[N, Cin, H + 4, W + 4]`` float32, the inputs zero-padded by 2 (shared).
    wb : Tensor
        ``[k, 16, Cin * 9 + 1]`` each fold's convolution weights (flattened ``Cin, 3, 3``)
        and bias; the only input with a gradient.
    sgn : Tensor
        ``[k, 16]`` float32, +1 / -1: the sign of each BatchNorm scale.
    mask : Tensor
        ``[N, k]`` uint8, 1 where the row is a training row of the fold.
    rows : Tensor
        ``[N]`` int64 dataset rows; ``folds`` ``[k]`` int64 fold indices (dropout keys).
    seed, step : int
        Dropout key (step = optimizer step of the run).
    p : float
        Dropout probability.
    kernel : bool
        Use the C++ kernel when it can be built (False: the PyTorch ops).

    Returns
    -------
    H1, H0 : Tensor
        ``[N, k, 16, 25]`` float32 (zero for masked rows).
    S1, S2 : Tensor
        ``[k, 16]`` float64 sums of r and r^2 over each fold's rows and positions.
    """
    args = (
        xpad.contiguous(),
        wb,
        sgn.contiguous(),
        mask.contiguous(),
        rows.contiguous(),
        folds.contiguous(),
        int(seed),
        int(step),
        float(p),
    )
    if kernel and load_kernel(_KERNEL) is not None:
        return _KernelLayer.apply(*args)
    return _eager_layer(*args)


class StackedSTSTNet:
    """The parameters of k :class:`STSTNet` as stacked tensors (row f = fold f).

    Parameters
    ----------
    models : list of STSTNet
        The folds' freshly initialised networks (same geometry and classes).
    """

    def __init__(self, models: list[STSTNet]) -> None:
        first = models[0]
        self.in_channels = first.in_channels
        self.p = float(first.dropout.p)
        self.eps = float(first.bn1.eps)
        self.momentum = float(first.bn1.momentum)
        convs = ("conv1", "conv2", "conv3")
        bns = ("bn1", "bn2", "bn3")

        def stack(fn) -> torch.Tensor:
            return torch.stack([fn(m) for m in models]).detach().clone().contiguous()

        def conv_wb(m):
            parts = [
                torch.cat([getattr(m, c).weight.flatten(1), getattr(m, c).bias[:, None]], 1)
                for c in convs
            ]
            return torch.cat(parts, 0)

        self.wb = stack(conv_wb).requires_grad_()
        self.gamma = stack(
            lambda m: torch.cat([getattr(m, b).weight for b in bns])
        ).requires_grad_()
        self.beta = stack(lambda m: torch.cat([getattr(m, b).bias for b in bns])).requires_grad_()
        self.fc_w = stack(lambda m: m.fc.weight).requires_grad_()
        self.fc_b = stack(lambda m: m.fc.bias).requires_grad_()
        self.running_mean = stack(lambda m: torch.cat([getattr(m, b).running_mean for b in bns]))
        self.running_var = stack(lambda m: torch.cat([getattr(m, b).running_var for b in bns]))
        self.batches_tracked = stack(lambda m: m.bn1.num_batches_tracked)

    def parameters(self) -> list[torch.Tensor]:
        """The stacked trainable tensors, each ``[k, ...]``."""
        return [self.wb, self.gamma, self.beta, self.fc_w, self.fc_b]

    def state(self) -> dict[str, torch.Tensor]:
        """Every stacked tensor (parameters and BatchNorm buffers), for checkpoints."""
        return {
            "wb": self.wb,
            "gamma": self.gamma,
            "beta": self.beta,
            "fc_w": self.fc_w,
            "fc_b": self.fc_b,
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "batches_tracked": self.batches_tracked,
        }

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state` in place."""
        with torch.no_grad():
            for name, value in self.state().items():
                value.copy_(state[name])

    def logits(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        rows: torch.Tensor,
        folds: torch.Tensor,
        *,
        seed: int,
        step: int,
        kernel: bool = True,
    ) -> torch.Tensor:
        """Training-mode logits ``[N, k, K]`` of inputs ``x`` ``[N, C, H, W]`` (shared).

        Each fold's BatchNorm statistics come from its own rows (``mask`` ``[N, k]``
        bool) only, and its running statistics are updated as the module's would be.
        Rows outside a fold's mask give finite logits that its loss must ignore.
        """
        xpad = F.pad(x[:, : self.in_channels], (2, 2, 2, 2))
        m8 = mask.to(torch.uint8)
        with torch.no_grad():
            sgn = torch.where(self.gamma >= 0, 1.0, -1.0).float()
        h1, h0, s1, s2 = stst_layer(
            xpad, self.wb, sgn, m8, rows, folds, seed=seed, step=step, p=self.p, kernel=kernel
        )
        ho, wo, _, _ = _geometry(xpad)
        count = mask.sum(0).double() * (ho * wo)  # (k,)
        safe = count.clamp_min(1.0)[:, None]
        mu = s1 / safe
        var = (s2 / safe - mu * mu).clamp_min(0.0)
        a = self.gamma.double() / torch.sqrt(var + self.eps)
        shift = self.beta.double() - a * mu
        with torch.no_grad():
            active = count > 1
            unbiased = var * (count / (count - 1).clamp_min(1.0))[:, None]
            m = self.momentum
            new_mean = (1 - m) * self.running_mean.double() + m * mu
            new_var = (1 - m) * self.running_var.double() + m * unbiased
            self.running_mean.copy_(
                torch.where(active[:, None], new_mean.float(), self.running_mean)
            )
            self.running_var.copy_(torch.where(active[:, None], new_var.float(), self.running_var))
            self.batches_tracked += active.long()
        # the pooled features a * H1 + shift * H0 (per channel) meet the linear layer as
        # its weights times a and shift: (k, O, 16, 25) instead of (N, k, 16, 25) products
        k, out = self.fc_w.shape[:2]
        w = self.fc_w.view(k, out, 16, -1)  # the module's flatten order: channel, cell
        w1 = (w * a.float()[:, None, :, None]).flatten(2)
        w0 = (w * shift.float()[:, None, :, None]).flatten(2)
        return fold_linear(h1, h0, w1, w0, kernel=kernel) + self.fc_b[None]

    def write_to(self, models: list[STSTNet]) -> None:
        """Copy fold f's stacked parameters and buffers into ``models[f]``."""
        sizes = [3, 5, 8]
        with torch.no_grad():
            for f, model in enumerate(models):
                start = 0
                for i, size in enumerate(sizes, start=1):
                    conv, bn = getattr(model, f"conv{i}"), getattr(model, f"bn{i}")
                    part = slice(start, start + size)
                    conv.weight.copy_(self.wb[f, part, :-1].reshape(conv.weight.shape))
                    conv.bias.copy_(self.wb[f, part, -1])
                    bn.weight.copy_(self.gamma[f, part])
                    bn.bias.copy_(self.beta[f, part])
                    bn.running_mean.copy_(self.running_mean[f, part])
                    bn.running_var.copy_(self.running_var[f, part])
                    bn.num_batches_tracked.copy_(self.batches_tracked[f])
                    start += size
                model.fc.weight.copy_(self.fc_w[f])
                model.fc.bias.copy_(self.fc_b[f])
