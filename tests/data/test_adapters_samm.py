"""SAMM adapter: the real coding sheets (corrected and as distributed) with frames faked in
tmp_path."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from merkit.data.adapters.samm import (
    find_sheet,
    last_number_frames,
    load_samm,
    read_samm_sheet,
    samm_subject_id,
)
from merkit.data.schema import SchemaError
from tests.data._files import link_numbered, write_xlsx

SHEETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations" / "samm"
CORRECTED = "SAMM_Micro_FACS_Codes_v2.xlsx"
UNCORRECTED = "SAMM_Micro_FACS_Codes_v2_uncorrected.xlsx"
JPG = cv2.imencode(".jpg", np.full((8, 8), 90, np.uint8))[1].tobytes()
HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
          "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes",
          "Notes"]  # fmt: skip


def write_frames(folder: Path, subject: str, first: int, last: int, master: Path) -> None:
    """SAMM-style frames ``<subject>_<NNNNN>.jpg`` as hard links of one tiny image."""
    link_numbered(folder, first, last, subject + "_{:05d}.jpg", master)


def write_sheet(path: Path, rows: list[list], preamble: int = 3) -> Path:
    """Sheet MICRO_ONLY: a title line, blank lines up to ``preamble`` rows, the header."""
    lines = [[]] * (preamble - 1) + [HEADER] + rows
    return write_xlsx(path, ["SAMM Dataset - Master FACS Codes"], lines, title="MICRO_ONLY")


def small_samm(root: Path, rows: list[list], name: str = CORRECTED) -> Path:
    samm = root / "SAMM"
    write_sheet(samm / name, rows)
    master = root / "master.jpg"
    master.write_bytes(JPG)
    for r in rows:
        sid = samm_subject_id(r[0])
        write_frames(samm / sid / r[1], sid, int(r[3]), int(r[5]), master)
    return samm


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    """``<root>/SAMM`` with both real sheets (symlinked) and frames onset-2..offset+2."""
    if not (SHEETS / CORRECTED).exists() or not (SHEETS / UNCORRECTED).exists():
        pytest.skip(f"real SAMM coding sheets not available in {SHEETS}")
    root = tmp_path_factory.mktemp("samm_real")
    samm = root / "SAMM"
    samm.mkdir()
    for name in (CORRECTED, UNCORRECTED):
        (samm / name).symlink_to((SHEETS / name).resolve())
    master = root / "master.jpg"
    master.write_bytes(JPG)
    for r in read_samm_sheet(SHEETS / CORRECTED).itertuples(index=False):
        write_frames(samm / r.subject / r.clip, r.subject, r.onset - 2, r.offset + 2, master)
    return root


def test_real_sheet(real_root):
    table = load_samm(real_root)
    assert table.attrs["source"].endswith(CORRECTED)  # the uncorrected copy is not the default
    assert table.attrs["fixes_applied"] == []
    assert len(table) == 159
    assert table["subject"].nunique() == 29
    first = table.iloc[0]
    assert (first["subject"], first["clip"]) == ("SAMM/006", "006_1_2")
    assert (first["onset"], first["apex"], first["offset"]) == (5562, 5588, 5632)
    assert first["aus"] == (4, 7) and first["emotion"] == "anger"
    assert first["frames_dir"] == str(real_root / "SAMM" / "006" / "006_1_2")
    assert (table["n_frames"] == table["offset"] - table["onset"] + 5).all()
    assert set(table["dataset"]) == {"SAMM"} and set(table["camera"]) == {"grey"}
    assert set(table["fps"]) == {200.0}
    assert table["emotion"].value_counts().to_dict() == {
        "anger": 57, "other": 26, "happiness": 26, "surprise": 15, "contempt": 12, "disgust": 9,
        "fear": 8, "sadness": 6,
    }  # fmt: skip
    assert table["objective_class"].value_counts().sort_index().tolist() == [24, 13, 20, 8, 3, 7,
                                                                             84]  # fmt: skip
    assert table["inducement_code"].dtype == "Int64" and table["apex"].dtype == "Int64"
    last = table.iloc[-1]
    assert (last["subject"], last["clip"], last["aus"], last["objective_class"]) == (
        "SAMM/037", "037_4_1", (24,), 7,
    )  # fmt: skip
    # 'or' alternatives keep every AU; 'soft focus' carries no AU; sides/intensities kept
    row = table.set_index("clip").loc["035_7_2"]
    assert row["aus"] == (14, 17, 24) and row["au_intensities"] == ("A", "A", "A")
    assert table.set_index("clip").loc["026_5_1", "aus"] == (14, 17)
    fixed = table.set_index("clip").loc[["028_4_1", "032_3_1"], "apex"].tolist()
    assert fixed == [1113, 4930]


def test_uncorrected_sheet_is_caught(real_root):
    with pytest.raises(SchemaError) as err:
        load_samm(real_root, sheet=UNCORRECTED, fixes=False)
    msg = str(err.value)
    assert UNCORRECTED in msg
    assert "apex outside [onset, offset]: SAMM/028/028_4_1, SAMM/032/032_3_1" in msg
    assert set(re.findall(r"SAMM/\d{3}/\d{3}_\d+_\d+", msg)) == {
        "SAMM/028/028_4_1", "SAMM/032/032_3_1",
    }  # fmt: skip


def test_fixes_turn_the_uncorrected_sheet_into_the_corrected_one(real_root, caplog):
    corrected = load_samm(real_root, sheet=CORRECTED)
    with caplog.at_level(logging.INFO, logger="merkit.data.fixes"):
        fixed = load_samm(real_root, sheet=UNCORRECTED)
    pd.testing.assert_frame_equal(fixed, corrected)  # every column, dtypes included
    assert fixed.attrs["fixes_applied"] == [
        "SAMM/028/028_4_1: apex 1143 -> 1113",
        "SAMM/032/032_3_1: apex 1930 -> 4930",
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "merkit.data.fixes"]
    assert len(lines) == 2 and all(line.startswith("applied fix SAMM/0") for line in lines)
    assert "apex 1930 lies before the onset 4896" in lines[1]


def test_sheet_choice(real_root, caplog):
    samm = real_root / "SAMM"
    with caplog.at_level(logging.INFO, logger="merkit.data.adapters.samm"):
        assert find_sheet(samm).name == CORRECTED
    assert f"2 coding sheets in {samm}, using {CORRECTED}" in caplog.text
    assert find_sheet(samm, SHEETS / UNCORRECTED).name == UNCORRECTED
    with pytest.raises(FileNotFoundError, match=r"SAMM coding sheet .*nope.xlsx does not exist"):
        find_sheet(samm, "nope.xlsx")


def test_read_sheet_columns():
    if not (SHEETS / UNCORRECTED).exists():
        pytest.skip(f"real SAMM coding sheet not available in {SHEETS}")
    coded = read_samm_sheet(SHEETS / UNCORRECTED)
    assert list(coded.columns) == [
        "subject", "clip", "onset", "apex", "offset", "emotion", "aus", "au_sides",
        "au_intensities", "objective_class", "inducement_code", "sheet_row",
    ]  # fmt: skip
    assert coded["sheet_row"].tolist() == list(range(15, 174))  # 13 preamble rows + header
    assert coded["subject"].iloc[0] == "006"
    row = coded.set_index("clip").loc["028_4_1"]
    assert (row["onset"], row["apex"], row["offset"]) == (1071, 1143, 1134)


def test_frame_number_is_the_last_digit_group(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("006_05562.jpg", "006_05563.JPG", "006_5564.png", "notes.txt", "Thumbs.db"):
        (folder / name).write_bytes(JPG)
    assert last_number_frames(folder).tolist() == [5562, 5563, 5564]
    assert last_number_frames(tmp_path / "absent").size == 0


def test_small_sheet_numeric_subject_and_preamble(tmp_path):
    rows = [
        [6, "006_1_2", 1, 100, 110, 120, 21, "Micro - 1/2", "R12 or R14", "Happiness", 1, None],
        ["011", "011_2_3", 2, 10, "/", 30, 21, "Micro - 1/2", "4+7", "Anger", 3, "x"],
    ]
    small_samm(tmp_path, rows)
    table = load_samm(tmp_path / "SAMM")  # the SAMM folder itself
    assert table["subject"].tolist() == ["SAMM/006", "SAMM/011"]
    assert table["aus"].tolist() == [(12, 14), (4, 7)]
    assert table["au_sides"].tolist() == [("R", "R"), ("", "")]
    assert pd.isna(table["apex"].iloc[1]) and table["apex"].iloc[0] == 110
    assert table["n_frames"].tolist() == [21, 21]
    assert table["emotion"].tolist() == ["happiness", "anger"]


def test_duration_mismatch_is_logged(tmp_path, caplog):
    rows = [["006", "006_1_2", 1, 100, 110, 120, 30, "Micro", "12", "Happiness", 1, None]]
    small_samm(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        load_samm(tmp_path)
    assert "row 5 (006_1_2): Duration 30 != offset - onset + 1 = 21" in caplog.text


def test_missing_frames_raise_or_skip(tmp_path, caplog):
    rows = [
        ["006", "006_1_2", 1, 100, 110, 120, 21, "Micro", "12", "Happiness", 1, None],
        ["006", "006_1_3", 1, 200, 210, 220, 21, "Micro", "4", "Anger", 3, None],
        ["007", "007_5_1", 5, 10, 12, 20, 11, "Micro", "4", "Anger", 3, None],
    ]
    samm = small_samm(tmp_path, rows)
    for n in (105, 106):
        (samm / "006" / "006_1_2" / f"006_{n:05d}.jpg").unlink()
    for f in (samm / "007" / "007_5_1").iterdir():
        f.unlink()
    with pytest.raises(SchemaError) as err:
        load_samm(tmp_path)
    msg = str(err.value)
    assert "SAMM frames missing under" in msg and "2 clip(s)" in msg
    assert "006/006_1_2: frames 105-106 of [100, 120] missing" in msg
    assert "(on disk: 100-104, 107-120)" in msg
    assert "007/007_5_1: no frames in" in msg and "006_1_3" not in msg
    with caplog.at_level(logging.WARNING):
        table = load_samm(tmp_path, missing="skip")
    assert table["clip"].tolist() == ["006_1_3"]
    assert "skipped" in caplog.text


def test_frames_elsewhere(tmp_path):
    rows = [["006", "006_1_2", 1, 100, 110, 120, 21, "Micro", "12", "Happiness", 1, None]]
    samm = small_samm(tmp_path, rows)
    (samm / "006").rename(tmp_path / "cropped")
    (tmp_path / "crop_root").mkdir()
    (tmp_path / "cropped").rename(tmp_path / "crop_root" / "006")
    table = load_samm(tmp_path, frames=tmp_path / "crop_root")
    assert table["frames_dir"].iloc[0] == str(tmp_path / "crop_root" / "006" / "006_1_2")
    with pytest.raises(FileNotFoundError, match=r"SAMM frame folder .*nowhere does not exist"):
        load_samm(tmp_path, frames="nowhere")


def test_bad_cells_name_the_row(tmp_path):
    good = ["006", "006_1_2", 1, 100, 110, 120, 21, "Micro", "12", "Happiness", 1, None]
    samm = small_samm(tmp_path, [good])
    sheet = samm / CORRECTED
    write_sheet(sheet, [["006", "007_1_2", *good[2:]]])
    with pytest.raises(SchemaError, match=r"row 5 \(007_1_2\): Filename '007_1_2' does not start"):
        load_samm(tmp_path)
    write_sheet(sheet, [["x6", *good[1:]]])
    with pytest.raises(SchemaError, match=r"row 5 \(006_1_2\): Subject 'x6' is not a SAMM"):
        load_samm(tmp_path)
    write_sheet(sheet, [[*good[:3], "1O0", *good[4:]]])
    with pytest.raises(SchemaError, match=r"row 5 \(006_1_2\): Onset Frame '1O0' is not a frame"):
        load_samm(tmp_path)
    write_sheet(sheet, [[*good[:9], None, *good[10:]]])
    with pytest.raises(SchemaError, match="Estimated Emotion is empty"):
        load_samm(tmp_path)
    write_sheet(sheet, [good, good])
    with pytest.raises(
        SchemaError, match=r"duplicate \(dataset, subject, clip\): SAMM/006/006_1_2"
    ):
        load_samm(tmp_path)
    wb = openpyxl.Workbook()
    wb.active.append(["Subject", "Filename", "Onset Frame"])
    wb.save(sheet)
    with pytest.raises(SchemaError, match=r"missing columns \['apexframe', 'offsetframe'"):
        load_samm(tmp_path)


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"SAMM root .*nowhere does not exist"):
        load_samm(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no SAMM data in .*: expected a folder"):
        load_samm(tmp_path)
    (tmp_path / "SAMM").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        load_samm(tmp_path)
    assert str(err.value) == (
        f"no SAMM coding sheet SAMM_Micro_FACS_Codes*.xlsx in {tmp_path / 'SAMM'}"
    )
    with pytest.raises(ValueError, match="missing must be one of"):
        load_samm(tmp_path, missing="ignore")


def test_discover(tmp_path):
    from merkit.data.adapters.samm import discover

    assert discover(tmp_path) == [] and discover(tmp_path / "nowhere") == []
    (tmp_path / "SAMM").mkdir()
    assert discover(tmp_path) == []  # an empty SAMM folder is not data
    (tmp_path / "SAMM" / "006").mkdir()
    assert discover(tmp_path) == ["SAMM"] and discover(tmp_path / "SAMM") == ["SAMM"]
