"""Training speed of merkit's networks on CPU, and one real LOSO fold of FR.

* Throughput: training samples per second (forward + backward + SGD step) for every
  registered model, batch 32; flow models on 28 x 28 x 3 flow images, 3-D models on
  clips ``3 x T x S x S`` (default 16 x 112 x 112; ``--clip-size`` / ``--clip-frames`` to
  shrink them when too slow).
* One LOSO fold of FR on the real MEGC 2019 flows (``../shared/data/megc2019_flow``,
  skipped when absent): the fold of the largest subject held out (SMIC s03: 39 clips
  test, 403 train), ``TrainConfig.preset("fr_cde")`` (SGD lr 1e-3, batch 32) for
  ``--epochs`` epochs; prints seconds per fold and the extrapolation to 68 folds (scaled
  to the 100 epochs of the preset).

* Adam: samples/s of :func:`fit` under the ``fr_adam`` preset with torch's default
  (multi-tensor) Adam and denormals kept, against merkit's fused Adam with denormals
  flushed to zero (FR, Basic Inception; 1 thread, process CPU time).
* The training loop: samples/s of :func:`merkit.nets.train.fit` against the plain
  DataLoader loop it replaced (NCHW, per-sample collation), for the five CDE networks at
  their CDE presets (batch 256 for STSTNet, 32 otherwise), 1 thread, measured in process
  CPU time so that other processes on the machine distort it less.

Usage: ``python benchmarks/nets_speed.py [--threads 2] [--seconds 3] [--epochs 10]
[--only-loop]``
"""

from __future__ import annotations

import argparse
import contextlib
import time
from dataclasses import replace
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from merkit.nets import MODELS, count_parameters, create_model, input_kind
from merkit.nets import train as tr
from merkit.nets.data import make_loader, read_megc2019_flow
from merkit.nets.train import TrainConfig, _optimizer, compute_loss, fit, torch_session
from merkit.protocols.deep import run_loso
from merkit.workflows.train import preset_for

FLOW_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019_flow"


def throughput(
    name: str, shape: tuple[int, ...], warmup: int, min_seconds: float, threads: int
) -> float:
    """Training samples per second: ``warmup`` untimed steps, then steps for >= min_seconds."""
    with torch_session(0, threads):
        model = create_model(name).train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.rand(shape)
        y = torch.randint(0, 3, (shape[0],))
        lossf = getattr(model, "loss", None)

        def step() -> None:
            opt.zero_grad()
            out = model(x)
            loss = lossf(out, y) if lossf else torch.nn.functional.cross_entropy(out, y)
            loss.backward()
            opt.step()

        for _ in range(warmup):
            step()
        t0 = time.perf_counter()
        steps = 0
        while steps == 0 or time.perf_counter() - t0 < min_seconds:
            step()
            steps += 1
        return steps * shape[0] / (time.perf_counter() - t0)


def _plain_loop(model, X, y, cfg) -> None:
    """The loop :func:`fit` replaced: DataLoader batches, NCHW layout (the reference)."""
    with torch_session(cfg.seed, cfg.threads):
        opt = _optimizer(model, cfg)
        for _ in range(cfg.epochs):
            model.train()
            for xb, yb in make_loader(X, y, batch_size=cfg.batch_size, shuffle=True, seed=0):
                opt.zero_grad(set_to_none=True)
                loss = compute_loss(model, model(xb), yb)
                loss.backward()
                opt.step()


def _random_flows(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded random 28x28 (u, v, strain) flow images in 0..255 and 3-class labels."""
    rng = np.random.default_rng(0)
    return (rng.random((n, 3, 28, 28)) * 255).astype(np.float32), rng.integers(0, 3, n)


def loop_rates(name: str, n: int, epochs: int, threads: int) -> tuple[float, float]:
    """Training samples/s of the model's CDE preset (batch size, optimiser) on ``n`` random
    flow images: the plain DataLoader loop and :func:`merkit.nets.train.fit`. CPU time of
    this process with 1 thread (robust to other processes on the machine), wall time
    otherwise."""
    clock = time.process_time if threads == 1 else time.perf_counter
    cfg = TrainConfig.preset(preset_for(name, "cde"), epochs=epochs, threads=threads)
    X, y = _random_flows(n)
    rates = []
    for run in (_plain_loop, lambda m, X, y, c: fit(
            m, make_loader(X, y, batch_size=c.batch_size, shuffle=True, seed=0), c)):  # fmt: skip
        torch.manual_seed(0)
        model = create_model(name)
        run(model, X[: cfg.batch_size], y[: cfg.batch_size], replace(cfg, epochs=1))  # warm-up
        t0 = clock()
        run(model, X, y, cfg)
        rates.append(n * epochs / (clock() - t0))
    return rates[0], rates[1]


def adam_rates(name: str, n: int, epochs: int) -> tuple[float, float]:
    """Training samples/s of :func:`fit` under the ``fr_adam`` preset (Adam lr 1e-4,
    batch 32), 1 thread, process CPU time: the reference torch Adam (multi-tensor, the
    default) with denormals kept, against merkit's fused Adam with denormals flushed."""
    cfg = TrainConfig.preset("fr_adam", epochs=epochs)
    X, y = _random_flows(n)

    def reference_adam(model, c):
        return torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    rates = []
    for ref in (True, False):
        torch.manual_seed(0)
        model = create_model(name)
        with contextlib.ExitStack() as stack:
            if ref:
                stack.enter_context(mock.patch.object(tr, "_optimizer", reference_adam))
                stack.enter_context(mock.patch.object(torch, "set_flush_denormal", bool))
            t0 = time.process_time()
            tr.fit(model, make_loader(X, y, batch_size=cfg.batch_size, shuffle=True, seed=0),
                   cfg)  # fmt: skip
            rates.append(n * epochs / (time.process_time() - t0))
    return rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--clip-size", type=int, default=112)
    ap.add_argument("--clip-frames", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10, help="epochs of the real FR fold")
    ap.add_argument("--skip-loso", action="store_true")
    ap.add_argument("--loop-samples", type=int, default=400, help="training set of the loop test")
    ap.add_argument("--loop-epochs", type=int, default=3)
    ap.add_argument("--adam-epochs", type=int, default=8, help="epochs of the Adam table")
    ap.add_argument("--only-loop", action="store_true", help="only the fit-vs-plain-loop table")
    args = ap.parse_args()

    print(f"training loop, CDE presets, {args.loop_samples} samples x {args.loop_epochs} epochs, "
          f"1 thread (process CPU time): samples/s")  # fmt: skip
    print(f"{'model':16s} {'batch':>5s} {'plain loop':>11s} {'fit':>9s} {'ratio':>6s}")
    for name in ("ststnet", "off_apexnet", "dual_inception", "basic_inception", "fr"):
        bs = TrainConfig.preset(preset_for(name, "cde")).batch_size
        plain, new = loop_rates(name, args.loop_samples, args.loop_epochs, 1)
        print(f"{name:16s} {bs:5d} {plain:11.0f} {new:9.0f} {new / plain:6.2f}")
    print(f"\nAdam (fr_adam preset), {args.loop_samples} samples x {args.adam_epochs} epochs, "
          "1 thread (process CPU time): samples/s")  # fmt: skip
    print(f"{'model':16s} {'torch Adam':>11s} {'fused+FTZ':>10s} {'ratio':>6s}")
    for name in ("fr", "basic_inception"):
        plain, new = adam_rates(name, args.loop_samples, args.adam_epochs)
        print(f"{name:16s} {plain:11.0f} {new:10.0f} {new / plain:6.2f}")
    if args.only_loop:
        return

    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    print(f"{'model':16s} {'params':>12s} {'input':>22s} {'samples/s':>10s}")
    for name in MODELS:
        if input_kind(name) == "clip":
            s = args.clip_size
            shape = (args.batch, 3, args.clip_frames, s, s)
            warmup = 1
        else:
            shape = (args.batch, 3, 28, 28)
            warmup = 5
        rate = throughput(name, shape, warmup, args.seconds, args.threads)
        n = count_parameters(create_model(name))
        print(f"{name:16s} {n:12,d} {'x'.join(map(str, shape[1:])):>22s} {rate:10.1f}")

    if args.skip_loso:
        return
    if not FLOW_ROOT.is_dir():
        print(f"real LOSO fold skipped: {FLOW_ROOT} does not exist")
        return
    data = read_megc2019_flow(FLOW_ROOT, scale=1 / 255)
    counts = data.table["subject"].value_counts()
    fold = counts.index[0]
    cfg = TrainConfig.preset("fr_cde", epochs=args.epochs, threads=args.threads)
    t0 = time.perf_counter()
    run = run_loso("fr", data, cfg, seeds=(0,), folds=[fold])
    sec = time.perf_counter() - t0
    p = run.predictions
    acc = float(np.mean(p["y_true"] == p["y_pred"]))
    full = TrainConfig.preset("fr_cde").epochs
    per_fold_full = sec * full / args.epochs
    # other folds train on slightly more clips (442 - n_test): scale by training size
    n_train = len(data) - counts
    total = per_fold_full * float(n_train.sum()) / float(len(data) - counts.iloc[0])
    print(
        f"\nFR, one LOSO fold on the real MEGC 2019 flows (test {fold}, {counts.iloc[0]} "
        f"clips; train {len(data) - counts.iloc[0]}), {args.epochs} epochs: {sec:.1f} s "
        f"(test accuracy {acc:.3f}, not a result: one fold, few epochs)"
    )
    print(
        f"  extrapolated to {full} epochs: {per_fold_full:.0f} s per fold, "
        f"{total / 60:.1f} min for all {len(counts)} folds (one seed)"
    )


if __name__ == "__main__":
    main()
