"""Magnification as a preprocessing step: Preprocess, its cache identity and
``merkit extract --magnify`` on tiny synthetic databases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.features.extract import Preprocess, load_feature_file
from merkit.video.io import load_clip
from merkit.video.magnify import Magnification
from merkit.workflows.databases import load_databases

runner = CliRunner()
MAG = Magnification(8.0, band=(1.0, 10.0))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("magnify") / "data"
    synthesize(root, seed=3, size="tiny")
    return root


def test_preprocess_key_names_the_magnification_only_when_set():
    plain = Preprocess()
    assert "magnify" not in plain.key()
    mag = Preprocess(magnify=MAG)
    assert mag.key() == {**plain.key(), "magnify": MAG.key()}
    # the stored key builds the same preprocessing back
    assert Preprocess(magnify=mag.key()["magnify"]) == mag
    with pytest.raises(ValueError, match="alpha must be a number > -1"):
        Preprocess(magnify={"alpha": -2})


def test_preprocess_magnifies_at_the_clip_frame_rate(data):
    row = load_databases(data, names=["CASME2"])["CASME2"].iloc[0].to_dict()
    raw = load_clip(row, size=(112, 112), grey=True)
    got = Preprocess(magnify=MAG).load(row)
    np.testing.assert_array_equal(got, MAG.apply(raw, float(row["fps"])))
    assert got.dtype == np.float32 and 0 <= got.min() and got.max() <= 255
    assert np.abs(got - raw).mean() > 0.05  # the clip did change
    with pytest.raises(ValueError, match="needs the clip's frame rate; fps is None"):
        Preprocess(magnify=MAG).load({**row, "fps": None})


def _extract(data: Path, out: Path, *extra: str):
    args = ["extract", str(data), "--dataset", "CASME2", "--descriptor", "lbp_top:r3p8",
            "--levels", "1,2", "--out", str(out), *extra]  # fmt: skip
    return runner.invoke(app, args)


def test_extract_magnify_changes_features_and_cache_identity(data, tmp_path):
    plain = _extract(data, tmp_path / "plain")
    assert plain.exit_code == 0, plain.output
    mag = _extract(data, tmp_path / "mag", "--magnify", "8", "--magnify-band", "1,10")
    assert mag.exit_code == 0, mag.output
    # same data, other preprocessing: nothing comes from the plain run's cache
    assert "computed 7, from cache 0" in " ".join(mag.output.split())
    again = _extract(data, tmp_path / "mag2", "--magnify", "8", "--magnify-band", "1,10")
    assert "computed 0, from cache 7" in " ".join(again.output.split())
    zero = _extract(data, tmp_path / "zero", "--magnify", "0")
    assert "computed 0, from cache 7" in " ".join(zero.output.split())

    a = load_feature_file(tmp_path / "plain.npz")
    b = load_feature_file(tmp_path / "mag.npz")
    xa, xb = a.features["CASME2"].X, b.features["CASME2"].X
    assert xa.shape == xb.shape == (7, 5 * 177)
    assert np.abs(xa - xb).max() > 1e-3
    assert "magnify" not in a.preprocess
    assert b.preprocess["magnify"] == MAG.key()
    np.testing.assert_array_equal(load_feature_file(tmp_path / "mag2.npz").features["CASME2"].X, xb)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--magnify", "-1"],
            "alpha must be a number > -1 (in (-1, 0) it reduces the motion), got -1.0",
        ),
        (["--magnify", "4", "--magnify-band", "1"], "--magnify-band '1': expected LOW,HIGH"),
        (["--magnify", "4", "--magnify-band", "5,2"], "band 5,2 Hz: need 0 < LOW < HIGH"),
        (["--magnify", "4", "--magnify-pyramid", "x"], "unknown pyramid 'x'"),
    ],
)
def test_extract_bad_magnification_is_one_error_line(data, tmp_path, extra, message):
    res = _extract(data, tmp_path / "F", *extra)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
    assert not (tmp_path / "F.npz").exists()


def test_extract_band_above_nyquist_names_the_clip(data, tmp_path):
    # SMIC-VIS is filmed at 25 fps: a band up to 20 Hz cannot be magnified there
    res = runner.invoke(app, ["extract", str(data), "--dataset", "SMIC_VIS", "--levels", "1",
                              "--out", str(tmp_path / "F"), "--no-cache", "--magnify", "4",
                              "--magnify-band", "1,20"])  # fmt: skip
    assert res.exit_code == 2, res.output
    msg = " ".join(res.output.split())
    assert "clip SMIC_VIS/" in msg and "below half the frame rate (12.5 Hz at 25 fps)" in msg
