"""``merkit stats`` on synthetic coding sheets (written in the real formats) and, when
mounted, on the real DFME, CASME II, SAMM and CAS(ME)^3 sheets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.data.coded import coded_databases, load_coded
from merkit.data.synthetic.writer import write_casme2_sheet, write_dfme_sheet
from merkit.workflows.stats import TABLES, run_stats

from ._output import one_error_line

runner = CliRunner()

#: clips of a DFME sheet: subject, clip, onset, apex, offset, emotion, id, fps, AU cell
DFME_ROWS = [
    ("sub0001", "sub0001_01", 0, 100, 249, "happiness", 3, 500, "6+12"),  # 500 ms: micro
    ("sub0001", "sub0001_02", 0, 125, 250, "happiness", 3, 500, "12"),  # 502 / 252 ms: macro
    ("sub0001", "sub0001_03", 0, 124, 300, "happiness", 3, 500, "L12"),  # rise 250 ms: micro
    ("sub0002", "sub0002_01", 10, 40, 109, "disgust", 2, 200, "4+7"),  # 500 ms: micro
    ("sub0002", "sub0002_02", 10, 60, 110, "disgust", 2, 200, "4+7"),  # 505 / 255 ms: macro
    ("sub0002", "sub0002_03", 1, 75, 151, "disgust", 2, 300, "4+R10"),  # rise 250 ms: micro
]


def _dfme(root: Path) -> Path:
    folder = root / "DFME"
    folder.mkdir(parents=True)
    keys = ("subject", "clip", "onset", "apex", "offset", "emotion", "emotion_id", "fps", "aus")
    rows = [dict(zip(keys, r, strict=True)) for r in DFME_ROWS]
    write_dfme_sheet(folder / "training_full_with_AU.xlsx", rows)
    return root


def _casme2(root: Path) -> Path:
    folder = root / "CASME2"
    folder.mkdir(parents=True)
    rows = [  # 100 frames at 200 fps = 500 ms: micro; 101 frames, apex at 260 ms: macro
        {"subject": "01", "clip": "EP01_01", "onset": 1, "apex": 50, "offset": 100,
         "aus": "4+L10", "emotion": "disgust"},
        {"subject": "02", "clip": "EP02_01", "onset": 1, "apex": 52, "offset": 101,
         "aus": "12", "emotion": "happiness"},
    ]  # fmt: skip
    write_casme2_sheet(folder / "CASME2-coding-20140508.xlsx", rows)
    return root


def test_sheets_are_read_without_frames(tmp_path: Path) -> None:
    root = _casme2(_dfme(tmp_path))
    assert coded_databases(root) == ["CASME2", "DFME"]
    table = load_coded(root, "DFME")
    assert list(table["fps"]) == [500.0, 500.0, 500.0, 200.0, 200.0, 300.0]
    assert table["subject"].tolist()[:1] == ["DFME/0001"]
    assert table.loc[5, "aus"] == (4, 10) and table.loc[5, "au_sides"] == ("", "R")
    with pytest.raises(KeyError, match="SMIC_HS"):
        load_coded(root, "SMIC_HS")


def test_run_stats_tables_and_files(tmp_path: Path) -> None:
    root = _casme2(_dfme(tmp_path / "data"))
    out = tmp_path / "out"
    result = run_stats(root, out)
    assert list(result.databases) == ["CASME2", "DFME"]
    assert sorted(p.name for p in result.files) == sorted(
        [f"{t}.csv" for t in TABLES] + ["durations.png"]
    )
    dist = pd.read_csv(out / "au_distribution.csv")
    dfme = dist[dist["dataset"] == "DFME"].set_index("au")["count"].to_dict()
    assert dfme == {"AU4": 3, "AU6": 1, "AU7": 2, "AU12": 2, "L/R-AU10": 1, "L/R-AU12": 1}
    casme2 = dist[dist["dataset"] == "CASME2"].set_index("au")["count"].to_dict()
    assert casme2 == {"AU4": 1, "AU12": 1, "L/R-AU10": 1}
    dur = pd.read_csv(out / "durations.csv")
    assert dur.loc[dur["dataset"] == "DFME", "kind"].tolist() == [
        "micro", "macro", "micro", "micro", "macro", "micro",
    ]  # fmt: skip
    assert dur.loc[dur["dataset"] == "CASME2", "kind"].tolist() == ["micro", "macro"]
    by = pd.read_csv(out / "au_by_emotion.csv")
    happy = by[(by["dataset"] == "DFME") & (by["emotion"] == "happiness")]
    assert happy.set_index("au")["percent"].round(2).to_dict() == {
        "AU12": 66.67, "AU6": 33.33, "L/R-AU12": 33.33,
    }  # fmt: skip
    assert (out / "durations.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_prints_the_tables_of_one_database(tmp_path: Path) -> None:
    root = _casme2(_dfme(tmp_path / "data"))
    out = tmp_path / "o [v2]"  # printed whole, never read as rich markup
    res = runner.invoke(app, ["stats", str(root), "--database", "dfme", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"wrote {out / 'durations.png'}" in res.output
    assert "DFME: 6 clips, 2 subjects, 10 AU labels (1.667 per clip)" in res.output
    assert "CASME2" not in res.output
    assert "L/R-AU10" in res.output and "AU4+AU7" in res.output
    assert pd.read_csv(out / "clips_per_emotion.csv")["clips"].tolist() == [3, 3]


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    line = one_error_line(runner.invoke(app, ["stats", str(tmp_path / "nope")]))
    assert "nope" in line and "does not exist" in line
    (tmp_path / "empty").mkdir()
    line = one_error_line(runner.invoke(app, ["stats", str(tmp_path / "empty")]))
    assert "no database with AU labels under" in line and "empty" in line
    root = _dfme(tmp_path / "data")
    line = one_error_line(runner.invoke(app, ["stats", str(root), "--database", "SMIC_HS"]))
    assert "--database SMIC_HS" in line and "CASME3_A" in line
    line = one_error_line(runner.invoke(app, ["stats", str(root), "--database", "CASME2"]))
    assert "no CASME2 coding sheet under" in line and "DFME" in line
    line = one_error_line(runner.invoke(app, ["stats", str(root), "--top", "0"]))
    assert "--top 0" in line
    (tmp_path / "file").write_text("x")
    line = one_error_line(runner.invoke(app, ["stats", str(root), "-o", str(tmp_path / "file")]))
    assert "is a file" in line


def test_real_sheets(shared_data: Path, tmp_path: Path) -> None:
    """Counts measured on the released sheets (the DFME ones hold 2,629 of 7,526 clips)."""
    root = shared_data / "annotations"
    result = run_stats(root)
    sizes = {n: (d.clips, d.subjects) for n, d in result.databases.items()}
    assert sizes == {"CASME2": (255, 26), "SAMM": (159, 29), "CASME3_A": (860, 94),
                     "CASME3_C": (165, 30), "DFME": (2629, 259)}  # fmt: skip
    dfme = result.databases["DFME"]
    assert dfme.au_distribution.attrs["labels"] == 4554
    top = dfme.au_distribution.sort_values("rank")["au"].head(3).tolist()
    assert top == ["AU4", "AU7", "AU5"]  # the paper's Table 5: AU4, AU7, AU5 as well
    assert dfme.clips_per_emotion.set_index("emotion")["clips"].to_dict() == {
        "disgust": 735, "surprise": 447, "fear": 365, "sadness": 359, "happiness": 311,
        "anger": 241, "contempt": 171,
    }  # fmt: skip
    by = dfme.au_by_emotion.set_index(["emotion", "au"])["percent"]
    assert by[("happiness", "AU12")] == pytest.approx(100 * 212 / 311)
    assert by[("contempt", "L/R-AU12")] == pytest.approx(100 * 107 / 171)
    summary = dfme.duration_summary.set_index("fps")
    assert summary.loc["all", "macro"] == 8 and summary.loc["300", "macro"] == 8
    assert summary.loc["all", "micro_intervals"] == 2629
