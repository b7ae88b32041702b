"""Synthetic SAMM- and DFME-style databases, read back by the real adapters."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from merkit.data.adapters.dfme import load_dfme, micro_mask
from merkit.data.adapters.samm import load_samm
from merkit.data.labels import DFME7, apply_scheme, au_labels
from merkit.data.synthetic import (
    DATABASES,
    DEFAULT_DATABASES,
    SIZES,
    is_synthesized,
    synthesize,
)
from merkit.data.synthetic.writer import (
    DFME_EMOTION_AUS,
    SAMM_EMOTION_AUS,
    dfme_parts,
    samm_objective_class,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict, pd.DataFrame]:
    out = tmp_path_factory.mktemp("synth_samm_dfme")
    summary = synthesize(out, seed=0, size="tiny", databases=("SAMM", "DFME"))
    man = pd.DataFrame(json.loads(Path(summary["manifest"]).read_text())["clips"])
    return out, summary, man


def _expected_aus(text: object) -> tuple[tuple[int, ...], tuple[str, ...]]:
    pairs = []
    for atom in str(text).split("+"):
        side = atom[0] if atom[0] in "LR" else ""
        pairs.append((int(atom[len(side) :]), side))
    pairs.sort()
    return tuple(a for a, _ in pairs), tuple(s for _, s in pairs)


# --------------------------------------------------------------------------- names, sizes


def test_known_databases_and_default_unchanged():
    assert DATABASES == ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR", "SAMM", "DFME", "CASME1",
                         "4DME")  # fmt: skip
    assert DEFAULT_DATABASES == ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")
    assert SIZES["tiny"]["SAMM"] == {"subjects": 3, "clips": 3}
    assert SIZES["tiny"]["DFME"] == {"subjects": 5, "clips": 2}
    assert SIZES["large"]["SAMM"]["subjects"] * SIZES["large"]["SAMM"]["clips"] == 168


def test_dfme_parts_are_subject_disjoint_and_sized_like_the_release():
    parts = dfme_parts(0, 40)
    assert (parts.count("train"), parts.count("testA"), parts.count("testB")) == (28, 6, 6)
    assert dfme_parts(0, 5).count("train") == 3
    with pytest.raises(ValueError, match=">= 3 subjects"):
        dfme_parts(0, 2)


@pytest.mark.parametrize(
    ("size", "match"),
    [
        ({"DFME": {"subjects": 2}}, "3..9999"),
        ({"SAMM": {"subjects": 0}}, ">= 1"),
        ({"SAMM": {"subjects": 995}}, "at most 994"),
        ({"DFME": {"clips": 100}}, "at most 99"),
    ],
)
def test_invalid_sizes(tmp_path, size, match):
    with pytest.raises(ValueError, match=match):
        synthesize(tmp_path, size=size, databases=("DFME",))


def test_objective_classes_follow_the_au_sets():
    assert samm_objective_class([(6, ""), (12, "L")]) == 1
    assert samm_objective_class([(1, ""), (2, "")]) == 2
    assert samm_objective_class([(4, ""), (7, "")]) == 3
    assert samm_objective_class([(7, ""), (10, "")]) == 4
    assert samm_objective_class([(15, ""), (17, "")]) == 5
    assert samm_objective_class([(1, ""), (2, ""), (4, "")]) == 6
    assert samm_objective_class([(2, "L")]) == 7
    for table in (SAMM_EMOTION_AUS, DFME_EMOTION_AUS):
        for combos in table.values():
            assert sum(w for _, w in combos) == pytest.approx(1.0)
    assert set(DFME_EMOTION_AUS) == set(DFME7)


# --------------------------------------------------------------------------- SAMM


def test_samm_adapter_reads_every_clip(tiny):
    out, summary, man = tiny
    info = summary["databases"]["SAMM"]
    assert (info["subjects"], info["clips"], info["fps"], info["camera"]) == (3, 9, 200.0, "grey")
    table = load_samm(out)
    ours = man[man["database"] == "SAMM"].set_index("clip")
    assert len(table) == 9 and set(table["clip"]) == set(ours.index)
    assert table.attrs["fixes_applied"] == []
    for r in table.itertuples(index=False):
        m = ours.loc[r.clip]
        sid = r.subject.split("/")[1]
        assert len(sid) == 3 and r.clip.startswith(sid + "_") and m["subject"] == sid
        assert (r.onset, r.apex, r.offset) == (m["onset"], m["apex"], m["offset"])
        assert r.emotion == m["emotion"] and r.fps == 200.0 and r.camera == "grey"
        assert (tuple(r.aus), tuple(r.au_sides)) == _expected_aus(m["aus"])
        assert r.objective_class == m["objective_class"]
        assert r.inducement_code == int(r.clip.split("_")[1]) == m["inducement_code"]
        assert r.n_frames == r.offset - r.onset + 1
        folder = Path(r.frames_dir)
        first = folder / f"{sid}_{r.onset:05d}.jpg"
        assert first.is_file() and folder.parent.parent == out / "SAMM"
    assert table["n_frames"].sum() == info["frames"]


def test_samm_frames_are_grey_and_high_resolution(tiny):
    import cv2

    out, _, _ = tiny
    path = next((out / "SAMM").rglob("*.jpg"))
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.shape == (180, 272) and img.dtype == np.uint8
    assert 60 < img.mean() < 220


def test_samm_sheet_mirrors_the_real_sheet(tiny):
    out, _, man = tiny
    path = out / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["MICRO_ONLY"]
    ws = wb["MICRO_ONLY"]
    header = [c.value for c in ws[14]]
    assert header == ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
                      "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
                      "Objective Classes", "Notes"]  # fmt: skip
    row = ws[15]
    assert row[0].data_type == "s" and row[0].number_format == "@" and len(row[0].value) == 3
    assert [row[i].data_type for i in (2, 3, 4, 5, 10)] == ["n"] * 5
    assert row[6].value == "=SUM(F15-D15)+1" and row[7].value == "Micro - 1/2"
    assert row[9].value in {e.capitalize() for e in SAMM_EMOTION_AUS}
    # pandas sees the formula's cached value
    df = pd.read_excel(path, header=13, dtype={"Subject": str})
    assert df["Subject"].str.fullmatch(r"\d{3}").all()
    assert (df["Duration"] == df["Offset Frame"] - df["Onset Frame"] + 1).all()
    assert df["Notes"].fillna("").isin(["", "Blinks"]).all()
    blinks = man[man["database"] == "SAMM"].set_index("clip")["blink"]
    assert (df.set_index("Filename")["Notes"].eq("Blinks") == blinks.loc[df["Filename"]]).all()


def test_samm_header_equals_the_real_sheet(tiny):
    real = SHARED / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx"
    if not real.is_file():
        pytest.skip(f"real SAMM sheet not found at {real}")
    out, _, _ = tiny
    theirs = openpyxl.load_workbook(real, read_only=True)
    ours = openpyxl.load_workbook(out / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx", read_only=True)
    assert ours.sheetnames == theirs.sheetnames
    rows = [list(wb["MICRO_ONLY"].iter_rows(min_row=14, max_row=15)) for wb in (ours, theirs)]
    assert [c.value for c in rows[0][0]] == [c.value for c in rows[1][0]]
    assert [c.data_type for c in rows[0][1]][:11] == [c.data_type for c in rows[1][1]][:11]


def test_samm_four_class_scheme(tiny):
    out, _, man = tiny
    table = apply_scheme(load_samm(out), "four_class")
    assert len(table) == 9  # no clip is dropped
    native = man[man["database"] == "SAMM"].set_index("clip")["emotion"]
    groups = {"happiness": "positive", "surprise": "surprise", "other": "others"}
    for r in table.itertuples(index=False):
        assert r.label == groups.get(native[r.clip], "negative")


# --------------------------------------------------------------------------- DFME


def test_dfme_adapter_reads_every_clip(tiny):
    out, summary, man = tiny
    info = summary["databases"]["DFME"]
    assert info["fps"] == [200.0, 300.0, 500.0] and info["clips"] == 10
    assert info["parts"] == {"train": {"subjects": 3, "clips": 6},
                             "testA": {"subjects": 1, "clips": 2},
                             "testB": {"subjects": 1, "clips": 2}}  # fmt: skip
    table = load_dfme(out)
    ours = man[man["database"] == "DFME"].set_index("clip")
    assert len(table) == 10 and set(table["clip"]) == set(ours.index)
    for r in table.itertuples(index=False):
        m = ours.loc[r.clip]
        assert r.subject == f"DFME/{m['subject'][3:]}" and r.part == m["part"]
        assert (r.onset, r.apex, r.offset) == (m["onset"], m["apex"], m["offset"])
        assert r.fps == m["fps"] and r.emotion == m["emotion"]
        assert r.emotion_id == DFME7.index(r.emotion) == m["emotion_id"]
        assert (tuple(r.aus), tuple(r.au_sides)) == _expected_aus(m["aus"])
        assert r.duration_ms == pytest.approx((r.offset - r.onset + 1) / m["fps"] * 1000)
        # a clip folder starts at frame 0 and runs a few frames past the offset
        assert r.n_frames == m["n_frames"] == m["last_frame"] + 1
        assert m["first_frame"] == 0 and r.offset <= m["last_frame"] <= r.offset + 0.03 * r.fps
        assert (Path(r.frames_dir) / "00000.png").is_file()
    # one frame rate per person, parts subject-disjoint, all micro-expressions
    assert (table.groupby("subject")["fps"].nunique() == 1).all()
    assert (table.groupby("subject")["part"].nunique() == 1).all()
    assert micro_mask(table).all() and table["duration_ms"].max() <= 500.0
    assert table["n_frames"].sum() == info["frames"]


def test_dfme_frames_and_layout(tiny):
    import cv2

    out, _, _ = tiny
    assert sorted(p.name for p in (out / "DFME").iterdir()) == [
        "testA_full_with_AU.xlsx", "testB_full_with_AU.xlsx", "test_A_data", "test_B_data",
        "train_data", "training_full_with_AU.xlsx",
    ]  # fmt: skip
    img = cv2.imread(str(next((out / "DFME" / "train_data").rglob("*.png"))), -1)
    assert img.shape == (176, 144, 3) and img.dtype == np.uint8


def test_dfme_sheets_have_the_released_columns_and_cell_types(tiny):
    out, _, _ = tiny
    cols = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion",
            "EmotionId", "Fps", "AU"]  # fmt: skip
    for name in ("training_full_with_AU.xlsx", "testA_full_with_AU.xlsx",
                 "testB_full_with_AU.xlsx"):  # fmt: skip
        wb = openpyxl.load_workbook(out / "DFME" / name)
        assert wb.sheetnames == ["Sheet1"]
        ws = wb["Sheet1"]
        assert [c.value for c in ws[1]] == cols
        row = ws[2]
        assert [c.data_type for c in row[:8]] == ["s", "s", "n", "n", "n", "s", "n", "n"]
        assert row[0].value.startswith("sub") and len(row[0].value) == 7
        assert row[0].font.name == "宋体" and ws[1][0].font.b


@pytest.mark.parametrize(
    "name", ["training_full_with_AU.xlsx", "testA_full_with_AU.xlsx", "testB_full_with_AU.xlsx"]
)
def test_dfme_sheets_have_the_real_sheets_names_and_header(name, request):
    real = SHARED / "dfme" / name
    if not real.is_file():
        pytest.skip(f"real DFME sheet not found at {real}")
    out, _, _ = request.getfixturevalue("tiny")
    ours = openpyxl.load_workbook(out / "DFME" / name, read_only=True)
    theirs = openpyxl.load_workbook(real, read_only=True)
    assert ours.sheetnames == theirs.sheetnames == ["Sheet1"]
    header = [c.value for c in next(theirs["Sheet1"].iter_rows(max_row=1))]
    assert [c.value for c in next(ours["Sheet1"].iter_rows(max_row=1))] == header


def test_dfme7_scheme_and_au12(tiny):
    out, _, man = tiny
    table = apply_scheme(load_dfme(out), "dfme7")
    assert len(table) == 10
    assert table["y"].tolist() == table["emotion_id"].astype(int).tolist()
    Y, names = au_labels(table, "au12")
    assert names[:3] == ["AU1", "AU2", "AU4"] and Y.shape == (10, len(names))
    ours = man[man["database"] == "DFME"].set_index("clip")
    for i, clip in enumerate(table["clip"]):
        applied = set(_expected_aus(ours.loc[clip, "aus"])[0])
        assert {int(n[2:]) for n, v in zip(names, Y[i], strict=True) if v} == applied & {
            int(n[2:]) for n in names
        }
    assert Y.sum() == sum(
        len(set(_expected_aus(a)[0]) & {int(n[2:]) for n in names}) for a in ours["aus"]
    )


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_samm_and_dfme(tiny, tmp_path):
    out, _, _ = tiny
    synthesize(tmp_path, seed=0, size="tiny", databases=("DFME", "SAMM"))
    for db in ("SAMM", "DFME"):
        assert _tree_hash(out / db) == _tree_hash(tmp_path / db)
    assert (out / "synthetic.json").read_bytes() == (tmp_path / "synthetic.json").read_bytes()


def test_other_seed_differs_and_cdmer_databases_do_not_move(tmp_path):
    size = {"preset": "tiny", "SAMM": {"subjects": 1, "clips": 2},
            "DFME": {"subjects": 3, "clips": 1}, "CASME2": {"subjects": 1, "clips": 2}}  # fmt: skip
    a = synthesize(tmp_path / "a", seed=1, size=size, databases=("CASME2", "SAMM"))
    b = synthesize(tmp_path / "b", seed=1, size=size, databases=("CASME2",))
    c = synthesize(tmp_path / "c", seed=2, size=size, databases=("SAMM",))
    assert _tree_hash(tmp_path / "a" / "CASME2") == _tree_hash(tmp_path / "b" / "CASME2")
    assert _tree_hash(tmp_path / "a" / "SAMM") != _tree_hash(tmp_path / "c" / "SAMM")
    assert a["databases"]["SAMM"]["clips"] == c["databases"]["SAMM"]["clips"] == 2
    # the manifest of a CDMER-only run carries no SAMM / DFME size entries
    man_b = json.loads(Path(b["manifest"]).read_text())
    assert "SAMM" not in man_b["size"] and "DFME" not in man_b["size"]
    assert set(man_b["cameras"]) == {"CASME2"}
    assert is_synthesized(tmp_path / "a", seed=1, size=size, databases=("CASME2", "SAMM"))
    assert not is_synthesized(tmp_path / "b", seed=1, size=size, databases=("SAMM",))
    assert not is_synthesized(tmp_path / "a", seed=2, size=size, databases=("SAMM",))
