"""Cached, resumable, parallel extraction on a tiny synthetic database."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters import load_dataset
from merkit.data.labels import apply_scheme
from merkit.data.schema import FeatureSet
from merkit.features import extract as ex
from merkit.features.cache import FeatureCache
from merkit.features.extract import (
    ClipError,
    FaceMissingError,
    Preprocess,
    configure_descriptor,
    extract,
    extract_features,
    load_feature_file,
    save_feature_file,
)

SPEC = "lbp_top:r1p8"
DIM = 85 * 177


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, seed=5, size="tiny")
    return root


@pytest.fixture()
def vis(data_dir, tmp_path) -> pd.DataFrame:
    """SMIC-VIS (6 short clips) copied to a private folder, so tests may touch frames."""
    root = tmp_path / "data"
    shutil.copytree(data_dir / "SMIC", root / "SMIC", ignore=shutil.ignore_patterns("HS", "NIR"))
    return apply_scheme(load_dataset("SMIC_VIS", root), "cdmer3")


@pytest.fixture()
def counted(monkeypatch) -> list[str]:
    """Clip names passed to describe_clip (serial runs call it in this process)."""
    calls: list[str] = []
    real = ex.describe_clip

    def spy(row, *args, **kw):
        calls.append(str(row["clip"]))
        return real(row, *args, **kw)

    monkeypatch.setattr(ex, "describe_clip", spy)
    return calls


def test_shape_layout_and_values(vis) -> None:
    run = extract(vis, SPEC)
    X = run.features.X
    assert X.shape == (6, DIM) and X.dtype == np.float32
    assert run.computed == 6 and run.cached == 0 and run.skipped.empty
    # every 59-bin plane histogram of every block sums to 1
    np.testing.assert_allclose(X.reshape(6, 85 * 3, 59).sum(axis=2), 1.0, atol=1e-5)
    assert run.features.levels == (1, 2, 4, 8)
    assert np.bincount(run.features.blocks).tolist() == [177] * 85


def test_second_run_computes_nothing_and_matches(vis, tmp_path, counted) -> None:
    first = extract(vis, SPEC, cache=tmp_path / "c")
    assert len(counted) == 6 and first.computed == 6
    second = extract(vis, SPEC, cache=tmp_path / "c")
    assert len(counted) == 6 and second.computed == 0 and second.cached == 6
    assert second.features.X.tobytes() == first.features.X.tobytes()
    assert len(FeatureCache(tmp_path / "c").entries(SPEC)) == 6


def test_changing_a_parameter_recomputes(vis, tmp_path, counted) -> None:
    extract(vis, SPEC, cache=tmp_path)
    extract(vis, SPEC, cache=tmp_path, preprocess=Preprocess(length=8))
    extract(vis, SPEC, cache=tmp_path, layout="1,2")
    extract(vis, SPEC, cache=tmp_path, preprocess=Preprocess(length=8))  # cached now
    assert len(counted) == 18


def test_touching_a_frame_recomputes_that_clip_only(vis, tmp_path, counted) -> None:
    extract(vis, SPEC, cache=tmp_path)
    row = vis.iloc[3]
    frame = Path(row["frames_dir"]) / sorted(os.listdir(row["frames_dir"]))[2]
    st = frame.stat()
    os.utime(frame, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    counted.clear()
    run = extract(vis, SPEC, cache=tmp_path)
    assert counted == [row["clip"]] and run.computed == 1 and run.cached == 5


def test_interrupted_run_resumes_with_the_rest(vis, tmp_path, monkeypatch) -> None:
    real = ex.describe_clip
    calls: list[str] = []

    def dies_after_two(row, *args, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        calls.append(row["clip"])
        return real(row, *args, **kw)

    monkeypatch.setattr(ex, "describe_clip", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        extract(vis, SPEC, cache=tmp_path)
    assert len(FeatureCache(tmp_path).entries()) == 2
    assert not list(tmp_path.rglob("*.tmp"))
    calls.clear()

    def spy(row, *args, **kw):
        calls.append(row["clip"])
        return real(row, *args, **kw)

    monkeypatch.setattr(ex, "describe_clip", spy)
    run = extract(vis, SPEC, cache=tmp_path)
    assert run.computed == 4 and run.cached == 2
    assert calls == vis["clip"].tolist()[2:]
    np.testing.assert_array_equal(run.features.X, extract(vis, SPEC).features.X)


def test_parallel_equals_serial_byte_for_byte(vis, tmp_path) -> None:
    serial = extract_features(vis, SPEC, n_jobs=1)
    parallel = extract(vis, SPEC, n_jobs=2, cache=tmp_path)
    assert parallel.features.X.tobytes() == serial.X.tobytes()
    warm = extract(vis, SPEC, n_jobs=2, cache=tmp_path)
    assert warm.cached == 6 and warm.features.X.tobytes() == serial.X.tobytes()


def test_corrupt_cache_entry_is_recomputed_with_a_warning(vis, tmp_path, caplog) -> None:
    first = extract(vis, SPEC, cache=tmp_path)
    entry = FeatureCache(tmp_path).entries()[0]
    entry.write_bytes(b"\x93NUMPY truncated")
    with caplog.at_level(logging.WARNING):
        again = extract(vis, SPEC, cache=tmp_path)
    assert again.computed == 1 and again.cached == 5
    assert "unreadable" in caplog.text and entry.name in caplog.text
    assert again.features.X.tobytes() == first.features.X.tobytes()


def test_progress_counts_every_clip(vis, tmp_path) -> None:
    seen: list[int] = []
    extract(vis, SPEC, cache=tmp_path, progress=seen.append)
    assert seen == [1] * 6
    seen.clear()
    extract(vis, SPEC, cache=tmp_path, progress=seen.append)
    assert seen == [6]


def test_align_gives_the_same_layout_and_other_numbers(vis) -> None:
    plain = extract(vis, SPEC).features.X
    run = extract(vis, SPEC, preprocess=Preprocess(align=True, detector="haar"))
    assert run.features.X.shape == (6, DIM) and run.skipped.empty
    assert run.preprocess.detector == "haar"
    assert not np.allclose(run.features.X, plain)  # the crop moved and rescaled the face


def _blank_onset(row: pd.Series) -> None:
    from merkit.video.io import frame_number, list_frames

    for f in list_frames(row["frames_dir"]):
        if frame_number(f) == int(row["onset"]):
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            cv2.imwrite(str(f), np.full_like(img, 128))


def test_clip_without_a_face_raises_or_is_skipped_and_listed(vis, tmp_path) -> None:
    _blank_onset(vis.iloc[1])
    name = f"{vis.iloc[1]['subject']}/{vis.iloc[1]['clip']}"
    pre = Preprocess(align=True, detector="haar")
    with pytest.raises(FaceMissingError, match=f"clip {name}: no face found on the onset frame"):
        extract(vis, SPEC, preprocess=pre)
    run = extract(vis, SPEC, preprocess=pre, on_missing="skip", cache=tmp_path)
    assert run.features.X.shape == (5, DIM)
    assert run.skipped[["subject", "clip"]].values.tolist() == [
        [vis.iloc[1]["subject"], vis.iloc[1]["clip"]]
    ]
    assert vis.iloc[1]["clip"] not in run.features.table["clip"].tolist()
    # the "no face" outcome is cached: a strict re-run still refuses, without recomputing
    with pytest.raises(FaceMissingError, match=name):
        extract(vis, SPEC, preprocess=pre, cache=tmp_path)


def test_unreadable_frame_names_the_clip_and_file(vis) -> None:
    row = vis.iloc[2]
    frame = sorted(Path(row["frames_dir"]).iterdir())[1]
    frame.write_bytes(b"not an image")
    with pytest.raises(ClipError, match=f"clip {row['subject']}/{row['clip']}: cannot read") as e:
        extract(vis, SPEC)
    assert frame.name in str(e.value)


def test_configure_descriptor_layouts() -> None:
    d = configure_descriptor("lbp_top_cdmer:r3p8", "1,2")
    assert (
        d.layout.levels == (1, 2) and d.layout.order == "column" and d.layout.partition == "cdmer"
    )
    assert d.dim == 5 * 177
    with pytest.raises(ValueError, match="mdmo does not take a block layout"):
        configure_descriptor("mdmo", "1,2")
    with pytest.raises(KeyError, match="unknown descriptor 'nope'"):
        configure_descriptor("nope:r1")


def test_feature_file_round_trip(vis, tmp_path) -> None:
    run = extract(vis, SPEC)
    fs = run.features
    other = FeatureSet(fs.X[:2] + 1, vis.iloc[:2].assign(dataset="OTHER"), name="OTHER",
                       classes=fs.classes, blocks=fs.blocks, levels=(1, 2, 4, 8))  # fmt: skip
    npz, csv = save_feature_file(
        {"SMIC_VIS": run.features, "OTHER": other}, tmp_path / "F", descriptor=run.descriptor,
        preprocess=run.preprocess, scheme="cdmer3",
    )  # fmt: skip
    assert (npz.name, csv.name) == ("F.npz", "F.csv")
    assert not list(tmp_path.glob(".*tmp"))
    with np.load(npz, allow_pickle=False) as z:
        assert z["X"].shape == (8, DIM) and z["X"].dtype == np.float32
        assert z["dataset"].tolist() == ["SMIC_VIS"] * 6 + ["OTHER"] * 2
        assert z["blocks"].shape == (DIM,) and z["levels"].tolist() == [1, 2, 4, 8]
        assert str(z["descriptor"]) == SPEC and z["classes"].tolist() == list(run.features.classes)
    ff = load_feature_file(tmp_path / "F.npz")
    assert list(ff.features) == ["SMIC_VIS", "OTHER"]
    back = ff.features["SMIC_VIS"]
    assert back.X.tobytes() == run.features.X.tobytes()
    assert back.fingerprint() == run.features.fingerprint()
    assert back.table["aus"].tolist() == vis["aus"].tolist()
    assert ff.preprocess == {"size": [112, 112], "length": 16, "align": False}
    # a table that does not match the features is refused
    pd.read_csv(csv).iloc[::-1].to_csv(csv, index=False)
    with pytest.raises(ValueError, match="same order"):
        load_feature_file(npz)
    np.savez(tmp_path / "foreign.npz", X=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a merkit feature file"):
        load_feature_file(tmp_path / "foreign.npz")
