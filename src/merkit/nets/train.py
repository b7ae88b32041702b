"""The one training loop of merkit's networks and prediction.

Model protocol
--------------
``model(x)`` returns either logits ``[B, K]`` or a dict with at least ``"logits"``.
If the model defines ``loss(outputs, targets, *, weight=None)`` (e.g. FR, whose loss adds
the proposal term), :func:`fit` minimises that; otherwise the softmax cross-entropy of
the logits (with optional class weights). Nothing else is assumed.

Reproducibility
---------------
:func:`fit` and :func:`train_fold` run inside :func:`torch_session`: the global torch RNG
is forked (and restored afterwards), seeded with ``cfg.seed``, torch uses ``cfg.threads``
intra-op threads (default 1) and deterministic algorithms (``warn_only``). Batches come
from :func:`merkit.nets.data.make_loader`, whose shuffling has its own seeded generator.
The same seed therefore gives the same weights, bit for bit, on the same machine, whether
the inputs are in memory or read clip by clip from disk (a
:class:`~merkit.nets.data.ClipArray`) and whatever the number of loader workers.

Devices
-------
:func:`fit`, :func:`predict`, :func:`embed` and :func:`train_fold` take ``device``
(:func:`merkit.nets.device.resolve_device`: ``"auto"``, ``"cpu"``, ``"cuda"``,
``"cuda:N"``, ``"mps"`` or a :class:`torch.device`; None keeps the model where it is).
The model, batches, loss and metrics live there; results come back as CPU NumPy.
``cfg.precision`` selects float32 or mixed-precision autocast (docs/devices.md).

There is no early stopping and no model selection: a model is trained for
``cfg.epochs`` and the last weights are used; ``val_loader`` is only monitored.

Leak audit
----------
``train_fold(audit_every=N)`` also records the test rows' probabilities after every
``N``-th epoch and the last (:func:`audit_epochs`), so that the selections published
papers made on test subjects (best epoch per subject, ...) can be *measured*
(:mod:`merkit.results.audit`). Recording is inference in eval mode inside a forked RNG
state: the trained weights and the honest predictions are bit for bit those of a run
without it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import pickle
import re
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    RandomSampler,
    SequentialSampler,
    TensorDataset,
    default_collate,
)

from merkit._io import atomic_write
from merkit.nets import create_model
from merkit.nets.augment import POLICIES, augment_generator, get_policy, soft_cross_entropy
from merkit.nets.blocks import logits_of
from merkit.nets.data import ClipArray, ClipDataset, make_loader
from merkit.nets.device import (
    autocast,
    check_precision,
    deterministic_cuda,
    grad_scaler,
    host,
    model_device,
    resolve_device,
)
from merkit.nets.multilabel import MultiLabelNet, encode_multilabel

log = logging.getLogger(__name__)

__all__ = [
    "PREDICT_BATCH",
    "PRESETS",
    "FoldResult",
    "TrainConfig",
    "audit_epochs",
    "WeightsFileError",
    "check_training_options",
    "class_weights",
    "compute_loss",
    "SAMPLERS",
    "SCHEDULERS",
    "WeightEMA",
    "embed",
    "fit",
    "fold_model",
    "fold_seed",
    "load_weights",
    "lr_schedule",
    "predict",
    "read_state_dict",
    "save_weights",
    "fold_outputs",
    "torch_session",
    "train_fold",
]

_OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "step", "cosine")
SAMPLERS = ("shuffle", "balanced")


#: what each numeric training option must be, and why
_OPTION_RULES = {
    "epochs": (1, "0 epochs would score the untrained network"),
    "batch_size": (1, "a batch holds at least 1 clip"),
    "threads": (1, "torch needs at least 1 thread"),
    "step_size": (1, "the step scheduler decays the lr every step_size >= 1 epochs"),
    "prior_epochs": (0, "0 skips the prior stage"),
}
#: prediction batch of flow images (clips are predicted in training-size batches: a batch
#: of 256 clips of 16 x 112 x 112 needs several GB of activations)
PREDICT_BATCH = 256
#: the options that ``merkit train`` takes under the same name
_CLI_OPTIONS = (
    "epochs", "batch_size", "lr", "threads", "prior_epochs", "label_smoothing", "ema_decay",
)  # fmt: skip
#: options that are fractions in [0, 1), and what 0 means
_FRACTIONS = {
    "label_smoothing": "0 = plain cross-entropy, e.g. 0.1",
    "ema_decay": "0 = the last weights, e.g. 0.999",
}


def check_training_options(**options: float | int | None) -> None:
    """Check numeric training options before any work starts (``None`` = not given).

    ``epochs``, ``batch_size``, ``threads``, ``step_size`` must be integers >= 1,
    ``prior_epochs`` an integer >= 0, ``lr`` a finite number > 0 and ``label_smoothing``,
    ``ema_decay`` numbers in [0, 1).

    Raises
    ------
    ValueError
        One line naming the option (and its ``merkit train`` option), the value and what it
        must be.
    """
    for name, value in options.items():
        if value is None:
            continue
        flag = f" (--{name.replace('_', '-')})" if name in _CLI_OPTIONS else ""
        if name == "lr":
            try:
                ok = np.isfinite(float(value)) and float(value) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(
                    f"lr={value!r}{flag}: the learning rate must be a number > 0, e.g. 1e-3"
                )
            continue
        if name in _FRACTIONS:
            try:
                ok = not isinstance(value, bool) and 0 <= float(value) < 1
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{name}={value!r}{flag}: must be a number in [0, 1); "
                                 f"{_FRACTIONS[name]}")  # fmt: skip
            continue
        least, why = _OPTION_RULES[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}={value!r}{flag}: must be a whole number >= {least}")
        if value < least:
            raise ValueError(f"{name}={value}{flag}: must be at least {least}; {why}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (all of them; nothing is read from elsewhere).

    Attributes
    ----------
    epochs, batch_size : int
    optimizer : {"sgd", "adam", "adamw"}
    lr, momentum, weight_decay : float
        ``momentum`` applies to SGD only.
    scheduler : {"none", "step", "cosine"}
        ``step``: multiply lr by ``gamma`` every ``step_size`` epochs; ``cosine``: cosine
        annealing to 0 over ``epochs``.
    step_size : int
    gamma : float
    class_weight : None, "balanced" or sequence of float
        Per-class loss weights; "balanced" = n / (K * n_k) from the training labels.
    num_classes : int
        K (used by "balanced" and by :func:`train_fold` to build the model).
    seed : int
    threads : int
        torch intra-op threads.
    deterministic : bool
        ``torch.use_deterministic_algorithms(True, warn_only=True)`` while training (and
        cuDNN's deterministic algorithms on CUDA).
    precision : {"32", "16-mixed", "bf16-mixed"}
        float32, or autocast to float16 (with a gradient scaler) or bfloat16 in the
        forward pass and loss (:mod:`merkit.nets.device`).
    augment : str
        Augmentation policy of the training batches
        (:data:`merkit.nets.augment.POLICIES`; ``"none"``, the presets', trains on the
        inputs as they are).
    flow_channels : {"uvs", "svu"}
        Channel order of flow inputs, which a flow policy needs to find u and v.
    prior_epochs : int
        Epochs of the prior stage of a two-stage network (one declaring
        ``training_stages = ("prior",)``, e.g. MERSiam), trained before the ``epochs`` of
        the target stage (:func:`fit`); 0 (the default) trains the target stage only.
    label_smoothing : float
        In [0, 1): cross-entropy against ``(1 - eps) onehot + eps / K`` (the targets of
        Szegedy et al., CVPR 2016, doi:10.1109/CVPR.2016.308; torch's
        ``label_smoothing``, class weights included); 0 = plain cross-entropy.
    sampler : {"shuffle", "balanced"}
        How each epoch's training rows are drawn: ``shuffle``, every row once in a random
        order; ``balanced``, as many rows drawn with replacement, each with probability
        proportional to ``1 / n_k`` of its class k (every class equally often in
        expectation). Per-fold path only.
    ema_decay : float
        In [0, 1): the network predicts (and is saved) with an exponential moving average
        of its weights and BatchNorm statistics, updated after every optimiser step and
        bias-corrected as Adam's moments, ``avg_t / (1 - decay^t)`` (:class:`WeightEMA`);
        0 = the last weights. Test-fold predictions of the leak audit use the average too.
    """

    epochs: int = 100
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: str = "none"
    step_size: int = 10
    gamma: float = 0.5
    class_weight: str | tuple[float, ...] | None = None
    num_classes: int = 3
    seed: int = 0
    threads: int = 1
    deterministic: bool = True
    precision: str = "32"
    augment: str = "none"
    flow_channels: str = "uvs"
    prior_epochs: int = 0
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    sampler: str = "shuffle"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        get_policy(self.augment)  # an unknown name: one line listing the known ones
        if self.flow_channels not in ("uvs", "svu"):
            raise ValueError(f"flow_channels={self.flow_channels!r}; expected 'uvs' or 'svu'")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}; expected one of {_OPTIMIZERS}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r} (--sampler): expected one of "
                             f"{', '.join(SAMPLERS)}")  # fmt: skip
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler={self.scheduler!r}; expected one of {SCHEDULERS}")
        check_training_options(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, threads=self.threads,
            step_size=self.step_size, prior_epochs=self.prior_epochs,
            label_smoothing=self.label_smoothing, ema_decay=self.ema_decay,
        )  # fmt: skip
        cw = self.class_weight
        if isinstance(cw, str) and cw != "balanced":
            raise ValueError(f"class_weight={cw!r}; expected None, 'balanced' or a sequence")
        if cw is not None and not isinstance(cw, str):
            object.__setattr__(self, "class_weight", tuple(float(v) for v in cw))
            if len(self.class_weight) != self.num_classes:
                raise ValueError(
                    f"class_weight has {len(self.class_weight)} entries, num_classes is "
                    f"{self.num_classes}"
                )

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        """A published setting (see :data:`PRESETS`) with optional overrides."""
        if name not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        """Plain dict (for results ``params``).

        ``precision`` is left out when float32, ``augment`` when ``"none"`` and
        ``flow_channels`` unless a flow policy reads it with a value other than ``"uvs"``
        ``prior_epochs``, ``label_smoothing`` and ``ema_decay`` when 0 and ``sampler`` when
        ``"shuffle"``, so the
        parameters (and the run ids hashed from them) of runs without these options are
        those of before the options existed.
        """
        d = asdict(self)
        if d["precision"] == "32":
            del d["precision"]
        if d["augment"] == "none":
            del d["augment"]
        if POLICIES[self.augment].kind != "flow" or self.flow_channels == "uvs":
            del d["flow_channels"]
        for name in ("prior_epochs", "label_smoothing", "ema_decay"):
            if d[name] == 0:
                del d[name]
        if d["sampler"] == "shuffle":
            del d["sampler"]
        if isinstance(d["class_weight"], tuple):
            d["class_weight"] = list(d["class_weight"])
        return d


#: published training settings. FR (Zhou et al. 2022, Sec. 6): CDE / ablation SGD without
#: momentum, batch 32, lr 1e-3; CDMER and single-database lr 5e-4, momentum 0.8 (the paper
#: gives no epoch count: 100 here). STSTNet (Liong et al. 2019, authors' code): Adam 5e-5,
#: batch 256, 800 epochs. RCN-A (Xia et al. 2020, authors' code): SGD 5e-4, momentum 0.9,
#: batch 64, 100 epochs, lr x0.5 every 10 epochs. HTNet (Wang et al. 2024, authors'
#: ``main_HTNet.py``): STSTNet's setting, Adam 5e-5, batch 256, 800 epochs (unshuffled
#: there). ``fr_adam``: the FR group's public MEGC 2019 Dual-Inception code (Adam lr 1e-4,
#: 40 epochs; batch 32 here, 3 there), the setting that trains FR on the real CDE flows
#: where the paper's plain SGD barely moves it (docs/cde-reproduction.md). ``frl_dgt``:
#: FRL-DGT's settings could not be read (only the paper's abstract was reachable, no
#: authors' code), so this is merkit's setting for a small Transformer trained from scratch
#: (AdamW lr 5e-4, weight decay 0.05, batch 32, cosine decay over 100 epochs; not tuned on
#: any fold; docs/cde-reproduction.md, "FRL-DGT").
PRESETS: dict[str, TrainConfig] = {
    "fr_cde": TrainConfig(epochs=100, batch_size=32, optimizer="sgd", lr=1e-3),
    "fr_adam": TrainConfig(epochs=40, batch_size=32, optimizer="adam", lr=1e-4),
    "fr_cdmer": TrainConfig(epochs=100, batch_size=32, optimizer="sgd", lr=5e-4, momentum=0.8),
    "ststnet": TrainConfig(epochs=800, batch_size=256, optimizer="adam", lr=5e-5),
    "htnet": TrainConfig(epochs=800, batch_size=256, optimizer="adam", lr=5e-5),
    "frl_dgt": TrainConfig(
        epochs=100,
        batch_size=32,
        optimizer="adamw",
        lr=5e-4,
        weight_decay=0.05,
        scheduler="cosine",
    ),
    "rcn_a": TrainConfig(
        epochs=100,
        batch_size=64,
        optimizer="sgd",
        lr=5e-4,
        momentum=0.9,
        scheduler="step",
        step_size=10,
        gamma=0.5,
    ),
    "mersiam": TrainConfig(
        epochs=30,
        prior_epochs=10,
        batch_size=8,
        optimizer="sgd",
        lr=1e-2,
        momentum=0.9,
    ),
}


_FLUSH_DEPTH = [0]  # open torch_session()s (flush-to-zero stays on until the outermost exits)


@contextlib.contextmanager
def torch_session(seed: int, threads: int = 1, deterministic: bool = True) -> Iterator[None]:
    """Seed torch (forked RNG, restored on exit), set threads and determinism temporarily.

    Denormal floats are flushed to zero inside the session (``torch.set_flush_denormal``;
    off again on exit): Adam's second-moment estimates of tiny gradients become denormal,
    and arithmetic on them made FR's training steps 1.5-2x slower.
    """
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(int(seed))
        torch.set_num_threads(int(threads))
        torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)
        _FLUSH_DEPTH[0] += 1
        torch.set_flush_denormal(True)
        try:
            yield
        finally:
            _FLUSH_DEPTH[0] -= 1
            torch.set_flush_denormal(_FLUSH_DEPTH[0] > 0)  # nested sessions keep it on
            torch.set_num_threads(old_threads)
            torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def class_weights(y: np.ndarray, cfg: TrainConfig) -> torch.Tensor | None:
    """The per-class loss weights of ``cfg`` for training labels ``y`` (None = unweighted)."""
    if cfg.class_weight is None:
        return None
    if cfg.class_weight == "balanced":
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=cfg.num_classes)
        w = np.where(counts > 0, len(y) / (cfg.num_classes * np.maximum(counts, 1)), 0.0)
        return torch.as_tensor(w, dtype=torch.float32)
    return torch.as_tensor(cfg.class_weight, dtype=torch.float32)


def _check_smoothing(model: nn.Module, label_smoothing: float) -> None:
    """Label smoothing applies to cross-entropy only, not to a network's own ``loss``."""
    if label_smoothing and hasattr(model, "loss"):
        raise ValueError(f"label_smoothing={label_smoothing}: {type(model).__name__} has a "
                         "loss of its own; train it without label smoothing")  # fmt: skip


def compute_loss(
    model: nn.Module,
    outputs,
    targets: torch.Tensor,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """``model.loss(outputs, targets, weight=...)`` if defined, else cross-entropy.

    ``targets``: ``(B,)`` class indices, or ``(B, K)`` float probabilities (mixup), whose
    cross-entropy is :func:`merkit.nets.augment.soft_cross_entropy`. ``label_smoothing``
    (cross-entropy only; :class:`TrainConfig`) smooths either kind of target.
    """
    if hasattr(model, "loss"):
        _check_smoothing(model, label_smoothing)
        return model.loss(outputs, targets, weight=weight)
    if targets.is_floating_point():
        return soft_cross_entropy(logits_of(outputs), targets, weight, label_smoothing)
    return F.cross_entropy(
        logits_of(outputs), targets, weight=weight, label_smoothing=label_smoothing
    )


def _augmentation(model: nn.Module, cfg: TrainConfig, seed: int | None):
    """The bound policy of ``cfg.augment`` and its generator (None, None: no augmentation)."""
    if cfg.augment == "none":
        return None, None
    policy = get_policy(cfg.augment, channels=cfg.flow_channels, num_classes=cfg.num_classes)
    if getattr(model, "input_kind", None) == "flowseq":  # no policy knows flow sequences
        raise ValueError(
            f"augment={cfg.augment!r}: {type(model).__name__} takes flow sequences; no "
            "augmentation policy is defined for them (use 'none')"
        )
    if policy.mixes and hasattr(model, "loss") and not getattr(model, "soft_targets", False):
        raise ValueError(
            f"augment={cfg.augment!r} mixes labels, but {type(model).__name__}'s loss takes "
            "class indices only (multi-label training); use a policy without mixup"
        )
    return policy, augment_generator(cfg.seed, seed)


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)  # fmt: skip
    # the fused (single-kernel) Adam: 2-5x faster steps than the default multi-tensor one
    # on CPU for FR's ~10 M weights (benchmarks/nets_speed.py); same update rule
    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    fused = all(p.device.type in ("cpu", "cuda", "mps") for p in params) or None
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    return None


def lr_schedule(cfg: TrainConfig) -> list[float]:
    """The learning rate of each epoch under ``cfg.scheduler``: the values :func:`fit` uses
    (the same torch scheduler, stepped once per epoch)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    sched = _scheduler(opt, cfg)
    out = []
    for _ in range(cfg.epochs):
        out.append(float(opt.param_groups[0]["lr"]))
        if sched is not None:
            opt.step()
            sched.step()
    return out


def fold_model(
    model_name: str, cfg: TrainConfig, *, seed: int, fold_index: int, num_classes: int,
    model_kwargs: Mapping | None = None,
) -> nn.Module:  # fmt: skip
    """A fold's freshly initialised network, built under :func:`fold_seed` (the same weights
    on every training path)."""
    with torch_session(fold_seed(seed, fold_index), cfg.threads, cfg.deterministic):
        return create_model(model_name, num_classes=num_classes, **dict(model_kwargs or {}))


def _labels_of(loader: DataLoader) -> np.ndarray:
    ds = loader.dataset
    if hasattr(ds, "tensors"):
        return ds.tensors[1].numpy()
    if isinstance(ds, ClipDataset):  # no clip read, no draw from the loader's generator
        return ds.y.numpy()
    return np.concatenate([np.asarray(y) for _, y in loader])


def _in_memory(loader) -> tuple[torch.Tensor, ...] | None:
    """The tensors of a plain in-memory DataLoader (what :func:`make_loader` builds), else None.

    "Plain": a :class:`TensorDataset`, no workers, the default collate and an automatic
    batch sampler over a sequential or (without replacement) random sampler.
    """
    if not isinstance(loader, DataLoader) or not isinstance(loader.dataset, TensorDataset):
        return None
    sampler = loader.sampler
    plain = (
        loader.num_workers == 0 and loader.collate_fn is default_collate
        and loader.batch_size is not None and type(loader.batch_sampler) is BatchSampler
        and (type(sampler) is SequentialSampler or (
            type(sampler) is RandomSampler and not sampler.replacement
            and sampler._num_samples is None and sampler.generator is loader.generator))
    )  # fmt: skip
    return loader.dataset.tensors if plain else None


def _index_batches(loader: DataLoader, n: int) -> Iterator[torch.Tensor]:
    """Row indices of one pass over an in-memory loader, as iterating the loader gives them.

    The random draws are those of ``iter(loader)`` (torch >= 2.0): the iterator's base seed
    from ``loader.generator`` (the global generator when None), then the sampler's
    permutation, and a second permutation when the sampler is exhausted. Batches are
    therefore the same, and the RNG states after the pass are the same, as with the
    DataLoader (``tests/nets/test_train.py`` checks it), without its per-sample Python work.
    """
    gen = loader.generator
    torch.empty((), dtype=torch.int64).random_(generator=gen)  # the iterator's base seed
    if isinstance(loader.sampler, RandomSampler):
        if gen is None:  # RandomSampler seeds a private generator from the global one
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=gen)
        torch.randperm(n, generator=gen)  # drawn when the sampler is exhausted
    else:
        order = torch.arange(n)
    bs = int(loader.batch_size)
    stop = n - n % bs if loader.drop_last else n
    for start in range(0, stop, bs):
        yield order[start : start + bs]


def _channels_last(model: nn.Module, x: torch.Tensor) -> bool:
    """Train in channels-last layout: 4-D inputs and convolutions on feature maps.

    Measured on CPU (1 thread): FR +18 %, Basic/Dual-Inception +30 %, OFF-ApexNet +8 %
    samples/s (max-pooling and the small convolutions are much faster in NHWC); STSTNet,
    whose only convolutions read the 3 input channels, is 25 % slower and stays NCHW.
    """
    return x.ndim == 4 and any(
        isinstance(m, nn.Conv2d) and m.in_channels > 4 for m in model.modules()
    )


def _evaluate(
    model: nn.Module, loader: DataLoader, weight, device: torch.device
) -> tuple[float, float]:
    model.eval()
    total, correct, n = 0.0, 0, 0
    with torch.inference_mode():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            total += float(compute_loss(model, out, y, weight)) * len(y)
            correct += int((logits_of(out).argmax(1) == y).sum())
            n += len(y)
    return total / max(n, 1), correct / max(n, 1)


class WeightEMA:
    """Bias-corrected exponential moving average of a network's floating-point tensors.

    After step t the average of a tensor is ``a_t / (1 - decay^t)`` with
    ``a_t = decay a_{t-1} + (1 - decay) w_t`` and ``a_0 = 0``: Adam's moment correction, so
    the initial weights carry no weight and a short run is not pulled towards them.
    Parameters and floating buffers (BatchNorm's running statistics) are averaged; integer
    buffers (``num_batches_tracked``) keep the network's own values.

    Parameters
    ----------
    decay : float
        In (0, 1).
    """

    def __init__(self, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay={decay!r}: must be in (0, 1)")
        self.decay = float(decay)
        self.steps = 0
        self.avg: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the network's current tensors into the average (one step)."""
        for name, value in model.state_dict().items():
            if not value.is_floating_point():
                continue
            if name not in self.avg:
                self.avg[name] = torch.zeros(value.shape, dtype=value.dtype, device=value.device)
            self.avg[name].lerp_(value.detach(), 1.0 - self.decay)
        self.steps += 1

    def state_dict_of(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """``model``'s state dict with the bias-corrected averages in place of its floats."""
        if self.steps == 0:
            return model.state_dict()
        scale = 1.0 / (1.0 - self.decay**self.steps)
        return {name: (self.avg[name] * scale if name in self.avg else value)
                for name, value in model.state_dict().items()}  # fmt: skip

    @torch.no_grad()
    def copy_to(self, model: nn.Module, source: nn.Module | None = None) -> nn.Module:
        """Load the averages (of ``source``'s tensors, default ``model``) into ``model``."""
        model.load_state_dict(self.state_dict_of(model if source is None else source))
        return model


def fit(
    model: nn.Module, train_loader: DataLoader, cfg: TrainConfig, *,
    val_loader: DataLoader | None = None,
    epoch_end: Callable[[int, nn.Module], None] | None = None,
    device: str | torch.device | None = None,
    augment_seed: int | None = None,
) -> dict[str, list[float]]:  # fmt: skip
    """Train ``model`` in place for ``cfg.epochs`` epochs (last weights kept).

    Parameters
    ----------
    model : nn.Module
        Follows the module's model protocol.
    train_loader : DataLoader
        Yields ``(x, y)`` with y int64 class indices (see :func:`make_loader`).
    cfg : TrainConfig
    val_loader : DataLoader, optional
        Monitored each epoch (loss, accuracy); never used to choose anything.
    epoch_end : callable, optional
        ``epoch_end(epoch, model)`` after every epoch (``epoch`` counts from 1), e.g. to
        record predictions on held-out training subjects for choosing the epoch count.
        It must not train the model; it runs inside the seeded session, so it must not
        draw random numbers either (eval-mode inference does not).
    device : str or torch.device, optional
        Where to train (:func:`merkit.nets.device.resolve_device`); the model is moved
        there and stays there. None: where the model's parameters are.
    augment_seed : int, optional
        With ``cfg.augment``: every batch is augmented by the policy as it is formed, with a
        generator of its own seeded from ``cfg.seed`` and this seed
        (:func:`merkit.nets.augment.augment_generator`; :func:`train_fold` gives the fold
        seed). Its draws leave the batch order and dropout as without augmentation. With a
        mixup policy the loss takes the soft targets and the running accuracy their argmax.

    Returns
    -------
    dict of lists
        ``loss``, ``accuracy`` (training, running over the epoch), ``lr`` and, with a
        validation loader, ``val_loss``, ``val_accuracy``; one entry per epoch. A two-stage
        network also gets ``stage`` (``"prior"`` or ``"target"``) per epoch, the prior
        epochs first (their ``loss`` is the network's prior-stage loss, their
        ``accuracy`` its :meth:`stage_accuracy`, e.g. same/different decisions on pairs;
        no validation in them: NaN).

    Two-stage networks
    ------------------
    A network declaring ``training_stages = ("prior",)`` and ``set_stage(name)`` (MERSiam)
    is trained ``cfg.prior_epochs`` epochs in stage ``"prior"``, then ``cfg.epochs`` in stage
    ``"target"``, each with a fresh optimiser and schedule, on the same loader (only the
    training rows, in both stages); ``model.loss`` and ``model.stage_accuracy(outputs,
    targets) -> (correct, count)`` read the stage. ``epoch_end`` is called after the
    target epochs only. Other networks are trained exactly as before (one stage).

    Weight averaging
    ----------------
    With ``cfg.ema_decay`` the average of the target stage's weights (:class:`WeightEMA`,
    updated after every step) replaces the last weights when training ends, and
    ``epoch_end`` receives a copy holding the average of that epoch.

    Notes
    -----
    A loader built by :func:`make_loader` (in memory) is not iterated: batches are taken
    from its tensors with the same permutations (:func:`_index_batches`), so the numbers
    equal those of iterating it. Models with convolutions on feature maps train in the
    channels-last layout (:func:`_channels_last`); the weights are returned contiguous.
    """
    dev = model_device(model) if device is None else resolve_device(device)
    precision = check_precision(cfg.precision, dev)
    model.to(dev)
    tensors = _in_memory(train_loader)
    labels = tensors[1].numpy() if tensors is not None else _labels_of(train_loader)
    weight = class_weights(labels, cfg)
    weight = None if weight is None else weight.to(dev)
    on_cpu = dev.type == "cpu"
    # running sums stay on the device (no host sync per step off the CPU); float64 gives
    # the CPU the numbers of Python floats, MPS has no float64
    acc = torch.float32 if dev.type == "mps" else torch.float64
    policy, augment_gen = _augmentation(model, cfg, augment_seed)
    # small in-memory sets are copied to the device once; not when augmenting, which works
    # on CPU batches (it would copy every batch back)
    if tensors is not None and not on_cpu and policy is None:
        tensors = tuple(t.to(dev) for t in tensors)
    plan = _stage_plan(model, cfg)
    _check_smoothing(model, cfg.label_smoothing)  # before any step
    ema: WeightEMA | None = None
    shadow: nn.Module | None = None  # the averaged network that epoch_end sees
    history: dict[str, list] = {"loss": [], "accuracy": [], "lr": []}
    if val_loader is not None:
        history.update(val_loss=[], val_accuracy=[])
    if plan[0][0] is not None:  # a two-stage network: one row per epoch of either stage
        history["stage"] = []
    with torch_session(cfg.seed, cfg.threads, cfg.deterministic), \
            deterministic_cuda(dev, cfg.deterministic):  # fmt: skip
        layout: torch.memory_format | None = None  # decided on the first batch
        scaler = grad_scaler(dev, precision)
        first = True
        try:
            for stage, n_epochs in plan:
                if stage is not None:
                    model.set_stage(stage)
                target = stage in (None, "target")
                # a fresh optimiser (and schedule over the stage's epochs) per stage
                opt = _optimizer(model, cfg)
                sched = _scheduler(opt, replace(cfg, epochs=n_epochs) if stage else cfg)
                if cfg.ema_decay and target:  # the target stage's weights only
                    ema = WeightEMA(cfg.ema_decay)
                for epoch in range(n_epochs):
                    model.train()
                    total = torch.zeros((), dtype=acc, device=dev)
                    correct = torch.zeros((), dtype=torch.int64, device=dev)
                    n = seen = 0
                    if tensors is not None:
                        X, Y = tensors
                        batches = ((X[i.to(X.device)], Y[i.to(X.device)])
                                   for i in _index_batches(train_loader, len(X)))  # fmt: skip
                    else:
                        batches = iter(train_loader)
                    for x, y in batches:
                        if policy is not None:  # on the CPU: the same batches on every device
                            x, y = policy(x.cpu(), y.cpu(), augment_gen)
                        x = x.to(dev, non_blocking=True)
                        y = y.to(dev, non_blocking=True)
                        if first and _channels_last(model, x):
                            layout = torch.channels_last  # parameters change layout in place
                            model.to(memory_format=layout)
                        first = False
                        if layout is not None:
                            x = x.contiguous(memory_format=layout)
                        opt.zero_grad(set_to_none=True)
                        with autocast(dev, precision):
                            out = model(x)
                            loss = compute_loss(model, out, y, weight, cfg.label_smoothing)
                        if on_cpu and not torch.isfinite(loss):
                            _diverged(model, loss, epoch)
                        if scaler is None:
                            loss.backward()
                            opt.step()
                        else:
                            scaler.scale(loss).backward()
                            scaler.step(opt)
                            scaler.update()
                        if ema is not None:
                            ema.update(model)
                        total += loss.detach().to(acc) * len(y)
                        if target:
                            hard = y.argmax(1) if y.is_floating_point() else y  # mixup: soft
                            correct += (logits_of(out).detach().argmax(1) == hard).sum()
                            seen += len(y)
                        else:  # e.g. same/different decisions on pairs
                            right, count = model.stage_accuracy(out, y)
                            correct += right
                            seen += count
                        n += len(y)
                    if not on_cpu and not torch.isfinite(total):
                        _diverged(model, total, epoch)
                    history["lr"].append(float(opt.param_groups[0]["lr"]))
                    if sched is not None:
                        sched.step()
                    history["loss"].append(float(total) / max(n, 1))
                    history["accuracy"].append(int(correct) / max(seen, 1))
                    if stage is not None:
                        history["stage"].append(stage)
                    if val_loader is not None and target:
                        vl, va = _evaluate(model, val_loader, weight, dev)
                        history["val_loss"].append(vl)
                        history["val_accuracy"].append(va)
                    elif val_loader is not None:  # its loss would draw pairs: not monitored
                        history["val_loss"].append(float("nan"))
                        history["val_accuracy"].append(float("nan"))
                    if epoch_end is not None and target:
                        if ema is not None:  # the averaged weights are the ones predicting
                            if shadow is None:
                                shadow = copy.deepcopy(model)
                            epoch_end(epoch + 1, ema.copy_to(shadow, model).eval())
                        else:
                            epoch_end(epoch + 1, model)
                    log.debug("%sepoch %d/%d loss %.4f", f"{stage} " if stage else "", epoch + 1,
                              n_epochs, history["loss"][-1])  # fmt: skip
        finally:
            if layout is not None:
                model.to(memory_format=torch.contiguous_format)
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    return history


def _stage_plan(model: nn.Module, cfg: TrainConfig) -> list[tuple[str | None, int]]:
    """``(stage, epochs)`` in training order: ``[(None, cfg.epochs)]`` for a one-stage
    network; ``[("prior", cfg.prior_epochs), ("target", cfg.epochs)]`` for a network
    declaring ``training_stages = ("prior",)`` (the prior stage left out when
    ``prior_epochs`` is 0). A class attribute of its own name: ``stages`` is a submodule of
    R3D.

    Raises
    ------
    ValueError
        ``prior_epochs`` > 0 for a network without a prior stage (one line).
    """
    stages = tuple(getattr(model, "training_stages", ()))
    if not stages:
        if cfg.prior_epochs:
            raise ValueError(
                f"prior_epochs={cfg.prior_epochs} (--prior-epochs): {type(model).__name__} "
                "has no prior stage; only two-stage networks (e.g. mersiam) take it"
            )
        return [(None, cfg.epochs)]
    plan = [(s, cfg.prior_epochs) for s in stages if cfg.prior_epochs > 0]
    return [*plan, ("target", cfg.epochs)]


def _diverged(model: nn.Module, loss: torch.Tensor, epoch: int) -> None:
    raise FloatingPointError(
        f"{type(model).__name__}: loss became {float(loss)} in epoch {epoch + 1}"
    )


def predict(
    model: nn.Module, loader: DataLoader, *, device: str | torch.device | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes ``(n,)`` and softmax probabilities ``(n, K)`` in loader order.

    ``device``: where the network runs (None: where it is); the results are CPU NumPy.
    """
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev).eval()
    tensors = _in_memory(loader)
    if tensors is not None:
        X = tensors[0]
        batches = (X[i] for i in _index_batches(loader, len(X)))
    else:
        batches = (b[0] if isinstance(b, (tuple, list)) else b for b in loader)
    probs = []
    with torch.inference_mode():
        for x in batches:
            probs.append(torch.softmax(logits_of(model(x.to(dev))).float(), dim=1))
    p = host(torch.cat(probs)) if probs else np.zeros((0, 0), np.float32)
    return p.argmax(1).astype(np.int64), p


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Save the state_dict (loadable with ``torch.load(path, weights_only=True)``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda fh: torch.save(model.state_dict(), fh))


class WeightsFileError(ValueError):
    """A weights file that is empty, truncated, not a PyTorch file or not a plain state_dict."""


_RESAVE = "save the weights again with torch.save(model.state_dict(), path)"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict in a weights file, on CPU, read with ``torch.load(weights_only=True)``.

    Nothing in the file is executed: a file that carries pickled Python objects besides
    tensors (a whole pickled model, custom classes) is refused, not loaded.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    WeightsFileError
        (a ValueError) If the file is empty, truncated or damaged, not a PyTorch file,
        carries pickled objects, or holds something other than a dict of tensors; the
        one-line message names the file, the problem and what to do.
    """
    path = Path(path)
    where = f"weights file {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise WeightsFileError(f"{where} is empty (0 bytes); re-copy it or {_RESAVE}")
    with path.open("rb") as fh:
        head = fh.read(4)
    is_zip = head.startswith(b"PK\x03\x04")
    # a zip archive (torch.save) or a pickle (legacy torch.save, protocol 2+: b"\x80")
    torch_like = is_zip or head.startswith(b"\x80")
    if is_zip and not zipfile.is_zipfile(path):
        raise WeightsFileError(
            f"{where} is truncated ({size} bytes, the end of its zip archive is missing); "
            f"re-copy it or {_RESAVE}"
        )
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if found is None:  # a damaged pickle stream, not a refused object
            unpickler = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
            raise _damaged(where, unpickler.group(1).strip() if unpickler else err,
                           torch_like) from err  # fmt: skip
        raise WeightsFileError(
            f"{where} carries pickled Python objects ({found.group(1)}), not only tensors, so "
            f"it was not loaded (merkit reads weights with torch.load(weights_only=True) and "
            f"runs no code from a file); if you trust its source, load it in Python and "
            f"{_RESAVE}"
        ) from None
    except (EOFError, OSError, RuntimeError, KeyError, IndexError, ValueError) as err:
        raise _damaged(where, err, torch_like) from err
    if not isinstance(state, Mapping):
        raise WeightsFileError(
            f"{where} holds a {type(state).__name__}, not a state_dict (a dict of tensors); "
            f"{_RESAVE}"
        )
    other = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if other:
        hint = "; a training checkpoint? " if "state_dict" in state else "; "
        raise WeightsFileError(
            f"{where} is not a plain state_dict: entries {other[:5]} are not tensors{hint}{_RESAVE}"
        )
    return dict(state)


def _damaged(where: str, err: BaseException | str, torch_like: bool) -> WeightsFileError:
    if not torch_like:
        return WeightsFileError(
            f"{where} is not a PyTorch weights file (neither a torch.save zip archive nor a "
            f"pickle); give the .pth written by torch.save(model.state_dict(), path)"
        )
    reason = (str(err).strip().splitlines() or [""])[0] or type(err).__name__
    return WeightsFileError(f"{where} is damaged or truncated ({reason}); re-copy it or {_RESAVE}")


def load_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state_dict saved by :func:`save_weights` (or a released one) onto CPU.

    The file is read by :func:`read_state_dict` (its errors: one line naming the file).
    """
    model.load_state_dict(read_state_dict(path))
    return model


def embed(
    model: nn.Module, loader: DataLoader, *, device: str | torch.device | None = None
) -> np.ndarray:
    """Penultimate features ``(n, d)`` of every sample, in loader order (CPU NumPy).

    Uses ``model.features(x)`` (every registered network has it: the input of the last
    linear layer, e.g. FR's classifier hidden layer, STSTNet's 400 pooled values).
    ``device``: where the network runs (None: where it is).
    """
    if not callable(getattr(model, "features", None)):
        raise TypeError(f"{type(model).__name__} has no features(x) method (penultimate layer)")
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev).eval()
    parts = []
    with torch.no_grad():
        for batch in loader:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            parts.append(torch.flatten(model.features(x.to(dev)), 1))
    return host(torch.cat(parts)) if parts else np.zeros((0, 0), np.float32)


def fold_seed(seed: int, fold_index: int) -> int:
    """Seed of a fold's initial weights and batch order: ``seed * 100003 + fold_index``.

    ``fold_index`` is the fold's position among ALL folds of its protocol, so a partial
    run (some folds only) reproduces the same folds of a full one.
    """
    return int(seed) * 100_003 + int(fold_index)


@dataclass
class FoldResult:
    """One trained fold (:func:`train_fold`).

    Attributes
    ----------
    model : nn.Module
        The trained registry network (eval mode; for multi-label runs the wrapped network,
        whose logits are the label scores).
    history : dict
        :func:`fit` history (``loss``, ``accuracy``, ``lr`` per epoch).
    y_pred : ndarray
        ``(n_test,)`` int64 classes, or ``(n_test, L)`` int8 0/1 labels (multi-label).
    probs : ndarray of float32
        ``(n_test, K)`` softmax, or ``(n_test, L)`` sigmoid probabilities.
    features : ndarray of float32 or None
        ``(n_test, d)`` penultimate features (:func:`embed`), None when not asked (or no
        test rows).
    seconds : float
        Training + prediction time.
    audit : tuple of ndarray or None
        With ``audit_every``: ``(epochs, probs)``, the evaluated epochs ``(E,)`` int64
        (1-based, :func:`audit_epochs`) and the test rows' softmax probabilities after
        each of them, float32 ``(E, n_test, K)``; the last entry equals ``probs``.
    """

    model: nn.Module
    history: dict
    y_pred: np.ndarray
    probs: np.ndarray
    features: np.ndarray | None
    seconds: float
    audit: tuple[np.ndarray, np.ndarray] | None = None


def audit_epochs(epochs: int, every: int) -> list[int]:
    """The epochs (1-based) after which the leak audit records test predictions: every
    ``every``-th and the last one (none when ``every`` is 0)."""
    if every <= 0:
        return []
    return sorted({e for e in range(every, epochs + 1, every)} | {int(epochs)})


class _AuditRecorder:
    """``fit``'s ``epoch_end`` hook of the leak audit: the test rows' probabilities after
    each epoch of :func:`audit_epochs` but the last, predicted in eval mode (no dropout,
    no BatchNorm update) with the global RNG state forked (nothing in prediction draws
    from it today; the fork keeps it that way), so training is unchanged. The last
    epoch's entry is the fold's own predictions (:meth:`result`): during training a network
    may sit in the channels-last layout, whose float rounding differs from the contiguous
    weights that predict the fold.
    """

    def __init__(self, net: nn.Module, X, test_idx: np.ndarray, epochs: list[int],
                 batch_size: int) -> None:  # fmt: skip
        self.net, self.X, self.test_idx, self.batch_size = net, X, test_idx, batch_size
        self.wanted = set(epochs)
        self.epochs: list[int] = []
        self.probs: list[np.ndarray] = []

    def __call__(self, epoch: int, model: nn.Module) -> None:
        if epoch not in self.wanted or epoch == max(self.wanted):
            return
        dev = model_device(self.net)
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            loader = make_loader(self.X[self.test_idx], batch_size=self.batch_size)
            _, p = predict(self.net, loader)
        self.net.train()
        self.epochs.append(int(epoch))
        self.probs.append(p.astype(np.float32))

    def result(self, final: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(epochs, probs)`` with ``final``, the fold's predictions, as the last epoch's."""
        epochs = [*self.epochs, max(self.wanted)]
        return np.asarray(epochs, np.int64), np.stack([*self.probs, final]).astype(np.float32)


def train_fold(
    model_name: str,
    X: np.ndarray | ClipArray,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    fold_index: int = 0,
    model_kwargs: Mapping | None = None,
    multilabel: bool = False,
    threshold: float = 0.5,
    features: bool = False,
    device: str | torch.device | None = "cpu",
    workers: int = 0,
    pin_memory: bool = False,
    audit_every: int = 0,
) -> FoldResult:
    """Train a fresh network on ``train_idx`` and predict ``test_idx`` (no model selection).

    Parameters
    ----------
    model_name : str
        Registry name, built with ``num_classes = cfg.num_classes`` (single-label) or the
        number of labels (multi-label) and ``model_kwargs``.
    X : ndarray of float32 or ClipArray, shape (n, ...)
        Inputs (flow images ``(n, C, H, W)`` or clips ``(n, C, T, H, W)``); a
        :class:`~merkit.nets.data.ClipArray` is read clip by clip, with the same results.
    y : ndarray
        ``(n,)`` class indices, or ``(n, L)`` 0/1 labels with ``multilabel``.
    train_idx, test_idx : ndarray of int
        Row positions; the test rows are only predicted (``test_idx`` may be empty).
    cfg : TrainConfig
        ``cfg.seed`` is replaced by ``seed``.
    seed, fold_index : int
        The initial weights and batch order use :func:`fold_seed`; dropout uses ``seed``.
    multilabel : bool
        Train with :class:`merkit.nets.multilabel.MultiLabelNet` (BCE per label);
        a label is predicted when its probability exceeds ``threshold``.
    features : bool
        Also return the test samples' penultimate features.
    device : str or torch.device
        Where to train and predict (:func:`merkit.nets.device.resolve_device`); the
        returned model is on the CPU.
    workers, pin_memory
        Loader workers reading a ClipArray and pinned batches (CUDA), as in
        :func:`merkit.nets.data.make_loader`; the results do not depend on them.
    audit_every : int
        Leak audit (module docstring): record the test rows' probabilities after every
        ``audit_every``-th epoch and the last one (``FoldResult.audit``); 0 records
        nothing. Single-label only; the trained weights do not depend on it.

    Notes
    -----
    Test clips (5-D inputs) are predicted in batches of ``cfg.batch_size``, flow images
    in batches of :data:`PREDICT_BATCH`.
    """
    t0 = time.perf_counter()
    kwargs = dict(model_kwargs or {})
    train_idx = np.asarray(train_idx, dtype=np.int64)
    test_idx = np.asarray(test_idx, dtype=np.int64)
    fs = fold_seed(seed, fold_index)
    fold_cfg = replace(cfg, seed=int(seed))
    if multilabel:
        if cfg.class_weight is not None:
            raise ValueError("multi-label training takes no class_weight")
        n_labels = int(np.asarray(y).shape[1])
        net = fold_model(model_name, cfg, seed=seed, fold_index=fold_index, num_classes=n_labels,
                         model_kwargs=kwargs)  # fmt: skip
        trained: nn.Module = MultiLabelNet(net, n_labels, threshold=threshold)
        targets = encode_multilabel(y)
    else:
        net = trained = fold_model(model_name, cfg, seed=seed, fold_index=fold_index,
                                   num_classes=cfg.num_classes, model_kwargs=kwargs)  # fmt: skip
        targets = y
    if cfg.sampler == "balanced" and multilabel:
        raise ValueError("sampler='balanced' (--sampler): multi-label training has no single "
                         "class per clip to balance; use shuffle")  # fmt: skip
    loader = make_loader(X[train_idx], targets[train_idx], batch_size=cfg.batch_size,
                         shuffle=True, seed=fs, workers=workers, pin_memory=pin_memory,
                         balanced=cfg.sampler == "balanced")  # fmt: skip
    if audit_every < 0:
        raise ValueError(f"audit_every={audit_every!r}: must be >= 0 (0 records nothing)")
    recorder = None
    if audit_every and not multilabel and test_idx.size:
        batch = cfg.batch_size if len(X.shape) == 5 else PREDICT_BATCH
        recorder = _AuditRecorder(net, X, test_idx, audit_epochs(cfg.epochs, audit_every), batch)
    history = fit(trained, loader, fold_cfg, device=device, augment_seed=fs, epoch_end=recorder)
    y_pred, probs, z = fold_outputs(
        net, X, test_idx, width=n_labels if multilabel else cfg.num_classes, features=features,
        multilabel=trained if multilabel else None, threshold=threshold,
        batch_size=cfg.batch_size if len(X.shape) == 5 else PREDICT_BATCH, workers=workers,
        pin_memory=pin_memory)  # fmt: skip
    trained.cpu()
    audit = None if recorder is None else recorder.result(probs.astype(np.float32))
    return FoldResult(net, history, y_pred, probs, z, time.perf_counter() - t0, audit)


def fold_outputs(
    net: nn.Module, X: np.ndarray | ClipArray, test_idx: np.ndarray, *, width: int,
    features: bool = False, multilabel: MultiLabelNet | None = None, threshold: float = 0.5,
    batch_size: int = PREDICT_BATCH, workers: int = 0, pin_memory: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # fmt: skip
    """A trained fold's predictions of its test rows (eval mode), as in :class:`FoldResult`,
    computed where ``net`` is; CPU NumPy results.

    Returns ``y_pred`` (``(n_test,)`` int64, or ``(n_test, width)`` int8 with the
    ``multilabel`` wrapper of ``net``), float32 ``probs`` ``(n_test, width)`` and the
    penultimate features (None unless ``features`` and there are test rows). The test rows
    are read in batches of ``batch_size`` (``workers``, ``pin_memory``: as in
    :func:`merkit.nets.data.make_loader`).
    """
    net.eval()
    dev = model_device(net)
    test_loader = make_loader(X[test_idx], batch_size=batch_size, workers=workers,
                              pin_memory=pin_memory)  # fmt: skip
    z = None
    if test_idx.size == 0:  # nothing to predict (e.g. a final model on every clip)
        probs = np.zeros((0, width), np.float32)
        y_pred = np.zeros((0, width) if multilabel else (0,), np.int8 if multilabel else np.int64)
    elif multilabel is not None:
        with torch.no_grad():
            probs = host(torch.cat([multilabel.probabilities(xb.to(dev))
                                    for xb, _ in test_loader]))  # fmt: skip
        y_pred = (probs > threshold).astype(np.int8)
    else:
        y_pred, probs = predict(net, test_loader)
    if features and test_idx.size:
        z = embed(net, test_loader)
    return y_pred, probs.astype(np.float32), z
