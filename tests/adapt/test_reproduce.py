"""Published CDMER numbers (C -> V = Exp.9, V -> C = Exp.10) reproduced at the best grid point.

The best points were found with the oracle protocol of the papers (best mean-F1 over the
published grid, scored with target labels; see docs/da-reproduction.md and
benchmarks/cdmer_reproduce.py). Here each is refitted once and must give the published
mean-F1 within 0.02 (0.05 for TKL). Skips when the shared data folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from merkit.adapt.base import SVMBaseline
from merkit.adapt.regenerate import (
    DomainRegenerationLabelSpace,
    DomainRegenerationTarget,
    TargetSampleRegenerator,
)
from merkit.adapt.reweight import KLIEP, KMM, ULSIF, ImportanceWeightedSVM
from merkit.adapt.subspace import (
    GeodesicFlowKernel,
    SubspaceAlignment,
    TransferComponentAnalysis,
    TransferKernelLearning,
)
from merkit.adapt.tgsr import TransferGroupSparseRegression
from merkit.adapt.tgsr_dual import tgsr_path
from merkit.data.features_io import cdmer_lbptop_layout, load_cdmer_features
from merkit.metrics import accuracy, uf1

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cdmer_lbptop_r3p8"
FILES = {
    "C": "CrossCorpus_LBPTOP_R3P8_CASME2_112by112.mat",
    "V": "CrossCorpus_LBPTOP_R3P8_SMIC_VIS_112by112.mat",
}


@pytest.fixture(scope="module")
def feats():
    if not all((DATA / f).exists() for f in FILES.values()):
        pytest.skip(f"CDMER feature files not found under {DATA}")
    out = {}
    for k, f in FILES.items():
        fs = load_cdmer_features(DATA / f)
        out[k] = (np.asarray(fs.X, dtype=np.float64), np.asarray(fs.table["y"], dtype=int))
    return out


def _run(feats, task: str, est) -> tuple[float, float]:
    (Xs, ys), (Xt, yt) = feats[task[0]], feats[task[1]]
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, -np.ones(len(Xt), dtype=int)]
    sd = np.r_[np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)]
    pred = est.fit(X, y, sd).predict(Xt)
    return uf1(yt, pred), 100 * accuracy(yt, pred)


# (task, estimator, published mean-F1, published accuracy, tolerance on mean-F1)
CASES = [
    ("CV", lambda: SVMBaseline(), 0.4701, 50.70, 0.02),
    ("VC", lambda: SVMBaseline(), 0.5367, 53.08, 0.001),
    # IW-SVM with the benchmark's uLSIF (linear basis, plain closed form), best lambda
    ("CV", lambda: ImportanceWeightedSVM(weighting=ULSIF(lam=4.0)), 0.5778, 59.15, 0.02),
    ("VC", lambda: ImportanceWeightedSVM(weighting=ULSIF(lam=15.0)), 0.5537, 54.62, 0.002),
    ("CV", lambda: TransferComponentAnalysis(n_components=24), 0.6834, 69.01, 0.02),
    ("VC", lambda: TransferComponentAnalysis(n_components=20), 0.5789, 59.23, 0.02),
    ("CV", lambda: SubspaceAlignment(n_components=31), 0.5939, 59.15, 0.02),
    ("VC", lambda: SubspaceAlignment(n_components=60), 0.5243, 51.54, 0.001),
    ("CV", lambda: GeodesicFlowKernel(n_components=42), 0.6361, 66.20, 0.02),
    ("VC", lambda: GeodesicFlowKernel(n_components=42), 0.6056, 61.50, 0.001),
    ("CV", lambda: TransferKernelLearning(damping=1.0), 0.6042, 60.56, 0.05),
    ("VC", lambda: TransferKernelLearning(damping=0.1), 0.5378, 53.08, 0.05),
    ("CV", lambda: DomainRegenerationLabelSpace(lam=10, mu=0.6), 0.5757, 57.75, 0.001),
    ("VC", lambda: DomainRegenerationLabelSpace(lam=100, mu=0.5), 0.5942, 60.00, 0.001),
    ("CV", lambda: DomainRegenerationTarget(lam=0.1, mu=0.005), 0.6217, 63.38, 0.001),
    # TSRG V->C: the full 7 x 37 grid's best point gives the published 0.6208 / 63.08 exactly
    ("VC", lambda: TargetSampleRegenerator(lam=10, mu=0.09), 0.6208, 63.08, 0.001),
    # TGSR with the authors' grouping (85 runs of 177 columns); at kappa 85 any grouping
    (
        "CV",
        lambda: TransferGroupSparseRegression(kappa=85, xi=0.003, group_size=177),
        0.5906,
        59.15,
        0.001,
    ),
    (
        "VC",
        lambda: TransferGroupSparseRegression(kappa=85, xi=0.028, group_size=177),
        0.6403,
        63.85,
        0.001,
    ),
]


@pytest.mark.parametrize(
    "task,make,f1_pub,acc_pub,tol", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_published_point(feats, task, make, f1_pub, acc_pub, tol):
    f1, acc = _run(feats, task, make())
    assert abs(f1 - f1_pub) <= tol, (task, f1, acc, f1_pub, acc_pub)


def test_sa_vc_exact_and_svm_cv_known_gap(feats):
    # SA V->C matches the published number to the fourth decimal; the SVM baseline
    # with CASME II as source is a known LibSVM-version gap (0.4800 vs 0.4701).
    assert _run(feats, "VC", SubspaceAlignment(n_components=60)) == pytest.approx(
        (0.5243, 51.54), abs=5e-3
    )
    f1, acc = _run(feats, "CV", SVMBaseline())
    assert f1 == pytest.approx(0.4800, abs=1e-4) and acc == pytest.approx(52.11, abs=0.01)


@pytest.mark.slow
def test_drfs_t_v_to_c_published_point(feats):
    # DRFS-T V->C (lam 10, mu 0.02; one IALM with CASME II as reference, ~12 CPU-s) gives
    # the published 0.6762 / 68.46 exactly; CV-14 above covers DRFS-T fast
    got = _run(feats, "VC", DomainRegenerationTarget(lam=10.0, mu=0.02))
    assert got[0] == pytest.approx(0.6762, abs=1e-4) and got[1] == pytest.approx(68.46, abs=0.01)
    # TSRG C->V, the other reference-C fit: the grid's best 0.5861 / 60.56 (lam 10, mu 0.03),
    # published 0.5935 / 59.15 (within the 0.02 target)
    got = _run(feats, "CV", TargetSampleRegenerator(lam=10.0, mu=0.03))
    assert got[0] == pytest.approx(0.5861, abs=1e-4) and got[1] == pytest.approx(60.56, abs=0.01)


def test_tgsr_full_grid_oracle_points(feats):
    # best of the full published grid (85 kappas x 271 xi, every point run through the
    # runner): C->V kappa 65 (all xi tie), V->C kappa 56-57 at xi <= 0.0024; published
    # 0.5906 / 59.15 and 0.6403 / 63.85 at kappa 85 (the best kappa = 85 points)
    for task, kappa, xi, f1, acc in [
        ("CV", 65, 0.001, 0.5933, 59.15),
        ("VC", 56, 0.001, 0.6419, 63.85),
    ]:
        # these points are of the spatial grouping (the true facial blocks of the files)
        est = TransferGroupSparseRegression(kappa=kappa, xi=xi, groups=cdmer_lbptop_layout()[0])
        got = _run(feats, task, est)
        assert got[0] == pytest.approx(f1, abs=1e-4) and got[1] == pytest.approx(acc, abs=0.01)


def test_tgsr_small_grid_best_is_all_blocks(feats):
    # a small kappa grid at the published xi: kappa = 85 (all blocks) stays the best
    (Xs, ys), (Xt, yt) = feats["C"], feats["V"]
    kappas = [10, 40, 84, 85]
    C, n_iter = tgsr_path(Xs, np.eye(3)[ys], Xt, cdmer_lbptop_layout()[0], kappas, 0.003)
    scores = [uf1(yt, (Xt @ c).argmax(1)) for c in C]
    assert n_iter[-1] == 1  # kappa = K: lambda = 0, one ridge step
    assert scores[-1] == pytest.approx(0.5906, abs=1e-4)
    assert max(scores) == scores[-1]


def test_importance_weighting_defaults(feats):
    # uLSIF oracle points (accuracy of V->C equal to the published 54.62); KMM with the
    # ESS width rule stays at the baseline level instead of falling below it (0.31 / 0.43
    # at the plain median width); KLIEP's median-width weights leave the SVM unchanged
    pts = [("CV", ImportanceWeightedSVM(weighting=ULSIF(lam=4.0)), 0.5958, 60.56),
           ("VC", ImportanceWeightedSVM(weighting=ULSIF(lam=15.0)), 0.5524, 54.62),
           ("CV", ImportanceWeightedSVM(weighting=KMM()), 0.4901, 52.11),
           ("VC", ImportanceWeightedSVM(weighting=KMM()), 0.5374, 53.08),
           ("CV", ImportanceWeightedSVM(weighting=KMM(min_ess=0)), 0.3103, 42.25),
           ("CV", ImportanceWeightedSVM(weighting=KLIEP()), 0.4800, 52.11),
           ("VC", ImportanceWeightedSVM(weighting=KLIEP()), 0.5367, 53.08)]  # fmt: skip
    for task, est, f1, acc in pts:
        got = _run(feats, task, est)
        assert got[0] == pytest.approx(f1, abs=1e-4) and got[1] == pytest.approx(acc, abs=0.01), (
            task, est, got)  # fmt: skip
