"""What the CLI prints is what it means: square brackets in help texts, paths, names and
messages are shown whole (never read as rich markup), and bad seeds are one clear line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from merkit.cli import app
from merkit.data.schema import FeatureSet
from merkit.features.extract import save_feature_file

runner = CliRunner()
#: the largest seed numpy's and scikit-learn's generators accept
SEED_MAX = 2**32 - 1


def plain(output: str) -> str:
    """Output with rich's box characters removed and whitespace collapsed (wrapping aside)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_help_texts_show_their_square_brackets() -> None:
    res = runner.invoke(app, ["cdmer", "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "JSON file {method: [params, ...]} (a method's value may be" in plain(res.output)
    # every help text and docstring survives rich markup (nothing swallowed)
    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            assert Text.from_markup(text).plain == text.replace("\\[", "["), (name, text)


def two_domains(path: Path) -> Path:
    """A merkit feature file with synthetic CASME2 and SMIC_VIS rows (tasks Exp.9, Exp.10)."""
    sets, classes = {}, ("negative", "positive", "surprise")
    for name, n, shift, seed in (("CASME2", 40, 0.0, 1), ("SMIC_VIS", 25, -0.7, 3)):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 3, n)
        X = np.eye(3, 6)[y] * 1.2 + rng.normal(size=(n, 6)) + shift
        table = pd.DataFrame({"dataset": name, "subject": [f"{name}/{i % 5}" for i in range(n)],
                              "clip": [f"c{i:03d}" for i in range(n)], "y": y,
                              "label": [classes[v] for v in y]})  # fmt: skip
        sets[name] = FeatureSet(X, table, name=name, classes=classes)
    npz, _ = save_feature_file(sets, path, descriptor="lbp_top:r3p8")
    return npz


def test_an_out_path_with_brackets_and_the_grid_footnote_are_printed_whole(tmp_path) -> None:
    npz = two_domains(tmp_path / "F")
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"svm": [{"C": 0.05}, {"C": 1.0}]}))
    out = tmp_path / "exp [v2]"
    res = runner.invoke(app, ["cdmer", "--features", str(npz), "--grid", str(grid),
                              "--out", str(out)], terminal_width=200)  # fmt: skip
    assert res.exit_code == 0, res.output
    text = plain(res.output)
    assert f"every grid point: {out / 'grid.csv'}" in text
    assert f"results: {out / 'results.csv'} summary: {out / 'summary.md'}" in text
    assert (out / "grid.csv").is_file()
    assert (
        "oracle*: best grid point scored with target labels (the papers' protocol); (x) = "
        "oracle mean-F1 minus this row's mean-F1 (positive: how much the oracle overstates "
        "what a label-free pick gets)"
    ) in text


def test_synth_prints_a_folder_with_brackets_whole(tmp_path) -> None:
    out = tmp_path / "exp [v2]"
    res = runner.invoke(app, ["synth", str(out), "--size", "tiny", "--database", "CASME2"],
                        terminal_width=200)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"wrote synthetic databases to {out}" in plain(res.output)
    assert f"CASME2: 9 clips, 3 subjects, {out / 'CASME2'}" in plain(res.output)


def test_a_schema_error_with_brackets_is_printed_whole(tmp_path) -> None:
    from merkit.data.synthetic import synthesize

    synthesize(tmp_path / "data", size="tiny", databases=("CASME2",))
    sheet = next((tmp_path / "data" / "CASME2").glob("*.xlsx"))
    df = pd.read_excel(sheet)
    df.loc[0, "ApexFrame"] = df.loc[0, "OffsetFrame"] + 5
    df.to_excel(sheet, index=False)
    res = runner.invoke(app, ["datasets", str(tmp_path / "data")], terminal_width=200)
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error:") and "Traceback" not in res.output
    assert "apex outside [onset, offset]: CASME2/01/" in plain(res.output)


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["synth", "{tmp}/s", "--seed", "-1"], "--seed", -1),
        (["demo", "--out", "{tmp}/o", "--data", "{tmp}/d", "--seed", "-1"], "--seed", -1),
        (["cdmer", "--features-dir", "{tmp}/f", "--out", "{tmp}/o", "--seed", "-1"], "--seed",
         -1),
        (["report", "{tmp}", "--seed", str(SEED_MAX + 1)], "--seed", SEED_MAX + 1),
        (["train", "--data", "{tmp}/d", "--out", "{tmp}/o", "--seeds", "0,-2"], "--seeds", -2),
        (["train", "--data", "{tmp}/d", "--out", "{tmp}/o", "--split-seed", "-1"],
         "--split-seed", -1),
    ],
)  # fmt: skip
def test_a_seed_out_of_range_is_one_line_naming_the_option(args, option, value, tmp_path):
    res = runner.invoke(app, [a.format(tmp=tmp_path) for a in args], terminal_width=200)
    assert res.exit_code == 2, res.output
    assert res.output == (
        f"error: {option} {value} is out of range: give an integer from 0 to 4294967295\n"
    )
    assert not (tmp_path / "s").exists() and not (tmp_path / "o" / "results.csv").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cdmer", "--seed", "abc"], "error: Invalid value for '--seed':"),
        (["cdmer", "--bogus"], "error: No such option: --bogus"),
        (["synth"], "error: Missing argument 'out'."),
        (["train", "--flows-dir"], "error: Option '--flows-dir' requires an argument."),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    """Typos in options get the same one-line form as every other error, with the way out."""
    res = runner.invoke(app, args)
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith(message), res.output
    # a missing option value is found while the group parses, so the hint names the group
    command = "merkit" if args[-1] == "--flows-dir" else f"merkit {args[0]}"
    assert lines[0].endswith(f"(see '{command} --help')")
    assert "╭" not in res.output and "Traceback" not in res.output


def test_no_command_shows_the_help() -> None:
    res = runner.invoke(app, [])
    assert res.exit_code == 2
    assert "Usage: merkit" in res.output and "cdmer" in res.output
