"""Scale of grid runs: 1 vs 2 workers, Ray / Dask overhead, results-store flush cost.

On the CDMER tasks of ``shared/data/cdmer_lbptop_r3p8`` (C -> V and V -> C):

1. **Grids**: wall time of the published grid of every method (or ``--methods``) through
   :func:`merkit.protocols.runner.run_grid` with 1 and 2 workers (``--workers``), with the
   criteria a full run computes. ``--sample N`` times N random points per (method, task)
   and the first N/2 of them (TGSR: ``--tgsr-xi`` whole xi groups of its 85 kappas and
   half of them, as its batched fit_path runs them; ``reverse`` on the same share of points
   as a full run, ``expensive_sample`` scaled); the full grid is projected from the line
   through the two (fixed cost per run + cost per point); ``--sample 0`` runs every
   point. Before timing a method its module is imported in every worker. Prints the
   speed-up ratio, points per second per worker and the projected time of the full grids
   on a cluster of ``--cluster`` workers (per-point cost of the 2-worker run; start-up
   and fixed costs excluded).
2. **Backends** (``--backends loky,dask,ray``): one grid of ``--overhead-points`` SA
   points (evenly spaced k) on C -> V with 2 workers on each backend: cold (cluster
   started and stopped by the run, workers importing merkit) and warm (best of
   ``--repeat`` runs on an open :class:`merkit.parallel.Backend` after one warm-up run),
   and the cluster start-up time.
3. **Flush cost** (``--flush-rows``): a results store grown to TGSR-grid scale (71
   target rows per unit, 50 units per flush, as ``run_grid`` flushes): seconds per flush
   of the incremental store at several sizes, and of a whole-file rewrite (the previous
   store, which read and rewrote ``predictions.csv`` on every flush; timed here as a
   merge of everything, its cost) at the same sizes; totals over the whole growth
   (whole-file rewrite: summed from a linear fit of its per-flush cost).

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/scale.py --sample 4 [--methods ...]
        [--workers 1,2] [--backends loky,dask,ray] [--flush-rows 1600000] [--skip ...]

Timings on a shared machine are inflated by whatever else runs on it; ratios between
runs made one after the other are the meaningful numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from da_speed import _fmt  # the benchmarks' duration format (run as a script)

from merkit.adapt import METHODS, make_method
from merkit.data.features_io import load_cdmer_dir
from merkit.parallel import Backend
from merkit.protocols.cdmer import available_tasks
from merkit.protocols.grid import grid_points
from merkit.protocols.runner import run_grid
from merkit.store import ResultStore

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"
EXPENSIVE_SAMPLE = 1000  # run_grid's default: reverse / iwcv on this many points per grid


def _samples(method: str, full: list[dict], n: int, n_xi: int, rng) -> list[list[dict]]:
    """``[small, large]`` samples of a grid (small = the first half of large), or
    ``[full]`` when the grid is no larger than the sample."""
    if method == "tgsr":  # whole xi groups: its fit_path fits every kappa of one xi at once
        xis = sorted({p["xi"] for p in full})
        if n <= 0 or n_xi >= len(xis):
            return [full]
        pick = rng.permutation(xis)[: max(2, n_xi)].tolist()
        half = set(pick[: len(pick) // 2])
        return [[p for p in full if p["xi"] in half], [p for p in full if p["xi"] in pick]]
    if n <= 0 or n >= len(full):
        return [full]
    order = rng.permutation(len(full))[: max(4, n)]
    return [[full[i] for i in sorted(order[: len(order) // 2])],
            [full[i] for i in sorted(order)]]  # fmt: skip


def _warm(method: str, workers: int) -> None:
    """Import the method's module here and in every loky worker (one-time costs)."""
    make_method(method)
    with Backend("loky", workers) as be:
        list(be.map([(make_method, (method,)) for _ in range(4 * workers)]))


def _timed_grid(features, method, task, points, expensive, workers, backend="loky"):
    store = Path(tempfile.mkdtemp(prefix="merkit-scale-"))
    try:
        t0 = time.perf_counter()
        run = run_grid(features, [method], grid={method: points}, tasks=[task], store=store,
                       n_jobs=workers, backend=backend, progress=False,
                       expensive_sample=expensive)  # fmt: skip
        seconds = time.perf_counter() - t0
        assert run.computed == len(points), (run.computed, len(points))
        return seconds
    finally:
        shutil.rmtree(store, ignore_errors=True)


def bench_grids(features, methods, sample, n_xi, workers, seed, cluster) -> None:
    tasks = available_tasks(set(features))
    rng = np.random.default_rng(seed)
    print(f"\n== grids: published, tasks {', '.join(t.name for t in tasks)}, criteria "
          "reverse / class_entropy / entropy ==")  # fmt: skip
    head = f"{'method':8s} {'points':>7s} {'timed':>6s}" + "".join(
        f" {f'{w} worker(s)':>14s}" for w in workers
    )
    print(head + f" {'speed-up':>8s} {'pts/s/worker':>12s}")
    totals = dict.fromkeys(workers, 0.0)
    rates: dict[str, float] = {}
    full_points: dict[str, int] = {}
    for m in methods:
        _warm(m, max(workers))
        n_full = n_timed = 0
        secs = dict.fromkeys(workers, 0.0)
        variable = dict.fromkeys(workers, 0.0)  # seconds of the points, no fixed cost
        for task in tasks:
            src, tgt = features[task.source], features[task.target]
            full = grid_points(m, "published", len(src), len(tgt))
            runs = _samples(m, full, sample, n_xi, rng)
            for w in workers:
                walls = []
                for pts in runs:
                    expensive = None
                    if len(full) > EXPENSIVE_SAMPLE:  # reverse on the share a full run does
                        expensive = max(1, round(EXPENSIVE_SAMPLE * len(pts) / len(full)))
                    walls.append(_timed_grid(features, m, task, pts, expensive, w))
                if len(runs) == 1:  # the full grid was run
                    secs[w] += walls[0]
                    variable[w] += walls[0] / len(full)
                    continue
                (n1, n2), (t1, t2) = (len(runs[0]), len(runs[1])), walls
                slope = max((t2 - t1) / (n2 - n1), t2 / n2 / 4)  # noise: keep it positive
                fixed = max(0.0, t2 - slope * n2)
                secs[w] += fixed + slope * len(full)
                variable[w] += slope * len(full)
            n_full += len(full)
            n_timed += sum(len(r) for r in runs)
        w_hi = max(workers)
        rates[m] = n_full / (variable[w_hi] * w_hi)
        full_points[m] = n_full
        for w in workers:
            totals[w] += secs[w]
        speed = secs[min(workers)] / secs[w_hi] if len(workers) > 1 else float("nan")
        print(f"{m:8s} {n_full:7d} {n_timed:6d}" + "".join(f" {_fmt(secs[w]):>14s}"
              for w in workers) + f" {speed:8.2f} {rates[m]:12.3f}", flush=True)  # fmt: skip
    speed = totals[min(workers)] / totals[max(workers)] if len(workers) > 1 else float("nan")
    n_all = sum(full_points.values())
    print(f"{'all':8s} {n_all:7d} {'':6s}" + "".join(f" {_fmt(totals[w]):>14s}" for w in workers)
          + f" {speed:8.2f}")  # fmt: skip
    if sample > 0:
        print(f"(full grids projected from {sample} and {sample // 2} sampled points per "
              f"method and task, TGSR from {n_xi} and {n_xi // 2} xi groups; 'timed' counts "
              "both samples)")  # fmt: skip
    print("projected full grids on a cluster (points/s/worker of the 2-worker run, start-up "
          "and data transfer excluded):")  # fmt: skip
    for n in cluster:
        t = sum(full_points[m] / (rates[m] * n) for m in methods)
        print(f"  {n:4d} workers: {_fmt(t)}")


def bench_backends(features, backends, n_points, repeat) -> None:
    task = next(t for t in available_tasks(set(features)) if t.name == "Exp.9")
    src, tgt = features[task.source], features[task.target]
    full = grid_points("sa", "published", len(src), len(tgt))
    pts = [full[int(i)] for i in np.unique(np.linspace(0, len(full) - 1, n_points).round())]
    print(f"\n== backends: {len(pts)} SA points on {task.name}, 2 workers (warm: best of "
          f"{repeat}) ==")  # fmt: skip
    print(f"{'backend':8s} {'start-up':>9s} {'cold run':>9s} {'warm run':>9s} {'vs loky':>8s}")
    ref = None
    for name in backends:
        try:
            be = Backend(name, 2)
        except ImportError as err:
            print(f"{name:8s} skipped: {err}")
            continue
        cold = _timed_grid(features, "sa", task, pts, None, 2, backend=name)
        with be:
            t0 = time.perf_counter()
            _ = be.workers  # starts the cluster
            start = time.perf_counter() - t0
            _timed_grid(features, "sa", task, pts, None, 2, backend=be)  # warm-up
            warm = min(_timed_grid(features, "sa", task, pts, None, 2, backend=be)
                       for _ in range(repeat))  # fmt: skip
        ref = warm if name == "loky" else ref
        ratio = f"{warm / ref:8.2f}" if ref else f"{'':8s}"
        print(f"{name:8s} {start:8.1f}s {cold:8.1f}s {warm:8.1f}s {ratio}", flush=True)


def _records(start: int, k: int, n: int) -> list:
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + k):
        yt = rng.integers(0, 3, n)
        out.append(ResultStore.make_record(
            protocol="cdmer", task="Exp.9", source="CASME2", target="SMIC_VIS", method="tgsr",
            params={"kappa": i % 85 + 1, "xi": 0.001 * (1 + i // 85)}, seed=0,
            data="0123456789abcdef>fedcba9876543210", y_true=yt, y_pred=rng.permutation(yt),
            clip=[f"s{j:02d}_ne_{j:02d}" for j in range(n)], extra={"seconds": 0.01},
        ))  # fmt: skip
    return out


def bench_flush(rows: int, n_target: int = 71, per_flush: int = 50) -> None:
    units = rows // n_target
    n_flush = math.ceil(units / per_flush)
    marks = sorted({max(1, round(n_flush * f)) for f in (0.05, 0.25, 0.5, 1.0)})
    print(f"\n== flush cost: {units} units x {n_target} target rows = {units * n_target} "
          f"prediction rows, {per_flush} units per flush ({n_flush} flushes) ==")  # fmt: skip
    print(f"{'rows stored':>12s} {'incremental':>12s} {'rewrite all':>12s} {'ratio':>7s}")
    root = Path(tempfile.mkdtemp(prefix="merkit-flush-"))
    try:
        store = ResultStore(root / "s")
        total_new, sizes, rewrite = 0.0, [], []
        done = 0
        for f in range(1, n_flush + 1):
            k = min(per_flush, units - done)
            recs = _records(done, k, n_target)
            t0 = time.perf_counter()
            store.add_records(recs)
            dt = time.perf_counter() - t0
            total_new += dt
            done += k
            if f in marks:
                # the previous store's flush: read everything, rewrite both files (timed as
                # a write plus a merge of everything; a lower bound: it also built a Python
                # key tuple per stored row)
                store.compact()
                t0 = time.perf_counter()
                store.add_records(_records(done - k, k, n_target))  # the same keys again
                store.compact()
                old = time.perf_counter() - t0
                sizes.append(done * n_target)
                rewrite.append(old)
                print(f"{done * n_target:12d} {dt:11.3f}s {old:11.3f}s {old / dt:7.1f}",
                      flush=True)  # fmt: skip
        slope, icpt = np.polyfit(sizes, rewrite, 1) if len(sizes) > 1 else (0.0, rewrite[0])
        old_total = sum(icpt + slope * (i * per_flush * n_target) for i in range(1, n_flush + 1))
        t0 = time.perf_counter()
        store.compact()
        final = time.perf_counter() - t0
        print(f"total over the growth: incremental {_fmt(total_new)} (+ {final:.1f} s final "
              f"merge), whole-file rewrite about {_fmt(old_total)} "
              f"({old_total / (total_new + final):.0f}x)")  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=Path, default=DATA)
    ap.add_argument("--methods", default="all", help="comma list of registry names, or all")
    ap.add_argument("--sample", type=int, default=6, help="points per (method, task); 0 = all")
    ap.add_argument("--tgsr-xi", type=int, default=4, help="TGSR xi groups (85 points each)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--cluster", default="8,32,128", help="cluster sizes of the projection")
    ap.add_argument("--backends", default="loky,dask,ray")
    ap.add_argument("--overhead-points", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="warm backend runs (best kept)")
    ap.add_argument("--flush-rows", type=int, default=1_600_000)
    ap.add_argument("--skip", default="", help="comma list of grids, backends, flush")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    print(f"cpus: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f} (a shared machine "
          "inflates every timing)")  # fmt: skip
    if not {"grids", "backends"} <= skip:
        if not args.features.is_dir():
            raise SystemExit(f"CDMER features not found at {args.features}")
        features = load_cdmer_dir(args.features)
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    if "grids" not in skip:
        workers = [int(w) for w in args.workers.split(",")]
        cluster = [int(n) for n in args.cluster.split(",")]
        bench_grids(features, methods, args.sample, args.tgsr_xi, workers, args.seed, cluster)
    if "backends" not in skip:
        bench_backends(features, args.backends.split(","), args.overhead_points, args.repeat)
    if "flush" not in skip:
        bench_flush(args.flush_rows)


if __name__ == "__main__":
    main()
