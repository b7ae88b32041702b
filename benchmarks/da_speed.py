"""Speed of the CDMER domain-adaptation methods on the released LBP-TOP features.

For one task (default C -> V, Exp.9) of ``shared/data/cdmer_lbptop_r3p8``:

1. CPU seconds per fit (fit + predict, single-threaded BLAS) of every registry method at
   its documented default point;
2. each method's full published grid through :func:`merkit.protocols.runner.run_grid`
   (TGSR through its batched ``fit_path``, the dual solver): CPU seconds per grid point
   measured on an evenly
   spaced sample of the grid (TGSR: ``--tgsr-xi`` xi values x all 85 kappas), and the
   wall time of the whole grid on 2 workers *projected* from it (total CPU / 2, i.e. two
   free cores); ``--full`` runs every grid completely with ``--jobs`` workers and prints
   the measured wall time instead;
3. the ratio to skada (when installed) at matched settings, with both accuracies
   printed: "equal accuracy" holds where the two compute the same model; adapt needs
   TensorFlow and is not installed here, so its per-fit times recorded in
   shared/notes/da-pitfalls.md are printed as the reference.

Usage::

    OPENBLAS_NUM_THREADS=1 python benchmarks/da_speed.py [--task C->V] [--sample 6]
        [--tgsr-xi 2] [--methods svm,tca,...] [--criteria] [--full --jobs 2] [--no-peers]

CPU times are used because the machine is shared (wall times there depend on the other
jobs); grid timings are fits only unless ``--criteria`` (then entropy, class entropy and
reverse validation as :func:`run_grid` computes them).
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
import sklearn
from sklearn.svm import SVC

from merkit.adapt import (
    KLIEP,
    KMM,
    METHODS,
    ULSIF,
    CorrelationAlignment,
    ImportanceWeightedSVM,
    SubspaceAlignment,
    TransferComponentAnalysis,
    default_point,
    published_grid,
)
from merkit.adapt.kernels import median_heuristic_gamma
from merkit.data.features_io import load_cdmer_dir
from merkit.metrics import accuracy, uf1
from merkit.protocols.cdmer import get_task
from merkit.protocols.runner import run_grid
from merkit.protocols.units import WorkUnit, run_unit
from merkit.store import params_to_json

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"

#: per-fit medians of adapt 0.4.5 on these features (da-pitfalls.md, loaded machine)
ADAPT_SECONDS = {"sa": 0.55, "tca": 2.6, "kmm": 0.28, "kliep": 0.32, "ulsif": 0.27,
                 "coral": 70 * 60.0}  # fmt: skip


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


def _cpu(f):
    t0 = time.process_time()
    out = f()
    return out, time.process_time() - t0


def per_fit(task, feats, methods) -> None:
    print("\n1. one fit + predict at the documented default point (CPU seconds, one process)")
    print(f"{'method':8s} {'params':34s} {'cpu s':>8s}  mean-F1 / acc")
    for m in methods:
        p = default_point(m)
        res, dt = _cpu(lambda m=m, p=p: run_unit(WorkUnit(task, m, params_to_json(p)), feats))
        acc = 100 * float(np.mean(res.y_pred == res.y_true))
        print(f"{m:8s} {params_to_json(p):34s} {dt:8.2f}  {uf1(res.y_true, res.y_pred):.4f} / "
              f"{acc:.2f}")  # fmt: skip


def grids(task, feats, methods, args) -> None:
    ns, nt = len(feats[task.source]), len(feats[task.target])
    crit = ("reverse", "class_entropy", "entropy") if args.criteria else ()
    head = "measured wall" if args.full else "projected wall, 2 workers"
    print(f"\n2. full published grid on {task.code}"
          + (" with criteria" if args.criteria else ", fits only"))  # fmt: skip
    print(f"{'method':8s} {'points':>7s} {'timed':>6s} {'cpu/point':>10s}  {head}")
    total = 0.0
    for m in methods:
        full = published_grid(m, ns, nt) if m != "coral" else [{}]
        if args.full:
            pts = full
        elif m == "tgsr":
            xis = sorted({p["xi"] for p in full})
            keep = {x["xi"] for x in _sample([{"xi": x} for x in xis], args.tgsr_xi)}
            pts = [p for p in full if p["xi"] in keep]
        else:
            pts = _sample(full, args.sample)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            run, cpu = _cpu(lambda m=m, pts=pts, tmp=tmp: run_grid(
                feats, m, grid={m: pts}, tasks=[task], store=tmp,
                n_jobs=args.jobs if args.full else 1, criteria=crit, progress=False))  # fmt: skip
            wall = time.perf_counter() - t0
        per = cpu / len(pts)
        proj = wall if args.full else per * len(full) / 2
        total += proj
        best = run.grid["mean_f1"].max()
        print(f"{m:8s} {len(full):7d} {len(pts):6d} {per:9.3f}s  {_fmt(proj):>10s}"
              f"  (best mean-F1 of the timed points {best:.4f})")  # fmt: skip
    print(f"all methods: {_fmt(total)} for one task ({head})")
    print(
        "TSRG and DRFS-T share their IALM fits in benchmarks/cdmer_reproduce.py (one fit with "
        "reference R gives TSRG R->O and DRFS-T O->R), halving their grids."
    )


def _skada_pairs(Xs, Xt, gamma):
    """(name, merkit estimator, skada estimator) at matched settings."""
    import skada

    sklearn.set_config(enable_metadata_routing=True)  # skada's reweighting routes weights
    svc = SVC(kernel="linear", C=1.0)
    svc_w = SVC(kernel="linear", C=1.0).set_fit_request(sample_weight=True)
    return [
        ("tca", TransferComponentAnalysis(n_components=20, kernel="linear", mu=1.0),
         skada.TransferComponentAnalysis(svc, kernel="linear", n_components=20, mu=1.0)),
        ("sa", SubspaceAlignment(n_components=20),
         skada.SubspaceAlignment(svc, n_components=20)),
        ("kmm", ImportanceWeightedSVM(weighting=KMM(gamma=gamma), normalize=False),
         skada.KMMReweight(svc_w, gamma=gamma, B=1000.0)),
        ("kliep", ImportanceWeightedSVM(weighting=KLIEP(gamma=gamma), normalize=False),
         skada.KLIEPReweight(svc_w, gamma=[gamma], n_centers=100, random_state=0)),
    ]  # fmt: skip


def peers(task, feats, coral_dims: int) -> None:
    src, tgt = feats[task.source], feats[task.target]
    Xs, ys = np.asarray(src.X, float), np.asarray(src.y)
    Xt, yt = np.asarray(tgt.X, float), np.asarray(tgt.y)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, -np.ones(len(Xt), dtype=int)]
    sd = np.r_[np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)]
    have_skada = importlib.util.find_spec("skada") is not None
    print("\n3. peers at matched settings (CPU seconds per fit + predict; accuracy %)")
    print(f"{'method':8s} {'merkit s':>9s} {'acc':>6s} {'skada s':>8s} {'acc':>6s} "
          f"{'ratio':>7s}  adapt (recorded)")  # fmt: skip
    gamma = median_heuristic_gamma(X)
    rows = _skada_pairs(Xs, Xt, gamma) if have_skada else []
    for name, mk, sk in rows:
        pm, tm = _cpu(lambda mk=mk: mk.fit(X, y, sd).predict(Xt))
        try:
            ps, ts = _cpu(lambda sk=sk: sk.fit(X, y, sample_domain=sd).predict(Xt))
            a_s, r = f"{100 * accuracy(yt, ps):6.2f}", f"{ts / tm:6.1f}x"
            ts_s = f"{ts:8.2f}"
        except Exception as err:  # a peer failure is a result, not a crash
            a_s, r, ts_s = "  fail", "     -", f"{type(err).__name__[:8]:>8s}"
        ad = ADAPT_SECONDS.get(name)
        print(f"{name:8s} {tm:9.2f} {100 * accuracy(yt, pm):6.2f} {ts_s} {a_s} {r}  "
              f"{ad:.2f} s ({ad / tm:.1f}x)")  # fmt: skip
    # uLSIF: no skada implementation
    pm, tm = _cpu(lambda: ImportanceWeightedSVM(weighting=ULSIF()).fit(X, y, sd).predict(Xt))
    print(f"{'ulsif':8s} {tm:9.2f} {100 * accuracy(yt, pm):6.2f} {'-':>8s} {'-':>6s} {'-':>7s}  "
          f"{ADAPT_SECONDS['ulsif']:.2f} s ({ADAPT_SECONDS['ulsif'] / tm:.1f}x)")  # fmt: skip
    # CORAL: skada forms d x d covariances; full d (15045) needs ~12 GB and ~12 min per fit,
    # so both run on the first `coral_dims` columns and the d^3 cost is extrapolated
    cols = slice(0, coral_dims)
    Xd, Xtd = X[:, cols], Xt[:, cols]
    pm, tm = _cpu(lambda: CorrelationAlignment(reg=1.0).fit(Xd, y, sd).predict(Xtd))
    full_m = _cpu(lambda: CorrelationAlignment(reg=1.0).fit(X, y, sd).predict(Xt))[1]
    line = f"{'coral':8s} {tm:9.2f} {100 * accuracy(yt, pm):6.2f}"
    if have_skada:
        import skada

        sk = skada.CORAL(SVC(kernel="linear", C=1.0), reg=1.0)
        ps, ts = _cpu(lambda: sk.fit(Xd, y, sample_domain=sd).predict(Xtd))
        line += f" {ts:8.2f} {100 * accuracy(yt, ps):6.2f} {ts / tm:6.1f}x"
        est = ts * (X.shape[1] / coral_dims) ** 3
        line += (f"  (first {coral_dims} of {X.shape[1]} columns; full d: merkit {full_m:.2f} s, "
                 f"skada ~{_fmt(est)} extrapolated as d^3)")  # fmt: skip
    print(line)
    if not have_skada:
        print("skada not installed (pip install skada): only the recorded adapt times are shown")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="C->V")
    ap.add_argument("--jobs", type=int, default=2, help="workers of a --full run")
    ap.add_argument("--sample", type=int, default=6, help="grid points timed per method")
    ap.add_argument("--tgsr-xi", type=int, default=2, help="xi values timed for TGSR")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--criteria", action="store_true", help="time the label-free criteria too")
    ap.add_argument("--full", action="store_true", help="run every grid completely")
    ap.add_argument("--skip-fits", action="store_true", help="skip the per-fit timings")
    ap.add_argument("--skip-grids", action="store_true", help="skip the grid timings")
    ap.add_argument("--no-peers", action="store_true", help="skip the skada comparison")
    ap.add_argument("--coral-dims", type=int, default=2000)
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"skipped: CDMER reference features not found at {DATA.resolve()}")
        return
    feats = load_cdmer_dir(DATA)
    task = get_task(args.task)
    ns, nt = len(feats[task.source]), len(feats[task.target])
    methods = list(METHODS) if args.methods == "all" else args.methods.split(",")
    print(f"{task}: {ns} source / {nt} target rows, {feats[task.source].X.shape[1]} features")
    if not args.skip_fits:
        per_fit(task, feats, methods)
    if not args.skip_grids:
        grids(task, feats, methods, args)
    if not args.no_peers:
        peers(task, feats, args.coral_dims)


if __name__ == "__main__":
    main()
