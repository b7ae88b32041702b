"""Where fold-batched training of the flow networks stands (issue #17): measured, not assumed.

For each flow network at its CDE preset batch size, in one run on the same machine:

* ``gemm``: float32 GEMM rate (GFLOP/s, 2048^3, ``--threads`` threads): the reference;
* ``per-fold``: the per-fold path, one model trained on one mini-batch per step
  (forward + backward + optimizer step), in fold-samples/s;
* ``vmap k``: ``k`` folds as one computation, ``torch.func.vmap`` over the stacked
  parameters of ``k`` models with the mini-batch shared (``in_dims=None``: the first
  layer becomes one convolution with k x its output channels, the later ones grouped
  convolutions) and each fold's loss masked to its own training rows;
* ``vmap k + compile``: the same under ``torch.compile`` (inductor; needs a C++
  compiler, skipped without one).

The batched loss is the cross-entropy of the logits (FR's detector term, a few FLOPs per
sample, is left out); a (model, k) whose stacked weights, optimizer state and
activations exceed ``--max-gb`` is skipped.

Each row prints fold-samples/s, the ratio to the per-fold path of the same run and the
achieved GFLOP/s (3 x the forward FLOPs counted by ``torch.utils.flop_counter``) as a
fraction of the GEMM rate. Usage::

    python benchmarks/fold_batching.py [--models ststnet,fr] [--folds 4,17,68]
        [--threads 2] [--seconds 3] [--no-compile] [--max-gb 4]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from merkit.nets import count_parameters, create_model, training_preset
from merkit.nets.blocks import logits_of
from merkit.nets.train import PRESETS, TrainConfig, _optimizer, compute_loss, torch_session

FLOW_MODELS = ("ststnet", "off_apexnet", "dual_inception", "fr", "rcn_a")
N_CLASSES = 3


def _preset(name: str) -> TrainConfig:
    return PRESETS[training_preset(name) or "fr_adam"]


def _input(name: str, batch: int) -> torch.Tensor:
    return torch.rand(batch, 3, 28, 28)  # the CDE flow images


def activation_bytes(name: str) -> int:
    """Bytes of the module outputs of one training-mode forward of one sample (float32):
    what a step keeps for the backward pass, roughly."""
    model = create_model(name, num_classes=N_CLASSES).train()
    total = [0]

    def hook(_m, _i, out) -> None:
        for t in out.values() if isinstance(out, dict) else [out]:
            if isinstance(t, torch.Tensor):
                total[0] += t.numel() * 4

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    model(_input(name, 2))
    for h in handles:
        h.remove()
    return total[0] // 2


def gemm_rate(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Float32 GEMM GFLOP/s (best of ``repeats``)."""
    with torch_session(0, threads):
        a, b = torch.rand(n, n), torch.rand(n, n)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def forward_flops(name: str) -> float:
    """Forward FLOPs of one sample (training mode)."""
    model = create_model(name, num_classes=N_CLASSES).train()
    counter = FlopCounterMode(display=False)
    with counter:
        model(_input(name, 8))
    return counter.get_total_flops() / 8


def _timed(step, seconds: float) -> float:
    """Seconds per call: two untimed calls, then calls for at least ``seconds``."""
    step()
    step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        step()
        n += 1
    return (time.perf_counter() - t0) / n


def per_fold(name: str, threads: int, seconds: float) -> float:
    """Fold-samples/s of the per-fold path (one model, its preset batch and optimizer)."""
    cfg = _preset(name)
    with torch_session(0, threads):
        model = create_model(name, num_classes=N_CLASSES).train()
        opt = _optimizer(model, cfg)
        x = _input(name, cfg.batch_size)
        y = torch.randint(0, N_CLASSES, (cfg.batch_size,))

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            compute_loss(model, model(x), y).backward()
            opt.step()

        return cfg.batch_size / _timed(step, seconds)


def fold_batched(name: str, k: int, threads: int, seconds: float, compiled: bool) -> float:
    """Fold-samples/s of ``k`` folds trained as one vmapped computation on a shared batch."""
    cfg = _preset(name)
    with torch_session(0, threads):
        models = [create_model(name, num_classes=N_CLASSES).train() for _ in range(k)]
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        x = _input(name, cfg.batch_size)
        y = torch.randint(0, N_CLASSES, (cfg.batch_size,))
        # each fold leaves out ~1/68 of the rows (its test subject) from its loss
        mask = (torch.rand(k, cfg.batch_size) > 1 / 68).float()

        def logits(p, b, xb):
            return logits_of(functional_call(base, (p, b), (xb,)))

        batched = vmap(logits, in_dims=(0, 0, None), randomness="different")

        def loss_fn(p, b, xb):
            out = batched(p, b, xb)  # (k, batch, classes)
            per_row = F.cross_entropy(
                out.reshape(-1, N_CLASSES), y.repeat(k), reduction="none"
            ).view(k, -1)
            return ((per_row * mask).sum(1) / mask.sum(1)).sum()

        if compiled:
            torch._dynamo.reset()  # a fresh compile per (model, k): no recompile limit
        fn = torch.compile(loss_fn) if compiled else loss_fn
        kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
        opt = kind(list(params.values()), lr=cfg.lr)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            fn(params, buffers, x).backward()
            opt.step()

        return k * cfg.batch_size / _timed(step, seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(FLOW_MODELS))
    ap.add_argument("--folds", default="4,17,68")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--max-gb", type=float, default=4.0)
    args = ap.parse_args()
    compile_ok = not args.no_compile and shutil.which("c++") is not None
    gemm = gemm_rate(args.threads)
    print(f"float32 GEMM: {gemm:.1f} GFLOP/s ({args.threads} threads)")
    if not compile_ok:
        print("torch.compile rows skipped (--no-compile or no C++ compiler)")
    print(f"{'model':15s} {'path':22s} {'fold-samples/s':>15s} {'x per-fold':>10s} "
          f"{'of GEMM':>8s}")  # fmt: skip
    for name in args.models.split(","):
        train_flops = 3 * forward_flops(name)
        ref = per_fold(name, args.threads, args.seconds)
        rows = [("per-fold", ref)]
        n_par = count_parameters(create_model(name, num_classes=N_CLASSES))
        act = activation_bytes(name) * _preset(name).batch_size
        for k in (int(v) for v in args.folds.split(",")):
            # weights, gradients and two Adam moments per fold (float32), and the
            # activations of the shared batch for every fold
            need = (16 * n_par + act) * k / 2**30
            if need > args.max_gb:
                print(f"{name:15s} vmap {k}: skipped ({need:.1f} GB of weights, optimizer "
                      f"state and activations > --max-gb {args.max_gb})")  # fmt: skip
                continue
            rows.append((f"vmap {k}", fold_batched(name, k, args.threads, args.seconds, False)))
            if compile_ok:
                rate = fold_batched(name, k, args.threads, args.seconds, True)
                rows.append((f"vmap {k} + compile", rate))
        for path, rate in rows:
            share = rate * train_flops / 1e9 / gemm
            print(f"{name:15s} {path:22s} {rate:15.0f} {rate / ref:10.2f} {share:8.1%}")


if __name__ == "__main__":
    main()
