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

``--against REF`` instead times the batched path of this checkout against that of the
git revision ``REF`` (its ``src`` exported to a temporary folder, its kernel built under
its own digest) in the same run: each side trains all folds for ``--epochs`` epochs after
one warm-up epoch in its own subprocess, the two sides alternating ``--repeats`` times;
printed: each side's fold-samples/s over the timed epochs (per wall second and per second
of the process's CPU time, which leaves out time the process waited for a busy core; best,
median and every run) and the ratios.

Usage::

    python benchmarks/fold_batched_speed.py [--epochs 800] [--per-fold 2] [--threads 2]
        [--batched-folds 68] [--flows DIR]
    python benchmarks/fold_batched_speed.py --against REF [--epochs 3] [--threads 1]
        [--repeats 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
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


def _timed_batched(epochs: int, threads: int, flows: Path) -> None:
    """One side of ``--against``: train every fold for 1 + ``epochs`` epochs with the
    merkit on ``sys.path``, print JSON with the fold-samples/s of the last ``epochs``."""
    import merkit

    X, y, folds, _ = cde_inputs(flows)
    cfg = replace(PRESETS["ststnet"], epochs=epochs + 1, num_classes=3, threads=threads)
    stamps: list[tuple[float, float]] = []  # (wall, this process's CPU time)
    train_folds_batched("ststnet", X, y, folds, cfg, seed=0, protocol_folds=len(folds),
                        on_epoch=lambda e, n: stamps.append((time.perf_counter(),
                                                             time.process_time())))  # fmt: skip
    samples = epochs * sum(len(f.train_idx) for f in folds)
    rate = samples / (stamps[-1][0] - stamps[0][0])
    cpu_rate = samples / (stamps[-1][1] - stamps[0][1])
    print(json.dumps({"rate": rate, "cpu_rate": cpu_rate, "merkit": merkit.__file__}))


def compare(ref: str, epochs: int, threads: int, repeats: int, flows: Path) -> None:
    """The batched path of this checkout against that of git revision ``ref``."""
    repo = Path(__file__).resolve().parents[1]
    sha = subprocess.run(["git", "rev-parse", ref], cwd=repo, check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    _, _, _, source = cde_inputs(flows)
    print(f"data: {source}; all folds, {epochs} timed epochs after 1 warm-up; {threads} "
          f"thread(s); {ref} = {sha[:10]} against this checkout")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="merkit-ref-") as tmp:
        archive = subprocess.run(["git", "archive", sha, "src"], cwd=repo, check=True,
                                 capture_output=True).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        sides = {ref: Path(tmp) / "src", "this checkout": repo / "src"}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        cpu: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(repeats):
            for name, src in sides.items():
                # REF's kernel is built in the temporary folder (its path differs per run)
                own = {} if src == repo / "src" else {"MERKIT_KERNEL_DIR": f"{tmp}/kernels"}
                env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{repo / 'benchmarks'}",
                       "OMP_NUM_THREADS": str(threads), **own}  # fmt: skip
                out = subprocess.run(
                    [sys.executable, __file__, "--_side", "--epochs", str(epochs), "--threads",
                     str(threads), "--flows", str(flows)],
                    env=env, check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                got = json.loads(out.strip().splitlines()[-1])
                if not got["merkit"].startswith(str(src)):
                    raise SystemExit(f"{name}: imported merkit from {got['merkit']}, not {src}")
                rates[name].append(got["rate"])
                cpu[name].append(got["cpu_rate"])
                print(f"  {name}: {got['rate']:,.0f} fold-samples/s (per CPU second: "
                      f"{got['cpu_rate']:,.0f})", flush=True)  # fmt: skip
    for label, runs in (("wall", rates), ("CPU time", cpu)):
        best = {name: max(r) for name, r in runs.items()}
        mid = {name: float(np.median(r)) for name, r in runs.items()}
        for name, r in runs.items():
            print(f"{name} ({label}): best {best[name]:,.0f}, median {mid[name]:,.0f} "
                  f"fold-samples/s (runs: {', '.join(f'{v:,.0f}' for v in r)})")  # fmt: skip
        mine = "this checkout"
        print(f"ratio {mine} / {ref} ({label}): best {best[mine] / best[ref]:.3f}x, "
              f"median {mid[mine] / mid[ref]:.3f}x")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=None, help="default 800 (--against: 3)")
    ap.add_argument("--per-fold", type=int, default=2, help="folds timed on the per-fold path")
    ap.add_argument("--batched-folds", type=int, default=None, help="default: all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flows", type=Path, default=FLOW_ROOT)
    ap.add_argument(
        "--against", metavar="REF", help="git revision to time the batched path against"
    )
    ap.add_argument("--repeats", type=int, default=2, help="--against: runs of each side")
    ap.add_argument("--_side", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.per_fold < 1:  # the ratio divides by the per-fold rate
        ap.error(f"--per-fold {args.per_fold}: time at least 1 fold on the per-fold path")
    if args._side:
        _timed_batched(args.epochs, args.threads, args.flows)
        return
    if args.against:
        compare(args.against, args.epochs or 3, args.threads, args.repeats, args.flows)
        return
    args.epochs = args.epochs or 800
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
