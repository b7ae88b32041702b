"""Label-free choice of method and parameters across methods (``--select auto``) vs the
oracle, on synthetic CDMER tasks (several seeds) and on the released C <-> V features.

The methods of :data:`MEASURED` (``--methods all`` for the 14) run on a reduced grid
(:data:`GRID`, 1-4 points of each published grid, so that a run fits in minutes on a
loaded 2-core machine); the
criteria are :data:`CRITERIA` (reverse, class_entropy, entropy, snd, snd_guarded, iwcv,
dev; plus agreement and the ensembles vote / family / mean, computed across methods;
``--criteria`` for fewer, e.g. the forward-only ones for the slow regenerators). Prints,
per selection, the mean mean-F1 of its choice, the mean / worst gap to the oracle over
the tasks (and seeds) and the methods it chose.

    PYTHONPATH=src nice -n 15 python benchmarks/cdmer_select_auto.py synth --seeds 0 1 2
    PYTHONPATH=src nice -n 15 python benchmarks/cdmer_select_auto.py released \\
        --features-dir ../shared/data/cdmer_lbptop_r3p8

``--grid published`` runs every method's published grid (but those of :data:`SLOW`, which
keep the reduced points); ``--class-order first-appearance`` codes each task's labels in
MATLAB LibSVM's order (the papers'; ``merkit cdmer --class-order``).

Synthetic tasks: benchmark-format files (85 blocks x 3 planes x 59-bin histograms,
15,045 columns) of CASME2 (36 clips) and SMIC_VIS (24 clips) as in
``tests/cli/test_cdmer_grid_cli.py``: class c raises bins 5c..5c+4 by ``signal``, the
SMIC_VIS domain raises bins 40-49 by ``shift``; the seed draws everything.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from merkit.store import read_auto_selection
from merkit.workflows.cdmer import run_cdmer_on_feature_files

FNAME = "CrossCorpus_LBPTOP_R3P8_{}_112by112.mat"

#: reduced grids: a few points of each method's published grid
GRID = {
    "svm": [{}],
    "kmm": [{}],
    "kliep": [{}],
    "coral": [{}],
    "ulsif": [{"weighting__lam": v} for v in (1.0, 100.0, 1e4)],
    "tca": [{"n_components": k} for k in (2, 5, 10, 20)],
    "gfk": [{"n_components": k} for k in (2, 5, 10, 20)],
    "sa": [{"n_components": k} for k in (2, 5, 10, 20)],
    "tkl": [{"damping": v} for v in (0.5, 1.1, 2.0, 4.0)],
    "tsrg": [{"lam": lam, "mu": mu} for lam, mu in ((0.01, 0.01), (1.0, 0.1), (100.0, 1.0))],
    "drfs_t": [{"lam": lam, "mu": mu} for lam, mu in ((0.01, 0.01), (1.0, 0.1), (100.0, 1.0))],
    "drls": [{"lam": lam, "mu": mu} for lam, mu in ((0.01, 0.01), (1.0, 0.1), (100.0, 1.0))],
    "tgsr": [{"kappa": 85, "xi": v} for v in (0.001, 0.01, 0.1, 1.0)],
    "stm": [{"lam": v} for v in (0.01, 1.0, 100.0)],
}


#: methods that keep the reduced points with ``--grid published`` (their published grids
#: take hours on 15,045 columns: TGSR 23,035 points, the regenerators and STM minutes per
#: point with reverse validation's refits)
SLOW = ("tgsr", "tsrg", "drfs_t", "drls", "stm")

#: the methods measured in docs/da-reproduction.md: the regenerators (TSRG, DRFS-T, DRLS),
#: TGSR and STM take minutes per point on 15,045 columns with reverse validation's refits
MEASURED = "svm,kmm,kliep,coral,ulsif,tca,gfk,sa,tkl"
#: the criteria measured (iwcv and dev share their k = 5 refits per point)
CRITERIA = "reverse,class_entropy,entropy,snd,snd_guarded,iwcv,dev"


def write_synthetic(folder: Path, seed: int, signal: float = 0.3, shift: float = 1.5) -> None:
    rng = np.random.default_rng(seed)
    for db, n, sh in (("CASME2", 36, 0.0), ("SMIC_VIS", 24, shift)):
        y = np.arange(n) % 3
        rng.shuffle(y)
        X = rng.gamma(2.0, 1.0, size=(n, 85 * 3, 59))
        for c in range(3):
            X[y == c, :, 5 * c : 5 * c + 5] += signal
        X[:, :, 40:50] += sh
        X /= X.sum(axis=2, keepdims=True)
        with h5py.File(folder / FNAME.format(db), "w") as f:
            f[f"{db}_micro_feature"] = X.reshape(n, -1).T
            f[f"{db}_micro_label"] = (y + 1).astype(np.float64).reshape(1, -1)


def run(
    features_dir: Path,
    out: Path,
    methods: str,
    criteria: str,
    class_order: str = "sorted",
    grid: str = "reduced",
) -> pd.DataFrame:
    t0 = time.perf_counter()
    crit = criteria.split(",")
    points = GRID if grid == "reduced" else {
        m: GRID[m] if m in SLOW else "published" for m in GRID
    }  # fmt: skip
    run_cdmer_on_feature_files(features_dir, out, method=methods, progress=False,
                               param_grid=points, select="auto", class_order=class_order,
                               criteria=crit, criterion="reverse" if "reverse" in crit
                               else crit[0])  # fmt: skip
    auto = read_auto_selection(out)
    print(f"{features_dir}: {time.perf_counter() - t0:.0f} s", flush=True)
    return auto


def summary(auto: pd.DataFrame) -> pd.DataFrame:
    g = auto.groupby("selection", sort=False)

    def chosen(m: pd.Series) -> str:
        if m.str.contains("+", regex=False).any():
            return f"{m.str.count('[+]').max() + 1} members at most"
        return ", ".join(f"{k} {v}" for k, v in m.value_counts().items())

    return pd.DataFrame({"mean_f1": g["mean_f1"].mean(), "mean_gap": g["gap"].mean(),
                         "worst_gap": g["gap"].min(), "n": g["gap"].size(),
                         "chosen": g["method"].agg(chosen)})  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", choices=["synth", "released"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--features-dir", type=Path)
    ap.add_argument("--methods", default=MEASURED)
    ap.add_argument("--criteria", default=CRITERIA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--class-order", default="sorted", choices=["sorted", "first-appearance"])
    ap.add_argument("--grid", default="reduced", choices=["reduced", "published"],
                    help="published: every method's published grid but those of SLOW")  # fmt: skip
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="select-auto-"))
    parts = []
    if args.source == "synth":
        for s in args.seeds:
            folder = work / f"synth{s}"
            folder.mkdir(parents=True, exist_ok=True)
            write_synthetic(folder, s)
            got = run(folder, work / f"out{s}", args.methods, args.criteria, args.class_order,
                      args.grid)  # fmt: skip
            parts.append(got.assign(data_seed=s))
    else:
        parts.append(run(args.features_dir, work / "released", args.methods, args.criteria,
                         args.class_order, args.grid))  # fmt: skip
    auto = pd.concat(parts, ignore_index=True)
    cols = ["task", "selection", "method", "params", "mean_f1", "gap"]
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(auto[[*(["data_seed"] if "data_seed" in auto else []), *cols]].to_string())
        print(summary(auto).round(4).to_string())
        print(auto.pivot_table(index="selection", columns="task", values="mean_f1",
                               sort=False).round(4).to_string())  # fmt: skip
    print(f"(files under {work})")


if __name__ == "__main__":
    main()
