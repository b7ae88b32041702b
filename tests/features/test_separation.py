"""Every descriptor separates the synthetic micro-expression classes within a database.

Synthetic CASME II (default size, seed 0: 62 clips of the 3-class CDMER scheme, 10
subjects), clips normalised as in the benchmark (112x112, TIM 16), linear SVM C = 1 on
raw features, 5-fold subject-independent CV. Chance UF1 is ~0.33. Measured UF1:
lbp_top:r3p8 0.727, lbp_top:r1p4 0.682, lbp_sip:r1 0.648, lbp_sip:r3 0.724,
lpq_top:w5 0.770, hog_top:p4 0.620, hog_top:p8 0.719, higo_top:p4 0.663,
higo_top:p8 0.770, hoof:b8 0.932, mdmo 0.949.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.svm import SVC

from merkit.data.adapters import load_dataset
from merkit.data.labels import apply_scheme
from merkit.data.synthetic import synthesize
from merkit.features.registry import get_descriptor
from merkit.metrics import uf1
from merkit.protocols.splits import subject_kfold
from merkit.video.io import load_clip
from merkit.video.tim import tim

MEASURED = {
    "lbp_top:r3p8": 0.727,
    "lbp_top:r1p4": 0.682,
    "lbp_sip:r1": 0.648,
    "lbp_sip:r3": 0.724,
    "lpq_top:w5": 0.770,
    "hog_top:p4": 0.620,
    "hog_top:p8": 0.719,
    "higo_top:p4": 0.663,
    "higo_top:p8": 0.770,
    "hoof:b8": 0.932,
    "mdmo": 0.949,
}


@pytest.fixture(scope="module")
def casme2_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, seed=0, databases=("CASME2",))
    table = apply_scheme(load_dataset("CASME2", root), "cdmer3")
    clips = [tim(load_clip(row, size=(112, 112)), 16) for _, row in table.iterrows()]
    return table, clips


@pytest.mark.parametrize("spec", list(MEASURED))
def test_descriptor_separates_synthetic_classes(casme2_clips, spec):
    table, clips = casme2_clips
    assert len(table) == 62 and table["subject"].nunique() == 10
    describe = get_descriptor(spec)
    X = np.vstack([describe(c) for c in clips]).astype(np.float64)
    assert X.shape == (62, describe.dim) and np.isfinite(X).all()
    y = table["y"].to_numpy()
    y_pred = np.full_like(y, -1)
    for split in subject_kfold(table, 5, seed=0):
        model = SVC(kernel="linear", C=1.0).fit(X[split.train_idx], y[split.train_idx])
        y_pred[split.test_idx] = model.predict(X[split.test_idx])
    score = uf1(y, y_pred)
    assert score > 0.55, f"{spec}: UF1 {score:.3f} is too close to chance (0.33)"
    assert score == pytest.approx(MEASURED[spec], abs=0.03)
