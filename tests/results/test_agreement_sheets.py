"""``read_agreement_sheet`` / ``merkit agreement`` refuse sheets that are not agreement sheets.

Issue #15, item 1: coding sheets, clip lists and counts sheets whose row totals differ
were read as "annotators" and given a kappa with a Landis-Koch reading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.results.agreement import fleiss, read_agreement_sheet
from tests.results.test_agreement import WIKI  # Fleiss (1971) worked example

#: the end of every refusal: what an agreement sheet looks like
HELP = (
    "an agreement sheet has one row per item (plus an optional item-id column) and either "
    "one column per category holding how many annotators chose it (whole numbers, every "
    "row summing to the number of annotators) or one column per annotator holding the "
    "category that annotator chose from one small scheme (at most 50 categories)"
)

EMOTIONS = ("happiness", "disgust", "surprise", "repression", "others", "fear", "sadness")
AUS = ("12", "4+7", "L12", "14", "4+L10", "R15", "1+2", "AU12", "17", "6+12")


def _write(path: Path, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return path


def _refusal(path: Path, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        read_agreement_sheet(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: not an agreement sheet")
    assert message.endswith(HELP)
    return message


def _coding_rows(n: int = 30) -> list[list[object]]:
    """A CASME II-style coding sheet: one clip per row, its frames, AUs and emotion."""
    rng = np.random.default_rng(0)
    rows: list[list[object]] = [
        ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
         "Estimated Emotion"]
    ]  # fmt: skip
    for i in range(n):
        onset = int(rng.integers(1, 200))
        rows.append(
            [f"{i // 5 + 1:02d}", f"EP{i:02d}_0{i % 3 + 1}f", onset, onset + 13, onset + 40,
             AUS[i % len(AUS)], EMOTIONS[i % len(EMOTIONS)]]
        )  # fmt: skip
    return rows


def test_coding_sheet_is_refused_whatever_the_format(tmp_path):
    path = _write(tmp_path / "CASME2-coding.csv", _coding_rows())
    message = _refusal(path)
    # Subject is read as the item id; every other column but the emotion is named
    assert (
        "these columns are not annotators or categories: 'Filename' (file or item names), "
        "'OnsetFrame', 'ApexFrame', 'OffsetFrame' (frame numbers or timing), "
        "'Action Units' (AU codes); an agreement sheet" in message
    )
    assert "'Estimated Emotion'" not in message
    assert "these columns are not annotators or categories" in _refusal(path, format="counts")
    assert "these columns are not annotators: 'Filename'" in _refusal(path, format="labels")
    # the same clips with the emotion column of two annotators: a genuine labels sheet
    rows = [[r[1], r[6], r[6] if i % 4 else "others"] for i, r in enumerate(_coding_rows())]
    rows[0] = ["Filename", "annotator A", "annotator B"]
    sheet = read_agreement_sheet(_write(tmp_path / "two.csv", rows))
    assert sheet.format == "labels" and sheet.counts.shape == (30, 7)
    assert sheet.items[:2] == ("EP00_01f", "EP01_02f")


def test_dfme_like_sheet_is_refused(tmp_path):
    rows: list[list[object]] = [
        ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion",
         "EmotionId", "Fps", "AU"]
    ]  # fmt: skip
    for i in range(40):
        sub = f"sub{i // 8 + 3:04d}"
        rows.append(
            [sub, f"{sub}_{i % 8 + 1:02d}", 3 * i, 3 * i + 90, 3 * i + 180,
             EMOTIONS[i % 7], i % 7, (500, 300, 200)[i % 3], AUS[i % len(AUS)]]
        )  # fmt: skip
    message = _refusal(_write(tmp_path / "training_full_with_AU.csv", rows))
    assert (
        "'Filename' (file or item names), 'OnsetFrame', 'ApexFrame', 'OffsetFrame', 'Fps' "
        "(frame numbers or timing), 'AU' (AU codes)" in message
    )


def test_clip_list_without_header_is_refused_by_its_values(tmp_path):
    # smic-3classes.csv: no header; subject, clip, onset, apex, offset, label 1/2/3
    rng = np.random.default_rng(1)
    rows: list[list[object]] = []
    for i in range(60):
        sub, onset = f"s{i // 6 + 1:02d}", int(rng.integers(10_000, 900_000))
        label = i % 3 + 1
        clip = f"{sub}_{('po', 'ne', 'sur')[label - 1]}_{i % 6 + 1:02d}"
        rows.append([sub, clip, onset, onset + 12, onset + 30, label])
    path = _write(tmp_path / "smic-3classes.csv", rows)
    message = _refusal(path)
    assert "(its first row, read as the header, holds data: is the header row missing?)" in (
        message
    )
    onset, apex, offset = rows[0][2:5]
    assert (
        f"these columns are not annotators: 's01' (subject ids), '{rows[0][1]}' (59 different "
        f"values, i.e. names, ids or free text), '{onset}', '{apex}', '{offset}' (numbers too "
        "large or fractional for category codes, e.g. frame numbers)" in message
    )
    # 59 items (the first row is the header): 10 subjects, 59 clips, 177 frames, 3 labels
    assert "read as labels it has 249 categories over 59 items (an annotation scheme has at " in (
        message
    )


@pytest.mark.parametrize(
    "values, holds",
    [
        (["4+7", "12", "L12", "AU12", "14", "R4,5", "1+2", "12", "4", "17"], "AU codes"),
        (["sub01", "sub02", "s03", "spNO.4", "sub05"] * 2, "subject ids"),
        ([f"clips/EP0{i}.avi" for i in range(10)], "file or folder names"),
        ([0.5, 1.25, 2.0, 3.5, 1.0] * 2, "numbers too large or fractional for category codes"),
    ],
)
def test_columns_that_hold_no_labels_are_named(tmp_path, values, holds):
    # a sheet whose headers look fine: the values give the column away
    rows = [["clip", "coder1", "coder2", "coder3"]]
    rows += [[f"c{i}", "happy" if i % 2 else "sad", v, "sad"] for i, v in enumerate(values)]
    message = _refusal(_write(tmp_path / "sheet.csv", rows))
    assert f"these columns are not annotators: 'coder2' ({holds}" in message
    assert "'coder1'" not in message and "'coder3'" not in message


def test_categories_that_are_no_scheme_are_refused(tmp_path):
    # free text: every annotator writes something of their own
    rows = [["item", "A1", "A2", "A3"]]
    rows += [[f"v{i}"] + [f"note {i}-{r}" for r in range(3)] for i in range(30)]
    message = _refusal(_write(tmp_path / "free.csv", rows))
    assert "read as labels it has 90 categories over 30 items (an annotation scheme has at " in (
        message
    )
    # categories nearly as many as items, most used once: A2 often writes a clip-specific note
    rows = [["item", "A1", "A2"]]
    rows += [[f"v{i}", "abc"[i % 3], "abc"[i % 3] if i % 2 else f"clip {i}"] for i in range(40)]
    message = _refusal(_write(tmp_path / "notes.csv", rows))
    assert (
        "read as labels it has 23 categories over 40 items, 20 of them used only once "
        "(25% of the labels): values of single items, not a scheme" in message
    )
    # two columns of different schemes (CASME II's emotion and objective class)
    rows = [["Filename", "Estimated Emotion", "Objective Classes"]]
    rows += [[f"EP{i:02d}", EMOTIONS[i % 7], i % 7 + 1] for i in range(20)]
    message = _refusal(_write(tmp_path / "schemes.csv", rows))
    assert (
        "columns 'Estimated Emotion', 'Objective Classes' share no category with the other "
        "columns (different schemes, not annotators of one)" in message
    )
    # the same emotions from two annotators are one scheme
    rows = [["Filename", "rater 1", "rater 2"]]
    rows += [[f"EP{i:02d}", EMOTIONS[i % 7], EMOTIONS[i % 5]] for i in range(20)]
    assert read_agreement_sheet(_write(tmp_path / "ok.csv", rows)).counts.shape == (20, 7)


def _counts_rows(table: np.ndarray) -> list[list[object]]:
    return [["clip", *"abcde"]] + [[f"c{i}", *row] for i, row in enumerate(table)]


def test_counts_sheet_with_differing_totals_is_refused_not_read_as_labels(tmp_path):
    table = WIKI.copy()
    table[3, 2] -= 1  # one annotator missing on c3: 13 instead of 14
    path = _write(tmp_path / "counts.csv", _counts_rows(table))
    with pytest.raises(ValueError) as info:
        read_agreement_sheet(path)
    message = str(info.value)
    assert message == (
        f"{path}: read as a counts sheet (whole numbers, one column per category), every item "
        "needs the same number (>= 2) of annotators, but row totals differ from the most "
        "common total 14: c3 (13); if each column is one annotator and the numbers are "
        "category codes, pass --format labels (format='labels')"
    )
    with pytest.raises(ValueError, match=r"most common total 14: c3 \(13\)$"):
        read_agreement_sheet(path, format="counts")
    # the odd row is named even when it is the first one
    table = WIKI.copy()
    table[0, 4] = 12
    path0 = _write(tmp_path / "first.csv", _counts_rows(table))
    with pytest.raises(ValueError, match=r"most common total 14: c0 \(12\); if each"):
        read_agreement_sheet(path0)
    # one-hot ground truth (every row totals 1) is no agreement sheet either
    onehot = np.eye(5, dtype=int)[[0, 1, 2, 3, 4, 0, 1]]
    with pytest.raises(ValueError, match=r"but every row totals 1; if each column"):
        read_agreement_sheet(_write(tmp_path / "onehot.csv", _counts_rows(onehot)))
    # asked for explicitly, the numbers are read as category codes of 5 annotators
    sheet = read_agreement_sheet(path, format="labels")
    assert sheet.format == "labels" and (sheet.counts.sum(axis=1) == 5).all()
    # equal totals stay a counts sheet
    ok = read_agreement_sheet(_write(tmp_path / "wiki.csv", _counts_rows(WIKI)))
    assert ok.format == "counts" and fleiss(ok.counts).kappa == pytest.approx(0.20993, abs=1e-5)


def test_cli_refuses_a_coding_sheet_in_one_line(tmp_path):
    path = _write(tmp_path / "sheets [v2]" / "CASME2-coding.csv", _coding_rows())
    result = CliRunner().invoke(app, ["agreement", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in lines[0]
    assert f"{path}: not an agreement sheet: these columns are not annotators" in lines[0]
    assert "'OnsetFrame', 'ApexFrame', 'OffsetFrame' (frame numbers or timing)" in lines[0]
    assert "kappa" not in result.output
    table = WIKI.copy()
    table[3, 2] -= 1
    counts = _write(tmp_path / "counts.csv", _counts_rows(table))
    result = CliRunner().invoke(app, ["agreement", str(counts)])
    assert result.exit_code == 2 and "most common total 14: c3 (13)" in result.output
    result = CliRunner().invoke(app, ["agreement", str(counts), "--format", "labels"])
    assert result.exit_code == 0, result.output
    assert "10 items x 5 annotators" in result.output and "(labels sheet)" in result.output


REAL_SHEETS = {
    "casme2/CASME2-coding-20140508.xlsx": "'OnsetFrame', 'ApexFrame', 'OffsetFrame'",
    "casme2/CASME2-coding-20190701.xlsx": "'OnsetFrame', 'ApexFrame', 'OffsetFrame'",
    "dfme/training_full_with_AU.xlsx": "'OffsetFrame', 'Fps' (frame numbers or timing), "
    "'AU' (AU codes)",
    "dfme/testA_full_with_AU.xlsx": "'AU' (AU codes)",
    "dfme/testB_full_with_AU.xlsx": "'AU' (AU codes)",
    "smic/smic-3classes.csv": "'s01' (subject ids)",
    "smic/SMIC-HS-E_annotation_orig.xlsx": "'Filename' (file or item names)",
    "samm/SAMM_Micro_FACS_Codes_v2.xlsx": "(AU codes)",
    "casme3/CAS(ME)3_part_C_ME.xlsx": "'sub' (subject ids)",
    "megc2019/combined_3class_gt.csv": "'EP02_01f' (415 different values",
}


@pytest.mark.parametrize("name", sorted(REAL_SHEETS))
def test_real_annotation_sheets_are_refused(shared_data, name):
    path = shared_data / "annotations" / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this copy of the reference data")
    assert REAL_SHEETS[name] in _refusal(path)
