"""The grid run's progress display: one bar per kind of work that is actually done."""

from __future__ import annotations

import re

from merkit.protocols.runner import run_grid

SVM_GRID = {"svm": [{"C": 0.05}, {"C": 1.0}]}
TGSR_GRID = {"tgsr": [{"kappa": k, "xi": 0.5, "group_size": 2} for k in (1, 2)]}


def bars(text: str) -> dict[str, str]:
    """``{description: "n/N"}`` of the finished bars printed by a run."""
    return dict(re.findall(r"grid (\w[\w ]*?)\s+\S*\s+(\d+/\d+)", text))


def test_a_bar_is_shown_only_when_there_is_its_work(domains, tmp_path, capsys):
    run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path / "svm", progress=True)
    out = capsys.readouterr().out
    assert bars(out) == {"fits": "4/4"}, out  # no stray "criteria 0/0"
    assert "criteria" not in out and "0/0" not in out
    # TGSR's reverse validation is part of its fits (one dual solve per batch)
    run_grid(domains, "tgsr", grid=TGSR_GRID, store=tmp_path / "tgsr", progress=True)
    out = capsys.readouterr().out
    assert bars(out) == {"fits": "4/4"}, out
    # stored fits that lack only reverse: only the criteria bar
    run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path / "more", progress=False,
             criteria=["class_entropy", "entropy"])  # fmt: skip
    run_grid(domains, "svm", grid=SVM_GRID, store=tmp_path / "more", progress=True)
    out = capsys.readouterr().out
    assert bars(out) == {"criteria": "4/4"}, out
    assert "fits" not in out and "0/0" not in out
