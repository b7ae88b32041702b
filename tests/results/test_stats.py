"""Label statistics (DFME Tables 5-7, the micro/macro duration rule) on hand-made clips.

Every expected number below is computed by hand from the clips of :func:`_clips`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from merkit.data.schema import SchemaError
from merkit.results.stats import (
    au_by_emotion,
    au_combinations,
    au_distribution,
    au_label,
    clip_au_labels,
    clip_durations,
    clips_per_emotion,
    clips_per_subject,
    duration_figure,
    duration_summary,
    high_occurrence,
)

#: (subject, clip, emotion, fps, onset, apex, offset, aus, sides)
CLIPS = [
    # 250 frames at 500 fps = 500 ms: micro by the total rule (on the limit)
    ("S/1", "c1", "happiness", 500, 0, 100, 249, (6, 12), ("", "")),
    # 251 frames = 502 ms and 126 frames to apex = 252 ms: macro
    ("S/1", "c2", "happiness", 500, 0, 125, 250, (12,), ("",)),
    # 602 ms, but 125 frames to apex = 250 ms: micro by the rise rule
    ("S/1", "c3", "happiness", 500, 0, 124, 300, (12,), ("L",)),
    # 100 frames at 200 fps = 500 ms: micro
    ("S/2", "c4", "disgust", 200, 10, 40, 109, (4, 7), ("", "")),
    # 101 frames = 505 ms, 51 frames to apex = 255 ms: macro
    ("S/2", "c5", "disgust", 200, 10, 60, 110, (4, 7), ("", "")),
    # 151 frames at 300 fps = 503.3 ms, 75 frames to apex = 250 ms: micro
    ("S/2", "c6", "disgust", 300, 1, 75, 151, (4, 10), ("", "R")),
    # 150 frames at 300 fps = 500 ms: micro; both halves coded apart: L/R-AU12
    ("S/3", "c7", "contempt", 300, 0, 10, 149, (12,), ("LR",)),
    ("S/3", "c8", "surprise", 200, 0, 20, 50, (1, 2, 5), ("", "", "")),
]


def _clips() -> pd.DataFrame:
    cols = ["subject", "clip", "emotion", "fps", "onset", "apex", "offset", "aus", "au_sides"]
    table = pd.DataFrame(CLIPS, columns=cols)
    table["au_intensities"] = [("",) * len(a) for a in table["aus"]]
    return table


def test_au_label_names_sides_as_the_paper_does() -> None:
    assert au_label(12, "") == "AU12"
    assert au_label(12, "L") == "L/R-AU12"
    assert au_label(14, "R") == "L/R-AU14"
    assert au_label(12, "LR") == "L/R-AU12"
    assert au_label(28, "T") == "T-AU28"
    assert au_label(12, "A/L") == "A/L-AU12"
    assert clip_au_labels(_clips())[5] == ("AU4", "L/R-AU10")


def test_au_distribution_counts_bilateral_and_one_sided_aus_apart() -> None:
    dist = au_distribution(_clips())
    got = dict(zip(dist["au"], dist["count"], strict=True))
    assert list(dist["au"]) == [
        "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU12", "L/R-AU10", "L/R-AU12",
    ]  # fmt: skip
    assert got == {"AU1": 1, "AU2": 1, "AU4": 3, "AU5": 1, "AU6": 1, "AU7": 2, "AU12": 2,
                   "L/R-AU10": 1, "L/R-AU12": 2}  # fmt: skip
    ranks = dict(zip(dist["au"], dist["rank"], strict=True))
    assert ranks["AU4"] == 1 and ranks["AU7"] == ranks["AU12"] == ranks["L/R-AU12"] == 2
    assert ranks["AU1"] == 5
    assert dist.attrs["labels"] == 14 and dist.attrs["clips"] == 8
    assert dist.attrs["aus_per_clip"] == pytest.approx(14 / 8)
    row = dist[dist["au"] == "AU4"].iloc[0]
    assert row["percent_of_labels"] == pytest.approx(100 * 3 / 14)
    assert row["percent_of_clips"] == pytest.approx(100 * 3 / 8)


def test_au_by_emotion_gives_percentages_of_each_emotions_clips() -> None:
    by = au_by_emotion(_clips())
    # happiness and disgust both have 3 clips: by name; then contempt, surprise (1 each)
    assert list(dict.fromkeys(by["emotion"])) == ["disgust", "happiness", "contempt", "surprise"]
    disgust = by[by["emotion"] == "disgust"]
    assert list(disgust["au"]) == ["AU4", "AU7", "L/R-AU10"]
    np.testing.assert_allclose(disgust["percent"], [100.0, 200 / 3, 100 / 3])
    happy = by[by["emotion"] == "happiness"]
    assert list(happy["au"]) == ["AU12", "AU6", "L/R-AU12"]
    np.testing.assert_allclose(happy["percent"], [200 / 3, 100 / 3, 100 / 3])
    assert list(happy["rank"]) == [1, 2, 2]
    assert set(by.loc[by["emotion"] == "contempt", "au"]) == {"L/R-AU12"}
    high = high_occurrence(by, 50.0)
    assert list(zip(high["emotion"], high["au"], strict=True)) == [
        ("disgust", "AU4"), ("disgust", "AU7"), ("happiness", "AU12"), ("contempt", "L/R-AU12"),
        ("surprise", "AU1"), ("surprise", "AU2"), ("surprise", "AU5"),
    ]  # fmt: skip


def test_au_combinations_are_whole_clip_codings_in_au_order() -> None:
    top1 = au_combinations(_clips(), top=1)
    disgust = top1[top1["emotion"] == "disgust"]
    assert list(disgust["combination"]) == ["AU4+AU7"]
    assert disgust["percent"].iloc[0] == pytest.approx(200 / 3)
    happy = top1[top1["emotion"] == "happiness"]  # three combinations of one clip each: ties kept
    assert sorted(happy["combination"]) == ["AU12", "AU6+AU12", "L/R-AU12"]
    assert top1.loc[top1["emotion"] == "surprise", "combination"].tolist() == ["AU1+AU2+AU5"]
    with pytest.raises(ValueError, match="top = 0"):
        au_combinations(_clips(), top=0)


def test_clip_counts_per_emotion_and_subject() -> None:
    per = clips_per_emotion(_clips())
    assert list(per["emotion"]) == ["disgust", "happiness", "contempt", "surprise"]
    assert list(per["clips"]) == [3, 3, 1, 1]
    assert list(per["subjects"]) == [1, 1, 1, 1]
    np.testing.assert_allclose(per["percent"], [37.5, 37.5, 12.5, 12.5])
    sub = clips_per_subject(_clips()).set_index("subject")
    assert sub.loc["S/1", "clips"] == 3 and sub.loc["S/1", "happiness"] == 3
    assert sub.loc["S/3", "contempt"] == 1 and sub.loc["S/3", "surprise"] == 1
    assert sub.loc["S/3", "disgust"] == 0


def test_duration_rule_on_clips_just_below_and_above_the_limits() -> None:
    d = clip_durations(_clips())
    np.testing.assert_allclose(
        d["total_ms"], [500.0, 502.0, 602.0, 500.0, 505.0, 151 / 0.3, 500.0, 255.0]
    )
    np.testing.assert_allclose(
        d["rise_ms"], [202.0, 252.0, 250.0, 155.0, 255.0, 250.0, 11 / 0.3, 105.0]
    )
    assert list(d["micro"]) == [True, False, True, True, False, True, True, True]
    assert list(d["kind"]) == ["micro", "macro", "micro", "micro", "macro"] + ["micro"] * 3
    # timed as frame intervals, c2 (250 / 500 fps) and c5 (100 / 200 fps) are 500 ms
    assert d["micro_intervals"].all()
    summary = duration_summary(d).set_index("fps")
    assert list(summary.index) == ["200", "300", "500", "all"]
    assert summary.loc["200", "clips"] == 3 and summary.loc["200", "macro"] == 1
    assert summary.loc["300", "micro"] == 2 and summary.loc["300", "macro"] == 0
    assert summary.loc["500", "total_le_500"] == 1 and summary.loc["500", "rise_le_250"] == 2
    assert summary.loc["all", "micro"] == 6 and summary.loc["all", "macro"] == 2
    assert summary.loc["all", "percent_micro"] == pytest.approx(75.0)
    assert summary.loc["all", "max_ms"] == pytest.approx(602.0)


def test_a_clip_without_apex_is_judged_on_its_total_duration() -> None:
    table = _clips().iloc[:2].copy()
    table["apex"] = pd.array([pd.NA, pd.NA], dtype="Int64")
    table["offset"] = [199, 300]  # 400 ms and 602 ms at 500 fps
    d = clip_durations(table)
    assert list(d["micro"]) == [True, False]
    assert d["rise_ms"].isna().all()


def test_durations_refuse_a_clip_without_frame_rate() -> None:
    table = _clips()
    table.loc[3, "fps"] = 0
    with pytest.raises(SchemaError, match="S/2/c4 has fps 0"):
        clip_durations(table)


def test_duration_figure_draws_both_panels_with_the_limits() -> None:
    fig = duration_figure({"A": clip_durations(_clips())})
    left, right = fig.axes
    assert [line.get_xdata()[0] for line in left.lines] == [500.0]
    assert [line.get_xdata()[0] for line in right.lines] == [250.0]
    assert left.get_xlim() == (0.0, 2000.0)
