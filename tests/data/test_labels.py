"""AU parsing and label schemes, on hand-written strings and on the real coding sheets."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.casme2 import read_coding_sheet
from merkit.data.labels import (
    SCHEMES,
    LabelScheme,
    apply_scheme,
    au_onehot,
    dataset_family,
    get_scheme,
    parse_aus,
)
from merkit.data.schema import SchemaError

ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
SHEET_2014 = ANNOTATIONS / "casme2" / "CASME2-coding-20140508.xlsx"
SHEET_2019 = ANNOTATIONS / "casme2" / "CASME2-coding-20190701.xlsx"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real annotation file {path} not available")
    return path


# ---------------------------------------------------------------------------------------
# parse_aus: hand-written cases
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("4+L10", ((4, 10), ("", "L"), ("", ""))),
        ("R12C", ((12,), ("R",), ("C",))),
        ("T28+14", ((14, 28), ("", "T"), ("", ""))),
        ("B23", ((23,), ("B",), ("",))),
        ("12", ((12,), ("",), ("",))),
        (12, ((12,), ("",), ("",))),
        (12.0, ((12,), ("",), ("",))),
        (np.int64(7), ((7,), ("",), ("",))),
        ("12.0", ((12,), ("",), ("",))),
        ("4+7+10", ((4, 7, 10), ("", "", ""), ("", "", ""))),
        ("10+7+4", ((4, 7, 10), ("", "", ""), ("", "", ""))),
        ("L12+R14", ((12, 14), ("L", "R"), ("", ""))),
        ("1+2+5B", ((1, 2, 5), ("", "", ""), ("", "", "B"))),
        ("4,7", ((4, 7), ("", ""), ("", ""))),
        ("4，11", ((4, 11), ("", ""), ("", ""))),  # full-width comma (CAS(ME)^3)
        ("14,L24,", ((14, 24), ("", "L"), ("", ""))),  # trailing separator
        ("  AU4 + au 12 ", ((4, 12), ("", ""), ("", ""))),
        ("AU-6", ((6,), ("",), ("",))),
        ("l12+r14b", ((12, 14), ("L", "R"), ("", "B"))),
        ("AD38+M58+4", ((4, 38, 58), ("", "", ""), ("", "", ""))),
        ("A1B+A2C", ((1, 2), ("A", "A"), ("B", "C"))),
        ("10A/B", ((10,), ("",), ("A/B",))),
        ("A/L12", ((12,), ("A/L",), ("",))),
        ("12A+ref(24)", ((12, 24), ("", ""), ("A", ""))),
        ("ref(L10)+A12B", ((10, 12), ("L", "A"), ("", "B"))),
        ("13?", ((13,), ("",), ("",))),
        ("(R6 or R12) + R15", ((6, 12, 15), ("R", "R", "R"), ("", "", ""))),
        ("R14+17+soft focus", ((14, 17), ("R", ""), ("", ""))),
    ],
)
def test_parse_aus_examples(text, expected):
    assert parse_aus(text) == expected


def test_parse_aus_merges_duplicates_and_documents_the_rule():
    assert parse_aus("L12+R12") == ((12,), ("LR",), ("",))
    assert parse_aus("R12+L12") == ((12,), ("LR",), ("",))  # alphabetical, order-free
    assert parse_aus("12+L12") == ((12,), ("",), ("",))  # bilateral coding wins
    assert parse_aus("12B+12D+12") == ((12,), ("",), ("D",))  # strongest intensity
    assert parse_aus("R1+L1+R2+R5") == ((1, 2, 5), ("LR", "R", "R"), ("", "", ""))


@pytest.mark.parametrize("text", ["?", "/", "", "   ", None, float("nan"), pd.NA])
def test_parse_aus_unknown_is_empty_and_logged(text, caplog):
    with caplog.at_level(logging.INFO, logger="merkit.data.labels"):
        assert parse_aus(text, "sheet.xlsx row 9") == ((), (), ())
    assert "sheet.xlsx row 9" in caplog.text


def test_parse_aus_logs_what_it_does_not_keep(caplog):
    with caplog.at_level(logging.INFO, logger="merkit.data.labels"):
        parse_aus("R14+17+soft focus", "samm row 40")
        parse_aus("13?", "casme3 row 7")
        parse_aus("(R6 or R12)+R15", "samm row 41")
    assert "dropped 'soft focus'" in caplog.text and "samm row 40" in caplog.text
    assert "uncertain AU 13 kept" in caplog.text
    assert "alternatives" in caplog.text and "[6, 12]" in caplog.text


def test_parse_aus_alternatives_policy():
    assert parse_aus("R14A or 17A or 24A", alternatives="first") == ((14,), ("R",), ("A",))
    assert parse_aus("R14A or 17A or 24A")[0] == (14, 17, 24)
    with pytest.raises(ValueError, match=r"alternatives='raise'"):
        parse_aus("L12 or L14", "SAMM row 3", alternatives="raise")
    with pytest.raises(ValueError, match="alternatives must be"):
        parse_aus("12", alternatives="any")


@pytest.mark.parametrize("text", ["4/7", "x", "12.5", "AU", "4-7", "12F", "LL12", "0", "4+?+7"])
def test_parse_aus_rejects_garbage_quoting_text_and_context(text):
    with pytest.raises(ValueError) as err:
        parse_aus(text, "CASME2-coding.xlsx row 12 (sub01/EP02_01f)")
    msg = str(err.value)
    assert repr(text) in msg
    assert "CASME2-coding.xlsx row 12 (sub01/EP02_01f)" in msg


@pytest.mark.parametrize("value", [12.5, -3, 0, True])
def test_parse_aus_rejects_bad_numbers(value):
    with pytest.raises(ValueError, match="cannot parse action units"):
        parse_aus(value, "row 3")


# ---------------------------------------------------------------------------------------
# parse_aus: every distinct AU string of the real sheets
# ---------------------------------------------------------------------------------------


def _header_table(path: Path, first_header: str, sheet=0) -> pd.DataFrame:
    raw = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object)
    first = raw.iloc[:, 0].astype(str).str.strip().str.lower()
    row = int(np.flatnonzero(first == first_header.lower())[0])
    table = raw.iloc[row + 1 :].copy()
    table.columns = [str(c).strip() for c in raw.iloc[row]]
    return table


REAL_AU_COLUMNS = [
    ("casme2/CASME2-coding-20140508.xlsx", "Subject", "Action Units", 68),
    ("casme2/CASME2-coding-20190701.xlsx", "Subject", "Action Units", 74),
    ("samm/SAMM_Micro_FACS_Codes_v2.xlsx", "Subject", "Action Units", 97),
    ("samm/SAMM_Micro_FACS_Codes_v2_uncorrected.xlsx", "Subject", "Action Units", 97),
    ("casme3/CAS(ME)3_part_C_ME.xlsx", "sub", "au", 94),
    ("casme3/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", "Subject", "AU", 90),
    ("casme3/cas(me)3_part_A_ME_label_JpgIndex_v2_corrected.xlsx", "Subject", "AU", 90),
    ("dfme/training_full_with_AU.xlsx", "Subject", "AU", 282),
    ("dfme/testA_full_with_AU.xlsx", "Subject", "AU", 90),
    ("dfme/testB_full_with_AU.xlsx", "Subject", "AU", 82),
]


@pytest.fixture(scope="module")
def real_au_strings() -> dict[str, set]:
    """Distinct AU cells per real sheet (values as stored: str, int...)."""
    out = {}
    for rel, first, col, _ in REAL_AU_COLUMNS:
        table = _header_table(_need(ANNOTATIONS / rel), first)
        out[rel] = {v for v in table[col] if not (isinstance(v, float) and np.isnan(v))}
    return out


def test_every_real_au_string_parses(real_au_strings):
    n_total = 0
    for rel, _, _, n_distinct in REAL_AU_COLUMNS:
        values = real_au_strings[rel]
        assert len(values) == n_distinct, rel
        for v in values:
            aus, sides, intens = parse_aus(v, rel)
            assert list(aus) == sorted(set(aus))
            assert len(sides) == len(aus) == len(intens)
            n_total += 1
    assert n_total == 1064
    everything = set().union(*real_au_strings.values())
    # the awkward real cases are really in the sheets, and give these exact results
    expected = {
        "T28+14": ((14, 28), ("", "T"), ("", "")),
        "B28": ((28,), ("B",), ("",)),
        "4，11": ((4, 11), ("", ""), ("", "")),
        "L1,10,11,38,": ((1, 10, 11, 38), ("L", "", "", ""), ("", "", "", "")),
        "(R6 or R12) + R15": ((6, 12, 15), ("R", "R", "R"), ("", "", "")),
        "ref(L10)+A12B": ((10, 12), ("L", "A"), ("", "B")),
        "4D+ref(6)+7C+43E": ((4, 6, 7, 43), ("", "", "", ""), ("D", "", "C", "E")),
        "R1+L1+R2+R5": ((1, 2, 5), ("LR", "R", "R"), ("", "", "")),
        "1+2+5+AD38+M58": ((1, 2, 5, 38, 58), ("",) * 5, ("",) * 5),
        "A/L12": ((12,), ("A/L",), ("",)),
        "13?": ((13,), ("",), ("",)),
        "?": ((), (), ()),
        12: ((12,), ("",), ("",)),
    }
    for text, result in expected.items():
        assert text in everything, text
        assert parse_aus(text) == result, text


def test_casme2_sheet_au_statistics():
    table = read_coding_sheet(_need(SHEET_2014))
    assert sum(len(a) for a in table["aus"]) == 371
    assert sum(4 in a for a in table["aus"]) == 129
    assert sum(len(a) == 0 for a in table["aus"]) == 5  # the five '?' cells
    assert sum(s != "" for t in table["au_sides"] for s in t) == 60
    onehot = au_onehot(table)
    assert onehot.shape == (255, 19)
    assert int(onehot["AU4"].sum()) == 129 and int(onehot["AU12"].sum()) == 34


def test_au_onehot_with_a_chosen_au_set():
    table = pd.DataFrame({"aus": [(4, 7), (12,), ()]})
    got = au_onehot(table, aus=[12, 4, 1])
    assert list(got.columns) == ["AU1", "AU4", "AU12"]
    assert got.to_numpy().tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


# ---------------------------------------------------------------------------------------
# label schemes
# ---------------------------------------------------------------------------------------


def _casme2_table(sheet: Path) -> pd.DataFrame:
    coded = read_coding_sheet(_need(sheet))
    return coded.assign(dataset="CASME2", subject="CASME2/" + coded["subject"])


def _counts(table: pd.DataFrame) -> tuple[int, int, int, int]:
    vc = table["label"].value_counts()
    return len(table), int(vc["negative"]), int(vc["positive"]), int(vc["surprise"])


def test_cdmer3_on_the_2014_sheet():
    # The CDMER benchmark's features have 130 CASME II clips (73 / 32 / 25); the 2014
    # sheet has one disgust clip fewer than that release: 129 (72 / 32 / 25).
    out = apply_scheme(_casme2_table(SHEET_2014), "cdmer3")
    assert _counts(out) == (129, 72, 32, 25)
    assert out.attrs["dropped"] == {"CASME2": {"others": 99, "repression": 27}}
    assert out.attrs["classes"] == ("negative", "positive", "surprise")
    assert out.attrs["scheme"] == "cdmer3"
    index = {"negative": 0, "positive": 1, "surprise": 2}
    assert out["y"].tolist() == [index[lab] for lab in out["label"]]
    assert out["y"].dtype == np.int64
    assert list(out.index) == list(range(129))


def test_cdmer3_tsrg_and_casme2_5_on_the_2014_sheet():
    table = _casme2_table(SHEET_2014)
    tsrg = apply_scheme(table, "cdmer3_tsrg")
    assert _counts(tsrg) == (147, 90, 32, 25)
    assert tsrg.attrs["dropped"] == {"CASME2": {"others": 99, "sadness": 7, "fear": 2}}
    five = apply_scheme(table, "casme2_5")
    assert len(five) == 246
    assert five["label"].value_counts().to_dict() == {
        "others": 99,
        "disgust": 63,
        "happiness": 32,
        "repression": 27,
        "surprise": 25,
    }
    assert five.attrs["dropped"] == {"CASME2": {"sadness": 7, "fear": 2}}
    assert five.attrs["classes"] == ("happiness", "surprise", "disgust", "repression", "others")
    assert _counts(apply_scheme(table, "megc3")) == (147, 90, 32, 25)


def test_schemes_on_the_2019_sheet():
    # the 2019 sheet relabels sub24 EP07_01, EP07_04f, EP10_03 from sadness to surprise
    table = _casme2_table(SHEET_2019)
    old = _casme2_table(SHEET_2014)
    changed = table[table["emotion"] != old["emotion"]]
    assert changed["subject"].tolist() == ["CASME2/24"] * 3
    assert changed["clip"].tolist() == ["EP07_01", "EP07_04f", "EP10_03"]
    assert old.loc[changed.index, "emotion"].tolist() == ["sadness"] * 3
    assert changed["emotion"].tolist() == ["surprise"] * 3
    assert _counts(apply_scheme(table, "cdmer3")) == (129, 69, 32, 28)
    assert _counts(apply_scheme(table, "cdmer3_tsrg")) == (150, 90, 32, 28)
    assert len(apply_scheme(table, "casme2_5")) == 249


def _toy(dataset, emotions):
    return pd.DataFrame(
        {
            "dataset": dataset,
            "subject": [f"{dataset}/s{i}" for i in range(len(emotions))],
            "clip": [f"c{i}" for i in range(len(emotions))],
            "emotion": emotions,
        }
    )


def test_smic_keeps_its_three_classes_for_every_camera(caplog):
    table = pd.concat(
        [
            _toy(d, ["negative", "Positive ", "surprise"])
            for d in ("SMIC_HS", "SMIC_VIS", "SMIC_NIR")
        ]
    )
    for name in ("cdmer3", "cdmer3_tsrg", "megc3"):
        with caplog.at_level(logging.INFO, logger="merkit.data.labels"):
            out = apply_scheme(table, name)
        assert out["label"].tolist() == ["negative", "positive", "surprise"] * 3
        assert out["y"].tolist() == [0, 1, 2] * 3
        assert out.attrs["dropped"] == {}


def test_dropped_rows_are_logged_per_emotion(caplog):
    table = _toy("CASME2", ["happiness", "others", "others", "repression", "fear"])
    with caplog.at_level(logging.INFO, logger="merkit.data.labels"):
        out = apply_scheme(table, "cdmer3")
    assert out["clip"].tolist() == ["c0", "c4"]
    assert "dropped 3 of 5 CASME2 rows (others 2, repression 1)" in caplog.text


def test_unknown_emotion_raises_naming_the_clips():
    table = _toy("CASME2", ["happiness", "contempt", "joy"])
    with pytest.raises(SchemaError) as err:
        apply_scheme(table, "cdmer3")
    msg = str(err.value)
    assert "CASME2/s1/c1 (emotion 'contempt')" in msg
    assert "CASME2/s2/c2 (emotion 'joy')" in msg
    assert "c0" not in msg


def test_unknown_dataset_family_raises():
    with pytest.raises(SchemaError, match=r"'casme2_5' does not know \[\('SMIC', 'negative'\)\]"):
        apply_scheme(_toy("SMIC_HS", ["negative"]), "casme2_5")


def test_registry_and_scheme_construction():
    assert set(SCHEMES) == {"cdmer3", "cdmer3_tsrg", "megc3", "casme2_5", "four_class", "dfme7",
                            "casme1_4", "fourd5"}  # fmt: skip
    assert get_scheme("cdmer3") is SCHEMES["cdmer3"]
    assert get_scheme(SCHEMES["megc3"]) is SCHEMES["megc3"]
    with pytest.raises(KeyError, match="unknown label scheme 'cdmer4'"):
        get_scheme("cdmer4")
    s = SCHEMES["cdmer3"]
    assert s.label_of("SMIC_VIS", "Positive") == "positive"
    assert s.label_of("CASME2", "others") is None
    assert s.families == frozenset({"CASME2", "SMIC"})
    assert SCHEMES["megc3"].label_of("SAMM", "Contempt") == "negative"
    assert dataset_family("SMIC_NIR") == "SMIC" and dataset_family("CASME2") == "CASME2"
    # CAS(ME)^2 is its own family, not a "CASME" that a future CASME I would share
    assert dataset_family("CASME_SQ") == "CASME_SQ" and dataset_family("casme3_a") == "CASME3"
    with pytest.raises(ValueError, match="maps to classes not in"):
        LabelScheme("bad", ("a",), {("X", "e"): "b"})
    with pytest.raises(ValueError, match="both mapped and excluded"):
        LabelScheme.from_groups("bad", ("a",), {"X": {"a": ["e"]}}, {"X": ["e"]})


def test_custom_scheme_object_is_accepted():
    scheme = LabelScheme.from_groups(
        "pos_neg",
        ("neg", "pos"),
        {"CASME2": {"neg": ["disgust"], "pos": ["happiness"]}},
        {"CASME2": ["others"]},
    )
    out = apply_scheme(_toy("CASME2", ["others", "happiness", "disgust"]), scheme)
    assert out["label"].tolist() == ["pos", "neg"] and out["y"].tolist() == [1, 0]
