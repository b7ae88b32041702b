"""The adapter registry: ADAPTERS, load_dataset and discover."""

from __future__ import annotations

import json
import types
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

import merkit.data.adapters as adapters
from merkit.data.adapters import (
    ADAPTERS,
    DATABASES,
    EXPECTED_LAYOUT,
    discover,
    load_dataset,
    smic_clip_name,
    smic_subject_id,
)
from merkit.data.adapters._common import AdapterSpec, child_dir
from merkit.data.labels import apply_scheme, parse_aus

JPG = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes()


def frames(folder: Path, first: int, last: int, pattern: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        (folder / pattern.format(n)).write_bytes(JPG)


def tiny_casme2(root: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
               "Estimated Emotion"])  # fmt: skip
    ws.append(["01", "EP02_01f", 46, 59, 86, "12", "happiness"])
    ws.append(["02", "EP01_11f", 10, 15, 30, "4+L10", "disgust"])
    (root / "CASME2").mkdir(parents=True)
    wb.save(root / "CASME2" / "CASME2-coding-20140508.xlsx")
    frames(root / "CASME2" / "Cropped" / "sub01" / "EP02_01f", 46, 86, "img{}.jpg")
    frames(root / "CASME2" / "Cropped" / "sub02" / "EP01_11f", 10, 30, "img{}.jpg")


def tiny_smic(root: Path, cameras=("HS", "VIS")) -> None:
    for cam in cameras:
        frames(root / "SMIC" / cam / "s1" / "micro" / "positive" / "s1_po_01", 5, 20,
               "image{:06d}.jpg")  # fmt: skip
        frames(root / "SMIC" / cam / "s3" / "micro" / "negative" / "s3_ne_02", 7, 15,
               "image{:06d}.jpg")  # fmt: skip


def test_registry_names():
    assert list(ADAPTERS) == [
        "CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR", "SAMM", "CASME3_A", "CASME3_C", "CASME_SQ",
        "MMEW", "DFME", "MEGC2019", "CASME1", "4DME",
    ]  # fmt: skip


def test_registry_is_built_from_the_module_declarations():
    names = [name for module in DATABASES for name in module.ADAPTER.loaders]
    assert names == list(ADAPTERS)
    assert all(ADAPTERS[n] is m.ADAPTER.loaders[n] for m in DATABASES for n in m.ADAPTER.loaders)
    assert EXPECTED_LAYOUT.startswith("CASME2/ with a coding sheet CASME2-coding-*.xlsx, SMIC/")
    assert EXPECTED_LAYOUT.endswith(
        "DFME sheet, CASME/ with a coding sheet CASME-coding*.xlsx, or 4DME/ with its coding sheet"
    )


def _adapter_module(name: str, spec: AdapterSpec) -> types.ModuleType:
    module = types.ModuleType(name)
    module.ADAPTER = spec
    return module


def test_a_new_adapter_is_one_declaration(tmp_path, monkeypatch):
    """A database registered by its module's ADAPTER alone: discover and load_dataset
    find it, a database requiring it is asked only once it is found, and the layout
    message names it."""
    calls = []

    def load_tiny(root, **kw):
        calls.append((root, kw))
        return pd.DataFrame({"dataset": ["TINY"], "clip": ["t1"]})

    def find_tiny(root):
        return ["TINY"] if child_dir(root, "TINY") is not None else []

    tiny = _adapter_module("tiny", AdapterSpec(
        loaders={"TINY": load_tiny}, discover=find_tiny, layout="TINY/ with its clips",
    ))  # fmt: skip
    tiny_plus = _adapter_module("tiny_plus", AdapterSpec(
        loaders={"TINY_PLUS": load_tiny}, discover=lambda root: ["TINY_PLUS"], layout=None,
        requires=("TINY",),
    ))  # fmt: skip
    monkeypatch.setattr(adapters, "DATABASES", (*DATABASES, tiny, tiny_plus))

    tiny_casme2(tmp_path)
    assert discover(tmp_path) == ["CASME2"]  # TINY_PLUS needs TINY first
    (tmp_path / "TINY").mkdir()
    assert discover(tmp_path) == ["CASME2", "TINY", "TINY_PLUS"]
    table = load_dataset("tiny", tmp_path, missing="skip")
    assert table["clip"].tolist() == ["t1"]
    assert calls == [(tmp_path, {"missing": "skip"})]
    with pytest.raises(KeyError, match=r"known: \[.*'TINY', 'TINY_PLUS'\]"):
        load_dataset("TINY2", tmp_path)
    with pytest.raises(
        FileNotFoundError,
        match=r"CASME-coding\*\.xlsx, 4DME/ with its coding sheet, or TINY/ with its clips\)$",
    ):
        discover(tmp_path / "missing")


def test_a_dataset_name_is_declared_once(tmp_path, monkeypatch):
    twin = _adapter_module("twin", AdapterSpec(
        loaders={"SAMM": lambda root, **kw: None}, discover=lambda root: [], layout=None,
    ))  # fmt: skip
    monkeypatch.setattr(adapters, "DATABASES", (*DATABASES, twin))
    with pytest.raises(ValueError, match="dataset 'SAMM' is declared by two database adapters"):
        load_dataset("SAMM", tmp_path)


def test_discover_and_load_everything(tmp_path):
    tiny_casme2(tmp_path)
    tiny_smic(tmp_path)
    found = discover(tmp_path)
    assert found == ["CASME2", "SMIC_HS", "SMIC_VIS"]
    sizes = {name: len(load_dataset(name, tmp_path)) for name in found}
    assert sizes == {"CASME2": 2, "SMIC_HS": 2, "SMIC_VIS": 2}
    vis = load_dataset("smic_vis", tmp_path)  # case-insensitive
    assert vis["subject"].tolist() == ["SMIC_VIS/s1", "SMIC_VIS/s3"]
    assert set(vis["fps"]) == {25.0}
    c2 = load_dataset("CASME2", tmp_path, missing="skip")
    assert c2["aus"].tolist() == [(12,), (4, 10)]


def test_discover_inside_one_database_folder(tmp_path):
    tiny_casme2(tmp_path)
    tiny_smic(tmp_path, cameras=("NIR",))
    assert discover(tmp_path / "CASME2") == ["CASME2"]
    assert discover(tmp_path / "SMIC") == ["SMIC_NIR"]


def test_discover_nothing_and_errors(tmp_path):
    (tmp_path / "CASME2").mkdir()  # no coding sheet: not a database
    (tmp_path / "other").mkdir()
    assert discover(tmp_path) == []
    with pytest.raises(FileNotFoundError) as err:
        discover(tmp_path / "missing")
    assert str(err.value) == (
        f"data root {tmp_path / 'missing'} does not exist or is not a folder (expected a folder "
        f"holding {EXPECTED_LAYOUT})"
    )
    with pytest.raises(KeyError, match=r"unknown dataset 'CASME9'; known: \['4DME', 'CASME1'"):
        load_dataset("CASME9", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no SAMM data in .*: expected a folder"):
        load_dataset("SAMM", tmp_path)
    with pytest.raises(FileNotFoundError, match="data root .*missing does not exist"):
        load_dataset("CASME2", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no CASME II coding sheet CASME2-coding-"):
        load_dataset("CASME2", tmp_path)
    with pytest.raises(FileNotFoundError, match="no SMIC data in"):
        load_dataset("SMIC_HS", tmp_path)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> tuple[Path, dict]:
    synthetic = pytest.importorskip("merkit.data.synthetic")
    root = tmp_path_factory.mktemp("synthetic")
    summary = synthetic.synthesize(root, seed=1, size="tiny")
    return root, summary


def test_synthetic_round_trip(synthetic_root):
    """Every clip the generator writes is read back with its ground truth."""
    root, summary = synthetic_root
    manifest = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))["clips"]
    assert discover(root) == ["CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR"]
    for name in discover(root):
        table = load_dataset(name, root)
        truth = [c for c in manifest if c["database"] == name]
        assert len(table) == len(truth) == summary["databases"][name]["clips"] > 0
        by_clip = {(r["subject"], r["clip"]): r for r in table.to_dict("records")}
        for t in truth:
            if name == "CASME2":
                key = (f"CASME2/{t['subject']}", t["clip"])
            else:
                key = (f"{name}/{smic_subject_id(t['subject'])}", smic_clip_name(t["clip"]))
            row = by_clip[key]
            assert (row["onset"], row["offset"], row["emotion"]) == (
                t["onset"], t["offset"], t["emotion"],
            )  # fmt: skip
            assert row["frames_dir"] == str(root / t["frames_dir"])
            assert row["n_frames"] == t["offset"] - t["onset"] + 1
            assert row["fps"] == t["fps"] and row["camera"] == t["camera"]
            if name in ("CASME2", "SMIC_HS"):  # apex annotated in the sheet / list
                assert row["apex"] == t["apex"]
            else:
                assert pd.isna(row["apex"])
            if name == "CASME2":  # AUs are coded in the CASME2 sheet only
                assert row["aus"] == parse_aus(t["aus"])[0]
        classes = summary["databases"][name]["classes"]
        assert table["emotion"].value_counts().to_dict() == classes
        labelled = apply_scheme(table, "cdmer3")  # every synthetic emotion is known to it
        n_dropped = sum(sum(v.values()) for v in labelled.attrs["dropped"].values())
        assert len(labelled) + n_dropped == len(table)
        assert n_dropped == (0 if name.startswith("SMIC") else
                             classes.get("others", 0) + classes.get("repression", 0))  # fmt: skip
    vis = load_dataset("SMIC_VIS", root)
    hs = load_dataset("SMIC_HS", root)
    # VIS films a subset of the HS people: same id part, same clip names
    assert {s.split("/")[1] for s in vis["subject"]} <= {s.split("/")[1] for s in hs["subject"]}
    assert set(vis["clip"]) <= set(hs["clip"])
