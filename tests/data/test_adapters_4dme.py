"""4DME adapter: sheets written by the synthetic sheet writer, exact rows, errors, fixes."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.data import fixes as fixes_module
from merkit.data.adapters import discover, load_4dme, load_dataset
from merkit.data.adapters.fourd import read_4dme_sheet, split_k_aus
from merkit.data.schema import SchemaError
from merkit.data.synthetic.writer import write_4dme_sheet
from tests.data._files import write_numbered, write_xlsx

#: a small 4DME sheet: S01_2_1 has two labels and an AU marked (k); S03_1_4 no apex
ROWS: list[dict] = [
    {"subject": "S01", "clip": "S01_1_1", "onset": 5, "apex": 9, "offset": 14,
     "aus": "AU12", "emotion": "Positive", "emotions": ("positive",)},
    {"subject": "S01", "clip": "S01_2_1", "onset": 20, "apex": 24, "offset": 27,
     "aus": "AU1+AU2+AU4(k)", "emotion": "Negative+Surprise",
     "emotions": ("negative", "surprise")},
    {"subject": "S03", "clip": "S03_1_4", "onset": 1, "apex": "/", "offset": 6,
     "aus": "AU14", "emotion": "Repression", "emotions": ("repression",)},
]  # fmt: skip
SHEET = "4DME_Labelling_Micro.xlsx"


def _database(root: Path, rows: list[dict] = ROWS, *, frames: bool = True) -> Path:
    """``root/4DME`` with the sheet of ``rows`` and their frames onset..offset."""
    fourd = root / "4DME"
    write_4dme_sheet(fourd / SHEET, rows)
    if frames:
        for r in rows:
            folder = fourd / r["subject"] / r["clip"]
            write_numbered(folder, int(r["onset"]), int(r["offset"]), "{}.jpg", b"x")
    return fourd


def test_sheet_loads_with_exact_rows(tmp_path, caplog):
    fourd = _database(tmp_path)
    with caplog.at_level(logging.INFO):
        t = load_4dme(tmp_path)
    assert f"{SHEET} row 4 (S03/S03_1_4): Apex '/' -> apex missing" in caplog.text
    assert f"{SHEET} row 3 (S01/S01_2_1): AUs [4] marked (k) -> aus_k" in caplog.text
    assert list(t["subject"]) == ["4DME/S01", "4DME/S01", "4DME/S03"]
    assert list(t["clip"]) == ["S01_1_1", "S01_2_1", "S03_1_4"]
    assert list(t["onset"]) == [5, 20, 1] and list(t["offset"]) == [14, 27, 6]
    assert list(t["apex"][:2]) == [9, 24] and pd.isna(t["apex"].iloc[2])
    assert list(t["emotion"]) == ["positive", "negative+surprise", "repression"]
    assert list(t["emotions"]) == [("positive",), ("negative", "surprise"), ("repression",)]
    assert list(t["aus"]) == [(12,), (1, 2), (14,)]
    assert list(t["aus_k"]) == [(), (4,), ()]
    assert list(t["n_frames"]) == [10, 8, 6]
    assert set(t["fps"]) == {60.0} and set(t["camera"]) == {"grey"}
    assert t["frames_dir"].iloc[2] == str(fourd / "S03" / "S03_1_4")
    assert t.attrs["source"] == str(fourd / SHEET) and t.attrs["fixes_applied"] == []
    assert list(load_dataset("4dme", fourd, fps=30.0)["fps"]) == [30.0] * 3


def test_discover_and_datasets(tmp_path):
    _database(tmp_path)
    assert discover(tmp_path) == ["4DME"]
    assert discover(tmp_path / "4DME") == ["4DME"]
    res = CliRunner().invoke(app, ["datasets", str(tmp_path)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("│ 4DME"))
    assert [c.strip() for c in line.split("│")[1:5]] == ["4DME", "3", "2", "60"]
    (tmp_path / "empty" / "4DME").mkdir(parents=True)
    assert discover(tmp_path / "empty") == []


def test_split_k_aus():
    assert split_k_aus("AU4+AU7(k)+AU10", "here") == ("AU4+AU10", (7,))
    assert split_k_aus("AU4", "here") == ("AU4", ())
    assert split_k_aus(12, "here") == (12, ())


def test_missing_frames_raise_or_skip(tmp_path):
    fourd = _database(tmp_path)
    (fourd / "S01" / "S01_1_1" / "7.jpg").unlink()
    with pytest.raises(SchemaError, match=r"S01/S01_1_1: frames 7 of \[5, 14\] missing"):
        load_4dme(tmp_path)
    assert list(load_4dme(tmp_path, missing="skip")["clip"]) == ["S01_2_1", "S03_1_4"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"onset": "x"}, r"row 3 \(S01/S01_2_1\): Onset 'x' is not a frame number"),
        ({"subject": None}, r"row 3 \(S01_2_1\): sub_ID is empty"),
        ({"clip": None}, r"row 3 \(no fold_name\): fold_name is empty"),
        ({"emotion": None}, r"row 3 \(S01/S01_2_1\): Emotion is empty"),
        ({"aus": "AUx"}, r"cannot parse action units 'AUx' \(4DME_Labelling_Micro\.xlsx row 3"),
    ],
)
def test_bad_cells_name_the_file_and_row(tmp_path, change, message):
    fourd = _database(tmp_path, [ROWS[0], {**ROWS[1], **change}], frames=False)
    with pytest.raises((SchemaError, ValueError), match=message) as err:
        read_4dme_sheet(fourd / SHEET)
    assert SHEET in str(err.value) and "\n" not in str(err.value)


def test_bad_emotion_flag_and_sheet_errors(tmp_path):
    bad = tmp_path / "4DME" / SHEET
    write_xlsx(bad, ["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion",
                     "Positive"], [["S01", "a", 1, 2, 3, "AU1", "Positive", "yes"]])  # fmt: skip
    with pytest.raises(SchemaError, match=r"row 2 \(S01/a\): Positive 'yes' is not 0, 1 or blank"):
        read_4dme_sheet(bad)
    write_xlsx(bad, ["sub_ID", "fold_name", "Onset"], [["S01", "a", 1]])
    with pytest.raises(SchemaError, match=r"missing columns \['apex', 'offset', 'aus', 'emotion'"):
        read_4dme_sheet(bad)
    (tmp_path / "4DME" / "other.xlsx").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="2 workbooks in .*: pass sheet="):
        load_4dme(tmp_path)


def test_a_fix_is_applied_and_reported(tmp_path, monkeypatch, caplog):
    _database(tmp_path, [{**ROWS[0], "apex": 30}, ROWS[1]])
    toml = tmp_path / "fixes.toml"
    toml.write_text(
        '[[fix]]\ndataset = "4DME"\nsubject = "S01"\nclip = "S01_1_1"\n'
        "was = { apex = 30 }\nset = { apex = 10 }\n"
        'reason = "apex after the offset"\nsource = "test"\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(fixes_module, "FIXES_PATH", toml)
    with caplog.at_level(logging.INFO, logger="merkit.data.fixes"):
        t = load_4dme(tmp_path)
    assert t.attrs["fixes_applied"] == ["4DME/S01/S01_1_1: apex 30 -> 10"]
    assert list(t["apex"]) == [10, 24]
    assert "applied fix 4DME/S01/S01_1_1: apex 30 -> 10 (apex after the offset" in caplog.text
    with pytest.raises(SchemaError, match="S01_1_1"):
        load_4dme(tmp_path, fixes=False)
