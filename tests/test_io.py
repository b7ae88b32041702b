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

from merkit.store import ResultStore
from merkit.store import atomic_write_text as store_write_text

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
    from merkit._io import atomic_write, atomic_write_text, write_temporary

    for mask in UMASKS:
        with umask(mask) as want:
            target = tmp_path / f"a{mask:o}.txt"
            atomic_write_text(target, "one\n")
            assert target.read_text() == "one\n" and mode(target) == want
            atomic_write(target, lambda fh: fh.write(b"two\n"))
            assert target.read_bytes() == b"two\n" and mode(target) == want
            tmp = write_temporary(tmp_path / "b.csv", lambda fh: fh.write("x,y\r\n"),
                                  binary=False)  # fmt: skip
            assert tmp.name.startswith(".b.csv.") and tmp.suffix == ".tmp"
            assert tmp.read_bytes() == b"x,y\r\n" and mode(tmp) == want  # no newline change
            tmp.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a22.txt", "a77.txt"]


def test_a_failed_write_keeps_the_old_file_and_no_temporary(tmp_path) -> None:
    from merkit._io import atomic_write

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
            store_write_text(run / "tgsr_blocks.json", "{}\n")
            for name in ("results.csv", "predictions.csv", "tgsr_blocks.json"):
                assert mode(run / name) == want, (name, oct(mask))
            assert len(pd.read_csv(run / "results.csv")) == 2


def test_train_outputs_get_the_umask_mode(tmp_path) -> None:
    from merkit.workflows.train import _atomic_csv, _atomic_npz

    for mask in UMASKS:
        with umask(mask) as want:
            summary, npz = tmp_path / f"summary{mask:o}.csv", tmp_path / "emb" / f"{mask:o}.npz"
            _atomic_csv(pd.DataFrame({"uf1": [0.5]}), summary)
            _atomic_npz(npz, x=np.zeros(3))
            assert mode(summary) == want and mode(npz) == want, oct(mask)
            assert np.load(npz)["x"].tolist() == [0.0, 0.0, 0.0]


def test_report_files_get_the_umask_mode(tmp_path) -> None:
    from merkit.results.report import build_report

    for mask in UMASKS:
        with umask(mask) as want:
            run = tmp_path / f"run{mask:o}"
            ResultStore(run).add(**store_unit("Exp.9"))
            html, md = build_report(run, n_boot=20)
            assert html == run / "report.html" and md == run / "report.md"
            assert mode(html) == want and mode(md) == want, oct(mask)
            images = list((run / "report_files").glob("*.png"))
            assert images and all(mode(p) == want for p in images)
