"""DFME adapter: the real released sheets (read in place) and small faked frame trees."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.dfme import (
    duration_ms,
    load_dfme,
    micro_mask,
    read_dfme_sheet,
)
from merkit.data.schema import SchemaError
from tests.data._files import write_numbered, write_xlsx

ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
SHEETS = ANNOTATIONS / "dfme"
NAMES = {
    "train": "training_full_with_AU.xlsx",
    "testA": "testA_full_with_AU.xlsx",
    "testB": "testB_full_with_AU.xlsx",
}
PNG = cv2.imencode(".png", np.full((6, 6), 90, np.uint8))[1].tobytes()
HEADER = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion",
          "EmotionId", "Fps", "AU"]  # fmt: skip


def _need_real() -> None:
    for name in NAMES.values():
        if not (SHEETS / name).exists():
            pytest.skip(f"real DFME sheet {SHEETS / name} not available")


def write_sheet(path: Path, rows: list[list], header: list | None = None) -> Path:
    return write_xlsx(path, header or HEADER, rows, title="Sheet1")


def write_frames(folder: Path, first: int, last: int) -> None:
    write_numbered(folder, first, last, "{:05d}.png", PNG)


TRAIN = [
    ["sub0003", "sub0003_01", 109, 199, 228, "anger", 0, 500, 23],
    ["sub0003", "sub0003_02", 0, 6, 12, "happiness", 4, 500, "6+L12"],
    ["sub0200", "sub0200_11", 0, 31, 78, "happiness", 4, 200, 12],
]
TEST_A = [["sub0008", "sub0008_02", 0, 113, 199, "contempt", 1, 300, "R12"]]


def small_dfme(root: Path, frame_dirs: dict[str, str] | None = None) -> Path:
    d = root / "DFME"
    write_sheet(d / NAMES["train"], TRAIN)
    write_sheet(d / "annotations" / NAMES["testA"], TEST_A)
    dirs = frame_dirs or {"train": "train_data", "testA": "test_A_data"}
    for part, rows in (("train", TRAIN), ("testA", TEST_A)):
        for r in rows:
            write_frames(d / dirs[part] / r[1], r[2], r[4] + 1)
    return d


def test_real_sheets_counts_and_columns():
    _need_real()
    parts = {p: read_dfme_sheet(SHEETS / n) for p, n in NAMES.items()}
    assert {p: len(t) for p, t in parts.items()} == {"train": 1856, "testA": 474, "testB": 299}
    assert {p: t["subject"].nunique() for p, t in parts.items()} == {
        "train": 176, "testA": 42, "testB": 41,
    }  # fmt: skip
    assert parts["train"]["fps"].value_counts().to_dict() == {500.0: 695, 300.0: 605, 200.0: 556}
    assert parts["testB"]["fps"].value_counts().to_dict() == {200.0: 159, 500.0: 83, 300.0: 57}
    first = parts["train"].iloc[0]
    assert (first["subject"], first["clip"], first["onset"], first["apex"], first["offset"]) == (
        "0003", "sub0003_01", 109, 199, 228,
    )  # fmt: skip
    assert (first["emotion"], first["emotion_id"], first["aus"]) == ("anger", 0, (23,))
    assert list(parts["train"].columns) == [
        "subject", "clip", "onset", "apex", "offset", "fps", "emotion", "emotion_id", "aus",
        "au_sides", "au_intensities", "sheet_row",
    ]  # fmt: skip
    everything = pd.concat(parts.values(), ignore_index=True)
    # subject-disjoint released split
    assert everything.groupby("subject").size().shape[0] == 259
    # AD38 / M58 codes are read as AUs 38 / 58
    assert everything["aus"].map(lambda a: 38 in a).sum() > 0
    assert everything["aus"].map(lambda a: 58 in a).sum() > 0
    # durations with each clip's own fps: 240 ms for 120 frames at 500 fps
    assert duration_ms(parts["train"].head(1)).tolist() == [240.0]
    # the paper's micro criterion: 8 clips (300 fps) miss it by one frame when frames are
    # counted inclusively; all pass when frame intervals are timed
    assert int(micro_mask(everything).sum()) == 2621
    assert int(micro_mask(everything, inclusive=False).sum()) == 2629
    missed = everything[~micro_mask(everything)]
    assert set(missed["fps"]) == {300.0}
    assert "sub0028_01" in set(missed["clip"])


def test_real_sheets_through_the_loader(tmp_path, caplog):
    _need_real()
    d = tmp_path / "DFME"
    d.mkdir()
    for name in NAMES.values():
        (d / name).symlink_to((SHEETS / name).resolve())
    coded = read_dfme_sheet(SHEETS / NAMES["testB"])
    for r in coded.head(5).itertuples(index=False):
        write_frames(d / "test_B_data" / r.clip, r.onset, r.offset)
    with pytest.raises(SchemaError) as err:
        load_dfme(tmp_path, parts=["testB"])
    assert "294 clip(s)" in str(err.value) and "testB sub0001_06: no frames in" in str(err.value)
    with caplog.at_level(logging.WARNING):
        table = load_dfme(tmp_path, parts=["testB"], missing="skip")
    assert table["clip"].tolist() == coded["clip"].head(5).tolist()
    assert table["subject"].iloc[0] == "DFME/0001" and set(table["part"]) == {"testB"}
    assert table["duration_ms"].iloc[0] == pytest.approx((240 - 20 + 1) / 500 * 1000)
    # the training sheet has no frame folder at all: named, the part's clips counted
    with pytest.raises(SchemaError, match=r"train: no frame folder in .*its 1856 clips"):
        load_dfme(tmp_path, parts=["train", "testB"])


def test_small_tree(tmp_path):
    small_dfme(tmp_path)
    table = load_dfme(tmp_path)
    assert table["clip"].tolist() == ["sub0003_01", "sub0003_02", "sub0200_11", "sub0008_02"]
    assert table["part"].tolist() == ["train", "train", "train", "testA"]
    assert table["subject"].tolist() == ["DFME/0003", "DFME/0003", "DFME/0200", "DFME/0008"]
    assert table["fps"].tolist() == [500.0, 500.0, 200.0, 300.0]
    assert table["n_frames"].tolist() == [121, 14, 80, 201]
    assert table["duration_ms"].tolist() == pytest.approx([240.0, 26.0, 395.0, 2000 / 3])
    assert table["emotion_id"].tolist() == [0, 4, 4, 1]
    assert table["aus"].iloc[1] == (6, 12) and table["au_sides"].iloc[1] == ("", "L")
    assert set(table["camera"]) == {"colour"} and set(table["dataset"]) == {"DFME"}
    assert table["frames_dir"].iloc[3] == str(tmp_path / "DFME" / "test_A_data" / "sub0008_02")
    assert len(table.attrs["source"]) == 2
    only = load_dfme(tmp_path / "DFME", parts=["testA"])
    assert only["clip"].tolist() == ["sub0008_02"]


def test_frame_folder_variants(tmp_path):
    small_dfme(tmp_path, {"train": "Train", "testA": "testA"})
    assert len(load_dfme(tmp_path)) == 4
    # one folder holding every clip, clips inside subject folders
    other = tmp_path / "all"
    for r in TRAIN + TEST_A:
        write_frames(other / r[0] / r[1], r[2], r[4])
    table = load_dfme(tmp_path, frames=other)
    assert table["frames_dir"].iloc[0] == str(other / "sub0003" / "sub0003_01")
    table = load_dfme(tmp_path, frames={"train": other, "testA": tmp_path / "DFME" / "testA"})
    assert table["n_frames"].tolist() == [120, 13, 79, 201]


def test_errors(tmp_path):
    d = small_dfme(tmp_path)
    with pytest.raises(ValueError, match=r"unknown DFME parts \['test'\]"):
        load_dfme(tmp_path, parts=["test"])
    with pytest.raises(FileNotFoundError, match=r"sheets \['testB_full_with_AU.xlsx'\] not"):
        load_dfme(tmp_path, parts=["testB"])
    sheet = d / NAMES["train"]
    write_sheet(sheet, [["sub0003", "sub0004_01", 0, 5, 9, "anger", 0, 500, 4]])
    with pytest.raises(SchemaError, match=r"row 2 \(sub0004_01\): Filename 'sub0004_01' names"):
        load_dfme(tmp_path)
    write_sheet(sheet, [["sub0003", "sub0003_01", 0, 5, 9, "anger", 0, "fast", 4]])
    with pytest.raises(SchemaError, match=r"row 2 \(sub0003_01\): Fps 'fast' is not a number"):
        load_dfme(tmp_path)
    write_sheet(
        sheet,
        [["sub0003", "sub0003_01", 0, 5, 9, "anger", 0, 500, 4],
         ["sub0003", "sub0003_02", 0, 5, 9, "fear", 0, 500, 4]],
    )  # fmt: skip
    with pytest.raises(SchemaError, match=r"EmotionId stands for several emotions: \{0: \['anger'"):
        load_dfme(tmp_path)
    # the same subject in two parts would leak identities between train and test
    write_sheet(sheet, [["sub0008", "sub0008_09", 0, 5, 9, "anger", 0, 500, 4]])
    write_frames(d / "train_data" / "sub0008_09", 0, 9)
    with pytest.raises(SchemaError, match=r"1 subject\(s\) appear in several parts.*'0008'"):
        load_dfme(tmp_path)
    write_sheet(sheet, [], header=HEADER[:6])
    with pytest.raises(SchemaError, match=r"missing columns \['fps', 'au'\]"):
        load_dfme(tmp_path)
    with pytest.raises(FileNotFoundError, match="no DFME data in"):
        load_dfme(tmp_path / "DFME" / "train_data")
    with pytest.raises(SchemaError, match="duration_ms: table lacks column 'fps'"):
        duration_ms(pd.DataFrame({"onset": [1], "offset": [2]}))
