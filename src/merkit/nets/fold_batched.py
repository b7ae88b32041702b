"""Fold-batched training: the k networks of a LOSO / k-fold run trained as one computation.

The per-fold path (:func:`merkit.nets.train.train_fold`) trains one network per fold on
its own shuffled mini-batches. Here the folds share one stream of mini-batches over all
rows; each fold's loss, BatchNorm
statistics (and running statistics) and gradients use only the rows of the batch that
are its own training rows, so a fold never sees its test subjects. Everything else is
the fold's own, as on the per-fold path: its initial weights (built under
:func:`merkit.nets.train.fold_seed`, the same as the per-fold path's), its optimizer
state and step count (a fold with no row in a batch does not step), its class weights,
its dropout masks (a hash of the run seed, fold index, step and row: independent of the
folds trained with it), its fixed number of epochs. A fold's result therefore does not
depend on which other folds are trained with it, so a partial or resumed run gives the
same folds as a full one.

The stream runs over all rows of ``X`` in a seeded order per epoch; the shared batch
holds ``round(batch_size * K / (K - 1))`` rows for a protocol of K folds (a fold's
training share of the rows), so that a fold sees ``batch_size`` of its own rows per step
on average and about as many steps per epoch as on the per-fold path
(docs/cde-reproduction.md explains why the results are statistically the same). Both
depend only on the protocol, not on which of its folds are trained together.

Networks with a batched implementation: :data:`BATCHED` (STSTNet, with the C++ kernel of
:mod:`merkit.nets.ststnet_folds`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from merkit._io import atomic_write
from merkit.nets.blocks import logits_of
from merkit.nets.data import ClipArray
from merkit.nets.device import resolve_device
from merkit.nets.kernels import kernel_problem, load_kernel
from merkit.nets.ststnet_folds import StackedSTSTNet
from merkit.nets.train import (
    FoldResult,
    TrainConfig,
    audit_epochs,
    class_weights,
    fold_model,
    fold_outputs,
    fold_seed,
    lr_schedule,
    torch_session,
    train_fold,
)

log = logging.getLogger(__name__)

__all__ = [
    "BATCHED",
    "FOLD_BATCHING",
    "FoldSpec",
    "batching_problem",
    "shared_batch_size",
    "train_folds",
    "train_folds_batched",
]

#: networks with a fold-batched path: registry name -> (stacked class, its C++ kernel)
BATCHED: dict[str, tuple[type, str]] = {"ststnet": (StackedSTSTNet, "ststnet_folds")}
#: the values of ``fold_batching`` (``merkit train --fold-batching``)
FOLD_BATCHING = ("auto", "on", "off")
_STREAM = 99_991  # the shared stream's seed offset (fold indices are >= 0)


@dataclass(frozen=True)
class FoldSpec:
    """One fold to train: row positions and its index among all folds of the protocol."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    index: int


#: why inputs read clip by clip from disk are trained fold by fold
_ON_DISK = (
    "the fold-batched path holds every input in memory; inputs read from disk (a ClipArray) "
    "train fold by fold"
)


def batching_problem(
    model_name: str,
    *,
    n_folds: int,
    multilabel: bool = False,
    model_kwargs: Mapping | None = None,
    device: str | torch.device = "cpu",
    precision: str = "32",
    augment: str = "none",
    sampler: str = "shuffle",
) -> str | None:
    """Why the fold-batched path does not apply (None: it does).

    It applies to a network of :data:`BATCHED` trained single-label in float32 on the
    CPU without augmentation (``augment="none"``: the shared batches are not augmented)
    and with every row once per epoch (``sampler="shuffle"``: the folds share one
    permutation), with >= 2 folds to train and its C++ kernel buildable here.
    """
    kind = resolve_device(device).type
    if kind != "cpu":
        return f"the fold-batched path runs on the CPU (its C++ kernel), the device is {kind}"
    if precision != "32":
        return f"the fold-batched path trains in float32, precision is {precision}"
    if model_name not in BATCHED:
        return f"{model_name} has no fold-batched implementation (only {sorted(BATCHED)})"
    if multilabel:
        return "multi-label training is per fold only"
    if augment != "none":
        return f"augmentation (--augment {augment}) is per fold only"
    if sampler != "shuffle":
        return f"{sampler} sampling (--sampler {sampler}) is per fold only"
    if n_folds < 2:
        return "fewer than 2 folds to train"
    unknown = set(model_kwargs or {}) - {"in_channels", "dropout"}
    if unknown:
        return f"model options {sorted(unknown)} are per fold only"
    kernel = BATCHED[model_name][1]
    if load_kernel(kernel) is None:
        return f"its C++ kernel cannot be built here ({kernel_problem(kernel)})"
    return None


def train_folds(
    model_name: str,
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[FoldSpec],
    cfg: TrainConfig,
    *,
    seed: int = 0,
    model_kwargs: Mapping | None = None,
    features: bool = False,
    multilabel: bool = False,
    fold_batching: str = "auto",
    protocol_folds: int | None = None,
    checkpoint: str | Path | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
    device: str | torch.device = "cpu",
    audit_every: int = 0,
) -> list[FoldResult]:
    """Train every fold of ``folds``, batched when it applies (``fold_batching="auto"``).

    ``"on"`` raises ValueError (saying why) when the batched path does not apply,
    ``"off"`` trains fold by fold (:func:`merkit.nets.train.train_fold`) on ``device``
    (the batched path is CPU only). ``audit_every``: the leak audit's test predictions
    (:func:`merkit.nets.train.train_fold`), on either path.
    """
    if fold_batching not in FOLD_BATCHING:
        raise ValueError(f"fold_batching={fold_batching!r}; expected one of {FOLD_BATCHING}")
    problem = None
    if fold_batching != "off":
        problem = batching_problem(
            model_name,
            n_folds=len(folds),
            multilabel=multilabel,
            model_kwargs=model_kwargs,
            device=device,
            precision=cfg.precision,
            augment=cfg.augment,
            sampler=cfg.sampler,
        )
        if problem is None and isinstance(X, ClipArray):
            problem = _ON_DISK
        if problem is not None and fold_batching == "on":
            raise ValueError(f"--fold-batching on: {problem}; use auto or off")
    if fold_batching != "off" and problem is None:
        return train_folds_batched(
            model_name,
            X,
            y,
            folds,
            cfg,
            seed=seed,
            model_kwargs=model_kwargs,
            features=features,
            protocol_folds=protocol_folds,
            checkpoint=checkpoint,
            on_epoch=on_epoch,
            audit_every=audit_every,
        )
    if problem is not None and len(folds) > 1 and model_name in BATCHED:
        log.info("%s: training fold by fold (%s)", model_name, problem)
    return [
        train_fold(
            model_name,
            X,
            y,
            fold.train_idx,
            fold.test_idx,
            cfg,
            seed=seed,
            fold_index=fold.index,
            model_kwargs=model_kwargs,
            multilabel=multilabel,
            features=features,
            device=device,
            audit_every=audit_every,
        )
        for fold in folds
    ]


def _audit_probs(
    stack, models: list, X: np.ndarray, tests: list[np.ndarray], width: int
) -> list[np.ndarray]:
    """Each fold's test-row probabilities now (the leak audit): the stacked weights are
    copied into the folds' modules (which are only read at the end, after the final copy),
    predicted in eval mode with the RNG state forked, so training is unchanged."""
    stack.write_to(models)
    out = []
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        for net, te in zip(models, tests, strict=True):
            p = np.zeros((0, width), np.float32)
            if te.size:  # one batch: the rows fold_outputs would predict, without a loader
                logits = logits_of(net.eval()(torch.from_numpy(np.ascontiguousarray(X[te]))))
                p = torch.softmax(logits.float(), dim=1).numpy()
            out.append(p.astype(np.float32))
    for net in models:
        net.train()
    return out


class _StackedOptimizer:
    """SGD (momentum, weight decay) / Adam / AdamW over stacked ``[k, ...]`` parameters.

    Every fold has its own moments and step count; a fold that is not active in a step
    (no training row in the batch) is left unchanged, as on the per-fold path where that
    batch does not exist. The update rules are those of ``torch.optim``.
    """

    def __init__(self, params: list[torch.Tensor], cfg: TrainConfig) -> None:
        self.params, self.cfg = params, cfg
        k = params[0].shape[0]
        self.steps = torch.zeros(k, dtype=torch.float64)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    def state(self) -> dict[str, object]:
        return {"steps": self.steps, "m": self.m, "v": self.v}

    def load_state(self, state: Mapping) -> None:
        self.steps.copy_(state["steps"])
        for mine, theirs in zip(self.m + self.v, list(state["m"]) + list(state["v"]), strict=True):
            mine.copy_(theirs)

    @torch.no_grad()
    def step(self, active: torch.Tensor, lr: float) -> None:
        cfg = self.cfg
        self.steps += active.double()
        t = self.steps.clamp_min(1.0)
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.ndim - 1)
            on = active.view(shape)
            g = p.grad
            if cfg.optimizer == "sgd":
                if cfg.weight_decay:
                    g = g + cfg.weight_decay * p
                if cfg.momentum:
                    first = (self.steps == 1).view(shape)
                    buf = torch.where(first, g, cfg.momentum * m + g)
                    m.copy_(torch.where(on, buf, m))
                    g = buf
                p.copy_(torch.where(on, p - lr * g, p))
                continue
            b1, b2, eps = 0.9, 0.999, 1e-8
            base = p
            if cfg.optimizer == "adamw" and cfg.weight_decay:
                base = p * (1 - lr * cfg.weight_decay)
            elif cfg.weight_decay:
                g = g + cfg.weight_decay * p
            m_new = torch.lerp(m, g, 1 - b1)
            v_new = v * b2 + (1 - b2) * g * g
            bc1 = (1 - b1**t).float().view(shape)
            bc2 = (1 - b2**t).sqrt().float().view(shape)
            new = base - (lr / bc1) * m_new / (v_new.sqrt() / bc2 + eps)
            m.copy_(torch.where(on, m_new, m))
            v.copy_(torch.where(on, v_new, v))
            p.copy_(torch.where(on, new, p))


class _StackedEMA:
    """:class:`merkit.nets.train.WeightEMA` over stacked ``[k, ...]`` tensors: each fold
    averages over its own steps (a fold without rows in a batch takes no step), with the
    same bias correction from the optimiser's per-fold step counts."""

    def __init__(self, state: Mapping[str, torch.Tensor], decay: float) -> None:
        self.decay = float(decay)
        self.avg = {n: torch.zeros_like(v) for n, v in state.items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, state: Mapping[str, torch.Tensor], active: torch.Tensor) -> None:
        for name, avg in self.avg.items():
            on = active.view((-1,) + (1,) * (avg.ndim - 1))
            avg.copy_(torch.where(on, torch.lerp(avg, state[name].detach(), 1 - self.decay), avg))

    def averaged(
        self, state: Mapping[str, torch.Tensor], steps: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``state`` with each fold's bias-corrected averages (its own values before its
        first step)."""
        out = dict(state)
        for name, avg in self.avg.items():
            shape = (-1,) + (1,) * (avg.ndim - 1)
            scale = (1.0 / (1.0 - self.decay ** steps.clamp_min(1.0))).float().view(shape)
            out[name] = torch.where((steps > 0).view(shape), avg * scale, state[name])
        return out


@contextlib.contextmanager
def _swapped_in(stack, averaged: Mapping[str, torch.Tensor]):
    """Inside: ``stack`` holds ``averaged``; after: its own tensors again."""
    own = {name: value.detach().clone() for name, value in stack.state().items()}
    stack.load_state(averaged)
    try:
        yield
    finally:
        stack.load_state(own)


def shared_batch_size(batch_size: int, protocol_folds: int) -> int:
    """Rows of a shared batch: ``batch_size`` training rows per fold on average.

    In a protocol of K folds (LOSO: K subjects) a row is a training row of K - 1 of them,
    so ``round(batch_size * K / (K - 1))`` (``batch_size`` when K < 2).
    """
    if protocol_folds < 2:
        return int(batch_size)
    return max(1, round(batch_size * protocol_folds / (protocol_folds - 1)))


def _run_key(
    model_name: str, kwargs: Mapping, cfg: TrainConfig, seed: int, folds: Sequence[FoldSpec], n: int
) -> str:
    """What a checkpoint must match to be resumed."""
    h = hashlib.sha1(
        json.dumps(
            {
                "model": model_name,
                "kwargs": dict(kwargs),
                "cfg": {**cfg.to_dict(), "threads": 1},  # threads change no number
                "seed": int(seed),
                "n": int(n),
            },
            sort_keys=True,
        ).encode()
    )
    for fold in folds:
        h.update(np.int64(fold.index).tobytes())
        h.update(np.asarray(fold.train_idx, np.int64).tobytes())
        h.update(b"|")
        h.update(np.asarray(fold.test_idx, np.int64).tobytes())
    return h.hexdigest()


def train_folds_batched(
    model_name: str,
    X: np.ndarray,
    y: np.ndarray,
    folds: Sequence[FoldSpec],
    cfg: TrainConfig,
    *,
    seed: int = 0,
    model_kwargs: Mapping | None = None,
    features: bool = False,
    protocol_folds: int | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_seconds: float = 120.0,
    on_epoch: Callable[[int, int], None] | None = None,
    kernel: bool = True,
    audit_every: int = 0,
) -> list[FoldResult]:
    """Train ``folds`` as one computation (module docstring) and predict their test rows.

    Parameters
    ----------
    model_name : str
        A network of :data:`BATCHED`.
    X : ndarray of float32, shape (n, C, H, W)
    y : ndarray of int, shape (n,)
    folds : sequence of FoldSpec
    cfg : TrainConfig
        As for :func:`merkit.nets.train.train_fold` (``cfg.seed`` is replaced by ``seed``).
    seed : int
        Run seed: the shared batch order and the dropout masks; each fold's initial
        weights use ``fold_seed(seed, fold.index)``.
    features : bool
        Also return the test rows' penultimate features.
    protocol_folds : int, optional
        Folds of the whole protocol (default ``len(folds)``): sets the shared batch size
        (:func:`shared_batch_size`), so a partial run trains its folds as a full run does.
    checkpoint : path, optional
        Saved (atomically) every ``checkpoint_seconds`` and resumed from when it matches
        this run; removed when training ends.
    on_epoch : callable, optional
        ``on_epoch(epoch, epochs)`` after every epoch (1-based).
    kernel : bool
        Use the C++ kernel (False: the same math in PyTorch ops; slow, for checks).
    audit_every : int
        Leak audit: each fold's test probabilities after every ``audit_every``-th epoch
        and the last (``FoldResult.audit``, as :func:`merkit.nets.train.train_fold`);
        recorded from copies of the folds' weights, so training is unchanged. Kept in
        the checkpoint.

    Returns
    -------
    list of FoldResult
        In the order of ``folds``; ``seconds`` is the run's time divided evenly.
    """
    if model_name not in BATCHED:
        raise ValueError(f"{model_name} has no fold-batched implementation ({sorted(BATCHED)})")
    if cfg.augment != "none":
        raise ValueError(f"augment={cfg.augment!r}: augmentation is per fold only; train with "
                         "fold_batching='off' (or 'auto')")  # fmt: skip
    if cfg.sampler != "shuffle":
        raise ValueError(f"sampler={cfg.sampler!r}: the folds share one permutation of the "
                         "rows; train with fold_batching='off' (or 'auto')")  # fmt: skip
    if isinstance(X, ClipArray):
        raise ValueError(f"{model_name}: {_ON_DISK}; give the inputs as one in-memory array")
    t0 = time.perf_counter()
    kwargs = dict(model_kwargs or {})
    k, n = len(folds), len(X)
    cls = BATCHED[model_name][0]
    models = [
        fold_model(
            model_name,
            cfg,
            seed=seed,
            fold_index=f.index,
            num_classes=cfg.num_classes,
            model_kwargs=kwargs,
        )  # fmt: skip
        for f in folds
    ]
    with torch.no_grad():  # the network's own shape check (one-line error), before any work
        models[0].eval()(torch.as_tensor(np.asarray(X[:1], dtype=np.float32)))
    models[0].train()
    stack = cls(models)
    y = np.asarray(y, dtype=np.int64)
    train_mask = torch.zeros(n, k, dtype=torch.bool)
    for f, fold in enumerate(folds):
        train_mask[torch.from_numpy(np.array(fold.train_idx, np.int64)), f] = True
    stream = np.arange(n)
    batch = shared_batch_size(cfg.batch_size, protocol_folds or k)
    weights = [class_weights(y[fold.train_idx], cfg) for fold in folds]
    cw = None if weights[0] is None else torch.stack(weights)  # (k, K)
    Xt = torch.as_tensor(np.ascontiguousarray(X), dtype=torch.float32)
    Yt = torch.as_tensor(y)
    fold_ids = torch.as_tensor([int(fold.index) for fold in folds], dtype=torch.int64)
    opt = _StackedOptimizer(stack.parameters(), cfg)
    ema = _StackedEMA(stack.state(), cfg.ema_decay) if cfg.ema_decay else None
    gen = torch.Generator().manual_seed(fold_seed(seed, _STREAM))
    schedule = lr_schedule(cfg)
    hist = {
        "loss": np.zeros((cfg.epochs, k)),
        "accuracy": np.zeros((cfg.epochs, k)),
        "lr": np.zeros(cfg.epochs),
    }
    start_epoch, step = 0, 0
    audited = audit_epochs(cfg.epochs, audit_every)
    tests = [np.asarray(fold.test_idx, dtype=np.int64) for fold in folds]
    audit: dict[int, list[np.ndarray]] = {}  # epoch -> per-fold test probabilities
    key = _run_key(model_name, kwargs, cfg, seed, folds, n)
    ckpt = None if checkpoint is None else Path(checkpoint)
    if ckpt is not None and ckpt.is_file():
        state = torch.load(ckpt, weights_only=True, map_location="cpu")
        if state.get("key") == key:
            stack.load_state(state["stack"])
            opt.load_state(state["opt"])
            if ema is not None:
                for name, avg in ema.avg.items():
                    avg.copy_(state["ema"][name])
            gen.set_state(state["generator"])
            start_epoch, step = int(state["epoch"]), int(state["step"])
            for name in hist:
                hist[name] = state["history"][name].numpy().copy()
            audit = {int(e): [p.numpy().copy() for p in ps]
                     for e, ps in state.get("audit", {}).items()}  # fmt: skip
            log.info("%s: resumed %d folds from %s at epoch %d", model_name, k, ckpt, start_epoch)
        else:
            log.warning("%s: checkpoint %s is of another run; starting afresh", model_name, ckpt)
    last_save = time.perf_counter()
    with torch_session(seed, cfg.threads, cfg.deterministic):
        for epoch in range(start_epoch, cfg.epochs):
            lr = schedule[epoch]
            order = stream[torch.randperm(len(stream), generator=gen).numpy()]
            loss_sum = torch.zeros(k, dtype=torch.float64)
            correct = torch.zeros(k, dtype=torch.float64)
            seen = torch.zeros(k, dtype=torch.float64)
            for b0 in range(0, len(order), batch):
                rows = torch.as_tensor(order[b0 : b0 + batch])
                mask = train_mask[rows]
                active = mask.any(0)
                yb = Yt[rows]
                logits = stack.logits(
                    Xt[rows], mask, rows, fold_ids, seed=seed, step=step, kernel=kernel
                )
                nll = (
                    -torch.log_softmax(logits, dim=2)
                    .gather(2, yb.view(-1, 1, 1).expand(-1, k, 1))
                    .squeeze(2)
                )
                w = mask.float() if cw is None else mask.float() * cw[:, yb].T
                summed = w * nll
                if cfg.label_smoothing:  # torch's weighted form (TrainConfig.label_smoothing)
                    eps, lp = cfg.label_smoothing, torch.log_softmax(logits, dim=2)
                    spread = -lp.mean(2) if cw is None else -(lp * cw[None]).mean(2)
                    summed = (1 - eps) * summed + eps * mask.float() * spread
                per_fold = summed.sum(0) / w.sum(0).clamp_min(1e-12)
                total = per_fold[active].sum()
                if not torch.isfinite(total):
                    raise FloatingPointError(
                        f"{model_name}: loss became {float(total)} in epoch {epoch + 1}"
                    )
                for p in stack.parameters():
                    p.grad = None
                total.backward()
                opt.step(active, lr)
                if ema is not None:
                    ema.update(stack.state(), active)
                with torch.no_grad():
                    rows_f = mask.double().sum(0)
                    loss_sum += per_fold.detach().double() * rows_f
                    hit = (logits.argmax(2) == yb[:, None]) & mask
                    correct += hit.double().sum(0)
                    seen += rows_f
                step += 1
            hist["loss"][epoch] = (loss_sum / seen.clamp_min(1)).numpy()
            hist["accuracy"][epoch] = (correct / seen.clamp_min(1)).numpy()
            hist["lr"][epoch] = lr
            if epoch + 1 in audited and epoch + 1 < cfg.epochs:  # the last: the folds' own
                if ema is None:
                    audit[epoch + 1] = _audit_probs(stack, models, X, tests, cfg.num_classes)
                else:  # the averaged weights are the ones that would predict
                    with _swapped_in(stack, ema.averaged(stack.state(), opt.steps)):
                        audit[epoch + 1] = _audit_probs(stack, models, X, tests, cfg.num_classes)
            if on_epoch is not None:
                on_epoch(epoch + 1, cfg.epochs)
            due = time.perf_counter() - last_save >= checkpoint_seconds
            if ckpt is not None and due and epoch + 1 < cfg.epochs:
                state = {
                    "key": key,
                    "epoch": epoch + 1,
                    "step": step,
                    "stack": stack.state(),
                    "opt": opt.state(),
                    "generator": gen.get_state(),
                    **({} if ema is None else {"ema": dict(ema.avg)}),
                    "history": {name: torch.as_tensor(v) for name, v in hist.items()},
                    "audit": {
                        str(e): [torch.as_tensor(p) for p in ps] for e, ps in audit.items()
                    },  # fmt: skip
                }
                ckpt.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(ckpt, lambda fh, s=state: torch.save(s, fh))
                last_save = time.perf_counter()
    if ema is not None:  # the folds predict (and are saved) with their averaged weights
        stack.load_state(ema.averaged(stack.state(), opt.steps))
    stack.write_to(models)
    seconds = (time.perf_counter() - t0) / k
    out = []
    for f, (fold, net) in enumerate(zip(folds, models, strict=True)):
        history = {
            "loss": hist["loss"][:, f].tolist(),
            "accuracy": hist["accuracy"][:, f].tolist(),
            "lr": hist["lr"].tolist(),
        }
        te = np.asarray(fold.test_idx, dtype=np.int64)
        y_pred, probs, z = fold_outputs(net, X, te, width=cfg.num_classes, features=features)
        got = None
        if audited and te.size:
            epochs = sorted(audit)
            stacked = np.stack([*(audit[e][f] for e in epochs), probs]).astype(np.float32)
            got = (np.asarray([*epochs, cfg.epochs], np.int64), stacked)
        out.append(FoldResult(net, history, y_pred, probs, z, seconds, got))
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    return out
