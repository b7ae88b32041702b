"""`merkit cdmer` with several methods and hyper-parameter grids (oracle vs label-free).

Every behaviour runs on synthetic feature files written here in the benchmark's own format
(``CrossCorpus_LBPTOP_R3P8_<DB>_112by112.mat``, MATLAB v7.3 / HDF5, 85 blocks x 3 planes x
59-bin histograms): the grid CLI's tables, grid.csv and resume are tested without the
licensed data. The released files (``../shared/data/cdmer_lbptop_r3p8``) add checks of the
published numbers and skip when absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import SVC
from typer.testing import CliRunner

from merkit.cli import app

runner = CliRunner()
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cdmer_lbptop_r3p8"
FNAME = "CrossCorpus_LBPTOP_R3P8_{}_112by112.mat"
#: synthetic domains: database -> (clips, shift of bins 40-49, seed)
SYNTH = {"CASME2": (36, 0.0, 1), "SMIC_VIS": (24, 1.5, 2)}
#: task -> (source, target)
TASKS = {"Exp.9": ("CASME2", "SMIC_VIS"), "Exp.10": ("SMIC_VIS", "CASME2")}


def lbptop_like(y: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 15045) rows of 255 histograms (85 blocks x 3 planes) of 59 bins, each summing
    to 1: class ``c`` raises bins ``5c..5c+4`` a little, the domain raises bins 40-49."""
    X = rng.gamma(2.0, 1.0, size=(len(y), 85 * 3, 59))
    for c in range(3):
        X[y == c, :, 5 * c : 5 * c + 5] += 0.3
    X[:, :, 40:50] += shift
    X /= X.sum(axis=2, keepdims=True)
    return X.reshape(len(y), -1)


def write_synthetic_features(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write one benchmark-format .mat per domain of :data:`SYNTH`; returns db -> (X, y)
    with ``y`` in 0..2 and ``X`` as the loader returns it (float32)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = {}
    for db, (n, shift, seed) in SYNTH.items():
        rng = np.random.default_rng(seed)
        y = np.arange(n) % 3
        rng.shuffle(y)
        X = lbptop_like(y, shift, rng)
        with h5py.File(folder / FNAME.format(db), "w") as f:
            # MATLAB -v7.3 as released: h5py shows (15045, n) features and (1, n) labels
            f[f"{db}_micro_feature"] = X.T
            f[f"{db}_micro_label"] = (y + 1).astype(np.float64).reshape(1, -1)
        data[db] = (X.astype(np.float32), y)
    return data


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Folder of synthetic CASME2 / SMIC_VIS feature files, and their (X, y)."""
    folder = tmp_path_factory.mktemp("cdmer_synth")
    return folder, write_synthetic_features(folder)


@pytest.fixture(scope="module")
def features_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"CDMER reference features not found at {SHARED}")
    return SHARED


def svm_scores(data: dict, task: str) -> tuple[float, float]:
    """mean-F1 and accuracy (%) of a linear SVM (C 1) trained on the task's source, computed
    here with scikit-learn directly (independent of merkit's runner)."""
    (Xs, ys), (Xt, yt) = (data[d] for d in TASKS[task])
    pred = SVC(kernel="linear", C=1.0).fit(Xs, ys).predict(Xt)
    return f1_score(yt, pred, average="macro", labels=[0, 1, 2]), 100 * accuracy_score(yt, pred)


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error:") and "Traceback" not in res.output
    return " ".join(res.output.split())


def md_row(markdown: str, method: str) -> list[str]:
    """Cells after the method of the first Markdown table row of ``method`` (bold removed)."""
    line = next(x for x in markdown.splitlines() if x.startswith(f"| {method} "))
    return [c.strip().replace("**", "") for c in line.strip("|").split("|")][1:]


SA_GRID = {"svm": [{}], "sa": [{"n_components": 5}, {"n_components": 15}]}


def run_grid_cli(folder: Path, spec: dict, out: Path, *extra: str):
    grid = out.parent / f"{out.name}-grid.json"
    grid.write_text(json.dumps(spec))
    return runner.invoke(app, ["cdmer", "--features-dir", str(folder), "--method", "svm,sa",
                               "--grid", str(grid), "--out", str(out), *extra])  # fmt: skip


def test_grid_file_on_synthetic_features_gives_oracle_and_label_free_tables(
    synthetic, tmp_path
) -> None:
    folder, data = synthetic
    out = tmp_path / "res"
    res = run_grid_cli(folder, SA_GRID, out, "--criterion", "entropy", "--jobs", "2",
                       "--select", "auto")  # fmt: skip
    assert res.exit_code == 0, res.output
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 2 * 3 and set(grid["method"]) == {"svm", "sa"}
    assert grid["task"].value_counts().to_dict() == {"Exp.9": 3, "Exp.10": 3}
    assert {"reverse", "class_entropy", "entropy", "published_params"} <= set(grid.columns)
    published = grid.loc[grid.method == "sa", "published_params"]
    assert sorted(published) == ['{"k":15}', '{"k":15}', '{"k":5}', '{"k":5}']
    results = pd.read_csv(out / "results.csv")
    pick = results.set_index(["task", "method", "selection"])
    for task in TASKS:
        # the SVM grid point equals a linear SVM fitted here with scikit-learn on the raw file
        f1, acc = svm_scores(data, task)
        svm = grid[(grid.task == task) & (grid.method == "svm")].iloc[0]
        assert svm["mean_f1"] == pytest.approx(f1, abs=1e-9)
        assert svm["accuracy"] == pytest.approx(acc, abs=1e-9)
        assert pick.loc[(task, "svm", "oracle"), "mean_f1"] == pytest.approx(f1, abs=1e-9)
        # oracle = best mean-F1 on the target labels, entropy = best label-free score
        g = grid[(grid.task == task) & (grid.method == "sa")]
        best = g.loc[g["mean_f1"].idxmax()]
        assert pick.loc[(task, "sa", "oracle"), "params"] == best["params"]
        assert pick.loc[(task, "sa", "oracle"), "mean_f1"] == best["mean_f1"]
        free = g.loc[g["entropy"].idxmax()]
        assert pick.loc[(task, "sa", "entropy"), "params"] == free["params"]
        assert pick.loc[(task, "sa", "entropy"), "mean_f1"] == free["mean_f1"]
    # values computed once with seed 0: the oracle and the label-free pick differ here
    assert pick.loc[("Exp.9", "sa", "oracle"), "params"] == '{"n_components":5}'
    assert pick.loc[("Exp.9", "sa", "oracle"), "mean_f1"] == pytest.approx(0.79552, abs=5e-5)
    assert pick.loc[("Exp.10", "sa", "oracle"), "mean_f1"] == pytest.approx(0.80478, abs=5e-5)
    assert pick.loc[("Exp.9", "sa", "entropy"), "params"] == '{"n_components":15}'
    assert pick.loc[("Exp.9", "sa", "entropy"), "mean_f1"] == pytest.approx(0.79048, abs=5e-5)
    assert pick.loc[("Exp.10", "sa", "entropy"), "mean_f1"] == pytest.approx(0.77815, abs=5e-5)
    summary = (out / "summary.md").read_text()
    oracle_part, free_part = summary.split("## Label-free selection (entropy, no target label)")
    assert "## Oracle protocol (best grid point scored with target labels): Table 4" in oracle_part
    assert md_row(oracle_part, "sa")[:2] == ["0.7955 / 79.17", "0.8048 / 80.56"]
    assert md_row(free_part, "sa")[:2] == ["0.7905 / 79.17", "0.7781 / 77.78"]
    assert md_row(free_part, "svm")[:2] == ["0.7936 / 79.17", "0.6849 / 69.44"]
    assert "oracle*: best grid point scored with target labels" in summary
    assert "| sa     | oracle*" in summary
    assert "6 grid points (6 fitted now, 0 resumed)" in summary
    assert "CASME2 (n=36), SMIC_VIS (n=24)" in summary
    assert "Table 4 (TYPE-II, Exp.7-12)" in res.output and "0.7955 / 79.17" in res.output
    assert "Label-free selection (entropy, no target label)" in " ".join(res.output.split())
    assert "grid.csv" in res.output
    assert_auto_choices(out, res)


def assert_auto_choices(out: Path, res) -> None:
    """``--select auto``: per task the label-free choice over both methods' points."""
    grid = pd.read_csv(out / "grid.csv")
    auto = pd.read_csv(out / "auto.csv", dtype={"params": str})
    sel = ["oracle"] + [s for c in ("reverse", "class_entropy", "entropy", "snd", "snd_guarded",
                                    "agreement")
                        for s in (c, f"vote:{c}", f"family:{c}", f"mean:{c}:5")]  # fmt: skip
    for task in TASKS:
        got = auto[auto.task == task].set_index("selection")
        assert list(got.index) == sel
        g = grid[grid.task == task].reset_index(drop=True)
        best = g.loc[g["mean_f1"].idxmax()]
        assert (got.loc["oracle", "method"], got.loc["oracle", "params"]) == (
            best["method"], best["params"])  # fmt: skip
        for c in ("snd",):  # the best value over both methods' points
            top = g.loc[g[c].idxmax()]
            assert (got.loc[c, "method"], got.loc[c, "params"]) == (top["method"], top["params"])
            assert got.loc[c, "mean_f1"] == pytest.approx(top["mean_f1"], abs=1e-12)
        assert (got["gap"] <= 1e-12).sum() >= 1 and got.loc["oracle", "gap"] == 0
    text = " ".join(res.output.split())
    assert "Label-free choice of method and parameters per task (vs the oracle)" in text
    assert "Label-free choices against the oracle, all tasks and seeds" in text
    assert "auto.csv" in text
    assert "## Label-free choices against the oracle" in (out / "summary.md").read_text()


def test_grid_cli_resumes_and_extends_a_grid_on_synthetic_features(synthetic, tmp_path) -> None:
    folder, _ = synthetic
    out = tmp_path / "res"
    assert run_grid_cli(folder, SA_GRID, out).exit_code == 0
    first_grid = pd.read_csv(out / "grid.csv")
    first = pd.read_csv(out / "results.csv")
    # the same command again fits nothing and gives the same rows
    res = run_grid_cli(folder, SA_GRID, out)
    assert res.exit_code == 0, res.output
    assert "6 grid points (0 fitted now, 6 resumed)" in (out / "summary.md").read_text()
    again = pd.read_csv(out / "grid.csv")
    cols = ["task", "method", "params", "mean_f1", "accuracy", "reverse", "entropy", "y_pred"]
    pd.testing.assert_frame_equal(again[cols], first_grid[cols])
    key = ["task", "method", "selection", "params", "mean_f1"]
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv")[key], first[key])
    # one more SA point: only its two units (one per task) are fitted
    wider = {"svm": [{}], "sa": [{"n_components": 5}, {"n_components": 10},
                                 {"n_components": 15}]}  # fmt: skip
    res = run_grid_cli(folder, wider, out)
    assert res.exit_code == 0, res.output
    assert "8 grid points (2 fitted now, 6 resumed)" in (out / "summary.md").read_text()
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 8
    assert (grid["params"] == '{"n_components":10}').sum() == 2
    merged = grid.merge(first_grid[cols], on=["task", "method", "params"], suffixes=("", "_0"))
    assert len(merged) == 6 and (merged["mean_f1"] == merged["mean_f1_0"]).all()


def test_several_methods_at_their_default_points_on_synthetic_features(synthetic, tmp_path):
    folder, data = synthetic
    res = runner.invoke(app, ["cdmer", "--features-dir", str(folder), "--method",
                              "svm, tgsr", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    results = pd.read_csv(tmp_path / "results.csv").set_index(["method", "task"])
    assert len(results) == 4 and (results["selection"] == "none").all()
    assert (results["params"] == "{}").all()
    for task in TASKS:
        f1, acc = svm_scores(data, task)
        assert results.loc[("svm", task), "mean_f1"] == pytest.approx(f1, abs=1e-9)
        assert results.loc[("svm", task), "accuracy"] == pytest.approx(acc, abs=1e-9)
    # TGSR at its default point (kappa 85, xi 0.01): values computed once with seed 0
    assert results.loc[("tgsr", "Exp.9"), "mean_f1"] == pytest.approx(0.83333, abs=5e-5)
    assert results.loc[("tgsr", "Exp.10"), "mean_f1"] == pytest.approx(0.82935, abs=5e-5)
    assert "| tgsr" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "grid.csv").exists()


def test_grid_file_gives_oracle_and_label_free_tables(features_dir, tmp_path) -> None:
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({"svm": [{}], "sa": [{"n_components": 31},
                                                    {"n_components": 60}]}))  # fmt: skip
    out = tmp_path / "res"
    res = runner.invoke(app, ["cdmer", "--features-dir", str(features_dir), "--method", "svm,sa",
                              "--grid", str(spec), "--jobs", "2", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    grid = pd.read_csv(out / "grid.csv")
    assert len(grid) == 2 * 3 and set(grid["method"]) == {"svm", "sa"}
    assert {"reverse", "class_entropy", "entropy", "published_params"} <= set(grid.columns)
    results = pd.read_csv(out / "results.csv")
    pick = results.set_index(["task", "method", "selection"])
    # the oracle picks the published best points (SA: k 31 on C->V, 60 on V->C)
    assert pick.loc[("Exp.9", "sa", "oracle"), "params"] == '{"n_components":31}'
    assert pick.loc[("Exp.9", "sa", "oracle"), "mean_f1"] == pytest.approx(0.6030, abs=5e-5)
    assert pick.loc[("Exp.10", "sa", "oracle"), "mean_f1"] == pytest.approx(0.5243, abs=5e-5)
    assert pick.loc[("Exp.10", "svm", "reverse"), "mean_f1"] == pytest.approx(0.5367, abs=5e-5)
    rev = pick.loc[("Exp.9", "sa", "reverse")]
    g = grid[(grid.task == "Exp.9") & (grid.method == "sa")]
    assert rev["params"] == g.loc[g["reverse"].idxmax(), "params"]
    summary = (out / "summary.md").read_text()
    assert "## Oracle protocol (best grid point scored with target labels): Table 4" in summary
    assert "## Label-free selection (reverse, no target label): Table 4" in summary
    assert "oracle*: best grid point scored with target labels" in summary
    assert "| sa     | oracle*" in summary
    assert "Table 4 (TYPE-II, Exp.7-12)" in res.output and "0.6030 / 60.56" in res.output
    assert "grid.csv" in res.output


def test_several_methods_at_their_default_points(features_dir, tmp_path) -> None:
    res = runner.invoke(app, ["cdmer", "--features-dir", str(features_dir), "--method",
                              "svm, tgsr", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    results = pd.read_csv(tmp_path / "results.csv").set_index(["method", "task"])
    assert len(results) == 4 and (results["selection"] == "none").all()
    # TGSR default kappa 85, xi 0.01: C->V equals the published point (0.5906 / 59.15)
    assert results.loc[("tgsr", "Exp.9"), "mean_f1"] == pytest.approx(0.5906, abs=5e-5)
    assert results.loc[("svm", "Exp.10"), "accuracy"] == pytest.approx(53.08, abs=5e-3)
    assert "| tgsr" in (tmp_path / "summary.md").read_text()
    assert not (tmp_path / "grid.csv").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--method", "svm,nope"], "unknown method(s) ['nope']"),
        (["--grid", "best"], "--grid must be 'default', 'published' or a JSON file"),
        (["--grid", "published", "--criterion", "luck"], "criterion 'luck' is not among"),
        (["--levels", "1,2"], "use them with --data"),
        (["--select", "best"], "--select must be one of method, auto, got 'best'"),
        (["--select", "auto"], "--select auto chooses among grid points: give --grid published"),
        (
            ["--class-order", "matlab"],
            "class order 'matlab' is unknown; use one of sorted, first-appearance",
        ),
    ],
)
@pytest.mark.parametrize("source", ["synthetic", "released"])
def test_grid_option_errors(source, extra, expected, request, tmp_path) -> None:
    if source == "released":
        folder = request.getfixturevalue("features_dir")
    else:
        folder = request.getfixturevalue("synthetic")[0]
    res = runner.invoke(app, ["cdmer", "--features-dir", str(folder), *extra,
                              "--out", str(tmp_path)])  # fmt: skip
    assert expected in _one_line_error(res)


def _tgsr_f1(data: dict, task: str, kappa: int, groups: np.ndarray) -> float:
    """mean-F1 of TGSR fitted directly (estimator API) with the given column groups."""
    from merkit.adapt.tgsr import TransferGroupSparseRegression

    (Xs, ys), (Xt, yt) = (data[d] for d in TASKS[task])
    X = np.vstack([Xs, Xt]).astype(float)
    y = np.r_[ys, -np.ones(len(Xt), dtype=int)]
    sd = np.r_[np.ones(len(Xs), dtype=int), -np.ones(len(Xt), dtype=int)]
    est = TransferGroupSparseRegression(kappa=kappa, xi=0.01)
    pred = est.fit(X, y, sd, column_groups=groups).predict(Xt.astype(float))
    return f1_score(yt, pred, average="macro", labels=[0, 1, 2])


def test_class_order_option_on_synthetic_features(synthetic, tmp_path) -> None:
    folder, data = synthetic
    out = tmp_path / "res"
    res = runner.invoke(app, ["cdmer", "--features-dir", str(folder), "--class-order",
                              "first-appearance", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    results = pd.read_csv(out / "results.csv").set_index("task")
    for task, (src, tgt) in TASKS.items():
        assert results.loc[task, "data"].endswith(";classes=first-appearance")
        # a linear SVM fitted here on the labels recoded in order of first appearance
        (Xs, ys), (Xt, yt) = data[src], data[tgt]
        _, pos = np.unique(ys, return_index=True)
        order = ys[np.sort(pos)]
        code = np.argsort(order)  # label -> its position in order of first appearance
        pred = order[SVC(kernel="linear", C=1.0).fit(Xs, code[ys]).predict(Xt)]
        acc = 100 * accuracy_score(yt, pred)
        f1 = f1_score(yt, pred, average="macro", labels=[0, 1, 2])
        assert results.loc[task, "accuracy"] == pytest.approx(acc, abs=1e-9)
        assert results.loc[task, "mean_f1"] == pytest.approx(f1, abs=1e-9)
    # a grid with --select auto: the choices are scored in the same coding as the grid
    res = run_grid_cli(folder, SA_GRID, tmp_path / "grid", "--class-order", "first-appearance",
                       "--select", "auto")  # fmt: skip
    assert res.exit_code == 0, res.output
    grid = pd.read_csv(tmp_path / "grid" / "grid.csv")
    auto = pd.read_csv(tmp_path / "grid" / "auto.csv").set_index(["task", "selection"])
    for task in TASKS:
        g = grid[grid.task == task]
        assert g["data"].str.endswith(";classes=first-appearance").all()
        assert auto.loc[(task, "oracle"), "mean_f1"] == pytest.approx(g["mean_f1"].max(), abs=1e-9)
        picked = g.loc[g["entropy"].idxmax(), "mean_f1"]
        assert auto.loc[(task, "entropy"), "mean_f1"] == pytest.approx(picked, abs=1e-9)


def test_class_order_first_appearance_reproduces_published_c_to_v(features_dir, tmp_path):
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({"svm": [{}], "tca": [{"n_components": 25}]}))
    out = tmp_path / "res"
    res = runner.invoke(app, ["cdmer", "--features-dir", str(features_dir), "--method", "svm,tca",
                              "--grid", str(spec), "--class-order", "first-appearance",
                              "--out", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    grid = pd.read_csv(out / "grid.csv").set_index(["task", "method"])
    # the published C->V numbers (MATLAB LibSVM), exactly; sorted order: 0.4800 / 0.6714
    assert grid.loc[("Exp.9", "svm"), "mean_f1"] == pytest.approx(0.4701, abs=5e-5)
    assert grid.loc[("Exp.9", "svm"), "accuracy"] == pytest.approx(50.70, abs=5e-3)
    assert grid.loc[("Exp.9", "tca"), "mean_f1"] == pytest.approx(0.6834, abs=5e-5)
    assert grid.loc[("Exp.9", "tca"), "accuracy"] == pytest.approx(69.01, abs=5e-3)
    # SMIC-VIS starts in sorted order: V->C is unchanged
    assert grid.loc[("Exp.10", "svm"), "mean_f1"] == pytest.approx(0.5367, abs=5e-5)


def test_tgsr_groups_option_on_synthetic_features(synthetic, tmp_path) -> None:
    from merkit.data.features_io import cdmer_lbptop_layout

    folder, data = synthetic
    spec = tmp_path / "grid.json"
    spec.write_text(json.dumps({"tgsr": [{"kappa": 3, "xi": 0.01}]}))
    got = {}
    for option in ([], ["--tgsr-groups", "spatial"], ["--tgsr-groups", "authors"]):
        out = tmp_path / (option[-1] if option else "default")
        res = runner.invoke(app, ["cdmer", "--features-dir", str(folder), "--method", "tgsr",
                                  "--grid", str(spec), *option, "--out", str(out)])  # fmt: skip
        assert res.exit_code == 0, res.output
        grid = pd.read_csv(out / "grid.csv").set_index("task")
        got[out.name] = grid["mean_f1"].to_dict()
        if option:
            assert f"TGSR groups: {option[-1]}" in (out / "summary.md").read_text()
    # the default is the authors' grouping: 85 runs of 177 contiguous columns
    assert got["default"] == got["authors"]
    authors, spatial = np.repeat(np.arange(85), 177), cdmer_lbptop_layout()[0]
    for task in TASKS:
        assert got["authors"][task] == pytest.approx(_tgsr_f1(data, task, 3, authors), abs=1e-12)
        assert got["spatial"][task] == pytest.approx(_tgsr_f1(data, task, 3, spatial), abs=1e-12)
    assert got["authors"] != got["spatial"]  # kappa < 85: the grouping matters


def test_tgsr_groups_option_errors(synthetic, tmp_path) -> None:
    folder, _ = synthetic
    res = runner.invoke(app, ["cdmer", "--features-dir", str(folder), "--tgsr-groups", "faces",
                              "--out", str(tmp_path)])  # fmt: skip
    assert "unknown TGSR grouping 'faces'; expected one of authors, spatial" in _one_line_error(res)
    npz = tmp_path / "F.npz"
    res = runner.invoke(app, ["cdmer", "--features", str(npz), "--tgsr-groups", "spatial",
                              "--out", str(tmp_path / "o")])  # fmt: skip
    assert "--tgsr-groups applies to --features-dir only" in _one_line_error(res)
