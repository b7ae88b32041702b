"""`merkit report` refuses what it cannot render truthfully: files that are not merkit's,
impossible scores, and results that the stored predictions do not re-score to."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.metrics import score_all
from merkit.results.report import build_report
from merkit.store import ResultStore

STALE = "re-run into a fresh --out, or delete the stale file"


def _noisy(y: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(y.size) > acc, (y + rng.integers(1, 3, y.size)) % 3, y)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """What the runners write: svm with fixed params (2 seeds), tca grid points with an
    oracle row, and AU-style rows scored over one listed class; 2 tasks, 30 test clips."""
    rng = np.random.default_rng(7)
    store = ResultStore(tmp_path_factory.mktemp("good") / "run")
    records, names = [], ("negative", "positive", "surprise")
    for task in ("Exp.1", "Exp.7"):
        y = rng.integers(0, 3, 30)
        for seed in (0, 1):
            records.append(store.make_record(protocol="cdmer", task=task, method="svm",
                                             y_true=y, y_pred=_noisy(y, 0.6, rng), seed=seed,
                                             params={"C": 1.0}, labels=[0, 1, 2],
                                             classes=names))  # fmt: skip
        for lam in (0.1, 1.0):
            records.append(store.make_record(protocol="cdmer", task=task, method="tca",
                                             y_true=y, y_pred=_noisy(y, 0.5, rng),
                                             params={"lam": lam}, labels=[0, 1, 2]))  # fmt: skip
        records.append(store.make_record(protocol="cdmer", task=task, method="tca",
                                         y_true=y, y_pred=_noisy(y, 0.7, rng), params={"lam": 1.0},
                                         selection="oracle", labels=[0, 1, 2]))  # fmt: skip
        au = (y == 1).astype(int)
        records.append(store.make_record(protocol="au", task=f"{task}/AU4", method="fr",
                                         y_true=au, y_pred=np.roll(au, 1), labels=[1],
                                         classes=("absent", "present")))  # fmt: skip
    store.add_records(records)
    return store.directory


def _copy(good: Path, to: Path) -> Path:
    shutil.copytree(good, to, ignore=shutil.ignore_patterns("report*"))
    return to


def _set(path: Path, column: str, value, row: int | None = None, **match) -> None:
    """Overwrite ``column`` of a CSV on the rows equal to ``match`` (or row number ``row``);
    ``value`` may be a function of the old values."""
    df = pd.read_csv(path, keep_default_na=False, dtype={"params": str, "labels": str})
    mask = np.ones(len(df), dtype=bool) if row is None else np.arange(len(df)) == row
    for k, v in match.items():
        mask &= (df[k].astype(str) == str(v)).to_numpy()
    assert mask.any()
    df.loc[mask, column] = value(df.loc[mask, column]) if callable(value) else value
    df.to_csv(path, index=False)


def test_a_store_as_the_runners_write_it_renders(good: Path, tmp_path: Path) -> None:
    html_path, _ = build_report(_copy(good, tmp_path / "ok"), n_boot=20)
    assert "Bootstrap 95% confidence intervals" in html_path.read_text()


def test_impossible_mean_f1_is_refused(good: Path, tmp_path: Path) -> None:
    d = _copy(good, tmp_path / "f1")
    _set(d / "results.csv", "mean_f1", 1.7, method="tca", selection="oracle", task="Exp.7")
    with pytest.raises(ValueError) as err:
        build_report(d, n_boot=20)
    msg = str(err.value)
    assert msg.startswith(f"{d / 'results.csv'}: row cdmer/Exp.7/tca (selection oracle, ")
    assert "mean_f1 = 1.7 is outside 0..1" in msg and msg.endswith(STALE)
    assert "\n" not in msg and not (d / "report.html").exists()


def test_accuracy_is_checked_in_percent(good: Path, tmp_path: Path) -> None:
    d = _copy(good, tmp_path / "acc")
    _set(d / "results.csv", "accuracy", 140.0, row=1)
    with pytest.raises(ValueError, match=r"accuracy = 140 is outside 0\.\.100 "):
        build_report(d, n_boot=20)


def test_predictions_that_rescore_to_other_values_are_refused(good, tmp_path) -> None:
    d = _copy(good, tmp_path / "stale")
    preds = pd.read_csv(d / "predictions.csv", keep_default_na=False, dtype={"params": str})
    row = (preds["task"] == "Exp.1") & (preds["method"] == "svm") & (preds["seed"] == 1)
    preds.loc[row, "y_pred"] = preds.loc[row, "y_true"]  # a stale file: a perfect classifier
    preds.to_csv(d / "predictions.csv", index=False)
    stored = pd.read_csv(d / "results.csv").query("task == 'Exp.1' and method == 'svm' "
                                                  "and seed == 1")["mean_f1"].item()  # fmt: skip
    assert stored < 0.9 and score_all(preds.loc[row, "y_true"], preds.loc[row, "y_pred"],
                                      labels=[0, 1, 2])["mean_f1"] == 1.0  # fmt: skip
    with pytest.raises(ValueError) as err:
        build_report(d, n_boot=20)
    msg = str(err.value)
    assert msg == (
        f'{d / "results.csv"}: row cdmer/Exp.1/svm (selection none, params {{"C":1.0}}, '
        f"seed 1): mean_f1 = {stored:.6g} in results.csv, but its 30 predictions in "
        "predictions.csv re-score to 1 (the two files disagree, one is stale or edited); " + STALE
    )


def test_tiny_differences_are_tolerated_and_uar_is_checked(good, tmp_path) -> None:
    d = _copy(good, tmp_path / "tol")
    _set(d / "results.csv", "mean_f1", lambda v: v + 1e-9)
    build_report(d, n_boot=10)  # rounding of a re-saved CSV is not a disagreement
    _set(d / "results.csv", "uar", lambda v: v - 0.01, row=2)
    with pytest.raises(ValueError, match=r": uar = .* re-score to "):
        build_report(d, n_boot=10)


@pytest.mark.parametrize("drop", [2, 30], ids=["some", "all"])
def test_prediction_count_must_match_n_test(good: Path, tmp_path: Path, drop: int) -> None:
    d = _copy(good, tmp_path / f"count{drop}")
    preds = pd.read_csv(d / "predictions.csv", keep_default_na=False, dtype={"params": str})
    rows = preds.index[(preds["task"] == "Exp.7") & (preds["method"] == "svm")
                       & (preds["seed"] == 0)]  # fmt: skip
    preds.drop(index=rows[:drop]).to_csv(d / "predictions.csv", index=False)
    found = "has 28 predictions" if drop == 2 else "has no predictions"
    with pytest.raises(ValueError) as err:
        build_report(d, n_boot=20)
    assert str(err.value) == (
        f"{d / 'predictions.csv'}: row cdmer/Exp.7/svm (selection none, params "
        f'{{"C":1.0}}, seed 0) {found}, results.csv says n_test = 30; {STALE}'
    )


def test_missing_predictions_file_is_refused(good: Path, tmp_path: Path) -> None:
    d = _copy(good, tmp_path / "nopreds")
    (d / "predictions.csv").unlink()
    with pytest.raises(ValueError, match=r"predictions\.csv is missing, but results\.csv has 12 "
                                         r"rows; .*re-run into a fresh --out$"):  # fmt: skip
        build_report(d, n_boot=20)


def test_repeated_results_row_is_refused(good: Path, tmp_path: Path) -> None:
    d = _copy(good, tmp_path / "dup")
    r = pd.read_csv(d / "results.csv", keep_default_na=False, dtype=str)
    pd.concat([r, r.iloc[[4]]]).to_csv(d / "results.csv", index=False)
    with pytest.raises(ValueError, match=r"results\.csv: row cdmer/Exp\.1/tca .* appears more "
                                         r"than once"):  # fmt: skip
        build_report(d, n_boot=20)


GARBAGE = {
    "binary": (b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe" * 40, "not UTF-8 text"),
    "empty": (b"", "(empty)"),
    "foreign csv": (b"name,score\nalice,3\n", "columns ['protocol'"),
    "ragged csv": (
        b"protocol,task,method\ncdmer,Exp.1,svm\ncdmer,Exp.2,svm,1,2\n",
        "Expected 3 fields in line 3, saw 5",
    ),
}


@pytest.mark.parametrize("which", ["results.csv", "predictions.csv"])
@pytest.mark.parametrize("kind", list(GARBAGE))
def test_garbage_files_are_named_with_what_was_expected(good, tmp_path, which, kind) -> None:
    d = _copy(good, tmp_path / "garbage")
    content, reason = GARBAGE[kind]
    (d / which).write_bytes(content)
    with pytest.raises(ValueError) as err:
        build_report(d, n_boot=20)
    msg = str(err.value)
    stem = which.removesuffix(".csv")
    assert msg.startswith(f"{d / which}: not a merkit {stem} file (")
    assert reason in msg and "expected a CSV with columns protocol, task, " in msg
    assert "\n" not in msg


def test_folder_without_results_says_what_it_expected(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(FileNotFoundError) as err:
        build_report(tmp_path / "photos")
    assert str(err.value) == (
        f"{tmp_path / 'photos' / 'results.csv'}: no results.csv in the results folder; "
        "expected a results folder written by merkit cdmer, demo or train (--out DIR)"
    )


@pytest.mark.parametrize("tamper", ["mean_f1", "predictions", "garbage"])
def test_cli_report_on_a_tampered_folder_is_one_error_line(good, tmp_path, tamper) -> None:
    d = _copy(good, tmp_path / "cli [v2]")  # brackets: the path must survive rich markup
    if tamper == "mean_f1":
        _set(d / "results.csv", "mean_f1", 1.7, row=0)
        named = d / "results.csv"
    elif tamper == "predictions":
        _set(d / "predictions.csv", "y_pred", lambda v: (v + 1) % 3)
        named = d / "results.csv"
    else:
        (d / "predictions.csv").write_bytes(GARBAGE["binary"][0])
        named = d / "predictions.csv"
    r = CliRunner().invoke(app, ["report", str(d), "--n-boot", "20"])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: "), r.output
    assert "Traceback" not in r.output and not (d / "report.html").exists()
