"""Fold-batched training against the per-fold path, side by side in one run (issue #17).

STSTNet, its authors' setting (``ststnet`` preset: Adam 5e-5, batch 256, 800 epochs),
on the CDE LOSO folds (68 subjects of the MEGC 2019 flow folder, or synthetic inputs of
the same shape when ``../shared/data/megc2019_flow`` is absent). In one run:

* ``gemm``: the float32 GEMM rate on ``--threads`` threads (2048^3, best of 5): the
  machine's arithmetic reference;
* ``per-fold``: ``--per-fold`` folds trained by :func:`merkit.nets.train.train_fold` in
  ``--threads`` worker processes with 1 torch thread each (how ``merkit train
  --fold-batching off --jobs 2`` runs them), wall time; the full LOSO's per-fold wall is
  projected from it (68 folds / workers x the time of one round);
* ``batched``: ``--batched-folds`` folds (default all) trained by
  :func:`merkit.nets.fold_batched.train_folds_batched` with ``--threads`` torch threads.

Printed: fold-samples/s of both paths and their ratio, the LOSO wall times, the achieved
GFLOP/s (3 x the forward FLOPs per fold-sample, ``torch.utils.flop_counter``) as a
fraction of the GEMM rate, and the peak RSS of the process. ``--epochs`` shortens both
paths alike (the ratio holds; the walls are then projected to the preset's epochs).

Usage::

    python benchmarks/fold_batched_speed.py [--epochs 800] [--per-fold 2] [--threads 2]
        [--batched-folds 68] [--flows DIR]
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from fold_batching import forward_flops, gemm_rate
from joblib import Parallel, delayed

from merkit.nets.fold_batched import FoldSpec, train_folds_batched
from merkit.nets.kernels import kernel_problem, load_kernel
from merkit.nets.train import PRESETS, train_fold
from merkit.protocols.splits import leave_one_subject_out

FLOW_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019_flow"


def cde_inputs(flows: Path) -> tuple[np.ndarray, np.ndarray, list[FoldSpec], str]:
    """Inputs, labels and the 68 LOSO folds of the CDE (synthetic when the data is absent)."""
    if (flows / "combined_3_class2_for_optical_flow.csv").is_file():
        from merkit.nets.data import read_megc2019_flow

        data = read_megc2019_flow(flows, channels="uvs")
        folds = [FoldSpec(s.train_idx, s.test_idx, k)
                 for k, s in enumerate(leave_one_subject_out(data.table))]  # fmt: skip
        return data.X, data.y, folds, f"MEGC 2019 flows ({flows})"
    rng = np.random.default_rng(0)
    n, subjects = 442, 68
    subject = np.sort(rng.integers(0, subjects, n))
    X = (rng.random((n, 3, 28, 28)) * 255).astype(np.float32)
    y = rng.integers(0, 3, n)
    folds = [FoldSpec(np.flatnonzero(subject != s), np.flatnonzero(subject == s), s)
             for s in np.unique(subject)]  # fmt: skip
    return X, y, folds, "synthetic inputs of the CDE's shape (442 x 3 x 28 x 28, 68 subjects)"


def _one(X, y, fold: FoldSpec, cfg) -> float:
    t0 = time.perf_counter()
    train_fold("ststnet", X, y, fold.train_idx, fold.test_idx, cfg, seed=0, fold_index=fold.index)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=800)
    ap.add_argument("--per-fold", type=int, default=2, help="folds timed on the per-fold path")
    ap.add_argument("--batched-folds", type=int, default=None, help="default: all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flows", type=Path, default=FLOW_ROOT)
    args = ap.parse_args()
    if load_kernel("ststnet_folds") is None:
        raise SystemExit(
            f"the fold-batched kernel cannot be built: {kernel_problem('ststnet_folds')}"
        )
    X, y, folds, source = cde_inputs(args.flows)
    preset = PRESETS["ststnet"]
    cfg = replace(preset, epochs=args.epochs, num_classes=3)
    scale = preset.epochs / args.epochs
    flops = 3 * forward_flops("ststnet")  # per fold-sample and training step
    print(f"data: {source}; {len(folds)} folds; epochs {args.epochs} (preset {preset.epochs}); "
          f"threads {args.threads}")  # fmt: skip
    gemm = gemm_rate(args.threads)
    print(f"gemm: {gemm:.1f} GFLOP/s (float32, {args.threads} threads)")

    chosen = folds[: args.per_fold]
    times = Parallel(n_jobs=args.threads, batch_size=1)(
        delayed(_one)(X, y, f, replace(cfg, threads=1)) for f in chosen
    )
    # wall of the training alone (the workers' start-up left out): rounds of concurrent folds
    per_wall = sum(max(times[i : i + args.threads]) for i in range(0, len(times), args.threads))
    per_samples = args.epochs * sum(len(f.train_idx) for f in chosen)
    per_rate = per_samples / per_wall
    rounds = -(-len(folds) // args.threads)
    per_loso = per_wall / -(-len(chosen) // args.threads) * rounds * scale
    print(f"per-fold: {len(chosen)} folds in {per_wall:.1f} s wall ({args.threads} processes): "
          f"{per_rate:,.0f} fold-samples/s, {per_rate * flops / 1e9:.1f} GFLOP/s "
          f"({per_rate * flops / 1e9 / gemm:.1%} of gemm); full LOSO projected "
          f"{per_loso / 60:.1f} min")  # fmt: skip

    batched = folds[: args.batched_folds] if args.batched_folds else folds
    t0 = time.perf_counter()
    train_folds_batched("ststnet", X, y, batched, replace(cfg, threads=args.threads), seed=0,
                        protocol_folds=len(folds))  # fmt: skip
    b_wall = time.perf_counter() - t0
    b_samples = args.epochs * sum(len(f.train_idx) for f in batched)
    b_rate = b_samples / b_wall
    b_loso = b_wall * len(folds) / len(batched) * scale
    gflops = b_rate * flops / 1e9
    print(f"batched: {len(batched)} folds in {b_wall:.1f} s wall ({args.threads} threads): "
          f"{b_rate:,.0f} fold-samples/s, {gflops:.1f} GFLOP/s ({gflops / gemm:.1%} of gemm); "
          f"full LOSO {b_loso / 60:.1f} min")  # fmt: skip
    print(f"ratio batched / per-fold: {b_rate / per_rate:.2f}x")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss:,.0f} MB; torch {torch.__version__}")


if __name__ == "__main__":
    main()
