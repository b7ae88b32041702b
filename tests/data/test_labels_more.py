"""Schemes four_class and dfme7 and the au12 multi-label targets, on the real sheets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.casme2 import read_coding_sheet
from merkit.data.adapters.dfme import read_dfme_sheet
from merkit.data.labels import AU12, AU_SETS, DFME7, SCHEMES, apply_scheme, au_labels
from merkit.data.schema import SchemaError

ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
CASME2_2014 = ANNOTATIONS / "casme2" / "CASME2-coding-20140508.xlsx"
CASME2_2019 = ANNOTATIONS / "casme2" / "CASME2-coding-20190701.xlsx"
SAMM_SHEET = ANNOTATIONS / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx"
DFME = ANNOTATIONS / "dfme"
DFME_SHEETS = ("training_full_with_AU.xlsx", "testA_full_with_AU.xlsx", "testB_full_with_AU.xlsx")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real annotation file {path} not available")
    return path


def _table(dataset: str, coded: pd.DataFrame) -> pd.DataFrame:
    t = coded.copy()
    t["dataset"] = dataset
    return t


def _samm_emotions() -> pd.DataFrame:
    raw = pd.read_excel(_need(SAMM_SHEET), sheet_name="MICRO_ONLY", header=None, dtype=str)
    head = next(i for i in range(30) if str(raw.iat[i, 0]).strip() == "Subject")
    body = raw.iloc[head + 1 :].dropna(how="all")
    col = [str(c).strip() for c in raw.iloc[head]].index("Estimated Emotion")
    return pd.DataFrame(
        {
            "dataset": "SAMM",
            "subject": body.iloc[:, 0].str.strip().tolist(),
            "clip": body.iloc[:, 1].str.strip().tolist(),
            "emotion": body.iloc[:, col].str.strip().str.lower().tolist(),
        }
    )


@pytest.fixture(scope="module")
def dfme() -> pd.DataFrame:
    parts = [read_dfme_sheet(_need(DFME / name)) for name in DFME_SHEETS]
    return _table("DFME", pd.concat(parts, ignore_index=True))


def test_four_class_casme2_counts_vs_fr_paper():
    # FR paper Table 12, CASME II (4 classes), 256 clips: 73 / 32 / 25 / 126. The shared
    # 2014 sheet has 255 clips (one negative fewer: disgust 63 + sadness 7 + fear 2 = 72).
    t = apply_scheme(_table("CASME2", read_coding_sheet(_need(CASME2_2014))), "four_class")
    assert len(t) == 255 and t.attrs["dropped"] == {}
    assert t["label"].value_counts().to_dict() == {
        "others": 126, "negative": 72, "positive": 32, "surprise": 25,
    }  # fmt: skip
    assert t["y"].value_counts().sort_index().tolist() == [72, 32, 25, 126]
    # the 2019 sheet moved 3 sub24 clips from sadness to surprise
    t19 = apply_scheme(_table("CASME2", read_coding_sheet(_need(CASME2_2019))), "four_class")
    assert t19["label"].value_counts().to_dict() == {
        "others": 126, "negative": 69, "positive": 32, "surprise": 28,
    }  # fmt: skip
    rep = t[t["emotion"] == "repression"]
    assert len(rep) == 27 and set(rep["label"]) == {"others"}


def test_four_class_samm_counts_match_fr_paper():
    # FR paper Table 12, SAMM: 92 / 26 / 15 / 26 = 159 (negative = anger, contempt,
    # disgust, fear, sadness)
    t = apply_scheme(_samm_emotions(), "four_class")
    assert len(t) == 159
    assert t["label"].value_counts().to_dict() == {
        "negative": 92, "positive": 26, "others": 26, "surprise": 15,
    }  # fmt: skip
    assert set(t.loc[t["label"] == "negative", "emotion"]) == {
        "anger", "contempt", "disgust", "fear", "sadness",
    }  # fmt: skip


def test_four_class_refuses_other_databases():
    smic = pd.DataFrame({"dataset": ["SMIC_HS"], "subject": ["s1"], "clip": ["c"],
                         "emotion": ["negative"]})  # fmt: skip
    with pytest.raises(SchemaError, match=r"four_class' does not know \[\('SMIC', 'negative'\)\]"):
        apply_scheme(smic, "four_class")
    assert SCHEMES["four_class"].families == frozenset({"CASME2", "SAMM", "CASME1", "4DME"})


def test_dfme7_counts_on_the_real_sheets(dfme):
    t = apply_scheme(dfme, "dfme7")
    assert len(t) == 2629
    assert t["label"].value_counts().to_dict() == {
        "disgust": 735, "surprise": 447, "fear": 365, "sadness": 359, "happiness": 311,
        "anger": 241, "contempt": 171,
    }  # fmt: skip
    # y is the sheets' EmotionId
    assert (t["y"].to_numpy() == t["emotion_id"].to_numpy(dtype=np.int64)).all()
    assert SCHEMES["dfme7"].classes == DFME7
    others = pd.DataFrame({"dataset": ["DFME"] * 2, "subject": ["a", "b"], "clip": ["x", "y"],
                           "emotion": ["others", "fear"]})  # fmt: skip
    kept = apply_scheme(others, "dfme7")
    assert kept["label"].tolist() == ["fear"] and kept.attrs["dropped"] == {"DFME": {"others": 1}}


def test_au12_on_the_real_dfme_sheets(dfme):
    Y, names = au_labels(dfme)
    assert Y.shape == (2629, 12) and Y.dtype == np.int8
    assert names == [f"AU{a}" for a in AU12] and AU_SETS["au12"] == AU12
    expected = {
        "AU1": 441, "AU2": 398, "AU4": 1079, "AU5": 450, "AU6": 242, "AU7": 563, "AU9": 29,
        "AU10": 158, "AU12": 395, "AU14": 164, "AU15": 46, "AU17": 129,
    }  # fmt: skip
    assert dict(zip(names, Y.sum(axis=0).tolist(), strict=True)) == expected
    # the 12 AUs cover 4094 of the 4554 AU codings (89.9 %; the paper: 88.48 % of all DFME)
    assert int(Y.sum()) == 4094 and sum(len(a) for a in dfme["aus"]) == 4554
    uni, _ = au_labels(dfme, "au12", side="unilateral")
    bi, _ = au_labels(dfme, side="bilateral")
    assert dict(zip(names, uni.sum(axis=0).tolist(), strict=True))["AU12"] == 168
    assert ((uni | bi) == Y).all() and not (uni & bi).any()
    contempt = dfme["emotion"].eq("contempt").to_numpy()
    # L/R-AU12 is the contempt cue (DFME Table 7): most contempt clips have it
    assert uni[contempt, names.index("AU12")].mean() > 0.5


def test_au_labels_sides_and_errors():
    table = pd.DataFrame(
        {
            "aus": [(4, 12), (12,), (), (1, 2)],
            "au_sides": [("", "L"), ("LR",), (), ("T", "")],
        }
    )
    Y, names = au_labels(table, aus=[12, 4, 1])
    assert names == ["AU12", "AU4", "AU1"]
    assert Y.tolist() == [[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1]]
    assert au_labels(table, [12, 4, 1], side="unilateral")[0].tolist() == [
        [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 1],
    ]  # fmt: skip
    assert au_labels(table, [12, 4, 1], side="bilateral")[0].tolist() == [
        [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0],
    ]  # fmt: skip
    with pytest.raises(KeyError, match="unknown AU set 'au99'"):
        au_labels(table, "au99")
    with pytest.raises(ValueError, match="distinct AU numbers"):
        au_labels(table, [4, 4])
    with pytest.raises(ValueError, match="side must be one of"):
        au_labels(table, side="left")
    with pytest.raises(SchemaError, match="lacks the 'aus' column"):
        au_labels(pd.DataFrame({"x": [1]}))
    with pytest.raises(SchemaError, match="lacks the 'au_sides' column"):
        au_labels(table[["aus"]], side="bilateral")
