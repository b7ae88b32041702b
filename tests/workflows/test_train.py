"""The train workflow's parts: presets, the per-clip input cache, history.csv merging."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.store import HISTORY_COLUMNS, write_history
from merkit.video.face import FaceNotFoundError
from merkit.workflows import train as wf


def _table(root: Path, n=3) -> pd.DataFrame:
    """``n`` clips of five small frames each (img1.png .. img5.png) under ``root``."""
    for i in range(n):
        (root / f"clip{i}").mkdir(parents=True, exist_ok=True)
        for f in range(1, 6):
            cv2.imwrite(
                str(root / f"clip{i}" / f"img{f}.png"), np.full((8, 8), 10 * i + f, np.uint8)
            )
    return pd.DataFrame({
        "dataset": "CASME2", "subject": [f"CASME2/0{i}" for i in range(n)],
        "clip": [f"EP0{i}" for i in range(n)], "onset": 1, "apex": 3, "offset": 5,
        "frames_dir": [str(root / f"clip{i}") for i in range(n)],
    })  # fmt: skip


def test_presets_per_model_and_protocol():
    assert wf.preset_for("fr", "cde") == "fr_cde"
    assert wf.preset_for("fr", "cdmer") == "fr_cdmer"
    assert wf.preset_for("dual_inception", "loso") == "fr_cdmer"
    assert wf.preset_for("ststnet", "au") == "ststnet"
    assert wf.preset_for("rcn_a", "cde") == "rcn_a"


def test_flow_inputs_are_cached_per_clip_and_parameters(monkeypatch, tmp_path):
    calls = []

    def fake(rows, *, size, strain, n_jobs, face_size, **kw):
        calls.append((len(rows), kw["preset"]))
        return np.stack([np.full((*size, 3), 10 * i, np.uint8) for i in range(len(rows))])

    monkeypatch.setattr("merkit.workflows.train.flow_images", fake)
    t = _table(tmp_path / "data")
    cache = tmp_path / "cache"
    X = wf.flow_inputs(t, folder=cache)
    assert X.shape == (3, 3, 28, 28) and X.dtype == np.float32 and X[2, 0, 0, 0] == 20
    assert len(list(cache.glob("*.npy"))) == 3
    again = wf.flow_inputs(t.iloc[[2, 0]], folder=cache)  # read back, nothing computed
    assert calls == [(3, "default")]
    np.testing.assert_array_equal(again, X[[2, 0]])
    wf.flow_inputs(t, folder=cache, params={"preset": "fast"})  # other parameters: new keys
    assert calls[-1] == (3, "fast") and len(list(cache.glob("*.npy"))) == 6
    memo: dict = {}
    wf.flow_inputs(t, params={"preset": "fast"}, memo=memo)
    wf.flow_inputs(t.iloc[:1], params={"preset": "fast"}, memo=memo)  # from memory
    assert len(calls) == 3 and len(memo) == 3


def test_input_cache_follows_the_bytes_of_the_frames(monkeypatch, tmp_path):
    """A frame replaced by one of the same size with its mtime put back (``cp -p``,
    ``rsync -a``) is not served from the cache: that clip's input is computed again."""
    calls = []

    def fake(rows, *, size, strain, n_jobs, face_size, **kw):
        calls.append(list(rows["clip"]))
        return np.stack([np.full((*size, 3), 1, np.uint8) for _ in range(len(rows))])

    monkeypatch.setattr("merkit.workflows.train.flow_images", fake)
    t = _table(tmp_path / "data")
    wf.flow_inputs(t, folder=tmp_path / "cache")
    frame = tmp_path / "data" / "clip1" / "img3.png"
    before = frame.stat()
    img = cv2.imread(str(frame), cv2.IMREAD_GRAYSCALE)
    ok, data = cv2.imencode(".png", 255 - img)
    assert ok and len(data) == before.st_size
    frame.write_bytes(data.tobytes())
    os.utime(frame, ns=(before.st_atime_ns, before.st_mtime_ns))
    wf.flow_inputs(t, folder=tmp_path / "cache")
    assert calls == [["EP00", "EP01", "EP02"], ["EP01"]]
    wf.flow_inputs(t, folder=tmp_path / "cache")  # now every clip is cached again
    assert len(calls) == 2


def test_face_not_found_suggests_no_align(monkeypatch, tmp_path):
    def fail(rows, **kw):
        raise FaceNotFoundError("flow of sample CASME2/02/EP05_03f: no face found")

    monkeypatch.setattr("merkit.workflows.train.flow_images", fail)
    with pytest.raises(ValueError, match=r"EP05_03f: no face found.*--no-align"):
        wf.flow_inputs(_table(tmp_path))


def test_history_blocks_replace_their_own_key(tmp_path):
    path = tmp_path / "history.csv"

    def block(fold, seed, loss, val=False):
        d = {"epoch": [1, 2], "loss": [loss, loss / 2], "accuracy": [0.1, 0.2],
             "lr": [1e-3, 1e-3]}  # fmt: skip
        if val:
            d["val_loss"] = [9.0, 8.0]
        return pd.DataFrame(d).assign(protocol="loso", task="SAMM-4", method="fr", seed=seed,
                                      fold=fold)  # fmt: skip

    write_history(path, [block("SAMM/006", 0, 4.0), block("SAMM/007", 0, 3.0)])
    got = write_history(path, [block("SAMM/006", 0, 2.0, val=True), block("SAMM/006", 1, 1.0)])
    assert list(got.columns) == [*HISTORY_COLUMNS, "val_loss"]
    back = pd.read_csv(path, dtype={"fold": str})
    assert len(back) == 6
    first = back[(back["fold"] == "SAMM/006") & (back["seed"] == 0)]
    assert first["loss"].tolist() == [2.0, 1.0] and first["val_loss"].tolist() == [9.0, 8.0]
    assert back[back["fold"] == "SAMM/007"]["val_loss"].isna().all()
    assert not list(tmp_path.glob(".*tmp"))


def test_unknown_training_preset_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown training preset 'fr_sgd'; known: .*'fr_adam'"):
        wf.run_train(tmp_path, protocol="cde", model="fr", flows_dir=tmp_path / "none",
                     preset="fr_sgd", progress=False)  # fmt: skip


def test_class_weight_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"class_weight='auto'; expected 'none' or 'balanced'"):
        wf.run_train(tmp_path, protocol="cde", model="fr", flows_dir=tmp_path / "none",
                     class_weight="auto", progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="au protocol is multi-label: it takes no class weights"):
        wf.run_train(tmp_path, protocol="au", model="fr", data_dir=tmp_path,
                     class_weight="balanced", progress=False)  # fmt: skip
