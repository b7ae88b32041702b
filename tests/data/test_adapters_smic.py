"""SMIC adapter: annotation lists with clip folders faked in tmp_path, and a synthetic SMIC.

Every behaviour runs on a list written here in the format of the real ``smic-3classes.csv``
(no header: subject, clip, onset, apex, offset, label 1 positive / 2 negative / 3 surprise;
``s01_ne_01`` spelling, 6-digit frame numbers) and on a SMIC-HS written by
:mod:`merkit.data.synthetic` in its native layout. The tests parametrized with ``real`` repeat
them on the licensed list (``../shared/data/annotations/smic``) and skip when it is absent.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from merkit.data.adapters.smic import (
    load_smic,
    read_smic_list,
    smic_clip_name,
    smic_subject_id,
)
from merkit.data.labels import apply_scheme
from merkit.data.schema import SchemaError
from merkit.data.synthetic import synthesize

ANNOTATIONS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "annotations"
LIST = ANNOTATIONS / "smic" / "smic-3classes.csv"
BMP = cv2.imencode(".bmp", np.full((8, 8), 100, np.uint8))[1].tobytes()
FOLDER = {1: "positive", 2: "negative", 3: "surprise"}
#: a list in the real one's format; its first six clips have the names of the real
#: list's first six (s01: three negative, two positive, one surprise); s01_po_02 has its
#: apex on the last frame (as in the real list); s10 sorts after s2
SYNTH_LIST = pd.DataFrame(
    [
        ("s01", "s01_ne_01", 120400, 120413, 120436, 2),
        ("s01", "s01_ne_02", 131050, 131058, 131081, 2),
        ("s01", "s01_ne_03", 247300, 247315, 247326, 2),
        ("s01", "s01_po_01", 250010, 250029, 250032, 1),
        ("s01", "s01_po_02", 251200, 251229, 251229, 1),
        ("s01", "s01_sur_01", 98765, 98792, 98797, 3),
        ("s02", "s02_po_01", 4518, 4533, 4546, 1),
        ("s02", "s02_sur_01", 9868, 9894, 9894, 3),
        ("s10", "s10_ne_01", 700001, 700020, 700030, 2),
    ]
)


def write_frames(folder: Path, frames) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in frames:
        (folder / f"image{n:06d}.bmp").write_bytes(BMP)


def fake_hs(smic: Path, listing: pd.DataFrame, *, padded: bool = False) -> None:
    """HS clip folders for the rows of the raw list (subject, clip, on, apex, off, label)."""
    for subj, clip, on, _apex, off, label in listing.itertuples(index=False):
        s = subj if padded else smic_subject_id(subj)
        c = clip if padded else smic_clip_name(clip)
        write_frames(smic / "HS" / s / "micro" / FOLDER[label] / c, range(on, off + 1))


def raw_list() -> pd.DataFrame:
    if not LIST.exists():
        pytest.skip(f"real SMIC list {LIST} not available")
    return pd.read_csv(LIST, header=None)


@pytest.fixture(params=["synthetic", "real"])
def listing(request) -> pd.DataFrame:
    """The raw list (no header) written here, or the real one (skips when absent)."""
    if request.param == "real":
        return raw_list()
    return SYNTH_LIST.copy()


@pytest.fixture(scope="module")
def real_hs(tmp_path_factory) -> Path:
    """``<root>/SMIC`` with the real list and all 164 HS clips (s1 / s1_ne_01 spelling)."""
    listing = raw_list()
    root = tmp_path_factory.mktemp("smic_real")
    smic = root / "SMIC"
    smic.mkdir()
    (smic / "smic-3classes.csv").symlink_to(LIST.resolve())
    fake_hs(smic, listing)
    return root


def small_tree(
    root: Path, listing: pd.DataFrame, n: int = 6, *, padded: bool = False
) -> tuple[Path, pd.DataFrame]:
    """The first ``n`` clips of ``listing``, with their own copy of the list."""
    listing = listing.head(n)
    smic = root / "SMIC"
    smic.mkdir(parents=True, exist_ok=True)
    listing.to_csv(smic / "smic-3classes.csv", header=False, index=False)
    fake_hs(smic, listing, padded=padded)
    return smic, listing


def test_names_map_between_the_two_spellings():
    assert smic_subject_id("s01") == "s1" == smic_subject_id("S1") == smic_subject_id(1)
    assert smic_subject_id("s20") == "s20" and smic_subject_id("12") == "s12"
    assert smic_clip_name("s01_ne_01") == "s1_ne_01" == smic_clip_name("s1_ne_01")
    assert smic_clip_name("S3_PO_05") == "s3_po_05"
    assert smic_clip_name("s1_sur_02", padded=True) == "s01_sur_02"
    assert smic_clip_name("s14_ne_10", padded=True) == "s14_ne_10"
    for bad in ("sub01", "s1_xx_01", "s1-ne-01", "s_ne_01"):
        with pytest.raises(ValueError, match="is not a SMIC clip name"):
            smic_clip_name(bad)
    with pytest.raises(ValueError, match="is not a SMIC subject name"):
        smic_subject_id("sub1")


def test_list_names_round_trip(listing):
    canonical = [smic_clip_name(c) for c in listing[1]]
    assert len(set(canonical)) == len(listing)  # 164 for the real list
    assert all(c.startswith(smic_subject_id(s) + "_") for s, c in zip(listing[0], canonical,
                                                                        strict=True))  # fmt: skip
    assert [smic_clip_name(c, padded=True) for c in canonical] == listing[1].tolist()


def test_read_the_real_list():
    if not LIST.exists():
        pytest.skip(f"real SMIC list {LIST} not available")
    table = read_smic_list(LIST)
    assert len(table) == 164 and table["subject"].nunique() == 16
    assert table["emotion"].value_counts().to_dict() == {
        "negative": 70, "positive": 51, "surprise": 43,
    }  # fmt: skip
    first = table.iloc[0]
    assert (first["subject"], first["clip"], first["onset"], first["apex"], first["offset"]) == (
        "s1", "s1_ne_01", 559740, 559753, 559775,
    )  # fmt: skip


def test_read_a_list(tmp_path):
    path = tmp_path / "smic-3classes.csv"
    SYNTH_LIST.to_csv(path, header=False, index=False)
    table = read_smic_list(path)
    assert table["clip"].tolist() == [smic_clip_name(c) for c in SYNTH_LIST[1]]
    assert table["subject"].tolist() == ["s1"] * 6 + ["s2", "s2", "s10"]
    assert table["emotion"].value_counts().to_dict() == {
        "negative": 4, "positive": 3, "surprise": 2,
    }  # fmt: skip
    assert table["list_row"].tolist() == list(range(1, 10))
    first = table.iloc[0]
    assert (first["subject"], first["clip"], first["onset"], first["apex"], first["offset"]) == (
        "s1", "s1_ne_01", 120400, 120413, 120436,
    )  # fmt: skip


def test_hs_list_loads_every_clip(tmp_path):
    smic, _ = small_tree(tmp_path, SYNTH_LIST, n=9)
    table = load_smic(tmp_path, "hs")
    assert len(table) == 9
    assert set(table["dataset"]) == {"SMIC_HS"} and set(table["camera"]) == {"hs"}
    assert set(table["fps"]) == {100.0}
    assert table["subject"].drop_duplicates().tolist() == [
        "SMIC_HS/s1", "SMIC_HS/s2", "SMIC_HS/s10",
    ]  # fmt: skip
    assert table["clip"].tolist()[-3:] == ["s2_po_01", "s2_sur_01", "s10_ne_01"]
    assert table["emotion"].value_counts().to_dict() == {
        "negative": 4, "positive": 3, "surprise": 2,
    }  # fmt: skip
    assert (table["n_frames"] == table["offset"] - table["onset"] + 1).all()
    assert table["n_frames"].tolist() == [37, 32, 27, 23, 30, 33, 29, 27, 30]
    assert table["apex"].tolist() == [120413, 131058, 247315, 250029, 251229, 98792, 4533,
                                      9894, 700020]  # fmt: skip
    assert table["aus"].tolist() == [()] * 9
    assert table["frames_dir"].iloc[0] == str(smic / "HS" / "s1" / "micro" / "negative" /
                                              "s1_ne_01")  # fmt: skip
    labelled = apply_scheme(table, "cdmer3")
    assert labelled["y"].value_counts().sort_index().tolist() == [4, 3, 2]
    row = table[table["clip"] == "s1_po_02"].iloc[0]
    assert (row["onset"], row["apex"], row["offset"], row["n_frames"]) == (251200, 251229,
                                                                          251229, 30)  # fmt: skip


def test_real_hs_list_loads_164_clips(real_hs):
    table = load_smic(real_hs, "hs")
    assert len(table) == 164
    assert set(table["dataset"]) == {"SMIC_HS"} and set(table["camera"]) == {"hs"}
    assert set(table["fps"]) == {100.0}
    assert table["subject"].nunique() == 16
    assert table["subject"].iloc[0] == "SMIC_HS/s1" and table["subject"].iloc[-1] == "SMIC_HS/s20"
    assert table["emotion"].value_counts().to_dict() == {
        "negative": 70, "positive": 51, "surprise": 43,
    }  # fmt: skip
    assert (table["n_frames"] == table["offset"] - table["onset"] + 1).all()
    assert table["apex"].notna().all()
    assert table["aus"].tolist() == [()] * 164
    assert table["frames_dir"].iloc[0].endswith("SMIC/HS/s1/micro/negative/s1_ne_01")
    labelled = apply_scheme(table, "cdmer3")
    assert len(labelled) == 164 and labelled["y"].value_counts().sort_index().tolist() == [
        70, 51, 43,
    ]  # fmt: skip


def test_exact_row_of_the_real_list(real_hs):
    table = load_smic(real_hs, "hs")
    row = table[table["clip"] == "s1_po_02"].iloc[0]
    assert (row["onset"], row["apex"], row["offset"], row["n_frames"]) == (702609, 702638,
                                                                          702638, 30)  # fmt: skip


def test_padded_folder_spelling_gives_the_same_table(listing, tmp_path):
    plain, _ = small_tree(tmp_path / "a", listing)
    padded, _ = small_tree(tmp_path / "b", listing, padded=True)
    assert (padded / "HS" / "s01" / "micro" / "negative" / "s01_ne_01").is_dir()
    t1 = load_smic(plain.parent, "hs").drop(columns="frames_dir")
    t2 = load_smic(padded.parent, "hs").drop(columns="frames_dir")
    pd.testing.assert_frame_equal(t1, t2)
    assert t1["clip"].tolist()[:3] == ["s1_ne_01", "s1_ne_02", "s1_ne_03"]


def test_the_smic_folder_itself_and_case_of_names(listing, tmp_path):
    smic, _ = small_tree(tmp_path, listing)
    (smic / "HS").rename(smic / "hs")
    table = load_smic(smic, "HS")
    assert len(table) == 6 and table["dataset"].iloc[0] == "SMIC_HS"


def test_list_label_disagreeing_with_the_folder_raises(listing, tmp_path):
    smic, _ = small_tree(tmp_path, listing)
    src = smic / "HS" / "s1" / "micro" / "negative" / "s1_ne_02"
    dst = smic / "HS" / "s1" / "micro" / "surprise" / "s1_ne_02"
    dst.parent.mkdir(exist_ok=True)
    src.rename(dst)
    with pytest.raises(SchemaError) as err:
        load_smic(tmp_path)
    assert "s1_ne_02: smic-3classes.csv line 2 says negative, folder surprise" in str(err.value)


def test_list_and_disk_mismatches(listing, tmp_path, caplog):
    smic, _ = small_tree(tmp_path, listing)
    shutil.rmtree(smic / "HS" / "s1" / "micro" / "positive" / "s1_po_01")
    write_frames(smic / "HS" / "s1" / "micro" / "positive" / "s1_po_09", range(1, 30))
    with pytest.raises(SchemaError) as err:
        load_smic(tmp_path)
    msg = str(err.value)
    assert "SMIC_HS clips missing or incomplete: 2 clip(s)" in msg
    assert "s1_po_01: in smic-3classes.csv but not on disk" in msg
    assert "s1_po_09: on disk (" in msg and "but not in smic-3classes.csv" in msg
    with caplog.at_level(logging.WARNING):
        table = load_smic(tmp_path, missing="skip")
    assert table["clip"].tolist() == ["s1_ne_01", "s1_ne_02", "s1_ne_03", "s1_po_02", "s1_sur_01"]
    assert "s1_po_09" in caplog.text


def test_frames_missing_inside_the_interval(listing, tmp_path):
    smic, listing = small_tree(tmp_path, listing)
    on = int(listing.iloc[0, 2])
    folder = smic / "HS" / "s1" / "micro" / "negative" / "s1_ne_01"
    (folder / f"image{on + 3:06d}.bmp").unlink()
    with pytest.raises(SchemaError, match=rf"s1_ne_01: frames {on + 3} of \[{on}, "):
        load_smic(tmp_path)
    assert len(load_smic(tmp_path, missing="skip")) == 5


def test_vis_and_nir_without_list(listing, tmp_path):
    smic, _ = small_tree(tmp_path, listing)
    for cam in ("VIS", "NIR"):
        write_frames(smic / cam / "s1" / "micro" / "negative" / "s1_ne_01", range(11, 31))
        write_frames(smic / cam / "s2" / "micro" / "surprise" / "s2_sur_03", range(1, 9))
        write_frames(smic / cam / "s10" / "micro" / "positive" / "s10_po_01", range(5, 16))
    vis = load_smic(tmp_path, "vis")
    assert vis["subject"].tolist() == ["SMIC_VIS/s1", "SMIC_VIS/s2", "SMIC_VIS/s10"]
    assert vis[["onset", "offset", "n_frames"]].values.tolist() == [[11, 30, 20], [1, 8, 8],
                                                                     [5, 15, 11]]  # fmt: skip
    assert vis["apex"].isna().all() and set(vis["fps"]) == {25.0}
    assert set(vis["camera"]) == {"vis"}
    hs = load_smic(tmp_path, "hs")
    assert vis["subject"].iloc[0].split("/")[1] == hs["subject"].iloc[0].split("/")[1] == "s1"
    (smic / "VIS" / "s2" / "micro" / "surprise" / "s2_sur_03" / "image000004.bmp").unlink()
    with pytest.raises(SchemaError, match=r"s2_sur_03: frames 4 of \[1, 8\] missing"):
        load_smic(tmp_path, "vis")
    nir = load_smic(tmp_path, "nir")
    assert set(nir["dataset"]) == {"SMIC_NIR"} and set(nir["fps"]) == {25.0}
    assert nir["emotion"].tolist() == ["negative", "surprise", "positive"]


def test_hs_without_a_list_uses_the_frames_on_disk(listing, tmp_path, caplog):
    smic, listing = small_tree(tmp_path, listing, n=2)
    (smic / "smic-3classes.csv").unlink()
    with caplog.at_level(logging.INFO, logger="merkit.data.adapters.smic"):
        table = load_smic(tmp_path)
    assert "no annotation list" in caplog.text
    assert table["onset"].tolist() == listing[2].tolist()
    assert table["offset"].tolist() == listing[4].tolist()
    assert table["apex"].isna().all()


def test_explicit_annotations_argument(listing, tmp_path):
    smic, listing = small_tree(tmp_path, listing, n=3)
    other = tmp_path / "elsewhere.csv"
    listing.to_csv(other, header=False, index=False)
    (smic / "smic-3classes.csv").unlink()
    assert load_smic(tmp_path, annotations=other)["apex"].tolist() == listing[3].tolist()
    with pytest.raises(FileNotFoundError, match="SMIC annotation list .*nope.csv does not exist"):
        load_smic(tmp_path, annotations=tmp_path / "nope.csv")


def test_bad_list_and_folders(listing, tmp_path):
    smic, listing = small_tree(tmp_path, listing, n=2)
    bad = listing.copy()
    bad.iloc[1, 5] = 7
    bad.to_csv(smic / "smic-3classes.csv", header=False, index=False)
    with pytest.raises(SchemaError, match=r"smic-3classes.csv line 2 \(s01_ne_02\): cannot read"):
        load_smic(tmp_path)
    listing.iloc[:, :5].to_csv(smic / "smic-3classes.csv", header=False, index=False)
    with pytest.raises(SchemaError, match="expected 6 columns"):
        load_smic(tmp_path)
    listing.to_csv(smic / "smic-3classes.csv", header=False, index=False)
    write_frames(smic / "HS" / "s1" / "micro" / "angry" / "s1_an_01", range(3))
    with pytest.raises(SchemaError, match="angry: emotion folder is not one of"):
        load_smic(tmp_path)
    shutil.rmtree(smic / "HS" / "s1" / "micro" / "angry")
    write_frames(smic / "HS" / "s1" / "micro" / "negative" / "s2_ne_01", range(3))
    with pytest.raises(SchemaError, match="s2_ne_01: clip of another subject than s1"):
        load_smic(tmp_path)


def test_errors_on_a_synthetic_smic_in_its_native_layout(tmp_path, caplog):
    info = synthesize(tmp_path, databases=["SMIC_HS"], size="tiny", seed=0)["databases"]
    smic = tmp_path / "SMIC"
    listed = read_smic_list(smic / "smic-3classes.csv")
    table = load_smic(tmp_path)
    assert len(table) == len(listed) == info["SMIC_HS"]["clips"] == 9
    both = table.merge(listed, on="clip", suffixes=("", "_list"))
    assert len(both) == 9
    for col in ("onset", "apex", "offset", "emotion"):
        assert both[col].tolist() == both[f"{col}_list"].tolist()
    assert (both["subject"] == "SMIC_HS/" + both["subject_list"]).all()
    row = both.iloc[0]
    clip, line, onset, folder = row["clip"], row["list_row"], row["onset"], Path(row["frames_dir"])
    assert folder.parent.name == row["emotion"] and folder.name == smic_clip_name(clip, padded=True)

    # a frame missing inside the listed interval
    frame = folder / f"image{onset + 2:06d}.bmp"
    aside = tmp_path / "aside.bmp"
    frame.rename(aside)
    with pytest.raises(SchemaError, match=rf"{clip}: frames {onset + 2} of \[{onset}, "):
        load_smic(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert clip not in load_smic(tmp_path, missing="skip")["clip"].tolist()
    assert clip in caplog.text
    aside.rename(frame)

    # the clip filed under another emotion than the list's
    other = next(e for e in ("negative", "positive", "surprise") if e != row["emotion"])
    moved = folder.parent.parent / other / folder.name
    moved.parent.mkdir(exist_ok=True)
    folder.rename(moved)
    with pytest.raises(SchemaError) as err:
        load_smic(tmp_path)
    assert f"{clip}: smic-3classes.csv line {line} says {row['emotion']}, folder {other}" in str(
        err.value
    )

    # a listed clip that is not on disk
    shutil.rmtree(moved)
    with pytest.raises(SchemaError) as err:
        load_smic(tmp_path)
    assert "SMIC_HS clips missing or incomplete: 1 clip(s)" in str(err.value)
    assert f"{clip}: in smic-3classes.csv but not on disk" in str(err.value)
    assert len(load_smic(tmp_path, missing="skip")) == 8


def test_layout_errors_are_one_clear_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"SMIC root .*nowhere does not exist"):
        load_smic(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no SMIC data in .*: expected a folder"):
        load_smic(tmp_path)
    (tmp_path / "SMIC" / "HS").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no SMIC VIS folder in .*SMIC: expected"):
        load_smic(tmp_path, "vis")
    with pytest.raises(FileNotFoundError, match=r"no SMIC clips in .*HS: expected s<N>/micro/"):
        load_smic(tmp_path, "hs")
    with pytest.raises(ValueError, match="SMIC camera must be one of"):
        load_smic(tmp_path, "thermal")


def test_megc2019_composite_smic_rows_match_the_list_one_to_one():
    composite = ANNOTATIONS / "megc2019" / "combined_3class_gt.csv"
    if not composite.exists() or not LIST.exists():
        pytest.skip(f"real lists {composite} / {LIST} not available")
    gt = pd.read_csv(composite, header=None, dtype=str)
    smic = gt[gt[0] == "smic"]
    assert len(smic) == 164
    listed = read_smic_list(LIST)
    names = [smic_clip_name(c) for c in smic[2]]
    assert sorted(names) == sorted(listed["clip"]) and len(set(names)) == 164
    assert [smic_clip_name(n, padded=True) for n in names] == smic[2].tolist()
    assert {smic_subject_id(s) for s in smic[1]} == set(listed["subject"])
    # composite labels 0/1/2 = negative/positive/surprise agree with the list's emotions
    emotion = dict(zip(listed["clip"], listed["emotion"], strict=True))
    as_label = {"negative": "0", "positive": "1", "surprise": "2"}
    assert [as_label[emotion[n]] for n in names] == smic[3].tolist()
