"""Tests of the HTML / Markdown results report and its figures."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.metrics import bootstrap_ci
from merkit.protocols.cdmer import TASKS
from merkit.results import plots
from merkit.results import report as report_mod
from merkit.results.report import build_report
from merkit.store import (
    EMBEDDINGS_DIR,
    GRID_FILE,
    HISTORY_FILE,
    TGSR_BLOCKS_FILE,
    ResultStore,
    params_to_json,
    read_embeddings,
    read_grid,
    read_history,
    read_tgsr_blocks,
    write_auto_selection,
)

TASK_IDS = ("Exp.1", "Exp.2", "Exp.7")  # two TYPE-I tasks, one TYPE-II
CLASSES = ("negative", "positive", "surprise")
N = 40
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARROW = "\u2192"


def _noisy(y: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    flip = rng.random(y.size) > acc
    return np.where(flip, (y + rng.integers(1, 3, y.size)) % 3, y)


def _fill_store(directory: Path, tasks, n: int, rng: np.random.Generator) -> Path:
    """svm with fixed params; tca with a 3x4 grid, oracle and reverse rows; class names."""
    store = ResultStore(directory)
    records, grid_rows = [], []
    for t, task in enumerate(tasks):
        y = rng.integers(0, 3, n)
        records.append(store.make_record(protocol="cdmer", task=task, method="svm",
                                         y_true=y, y_pred=_noisy(y, 0.5 + 0.03 * t, rng),
                                         params={"C": 1.0}, labels=[0, 1, 2],
                                         classes=CLASSES))  # fmt: skip
        best = None
        for k in (5, 10, 20):
            for lam in (0.01, 0.1, 1.0, 10.0):
                acc = 0.4 + 0.1 * (k == 10) + 0.05 * np.log10(lam * 100) / 3 + 0.02 * t
                yp = _noisy(y, acc, rng)
                params = {"n_components": k, "lam": lam}
                row, preds = store.make_record(protocol="cdmer", task=task, method="tca",
                                               y_true=y, y_pred=yp, params=params,
                                               labels=[0, 1, 2], classes=CLASSES)  # fmt: skip
                records.append((row, preds))
                grid_rows.append({**row, "published_params": params_to_json(params),
                                  "reverse": float(rng.random())})  # fmt: skip
                if best is None or row["mean_f1"] > best[0]:
                    best = (row["mean_f1"], params, yp)
        records.append(store.make_record(protocol="cdmer", task=task, method="tca",
                                         y_true=y, y_pred=best[2], params=best[1],
                                         selection="oracle", labels=[0, 1, 2],
                                         classes=CLASSES))  # fmt: skip
        records.append(store.make_record(protocol="cdmer", task=task, method="tca",
                                         y_true=y, y_pred=_noisy(y, 0.45, rng),
                                         params={"n_components": 5, "lam": 0.1},
                                         selection="reverse", labels=[0, 1, 2],
                                         classes=CLASSES))  # fmt: skip
    store.add_records(records)
    pd.DataFrame(grid_rows).to_csv(store.directory / GRID_FILE, index=False)
    return store.directory


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """2 methods x 3 tasks: svm fixed params; tca with a grid, oracle and reverse rows.

    Shared by the tests of this module: tests that add files work on a copy.
    """
    return _fill_store(tmp_path_factory.mktemp("res"), TASK_IDS, N, np.random.default_rng(0))


@pytest.fixture(scope="module")
def built(store_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The report of ``store_dir`` (n_boot 200, seed 3), built once."""
    return build_report(store_dir, n_boot=200, seed=3)


def _copy(store_dir: Path, to: Path) -> Path:
    shutil.copytree(store_dir, to, ignore=shutil.ignore_patterns("report*"))
    return to


def _write_deep(directory: Path, n: int = 60, seeds=(0, 1), folds=("s1", "s2", "s3")) -> None:
    """history.csv and embeddings/*.npz as `merkit train` writes them (CDE, model fr)."""
    rng = np.random.default_rng(5)
    rows = []
    for s in seeds:
        for k, f in enumerate(folds):
            for e in range(1, 6):
                rows.append({"protocol": "cde", "task": "composite", "method": "fr", "seed": s,
                             "fold": f, "epoch": e, "loss": 1.2 / e + 0.1 * k,
                             "accuracy": min(1.0, 0.3 + 0.12 * e + 0.01 * k), "lr": 0.001,
                             "val_loss": 1.3 / e + 0.1 * k,
                             "val_accuracy": 0.3 + 0.08 * e})  # fmt: skip
    pd.DataFrame(rows).to_csv(directory / HISTORY_FILE, index=False)
    emb = directory / EMBEDDINGS_DIR
    emb.mkdir()
    for s in seeds:
        y = np.arange(n) % 3
        z = rng.normal(size=(n, 16)) + 3.0 * np.eye(16)[y]  # three separated clusters
        yp = np.where(np.arange(n) % 7 == 0, (y + 1) % 3, y)
        np.savez(emb / f"cde__composite__fr__seed{s}.npz", z=z.astype(np.float32),
                 y_true=y, y_pred=yp, sample_id=np.array([f"c{i:03d}" for i in range(n)]),
                 classes=np.array(CLASSES))  # fmt: skip


@pytest.fixture
def deep_dir(tmp_path: Path) -> Path:
    """A CDE results store of one model (2 seeds) without class names, plus deep files."""
    rng = np.random.default_rng(2)
    store = ResultStore(tmp_path / "deep")
    records = []
    params = {"model": "fr", "epochs": 5, "lr": 0.001, "batch_size": 32}
    for s in (0, 1):
        y = rng.integers(0, 3, 30)
        yp = _noisy(y, 0.7, rng)
        db = np.array(["CASME2", "SAMM", "SMIC_HS"])[np.arange(30) % 3]
        for task, m in (("composite", np.ones(30, bool)), ("CASME2", db == "CASME2")):
            records.append(store.make_record(protocol="cde", task=task, method="fr",
                                             y_true=y[m], y_pred=yp[m], params=params, seed=s,
                                             fold=db[m], labels=[0, 1, 2]))  # fmt: skip
    store.add_records(records)
    _write_deep(store.directory)
    return store.directory


def _imgs(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def _th(name: str, sub: str | None = None) -> str:
    return f"<th>{name}" + (f'<br><span class="sub">{sub}</span>' if sub else "") + "</th>"


def test_report_html_and_markdown(store_dir: Path, built) -> None:
    html_path, md_path = built
    assert html_path == store_dir / "report.html" and md_path == store_dir / "report.md"
    text = html_path.read_text()
    for task, code in (("Exp.1", "H->V"), ("Exp.2", "V->H"), ("Exp.7", "C->H")):
        assert _th(task, f"{code.replace('->', ARROW)}, n={N}") in text
    assert _th("TYPE-I") in text and _th("TYPE-II") in text
    assert "CDMER results: mean-F1 / accuracy (%)" in text
    assert "Oracle vs label-free" in text and "oracle*" in text
    assert "Bootstrap 95% confidence intervals of mean-F1" in text
    # summary + TYPE-I + TYPE-II tables, twice more for the selection and CI tables
    assert text.count("<table>") == 7
    first = text.split(">Oracle vs label-free hyper-parameter selection</h2>")[0]
    first = first.split("<h3>Summary: TYPE averages</h3>")[1]
    # best of each column in bold: 5 columns x 2 numbers in the main tables
    # (summary repeats the 2 TYPE columns), ties may add more
    assert first.count("<b>") >= 14
    # tabulated rows: svm, tca oracle, tca reverse; grid points are not rows
    assert text.count('<th class="row">svm</th>') == 5  # 3 result + 2 CI tables
    assert '"lam"' not in text.split("Confusion matrices")[0]
    assert "settings: svm: C=1.0" in text  # constant params listed once, not per row
    assert '<th class="row">fixed</th>' in text and '<th class="row">oracle*</th>' in text
    # a forest plot, 3 confusion grids (svm, tca oracle*, tca reverse), 1 sensitivity
    imgs = _imgs(text)
    assert len(imgs) == 5
    assert all(b.startswith(PNG_MAGIC) and len(b) > 5000 for b in imgs)
    assert "TGSR" not in text and "t-SNE" not in text and "learning curves" not in text
    assert "confusion matrices: tca oracle*" in text

    # the CI cell of svm/Exp.1 equals bootstrap_ci on its stored predictions
    preds = ResultStore(store_dir).predictions()
    p = preds[(preds["method"] == "svm") & (preds["task"] == "Exp.1")]
    ci = bootstrap_ci(p["y_true"], p["y_pred"], "mean_f1", n_boot=200, seed=3)
    assert f'{ci.estimate:.4f}<br><span class="sub">[{ci.low:.4f}, {ci.high:.4f}]</span>' in text
    assert ci.high - ci.low > 0.05  # 40 test clips: a wide interval

    md = md_path.read_text()
    assert "| method" in md and "| TYPE-II" in md and "mean-F1 [low, high]" in md
    assert "Exp.1 (H->V, n=40)" in md
    assert f"{ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]" in md
    assert "**" in md and "<b>" not in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 5
    for link in links:
        f = md_path.parent / link
        assert f.is_file() and f.read_bytes().startswith(PNG_MAGIC)
    assert md.count("| svm ") >= 5


def test_report_ci_cells(store_dir: Path, built) -> None:
    pat = r'\d\.\d{4}<br><span class="sub">\[\d\.\d{4}, \d\.\d{4}\]</span>'
    cells = re.findall(pat, built[0].read_text())
    assert len(cells) == 9  # 3 rows x 3 tasks
    for c in cells:
        est, lo, hi = map(float, re.findall(r"\d\.\d{4}", c))
        assert lo <= est <= hi
    # every cell is bootstrap_ci of that row's stored predictions, seed-deterministic
    store = ResultStore(store_dir)
    units = report_mod._unit_predictions(store.results(), store.predictions(), {})
    cis = report_mod._intervals(units, 200, 3)
    assert cis == report_mod._intervals(units, 200, 3) and len(cis) == 9
    for est, lo, hi in cis.values():
        assert f'{est:.4f}<br><span class="sub">[{lo:.4f}, {hi:.4f}]</span>' in cells


def test_report_class_names_and_old_stores(store_dir: Path, tmp_path: Path) -> None:
    res = ResultStore(store_dir).results()
    assert json.loads(res["classes"].iloc[0]) == list(CLASSES)
    units = report_mod._unit_predictions(res, ResultStore(store_dir).predictions(), {})
    unit = units[("cdmer", "Exp.1", "svm", "none", "")]
    assert unit.classes == list(CLASSES) and unit.labels == [0, 1, 2] and unit.n_units == 1
    # a store written before the 'classes' column (svm rows only): reads as "", renders
    old = _copy(store_dir, tmp_path / "old")
    (old / GRID_FILE).unlink()
    r = pd.read_csv(old / "results.csv")
    r[r["method"] == "svm"].drop(columns=["classes"]).to_csv(old / "results.csv", index=False)
    res_old = ResultStore(old).results()
    assert (res_old["classes"] == "").all() and len(res_old) == 3
    units = report_mod._unit_predictions(res_old, ResultStore(old).predictions(), {})
    assert len(units) == 3 and all(u.classes is None for u in units.values())
    html_path, _ = build_report(old, n_boot=20)
    assert len(_imgs(html_path.read_text())) == 2  # forest plot + svm confusion grid


def test_confusion_panels_class_names() -> None:
    y = np.array([0, 0, 1, 2, 2, 2])
    p = np.array([0, 1, 1, 2, 2, 0])
    fig = plots.confusion_panels([("a", y, p)], labels=[0, 1, 2], class_names=CLASSES)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(CLASSES)
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["1\n0.50", "1\n0.50", "0\n0.00"]  # row 'negative': counts, rates
    fig = plots.confusion_panels([("a", y, p)])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]
    plots.figure_png(fig)


def test_report_tgsr_section_user_face(store_dir: Path, tmp_path: Path) -> None:
    d = _copy(store_dir, tmp_path / "tgsr")
    (d / GRID_FILE).unlink()  # keep this build small
    blocks = {"Exp.1": [0, 1, 4, 21, 84], "C->H": [2, 7]}
    (d / TGSR_BLOCKS_FILE).write_text(json.dumps(blocks))
    levels, got = read_tgsr_blocks(d / TGSR_BLOCKS_FILE)
    assert levels == (1, 2, 4, 8) and got == blocks
    frame = np.tile(np.linspace(0, 255, 96, dtype=np.uint8), (112, 1))
    cv2.imwrite(str(tmp_path / "face.png"), frame)
    face = plots.read_face(tmp_path / "face.png")
    assert face.shape == (112, 96) and face.max() == pytest.approx(1.0)
    out_html, out_md = tmp_path / "o" / "r.html", tmp_path / "m" / "r.md"
    html_path, md_path = build_report(d, out_html, out_md, n_boot=20,
                                      face=tmp_path / "face.png")  # fmt: skip
    assert html_path == out_html and md_path == out_md
    text = html_path.read_text()
    assert "TGSR salient facial regions" in text and "drawn over the given face frame" in text
    assert len(_imgs(text)) == 6  # forest, 3 confusion grids, 2 TGSR maps
    assert "TGSR selected blocks: Exp.1 H-&gt;V" in text
    assert "TGSR selected blocks: Exp.7 C-&gt;H" in text
    assert (tmp_path / "m" / "r_files" / "tgsr_exp_7_c_h.png").is_file()
    with pytest.raises(FileNotFoundError, match="face image not found"):
        build_report(d, n_boot=20, face=tmp_path / "none.png")
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        plots.read_face(tmp_path / "bad.png")


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
    assert f"{ci.estimate:.4f} [{ci.low:.4f}, {ci.high:.4f}]" in md_path.read_text()
    assert "cells are means over 2 seeds" in text
    assert "Oracle vs label-free" not in text and "sensitivity" not in text
    assert len(_imgs(text)) == 2  # forest plot + one confusion grid, no grid.csv
    assert "confusion matrices: svm" in text
    assert "Summary: TYPE averages" not in text  # one type only: one table
    assert text.count("<table>") == 2


def test_report_deep_run(deep_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr(report_mod, "TSNE_MAX_POINTS", 40)  # 60 clips: a seeded subset
    y = (np.arange(24)[:, None] % np.array([2, 3, 5]) == 0).astype(np.int64)  # 3 AUs
    np.savez(deep_dir / EMBEDDINGS_DIR / "au__au12__fr__seed0.npz", z=np.eye(24),
             y_true=y, y_pred=y[::-1], classes=np.array(["AU1", "AU4", "AU12"]))  # fmt: skip
    e = read_embeddings(deep_dir / EMBEDDINGS_DIR / "au__au12__fr__seed0.npz")
    assert e["multilabel"] and e["y_true"].shape == (24, 3)
    html_path, md_path = build_report(deep_dir, n_boot=50, seed=4)
    text = html_path.read_text()
    assert "cde results: mean-F1 / UAR" in text
    assert _th("composite", "n=30") in text and _th("CASME2", "n=10") in text
    res = ResultStore(deep_dir).results()
    comp = res[res["task"] == "composite"]
    cell = f"{comp['mean_f1'].mean():.4f} / {comp['uar'].mean():.4f}"
    assert f"<td>{cell}</td>" in text and "<td>2</td>" in text  # mean over the 2 seeds
    # the long params JSON is one note, not a row label
    assert "settings: fr: batch_size=32, epochs=5, lr=0.001, model=fr" in text
    assert '{"batch_size"' not in text
    # class names: none stored in results.csv, taken from the embedding files
    assert "Deep training: learning curves" in text and "Deep features: t-SNE" in text
    assert "learning curves: cde composite: fr (3 folds, seeds 0, 1)" in text
    assert "t-SNE of the learned features: cde composite fr" in text
    assert "seed 0: subsampled to 40 of 60 points; seed 1: subsampled to 40 of 60 points" in text
    assert "Not drawn (multi-label AU tasks, no single class to colour by): au__au12" in text
    # forest + 1 confusion grid + learning curves + t-SNE
    imgs = _imgs(text)
    assert len(imgs) == 4 and all(b.startswith(PNG_MAGIC) for b in imgs)
    deep = ResultStore(deep_dir)
    units = report_mod._unit_predictions(res, deep.predictions(),
                                         report_mod._embedding_classes(deep))  # fmt: skip
    assert all(u.classes == list(CLASSES) for u in units.values())
    assert (md_path.parent / "report_files" / "tsne_cde_composite_fr.png").is_file()


def test_learning_curves_lines() -> None:
    rng = np.random.default_rng(0)
    rows = [{"seed": s, "fold": f, "epoch": e, "loss": float(rng.random()), "accuracy": 0.5,
             "lr": 0.1 if e < 3 else 0.01} for s in (0, 1) for f in "abcd"
            for e in range(1, 5 if f != "d" else 3)]  # fmt: skip
    h = pd.DataFrame(rows)
    fig = plots.learning_curves(h, title="x")
    assert len(fig.axes) == 6  # 2 seeds x (loss, accuracy, lr: it changes)
    ax = fig.axes[0]
    assert ax.get_title() == "seed 0: loss"
    lines = ax.get_lines()
    assert len(lines) == 5  # 4 folds + their mean
    mean = lines[-1]
    want = h[h["seed"] == 0].groupby("epoch")["loss"].mean()
    np.testing.assert_allclose(mean.get_ydata(), want.to_numpy())
    assert mean.get_linewidth() == 2.0 and lines[0].get_linewidth() < 1.0
    assert fig.axes[2].get_yscale() == "log"
    plots.figure_png(fig)
    with pytest.raises(ValueError, match=r"history lacks columns \['loss'\]"):
        plots.learning_curves(h.drop(columns="loss"))


def test_embed_2d_is_seeded_and_subsamples() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(90, 64))
    xy, rows, perp = plots.embed_2d(z, random_state=1, max_points=50)
    assert xy.shape == (50, 2) and perp == pytest.approx(49 / 3)
    assert rows.size == 50 and np.all(np.diff(rows) > 0) and rows.max() < 90
    xy2, rows2, _ = plots.embed_2d(z, random_state=1, max_points=50)
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_allclose(xy, xy2)
    _, _, perp = plots.embed_2d(z[:10])
    assert perp == 3.0
    _, rows, perp = plots.embed_2d(z)
    assert rows.size == 90 and perp == pytest.approx(89 / 3)
    with pytest.raises(ValueError, match="at least 5 feature rows"):
        plots.embed_2d(z[:4])
    with pytest.raises(ValueError, match="NaN or infinite"):
        plots.embed_2d(np.full((8, 3), np.nan))


def test_embedding_figure_marks_errors() -> None:
    xy = np.arange(12.0).reshape(6, 2)
    yt = np.array([0, 0, 1, 1, 2, 2])
    yp = np.array([0, 1, 1, 1, 2, 0])
    fig = plots.embedding_figure([("s0", xy, yt, yp)], class_names=CLASSES)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["negative (2)", "positive (2)", "surprise (2)", "misclassified (2)"]
    plots.figure_png(fig)


def test_read_history_and_embeddings_errors(tmp_path: Path) -> None:
    _write_deep(tmp_path)
    h = read_history(tmp_path / HISTORY_FILE)
    assert len(h) == 2 * 3 * 5 and h["fold"].tolist()[0] == "s1" and h["epoch"].dtype == "int64"
    h.drop(columns=["loss"]).to_csv(tmp_path / "h2.csv", index=False)
    with pytest.raises(ValueError, match=r"h2.csv: not a training history, columns \['loss'\]"):
        read_history(tmp_path / "h2.csv")
    h.assign(accuracy=["x"] + [0.5] * (len(h) - 1)).to_csv(tmp_path / "h3.csv", index=False)
    with pytest.raises(ValueError, match=r"h3.csv: column 'accuracy' is not numeric on lines"):
        read_history(tmp_path / "h3.csv")

    e = read_embeddings(tmp_path / EMBEDDINGS_DIR / "cde__composite__fr__seed1.npz")
    assert e["z"].shape == (60, 16) and e["classes"] == list(CLASSES)
    assert e["name"] == {"protocol": "cde", "task": "composite", "model": "fr", "seed": 1}
    np.savez(tmp_path / "a.npz", z=np.zeros((4, 2)), y_true=np.zeros(4))
    with pytest.raises(ValueError, match=r"a.npz: arrays \['y_pred'\] are missing"):
        read_embeddings(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", z=np.zeros((4, 2)), y_true=np.zeros(4), y_pred=np.zeros(3))
    with pytest.raises(ValueError, match=r"b.npz: y_true \(4,\) and y_pred \(3,\) must both"):
        read_embeddings(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", z=np.zeros((4, 2)), y_true=np.zeros(4), y_pred=np.zeros(4),
             classes=np.array(["a", None], dtype=object))  # fmt: skip
    with pytest.raises(ValueError, match="c.npz: not a plain .npz of arrays"):
        read_embeddings(tmp_path / "c.npz")


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
    ((method, curves, marks),) = report_mod._sensitivity(ResultStore(store_dir).results(), grid)
    assert method == "tca" and set(curves) == {"k", "lam"}
    assert set(curves["k"]) == {"Exp.1", "Exp.2", "Exp.7"}
    xs, ys = curves["lam"]["Exp.1"]
    assert sorted(xs) == [0.01, 0.1, 1.0, 10.0] and len(ys) == 4
    fig = plots.sensitivity_figure(curves, oracle=marks)
    scales = {a.get_xlabel(): a.get_xscale() for a in fig.axes}
    assert scales == {"k": "linear", "lam": "log"}
    plots.figure_png(fig)


def test_cli_report(store_dir: Path, tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "one")
    y = np.arange(30) % 3
    store.add(protocol="cdmer", task="V->C", method="svm", y_true=y, y_pred=np.roll(y, 1))
    out = tmp_path / "cli.html"
    r = CliRunner().invoke(app, ["report", str(store.directory), "--html", str(out),
                                 "--md", str(tmp_path / "cli.md"), "--n-boot", "50"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert f"html: {out}" in r.output and out.is_file()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "results folder not found" in r.output
    r = CliRunner().invoke(app, ["report", str(store_dir), "--face", str(tmp_path / "no.png")])
    assert r.exit_code == 2 and "face image not found" in r.output


# what a reader's browser shows: rendered by headless Chromium, measured in the page
_PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const tables = [...document.querySelectorAll('table')];
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({
    images: imgs.length,
    decoded: imgs.filter(i => i.complete && i.naturalWidth > 100).length,
    tables: tables.length,
    rows: tables.map(t => t.rows.length),
    widest: Math.max(0, ...tables.map(t => t.getBoundingClientRect().width)),
    viewport: document.documentElement.clientWidth,
    page: document.documentElement.scrollWidth});
  document.body.appendChild(out);
});
</script></body>"""


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    """All 12 tasks, a grid, selections, a deep run: every table fits a 1280 px window."""
    d = _fill_store(tmp_path / "full", [t.name for t in TASKS], 71, np.random.default_rng(7))
    _write_deep(d, n=30, seeds=(0,))
    (d / TGSR_BLOCKS_FILE).write_text(json.dumps({"Exp.9": [0, 3, 10, 40, 61]}))
    html_path, _ = build_report(d, n_boot=50)
    page = tmp_path / "probe.html"
    page.write_text(html_path.read_text().replace("</body>", _PROBE))
    n_imgs = len(_imgs(html_path.read_text()))
    # forest, 3 confusion grids, sensitivity, TGSR, learning curves, t-SNE
    assert n_imgs == 8
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,2000",
         "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()],
        check=True, timeout=120, capture_output=True, text=True,
    ).stdout  # fmt: skip
    m = re.search(r'<pre id="probe">(.*?)</pre>', dom)
    assert m, dom[-2000:]
    probe = json.loads(m.group(1))
    assert probe["images"] == probe["decoded"] == n_imgs
    # summary, TYPE-I, TYPE-II; selection TYPE-I, TYPE-II; CI TYPE-I, TYPE-II
    assert probe["tables"] == 7
    # header + svm, tca oracle*, tca reverse; the selection tables have the tca rows only
    assert probe["rows"] == [4, 4, 4, 3, 3, 4, 4]
    assert probe["widest"] <= probe["viewport"]  # no table needs horizontal scrolling
    assert probe["page"] <= probe["viewport"]


def test_report_shows_the_choices_across_methods(store_dir: Path, tmp_path: Path) -> None:
    d = _copy(store_dir, tmp_path / "auto")
    choices = pd.DataFrame({
        "task": ["Exp.1"] * 3, "seed": 0, "selection": ["oracle", "snd", "vote:snd"],
        "method": ["tca", "svm", "svm+tca"], "params": ['{"n_components":2}', "{}", "{}"],
        "value": [np.nan, 0.25, np.nan], "mean_f1": [0.8, 0.61234567, 0.7],
        "gap": [0, -0.18765433, -0.1],
    })  # fmt: skip
    write_auto_selection(d, choices)
    html_path, md_path = build_report(d, n_boot=20)
    md = md_path.read_text()
    assert "## Label-free choice of method and parameters across methods" in md
    assert "Label-free choices against the oracle, all tasks and seeds" in md
    assert "0.6123" in md and "-0.1877" in md and "1/1" in md
    assert "Label-free choice of method and parameters across methods" in html_path.read_text()
