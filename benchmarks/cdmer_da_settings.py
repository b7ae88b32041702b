"""Issue #21 (a): uLSIF / STM candidate settings and LibSVM's class order on C -> V / V -> C.

Oracle protocol (best mean-F1 over a grid, scored with target labels). Usage::

    OPENBLAS_NUM_THREADS=1 nice -n 15 python benchmarks/cdmer_da_settings.py ulsif CAND [--full]
    ... cdmer_da_settings.py stm linear|rbf_median|rbf_t3
    ... cdmer_da_settings.py order svm,sa,gfk,tca,tkl,ulsif

``ulsif`` candidates: see ``ULSIF_CANDIDATES``; without ``--full`` the lambda grid is
1..100, 200..1000 step 100, 1e4..1e7 (113 points; the Gaussian candidates are flat beyond
100). ``order`` fits each published grid point twice, with scikit-learn's sorted class
order and with MATLAB LibSVM's (first appearance in the training labels,
:func:`merkit.adapt.base.first_appearance_codes`), on C -> V (V -> C: the two orders
coincide). Results: docs/da-reproduction.md, "IW-SVM (uLSIF) and STM settings".
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np

from merkit.adapt import make_method, published_grid
from merkit.adapt.base import first_appearance_codes
from merkit.adapt.reweight import ULSIF, ULSIF_LAMBDAS, ImportanceWeightedSVM
from merkit.adapt.stm import SelectiveTransferMachine
from merkit.data.features_io import load_cdmer_features
from merkit.metrics import accuracy, uf1

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"
FILES = {
    "C": "CrossCorpus_LBPTOP_R3P8_CASME2_112by112.mat",
    "V": "CrossCorpus_LBPTOP_R3P8_SMIC_VIS_112by112.mat",
}
#: name -> (ULSIF parameters, IW-SVM mean-1 rescaling)
ULSIF_CANDIDATES = {
    "default": ({}, True),
    "sigma_looridge_clip_mean1": ({"kernel": "rbf", "lam_as": "sigma", "nonnegative": True}, True),
    "sigma_looridge_clip_raw": ({"kernel": "rbf", "lam_as": "sigma", "nonnegative": True}, False),
    "ridge_loosigma_clip_mean1": ({"kernel": "rbf", "gamma": "loo", "nonnegative": True}, True),
    "ridge_loosigma_clip_raw": ({"kernel": "rbf", "gamma": "loo", "nonnegative": True}, False),
    "ridge_t3_clip_mean1": ({"kernel": "rbf", "gamma": 1 / 18, "nonnegative": True}, True),
    "ridge_t3_clip_raw": ({"kernel": "rbf", "gamma": 1 / 18, "nonnegative": True}, False),
    "ridge_t3_noclip_mean1": ({"kernel": "rbf", "gamma": 1 / 18}, True),
}
STM_KERNELS = {
    "linear": {},
    "rbf_median": {"kernel": "rbf"},
    "rbf_t3": {"kernel": "rbf", "gamma": 1 / 18},
}
SHORT_GRID = [float(v) for v in [*range(1, 101), *range(200, 1001, 100), 1e4, 1e5, 1e6, 1e7]]


def load():
    out = {}
    for k, f in FILES.items():
        fs = load_cdmer_features(DATA / f)
        out[k] = (np.asarray(fs.X, dtype=float), np.asarray(fs.table["y"], dtype=int))
    return out


def score(feats, task, make, order="sorted"):
    """(mean-F1, accuracy %) of ``make()`` fitted on ``task`` ("CV" or "VC")."""
    (Xs, ys), (Xt, yt) = feats[task[0]], feats[task[1]]
    classes = None
    if order == "matlab":
        ys, classes = first_appearance_codes(ys)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, -np.ones(len(Xt), dtype=int)]
    sd = np.r_[np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)]
    pred = make().fit(X, y, sd).predict(Xt)
    if classes is not None:
        pred = classes[pred]
    return uf1(yt, pred), 100 * accuracy(yt, pred)


def best(rows):
    top = max(rows, key=lambda r: r[1])
    return top[1], [r[0] for r in rows if r[1][0] == top[1][0]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["ulsif", "stm", "order"])
    ap.add_argument("name", help="uLSIF candidate, STM kernel, or comma-separated methods")
    ap.add_argument("--full", action="store_true", help="uLSIF: the full published grid")
    a = ap.parse_args()
    feats = load()
    if a.what == "order":
        for m in a.name.split(","):
            grid = published_grid(m, len(feats["C"][0]), len(feats["V"][0])) or [{}]
            t0 = time.time()
            for order in ("sorted", "matlab"):
                rows = [(pt, score(feats, "CV", partial(make_method, m, dict(pt)), order))
                        for pt in grid]  # fmt: skip
                (f1, acc), at = best(rows)
                print(f"{m} C->V {order:6s}: {f1:.4f} / {acc:.2f} at {at[:4]} ({len(at)} tied)")
            print(f"  {len(grid)} points x 2 orders, {time.time() - t0:.0f} s")
        return
    if a.what == "ulsif":
        kw, norm = ULSIF_CANDIDATES[a.name]
        grid = ULSIF_LAMBDAS if a.full else SHORT_GRID

        def make(lam):
            return ImportanceWeightedSVM(weighting=ULSIF(lam=lam, **kw), normalize=norm)
    else:
        grid = [p["lam"] for p in published_grid("stm")]

        def make(lam):
            return SelectiveTransferMachine(lam=lam, **STM_KERNELS[a.name])

    for task in ("CV", "VC"):
        t0 = time.time()
        rows = [(lam, score(feats, task, partial(make, lam))) for lam in grid]
        (f1, acc), at = best(rows)
        print(f"{a.what} {a.name} {task}: {f1:.4f} / {acc:.2f} at lambda {at[:6]} "
              f"({len(at)} tied; {len(grid)} points, {time.time() - t0:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
