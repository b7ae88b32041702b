"""CASME II adapter: the real coding sheets with frame folders faked in tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pandas as pd
import pytest

from merkit.data.adapters.casme2 import find_sheet, load_casme2, read_coding_sheet
from merkit.data.schema import SchemaError
from tests.data._files import write_numbered, write_xlsx

ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
SHEETS = ANNOTATIONS / "casme2"
SHEET_2014 = "CASME2-coding-20140508.xlsx"
SHEET_2019 = "CASME2-coding-20190701.xlsx"
JPG = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8))[1].tobytes()
EXTRA = 3  # frames after the offset, as in real clips that run on past the offset
HEADER = [
    "Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
    "Action Units", "Estimated Emotion",
]  # fmt: skip


def write_frames(folder: Path, first: int, last: int, pattern: str = "img{}.jpg") -> None:
    write_numbered(folder, first, last, pattern, JPG)


def write_sheet(path: Path, rows: list[list], header: list | None = None) -> Path:
    return write_xlsx(path, header or HEADER, rows)


def small_casme2(root: Path, rows: list[list], name: str = "CASME2-coding-20200101.xlsx"):
    """A CASME2 tree from sheet rows ``[subject, clip, None, on, apex, off, None, au, emo]``."""
    c2 = root / "CASME2"
    write_sheet(c2 / name, rows)
    for r in rows:
        sub = f"{int(r[0]):02d}"
        write_frames(c2 / "Cropped" / f"sub{sub}" / r[1], int(r[3]), int(r[5]))
    return c2


@pytest.fixture(scope="module")
def real_root(tmp_path_factory) -> Path:
    """``<root>/CASME2`` with both real sheets (symlinked) and frames onset..offset+3."""
    if not (SHEETS / SHEET_2014).exists() or not (SHEETS / SHEET_2019).exists():
        pytest.skip(f"real CASME II coding sheets not available in {SHEETS}")
    root = tmp_path_factory.mktemp("casme2_real")
    c2 = root / "CASME2"
    c2.mkdir()
    for name in (SHEET_2014, SHEET_2019):
        (c2 / name).symlink_to((SHEETS / name).resolve())
    coded = read_coding_sheet(SHEETS / SHEET_2014)
    for r in coded.itertuples(index=False):
        write_frames(c2 / "Cropped" / f"sub{r.subject}" / r.clip, r.onset, r.offset + EXTRA)
    return root


def test_real_2014_sheet(real_root):
    table = load_casme2(real_root, sheet=SHEET_2014)
    assert len(table) == 255
    assert table["subject"].nunique() == 26
    assert table["subject"].iloc[0] == "CASME2/01" and table["clip"].iloc[0] == "EP02_01f"
    first = table.iloc[0]
    assert (first["onset"], first["apex"], first["offset"]) == (46, 59, 86)
    assert first["aus"] == (12,) and first["emotion"] == "happiness"
    assert first["frames_dir"] == str(real_root / "CASME2" / "Cropped" / "sub01" / "EP02_01f")
    assert (table["n_frames"] == table["offset"] - table["onset"] + 1 + EXTRA).all()
    assert set(table["dataset"]) == {"CASME2"} and set(table["camera"]) == {"colour"}
    assert set(table["fps"]) == {200.0}
    assert table["emotion"].value_counts().to_dict() == {
        "others": 99, "disgust": 63, "happiness": 32, "repression": 27, "surprise": 25,
        "sadness": 7, "fear": 2,
    }  # fmt: skip
    assert table["objective_class"].isna().all()  # the 2014 sheet has none
    assert table["apex"].dtype == "Int64" and table["onset"].dtype == np.int64
    # quirk: ApexFrame '/' for sub04 EP12_01f -> apex missing, clip kept
    missing_apex = table[table["apex"].isna()]
    assert missing_apex[["subject", "clip"]].values.tolist() == [["CASME2/04", "EP12_01f"]]
    row = table[(table["subject"] == "CASME2/01") & (table["clip"] == "EP03_02")].iloc[0]
    assert (row["onset"], row["apex"], row["offset"], row["aus"]) == (131, 139, 161, (18,))
    sided = table[(table["subject"] == "CASME2/01") & (table["clip"] == "EP19_05f")].iloc[0]
    assert (sided["aus"], sided["au_sides"], sided["au_intensities"]) == ((4, 10), ("", "L"),
                                                                          ("", ""))  # fmt: skip
    assert sum(s != "" for t in table["au_sides"] for s in t) == 60
    assert table.attrs["source"].endswith(SHEET_2014)


def test_real_sheet_quirks_are_logged(real_root, caplog):
    with caplog.at_level(logging.WARNING):
        load_casme2(real_root, sheet=SHEET_2014)
    assert "row 31 (sub04/EP12_01f): ApexFrame '/' -> apex missing" in caplog.text
    assert caplog.text.count("means 'not coded'") == 5  # the five '?' AU cells


def test_newest_sheet_is_the_default(real_root, caplog):
    with caplog.at_level(logging.INFO, logger="merkit.data.adapters.casme2"):
        table = load_casme2(real_root)
    assert f"using the newest {SHEET_2019}" in caplog.text
    assert len(table) == 255
    assert table["objective_class"].notna().all()
    assert table["objective_class"].value_counts().sort_index().tolist() == [
        30, 18, 93, 15, 18, 2, 79,
    ]  # fmt: skip
    sub24 = table[table["clip"].isin(["EP07_01", "EP07_04f", "EP10_03"])]
    assert sub24[sub24["subject"] == "CASME2/24"]["emotion"].tolist() == ["surprise"] * 3
    assert (table["emotion"] == "surprise").sum() == 28


def test_the_casme2_folder_itself_is_accepted(real_root):
    table = load_casme2(real_root / "CASME2", sheet=SHEET_2014)
    assert len(table) == 255
    assert find_sheet(real_root / "CASME2").name == SHEET_2019


def test_sheet_given_as_an_absolute_path(real_root):
    table = load_casme2(real_root, sheet=SHEETS / SHEET_2014)
    assert len(table) == 255 and table["objective_class"].isna().all()


def test_numeric_subject_au_numbers_and_case(tmp_path):
    rows = [
        [1, "EP02_01f", None, 46, 59.0, 86, None, 12.0, " Happiness "],
        ["7", "EP01_02", None, 10, 12, 20, None, "L12+R12", "others"],
    ]
    small_casme2(tmp_path, rows)
    table = load_casme2(tmp_path)
    assert table["subject"].tolist() == ["CASME2/01", "CASME2/07"]
    assert table["emotion"].tolist() == ["happiness", "others"]
    assert table["aus"].tolist() == [(12,), (12,)]
    assert table["au_sides"].tolist() == [("",), ("LR",)]
    assert table["apex"].tolist() == [59, 12]
    assert table["n_frames"].tolist() == [41, 11]


def test_reg_img_names_in_the_raw_folder(tmp_path):
    c2 = tmp_path / "CASME2"
    write_sheet(c2 / "CASME2-coding-20140508.xlsx", [["01", "EP02_01f", None, 46, 59, 86, None,
                                                      "12", "happiness"]])  # fmt: skip
    write_frames(c2 / "CASME2_RAW_selected" / "sub01" / "EP02_01f", 40, 90, "reg_img{}.jpg")
    (c2 / "CASME2_RAW_selected" / "sub01" / "EP02_01f" / "Thumbs.db").write_bytes(b"x")
    table = load_casme2(tmp_path)
    assert table["n_frames"].tolist() == [51]
    assert table["frames_dir"].iloc[0].endswith("CASME2_RAW_selected/sub01/EP02_01f")
    other = load_casme2(tmp_path, frames=c2 / "CASME2_RAW_selected")
    assert other["n_frames"].tolist() == [51]


def test_missing_frames_raise_or_skip(tmp_path, caplog):
    rows = [
        ["01", "EP02_01f", None, 46, 59, 86, None, "12", "happiness"],
        ["01", "EP03_02", None, 131, 139, 161, None, "18", "others"],
        ["02", "EP01_11f", None, 10, 15, 30, None, "4+7", "disgust"],
    ]
    c2 = small_casme2(tmp_path, rows)
    for n in (50, 51, 52, 60):
        (c2 / "Cropped" / "sub01" / "EP02_01f" / f"img{n}.jpg").unlink()
    for f in (c2 / "Cropped" / "sub02" / "EP01_11f").iterdir():
        f.unlink()
    with pytest.raises(SchemaError) as err:
        load_casme2(tmp_path)
    msg = str(err.value)
    assert "2 clip(s)" in msg
    assert "sub01/EP02_01f: frames 50-52, 60 of [46, 86] missing" in msg
    assert "(on disk: 46-49, 53-59, 61-86)" in msg
    assert "sub02/EP01_11f: no frames in" in msg
    assert "EP03_02" not in msg
    with caplog.at_level(logging.WARNING):
        table = load_casme2(tmp_path, missing="skip")
    assert table["clip"].tolist() == ["EP03_02"]
    assert "sub01/EP02_01f" in caplog.text and "skipped" in caplog.text
    with pytest.raises(ValueError, match="missing must be one of"):
        load_casme2(tmp_path, missing="ignore")


def test_bad_cells_name_the_row(tmp_path):
    small_casme2(tmp_path, [["01", "EP02_01f", None, 46, 59, 86, None, "12", "happiness"]])
    sheet = tmp_path / "CASME2" / "CASME2-coding-20200101.xlsx"
    write_sheet(sheet, [["01", "EP02_01f", None, "4x6", 59, 86, None, "12", "happiness"]])
    with pytest.raises(SchemaError, match=r"row 2 \(sub01/EP02_01f\): OnsetFrame '4x6' is not"):
        load_casme2(tmp_path)
    write_sheet(sheet, [["x1", "EP02_01f", None, 46, 59, 86, None, "12", "happiness"]])
    with pytest.raises(SchemaError, match=r"row 2 \(EP02_01f\): Subject 'x1' is not a subject"):
        load_casme2(tmp_path)
    write_sheet(sheet, [["01", "EP02_01f", None, 46, 59, 86, None, "12+Q", "happiness"]])
    with pytest.raises(ValueError, match=r"'12\+Q' \(CASME2-coding-20200101.xlsx row 2"):
        load_casme2(tmp_path)
    write_sheet(sheet, [["01", "EP02_01f", None, 46, 90, 86, None, "12", "happiness"]])
    with pytest.raises(SchemaError, match=r"apex outside \[onset, offset\]: CASME2/01/EP"):
        load_casme2(tmp_path)
    write_sheet(sheet, [["01", "EP02_01f", None, 46, 59, 86, None, "12", None]])
    with pytest.raises(SchemaError, match="Estimated Emotion is empty"):
        load_casme2(tmp_path)
    row = ["01", "EP02_01f", None, 46, 59, 86, None, "12", "happiness"]
    write_sheet(sheet, [row, row])
    with pytest.raises(SchemaError, match="duplicate"):
        load_casme2(tmp_path)


def test_header_is_found_by_name_not_position(tmp_path):
    c2 = tmp_path / "CASME2"
    header = ["Estimated Emotion", "Action Units", "OffsetFrame", "Subject", None, "Filename",
              "ApexFrame", "OnsetFrame"]  # fmt: skip
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["CASME II coding, preamble line"])
    ws.append([])
    ws.append(header)
    ws.append(["disgust", "4+L9", 30, "03", None, "EP01_2", 20, 10])
    c2.mkdir()
    wb.save(c2 / "CASME2-coding-20140508.xlsx")
    write_frames(c2 / "Cropped" / "sub03" / "EP01_2", 10, 30)
    table = load_casme2(tmp_path)
    assert table[["subject", "clip", "onset", "apex", "offset", "emotion"]].values.tolist() == [
        ["CASME2/03", "EP01_2", 10, 20, 30, "disgust"]
    ]
    assert table["aus"].iloc[0] == (4, 9) and table["au_sides"].iloc[0] == ("", "L")
    write_sheet(c2 / "CASME2-coding-20140508.xlsx", [], header=HEADER[:7])
    with pytest.raises(SchemaError, match=r"missing columns \['actionunits', 'estimatedemotion'\]"):
        load_casme2(tmp_path)


def test_layout_errors_are_one_clear_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"CASME II root .*nowhere does not exist"):
        load_casme2(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no CASME II data in .*: expected a folder"):
        load_casme2(tmp_path)
    (tmp_path / "CASME2").mkdir()
    c2 = tmp_path / "CASME2"
    with pytest.raises(FileNotFoundError) as err:
        load_casme2(tmp_path)
    assert str(err.value) == f"no CASME II coding sheet CASME2-coding-*.xlsx in {c2}"
    write_sheet(c2 / "CASME2-coding-20140508.xlsx", [["01", "E", None, 1, 2, 3, None, 4, "fear"]])
    with pytest.raises(FileNotFoundError, match=r"no CASME II frame folder in .*: expected one of"):
        load_casme2(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"coding sheet .*other.xlsx does not exist"):
        load_casme2(tmp_path, sheet="other.xlsx")


def test_read_coding_sheet_columns():
    if not (SHEETS / SHEET_2019).exists():
        pytest.skip(f"real CASME II coding sheet not available in {SHEETS}")
    coded = read_coding_sheet(SHEETS / SHEET_2019)
    assert list(coded.columns) == [
        "subject", "clip", "onset", "apex", "offset", "emotion", "aus", "au_sides",
        "au_intensities", "objective_class", "sheet_row",
    ]  # fmt: skip
    assert coded["sheet_row"].tolist() == list(range(2, 257))
    last = coded.iloc[-1]
    assert (last["subject"], last["clip"], last["aus"], last["objective_class"]) == (
        "26", "EP18_51", (4, 16), 7,
    )  # fmt: skip
    assert pd.isna(coded.loc[coded["clip"] == "EP12_01f", "apex"]).all()
