"""Tests of the HTML / Markdown results report and its figures."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.protocols.runner import GRID_FILE, read_grid
from merkit.results import plots
from merkit.results.metrics import bootstrap_ci
from merkit.results.report import TGSR_BLOCKS_FILE, build_report, read_tgsr_blocks
from merkit.results.store import ResultStore, params_to_json

TASKS = ("Exp.1", "Exp.2", "Exp.7")  # two TYPE-I tasks, one TYPE-II
METHODS = ("svm", "tca")
N = 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _noisy(y: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    flip = rng.random(y.size) > acc
    return np.where(flip, (y + rng.integers(1, 3, y.size)) % 3, y)


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """2 methods x 3 tasks: svm fixed params; tca with a grid, oracle and reverse rows."""
    rng = np.random.default_rng(0)
    store = ResultStore(tmp_path / "res")
    records, grid_rows = [], []
    for t, task in enumerate(TASKS):
        y = rng.integers(0, 3, N)
        records.append(store.make_record(protocol="cdmer", task=task, method="svm",
                                         y_true=y, y_pred=_noisy(y, 0.5 + 0.1 * t, rng),
                                         params={"C": 1.0}, labels=[0, 1, 2]))  # fmt: skip
        best = None
        for k in (5, 10, 20):
            for lam in (0.01, 0.1, 1.0, 10.0):
                acc = 0.4 + 0.1 * (k == 10) + 0.05 * np.log10(lam * 100) / 3 + 0.05 * t
                yp = _noisy(y, acc, rng)
                params = {"n_components": k, "lam": lam}
                row, preds = store.make_record(protocol="cdmer", task=task, method="tca",
                                               y_true=y, y_pred=yp, params=params,
                                               labels=[0, 1, 2])  # fmt: skip
                records.append((row, preds))
                grid_rows.append({**row, "published_params": params_to_json(params),
                                  "reverse": float(rng.random())})  # fmt: skip
                if best is None or row["mean_f1"] > best[0]:
                    best = (row["mean_f1"], params, yp)
        records.append(store.make_record(protocol="cdmer", task=task, method="tca",
                                         y_true=y, y_pred=best[2], params=best[1],
                                         selection="oracle", labels=[0, 1, 2]))  # fmt: skip
        records.append(store.make_record(protocol="cdmer", task=task, method="tca",
                                         y_true=y, y_pred=_noisy(y, 0.45, rng),
                                         params={"n_components": 5, "lam": 0.1},
                                         selection="reverse", labels=[0, 1, 2]))  # fmt: skip
    store.add_records(records)
    pd.DataFrame(grid_rows).to_csv(store.directory / GRID_FILE, index=False)
    return store.directory


def _imgs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_report_html_and_markdown(store_dir: Path) -> None:
    html_path, md_path = build_report(store_dir, n_boot=200, seed=3)
    assert html_path == store_dir / "report.html" and md_path == store_dir / "report.md"
    text = html_path.read_text()
    for header in ("Exp.1", "Exp.2", "Exp.7", "TYPE-I", "TYPE-II"):
        assert f"<th>{header}</th>" in text
    assert "CDMER results: mean-F1 / accuracy (%)" in text
    assert "Oracle vs label-free" in text and "oracle*" in text
    assert "Bootstrap 95% confidence intervals of mean-F1" in text
    assert text.count("<b>") >= 7  # best of each column in bold (5 columns x 2 numbers)
    # tabulated rows: svm, tca oracle, tca reverse; grid points are not rows
    assert text.count('<th class="row">svm</th>') == 2  # main and CI tables only
    assert '"lam"' not in text.split("Confusion matrices")[0]
    # 3 confusion grids (one per row) + 1 sensitivity figure (tca); no TGSR file
    imgs = _imgs(text)
    assert len(imgs) == 4
    assert all(b.startswith(PNG_MAGIC) and len(b) > 5000 for b in imgs)
    assert "TGSR" not in text

    # the CI cell of svm/Exp.1 equals bootstrap_ci on its stored predictions
    preds = ResultStore(store_dir).predictions()
    p = preds[(preds["method"] == "svm") & (preds["task"] == "Exp.1")]
    ci = bootstrap_ci(p["y_true"], p["y_pred"], "mean_f1", n_boot=200, seed=3)
    assert f"{ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]" in text
    assert ci.high - ci.low > 0.05  # 40 test clips: a wide interval

    md = md_path.read_text()
    assert "| method" in md and "| TYPE-II" in md and "mean-F1 [low, high]" in md
    assert f"{ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]" in md
    assert "**" in md and "<b>" not in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 4
    for link in links:
        f = md_path.parent / link
        assert f.is_file() and f.read_bytes().startswith(PNG_MAGIC)
    assert md.count("| svm ") >= 2


def test_report_cis_and_sensitivity_numbers(store_dir: Path, tmp_path: Path) -> None:
    out_html, out_md = tmp_path / "o" / "r.html", tmp_path / "m" / "r.md"
    html_path, md_path = build_report(store_dir, out_html, out_md, n_boot=100, seed=0)
    assert html_path == out_html and md_path == out_md
    assert (tmp_path / "m" / "r_files").is_dir()
    # seed-determinism
    again, _ = build_report(store_dir, tmp_path / "again.html", tmp_path / "a.md", n_boot=100)
    cells = re.findall(r"\d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]", html_path.read_text())
    assert len(cells) == 9  # 3 rows x 3 tasks
    assert cells == re.findall(r"\d\.\d{4} \[\d\.\d{4}, \d\.\d{4}\]", again.read_text())
    for c in cells:
        est, lo, hi = map(float, re.findall(r"\d\.\d{4}", c))
        assert lo <= est <= hi


def test_report_tgsr_section(store_dir: Path) -> None:
    blocks = {"Exp.1": [0, 1, 4, 21, 84], "C->H": [2, 7]}
    (store_dir / TGSR_BLOCKS_FILE).write_text(json.dumps(blocks))
    levels, got = read_tgsr_blocks(store_dir / TGSR_BLOCKS_FILE)
    assert levels == (1, 2, 4, 8) and got == blocks
    html_path, md_path = build_report(store_dir, n_boot=50)
    text = html_path.read_text()
    assert "TGSR salient facial regions" in text
    assert len(_imgs(text)) == 6
    assert "TGSR selected blocks: Exp.1" in text and "TGSR selected blocks: Exp.7" in text
    assert (md_path.parent / "report_files" / "tgsr_exp_7.png").is_file()


def test_report_pools_seeds_by_clip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    store = ResultStore(tmp_path / "seeds")
    y = rng.integers(0, 3, 30)
    preds = {s: _noisy(y, 0.6, rng) for s in (0, 1)}
    for s, yp in preds.items():
        store.add(protocol="cdmer", task="C->H", method="svm", y_true=y, y_pred=yp, seed=s)
    html_path, md_path = build_report(store.directory, n_boot=100, seed=2)
    text = html_path.read_text()
    ci = bootstrap_ci(
        np.concatenate([y, y]),
        np.concatenate([preds[0], preds[1]]),
        "mean_f1",
        n_boot=100,
        seed=2,
        groups=np.concatenate([np.arange(30)] * 2).astype(str),
    )
    assert f"{ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]" in text
    assert "Oracle vs label-free" not in text and "sensitivity" not in text
    assert len(_imgs(text)) == 1  # one confusion grid, no grid.csv
    assert "confusion matrices: svm" in text


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="results folder not found"):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no results.csv"):
        build_report(tmp_path / "empty")


def test_read_tgsr_blocks_errors(tmp_path: Path) -> None:
    f = tmp_path / TGSR_BLOCKS_FILE
    f.write_text('{"Exp.1": 3}')
    with pytest.raises(ValueError, match=r"expected a JSON object \{task"):
        read_tgsr_blocks(f)
    f.write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_tgsr_blocks(f)
    f.write_text(json.dumps({"levels": [1, 2], "tasks": {"Exp.3": [0, 4]}}))
    assert read_tgsr_blocks(f) == ((1, 2), {"Exp.3": [0, 4]})


def test_salient_map_panels_and_validation() -> None:
    fig = plots.salient_map([0, 5, 84], title="Exp.1")
    axes = fig.axes
    titles = [a.get_title() for a in axes]
    assert titles[:4] == ["1x1: 1/1 blocks", "2x2: 0/4 blocks", "4x4: 1/16 blocks",
                          "8x8: 1/64 blocks"]  # fmt: skip
    assert "3/85 blocks selected" in fig._suptitle.get_text()
    png = plots.figure_png(fig)
    assert png.startswith(PNG_MAGIC)
    img = np.full((64, 48, 3), 128, np.uint8)
    fig = plots.salient_map(range(5), levels=(1, 2), image=img)
    assert [a.get_title() for a in fig.axes][:2] == ["1x1: 1/1 blocks", "2x2: 4/4 blocks"]
    plots.figure_png(fig)
    with pytest.raises(ValueError, match=r"block ids \[85\] are outside 0..84"):
        plots.salient_map([85])
    face = plots.neutral_face(64)
    assert face.shape == (64, 64) and 0.0 <= face.min() < face.max() <= 1.0


def test_is_multiplicative() -> None:
    assert plots.is_multiplicative([0.001, 0.01, 0.1, 1, 10])
    assert not plots.is_multiplicative([5, 10, 15, 20, 25, 30])
    assert not plots.is_multiplicative([0, 1, 10, 100])
    assert not plots.is_multiplicative([1, 100])


def test_sensitivity_log_axis(store_dir: Path) -> None:
    grid = read_grid(store_dir)
    assert len(grid) == 36
    from merkit.results.report import _sensitivity

    ((method, curves, marks),) = _sensitivity(ResultStore(store_dir).results(), grid)
    assert method == "tca" and set(curves) == {"k", "lam"}
    assert set(curves["k"]) == {"Exp.1", "Exp.2", "Exp.7"}
    xs, ys = curves["lam"]["Exp.1"]
    assert sorted(xs) == [0.01, 0.1, 1.0, 10.0] and len(ys) == 4
    fig = plots.sensitivity_figure(curves, oracle=marks)
    scales = {a.get_xlabel(): a.get_xscale() for a in fig.axes}
    assert scales == {"k": "linear", "lam": "log"}
    plots.figure_png(fig)


def test_cli_report(store_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    r = CliRunner().invoke(app, ["report", str(store_dir), "--html", str(out),
                                 "--md", str(tmp_path / "cli.md"), "--n-boot", "50"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"html: {out}" in r.output and out.is_file()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "results folder not found" in r.output


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_chromium(store_dir: Path, tmp_path: Path) -> None:
    html_path, _ = build_report(store_dir, n_boot=50)
    shot = tmp_path / "shot.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1200,3000", html_path.resolve().as_uri()],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    assert shot.is_file() and shot.stat().st_size > 20_000
