"""Positional sheet fixes (``[[row_fix]]``): meb's CASME I corrections under the frame-folder
guard, and its opt-in 4DME swap, on sheets written by the synthetic sheet writers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from merkit.data import fixes as fixes_module
from merkit.data.adapters import load_4dme, load_casme1
from merkit.data.fixes import load_row_fixes
from merkit.data.schema import SchemaError
from merkit.data.synthetic.writer import write_4dme_sheet, write_casme1_sheet
from tests.data._files import write_numbered

#: meb's corrected values of CASME I rows (0-based positions) = the frame folders written here
MEB_CASME1: dict[int, dict[str, int]] = {
    40: {"onset": 100, "apex": 120, "offset": 149},
    42: {"onset": 101, "apex": 110, "offset": 119},
    43: {"onset": 57, "apex": 65, "offset": 74},
    54: {"onset": 10, "apex": 12, "offset": 40},
    140: {"onset": 10, "apex": 12, "offset": 142},
}
#: the errors planted in the sheet at those rows (onset, then offset, then apex wrong...)
PLANTED: dict[int, dict[str, int]] = {
    40: {"onset": 10, "apex": 120, "offset": 149},
    42: {"onset": 101, "apex": 110, "offset": 191},
    43: {"onset": 57, "apex": 165, "offset": 74},
    54: {"onset": 10, "apex": 12, "offset": 44},
    140: {"onset": 10, "apex": 12, "offset": 124},
}


def _clip(i: int) -> tuple[int, str]:
    return 1 + i // 30, f"EP{i:03d}_1"


def _casme1(
    root: Path,
    sheet: dict[int, dict[str, int]],
    folders: dict[int, tuple[int, int]] | None = None,
    n: int = 141,
    first: list[dict] | None = None,
) -> Path:
    """``root/CASME``: ``n`` rows (onset 10, apex 12, offset 14, frames 10..14) except the
    ``sheet`` values at their positions; ``folders`` overrides a row's frame range (default:
    meb's corrected range for the rows of MEB_CASME1). ``first`` rows go before them."""
    folders = {**{i: (v["onset"], v["offset"]) for i, v in MEB_CASME1.items()}, **(folders or {})}
    rows = list(first or [])
    for i in range(n):
        subject, clip = _clip(i)
        vals = {"onset": 10, "apex": 12, "offset": 14, **sheet.get(i, {})}
        rows.append({"subject": subject, "clip": clip, **vals, "aus": 4, "emotion": "tense"})
    casme = root / "CASME"
    write_casme1_sheet(casme / "CASME-coding.xlsx", rows)
    for r in rows:
        i = int(r["clip"][2:5])
        lo, hi = folders.get(i, (10, 14)) if r not in (first or []) else (r["onset"], r["offset"])
        write_numbered(casme / "Cropped" / f"sub{r['subject']:02d}" / r["clip"], lo, hi,
                       "img{}.jpg", b"x")  # fmt: skip
    return casme


def _row(t, i):
    subject, clip = _clip(i)
    hit = t[(t["subject"] == f"CASME1/{subject:02d}") & (t["clip"] == clip)]
    assert len(hit) == 1
    return {c: int(hit[c].iloc[0]) for c in ("onset", "apex", "offset")}


def test_planted_casme1_errors_are_fixed_and_logged(tmp_path, caplog):
    _casme1(tmp_path, PLANTED)
    with caplog.at_level(logging.INFO, logger="merkit.data.fixes"):
        t = load_casme1(tmp_path)
    for i, want in MEB_CASME1.items():
        assert _row(t, i) == want, i
    assert _row(t, 41) == {"onset": 10, "apex": 12, "offset": 14}
    assert t.attrs["fixes_applied"] == [
        "CASME1/02/EP040_1 (CASME1 row 40): onset 10 -> 100, apex 120 -> 120, offset 149 -> 149",
        "CASME1/02/EP042_1 (CASME1 row 42): onset 101 -> 101, apex 110 -> 110, offset 191 -> 119",
        "CASME1/02/EP043_1 (CASME1 row 43): onset 57 -> 57, apex 165 -> 65, offset 74 -> 74",
        "CASME1/02/EP054_1 (CASME1 row 54): offset 44 -> 40",
        "CASME1/05/EP140_1 (CASME1 row 140): offset 124 -> 142",
    ]
    assert "applied positional fix CASME1/05/EP140_1 (CASME1 row 140): offset 124 -> 142" in (
        caplog.text
    )
    assert int(t.loc[t["clip"] == "EP140_1", "n_frames"].iloc[0]) == 133
    # the sheet as distributed: its errors are named
    with pytest.raises(SchemaError, match="EP043_1"):
        load_casme1(tmp_path, fixes=False)


def test_a_correct_sheet_is_left_alone(tmp_path, caplog):
    _casme1(tmp_path, MEB_CASME1)
    with caplog.at_level(logging.WARNING, logger="merkit.data.fixes"):
        t = load_casme1(tmp_path)
    assert t.attrs["fixes_applied"] == []
    assert "positional fix" not in caplog.text
    assert _row(t, 43) == MEB_CASME1[43]


def test_rows_the_frames_do_not_confirm_are_left_alone_with_a_warning(tmp_path, caplog):
    sheet = {
        40: {"onset": 10, "apex": 120, "offset": 160},  # wrong, but meb's values do not fit
        42: {"onset": 10, "apex": 12, "offset": 14},  # agrees with its folder 10..14
    }
    _casme1(tmp_path, {**PLANTED, **sheet}, folders={40: (5, 160), 42: (10, 14)})
    with caplog.at_level(logging.WARNING, logger="merkit.data.fixes"):
        t = load_casme1(tmp_path)
    assert _row(t, 40) == sheet[40] and _row(t, 42) == sheet[42]
    assert (
        "positional fix CASME1 row 40 not applied to CASME1/02/EP040_1: the fix {'onset': 100, "
        "'apex': 120, 'offset': 149} does not fit its frames 5..160" in caplog.text
    )
    assert (
        "positional fix CASME1 row 42 not applied to CASME1/02/EP042_1: the row {'onset': 10, "
        "'apex': 12, 'offset': 14} already agrees with its frames 10..14" in caplog.text
    )
    assert [x.split(" (")[0] for x in t.attrs["fixes_applied"]] == [
        "CASME1/02/EP043_1", "CASME1/02/EP054_1", "CASME1/05/EP140_1",
    ]  # fmt: skip


def test_a_shifted_sheet_gets_no_fix_and_its_errors_stay_visible(tmp_path, caplog):
    # one more row on top: positions 40... now hold other clips, whose frames agree
    extra = [{"subject": 9, "clip": "EP999_9", "onset": 1, "apex": 2, "offset": 3, "aus": 4,
              "emotion": "tense"}]  # fmt: skip
    _casme1(tmp_path, PLANTED, first=extra)
    with caplog.at_level(logging.WARNING, logger="merkit.data.fixes"):
        with pytest.raises(SchemaError, match="EP043_1"):
            load_casme1(tmp_path)
    assert "positional fix CASME1 row 41 not applied to CASME1/02/EP040_1" not in caplog.text
    assert "not applied to CASME1/02/EP039_1: the row" in caplog.text
    assert "applied positional fix" not in caplog.text


def test_a_short_sheet_and_a_bad_fixes_value(tmp_path, caplog):
    _casme1(tmp_path, {}, n=45, folders={40: (10, 14), 42: (10, 14), 43: (10, 14)})
    with caplog.at_level(logging.WARNING, logger="merkit.data.fixes"):
        t = load_casme1(tmp_path)
    assert len(t) == 45 and t.attrs["fixes_applied"] == []
    assert "not applied to CASME1/02/EP043_1: the row" in caplog.text
    assert "positional fix CASME1 row 140 not applied: the sheet has 45 data rows" in caplog.text
    with pytest.raises(ValueError, match="fixes must be True .* got 'yes'"):
        load_casme1(tmp_path, fixes="yes")


def _fourd(root: Path, n: int = 146) -> Path:
    rows = []
    for i in range(n):
        sid = f"S{1 + i // 40:02d}"
        label = "Positive" if i == 144 else "Negative"
        aus = "AU12" if i == 144 else "AU4+AU7(k)"
        rows.append({"subject": sid, "clip": f"{sid}_{i}", "onset": 2, "apex": 3, "offset": 4,
                     "aus": aus, "emotion": label, "emotions": (label.lower(),)})  # fmt: skip
    fourd = root / "4DME"
    write_4dme_sheet(fourd / "labels.xlsx", rows)
    for r in rows:
        write_numbered(fourd / r["subject"] / r["clip"], 2, 4, "{}.jpg", b"x")
    return fourd


def test_the_4dme_swap_is_opt_in_and_names_both_clips(tmp_path, caplog):
    _fourd(tmp_path)
    with caplog.at_level(logging.INFO, logger="merkit.data.fixes"):
        t = load_4dme(tmp_path)
    assert t.attrs["fixes_applied"] == []
    assert "positional fix 4DME rows 144 <-> 145 (the AU and emotion cells" in caplog.text
    assert t["emotion"].iloc[144] == "positive" and t["emotion"].iloc[145] == "negative"
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="merkit.data.fixes"):
        s = load_4dme(tmp_path, fixes="all")
    assert s.attrs["fixes_applied"] == [
        "4DME/S04/S04_144 (4DME rows 144 <-> 145): aus (12,) -> (4,), emotion 'positive' -> "
        "'negative'",
        "4DME/S04/S04_145 (4DME rows 144 <-> 145): aus (4,) -> (12,), emotion 'negative' -> "
        "'positive'",
    ]
    assert "applied opt-in positional fix 4DME rows 144 <-> 145, unchecked" in caplog.text
    assert "4DME/S04/S04_144" in caplog.text and "4DME/S04/S04_145" in caplog.text
    assert list(s["emotion"].iloc[144:146]) == ["negative", "positive"]
    assert list(s["emotions"].iloc[144:146]) == [("negative",), ("positive",)]
    assert list(s["aus_k"].iloc[144:146]) == [(7,), ()]
    assert list(s["aus"].iloc[143:146]) == [(4,), (4,), (12,)]
    # every other row is as the sheet has it
    assert s.drop(index=[144, 145]).equals(t.drop(index=[144, 145]))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('row = -1\nset = { offset = 2 }\nguard = "frames"', "'row' must be a 0-based row"),
        ('row = 3\nset = { offset = 2 }\nguard = "maybe"', "'guard' must be one of"),
        ('row = 3\nguard = "frames"', "give either 'set'"),
        ('row = 3\nset = { emotion = "x" }\nguard = "frames"', "checks onset/apex/offset only"),
        ('row = 3\nswap_with = 3\ncolumns = ["aus"]\nguard = "opt-in"', "must be another"),
    ],
)
def test_bad_row_fix_entries_are_refused(tmp_path, entry, message):
    toml = tmp_path / "fixes.toml"
    toml.write_text(f'[[row_fix]]\ndataset = "CASME1"\n{entry}\nreason = "r"\nsource = "s"\n')
    with pytest.raises(ValueError, match=message):
        load_row_fixes(toml)


def test_the_shipped_row_fixes_are_meb_s():
    shipped = {(f.dataset, f.row): f for f in load_row_fixes(fixes_module.FIXES_PATH)}
    assert {k: dict(f.set) for k, f in shipped.items() if k[0] == "CASME1"} == {
        ("CASME1", 40): {"onset": 100, "apex": 120, "offset": 149},
        ("CASME1", 42): {"onset": 101, "apex": 110, "offset": 119},
        ("CASME1", 43): {"onset": 57, "apex": 65, "offset": 74},
        ("CASME1", 54): {"offset": 40},
        ("CASME1", 140): {"offset": 142},
    }
    swap = shipped[("4DME", 144)]
    assert swap.swap_with == 145 and swap.guard == "opt-in" and "emotions" in swap.columns
