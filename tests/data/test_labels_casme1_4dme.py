"""Label schemes of CASME I and 4DME on databases written by the synthetic sheet writers:
class counts, excluded emotions, multi-label 4DME clips, the CLI listing."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.data.adapters import load_4dme, load_casme1
from merkit.data.labels import CASME1_EMOTIONS, SCHEMES, apply_scheme
from merkit.data.schema import SchemaError
from merkit.data.synthetic.writer import write_4dme_sheet, write_casme1_sheet
from tests.data._files import write_numbered

#: CASME I emotions and how many clips of each the test sheet holds
CASME1_COUNTS: dict[str, int] = {
    "disgust": 5, "repression": 4, "tense": 3, "surprise": 2,
    "happiness": 2, "fear": 1, "sadness": 1, "contempt": 1,
}  # fmt: skip
#: 4DME Emotion texts (with their emotion-column labels) and clip counts
FOURD_COUNTS: dict[str, int] = {
    "Negative": 4, "Positive": 3, "Surprise": 2, "Repression": 2, "Others": 2,
    "Negative+Surprise": 2, "Positive+Surprise": 1,
}  # fmt: skip


def _casme1(root: Path, counts: dict[str, int] = CASME1_COUNTS) -> Path:
    rows = []
    n = 0
    for emotion, k in counts.items():
        for _ in range(k):
            n += 1
            rows.append({"subject": 1 + n % 3, "clip": f"EP{n:02d}_1", "onset": 10, "apex": 12,
                         "offset": 14, "aus": 4, "emotion": emotion.capitalize()})  # fmt: skip
    casme = root / "CASME"
    write_casme1_sheet(casme / "CASME-coding.xlsx", rows)
    for r in rows:
        folder = casme / "Cropped" / f"sub{r['subject']:02d}" / r["clip"]
        write_numbered(folder, 10, 14, "img{}.jpg", b"x")
    return casme


def _fourd(root: Path, counts: dict[str, int] = FOURD_COUNTS) -> Path:
    rows = []
    n = 0
    for emotion, k in counts.items():
        for _ in range(k):
            n += 1
            sid = f"S{1 + n % 2:02d}"
            rows.append({"subject": sid, "clip": f"{sid}_{n}_1", "onset": 3, "apex": 5,
                         "offset": 7, "aus": "AU4", "emotion": emotion,
                         "emotions": tuple(emotion.lower().split("+"))})  # fmt: skip
    fourd = root / "4DME"
    write_4dme_sheet(fourd / "4DME_labels.xlsx", rows)
    for r in rows:
        write_numbered(fourd / r["subject"] / r["clip"], 3, 7, "{}.jpg", b"x")
    return fourd


@pytest.fixture(scope="module")
def casme1(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("c1")
    _casme1(root)
    return load_casme1(root)


@pytest.fixture(scope="module")
def fourd(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("4d")
    _fourd(root)
    return load_4dme(root)


def test_casme1_4_counts_and_dropped(casme1, caplog):
    with caplog.at_level(logging.INFO, logger="merkit.data.labels"):
        t = apply_scheme(casme1, "casme1_4")
    assert t["label"].value_counts().to_dict() == {
        "disgust": 5, "repression": 4, "tense": 3, "surprise": 2,
    }  # fmt: skip
    assert t.attrs["classes"] == ("disgust", "repression", "surprise", "tense")
    assert t.loc[t["label"] == "tense", "y"].tolist() == [3, 3, 3]
    assert t.attrs["dropped"] == {
        "CASME1": {"happiness": 2, "fear": 1, "sadness": 1, "contempt": 1},
    }  # fmt: skip
    assert "dropped 5 of 19 CASME1 rows (contempt 1, fear 1, happiness 2, sadness 1)" in caplog.text
    assert set(CASME1_EMOTIONS) == set(CASME1_COUNTS)


def test_casme1_in_the_cross_database_schemes(casme1):
    m = apply_scheme(casme1, "megc3")
    # repression -> negative (as CASME II's), fear/sadness/contempt -> negative (as SAMM's)
    assert m["label"].value_counts().to_dict() == {"negative": 12, "positive": 2, "surprise": 2}
    assert m.attrs["dropped"] == {"CASME1": {"tense": 3}}
    f = apply_scheme(casme1, "four_class")
    assert f["label"].value_counts().to_dict() == {
        "negative": 8, "others": 7, "positive": 2, "surprise": 2,
    }  # fmt: skip
    assert f.attrs["dropped"] == {}
    assert set(f.loc[f["label"] == "others", "emotion"]) == {"repression", "tense"}


def test_fourd5_drops_multi_label_clips_and_logs_them(fourd, caplog):
    assert fourd["emotions"].map(len).tolist().count(2) == 3
    with caplog.at_level(logging.INFO, logger="merkit.data.labels"):
        t = apply_scheme(fourd, "fourd5")
    assert t["label"].value_counts().to_dict() == {
        "negative": 4, "positive": 3, "surprise": 2, "repression": 2, "others": 2,
    }  # fmt: skip
    assert t.attrs["classes"] == ("positive", "negative", "surprise", "repression", "others")
    assert t.loc[t["label"] == "repression", "y"].tolist() == [3, 3]
    assert t.attrs["dropped"] == {"4DME": {"negative+surprise": 2, "positive+surprise": 1}}
    assert t.attrs["multi_label_dropped"] == t.attrs["dropped"]
    assert all(len(e) == 1 for e in t["emotions"])
    assert (
        "scheme fourd5: dropped 3 multi-label 4DME clips (negative+surprise 2, "
        "positive+surprise 1)" in caplog.text
    )


def test_fourd_in_the_cross_database_schemes(fourd):
    m = apply_scheme(fourd, "megc3")
    assert m["label"].value_counts().to_dict() == {"negative": 6, "positive": 3, "surprise": 2}
    assert m.attrs["dropped"] == {
        "4DME": {"others": 2, "negative+surprise": 2, "positive+surprise": 1},
    }  # fmt: skip
    assert m.attrs["multi_label_dropped"] == {
        "4DME": {"negative+surprise": 2, "positive+surprise": 1},
    }  # fmt: skip
    f = apply_scheme(fourd, "four_class")
    assert f["label"].value_counts().to_dict() == {
        "negative": 4, "others": 4, "positive": 3, "surprise": 2,
    }  # fmt: skip


def test_multi_label_from_the_emotions_tuple_alone():
    # Emotion text of one label but two emotion-column flags: still a multi-label clip
    t = pd.DataFrame({"dataset": ["4DME"] * 2, "subject": ["4DME/S01"] * 2, "clip": ["a", "b"],
                      "emotion": ["negative", "negative"],
                      "emotions": [("negative", "repression"), ("negative",)]})  # fmt: skip
    out = apply_scheme(t, "fourd5")
    assert out["clip"].tolist() == ["b"]
    assert out.attrs["multi_label_dropped"] == {"4DME": {"negative": 1}}


def test_unknown_emotions_still_name_the_clips(casme1, fourd):
    bad = casme1.copy()
    bad.loc[3, "emotion"] = "anger"
    with pytest.raises(SchemaError) as err:
        apply_scheme(bad, "casme1_4")
    msg = str(err.value)
    assert "[('CASME1', 'anger')]" in msg and f"CASME1/{bad.loc[3, 'subject'].split('/')[1]}" in msg
    assert f"{bad.loc[3, 'clip']} (emotion 'anger')" in msg
    # a multi-label clip with an unknown label
    odd = fourd.copy()
    odd.loc[0, "emotion"] = "negative+joy"
    odd.at[0, "emotions"] = ("negative", "joy")
    with pytest.raises(SchemaError) as err:
        apply_scheme(odd, "fourd5")
    msg = str(err.value)
    assert "does not know [('4DME', 'joy')]" in msg
    assert f"4DME/S02/{odd.loc[0, 'clip']} (emotion 'negative+joy')" in msg
    # a scheme that does not cover CASME I names the family
    with pytest.raises(SchemaError, match=r"'cdmer3' does not know \[\('CASME1', 'contempt'\)"):
        apply_scheme(casme1, "cdmer3")


def test_other_databases_are_unchanged_by_the_new_families():
    emotions = ["happiness", "repression", "others", "fear", "disgust"]
    casme2 = pd.DataFrame({"dataset": "CASME2", "subject": "CASME2/01", "clip": list("abcde"),
                           "emotion": emotions})  # fmt: skip
    m = apply_scheme(casme2, "megc3")
    assert m["label"].tolist() == ["positive", "negative", "negative"]
    assert m.attrs["multi_label_dropped"] == {}
    assert SCHEMES["megc3"].families == frozenset({"CASME2", "SAMM", "SMIC", "CASME1", "4DME"})
    assert SCHEMES["cdmer3"].families == frozenset({"CASME2", "SMIC"})


def _rows(output: str) -> dict[str, list[str]]:
    """The rows of the ``merkit datasets`` table: database -> clips, subjects, fps, labels."""
    return {
        ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:6]]
        for ln in output.splitlines()
        if ln.startswith("│ ")
    }


def test_datasets_cli_shows_the_class_counts(tmp_path):
    _casme1(tmp_path)
    _fourd(tmp_path)
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, ["datasets", str(tmp_path), "--scheme", "casme1_4"])
    assert res.exit_code != 0 and "('4DME', 'negative')" in res.output  # 4DME not covered
    res = runner.invoke(app, ["datasets", str(tmp_path), "--scheme", "megc3"])
    assert res.exit_code == 0, res.output
    rows = _rows(res.output)
    assert rows["CASME1"] == ["16", "3", "60", "negative 12, positive 2, surprise 2"]
    assert rows["4DME"] == ["11", "2", "60", "negative 6, positive 3, surprise 2"]
    res = runner.invoke(app, ["datasets", str(tmp_path / "CASME"), "--scheme", "casme1_4"])
    assert res.exit_code == 0, res.output
    assert _rows(res.output)["CASME1"] == [
        "14", "3", "60", "disgust 5, repression 4, surprise 2, tense 3",
    ]  # fmt: skip
    res = runner.invoke(app, ["datasets", str(tmp_path / "4DME"), "--scheme", "fourd5"])
    assert res.exit_code == 0, res.output
    assert _rows(res.output)["4DME"] == [
        "13", "2", "60", "negative 4, others 2, positive 3, repression 2, surprise 2",
    ]  # fmt: skip
