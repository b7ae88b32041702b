"""schema.validate(): the Sample-table contract and its error messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.data.schema import COLUMNS, SchemaError, empty_table, validate


def make_table(folder: Path, n: int = 3, **overrides) -> pd.DataFrame:
    """``n`` valid CASME2-like rows whose frame folders exist under ``folder``."""
    dirs = []
    for i in range(n):
        d = folder / f"clip{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "img1.jpg").write_bytes(b"\xff\xd8")
        dirs.append(str(d))
    table = pd.DataFrame(
        {
            "dataset": "CASME2",
            "subject": [f"CASME2/{i + 1:02d}" for i in range(n)],
            "clip": [f"EP0{i}_01" for i in range(n)],
            "frames_dir": dirs,
            "n_frames": [30] * n,
            "fps": [200] * n,
            "onset": [1] * n,
            "apex": [10] * n,
            "offset": [30] * n,
            "emotion": ["happiness"] * n,
            "aus": [(12,), [4, 7], None][:n] + [()] * max(0, n - 3),
            "camera": "colour",
        }
    )
    for k, v in overrides.items():
        table[k] = v
    return table


def test_valid_table_gets_canonical_columns_and_dtypes(tmp_path):
    table = make_table(tmp_path).set_index(pd.Index([5, 7, 9]))
    out = validate(table)
    assert set(out.columns) == set(COLUMNS)  # missing optional columns are added
    assert list(out.index) == [0, 1, 2]
    assert out["onset"].dtype == np.int64 and out["offset"].dtype == np.int64
    assert out["n_frames"].dtype == np.int64
    assert out["apex"].dtype == "Int64" and out["fps"].dtype == float
    assert out["aus"].tolist() == [(12,), (4, 7), ()]
    assert out["au_sides"].tolist() == [(), (), ()]
    assert out["video_path"].isna().all()
    assert table["aus"].iloc[1] == [4, 7]  # the input is not modified


def test_missing_apex_is_allowed(tmp_path):
    out = validate(make_table(tmp_path, apex=[10, pd.NA, None]))
    assert out["apex"].isna().tolist() == [False, True, True]


def test_missing_columns(tmp_path):
    table = make_table(tmp_path).drop(columns=["fps", "camera"])
    with pytest.raises(SchemaError) as err:
        validate(table, source="sheet.xlsx")
    assert str(err.value) == "Sample table in sheet.xlsx lacks columns ['fps', 'camera']"


def test_missing_frames_on_disk(tmp_path):
    table = make_table(tmp_path)
    (Path(table["frames_dir"].iloc[1]) / "img1.jpg").unlink()  # empty folder
    table.loc[2, "frames_dir"] = str(tmp_path / "absent")
    with pytest.raises(SchemaError) as err:
        validate(table)
    msg = str(err.value)
    assert "frames missing on disk: CASME2/02/EP01_01, CASME2/03/EP02_01" in msg
    assert "EP00_01" not in msg
    assert len(validate(table, check_frames=False)) == 3


def test_video_path_is_checked(tmp_path):
    video = tmp_path / "clip.avi"
    video.write_bytes(b"\x00")
    table = make_table(tmp_path, n=2, frames_dir=None, video_path=[str(video), str(video) + "x"])
    with pytest.raises(SchemaError, match=r"frames missing on disk: CASME2/02/EP01_01$"):
        validate(table)


def test_onset_after_offset_and_apex_outside(tmp_path):
    table = make_table(tmp_path, onset=[1, 40, 5], apex=[10, 41, 3], offset=[30, 30, 30])
    with pytest.raises(SchemaError) as err:
        validate(table, check_frames=False, source="coding.xlsx")
    msg = str(err.value)
    assert msg.startswith("invalid Sample table in coding.xlsx:")
    assert "onset after offset: CASME2/02/EP01_01" in msg
    assert "apex outside [onset, offset]: CASME2/02/EP01_01, CASME2/03/EP02_01" in msg


def test_apex_equal_to_onset_or_offset_is_valid(tmp_path):
    table = make_table(tmp_path, n=2, onset=[5, 5], apex=[5, 30], offset=[30, 30])
    assert validate(table, check_frames=False)["apex"].tolist() == [5, 30]


def test_non_numeric_and_non_positive_frames(tmp_path):
    table = make_table(tmp_path, onset=[1, "x", 0], offset=[30, 30, 0], apex=[None, None, None])
    with pytest.raises(SchemaError) as err:
        validate(table, check_frames=False)
    msg = str(err.value)
    assert "onset/offset are not numbers: CASME2/02/EP01_01" in msg
    assert "offset is 0 or negative: CASME2/03/EP02_01" in msg


def test_duplicates(tmp_path):
    table = make_table(tmp_path)
    table.loc[2, ["subject", "clip"]] = ["CASME2/01", "EP00_01"]
    with pytest.raises(SchemaError) as err:
        validate(table, check_frames=False)
    msg = str(err.value)
    assert "duplicate (dataset, subject, clip): CASME2/01/EP00_01, CASME2/01/EP00_01" in msg
    assert msg.count("CASME2/01/EP00_01") == 2
    # the same clip name in another subject or dataset is not a duplicate
    table.loc[2, "subject"] = "CASME2/03"
    assert len(validate(table, check_frames=False)) == 3


def test_unknown_label(tmp_path):
    table = make_table(tmp_path, label=["positive", "joy", "negative"])
    with pytest.raises(SchemaError) as err:
        validate(table, check_frames=False, classes=("negative", "positive", "surprise"))
    assert "label not in ['negative', 'positive', 'surprise']: CASME2/02/EP01_01" in str(err.value)
    assert len(validate(table, check_frames=False)) == 3  # no classes given: not checked


def test_missing_required_values_and_bad_subject(tmp_path):
    table = make_table(
        tmp_path, emotion=["happiness", None, "surprise"], subject=["01", "a/b", "c/d"]
    )
    with pytest.raises(SchemaError) as err:
        validate(table, check_frames=False)
    msg = str(err.value)
    assert "missing required values: a/b/EP01_01" in msg
    assert "subject is not '<dataset>/<id>': CASME2/01/EP00_01" in msg


def test_every_problem_is_reported_at_once_and_long_lists_are_cut(tmp_path):
    n = 13
    table = make_table(
        tmp_path, n=n, onset=[50] * n, apex=[None] * n, offset=[30] * n, label=["x"] * n
    )
    with pytest.raises(SchemaError) as err:
        validate(table, check_frames=False, classes=("a",))
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert lines[1].strip().startswith("onset after offset: CASME2/01/EP00_01")
    assert lines[1].endswith("(+3 more)") and lines[2].endswith("(+3 more)")
    assert lines[1].count("CASME2/") == 10


def test_empty_table_is_valid():
    out = validate(empty_table())
    assert len(out) == 0 and tuple(out.columns) == COLUMNS
