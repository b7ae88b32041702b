"""MMEW adapter on a sheet built from the documented columns, frames faked in tmp_path.

No real MMEW sheet is shared with the project; the sheet here follows the release's
``MMEW_Micro_Exp.xlsx`` (Subject, Filename, OnsetFrame, ApexFrame, OffsetFrame, Action
Units, Estimated Emotion, remarks; Subject a number) and its frame tree
``Micro_Expression/<emotion>/<Filename>/<n>.jpg``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from merkit.data.adapters.mmew import find_sheet, load_mmew, read_mmew_sheet
from merkit.data.labels import au_labels
from merkit.data.schema import SchemaError
from tests.data._files import write_numbered, write_xlsx

JPG = cv2.imencode(".jpg", np.full((8, 8), 100, np.uint8))[1].tobytes()
HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
          "Estimated Emotion", "remarks"]  # fmt: skip
ROWS = [
    [1, "S01-01-001", 1, 12, 30, "6+12", "happiness", None],
    [1, "S01-05-002", 3, 9, 21, "4+L10", "disgust", "head moves"],
    [13, "S13-07-001", 1, 6, 14, "1+2+5", "surprise", None],
    [13, "S13-03-001", 2, 7, 18, "R14", "others", None],
    [21, "S21-02-001", 1, 5, 11, "4+7", "anger", None],
    [21, "S21-04-003", 1, 4, 9, "15+17", "sadness", None],
    [36, "S36-06-001", 1, 8, 16, "1+4+20", "fear", None],
]


def write_sheet(path: Path, rows: list[list], header: list | None = None) -> Path:
    return write_xlsx(path, header or HEADER, rows)


def write_frames(folder: Path, first: int, last: int) -> None:
    write_numbered(folder, first, last, "{}.jpg", JPG)


def small_mmew(root: Path, rows: list[list] = ROWS, top: str = "MMEW", extra: int = 2) -> Path:
    d = root / top
    write_sheet(d / "MMEW_Micro_Exp.xlsx", rows)
    for r in rows:
        write_frames(d / "Micro_Expression" / r[6] / r[1], 1, int(r[4]) + extra)
    return d


def test_load(tmp_path):
    small_mmew(tmp_path)
    table = load_mmew(tmp_path)
    assert len(table) == 7
    assert table["subject"].tolist() == ["MMEW/S01", "MMEW/S01", "MMEW/S13", "MMEW/S13",
                                         "MMEW/S21", "MMEW/S21", "MMEW/S36"]  # fmt: skip
    assert table["clip"].iloc[2] == "S13-07-001"
    assert set(table["dataset"]) == {"MMEW"} and set(table["fps"]) == {90.0}
    assert set(table["camera"]) == {"colour"}
    assert table[["onset", "apex", "offset"]].iloc[0].tolist() == [1, 12, 30]
    assert table["n_frames"].tolist() == [r[4] + 2 for r in ROWS]
    assert table["frames_dir"].iloc[2] == str(
        tmp_path / "MMEW" / "Micro_Expression" / "surprise" / "S13-07-001"
    )
    assert table["aus"].iloc[1] == (4, 10) and table["au_sides"].iloc[1] == ("", "L")
    assert table["remarks"].isna().tolist()[:3] == [True, False, True]
    assert table["remarks"].iloc[1] == "head moves"
    assert table["sheet_row"].tolist() == list(range(2, 9))
    assert sorted(table["emotion"]) == sorted(r[6] for r in ROWS)
    Y, names = au_labels(table)
    assert names[:4] == ["AU1", "AU2", "AU4", "AU5"] and Y.sum() == 14


def test_layout_variants(tmp_path):
    # MMEW_Final/ folder, emotion folders in another case, sheet given by name
    d = small_mmew(tmp_path, top="MMEW_Final")
    (d / "Micro_Expression" / "happiness").rename(d / "Micro_Expression" / "Happiness")
    table = load_mmew(tmp_path, sheet="MMEW_Micro_Exp.xlsx")
    assert len(table) == 7 and table["frames_dir"].iloc[0].endswith("Happiness/S01-01-001")
    assert len(load_mmew(d)) == 7  # the MMEW folder itself
    # frames given elsewhere, clip folders directly below (no emotion level)
    other = tmp_path / "crops"
    for r in ROWS:
        write_frames(other / r[1], 1, r[4])
    table = load_mmew(d, frames=other)
    assert table["n_frames"].tolist() == [r[4] for r in ROWS]


def test_subject_spellings_and_missing_apex(tmp_path, caplog):
    rows = [
        ["S05", "a", 1, "/", 10, 4, "fear", None],
        ["7.0", "b", 1, 3, 10, "12", "Happiness", ""],
    ]
    small_mmew(tmp_path, rows)
    with caplog.at_level(logging.WARNING):
        table = load_mmew(tmp_path)
    assert table["subject"].tolist() == ["MMEW/S05", "MMEW/S07"]
    assert table["apex"].isna().tolist() == [True, False]
    assert table["emotion"].tolist() == ["fear", "happiness"]
    assert "row 2 (S05/a): ApexFrame '/' -> apex missing" in caplog.text


def test_missing_frames_raise_or_skip(tmp_path, caplog):
    d = small_mmew(tmp_path)
    for n in (5, 6):
        (d / "Micro_Expression" / "happiness" / "S01-01-001" / f"{n}.jpg").unlink()
    for f in (d / "Micro_Expression" / "fear" / "S36-06-001").iterdir():
        f.unlink()
    with pytest.raises(SchemaError) as err:
        load_mmew(tmp_path)
    msg = str(err.value)
    assert "2 clip(s)" in msg
    assert "S01/S01-01-001: frames 5-6 of [1, 30] missing" in msg
    assert "S36/S36-06-001: no frames in" in msg
    with caplog.at_level(logging.WARNING):
        table = load_mmew(tmp_path, missing="skip")
    assert len(table) == 5 and "skipped" in caplog.text


def test_bad_cells_and_layout_errors(tmp_path):
    d = small_mmew(tmp_path)
    sheet = d / "MMEW_Micro_Exp.xlsx"
    write_sheet(sheet, [[1, "S01-01-001", 1, 12, "3O", "6+12", "happiness", None]])
    with pytest.raises(SchemaError, match=r"row 2 \(S01/S01-01-001\): OffsetFrame '3O' is not"):
        load_mmew(tmp_path)
    write_sheet(sheet, [[1, "S01-01-001", 1, 40, 30, "6+12", "happiness", None]])
    with pytest.raises(SchemaError, match=r"apex outside \[onset, offset\]: MMEW/S01/S01-01-001"):
        load_mmew(tmp_path)
    write_sheet(sheet, [[1, "S01-01-001", 1, 12, 30, "6+12", " ", None]])
    with pytest.raises(SchemaError, match="Estimated Emotion is empty"):
        load_mmew(tmp_path)
    write_sheet(sheet, [], header=HEADER[:5])
    with pytest.raises(SchemaError, match=r"missing columns \['actionunits', 'estimatedemotion'\]"):
        read_mmew_sheet(sheet)
    write_sheet(d / "MMEW_Micro_Exp_v2.xlsx", ROWS)
    with pytest.raises(FileNotFoundError, match="2 MMEW coding sheets .* pass sheet="):
        find_sheet(d)
    with pytest.raises(FileNotFoundError, match="no MMEW data in .*: expected a folder"):
        load_mmew(tmp_path / "MMEW" / "Micro_Expression")
    empty = tmp_path / "e" / "MMEW"
    empty.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no MMEW coding sheet"):
        load_mmew(tmp_path / "e")
    write_sheet(empty / "MMEW_Micro_Exp.xlsx", ROWS)
    with pytest.raises(FileNotFoundError, match=r"no MMEW frame folder in .*Micro_Expression"):
        load_mmew(tmp_path / "e")
