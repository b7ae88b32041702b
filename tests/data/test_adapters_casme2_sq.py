"""CAS(ME)^2 adapter: the real coding sheet (no header, naming-rule sheets) with the long
videos' frames faked in tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from merkit.data.adapters.casme2_sq import find_root, load_casme_sq, read_casme_sq_sheet
from merkit.data.schema import SchemaError
from tests.data._files import link_numbered

SHEETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
SHEET = "CASME_sq_gt.xlsx"
REAL = SHEETS / "casme2_sq" / SHEET
JPG = cv2.imencode(".jpg", np.full((6, 6), 40, np.uint8))[1].tobytes()
#: video titles of the release (the adapter only relies on the "<NN>_<code>" prefix)
TITLES = {"0101": "disgustingteeth", "0102": "eatingworms", "0401": "girlcrashing",
          "0402": "beatingpregnantwoman", "0502": "funnyerrors", "0503": "unnyfarting",
          "0505": "funnyinnovations", "0507": "climbingthewall", "0508": "funnydunkey"}  # fmt: skip


def link_frames(folder: Path, first: int, last: int, master: Path, name: str = "img{}.jpg"):
    link_numbered(folder, first, last, name, master)


def write_workbook(path: Path, main: list[list], rule1: list[list], rule2: list[list]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "CASFEcode_final"
    for r in main:
        ws.append(r)
    for title, rows in (("naming rule1", rule1), ("naming rule2", rule2)):
        s = wb.create_sheet(title)
        for r in rows:
            s.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    """``<root>/CASME_sq`` with the real sheet and rawpic/ frames covering the 57 clips."""
    if not REAL.exists():
        pytest.skip(f"real CAS(ME)^2 coding sheet not available at {REAL}")
    root = tmp_path_factory.mktemp("casme_sq_real")
    sq = root / "CASME_sq"
    sq.mkdir()
    (sq / SHEET).symlink_to(REAL.resolve())
    master = root / "master.jpg"
    master.write_bytes(JPG)
    for r in read_casme_sq_sheet(REAL).itertuples(index=False):
        video = f"{r.video_prefix}{TITLES[r.video_code]}"
        link_frames(sq / "rawpic" / r.subject / video, r.onset - 3, r.offset + 3, master)
    return root


def test_real_sheet(real_root):
    table = load_casme_sq(real_root)
    assert len(table) == 57
    assert table["subject"].nunique() == 14
    assert set(table["expression_type"]) == {"micro-expression"}
    first = table.iloc[0]
    assert (first["subject"], first["clip"], first["participant"]) == ("CASME_SQ/s15",
                                                                       "disgust2_3", 1)  # fmt: skip
    assert (first["onset"], first["apex"], first["offset"], first["aus"]) == (699, 703, 707, (43,))
    assert (first["emotion"], first["self_report"], first["video_code"]) == ("others", "disgust",
                                                                             "0102")  # fmt: skip
    assert first["frames_dir"] == str(real_root / "CASME_sq" / "rawpic" / "s15" /
                                      "15_0102eatingworms")  # fmt: skip
    assert (table["n_frames"] == table["offset"] - table["onset"] + 1).all()
    assert set(table["fps"]) == {30.0} and set(table["camera"]) == {"colour"}
    assert table["emotion"].value_counts().to_dict() == {
        "negative": 21, "others": 19, "surprise": 9, "positive": 8,
    }  # fmt: skip
    assert table["subject"].value_counts()["CASME_SQ/s27"] == 11
    assert table["apex"].dtype == "Int64" and table["apex"].notna().all()
    s40 = table[table["participant"] == 21]
    assert s40[["subject", "clip", "aus"]].values.tolist() == [
        ["CASME_SQ/s38", "happy4_6", (12, 38)]
    ]


def test_read_all_expressions():
    if not REAL.exists():
        pytest.skip(f"real CAS(ME)^2 coding sheet not available at {REAL}")
    every = read_casme_sq_sheet(REAL, micro_only=False)
    assert len(every) == 357
    assert every["expression_type"].value_counts().to_dict() == {
        "macro-expression": 300, "micro-expression": 57,
    }  # fmt: skip
    assert (every["offset"] == 0).sum() == 44  # macro-expressions without an offset
    assert every["subject"].nunique() == 22
    assert every["sheet_row"].tolist() == list(range(1, 358))


def small(root: Path, main: list[list], *, code=101, frames=True) -> Path:
    sq = root / "CAS(ME)^2"
    rule1 = [[15, "s15", 1] for _ in main]
    write_workbook(sq / "CAS(ME)^2code_final.xlsx", main, rule1, [[code, "disgust1"],
                                                                  ["0502", "happy1"]])  # fmt: skip
    if frames:
        master = root / "m.jpg"
        master.write_bytes(JPG)
        link_frames(
            sq / "rawpic" / "S15" / "15_0101disgustingteeth", 1, 60, master, "img{:03d}.jpg"
        )
    return sq


ROW = [1, "disgust1_1", 10, 14, 20, "4+7", "negative", "micro-expression", "disgust"]


def test_numeric_code_padded_names_and_macro_rows(tmp_path):
    macro = [1, "happy1_1", 5, 9, 0, 12, "positive", "macro-expression", "happiness"]
    small(tmp_path, [ROW, macro])
    table = load_casme_sq(tmp_path)
    assert table[["subject", "clip", "video_code", "n_frames"]].values.tolist() == [
        ["CASME_SQ/s15", "disgust1_1", "0101", 11]
    ]
    assert table["frames_dir"].iloc[0].endswith("rawpic/S15/15_0101disgustingteeth")
    assert find_root(tmp_path) == tmp_path / "CAS(ME)^2"


def test_missing_video_and_frames(tmp_path, caplog):
    other = [1, "happy1_2", 50, 52, 70, 12, "positive", "micro-expression", "happiness"]
    late = [1, "disgust1_2", 55, 58, 65, 4, "negative", "micro-expression", "disgust"]
    small(tmp_path, [ROW, other, late])
    with pytest.raises(SchemaError) as err:
        load_casme_sq(tmp_path)
    msg = str(err.value)
    assert "2 clip(s)" in msg
    assert "s15/happy1_2: no video folder s15/15_0502* in" in msg
    assert "s15/disgust1_2: frames 61-65 of [55, 65] missing" in msg
    with caplog.at_level(logging.WARNING):
        table = load_casme_sq(tmp_path, missing="skip")
    assert table["clip"].tolist() == ["disgust1_1"]


def test_ambiguous_video_folder(tmp_path):
    sq = small(tmp_path, [ROW])
    (sq / "rawpic" / "S15" / "15_0101copy").mkdir()
    (sq / "rawpic" / "S15" / "15_01010other").mkdir()  # another code: not a match
    with pytest.raises(SchemaError, match=r"several video folders of s15 start with 15_0101: "):
        load_casme_sq(tmp_path)


def test_bad_rows_name_the_row(tmp_path):
    sq = small(tmp_path, [ROW], frames=False)
    path = sq / "CAS(ME)^2code_final.xlsx"
    rule2 = [["0101", "disgust1"]]
    write_workbook(path, [[1, "anger9_1", *ROW[2:]]], [[15, "s15", 1]], rule2)
    with pytest.raises(SchemaError, match=r"row 1 \(anger9_1\): expression name 'anger9_1' is not"):
        read_casme_sq_sheet(path)
    write_workbook(path, [[2, *ROW[1:]]], [[15, "s15", 1]], rule2)
    with pytest.raises(SchemaError, match=r"row 1 \(disgust1_1\): participant 2 is not in"):
        read_casme_sq_sheet(path)
    write_workbook(path, [ROW, ROW], [[15, "s15", 1], [16, "s16", 1]], rule2)
    with pytest.raises(SchemaError, match=r"participant 1 is mapped to both s15 and s16"):
        read_casme_sq_sheet(path)
    write_workbook(path, [ROW], [[15, "s16", 1]], rule2)
    with pytest.raises(SchemaError, match=r"folder 's16' does not match its number 15"):
        read_casme_sq_sheet(path)
    write_workbook(path, [[*ROW[:6], None, *ROW[7:]]], [[15, "s15", 1]], rule2)
    with pytest.raises(SchemaError, match=r"row 1 \(s15/disgust1_1\): emotion \(7th column\)"):
        read_casme_sq_sheet(path)
    write_workbook(path, [ROW], [[15, "s15", 1]], [])
    with pytest.raises(SchemaError, match=r"no sheet holding 'naming rule2'"):
        read_casme_sq_sheet(path)


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CAS\(ME\)\^2 root .*nowhere does not exist"):
        load_casme_sq(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)\^2 data in .*: expected a folder"):
        load_casme_sq(tmp_path)
    sq = small(tmp_path, [ROW], frames=False)
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)\^2 frame folder in .*rawpic"):
        load_casme_sq(tmp_path)
    (sq / "CAS(ME)^2code_final.xlsx").unlink()
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)\^2 coding sheet \(CASME_sq_gt"):
        load_casme_sq(tmp_path)


def test_discover(tmp_path):
    from merkit.data.adapters.casme2_sq import discover

    assert discover(tmp_path) == []
    (tmp_path / "CASME_sq").mkdir()
    assert discover(tmp_path) == []
    (tmp_path / "CASME_sq" / "rawpic").mkdir()
    assert discover(tmp_path) == ["CASME_SQ"]
