"""Known annotation fixes: the shipped fixes.toml, the loader and the applier."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from merkit.data.fixes import FIXES_PATH, Fix, apply_fixes, load_fixes
from merkit.data.schema import SchemaError


def table(rows: list[dict]) -> pd.DataFrame:
    base = {"dataset": "SAMM", "subject": "SAMM/028", "clip": "028_4_1", "onset": 1071,
            "apex": 1143, "offset": 1134, "emotion": "contempt", "aus": (14,)}  # fmt: skip
    return pd.DataFrame([{**base, **r} for r in rows])


def fix(**kw) -> Fix:
    args = {"dataset": "SAMM", "subject": "028", "clip": "028_4_1", "was": {"apex": 1143},
            "set": {"apex": 1113}, "reason": "r", "source": "s"}  # fmt: skip
    args.update(kw)
    return Fix(**args)


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "fixes.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_shipped_fixes():
    fixes = load_fixes()
    assert FIXES_PATH.name == "fixes.toml" and FIXES_PATH.is_file()
    assert [(f.dataset, f.subject, f.clip) for f in fixes] == [
        ("SAMM", "028", "028_4_1"),
        ("SAMM", "032", "032_3_1"),
        ("CASME3_A", "spNO.149", "d_112"),
        ("CASME3_A", "spNO.216", "d_3647"),
        ("CASME3_A", "spNO.40", "e_1812"),
        ("CASME3_A", "spNO.40", "e_2327"),
    ]
    assert [f.describe() for f in fixes[:2]] == ["apex 1143 -> 1113", "apex 1930 -> 4930"]
    for f in fixes:
        assert len(f.reason) > 20 and "diff of" in f.source
    # protocol exclusions are not errata: no CASME II entry
    assert not [f for f in fixes if f.dataset == "CASME2"]
    assert fixes[0].name == "SAMM/028/028_4_1" and fixes[0].table_subject == "SAMM/028"


def test_apply_changes_only_the_named_clip(caplog):
    t = table([{}, {"subject": "SAMM/032", "clip": "032_3_1", "onset": 4896, "apex": 1930,
                    "offset": 4970}, {"clip": "028_4_2", "apex": 1143}])  # fmt: skip
    with caplog.at_level(logging.INFO, logger="merkit.data.fixes"):
        out = apply_fixes(t, "SAMM")
    assert out["apex"].tolist() == [1113, 4930, 1143]  # 028_4_2 has the same apex, untouched
    assert t["apex"].tolist() == [1143, 1930, 1143]  # input not modified
    assert out.attrs["fixes_applied"] == [
        "SAMM/028/028_4_1: apex 1143 -> 1113",
        "SAMM/032/032_3_1: apex 1930 -> 4930",
    ]
    assert caplog.text.count("applied fix") == 2
    assert "apex 1143 lies after the offset 1134" in caplog.text


def test_already_corrected_other_values_and_other_datasets(caplog):
    fixes = [fix()]
    done = apply_fixes(table([{"apex": 1113}]), fixes=fixes)
    assert done["apex"].tolist() == [1113] and done.attrs["fixes_applied"] == []
    with caplog.at_level(logging.WARNING):
        other = apply_fixes(table([{"apex": 1120}]), fixes=fixes)
    assert other["apex"].tolist() == [1120] and other.attrs["fixes_applied"] == []
    assert "fix SAMM/028/028_4_1 not applied: the table has {'apex': 1120}" in caplog.text
    casme = table([{"dataset": "CASME2", "subject": "CASME2/028"}])
    assert apply_fixes(casme, fixes=fixes)["apex"].tolist() == [1143]
    assert apply_fixes(table([{}]), "CASME2", fixes=fixes)["apex"].tolist() == [1143]


def test_several_columns_text_and_tuples():
    f = fix(was={"onset": 1071, "emotion": "contempt", "aus": [14]},
            set={"onset": 1070, "emotion": "disgust", "aus": [9, 14]})  # fmt: skip
    out = apply_fixes(table([{}]), fixes=[f])
    row = out.iloc[0]
    assert (row["onset"], row["emotion"], row["aus"]) == (1070, "disgust", (9, 14))
    assert out.attrs["fixes_applied"] == [
        "SAMM/028/028_4_1: onset 1071 -> 1070, emotion 'contempt' -> 'disgust', aus [14] -> [9, 14]"
    ]


def test_apply_errors():
    with pytest.raises(SchemaError, match="clip SAMM/028/028_4_1 appears 2 times"):
        apply_fixes(table([{}, {}]), fixes=[fix()])
    with pytest.raises(SchemaError, match=r"fix SAMM/028/028_4_1: the table has no column\(s\)"):
        apply_fixes(table([{}]), fixes=[fix(was={"notes": "a"}, set={"notes": "b"})])
    with pytest.raises(SchemaError, match="table lacks column 'clip'"):
        apply_fixes(table([{}]).drop(columns="clip"), fixes=[fix()])


def test_load_errors(tmp_path):
    entry = """
[[fix]]
dataset = "SAMM"
subject = "028"
clip = "028_4_1"
was = { apex = 1143 }
set = { apex = 1113 }
reason = "r"
source = "s"
"""
    assert len(load_fixes(write(tmp_path, entry))) == 1
    with pytest.raises(ValueError, match=r"fixes #1 and #2 both change 'apex' of SAMM/028/028_4_1"):
        load_fixes(write(tmp_path, entry + entry))
    with pytest.raises(ValueError, match=r"fix #1: missing keys \['source'\], unknown keys \[\]"):
        load_fixes(write(tmp_path, entry.replace('source = "s"', "")))
    with pytest.raises(ValueError, match="'was' and 'set' must name the same columns"):
        load_fixes(write(tmp_path, entry.replace("was = { apex", "was = { onset")))
    with pytest.raises(ValueError, match="'reason' must be non-empty text"):
        load_fixes(write(tmp_path, entry.replace('reason = "r"', 'reason = " "')))
    bad_subject = entry.replace("was = { apex = 1143 }", 'was = { subject = "027" }')
    bad_subject = bad_subject.replace("set = { apex = 1113 }", 'set = { subject = "028" }')
    with pytest.raises(ValueError, match="cannot change the dataset or the subject"):
        load_fixes(write(tmp_path, bad_subject))
    assert load_fixes(write(tmp_path, "# nothing yet\n")) == ()


def test_synthetic_databases_get_no_fixes(tmp_path, caplog):
    # a `merkit synth` folder (its manifest at the top) whose SAMM sheet happens to name a
    # fixed clip with other frame numbers: no fix and no "not applied" warning
    (tmp_path / "synthetic.json").write_text("{}")
    sheet = tmp_path / "SAMM" / "SAMM_Micro_FACS_Codes_v2.xlsx"
    sheet.parent.mkdir()
    sheet.write_bytes(b"")
    t = table([{"subject": "SAMM/032", "clip": "032_3_1", "onset": 7300, "apex": 7330,
                "offset": 7380}])  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="merkit.data.fixes"):
        out = apply_fixes(t, "SAMM", source=sheet)
    assert out["apex"].tolist() == [7330] and "fixes_applied" not in out.attrs
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "merkit synth database" in caplog.text
    # the same table from a real folder: the mismatch is reported
    real = tmp_path / "real" / "SAMM_Micro_FACS_Codes_v2.xlsx"
    real.parent.mkdir()
    real.write_bytes(b"")
    (tmp_path / "synthetic.json").unlink()
    with caplog.at_level(logging.WARNING, logger="merkit.data.fixes"):
        apply_fixes(t, "SAMM", source=real)
    assert "fix SAMM/032/032_3_1 not applied" in caplog.text
