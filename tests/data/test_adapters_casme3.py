"""CAS(ME)^3 adapter (parts A and C): the real ME sheets with frames faked in tmp_path."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.casme3 import (
    casme3_a_clip_id,
    find_root,
    find_sheet,
    load_casme3_a,
    load_casme3_c,
    read_part_a_sheet,
    read_part_c_sheet,
)
from merkit.data.schema import SchemaError
from tests.data._files import link_numbered, write_xlsx

SHEETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations" / "casme3"
SHEET_A = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
SHEET_A_FIXED = "cas(me)3_part_A_ME_label_JpgIndex_v2_corrected.xlsx"
SHEET_C = "CAS(ME)3_part_C_ME.xlsx"
JPG = cv2.imencode(".jpg", np.full((6, 6), 70, np.uint8))[1].tobytes()
HEADER_A = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
HEADER_C = ["sub", "count", "onset", "offset", "au", "emotion"]
KNOWN_ERRORS = {
    "CASME3_A/spNO.149/d_112",
    "CASME3_A/spNO.216/d_3647",
    "CASME3_A/spNO.40/e_1812",
    "CASME3_A/spNO.40/e_2327",
}


def link_frames(folder: Path, first: int, last: int, master: Path) -> None:
    """``<n>.jpg`` for n in first..last, hard links of one tiny image."""
    link_numbered(folder, first, last, "{}.jpg", master)


def write_sheet(path: Path, header: list, rows: list[list], title: str = "label") -> Path:
    return write_xlsx(path, header, rows, title)


def need(*names: str) -> None:
    for name in names:
        if not (SHEETS / name).exists():
            pytest.skip(f"real CAS(ME)^3 sheet {name} not available in {SHEETS}")


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    """``<root>/CASME3`` with the three real sheets (symlinked), part-A task videos whose
    frames cover every clip of the corrected sheet, and part-C videos likewise."""
    need(SHEET_A, SHEET_A_FIXED, SHEET_C)
    root = tmp_path_factory.mktemp("casme3_real")
    c3 = root / "CASME3"
    (c3 / "annotation").mkdir(parents=True)
    for name in (SHEET_A, SHEET_A_FIXED):
        (c3 / "annotation" / name).symlink_to((SHEETS / name).resolve())
    (c3 / SHEET_C).symlink_to((SHEETS / SHEET_C).resolve())
    master = root / "master.jpg"
    master.write_bytes(JPG)
    frames_a = c3 / "part_A" / "data" / "part_A"
    for r in read_part_a_sheet(SHEETS / SHEET_A_FIXED).itertuples(index=False):
        # folders lower case: the sheet's 'J' (spNO.14) must be found ignoring case
        link_frames(frames_a / r.subject / r.filename.lower() / "color", r.onset, r.offset, master)
    (frames_a / "spNO.1" / "a" / "depth").mkdir()
    frames_c = c3 / "part_C"
    for r in read_part_c_sheet(SHEETS / SHEET_C).itertuples(index=False):
        subject = "7" if r.subject == "07" else r.subject  # one unpadded subject folder
        link_frames(frames_c / subject / "a" / "color", r.onset, r.offset, master)
    return root


def test_real_part_a(real_root):
    table = load_casme3_a(real_root)
    assert table.attrs["source"].endswith(SHEET_A_FIXED)  # the corrected copy is preferred
    assert len(table) == 860
    assert table["subject"].nunique() == 94
    assert not table.duplicated(["subject", "clip"]).any()
    first = table.iloc[0]
    assert (first["subject"], first["clip"], first["filename"]) == ("CASME3_A/spNO.1", "a_355", "a")
    assert (first["onset"], first["apex"], first["offset"], first["aus"]) == (355, 359, 360, (5,))
    frames = real_root / "CASME3" / "part_A" / "data" / "part_A" / "spNO.1" / "a"
    assert first["frames_dir"] == str(frames / "color")
    assert first["depth_dir"] == str(frames / "depth")
    assert pd.isna(table["depth_dir"].iloc[1])
    assert (table["n_frames"] == table["offset"] - table["onset"] + 1).all()
    assert set(table["fps"]) == {30.0} and set(table["camera"]) == {"colour"}
    assert table["emotion"].value_counts().to_dict() == {
        "disgust": 250, "surprise": 187, "others": 161, "fear": 86, "anger": 64, "sad": 57,
        "happy": 55,
    }  # fmt: skip
    assert table["objective_class"].value_counts().sort_index().tolist() == [15, 151, 234, 37, 47,
                                                                             3, 373]  # fmt: skip
    # one task video holds several clips: the id is <task>_<onset>
    sp1e = table[(table["subject"] == "CASME3_A/spNO.1") & (table["filename"] == "e")]
    assert sp1e["clip"].tolist() == ["e_62", "e_96"]
    j = table[table["filename"] == "J"]
    assert j["clip"].tolist() == ["j_1012"] and j["frames_dir"].iloc[0].endswith("spNO.14/j/color")
    t28 = table.set_index(["subject", "clip"]).loc[("CASME3_A/spNO.149", "d_112")]
    assert (t28["aus"], t28["au_sides"], t28["apex"]) == ((14, 28), ("", "T"), 160)


def test_uncorrected_part_a_is_caught(real_root):
    with pytest.raises(SchemaError) as err:
        load_casme3_a(real_root, sheet=SHEETS / SHEET_A, fixes=False)
    msg = str(err.value)
    assert set(re.findall(r"CASME3_A/spNO\.\d+/[a-m]_\d+", msg)) == KNOWN_ERRORS
    assert "offset is 0 or negative: CASME3_A/spNO.40/e_1812, CASME3_A/spNO.40/e_2327" in msg
    assert "onset after offset: CASME3_A/spNO.216/d_3647," in msg


def test_fixes_turn_the_official_sheet_into_the_corrected_one(real_root, caplog):
    corrected = load_casme3_a(real_root, sheet=SHEETS / SHEET_A_FIXED)
    with caplog.at_level(logging.INFO):
        fixed = load_casme3_a(real_root, sheet=SHEETS / SHEET_A)
    pd.testing.assert_frame_equal(fixed, corrected)  # every column, the re-derived id too
    assert fixed.attrs["fixes_applied"] == [
        "CASME3_A/spNO.149/d_112: apex 83 -> 160",
        "CASME3_A/spNO.216/d_3647: onset 3647 -> 2647",
        "CASME3_A/spNO.40/e_1812: offset 0 -> 1845",
        "CASME3_A/spNO.40/e_2327: offset 0 -> 2403",
    ]
    applied = [r for r in caplog.records if r.getMessage().startswith("applied fix")]
    assert len(applied) == 4
    assert "CASME3_A/spNO.216/d_3647: clip id is now d_2647" in caplog.text
    assert corrected.attrs["fixes_applied"] == []  # nothing to do on the corrected copy


def test_real_part_c(real_root):
    table = load_casme3_c(real_root)
    assert len(table) == 165
    assert table["subject"].nunique() == 30
    assert table["apex"].isna().all() and table["apex"].dtype == "Int64"
    first = table.iloc[0]
    assert (first["subject"], first["clip"], first["count"]) == ("CASME3_C/01", "01_1", 1)
    assert (first["onset"], first["offset"], first["aus"], first["au_sides"]) == (
        373, 385, (4, 5), ("R", ""),
    )  # fmt: skip
    assert table["emotion"].value_counts().to_dict() == {
        "negative": 99, "surprise": 30, "others": 20, "positive": 16,
    }  # fmt: skip
    assert (table["n_frames"] == table["offset"] - table["onset"] + 1).all()
    seven = table[table["subject"] == "CASME3_C/07"]["frames_dir"]
    assert len(seven) > 0 and seven.str.endswith("part_C/7/a/color").all()
    # comma lists with a trailing comma and a full-width comma
    aus = dict(zip(table["clip"], table["aus"], strict=True))
    assert (4, 11) in aus.values() and (1, 10, 11, 38) in aus.values()


def test_sheet_discovery(real_root, caplog):
    c3 = find_root(real_root)
    assert c3 == real_root / "CASME3"
    with caplog.at_level(logging.INFO):
        assert find_sheet(c3, "A").name == SHEET_A_FIXED
    assert "2 part A sheets" in caplog.text
    assert find_sheet(c3, "C").name == SHEET_C
    assert find_sheet(c3, "A", f"annotation/{SHEET_A}").name == SHEET_A


def test_clip_id():
    assert casme3_a_clip_id("J", 1012) == "j_1012"
    assert casme3_a_clip_id(" e ", 96) == "e_96"


def test_frames_pattern_and_missing_frames(tmp_path, caplog):
    c3 = tmp_path / "CAS(ME)3"
    rows = [
        ["spNO.5", "b", "10", "12", "20", "R12", "I", "Others"],
        ["spNO.5", "b", 30, 31, 40, 4, "III", "disgust"],
        ["spNO.6", "c", 5, 7, 9, "13?", "VII", "happy"],
    ]
    write_sheet(c3 / SHEET_A, HEADER_A, rows)
    master = tmp_path / "m.jpg"
    master.write_bytes(JPG)
    rgb = c3 / "RGB"
    link_frames(rgb / "spNO.5" / "b", 1, 25, master)  # 30..40 absent
    link_frames(rgb / "spNO.6" / "c", 5, 9, master)
    with pytest.raises(SchemaError) as err:
        load_casme3_a(tmp_path, frames="RGB", frames_pattern="{subject}/{filename}")
    msg = str(err.value)
    assert "1 clip(s)" in msg and "spNO.5/b_30: frames 30-40 of [30, 40] missing" in msg
    assert "(video frames on disk: 1-25)" in msg
    with caplog.at_level(logging.WARNING):
        table = load_casme3_a(tmp_path, frames=rgb, frames_pattern="{subject}/{filename}",
                              missing="skip")  # fmt: skip
    assert table["clip"].tolist() == ["b_10", "c_5"]
    assert table["emotion"].tolist() == ["others", "happy"]
    assert table["n_frames"].tolist() == [11, 5]
    assert table["objective_class"].tolist() == [1, 7]
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)\^3 part A frame folder in"):
        load_casme3_a(tmp_path)


def test_bad_cells_name_the_row(tmp_path):
    c3 = tmp_path / "CASME3"
    good = ["spNO.5", "b", 10, 12, 20, "R12", "I", "others"]
    for bad, pattern in (
        (["sp5", *good[1:]], r"row 2 \(sp5/b\): Subject 'sp5' is not like 'spNO.1'"),
        (["spNO.5", "bb", *good[2:]], r"row 2 \(spNO.5/bb\): Filename 'bb' is not a task"),
        ([*good[:2], "1o", *good[3:]], r"row 2 \(spNO.5/b\): Onset '1o' is not a frame number"),
        ([*good[:6], "IX", good[7]], r"row 2 \(spNO.5/b_10\): Objective class 'IX'"),
        ([*good[:5], "12x", *good[6:]], r"cannot parse action units '12x'"),
        ([*good[:7], None], r"row 2 \(spNO.5/b_10\): emotion is empty"),
    ):
        write_sheet(c3 / SHEET_A, HEADER_A, [bad])
        with pytest.raises((SchemaError, ValueError), match=pattern):
            read_part_a_sheet(c3 / SHEET_A)
    write_sheet(c3 / SHEET_A, HEADER_A[:5], [good[:5]])
    with pytest.raises(SchemaError, match=r"no header row with columns \['subject'"):
        read_part_a_sheet(c3 / SHEET_A)
    write_sheet(c3 / SHEET_C, HEADER_C, [["x", 1, 5, 9, "4", "negative"]], title="mockCrimeME")
    with pytest.raises(SchemaError, match=r"row 2: sub 'x' is not a frame number"):
        read_part_c_sheet(c3 / SHEET_C)


def test_part_c_missing_video(tmp_path):
    c3 = tmp_path / "CASME3"
    rows = [[3, 1, 5, 9, "4,", "negative"], [4, 1, 5, 9, 12, "positive"]]
    write_sheet(c3 / SHEET_C, HEADER_C, rows, title="mockCrimeME")
    master = tmp_path / "m.jpg"
    master.write_bytes(JPG)
    link_frames(c3 / "part_C" / "03" / "a" / "color", 1, 10, master)
    (c3 / "part_C" / "04").mkdir()
    with pytest.raises(SchemaError, match=r"04/04_1: no frames in .*part_C/04/a/color"):
        load_casme3_c(tmp_path)
    table = load_casme3_c(tmp_path, missing="skip")
    assert table[["subject", "clip", "aus"]].values.tolist() == [["CASME3_C/03", "03_1", (4,)]]


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CAS\(ME\)\^3 root .*nowhere does not exist"):
        load_casme3_a(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)\^3 data in .*: expected a folder"):
        load_casme3_c(tmp_path)
    (tmp_path / "CASME3" / "part_A").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no CAS\(ME\)\^3 part A ME sheet \(cas\(me\)3_"):
        load_casme3_a(tmp_path)
    with pytest.raises(ValueError, match="missing must be one of"):
        load_casme3_a(tmp_path, missing="drop")


def test_discover_and_pattern_fields(tmp_path):
    from merkit.data.adapters.casme3 import discover

    assert discover(tmp_path) == []
    write_sheet(tmp_path / "CASME3" / "annotation" / SHEET_C, HEADER_C, [])
    assert discover(tmp_path) == ["CASME3_C"]
    (tmp_path / "CASME3" / "part_A" / "data" / "part_A").mkdir(parents=True)
    assert discover(tmp_path) == ["CASME3_A", "CASME3_C"]
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['task'\]; available: \{subject\}"):
        load_casme3_a(tmp_path, frames_pattern="{subject}/{task}")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['filename'\]"):
        load_casme3_c(tmp_path, frames_pattern="{subject}/{filename}")
