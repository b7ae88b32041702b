"""Every adapting method of the registry beats the plain SVM on a shift it is built for.

``shifted_blobs`` is so easy that the source-only SVM already scores 1.0 on its target,
so a method with its adaptation removed passes every other adapt test. Here each
registered method meets a synthetic shift on which :class:`SVMBaseline` fails and must
beat it by ``MARGIN`` target mean-F1 (:func:`merkit.metrics.uf1`, averaged over
``SEEDS``):

* :func:`subspace_shift` (the classes move to a rotated subspace): SA, GFK, CORAL, TKL;
* :func:`translation_shift` (the target is translated): TCA and the methods with an MMD
  term, TSRG, DRFS-T, DRLS, TGSR;
* :func:`covariate_shift` (same ``p(y | x)``, the target in a corner of the source):
  the importance-weighted SVMs (KMM, KLIEP, uLSIF) and STM.

The second half proves that the check sees a broken method: each method is
monkeypatched into a variant with its adaptation removed (SA without alignment, GFK
with the source basis twice, TCA without its MMD term, IW-SVM ignoring its weights,
...), and the very same check must fail.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.model_selection import cross_val_predict
from sklearn.svm import SVC

from merkit.adapt import METHODS, ImportanceWeightedSVM, SubspaceAlignment, make_method
from merkit.adapt import regenerate as regenerate_mod
from merkit.adapt import stm as stm_mod
from merkit.adapt import subspace as subspace_mod
from merkit.adapt import tgsr as tgsr_mod
from merkit.metrics import uf1
from tests.adapt._synth import covariate_shift, subspace_shift, translation_shift

#: seeds of the synthetic data sets; the check averages the target mean-F1 over them
SEEDS = (0, 1, 2, 3)
#: how much higher (target mean-F1, 0..1) a method's mean must be than the SVM's. Measured
#: on every run of 4 consecutive seeds in 0..29: the methods beat the SVM by >= 0.21 (STM;
#: the others >= 0.31), the broken variants below by <= 0.15.
MARGIN = 0.2

SHIFTS = {
    "subspace": subspace_shift,
    "translation": translation_shift,
    "covariate": covariate_shift,
}

#: registry name -> (shift, hyper-parameters). Non-default values: SA / GFK / TCA use
#: the dimension of the class structure; the MMD weights of TSRG / DRFS-T / DRLS / TGSR are
#: raised from the CDMER defaults (tuned to 15045-d histograms) to the scale of these rows;
#: TGSR gets 5 blocks of 4 columns (all kept); KLIEP picks its width by the authors'
#: likelihood cross-validation; STM's KMM term uses the median-width RBF kernel (the
#: linear one only matches the weighted sum of the rows, which says nothing about where
#: the target lies).
CASES: dict[str, tuple[str, dict]] = {
    "sa": ("subspace", {"n_components": 2}),
    "gfk": ("subspace", {"n_components": 2}),
    "coral": ("subspace", {}),
    "tkl": ("subspace", {}),
    "tca": ("translation", {"n_components": 3}),
    "tsrg": ("translation", {"lam": 1000.0}),
    "drfs_t": ("translation", {"lam": 1000.0}),
    "drls": ("translation", {"lam": 1000.0}),
    "tgsr": ("translation", {"xi": 10.0, "group_size": 4, "kappa": 5}),
    "kmm": ("covariate", {}),
    "kliep": ("covariate", {"weighting__gamma": "cv"}),
    "ulsif": ("covariate", {}),
    "stm": ("covariate", {"kernel": "rbf", "lam": 100.0}),
}


@functools.cache
def _data(shift: str, seed: int):
    out = SHIFTS[shift](seed)
    for a in out:
        a.setflags(write=False)  # shared between tests: nobody may change it
    return out


def target_f1(name: str, params: dict, shift: str) -> np.ndarray:
    """Target mean-F1 of registry method ``name`` on ``shift``, one value per seed."""
    scores = []
    for seed in SEEDS:
        X, y, sd, yt = _data(shift, seed)
        est = make_method(name, params).fit(X, y, sd)
        scores.append(uf1(yt, est.predict(X[sd < 0])))
    return np.array(scores)


def check_beats_svm(name: str) -> None:
    """Assert that method ``name`` beats the SVM by ``MARGIN`` mean target mean-F1."""
    shift, params = CASES[name]
    method, svm = target_f1(name, params, shift), target_f1("svm", {}, shift)
    assert method.mean() >= svm.mean() + MARGIN, (
        f"{name} on {shift}_shift: target mean-F1 {method.mean():.3f} "
        f"(seeds {np.round(method, 3).tolist()}) does not beat the SVM's {svm.mean():.3f} "
        f"({np.round(svm, 3).tolist()}) by {MARGIN}"
    )


def test_every_adapting_method_has_a_case():
    assert set(CASES) == set(METHODS) - {"svm"}


@pytest.mark.parametrize("shift", sorted(SHIFTS))
def test_shift_defeats_the_svm_but_not_a_target_trained_one(shift):
    svm = target_f1("svm", {}, shift)
    assert svm.mean() <= 0.5, svm
    # the target classes are still learnable by the same linear SVM given target labels
    oracle = []
    for seed in SEEDS:
        X, _, sd, yt = _data(shift, seed)
        pred = cross_val_predict(SVC(kernel="linear"), X[sd < 0], yt, cv=5)
        oracle.append(uf1(yt, pred))
    assert np.mean(oracle) >= 0.85, oracle


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_beats_svm_on_its_shift(name):
    check_beats_svm(name)


# --------------------------------------------------------------------------- broken variants
_real_gfk_factors = subspace_mod.gfk_factors
_real_mmd_vector = subspace_mod.mmd_vector
_real_regenerator_basis = regenerate_mod.regenerator_basis
_real_tgsr_path = tgsr_mod.tgsr_path


def _sa_fit_identity_alignment(self, Xs, ys, Xt):
    """SA with ``M = I``: source rows on their own basis, target rows on theirs."""
    k = self.n_components
    Ps, self.target_basis_ = subspace_mod.pca_basis(Xs, k), subspace_mod.pca_basis(Xt, k)
    self.alignment_ = np.eye(k)
    self.source_map_ = Ps
    self.svm_ = SVC(kernel="linear", C=self.C).fit(Xs @ Ps, ys)
    self.classes_ = self.svm_.classes_
    return self


class _UniformWeights:
    """A weight estimator that ignores the target: every source row weighs 1."""

    def fit(self, Xs, Xt):
        self.weights_ = np.ones(len(Xs))
        return self


def _no_cov_factors(Xc, reg, power):
    """CORAL's ``(C + reg I)^power`` with the covariance dropped: ``reg^power I``."""
    return np.zeros((Xc.shape[1], 0)), np.zeros(0)


#: broken variant -> (registry names it applies to, [(object, attribute, replacement)])
BROKEN = {
    "sa_without_alignment": (["sa"], [(SubspaceAlignment, "_fit", _sa_fit_identity_alignment)]),
    "gfk_source_basis_twice": (
        ["gfk"],
        [(subspace_mod, "gfk_factors", lambda Ps, Pt: _real_gfk_factors(Ps, Ps))],
    ),
    "tca_without_mmd": (
        ["tca"],
        [(subspace_mod, "mmd_vector", lambda ns, nt: 0.0 * _real_mmd_vector(ns, nt))],
    ),
    "iw_svm_ignoring_weights": (
        ["kmm", "kliep", "ulsif"],
        [(ImportanceWeightedSVM, "_weight_estimator", lambda self: _UniformWeights())],
    ),
    "coral_without_covariances": (
        ["coral"],
        [(subspace_mod, "_cov_power", _no_cov_factors)],
    ),
    "regenerator_without_mmd": (
        ["tsrg", "drfs_t", "drls"],
        [
            (
                regenerate_mod,
                "regenerator_basis",
                lambda Ks, Kt, Y, lam: _real_regenerator_basis(Ks, Kt, Y, 0.0),
            )
        ],
    ),
    "tgsr_without_mmd": (
        ["tgsr"],
        [
            (
                tgsr_mod,
                "tgsr_path",
                lambda Xs, ys, Xt, g, kappas, xi, **kw: _real_tgsr_path(
                    Xs, ys, Xt, g, kappas, 0.0, **kw
                ),
            )
        ],
    ),
    "stm_ignoring_weights": (
        ["stm"],
        [(stm_mod, "stm_weight_qp", lambda K, kappa, losses, *a, **kw: np.ones(len(kappa)))],
    ),
}


def _blind_fit(cls):
    """``cls._fit`` that is handed the source rows in place of the target rows."""
    real = cls._fit

    def _fit(self, Xs, ys, Xt):
        return real(self, Xs, ys, Xs)

    return _fit


#: every method, blind to the target (it adapts the source to itself)
for _name in CASES:
    BROKEN[f"blind_{_name}"] = ([_name], [(METHODS[_name], "_fit", _blind_fit(METHODS[_name]))])


@pytest.mark.parametrize(
    ("variant", "name"),
    [(v, n) for v, (names, _) in BROKEN.items() for n in names],
)
def test_broken_variant_fails_the_check(monkeypatch, variant, name):
    for obj, attr, replacement in BROKEN[variant][1]:
        monkeypatch.setattr(obj, attr, replacement)
    with pytest.raises(AssertionError, match=f"{name} on .* does not beat the SVM"):
        check_beats_svm(name)
