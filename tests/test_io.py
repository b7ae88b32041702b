"""Atomic writes: output files get the permissions a normal ``open()`` write gives them."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit._io import (
    atomic_write,
    atomic_write_csv,
    atomic_write_npz,
    atomic_write_text,
    write_temporary,
)
from merkit.results.report import build_report
from merkit.store import (
    GRID_FILE,
    TGSR_BLOCKS_FILE,
    ResultStore,
    embeddings_path,
    merge_grid,
    write_embeddings,
    write_fold,
    write_grid_part,
    write_history,
    write_run_info,
    write_skipped,
    write_summary,
    write_summary_table,
    write_tgsr_blocks,
)

#: umasks tried; under each, a file must get the mode ``open(path, "w")`` would give it
UMASKS = (0o022, 0o077)


@contextlib.contextmanager
def umask(value: int) -> Iterator[int]:
    """Set the process umask for a block; yields the mode a normal write gives a file."""
    old = os.umask(value)
    try:
        yield 0o666 & ~value
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def store_unit(task: str) -> dict:
    rng = np.random.default_rng(int(task[4:]))
    yt = rng.integers(0, 3, 24)
    yp = np.where(rng.random(24) < 0.6, yt, rng.integers(0, 3, 24))
    return dict(protocol="cdmer", task=task, source="CASME2", target="SMIC_VIS", method="svm",
                params={"C": 1.0}, seed=0, selection="none", y_true=yt, y_pred=yp,
                clip=[f"{i:04d}" for i in range(24)])  # fmt: skip


def test_the_helpers_follow_the_umask_and_leave_no_temporary(tmp_path) -> None:
    for mask in UMASKS:
        with umask(mask) as want:
            target = tmp_path / f"a{mask:o}.txt"
            atomic_write_text(target, "one\n")
            assert target.read_text() == "one\n" and mode(target) == want
            atomic_write(target, lambda fh: fh.write(b"two\n"))
            assert target.read_bytes() == b"two\n" and mode(target) == want
            table = atomic_write_csv(tmp_path / f"c{mask:o}.csv", pd.DataFrame({"x": [1, 2]}))
            arrays = atomic_write_npz(tmp_path / f"d{mask:o}.npz", {"x": np.arange(3)})
            assert table.read_text() == "x\n1\n2\n" and mode(table) == want
            assert np.load(arrays)["x"].tolist() == [0, 1, 2] and mode(arrays) == want
            tmp = write_temporary(tmp_path / "b.csv", lambda fh: fh.write("x,y\r\n"),
                                  binary=False)  # fmt: skip
            assert tmp.name.startswith(".b.csv.") and tmp.suffix == ".tmp"
            assert tmp.read_bytes() == b"x,y\r\n" and mode(tmp) == want  # no newline change
            tmp.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a22.txt",
        "a77.txt",
        "c22.csv",
        "c77.csv",
        "d22.npz",
        "d77.npz",
    ]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "results.csv"
    target.write_text("old\n")

    def broken(fh) -> None:
        fh.write("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(target, broken, binary=False)
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_results_predictions_and_grid_files_get_the_umask_mode(tmp_path) -> None:
    for mask in UMASKS:
        with umask(mask) as want:
            run = tmp_path / f"run{mask:o}"
            store = ResultStore(run)
            store.add(**store_unit("Exp.9"))
            store.add(**store_unit("Exp.10"))
            store.compact()
            write_tgsr_blocks(run, [1, 2, 4, 8], {"Exp.9": [0, 3]})
            write_grid_part(run, [{"protocol": "cdmer", "task": "Exp.9", "method": "svm",
                                   "params": "{}", "seed": 0, "mean_f1": 0.5}])  # fmt: skip
            for name in ("results.csv", "predictions.csv", TGSR_BLOCKS_FILE, GRID_FILE):
                assert mode(run / name) == want, (name, oct(mask))
            assert len(pd.read_csv(run / "results.csv")) == 2


def test_train_outputs_get_the_umask_mode(tmp_path) -> None:
    for mask in UMASKS:
        with umask(mask) as want:
            run = tmp_path / f"run{mask:o}"
            summary = write_summary_table(run, pd.DataFrame({"uf1": [0.5]}))
            npz = write_embeddings(embeddings_path(run, "cde", "composite", "fr", 0),
                                   z=np.zeros((3, 2)), y_true=np.zeros(3),
                                   y_pred=np.zeros(3))  # fmt: skip
            history = write_history(run / "history.csv", [pd.DataFrame(
                {"protocol": "cde", "task": "composite", "method": "fr", "seed": 0, "fold": "1",
                 "epoch": [1], "loss": [1.0], "accuracy": [0.5], "lr": [1e-3]})])  # fmt: skip
            base = run / "folds" / "fr-1" / "seed0" / "s01"
            write_fold(base, pd.DataFrame({"y_pred": [1]}), history, np.arange(1), np.ones((1, 2)))
            files = [summary, npz, run / "history.csv", *run.glob("folds/*/*/*"),
                     write_run_info(run, {"seeds": [0]}), write_summary(run, "# run\n"),
                     write_skipped(run, pd.DataFrame({"clip": ["a"]}))]  # fmt: skip
            assert len(files) == 9
            assert all(mode(f) == want for f in files), (oct(mask), files)
            assert np.load(npz)["z"].shape == (3, 2)


class _Broken:
    """An array that cannot be converted: ``np.savez`` fails after writing the arrays
    before it."""

    def __array__(self, *args, **kwargs):
        raise OSError(28, "No space left on device")


def _half_csv(monkeypatch) -> None:
    real = pd.DataFrame.to_csv

    def half_then_fail(self, fh=None, *a, **k):
        text = real(self, None, *a, **k)
        fh.write(text[: len(text) // 2])
        fh.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_then_fail)


def _half_text(monkeypatch) -> None:
    real = atomic_write

    def half_then_fail(path, write, **kwargs):
        def partial(fh):
            fh.write("{")
            raise OSError(28, "No space left on device")

        return real(path, partial, **kwargs)

    monkeypatch.setattr("merkit._io.atomic_write", half_then_fail)


_HISTORY = pd.DataFrame({"protocol": "cde", "task": "composite", "method": "fr", "seed": 0,
                         "fold": "1", "epoch": [1, 2], "loss": [1.0, 0.5],
                         "accuracy": [0.5, 0.6], "lr": 1e-3})  # fmt: skip
_GRID_ROW = {"protocol": "cdmer", "task": "Exp.9", "method": "svm", "params": "{}", "seed": 0,
             "mean_f1": 0.5}  # fmt: skip

#: (file written, how its serialisation fails, the write)
_FAILING_WRITES = {
    "grid.csv": (_half_csv, lambda d: write_grid_part(d, [_GRID_ROW])),
    "history.csv": (_half_csv, lambda d: write_history(d / "history.csv", [_HISTORY])),
    "summary.csv": (_half_csv, lambda d: write_summary_table(d, _HISTORY)),
    "skipped.csv": (_half_csv, lambda d: write_skipped(d, _HISTORY)),
    "embeddings/a__b__c__seed0.npz": (
        None,
        lambda d: write_embeddings(
            embeddings_path(d, "a", "b", "c", 0), z=np.ones((2, 2)), y_true=_Broken()
        ),
    ),  # fmt: skip
    "tgsr_blocks.json": (_half_text, lambda d: write_tgsr_blocks(d, [1], {"Exp.9": [0]})),
    "run.json": (_half_text, lambda d: write_run_info(d, {"seeds": [0]})),
    "summary.md": (_half_text, lambda d: write_summary(d, "# run\n")),
}


@pytest.mark.parametrize("name", sorted(_FAILING_WRITES))
def test_a_failed_store_write_leaves_no_partial_file(tmp_path, monkeypatch, name) -> None:
    """A write of the store that fails half-way leaves neither the file nor a temporary
    one (the files written before it stay complete)."""
    breaks, write = _FAILING_WRITES[name]
    if breaks is not None:
        breaks(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        write(tmp_path)
    left = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert left == [], left


def test_a_failed_merge_keeps_the_grid_and_its_parts(tmp_path, monkeypatch) -> None:
    """The merge of grid parts failing half-way keeps grid.csv and every part: the rows
    read the same."""
    monkeypatch.setattr("merkit.store.merge_due", lambda *args: False)
    write_grid_part(tmp_path, [_GRID_ROW])
    merge_grid(tmp_path)
    write_grid_part(tmp_path, [{**_GRID_ROW, "params": '{"C": 1}'}])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    _half_csv(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        merge_grid(tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_report_files_get_the_umask_mode(tmp_path) -> None:
    for mask in UMASKS:
        with umask(mask) as want:
            run = tmp_path / f"run{mask:o}"
            ResultStore(run).add(**store_unit("Exp.9"))
            html, md = build_report(run, n_boot=20)
            assert html == run / "report.html" and md == run / "report.md"
            assert mode(html) == want and mode(md) == want, oct(mask)
            images = list((run / "report_files").glob("*.png"))
            assert images and all(mode(p) == want for p in images)
