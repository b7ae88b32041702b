"""MEGC2019 composite: the official list joined to tables built from the real sheets."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.casme2 import read_coding_sheet
from merkit.data.adapters.megc2019 import (
    find_list,
    load_megc2019,
    megc2019_composite,
    read_composite_list,
)
from merkit.data.adapters.smic import read_smic_list
from merkit.data.schema import SchemaError

ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
LIST = ANNOTATIONS / "megc2019" / "combined_3class_gt.csv"
CASME2_SHEET = ANNOTATIONS / "casme2" / "CASME2-coding-20140508.xlsx"
CASME2_2019 = ANNOTATIONS / "casme2" / "CASME2-coding-20190701.xlsx"
SMIC_LIST = ANNOTATIONS / "smic" / "smic-3classes.csv"
SAMM_SHEET = ANNOTATIONS / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx"
JPG = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8))[1].tobytes()


def _need(*paths: Path) -> None:
    for p in paths:
        if not p.exists():
            pytest.skip(f"real annotation file {p} not available")


def sample_table(dataset: str, coded: pd.DataFrame, fps: float, camera: str) -> pd.DataFrame:
    """A Sample table (no frames on disk) from tidy sheet columns."""
    t = coded.copy()
    t["dataset"] = dataset
    t["subject"] = [f"{dataset}/{s}" for s in t["subject"]]
    t["n_frames"] = t["offset"] - t["onset"] + 1
    t["fps"] = fps
    t["camera"] = camera
    return t


def samm_table() -> pd.DataFrame:
    """SAMM MICRO_ONLY rows (header below the preamble), subject kept as text '006'."""
    raw = pd.read_excel(SAMM_SHEET, sheet_name="MICRO_ONLY", header=None, dtype=str)
    head = next(i for i in range(30) if str(raw.iat[i, 0]).strip() == "Subject")
    body = raw.iloc[head + 1 :].dropna(how="all")
    body.columns = [str(c).strip() for c in raw.iloc[head]]
    coded = pd.DataFrame(
        {
            "subject": body["Subject"].str.strip(),
            "clip": body["Filename"].str.strip(),
            "onset": body["Onset Frame"].astype(int),
            "apex": body["Apex Frame"].astype(int),
            "offset": body["Offset Frame"].astype(int),
            "emotion": body["Estimated Emotion"].str.strip().str.lower(),
        }
    ).reset_index(drop=True)
    # the v2 sheet's known apex errors (028_4_1, 032_3_1) are not this test's business
    coded["apex"] = coded["apex"].clip(coded["onset"], coded["offset"])
    return sample_table("SAMM", coded, 200.0, "grey")


@pytest.fixture(scope="module")
def real_tables() -> dict[str, pd.DataFrame]:
    _need(LIST, CASME2_SHEET, SMIC_LIST, SAMM_SHEET)
    return {
        "CASME2": sample_table("CASME2", read_coding_sheet(CASME2_SHEET), 200.0, "colour"),
        "SMIC_HS": sample_table("SMIC_HS", read_smic_list(SMIC_LIST), 100.0, "hs"),
        "SAMM": samm_table(),
    }


def test_official_list():
    _need(LIST)
    listed = read_composite_list(LIST)
    assert len(listed) == 442
    assert listed["dataset"].value_counts().to_dict() == {"SMIC_HS": 164, "CASME2": 145,
                                                          "SAMM": 133}  # fmt: skip
    assert listed["composite_label"].value_counts().to_dict() == {
        "negative": 250, "positive": 109, "surprise": 83,
    }  # fmt: skip
    smic = listed[listed["dataset"] == "SMIC_HS"].iloc[0]
    assert (smic["list_clip"], smic["clip"], smic["subject_number"]) == ("s01_ne_01", "s1_ne_01", 1)
    samm = listed[listed["dataset"] == "SAMM"].iloc[0]
    assert (samm["list_subject"], samm["subject_number"], samm["clip"]) == ("6", 6, "006_1_2")


def test_composite_from_real_sheets(real_tables, caplog):
    with caplog.at_level(logging.INFO, logger="merkit.data.adapters.megc2019"):
        comp = megc2019_composite(
            real_tables["CASME2"], real_tables["SMIC_HS"], real_tables["SAMM"], LIST
        )
    assert len(comp) == 442
    assert comp["subject"].nunique() == 68
    assert comp.groupby("dataset")["subject"].nunique().to_dict() == {
        "CASME2": 24, "SAMM": 28, "SMIC_HS": 16,
    }  # fmt: skip
    assert comp["dataset"].value_counts().to_dict() == {"SMIC_HS": 164, "CASME2": 145, "SAMM": 133}
    assert comp["composite_label"].value_counts().to_dict() == {
        "negative": 250, "positive": 109, "surprise": 83,
    }  # fmt: skip
    assert (comp["label"] == comp["composite_label"]).all()
    assert comp["y"].value_counts().sort_index().tolist() == [250, 109, 83]
    assert comp["list_row"].tolist() == list(range(1, 443))
    first = comp.iloc[0]
    assert (first["dataset"], first["subject"], first["clip"], first["label"]) == (
        "CASME2", "CASME2/01", "EP02_01f", "positive",
    )  # fmt: skip
    samm = comp[comp["dataset"] == "SAMM"].iloc[0]
    assert (samm["subject"], samm["clip"], samm["emotion"]) == ("SAMM/006", "006_1_2", "anger")
    smic = comp[comp["dataset"] == "SMIC_HS"].iloc[0]
    assert (smic["subject"], smic["clip"]) == ("SMIC_HS/s1", "s1_ne_01")
    # per database, as in the FR paper's Table 9
    per_db = (
        comp.groupby(["dataset", "label"])
        .size()
        .unstack()
        .loc[["SMIC_HS", "CASME2", "SAMM"], ["negative", "positive", "surprise"]]
    )
    assert per_db.values.tolist() == [[70, 51, 43], [88, 32, 25], [92, 26, 15]]
    # the list agrees with the megc3 mapping of every clip's native emotion
    assert comp.attrs["label_disagreements"] == []
    assert comp.attrs["classes"] == ("negative", "positive", "surprise")
    # the clips the list leaves out, e.g. CASME II others and the 2 known exclusions
    assert "110 CASME2 clips are not in the list" in caplog.text
    assert "26 SAMM clips are not in the list" in caplog.text
    casme2 = real_tables["CASME2"]
    left = set(zip(casme2["subject"], casme2["clip"], strict=True)) - set(
        zip(comp["subject"], comp["clip"], strict=True)
    )
    assert {("CASME2/04", "EP12_01f"), ("CASME2/05", "EP09_05f")} <= left


def test_relabelled_2019_sheet_is_logged(real_tables, caplog):
    _need(CASME2_2019)
    casme2 = sample_table("CASME2", read_coding_sheet(CASME2_2019), 200.0, "colour")
    # pretend a clip of the list was relabelled in a newer sheet
    casme2.loc[(casme2["subject"] == "CASME2/01") & (casme2["clip"] == "EP02_01f"), "emotion"] = (
        "others"
    )
    with caplog.at_level(logging.WARNING):
        comp = megc2019_composite(casme2, real_tables["SMIC_HS"], real_tables["SAMM"], LIST)
    assert len(comp) == 442
    assert comp.attrs["label_disagreements"] == [
        ("CASME2", "CASME2/01", "EP02_01f", "others", None, "positive")
    ]
    assert "CASME2/01/EP02_01f (others -> list positive)" in caplog.text


def test_every_list_line_must_match_exactly_one_clip(real_tables):
    samm = real_tables["SAMM"]
    samm = samm[~samm["clip"].isin(["006_1_2", "011_2_3"])]
    smic = real_tables["SMIC_HS"].copy()
    smic.loc[0, "clip"] = "s1_ne_99"
    with pytest.raises(SchemaError) as err:
        megc2019_composite(real_tables["CASME2"], smic, samm, LIST)
    msg = str(err.value)
    assert msg.startswith("MEGC2019 composite: 3 list line(s) do not match exactly one clip")
    assert "combined_3class_gt.csv line 146 (SMIC_HS s01 s01_ne_01): no such clip" in msg
    assert "(SAMM 6 006_1_2): no such clip in the SAMM table" in msg
    assert "(SAMM 11 011_2_3): no such clip" in msg
    with pytest.raises(SchemaError, match="the SAMM table holds a CASME2 clip"):
        megc2019_composite(real_tables["CASME2"], smic, real_tables["CASME2"], LIST)


def test_bad_lists(tmp_path):
    bad = tmp_path / "l.csv"
    bad.write_text(
        "casme2,sub01,EP02_01f,1\nmmew,S01,x,0\nsmic,s02,s01_ne_01,0\nsamm,6,006_1_2,5\n"
    )
    with pytest.raises(SchemaError) as err:
        read_composite_list(bad)
    msg = str(err.value)
    assert "3 bad line(s)" in msg
    assert "l.csv line 2 (mmew S01 x): dataset 'mmew' is not one of" in msg
    assert "line 3 (smic s02 s01_ne_01): SMIC clip 's01_ne_01' does not belong" in msg
    assert "line 4 (samm 6 006_1_2): label '5' is not one of [0, 1, 2]" in msg
    bad.write_text("casme2,sub01,EP02_01f,1\ncasme2,1,EP02_01f,0\n")
    with pytest.raises(SchemaError, match=r"clips listed twice, lines \[1, 2\]"):
        read_composite_list(bad)
    bad.write_text("casme2,sub01,EP02_01f\n")
    with pytest.raises(SchemaError, match="expected 4 columns"):
        read_composite_list(bad)
    with pytest.raises(FileNotFoundError, match="composite list .*nope.csv does not exist"):
        read_composite_list(tmp_path / "nope.csv")


def _write_frames(folder: Path, first: int, last: int, pattern: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        (folder / pattern.format(n)).write_bytes(JPG)


def test_load_from_a_data_root(tmp_path):
    import openpyxl

    c2 = tmp_path / "CASME2"
    wb = openpyxl.Workbook()
    wb.active.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame",
                      "Action Units", "Estimated Emotion"])  # fmt: skip
    wb.active.append(["01", "EP02_01f", 46, 59, 86, "12", "happiness"])
    wb.active.append(["01", "EP03_02", 10, 12, 20, "18", "others"])
    c2.mkdir()
    wb.save(c2 / "CASME2-coding-20140508.xlsx")
    _write_frames(c2 / "Cropped" / "sub01" / "EP02_01f", 46, 86, "img{}.jpg")
    _write_frames(c2 / "Cropped" / "sub01" / "EP03_02", 10, 20, "img{}.jpg")
    _write_frames(
        tmp_path / "SMIC" / "HS" / "s1" / "micro" / "surprise" / "s1_sur_01", 1, 9, "image{}.bmp"
    )
    samm = pd.DataFrame(
        {
            "dataset": "SAMM", "subject": "SAMM/006", "clip": ["006_1_2"], "n_frames": 71,
            "fps": 200.0, "onset": 5562, "apex": 5588, "offset": 5632, "emotion": "anger",
            "camera": "grey",
        }
    )  # fmt: skip
    (tmp_path / "MEGC2019").mkdir()
    listing = tmp_path / "MEGC2019" / "combined_3class_gt.csv"
    listing.write_text("casme2,sub01,EP02_01f,1\nsmic,s01,s01_sur_01,2\nsamm,6,006_1_2,0\n")
    assert find_list(tmp_path) == listing
    comp = load_megc2019(tmp_path, tables={"SAMM": samm})
    assert comp[["subject", "clip", "label"]].values.tolist() == [
        ["CASME2/01", "EP02_01f", "positive"],
        ["SMIC_HS/s1", "s1_sur_01", "surprise"],
        ["SAMM/006", "006_1_2", "negative"],
    ]
    assert comp["frames_dir"].iloc[0] == str(c2 / "Cropped" / "sub01" / "EP02_01f")
    assert comp["n_frames"].tolist() == [41, 9, 71]
    with pytest.raises(KeyError, match=r"tables= keys \['MMEW'\]"):
        load_megc2019(tmp_path, tables={"MMEW": samm})
    with pytest.raises(FileNotFoundError, match="no MEGC2019 composite list"):
        find_list(tmp_path / "CASME2")
