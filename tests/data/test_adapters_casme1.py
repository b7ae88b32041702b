"""CASME I adapter: sheets written by the synthetic writer, exact rows, errors, fixes."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from merkit.data import fixes as fixes_module
from merkit.data.adapters import discover, load_casme1, load_dataset
from merkit.data.adapters.casme1 import read_casme1_sheet
from merkit.data.schema import SchemaError
from merkit.data.synthetic.writer import write_casme1_sheet
from tests.data._files import write_numbered, write_xlsx

#: rows of a small CASME I sheet: sub01 EP01_5 is coded with ApexF2 too, sub04 EP03_2 has
#: a missing apex ('/')
ROWS: list[dict] = [
    {"subject": 1, "clip": "EP01_5", "onset": 10, "apex": 14, "apex2": 16, "offset": 20,
     "aus": 12, "emotion": "happiness"},
    {"subject": 1, "clip": "EP07_10", "onset": 3, "apex": 5, "offset": 9,
     "aus": "4+L10", "emotion": "Disgust"},
    {"subject": 4, "clip": "EP03_2", "onset": 30, "apex": "/", "offset": 36,
     "aus": "14", "emotion": "tense"},
]  # fmt: skip


def _database(root: Path, rows: list[dict] = ROWS, *, frames: bool = True) -> Path:
    """``root/CASME`` with the coding sheet of ``rows`` and their frames onset..offset."""
    casme = root / "CASME"
    write_casme1_sheet(casme / "CASME-coding.xlsx", rows)
    if frames:
        for r in rows:
            folder = casme / "Cropped" / f"sub{int(r['subject']):02d}" / str(r["clip"])
            write_numbered(folder, int(r["onset"]), int(r["offset"]), "reg_img{}.jpg", b"x")
    return casme


def test_synthetic_sheet_loads_with_exact_rows(tmp_path, caplog):
    casme = _database(tmp_path)
    with caplog.at_level(logging.WARNING):
        t = load_casme1(tmp_path)
    assert "CASME-coding.xlsx row 4 (sub04/EP03_2): ApexF1 '/' -> apex missing" in caplog.text
    assert list(t["subject"]) == ["CASME1/01", "CASME1/01", "CASME1/04"]
    assert list(t["clip"]) == ["EP01_5", "EP07_10", "EP03_2"]
    assert list(t["onset"]) == [10, 3, 30]
    assert list(t["apex"][:2]) == [14, 5] and pd.isna(t["apex"].iloc[2])
    assert list(t["offset"]) == [20, 9, 36]
    assert list(t["emotion"]) == ["happiness", "disgust", "tense"]
    assert list(t["aus"]) == [(12,), (4, 10), (14,)]
    assert list(t["au_sides"]) == [("",), ("", "L"), ("",)]
    assert list(t["n_frames"]) == [11, 7, 7]
    assert set(t["fps"]) == {60.0} and set(t["camera"]) == {"colour"}
    assert set(t["dataset"]) == {"CASME1"}
    assert t["frames_dir"].iloc[1] == str(casme / "Cropped" / "sub01" / "EP07_10")
    assert t.attrs["source"] == str(casme / "CASME-coding.xlsx")
    assert t.attrs["fixes_applied"] == []
    # the registry reaches the same loader, from the data root or the CASME folder itself
    assert load_dataset("casme1", casme)["clip"].tolist() == ["EP01_5", "EP07_10", "EP03_2"]


def test_sheet_rows_and_text_subjects(tmp_path):
    rows = [{**ROWS[0], "subject": "sub02"}, {**ROWS[1], "subject": "3"}]
    coded = read_casme1_sheet(_database(tmp_path, rows, frames=False) / "CASME-coding.xlsx")
    assert list(coded["subject"]) == ["02", "03"]
    assert list(coded["sheet_row"]) == [2, 3]


def test_discover_and_datasets(tmp_path):
    _database(tmp_path)
    assert "CASME1" in discover(tmp_path)
    assert discover(tmp_path / "CASME") == ["CASME1"]
    # a CASME II folder also holds Cropped/: it is not taken for CASME I
    (tmp_path / "CASME2" / "Cropped").mkdir(parents=True)
    (tmp_path / "CASME2" / "CASME2-coding-20140508.xlsx").write_bytes(b"")
    assert discover(tmp_path / "CASME2") == ["CASME2"]
    assert discover(tmp_path / "CASME2" / "Cropped") == []


def test_missing_frames_raise_or_skip(tmp_path):
    casme = _database(tmp_path)
    (casme / "Cropped" / "sub01" / "EP07_10" / "reg_img5.jpg").unlink()
    with pytest.raises(SchemaError, match=r"sub01/EP07_10: frames 5 of \[3, 9\] missing"):
        load_casme1(tmp_path)
    t = load_casme1(tmp_path, missing="skip")
    assert list(t["clip"]) == ["EP01_5", "EP03_2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"onset": "abc"}, r"CASME-coding\.xlsx row 3 \(sub01/EP07_10\): OnsetF 'abc' is not a"),
        ({"subject": "x1"}, r"CASME-coding\.xlsx row 3 \(EP07_10\): Subject 'x1' is not a"),
        ({"emotion": None}, r"CASME-coding\.xlsx row 3 \(sub01/EP07_10\): Emotion is empty"),
        ({"offset": "/"}, r"CASME-coding\.xlsx row 3 \(sub01/EP07_10\): OffsetF '/' is not a"),
        ({"clip": None}, r"CASME-coding\.xlsx row 3 \(no Filename\): Filename is empty"),
    ],
)
def test_bad_cells_name_the_file_and_row(tmp_path, change, message):
    rows = [ROWS[0], {**ROWS[1], **change}]
    casme = _database(tmp_path, rows, frames=False)
    with pytest.raises(SchemaError, match=message) as err:
        read_casme1_sheet(casme / "CASME-coding.xlsx")
    assert "\n" not in str(err.value)


def test_sheet_errors_name_the_file(tmp_path):
    bad = tmp_path / "CASME" / "CASME-coding.xlsx"
    write_xlsx(bad, ["Subject", "Filename", "OnsetF", "ApexF1", "OffsetF", "Emotion"],
               [[1, "EP01_5", 1, 2, 3, "tense"]])  # fmt: skip
    with pytest.raises(SchemaError, match=r"CASME-coding\.xlsx sheet 'Sheet': no AU column"):
        read_casme1_sheet(bad)
    write_xlsx(bad, ["Subject", "Filename", "OnsetF", "AU", "Emotion"], [[1, "EP01_5", 1, 4, "x"]])
    with pytest.raises(SchemaError, match=r"missing columns \['apexf', 'offsetf'\]"):
        read_casme1_sheet(bad)
    write_xlsx(bad, ["Name", "Clip"], [["a", "b"]])
    with pytest.raises(SchemaError, match=r"no header row with 'Subject', 'Filename' and 'OnsetF'"):
        read_casme1_sheet(bad)


def test_apex_outside_the_clip_names_the_clip(tmp_path):
    _database(tmp_path, [{**ROWS[1], "apex": 40}])
    with pytest.raises(SchemaError, match="EP07_10"):
        load_casme1(tmp_path)


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no CASME I data in"):
        load_casme1(tmp_path)
    _database(tmp_path, frames=False)
    with pytest.raises(FileNotFoundError, match="no CASME I frame folder in"):
        load_casme1(tmp_path)


def test_a_fix_is_applied_and_reported(tmp_path, monkeypatch, caplog):
    _database(tmp_path, [{**ROWS[1], "offset": 90}])
    toml = tmp_path / "fixes.toml"
    toml.write_text(
        '[[fix]]\ndataset = "CASME1"\nsubject = "01"\nclip = "EP07_10"\n'
        "was = { offset = 90 }\nset = { offset = 9 }\n"
        'reason = "offset 90 is a typo"\nsource = "test"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(fixes_module, "FIXES_PATH", toml)
    with caplog.at_level(logging.INFO, logger="merkit.data.fixes"):
        t = load_casme1(tmp_path)
    assert t.attrs["fixes_applied"] == ["CASME1/01/EP07_10: offset 90 -> 9"]
    assert int(t["offset"].iloc[0]) == 9 and int(t["n_frames"].iloc[0]) == 88
    assert "applied fix CASME1/01/EP07_10: offset 90 -> 9 (offset 90 is a typo" in caplog.text
    raw = load_casme1(tmp_path, fixes=False)
    assert int(raw["offset"].iloc[0]) == 90 and raw.attrs["fixes_applied"] == []
