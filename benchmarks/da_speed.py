"""Speed of the CDMER domain-adaptation methods on the released LBP-TOP features.

For one task (default C -> V, Exp.9) of ``shared/data/cdmer_lbptop_r3p8``:

1. seconds per fit (fit + predict, one process) of every registry method at its
   documented default point;
2. wall time of each method's full published grid with ``--jobs`` workers through
   :func:`merkit.protocols.runner.run_grid` (TGSR through its dual fast path, every
   kappa of one xi per job). Grids of more than ``--sample`` points are run on an evenly
   spaced sample (TGSR: ``--tgsr-xi`` xi values x all 85 kappas) and the full wall time
   is *projected* linearly from it; ``--full`` runs every grid completely;
3. the ratio to skada / adapt when installed; otherwise the peer timings measured
   earlier (shared/notes/da-pitfalls.md) are printed as the reference.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/da_speed.py [--task C->V] [--jobs 2]
        [--sample 6] [--tgsr-xi 2] [--methods svm,tca,...] [--criteria] [--full]

Grid timings are fits only unless ``--criteria`` (then entropy, class entropy and
reverse validation as :func:`run_grid` computes them).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from merkit.adapt import METHODS
from merkit.adapt.selection import DEFAULTS, published_grid
from merkit.protocols.cdmer import get_task
from merkit.protocols.runner import WorkUnit, run_grid, run_unit
from merkit.results.store import params_to_json

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"

#: per-fit medians of the peer libraries on these features (da-pitfalls.md, loaded machine)
PEER_SECONDS = {
    "sa": {"adapt": 0.55, "skada": 2.1},
    "tca": {"adapt": 2.6, "skada": 3.1},
    "kmm": {"adapt": 0.28, "skada": 0.65},
    "kliep": {"adapt": 0.32, "skada": 0.90},
    "ulsif": {"adapt": 0.27},
    "svm": {"baseline": 0.7},
}


def _fmt(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _sample(grid: list[dict], n: int) -> list[dict]:
    if len(grid) <= n:
        return grid
    pos = np.unique(np.round(np.linspace(0, len(grid) - 1, n)).astype(int))
    return [grid[i] for i in pos]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="C->V")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--sample", type=int, default=6, help="grid points timed per method")
    ap.add_argument("--tgsr-xi", type=int, default=2, help="xi values timed for TGSR")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--criteria", action="store_true", help="time the label-free criteria too")
    ap.add_argument("--full", action="store_true", help="run every grid completely")
    ap.add_argument("--skip-fits", action="store_true", help="skip the per-fit timings")
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: CDMER reference features not found at {DATA.resolve()}")
        return
    from merkit.data.features_io import load_cdmer_dir

    feats = load_cdmer_dir(DATA)
    task = get_task(args.task)
    ns, nt = len(feats[task.source]), len(feats[task.target])
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    print(f"{task}: {ns} source / {nt} target rows, {feats[task.source].X.shape[1]} features")
    peers = [p for p in ("skada", "adapt") if importlib.util.find_spec(p) is not None]

    if not args.skip_fits:
        print("\n1. one fit + predict at the documented default point (one process)")
        print(f"{'method':8s} {'params':34s} {'seconds':>8s}  peer reference")
        for m in methods:
            p = DEFAULTS.get(m, {})
            t0 = time.perf_counter()
            res = run_unit(WorkUnit(task, m, params_to_json(p)), feats)
            dt = time.perf_counter() - t0
            ref = PEER_SECONDS.get(m, {})
            if peers:
                peer = f"ratio vs {', '.join(peers)}: measure with the peer installed"
            elif ref:
                peer = "peer library not installed; recorded: " + ", ".join(
                    f"{k} {v:.2f} s ({dt / v:.1f}x)" for k, v in ref.items())  # fmt: skip
            else:
                peer = "peer library not installed; no peer implementation"
            acc = 100 * float(np.mean(res.y_pred == res.y_true))
            print(f"{m:8s} {params_to_json(p):34s} {dt:8.2f}  {peer}  (acc {acc:.2f} %)")

    print(f"\n2. full published grid on {task.code}, {args.jobs} workers"
          + (" with criteria" if args.criteria else ", fits only"))  # fmt: skip
    print(f"{'method':8s} {'points':>7s} {'timed':>6s} {'wall':>10s} {'per point':>10s}  full grid")
    crit = ("reverse", "class_entropy", "entropy") if args.criteria else ()
    total = 0.0
    for m in methods:
        full = published_grid(m, ns, nt)
        if args.full:
            pts = full
        elif m == "tgsr":
            xis = sorted({p["xi"] for p in full})
            keep = set(_sample([{"xi": x} for x in xis], args.tgsr_xi)[i]["xi"]
                       for i in range(min(args.tgsr_xi, len(xis))))  # fmt: skip
            pts = [p for p in full if p["xi"] in keep]
        else:
            pts = _sample(full, args.sample)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run = run_grid(feats, m, grid={m: pts}, tasks=[task], store=tmp, n_jobs=args.jobs,
                           criteria=crit, progress=False)  # fmt: skip
            wall = time.perf_counter() - t0
        per = wall / len(pts)
        proj = per * len(full)
        total += proj
        label = _fmt(wall) if len(pts) == len(full) else f"projected {_fmt(proj)}"
        best = run.grid["mean_f1"].max()
        print(f"{m:8s} {len(full):7d} {len(pts):6d} {_fmt(wall):>10s} {per:9.3f}s  {label}"
              f"  (best mean-F1 of the timed points {best:.4f})")  # fmt: skip
    print(f"all methods: {_fmt(total)} (measured + projected) for one task")
    if not peers:
        print("skada / adapt: peer library not installed; reference timings per fit recorded in "
              "shared/notes/da-pitfalls.md: " + "; ".join(
                  f"{m} " + ", ".join(f"{k} {v} s" for k, v in r.items())
                  for m, r in PEER_SECONDS.items()))  # fmt: skip


if __name__ == "__main__":
    main()
