"""Bad inputs and faults are one ``error:`` line (exit code 2) and lose nothing (issue #15).

Everything runs on synthetic data: tiny synthetic databases and small feature files.

Unwritable output folders: the tests run as root here, and root ignores permission bits,
so a ``chmod 0o555`` folder would still be writable. Two situations fail for every user,
root included: a path below a regular file (``ENOTDIR``), and sysfs (``/sys``), which
refuses new files and folders (``EACCES`` / ``EPERM``, or ``EROFS`` where it is mounted
read-only). Each command must say so before any unit of work: the function that would do
the first piece of work is replaced by one that fails the test when called.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.data.schema import FeatureSet
from merkit.features.extract import save_feature_file

runner = CliRunner()
CLASSES = ("negative", "positive", "surprise")
DATABASES = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")


def _one_line_error(res) -> str:
    """The error message: exit code 2, no traceback, exactly one ``error:`` line."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    _, sep, message = res.output.partition("error:")
    assert sep and "error:" not in message, res.output
    return " ".join(message.split())


def _feature_sets(n: int = 12, d: int = 20, seed: int = 0, names=DATABASES) -> dict:
    """Small labelled databases, separable enough for the SVM."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, db in enumerate(names):
        y = np.arange(n) % 3
        X = rng.normal(size=(n, d)) + 0.8 * y[:, None] + 0.3 * k
        table = pd.DataFrame({"dataset": db, "subject": [f"{db}/s{i % 4}" for i in range(n)],
                              "clip": [f"c{i:02d}" for i in range(n)], "y": y,
                              "label": [CLASSES[v] for v in y]})  # fmt: skip
        out[db] = FeatureSet(X.astype(np.float32), table, name=db, classes=CLASSES)
    return out


def _save(sets: dict, path: Path, descriptor: str = "lbp_top:r3p8") -> Path:
    npz, _ = save_feature_file(sets, path, descriptor=descriptor)
    return npz


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("errors") / "data"
    synthesize(root, seed=2, size="tiny")
    return root


@pytest.fixture(scope="module")
def features_npz(tmp_path_factory) -> Path:
    return _save(_feature_sets(), tmp_path_factory.mktemp("feats") / "F")


@pytest.fixture(scope="module")
def results_dir(features_npz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("results") / "res"
    res = runner.invoke(app, ["cdmer", "--features", str(features_npz), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


# ------------------------------------------------------------------ unwritable --out
@pytest.fixture(params=["below a file", "new folder in sysfs", "sysfs itself"])
def unwritable(request, tmp_path) -> Path:
    """An output folder nobody can write, root included."""
    if request.param == "below a file":
        blocker = tmp_path / "blocker"
        blocker.write_text("a file, not a folder")
        return blocker / "out"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs at /sys (not Linux)")
    try:  # sysfs takes no new files, whoever asks; skip if this system differs
        probe = Path("/sys/.merkit-probe")
        probe.touch()
        probe.unlink()
        pytest.skip("this system lets the test write into /sys")
    except OSError:
        pass
    return Path("/sys/merkit-readonly-test") if request.param.startswith("new") else Path("/sys")


def _forbid(monkeypatch, target: str) -> None:
    def work(*args, **kwargs):
        raise AssertionError(f"{target} ran before the output folder was checked")

    monkeypatch.setattr(target, work)


TRAIN_FAST = ["--no-align", "--flow-preset", "fast", "--face-size", "56", "--epochs", "1",
              "--folds", "1", "--model", "ststnet"]  # fmt: skip

#: command -> (arguments given the data, features, results, output folder and a scratch
#: folder; the option named in the error; the first unit of work)
COMMANDS = {
    "extract": (lambda d, f, r, o, t: ["extract", str(d), "--out", str(o / "F"), "--cache",
                                       str(t / "cache")],
                "--out", "merkit.workflows.extract.extract_databases"),
    "cdmer --data": (lambda d, f, r, o, t: ["cdmer", "--data", str(d), "--out", str(o),
                                            "--cache", str(t / "cache")],
                     "--out", "merkit.workflows.cdmer.extract_databases"),
    "cdmer --features": (lambda d, f, r, o, t: ["cdmer", "--features", str(f), "--out", str(o)],
                         "--out", "merkit.workflows.cdmer.run_cdmer"),
    "synth": (lambda d, f, r, o, t: ["synth", str(o), "--size", "tiny"],
              "output folder", "merkit.data.synthetic.writer._write_database"),
    "demo": (lambda d, f, r, o, t: ["demo", "--out", str(o), "--data", str(t / "demo-data"),
                                    "--size", "tiny"],
             "--out", "merkit.workflows.demo.synthesize"),
    "train": (lambda d, f, r, o, t: ["train", "--data", str(d), "--out", str(o), "--cache",
                                     str(t / "cache"), *TRAIN_FAST],
              "--out", "merkit.workflows.train.flow_inputs"),
    "report": (lambda d, f, r, o, t: ["report", str(r), "--html", str(o / "r.html"), "--md",
                                      str(o / "r.md")],
               "--html", "merkit.results.report._intervals"),
}  # fmt: skip


@pytest.mark.parametrize("command", list(COMMANDS))
def test_unwritable_output_is_one_line_before_any_work(
    command, unwritable, data, features_npz, results_dir, tmp_path, monkeypatch
) -> None:
    make_args, option, first_work = COMMANDS[command]
    _forbid(monkeypatch, first_work)
    scratch = tmp_path / "scratch"
    line = _one_line_error(
        runner.invoke(app, make_args(data, features_npz, results_dir, unwritable, scratch))
    )
    assert line.startswith(f"{option} {unwritable}: "), line
    if unwritable.parent.name == "blocker":
        assert f"{unwritable.parent} is a file, not a folder" in line
    else:
        assert "cannot write to this folder" in line and "choose a" in line
    assert not (scratch / "cache").exists()  # no feature or flow computed and cached
    assert not _files_in(scratch / "demo-data")  # nothing synthesised


# ------------------------------------------------------------------ feature-file inputs
def _damaged(kind: str, good: Path, folder: Path) -> Path:
    if kind == "truncated .mat":
        import h5py

        path = folder / "mat" / "CrossCorpus_LBPTOP_R3P8_CASME2_112by112.mat"
        path.parent.mkdir()
        with h5py.File(path, "w") as f:
            f["CASME2_micro_feature"] = np.random.default_rng(0).random((300, 20))
            f["CASME2_micro_label"] = np.ones((1, 20))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    if kind == "truncated .npz":
        path = folder / "cut.npz"
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        return path
    if kind == "rows differ from ids":
        arrays["X"] = arrays["X"][:-2]
    else:  # no y
        del arrays["y"]
    path = folder / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("kind", "what"),
    [("truncated .mat", "re-copy it"), ("truncated .npz", "cut short or damaged"),
     ("rows differ from ids", "X has 46 rows but y has 48"), ("no y", "array(s) y missing")],
)  # fmt: skip
def test_damaged_feature_files_are_one_line(kind, what, features_npz, tmp_path) -> None:
    path = _damaged(kind, features_npz, tmp_path)
    source = ["--features-dir", str(path.parent)] if kind.endswith(".mat") else [
        "--features", str(path)]  # fmt: skip
    line = _one_line_error(runner.invoke(app, ["cdmer", *source, "--out", str(tmp_path / "o")]))
    assert line.startswith(f"{path}: ") and what in line, line
    assert "merkit extract" in line or "re-copy" in line


def test_nan_is_found_before_the_first_task_and_named(features_npz, tmp_path) -> None:
    """A second feature file (another descriptor, run after the first) with a NaN stops the
    run before any task of the first file runs; the file, database and clip are named."""
    sets = _feature_sets(seed=1)
    sets["SMIC_NIR"].X[5, 7] = np.nan
    bad = _save(sets, tmp_path / "G", descriptor="hog_top:p8")
    out = tmp_path / "out"
    res = runner.invoke(app, ["cdmer", "--features", str(features_npz), "--features", str(bad),
                              "--out", str(out)])  # fmt: skip
    line = _one_line_error(res)
    assert line.startswith(
        f"{bad}: database SMIC_NIR: 1 non-finite value(s) (NaN or infinity) in row 5 "
        "(clip c05), columns [7]; re-extract the features with 'merkit extract'"
    ), line
    assert _files_in(out) == []  # no task ran, nothing stored


def test_feature_widths_must_agree_across_files(tmp_path) -> None:
    f1 = _save(_feature_sets(names=DATABASES[:2]), tmp_path / "A")
    f2 = _save(_feature_sets(d=25, names=DATABASES[2:]), tmp_path / "B")
    out = tmp_path / "out"
    res = runner.invoke(app, ["cdmer", "--features", str(f1), "--features", str(f2), "--out",
                              str(out)])  # fmt: skip
    line = _one_line_error(res)
    assert line.startswith(
        f"the databases have different numbers of feature columns ({f1}: database CASME2 20, "
        f"{f1}: database SMIC_HS 20, {f2}: database SMIC_VIS 25, {f2}: database SMIC_NIR 25)"
    ), line
    assert _files_in(out) == []


# ------------------------------------------------------------------ --missing error|skip
@pytest.fixture(scope="module")
def holey(data, tmp_path_factory) -> tuple[Path, str]:
    """The synthetic databases with one frame of one CASME II clip deleted."""
    root = tmp_path_factory.mktemp("holey") / "data"
    shutil.copytree(data, root, ignore=shutil.ignore_patterns(".merkit-cache"))
    clip = sorted((root / "CASME2" / "Cropped").glob("*/*"))[0]
    frames = sorted(clip.iterdir(), key=lambda f: int(re.sub(r"\D", "", f.name)))
    frames[2].unlink()
    return root, f"{clip.parent.name}/{clip.name}"


def test_extract_missing_frames_error_then_skip(holey, tmp_path) -> None:
    root, name = holey
    args = ["extract", str(root), "--out", str(tmp_path / "F"), "--no-cache"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    text = " ".join(res.output.split())
    assert f"{name}: frames" in text and "pass --missing skip" in text
    line = _one_line_error(runner.invoke(app, [*args, "--missing", "maybe"]))
    assert line.startswith("--missing 'maybe': expected 'error'")
    res = runner.invoke(app, [*args, "--missing", "skip"])
    assert res.exit_code == 0, res.output
    assert f"skipped clips: 1, listed in {tmp_path / 'F.skipped.csv'}" in " ".join(
        res.output.split()
    )
    skipped = pd.read_csv(tmp_path / "F.skipped.csv")
    assert skipped[["dataset", "clip"]].values.tolist() == [["CASME2", name]]
    assert skipped["reason"][0].startswith("frames ") and "missing in" in skipped["reason"][0]
    with np.load(tmp_path / "F.npz") as z:
        assert name.split("/")[1] not in z["clip"].tolist()


def test_cdmer_data_missing_skip_lists_the_clips(holey, tmp_path) -> None:
    root, name = holey
    out = tmp_path / "out"
    args = ["cdmer", "--data", str(root), "--out", str(out), "--no-cache"]
    assert "--missing skip" in " ".join(runner.invoke(app, args).output.split())
    res = runner.invoke(app, [*args, "--missing", "skip"])
    assert res.exit_code == 0, res.output
    assert "1 clip(s) left out (--missing skip)" in " ".join(res.output.split())
    assert pd.read_csv(out / "skipped.csv")["clip"].tolist() == [name]
    summary = (out / "summary.md").read_text()
    assert f"clips left out, frames missing (--missing skip): 1, listed in {out}" in summary
    line = _one_line_error(
        runner.invoke(app, ["cdmer", "--features", str(out / "x.npz"), "--missing", "skip"])
    )
    assert line == "--missing applies to --data only (clips on disk)"


def test_train_data_missing_skip_lists_the_clips(holey, tmp_path) -> None:
    root, name = holey
    out = tmp_path / "out"
    args = ["train", "--data", str(root), "--out", str(out), "--cache", str(tmp_path / "c"),
            "--protocol", "loso", "--task", "CASME2-5", *TRAIN_FAST,
            "--no-fold-weights"]  # fmt: skip
    assert "--missing skip" in " ".join(runner.invoke(app, args).output.split())
    res = runner.invoke(app, [*args, "--missing", "skip"])
    assert res.exit_code == 0, res.output
    assert "1 clip(s) left out (--missing skip)" in " ".join(res.output.split())
    assert pd.read_csv(out / "skipped.csv")["clip"].tolist() == [name]
    assert name.split("/")[1] not in pd.read_csv(out / "predictions.csv")["clip"].tolist()


# ------------------------------------------------------------------ disk full mid-grid
def test_disk_full_mid_grid_is_one_line_and_the_run_resumes(
    features_npz, tmp_path, monkeypatch
) -> None:
    from merkit.store import ResultStore

    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"svm": [{"C": c} for c in (0.01, 0.1, 1.0, 10.0, 100.0)]}))
    out = tmp_path / "out"
    args = ["cdmer", "--features", str(features_npz), "--grid", str(grid), "--out", str(out)]
    real = ResultStore.add_records
    stored: list[int] = []

    def fills_the_disk(self, records):
        if stored:  # the first batch is written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.parts_dir))
        records = list(records)
        real(self, records)
        stored.append(len(records))

    monkeypatch.setattr(ResultStore, "add_records", fills_the_disk)
    line = _one_line_error(runner.invoke(app, args))
    assert line == (
        f"{ResultStore(out).parts_dir}: no space left on device; free disk space and run the same "
        "command again: finished work is kept and the run resumes"
    )
    assert len(stored) == 1 and 0 < stored[0] < 60  # 12 tasks x 5 grid points
    monkeypatch.undo()
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = (out / "summary.md").read_text()
    assert f"60 grid points ({60 - stored[0]} fitted now, {stored[0]} resumed)" in summary
