"""`merkit extract` and `merkit cdmer --data / --features` on tiny synthetic databases."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.workflows.databases import load_databases

runner = CliRunner()
DIM = 85 * 177


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("cli-extract") / "data"
    synthesize(root, seed=2, size="tiny")
    return root


@pytest.fixture(scope="module")
def extracted(data, tmp_path_factory) -> tuple[Path, object, object]:
    """Cold then warm extraction of every database (2 jobs, default cache folder)."""
    out = tmp_path_factory.mktemp("feats") / "F"
    args = ["extract", str(data), "--descriptor", "lbp_top:r3p8", "--levels", "1,2,4,8",
            "--out", str(out), "--jobs", "2"]  # fmt: skip
    cold = runner.invoke(app, args)
    warm = runner.invoke(app, args)
    return out, cold, warm


def _one_line_error(res) -> str:
    """The error message (after any progress-bar line printed before the failure)."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    _, sep, message = res.output.partition("error:")
    assert sep and "error:" not in message, res.output
    return " ".join(message.split())


def test_extract_writes_the_feature_file_and_table(extracted, data) -> None:
    out, cold, _ = extracted
    assert cold.exit_code == 0, cold.output
    counts = {"CASME2": 7, "SMIC_HS": 9, "SMIC_VIS": 6, "SMIC_NIR": 6}  # cdmer3 labels
    with np.load(out.with_suffix(".npz"), allow_pickle=False) as z:
        assert z["X"].shape == (28, DIM) and z["X"].dtype == np.float32
        assert pd.Series(z["dataset"]).value_counts().to_dict() == counts
        assert z["classes"].tolist() == ["negative", "positive", "surprise"]
        assert set(z["y"].tolist()) == {0, 1, 2}
        assert z["blocks"].shape == (DIM,) and z["levels"].tolist() == [1, 2, 4, 8]
        assert str(z["descriptor"]) == "lbp_top:r3p8" and str(z["scheme"]) == "cdmer3"
        clips = z["clip"].tolist()
    table = pd.read_csv(out.with_suffix(".csv"))
    assert table["clip"].tolist() == clips and {"label", "y", "frames_dir"} <= set(table.columns)
    assert "computed 28, from cache 0" in cold.output
    assert (data / ".merkit-cache" / "lbp_top-r3p8").is_dir()


def test_second_run_reads_everything_from_the_cache(extracted) -> None:
    out, cold, warm = extracted
    assert warm.exit_code == 0, warm.output
    assert "computed 0, from cache 28" in warm.output


def test_out_with_npz_suffix_dataset_and_scheme_none(data, tmp_path) -> None:
    res = runner.invoke(app, ["extract", str(data), "--dataset", "casme2", "--scheme", "none",
                              "--out", str(tmp_path / "c2.npz"), "--no-cache"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c2.csv", "c2.npz"]
    with np.load(tmp_path / "c2.npz") as z:
        # all 9 clips kept (cdmer3 drops 'others' and 'repression'), native emotions as classes
        assert z["X"].shape == (9, DIM) and set(z["dataset"].tolist()) == {"CASME2"}
        assert "others" in z["classes"].tolist() and str(z["scheme"]) == "none"


def _copy_vis(data: Path, dst: Path) -> Path:
    shutil.copytree(data / "SMIC", dst / "SMIC", ignore=shutil.ignore_patterns("HS", "NIR"))
    return dst


def _vis_clip(root: Path, i: int) -> tuple[str, Path]:
    """Clip name (as the adapter reads it) and frame folder of SMIC-VIS row ``i``."""
    row = load_databases(root, names=["SMIC_VIS"])["SMIC_VIS"].iloc[i]
    return f"{row['subject']}/{row['clip']}", Path(row["frames_dir"])


def test_align_with_haar_gives_the_right_dims(data, tmp_path) -> None:
    root = _copy_vis(data, tmp_path / "d")
    res = runner.invoke(app, ["extract", str(root), "--align", "--detector", "haar",
                              "--out", str(tmp_path / "A")])  # fmt: skip
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "A.npz") as z:
        assert z["X"].shape == (6, DIM)
        assert '"align": true' in str(z["preprocess"]) and '"haar"' in str(z["preprocess"])


def test_clip_without_a_face_fails_unless_skip_missing(data, tmp_path) -> None:
    root = _copy_vis(data, tmp_path / "d")
    name, clip = _vis_clip(root, 0)
    for f in clip.iterdir():  # no face anywhere in this clip
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(f), np.full_like(img, 90))
    args = ["extract", str(root), "--align", "--detector", "haar", "--out", str(tmp_path / "A")]
    line = _one_line_error(runner.invoke(app, args))
    assert f"clip {name}: no face found on the onset frame" in line and "--skip-missing" in line
    res = runner.invoke(app, [*args, "--skip-missing"])
    assert res.exit_code == 0, res.output
    skipped = pd.read_csv(tmp_path / "A.skipped.csv")
    assert [f"{r.subject}/{r.clip}" for r in skipped.itertuples()] == [name]
    assert "no face" in skipped["reason"][0]
    assert "A.skipped.csv" in " ".join(res.output.split())
    with np.load(tmp_path / "A.npz") as z:
        assert z["X"].shape == (5, DIM) and name.split("/")[-1] not in z["clip"].tolist()


def test_errors_are_one_line_naming_the_problem(data, tmp_path) -> None:
    line = _one_line_error(runner.invoke(app, ["extract", str(tmp_path / "nope"), "-o", "F"]))
    assert str(tmp_path / "nope") in line
    line = _one_line_error(runner.invoke(app, ["extract", str(data), "-d", "lbq:r1", "-o", "F"]))
    assert "unknown descriptor 'lbq'" in line and "lbp_top" in line
    root = _copy_vis(data, tmp_path / "d")
    name, folder = _vis_clip(root, 2)
    frame = sorted(folder.iterdir())[0]
    frame.write_bytes(b"broken jpeg")
    line = _one_line_error(runner.invoke(app, ["extract", str(root), "-o", str(tmp_path / "F")]))
    assert f"clip {name}: cannot read frame image" in line and frame.name in line


def test_cdmer_on_raw_data_runs_every_descriptor(data, extracted, tmp_path) -> None:
    out = tmp_path / "res"
    res = runner.invoke(app, ["cdmer", "--data", str(data), "--descriptor", "lbp_top:r3p8",
                              "--descriptor", "hog_top:p4", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 24 and (results["method"] == "svm").all()
    assert results.groupby("features").size().to_dict() == {"hog_top:p4": 12, "lbp_top:r3p8": 12}
    assert results.groupby("features")["data"].nunique().to_dict() == {
        "hog_top:p4": 12, "lbp_top:r3p8": 12}  # fmt: skip
    summary = (out / "summary.md").read_text()
    assert "| lbp_top:r3p8 svm |" in summary and "| hog_top:p4 svm" in summary
    assert "lbp_top:r3p8 svm" in res.output and "hog_top:p4 svm" in res.output

    # the feature file written by `merkit extract` gives the very same lbp_top results
    npz_out = tmp_path / "from-npz"
    res = runner.invoke(app, ["cdmer", "--features", str(extracted[0]) + ".npz",
                              "--out", str(npz_out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    again = pd.read_csv(npz_out / "results.csv")
    assert (again["features"] == "lbp_top:r3p8").all()
    lbp = results[results["features"] == "lbp_top:r3p8"]
    cols = ["task", "data", "mean_f1", "accuracy"]
    pd.testing.assert_frame_equal(
        lbp[cols].sort_values("task").reset_index(drop=True),
        again[cols].sort_values("task").reset_index(drop=True),
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        ([], "give exactly one of --features-dir, --features or --data"),
        (["--data", "D", "--features-dir", "X"], "(got --features-dir and --data)"),
        (["--features-dir", "X", "--descriptor", "lbp_top"], "use them with --data"),
        (["--features", "/no/such.npz"], "/no/such.npz does not exist"),
        (["--data", "/no/such/dir", "-d", "lbp_top:r3p8"], "/no/such/dir does not exist"),
        (["--data", "/no/such/dir", "-d", "lbp_top:r3p8,zz:1"], "unknown descriptor 'zz'"),
    ],
)
def test_cdmer_source_errors(extra, expected, tmp_path) -> None:
    line = _one_line_error(runner.invoke(app, ["cdmer", *extra, "--out", str(tmp_path)]))
    assert expected in line
