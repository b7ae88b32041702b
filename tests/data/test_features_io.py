"""Tests of the CDMER released-feature loader (synthetic files + the real released files)."""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from merkit.data.features_io import (
    CDMER_CLASSES,
    canonical_dataset,
    cdmer_lbptop_layout,
    load_cdmer_dir,
    load_cdmer_features,
)
from merkit.protocols.runner import run_cdmer

FNAME = "CrossCorpus_LBPTOP_R3P8_{}_112by112.mat"


def write_v5(path: Path, db: str, X: np.ndarray, labels, *, transpose: bool = False) -> Path:
    scipy.io.savemat(
        path,
        {
            f"{db}_micro_feature": X.T if transpose else X,
            f"{db}_micro_label": np.asarray(labels, dtype=float).reshape(1, -1),
        },
    )
    return path


def write_v73(path: Path, db: str, X: np.ndarray, labels) -> Path:
    """Mimic MATLAB -v7.3: HDF5 datasets hold the transposed (column-major) arrays."""
    with h5py.File(path, "w") as f:
        f[f"{db}_micro_feature"] = X.T  # MATLAB (n, D) appears as (D, n)
        f[f"{db}_micro_label"] = np.asarray(labels, dtype=float).reshape(-1, 1).T
    return path


def test_v5_file(tmp_path: Path, caplog) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((6, 10))
    labels = [1, 2, 3, 3, 1, 2]
    p = write_v5(tmp_path / FNAME.format("SMIC_NIR"), "SMIC_NIR", X, labels)
    with caplog.at_level(logging.INFO, logger="merkit.data.features_io"):
        fs = load_cdmer_features(p)
    assert fs.name == "SMIC_NIR" and fs.X.shape == (6, 10) and fs.X.dtype == np.float32
    np.testing.assert_allclose(fs.X, X.astype(np.float32))
    np.testing.assert_array_equal(fs.y, [0, 1, 2, 2, 0, 1])
    assert fs.classes == CDMER_CLASSES == ("negative", "positive", "surprise")
    assert fs.table["label"].tolist() == ["negative", "positive", "surprise", "surprise",
                                          "negative", "positive"]  # fmt: skip
    assert fs.table["clip"].tolist()[:2] == ["0001", "0002"]
    assert set(fs.table["subject"]) == {"SMIC_NIR/unknown"}
    assert set(fs.table["dataset"]) == {"SMIC_NIR"}
    assert fs.blocks is None and fs.levels is None
    assert "no block layout recorded" in caplog.text
    # stored as (D, n): orientation detected from the label count
    p2 = write_v5(tmp_path / FNAME.format("SMIC_HS"), "SMIC_HS", X, labels, transpose=True)
    np.testing.assert_allclose(load_cdmer_features(p2).X, X.astype(np.float32))
    assert load_cdmer_features(p2, name="HS_custom").name == "HS_custom"


def test_v73_file_with_block_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.random((4, 15045))
    p = write_v73(tmp_path / FNAME.format("CASME2"), "CASME2", X, [3, 1, 1, 2])
    fs = load_cdmer_features(p)
    np.testing.assert_allclose(fs.X, X.astype(np.float32))
    np.testing.assert_array_equal(fs.y, [2, 0, 0, 1])
    assert fs.levels == (1, 2, 4, 8) and fs.blocks.shape == (15045,)
    blocks, planes = cdmer_lbptop_layout()
    np.testing.assert_array_equal(fs.blocks, blocks)
    assert np.bincount(blocks).tolist() == [177] * 85
    assert np.bincount(planes).tolist() == [5015] * 3


def test_layout_details() -> None:
    blocks, planes = cdmer_lbptop_layout()
    # level 1: XY, XT, YT of block 0
    assert (blocks[:177] == 0).all() and planes[:177].tolist() == [0] * 59 + [1] * 59 + [2] * 59
    # level 2 starts at column 177 with the XY histograms of its 4 blocks (column-major
    # storage: top-left, bottom-left, top-right, bottom-right -> row-major ids 1, 3, 2, 4)
    chunk_blocks = blocks[177 : 177 + 12 * 59 : 59]
    chunk_planes = planes[177 : 177 + 12 * 59 : 59]
    assert chunk_blocks.tolist() == [1, 3, 2, 4] * 3
    assert chunk_planes.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # level 8 ends with the YT histogram of the bottom-right block (id 84)
    assert blocks[-1] == 84 and planes[-1] == 2
    b2, _ = cdmer_lbptop_layout(levels=(1, 2), n_bins=2)
    assert b2.tolist() == [0] * 6 + [1, 1, 3, 3, 2, 2, 4, 4] * 3


def test_names() -> None:
    assert canonical_dataset("CASME2") == "CASME2"
    assert canonical_dataset("casme_ii") == "CASME2"
    assert canonical_dataset("SMIC-VIS") == "SMIC_VIS"
    assert canonical_dataset("NIR") == "SMIC_NIR"
    assert canonical_dataset("SAMM") == "SAMM"


def test_errors(tmp_path: Path) -> None:
    X = np.ones((3, 5))
    with pytest.raises(FileNotFoundError, match="CDMER feature file not found: .*nope.mat"):
        load_cdmer_features(tmp_path / "nope.mat")
    p = tmp_path / FNAME.format("CASME2")
    scipy.io.savemat(p, {"CASME2_micro_feature": X, "labels": np.ones(3)})
    with pytest.raises(ValueError, match=r"expected 'CASME2_micro_label'; variables present: "
                                         r"\['CASME2_micro_feature', 'labels'\]"):  # fmt: skip
        load_cdmer_features(p)
    write_v5(p, "CASME2", X, [1, 4, 0])
    with pytest.raises(
        ValueError, match=r"labels outside 1..3 .*values \[0, 4\] at samples \[2, 3\]"
    ):
        load_cdmer_features(p)
    write_v5(p, "CASME2", X, [1, 2.5, 3])
    with pytest.raises(ValueError, match="integer labels 1..3"):
        load_cdmer_features(p)
    write_v5(p, "CASME2", X, [1, 2, 3, 1])
    with pytest.raises(ValueError, match=r"shape \(3, 5\) but CASME2_micro_label has 4 labels"):
        load_cdmer_features(p)
    bad = X.copy()
    bad[1, 2] = np.nan
    write_v5(p, "CASME2", bad, [1, 2, 3])
    with pytest.raises(ValueError, match=r"non-finite values in samples \[2\]"):
        load_cdmer_features(p)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(ValueError, match="junk.mat"):
        load_cdmer_features(junk)


def test_load_dir(tmp_path: Path) -> None:
    X = np.random.default_rng(2).random((3, 7))
    write_v5(tmp_path / FNAME.format("CASME2"), "CASME2", X, [1, 2, 3])
    write_v73(tmp_path / FNAME.format("SMIC_VIS"), "SMIC_VIS", X, [3, 2, 1])
    (tmp_path / "README.txt").write_text("ignored")
    d = load_cdmer_dir(tmp_path)
    assert list(d) == ["CASME2", "SMIC_VIS"]
    np.testing.assert_array_equal(d["SMIC_VIS"].y, [2, 1, 0])
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_cdmer_dir(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no CDMER feature files"):
        load_cdmer_dir(tmp_path / "empty")
    write_v5(tmp_path / "CrossCorpus_LBPTOP_R3P8_CASMEII_112by112.mat", "CASMEII", X, [1, 2, 3])
    with pytest.raises(ValueError, match="both hold dataset 'CASME2'"):
        load_cdmer_dir(tmp_path)


# ----------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def released(request) -> dict:
    shared = request.getfixturevalue("shared_data")
    folder = shared / "cdmer_lbptop_r3p8"
    if not folder.is_dir():
        pytest.skip(f"CDMER released features not available at {folder}")
    return load_cdmer_dir(folder)


def test_released_files(released: dict) -> None:
    assert sorted(released) == ["CASME2", "SMIC_VIS"]
    c, v = released["CASME2"], released["SMIC_VIS"]
    assert c.X.shape == (130, 15045) and v.X.shape == (71, 15045)
    assert np.bincount(c.y).tolist() == [73, 32, 25]
    assert np.bincount(v.y).tolist() == [23, 28, 20]
    for fs in (c, v):
        np.testing.assert_allclose(fs.X.sum(axis=1), 255.0, atol=1e-3)
        np.testing.assert_allclose(fs.X.reshape(len(fs), 255, 59).sum(-1), 1.0, atol=1e-5)
        assert fs.levels == (1, 2, 4, 8)


def _plane_hist(fs, planes, block: int, plane: int) -> np.ndarray:
    return fs.X[:, (fs.blocks == block) & (planes == plane)]


@pytest.mark.parametrize("db", ["CASME2", "SMIC_VIS"])
def test_released_layout_matches_data(released: dict, db: str) -> None:
    """The recorded layout fits the data: XY histograms look like XY histograms, YT
    histograms are left-right mirror symmetric, XT histograms up-down symmetric."""
    fs = released[db]
    _, planes = cdmer_lbptop_layout()
    first = 0
    for L in (1, 2, 4, 8):
        ids = first + np.arange(L * L)
        bin4 = [
            np.mean([_plane_hist(fs, planes, b, p)[:, 4].mean() for b in ids]) for p in range(3)
        ]
        assert bin4[0] < 0.5 * min(bin4[1], bin4[2]), (L, bin4)
        if L > 1:

            def dist(plane, mirror, L=L, first=first):
                d = []
                for r in range(L):
                    for col in range(L):
                        r2, c2 = mirror(r, col)
                        a = _plane_hist(fs, planes, first + r * L + col, plane)
                        b = _plane_hist(fs, planes, first + r2 * L + c2, plane)
                        d.append(np.abs(a - b).sum(axis=1).mean())
                return float(np.mean(d))

            def lr(r, c, L=L):
                return r, L - 1 - c

            def ud(r, c, L=L):
                return L - 1 - r, c

            assert dist(2, lr) < 0.7 * dist(2, ud), L  # YT: unchanged by a left-right flip
            assert dist(1, ud) < dist(1, lr), L  # XT: unchanged by an up-down flip
        first += L * L


def test_released_svm_baseline_through_runner(released: dict) -> None:
    res = run_cdmer(released, "svm", params={"C": 1.0, "kernel": "linear"}, progress=False)
    assert res["task"].tolist() == ["Exp.9", "Exp.10"]
    v_to_c = res[res.task == "Exp.10"].iloc[0]
    assert (v_to_c.source, v_to_c.target, v_to_c.n_test) == ("SMIC_VIS", "CASME2", 130)
    assert round(v_to_c.mean_f1, 4) == 0.5367  # = published
    assert round(v_to_c.accuracy, 2) == 53.08
    c_to_v = res[res.task == "Exp.9"].iloc[0]
    assert round(c_to_v.mean_f1, 4) == 0.4800  # published 0.4701 / 50.70 (see README)
    assert round(c_to_v.accuracy, 2) == 52.11


# ------------------------------------------------------------- damaged or unusable inputs
def test_truncated_mat_files_are_one_line_errors(tmp_path: Path) -> None:
    """A .mat cut in half (an interrupted copy) is a ValueError naming the file and what to
    do, not h5py's / scipy's OSError."""
    X = np.random.default_rng(3).random((20, 300))
    for write, name in ((write_v73, "CASME2"), (write_v5, "SMIC_VIS")):
        whole = write(tmp_path / FNAME.format(name), name, X, np.arange(20) % 3 + 1)
        data = whole.read_bytes()
        cut = tmp_path / "cut" / whole.name
        cut.parent.mkdir(exist_ok=True)
        cut.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match="re-copy it") as err:
            load_cdmer_features(cut)
        assert str(err.value).startswith(f"{cut}: ") and "\n" not in str(err.value)
        cut.unlink()


def _feature_sets(n: int = 12, d: int = 20, seed: int = 0) -> dict:
    """Four small labelled databases (FeatureSets), as ``merkit extract`` would give."""
    import pandas as pd

    from merkit.data.schema import FeatureSet

    rng = np.random.default_rng(seed)
    out = {}
    for k, db in enumerate(("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")):
        y = np.arange(n) % 3
        X = rng.normal(size=(n, d)) + 0.8 * y[:, None] + 0.3 * k
        table = pd.DataFrame({"dataset": db, "subject": [f"{db}/s{i % 4}" for i in range(n)],
                              "clip": [f"c{i:02d}" for i in range(n)], "y": y,
                              "label": [CDMER_CLASSES[v] for v in y]})  # fmt: skip
        out[db] = FeatureSet(X.astype(np.float32), table, name=db, classes=CDMER_CLASSES)
    return out


def _resave(src: Path, dst: Path, **change) -> Path:
    """A copy of the .npz ``src`` with arrays replaced (None: removed)."""
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    for k, v in change.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    np.savez(dst, **arrays)
    return dst


def test_damaged_feature_npz_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """Truncated (BadZipFile), rows not matching the ids (IndexError), no ``y`` (KeyError):
    each a one-line ValueError naming the file and saying to re-extract it."""
    from merkit.features.extract import load_feature_file, save_feature_file

    npz, _ = save_feature_file(_feature_sets(), tmp_path / "F", descriptor="lbp_top:r3p8")
    assert len(load_feature_file(npz).features) == 4
    cases = {}
    cut = tmp_path / "cut.npz"
    cut.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    cases[cut] = "cut short or damaged"
    with np.load(npz) as z:
        X = z["X"]
    cases[_resave(npz, tmp_path / "rows.npz", X=X[:-3])] = "X has 45 rows but y has 48"
    cases[_resave(npz, tmp_path / "noy.npz", y=None)] = "array(s) y missing"
    for path, what in cases.items():
        with pytest.raises(ValueError, match="merkit extract") as err:
            load_feature_file(path)
        msg = str(err.value)
        assert msg.startswith(f"{path}: ") and what in msg and "\n" not in msg, msg


def test_check_features_names_file_database_and_first_bad_rows(tmp_path: Path) -> None:
    from merkit.data.features_io import check_features

    good = _feature_sets()
    check_features(good)  # nothing to say
    src = {name: tmp_path / "F.npz" for name in good}
    bad = _feature_sets()
    bad["SMIC_VIS"].X[[3, 7], 5] = np.nan
    bad["SMIC_VIS"].X[7, 11] = np.inf
    with pytest.raises(ValueError) as err:
        check_features(bad, src)
    assert str(err.value).startswith(
        f"{tmp_path / 'F.npz'}: database SMIC_VIS: 3 non-finite value(s) (NaN or infinity) in "
        "rows 3, 7 (clips c03, c07), columns [5, 11]; re-extract"
    )
    unlabelled = _feature_sets()
    unlabelled["SMIC_HS"].table.loc[[0, 4], "y"] = -1
    no_label = r"^database SMIC_HS: 2 clip\(s\) without a valid label y in rows 0, 4 \(clips c00, "
    with pytest.raises(ValueError, match=no_label + r"c04\); y must be 0..2"):
        check_features(unlabelled)
    wide = _feature_sets()
    wide.update({k: v for k, v in _feature_sets(d=25).items() if k.startswith("SMIC_")})
    widths = r"different numbers of feature columns \(database CASME2 20, database SMIC_HS 25"
    with pytest.raises(ValueError, match=widths):
        check_features(wide)
