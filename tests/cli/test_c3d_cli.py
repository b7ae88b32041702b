"""`merkit extract / cdmer --descriptor c3d:... --weights FILE` on a small synthetic pair of
databases (CASME II and SMIC-HS, 2 subjects each), with random C3D weights of the real key
layout and shapes (``c3d_weights`` in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from tests.cli._output import one_error_line

pytest.importorskip("torch")

runner = CliRunner()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from merkit.data.synthetic import synthesize

    root = tmp_path_factory.mktemp("c3d-cli") / "data"
    size = {"preset": "tiny", "CASME2": {"subjects": 2, "clips": 2},
            "SMIC_HS": {"subjects": 2, "clips": 2}}  # fmt: skip
    synthesize(root, seed=3, databases=("CASME2", "SMIC_HS"), size=size)
    return root


def test_extract_c3d_fc6_writes_4096_features_and_caches_by_weights(
    data, c3d_weights, tmp_path
) -> None:
    out = tmp_path / "F"
    args = ["extract", str(data), "--descriptor", "c3d:fc6", "--weights", str(c3d_weights),
            "--out", str(out)]  # fmt: skip
    cold = runner.invoke(app, args)
    assert cold.exit_code == 0, cold.output
    with np.load(out.with_suffix(".npz"), allow_pickle=False) as z:
        X, descriptor, params = z["X"], str(z["descriptor"]), str(z["params"])
    n = len(pd.read_csv(out.with_suffix(".csv")))
    assert n >= 4 and X.shape == (n, 4096) and X.dtype == np.float32
    assert descriptor == "c3d:fc6" and c3d_digest(c3d_weights) in params
    assert (X >= 0).all() and (X > 0).mean() > 0.2  # fc6 after ReLU
    assert len({row.tobytes() for row in X}) == n  # every clip its own vector
    warm = runner.invoke(app, args)
    assert warm.exit_code == 0 and f"computed 0, from cache {n}" in warm.output, warm.output
    with np.load(out.with_suffix(".npz"), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["X"], X)


def c3d_digest(path: Path) -> str:
    from merkit.features.c3d import weights_digest

    return weights_digest(path)


def test_cdmer_c3d_fc7_runs_the_tasks(data, c3d_weights, tmp_path) -> None:
    out = tmp_path / "cdmer"
    args = ["cdmer", "--data", str(data), "--descriptor", "c3d:fc7",
            "--weights", str(c3d_weights), "--out", str(out), "--no-cache"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    results = pd.read_csv(out / "results.csv")
    assert set(results["features"].astype(str)) == {"c3d:fc7"}
    tasks = {(r.task, r.source, r.target): r.n_test for r in results.itertuples()}
    assert tasks == {("Exp.7", "CASME2", "SMIC_HS"): 4, ("Exp.8", "SMIC_HS", "CASME2"): 3}
    assert results["mean_f1"].between(0, 1).all() and results["uar"].between(0, 1).all()


def test_weights_errors_are_one_line(data, c3d_weights, tmp_path) -> None:
    out = str(tmp_path / "F")
    line = one_error_line(runner.invoke(app, ["extract", str(data), "-d", "c3d:fc6", "-o", out]))
    assert "descriptor c3d:fc6 needs a weights file: give --weights FILE" in line
    line = one_error_line(runner.invoke(
        app, ["extract", str(data), "-o", out, "--weights", str(c3d_weights)]))  # fmt: skip
    assert "--weights is only for the c3d descriptor, not lbp_top:r3p8" in line
    line = one_error_line(runner.invoke(
        app, ["cdmer", "--data", str(data), "-d", "lbp_top:r3p8", "--weights",
              str(c3d_weights), "--out", str(tmp_path / "c")]))  # fmt: skip
    assert "--weights is only for the c3d descriptor" in line
    torch = pytest.importorskip("torch")
    bad = tmp_path / "bad.pt"
    torch.save({"conv1a.weight": torch.zeros(2), "conv1a.bias": torch.zeros(2)}, bad)
    args = ["extract", str(data), "-d", "c3d:fc7", "--weights", str(bad), "-o", out]
    line = one_error_line(runner.invoke(app, args))
    assert f"weights file {str(bad)!r}: missing keys conv1.weight, conv1.bias" in line
    assert "unexpected keys conv1a.bias, conv1a.weight" in line
    line = one_error_line(runner.invoke(
        app, ["extract", str(data), "-d", "c3d:fc7", "--weights", str(tmp_path / "no.pt"),
              "-o", out]))  # fmt: skip
    assert "no.pt' does not exist; give a C3D state dict with --weights" in line
    args = ["extract", str(data), "-d", "c3d:fc6", "--weights", str(c3d_weights), "-o", out,
            "--length", "8"]  # fmt: skip
    line = one_error_line(runner.invoke(app, args))
    assert "c3d:fc6 takes 16-frame 112x112 clips, not 8 frames of 112x112" in line
    assert "use --size 112 --length 16" in line
    args = ["cdmer", "--features-dir", str(tmp_path), "--weights", str(c3d_weights)]
    line = one_error_line(runner.invoke(app, [*args, "--out", str(tmp_path / "c")]))
    assert "--descriptor, --levels and --weights describe raw databases" in line
    assert not (tmp_path / "F.npz").exists()
