"""Synthetic CASME I and 4DME: ``merkit synth --database CASME1,4DME`` writes the native
layouts that the adapters read back exactly, and ``merkit datasets`` lists them."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.data.adapters import load_4dme, load_casme1
from merkit.data.synthetic import SIZES
from merkit.data.synthetic.writer import CASME1_EMOTIONS, plan_4dme, plan_casme1

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("casme1")
    res = runner.invoke(
        app, ["synth", str(out), "--size", "tiny", "--database", "casme1,4dme", "--seed", "2"]
    )
    assert res.exit_code == 0, res.output
    return out, res.output


def test_synth_reports_and_datasets_lists_casme1(tiny):
    out, output = tiny
    assert f"CASME1: 9 clips, 3 subjects, {out / 'CASME'}" in output
    listed = runner.invoke(app, ["datasets", str(out)])
    assert listed.exit_code == 0, listed.output
    line = next(ln for ln in listed.output.splitlines() if ln.startswith("│ CASME1"))
    assert [c.strip() for c in line.split("│")[1:5]] == ["CASME1", "9", "3", "60"]
    assert f"4DME: 9 clips, 3 subjects, {out / '4DME'}" in output
    line = next(ln for ln in listed.output.splitlines() if ln.startswith("│ 4DME"))
    assert [c.strip() for c in line.split("│")[1:5]] == ["4DME", "9", "3", "60"]


def test_adapter_reads_every_clip_as_written(tiny):
    out, _ = tiny
    t = load_casme1(out)
    man = json.loads((out / "synthetic.json").read_text(encoding="utf-8"))
    written = {(r["subject"], r["clip"]): r for r in man["clips"] if r["database"] == "CASME1"}
    assert len(t) == len(written) == 9
    for r in t.itertuples(index=False):
        w = written[(r.subject.split("/")[1], r.clip)]
        assert (r.onset, r.apex, r.offset) == (w["onset"], w["apex"], w["offset"])
        assert r.emotion == w["emotion"]
        assert r.n_frames == w["offset"] - w["onset"] + 1
        assert r.fps == 60.0 and r.camera == "colour"
    assert set(t["emotion"]) <= set(CASME1_EMOTIONS)
    # the synthetic sheet is from a `merkit synth` database: no sheet fixes
    assert t.attrs["fixes_applied"] == []


def test_sheet_has_the_casme1_columns_and_sorted_rows(tiny):
    out, _ = tiny
    ws = openpyxl.load_workbook(out / "CASME" / "CASME-coding-synthetic.xlsx").active
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("Subject", "Filename", None, "OnsetF", "ApexF1", "ApexF2", "OffsetF",
                       None, "AU", "Emotion")  # fmt: skip
    keys = [(r[0], r[1]) for r in rows[1:]]
    assert keys == sorted(keys) and all(isinstance(r[0], int) for r in rows[1:])
    frames = sorted((out / "CASME" / "Cropped" / "sub01").iterdir())[0]
    assert all(p.name.startswith("img") and p.suffix == ".jpg" for p in frames.iterdir())


def test_plans_are_seeded_and_sized():
    a = plan_casme1(5, 4, 6)
    assert a == plan_casme1(5, 4, 6)
    assert len(a) == 24 and len({(p.subject, p.clip) for p in a}) == 24
    assert {p.subject for p in a} == {"01", "02", "03", "04"}
    assert SIZES["tiny"]["CASME1"] == {"subjects": 3, "clips": 3}


def test_4dme_adapter_reads_every_clip_as_written(tiny):
    out, _ = tiny
    t = load_4dme(out)
    man = json.loads((out / "synthetic.json").read_text(encoding="utf-8"))
    written = {(r["subject"], r["clip"]): r for r in man["clips"] if r["database"] == "4DME"}
    assert len(t) == len(written) == 9
    for r in t.itertuples(index=False):
        w = written[(r.subject.split("/")[1], r.clip)]
        assert (r.onset, r.apex, r.offset) == (w["onset"], w["apex"], w["offset"])
        assert r.emotion == w["emotion"] == "+".join(w["emotions"])
        assert r.emotions == tuple(w["emotions"])
        assert r.n_frames == w["offset"] - w["onset"] + 1
        assert r.fps == 60.0 and r.camera == "grey" and r.aus_k == ()
    frames = out / "4DME" / "S01" / "S01_01"
    assert all(p.suffix == ".jpg" and p.stem.isdigit() for p in frames.iterdir())


def test_4dme_plans_have_one_or_two_labels():
    plans = plan_4dme(0, 10, 10)
    assert plans == plan_4dme(0, 10, 10)
    assert {len(p.info["emotions"]) for p in plans} == {1, 2}
    assert sum(len(p.info["emotions"]) == 2 for p in plans) == 15  # 15 % of 100 clips
    assert {p.clip for p in plans if p.subject == "S10"} == {f"S10_{c:02d}" for c in range(1, 11)}
