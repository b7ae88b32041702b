"""Folder + CSV adapter for users' own recordings: frame folders, videos, encodings, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.folder import (
    decode_text,
    frame_value,
    load_folder,
    norm_header,
    read_table_file,
    subject_number,
)
from merkit.data.labels import apply_scheme
from merkit.data.schema import SchemaError
from merkit.video.io import load_clip

JPG = cv2.imencode(".jpg", np.full((8, 8), 128, np.uint8))[1].tobytes()
HEADER = "subject,clip,path,onset,apex,offset,label,aus,fps"


def write_frames(folder: Path, first: int, last: int, pattern: str = "frame{:04d}.jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        (folder / pattern.format(n)).write_bytes(JPG)


def write_video(path: Path, n: int, fps: float = 25.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    for i in range(n):
        writer.write(np.full((24, 32, 3), 10 * i % 255, np.uint8))
    writer.release()


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("\n".join(lines).encode(encoding))
    return path


@pytest.fixture()
def study(tmp_path) -> Path:
    write_frames(tmp_path / "p01" / "take1", 1, 20)
    write_frames(tmp_path / "p01" / "take2", 100, 130)
    write_video(tmp_path / "p02" / "take3.avi", 12)
    return tmp_path


def test_frames_and_video(study):
    csv = write_csv(
        study / "clips.csv",
        [
            HEADER,
            "p01,take1,p01/take1,3,8,15,Happiness,6+12,200",
            "p01,take2,p01/take2,100,,130,disgust,4+L10,200",
            "p02,take3,p02/take3.avi,2,5,11,surprise,1+2,",
        ],
    )
    table = load_folder(csv, dataset="LAB")
    assert table["subject"].tolist() == ["LAB/p01", "LAB/p01", "LAB/p02"]
    assert table["emotion"].tolist() == ["happiness", "disgust", "surprise"]
    assert table["n_frames"].tolist() == [20, 31, 12]
    assert table["fps"].tolist() == [200.0, 200.0, 25.0]  # the video's own rate
    assert table["apex"].isna().tolist() == [False, True, False]
    assert table["frames_dir"].iloc[0] == str(study / "p01" / "take1")
    assert table["video_path"].iloc[2] == str(study / "p02" / "take3.avi")
    assert table["aus"].tolist() == [(6, 12), (4, 10), (1, 2)]
    assert table["au_sides"].iloc[1] == ("", "L")
    assert table["list_row"].tolist() == [2, 3, 4]
    assert set(table["camera"]) == {"unknown"} and set(table["dataset"]) == {"LAB"}
    assert table.attrs["encoding"] == "utf-8"
    # the table drives the clip reader: frame-numbered folder and 1-based video frames
    assert load_clip(table.iloc[0], size=None).shape == (13, 8, 8)
    assert load_clip(table.iloc[2], size=None).shape == (10, 24, 32)


def test_header_names_order_preamble_and_semicolons(study):
    csv = write_csv(
        study / "list.csv",
        [
            "# my lab study, recorded 2024",
            "",
            "Estimated Emotion;End Frame;Participant;File Name;Frames Dir;Onset Frame;Frame Rate",
            "Fear;10;p01;take1;p01/take1;1;90",
        ],
    )
    table = load_folder(csv)
    assert table[["dataset", "subject", "clip", "onset", "offset", "fps"]].values.tolist() == [
        ["FOLDER", "FOLDER/p01", "take1", 1, 10, 90.0]
    ]
    assert table["apex"].isna().all() and table["aus"].tolist() == [()]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk"])
def test_encodings(study, encoding, caplog):
    csv = write_csv(
        study / "中文.csv",
        [HEADER, "被试1,片段1,p01/take1,1,5,10,厌恶,4,200"],
        encoding=encoding,
    )
    with caplog.at_level(logging.INFO, logger="merkit.data.adapters.folder"):
        table = load_folder(csv)
    assert table.attrs["encoding"] == encoding
    assert f"read as {encoding} text" in caplog.text
    assert table["subject"].tolist() == ["FOLDER/被试1"] and table["emotion"].tolist() == ["厌恶"]
    with pytest.raises(ValueError, match="cannot decode as ascii"):
        load_folder(csv, encoding="ascii")


def test_decode_text_order():
    text = "subject,情绪"
    assert decode_text(text.encode("utf-8"), "x") == (text, "utf-8")
    assert decode_text(b"\xef\xbb\xbf" + text.encode("utf-8"), "x") == (text, "utf-8-sig")
    assert decode_text(text.encode("gbk"), "x") == (text, "gbk")
    with pytest.raises(ValueError, match="not readable as UTF-8, UTF-8 with BOM, GBK"):
        decode_text(b"\x81\x20\xff\xfe", "x.csv")


def test_every_bad_row_is_named_once(study):
    csv = write_csv(
        study / "bad.csv",
        [
            HEADER,
            "p01,take1,p01/take1,3,8,15,happiness,6+12,200",
            "p01,take2,p01/take2,1x,,130,disgust,,200",
            ",take9,p01/take1,1,2,3,fear,,200",
            "p01,take1b,p01/take1,9,20,15,fear,,200",
            "p01,take1c,p01/take1,1,2,5,fear,12+Q,200",
            "p01,take1d,p01/take1,1,2,5,fear,,-3",
            "p01,take1e,p01/take1,1,2,5,,,200",
            "p02,take3,p02/take3.avi,0,2,5,fear,,",
        ],
    )
    with pytest.raises(SchemaError) as err:
        load_folder(csv)
    msg = str(err.value)
    assert msg.startswith(f"{csv}: 7 bad row(s)")
    assert "bad.csv row 3 (take2): onset '1x' is not a frame number" in msg
    assert "bad.csv row 4 (take9): subject is empty" in msg
    assert "bad.csv row 5 (take1b): onset 9 after offset 15" not in msg  # 9 <= 15: apex check
    assert "bad.csv row 5 (take1b): apex 20 outside [onset 9, offset 15]" in msg
    assert "'12+Q' (bad.csv row 6 (take1c))" in msg
    assert "bad.csv row 7 (take1d): fps '-3' must be > 0" in msg
    assert "bad.csv row 8 (take1e): label is empty" in msg
    assert "bad.csv row 9 (take3): onset 0 of a video must be >= 1" in msg
    assert "take1," not in msg and "row 2 " not in msg


def test_missing_clips_raise_or_skip(study, caplog):
    csv = write_csv(
        study / "clips.csv",
        [
            HEADER,
            "p01,take1,p01/take1,3,8,25,happiness,,200",
            "p01,take2,p01/take2,100,110,130,disgust,,200",
            "p03,gone,p03/gone,1,2,3,fear,,200",
            "p02,take3,p02/take3.avi,2,5,30,surprise,,",
        ],
    )
    with pytest.raises(SchemaError) as err:
        load_folder(csv)
    msg = str(err.value)
    assert "3 clip(s)" in msg
    assert "row 2 (take1): frames 21-25 of [3, 25] missing in" in msg
    assert f"row 4 (gone): {study / 'p03' / 'gone'} does not exist" in msg
    assert "row 5 (take3): offset 30 is past the last frame 12 of" in msg
    with caplog.at_level(logging.WARNING):
        table = load_folder(csv, missing="skip")
    assert table["clip"].tolist() == ["take2"] and "skipped" in caplog.text


def test_required_columns_and_fps(study):
    csv = write_csv(study / "x.csv", ["subject,clip,path,onset,offset", "p01,t,p01/take1,1,2"])
    with pytest.raises(SchemaError, match=r"header row 1 lacks columns \['label'\]"):
        load_folder(csv)
    csv = write_csv(study / "y.csv", ["a,b", "1,2"])
    with pytest.raises(SchemaError, match="no header row naming the columns"):
        load_folder(csv)
    csv = write_csv(study / "z.csv", [HEADER.replace(",fps", ""), "p01,t,p01/take1,1,2,3,fear,"])
    with pytest.raises(SchemaError, match=r"row 2 \(t\): no frame rate \(add an fps column"):
        load_folder(csv)
    assert load_folder(csv, fps=60, camera="webcam")[["fps", "camera"]].values.tolist() == [
        [60.0, "webcam"]
    ]
    csv = write_csv(
        study / "w.csv", ["subject,clip,path,onset,offset,label,emotion", "p,c,p,1,2,a,b"]
    )
    with pytest.raises(SchemaError, match=r"columns \['label', 'emotion'\] all give 'label'"):
        load_folder(csv)
    (study / "notes.txt").write_text("x")
    csv = write_csv(study / "v.csv", [HEADER, "p01,t,notes.txt,1,2,3,fear,,30"])
    with pytest.raises(SchemaError, match="notes.txt is neither a frame folder nor a video"):
        load_folder(csv)


def test_dataset_column_xlsx_and_schemes(study):
    frame = pd.DataFrame(
        {
            "Dataset": ["CASME2", "CASME2"],
            "Subject": [1, 1],
            "Clip": ["EP01", "EP02"],
            "Path": [str(study / "p01" / "take1"), "p01/take2"],
            "Onset": [1, 100],
            "Apex": [5.0, None],
            "Offset": [10, 120],
            "Emotion": ["Repression", "happiness"],
            "FPS": [200, 200],
        }
    )
    xlsx = study / "own.xlsx"
    frame.to_excel(xlsx, index=False)
    table = load_folder(xlsx)
    assert table["subject"].tolist() == ["CASME2/1", "CASME2/1"]
    assert table["apex"].tolist()[0] == 5 and pd.isna(table["apex"].iloc[1])
    assert table.attrs["encoding"] == "xlsx"
    labelled = apply_scheme(table, "four_class")
    assert labelled["label"].tolist() == ["others", "positive"]


def test_shared_cell_helpers():
    assert norm_header(" Onset-Frame ") == "onsetframe" and norm_header("视频 名") == "视频名"
    assert frame_value(46.0, "x", "w") == 46 and frame_value("12", "x", "w") == 12
    assert frame_value("/", "x", "w", allow_missing=True) is pd.NA
    with pytest.raises(SchemaError, match=r"w: x 4.5 is not a whole frame number"):
        frame_value(4.5, "x", "w")
    with pytest.raises(SchemaError, match="w: x '' is not a frame number"):
        frame_value("", "x", "w")
    assert subject_number("sub0003", "w") == 3 and subject_number(7.0, "w") == 7
    assert subject_number("S13", "w") == 13
    with pytest.raises(SchemaError, match="w: Subject 'x1' is not a subject number"):
        subject_number("x1", "w")


def test_read_table_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="table file .*none.csv does not exist"):
        read_table_file(tmp_path / "none.csv")
    p = write_csv(tmp_path / "t.tsv", ["a\tb", "1\t2"])
    frame, enc = read_table_file(p)
    assert frame.values.tolist() == [["a", "b"], ["1", "2"]] and enc == "utf-8"
