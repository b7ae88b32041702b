"""Fleiss' kappa (DFME eqs. 2-7), AU reliability (eq. 1), agreement sheets and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from merkit.cli import app
from merkit.results.agreement import (
    au_reliability,
    counts_from_labels,
    fleiss,
    fleiss_kappa,
    kappa_band,
    read_agreement_sheet,
)

# Fleiss (1971) worked example as given on Wikipedia: 10 items, 14 raters, 5 categories
WIKI = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def _random_labels(rng, n_items: int, n_raters: int, k: int, agree: float) -> np.ndarray:
    truth = rng.integers(0, k, size=n_items)
    noise = rng.integers(0, k, size=(n_items, n_raters))
    keep = rng.random((n_items, n_raters)) < agree
    return np.where(keep, truth[:, None], noise)


def test_worked_example_and_its_parts():
    res = fleiss(WIKI, categories=list("abcde"))
    assert res.kappa == pytest.approx(0.20993, abs=1e-5)
    # the intermediate values published with the example
    assert res.p_j == pytest.approx([0.143, 0.200, 0.279, 0.150, 0.229], abs=1e-3)
    assert res.P_i[:3] == pytest.approx([1.000, 0.253, 0.308], abs=1e-3)
    assert res.P_bar == pytest.approx(0.378, abs=1e-3)
    assert res.P_e == pytest.approx(0.213, abs=1e-3)
    assert (res.n_items, res.n_raters) == (10, 14)
    assert res.band == "fair agreement"
    # Fleiss (1971): kappa is the p_j q_j-weighted mean of the per-category kappas
    w = res.p_j * (1 - res.p_j)
    assert np.sum(w * res.kappa_j) / np.sum(w) == pytest.approx(res.kappa, abs=1e-12)
    assert res.per_category()["category"].tolist() == list("abcde")
    assert fleiss_kappa(WIKI) == res.kappa


def test_matches_statsmodels_on_random_tables():
    inter_rater = pytest.importorskip("statsmodels.stats.inter_rater")
    rng = np.random.default_rng(0)
    for trial in range(30):
        n_items, n_raters, k = rng.integers(5, 60), rng.integers(2, 9), rng.integers(2, 9)
        labels = _random_labels(rng, n_items, n_raters, k, agree=rng.uniform(0, 1))
        counts, _ = counts_from_labels(labels, categories=range(k))
        expected = inter_rater.fleiss_kappa(counts, method="fleiss")
        assert fleiss_kappa(counts) == pytest.approx(expected, abs=1e-12), trial
        agg, _ = inter_rater.aggregate_raters(labels, n_cat=k)
        assert np.array_equal(agg, counts)


def test_perfect_chance_and_undefined():
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    # every item split 1:1 by 2 raters: observed agreement 0 -> kappa -1
    assert fleiss_kappa([[1, 1], [1, 1]]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="every rating falls in one category"):
        fleiss_kappa([[3, 0], [3, 0]])
    with pytest.raises(ValueError, match=r"same number \(>= 2\) of raters.*rows \[1\]"):
        fleiss_kappa([[3, 0], [1, 1]])
    with pytest.raises(ValueError, match="whole numbers"):
        fleiss_kappa([[1.5, 1.5], [3, 0]])
    with pytest.raises(ValueError, match="2-D"):
        fleiss_kappa([1, 2, 3])
    with pytest.raises(ValueError, match="2 category names for a table of 3"):
        fleiss([[1, 1, 0], [0, 1, 1]], categories=["a", "b"])
    res = fleiss([[2, 0, 0], [0, 2, 0]])
    assert np.isnan(res.kappa_j[2]) and res.kappa_j[0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kappa, reading",
    [
        (-0.3, "poor agreement"),
        (0.0, "poor agreement"),
        (0.01, "slight agreement"),
        (0.20, "slight agreement"),
        (0.21, "fair agreement"),
        (0.40, "fair agreement"),
        (0.55, "moderate agreement"),
        (0.72, "substantial agreement"),  # DFME's value
        (0.80, "substantial agreement"),
        (0.81, "almost perfect agreement"),
        (1.0, "almost perfect agreement"),
    ],
)
def test_bands_of_dfme_table_4(kappa, reading):
    assert kappa_band(kappa) == reading


def test_band_rejects_impossible_values():
    with pytest.raises(ValueError, match="> 1"):
        kappa_band(1.2)
    with pytest.raises(ValueError, match="NaN"):
        kappa_band(float("nan"))


def test_counts_from_labels():
    labels = [["happiness", "happiness", "anger"], ["fear", "fear", "fear"]]
    counts, cats = counts_from_labels(labels)
    assert cats == ("anger", "fear", "happiness")
    assert counts.tolist() == [[1, 0, 2], [0, 3, 0]]
    # numeric codes: 1 and 1.0 are the same category, sorted numerically
    counts, cats = counts_from_labels([[1, 1.0, 10], [2, 10, 2]])
    assert cats == ("1", "2", "10") and counts.tolist() == [[2, 0, 1], [0, 2, 1]]
    counts, cats = counts_from_labels([["a", "a"]], categories=["a", "b", "c"])
    assert counts.tolist() == [[2, 0, 0]]
    with pytest.raises(ValueError, match=r"blank: clip7 \(annotator 2\)"):
        counts_from_labels([["a", None]], items=["clip7"])
    with pytest.raises(ValueError, match=r"labels \['z'\] are not among"):
        counts_from_labels([["a", "z"]], categories=["a", "b"])


def test_au_reliability_eq_1():
    # one clip: A1 = {4, 7}, A2 = {4}: R = 2 * 1 / 3
    assert au_reliability(["4+7"], ["4"]) == pytest.approx(2 / 3)
    a = ["4+7", "12", "1+2+5", ""]
    b = ["4", "6+12", "1+2+5", ""]
    # pooled: 2 * (1 + 1 + 3) / (3 + 3 + 6) = 10 / 12
    assert au_reliability(a, b) == pytest.approx(10 / 12)
    # mean over coded clips: (2/3 + 2/3 + 1) / 3
    assert au_reliability(a, b, average="mean") == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # sides: L12 vs 12 agree on the AU, not on the side
    assert au_reliability(["L12"], ["12"]) == 1.0
    assert au_reliability(["L12"], ["12"], sides=True) == 0.0
    assert au_reliability([{4, 7}], [(4,)]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="coder A coded 2 clips, coder B 1"):
        au_reliability(["4", "5"], ["4"])
    with pytest.raises(ValueError, match="neither coder"):
        au_reliability([""], ["?"])


def _write(tmp_path, name: str, text: str, encoding: str = "utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_counts_sheet(tmp_path):
    body = "clip,a,b,c,d,e\n" + "\n".join(
        f"c{i},{','.join(map(str, r))}" for i, r in enumerate(WIKI)
    )
    sheet = read_agreement_sheet(_write(tmp_path, "counts.csv", body))
    assert sheet.format == "counts" and sheet.categories == tuple("abcde")
    assert sheet.items[:2] == ("c0", "c1") and sheet.encoding == "utf-8"
    assert np.array_equal(sheet.counts, WIKI)
    bad = "clip,a,b\nc1,2,1\nc2,1,1\n"
    with pytest.raises(ValueError, match=r"row totals differ .* 3: c2 \(2\)"):
        read_agreement_sheet(_write(tmp_path, "bad.csv", bad), format="counts")


def test_labels_sheet_xlsx_and_gbk(tmp_path):
    rng = np.random.default_rng(3)
    labels = _random_labels(rng, 40, 7, 8, agree=0.7)
    names = np.array(["快乐", "愤怒", "轻蔑", "厌恶", "恐惧", "悲伤", "惊讶", "其他"])
    frame = pd.DataFrame(names[labels], columns=[f"annotator{r + 1}" for r in range(7)])
    frame.insert(0, "Clip", [f"v{i}" for i in range(40)])
    expected, _ = counts_from_labels(labels)
    xlsx = tmp_path / "labels.xlsx"
    frame.to_excel(xlsx, index=False)
    csv_gbk = tmp_path / "labels_gbk.csv"
    csv_gbk.write_bytes(frame.to_csv(index=False).encode("gbk"))
    for path, enc in ((xlsx, "xlsx"), (csv_gbk, "gbk")):
        sheet = read_agreement_sheet(path)
        assert sheet.format == "labels" and sheet.encoding == enc
        assert sheet.items[:2] == ("v0", "v1") and sheet.counts.shape == (40, 8)
        assert (sheet.counts.sum(axis=1) == 7).all()
        kappa = fleiss_kappa(sheet.counts)
        assert kappa == pytest.approx(fleiss_kappa(expected), abs=1e-12)
    # an id column under a header that is not recognised must be named
    renamed = tmp_path / "renamed.csv"
    renamed.write_bytes(frame.rename(columns={"Clip": "视频"}).to_csv(index=False).encode("gbk"))
    assert read_agreement_sheet(renamed).counts.sum(axis=1)[0] == 8  # read as an annotator
    sheet = read_agreement_sheet(renamed, id_column="视频")
    assert sheet.items[:2] == ("v0", "v1") and (sheet.counts.sum(axis=1) == 7).all()
    with pytest.raises(ValueError, match="no column 'nope'"):
        read_agreement_sheet(renamed, id_column="nope")


def test_numeric_label_sheet_is_not_mistaken_for_counts(tmp_path):
    # codes 1..8 of 3 annotators; row sums differ, so auto reads labels
    text = "item,r1,r2,r3\n1,1,1,2\n2,8,8,8\n3,4,5,4\n"
    sheet = read_agreement_sheet(_write(tmp_path, "codes.csv", text))
    assert sheet.format == "labels" and sheet.categories == ("1", "2", "4", "5", "8")
    assert sheet.counts.tolist() == [[2, 1, 0, 0, 0], [0, 0, 0, 0, 3], [0, 0, 2, 1, 0]]
    with pytest.raises(ValueError, match="blank: row 3 \\(annotator 2\\)"):
        read_agreement_sheet(_write(tmp_path, "hole.csv", "r1,r2\na,b\nb,\n"))


def test_cli_agreement(tmp_path):
    body = "item;a;b;c;d;e\n" + "\n".join(f"{i};{';'.join(map(str, r))}" for i, r in
                                          enumerate(WIKI))  # fmt: skip
    path = _write(tmp_path, "wiki.csv", body, encoding="utf-8-sig")
    result = CliRunner().invoke(app, ["agreement", str(path)])
    assert result.exit_code == 0, result.output
    assert "10 items x 14 annotators, 5 categories (counts sheet)" in result.output
    assert "Fleiss' kappa = 0.2099 (fair agreement)" in result.output
    labels = "clip,A1,A2,A3\nx,happy,happy,happy\ny,sad,sad,happy\nz,sad,sad,sad\n"
    result = CliRunner().invoke(app, ["agreement", str(_write(tmp_path, "l.csv", labels))])
    assert result.exit_code == 0, result.output
    # P_bar = (1 + 1/3 + 1) / 3 = 7/9; p = (4/9, 5/9); P_e = 41/81 -> kappa = 22/40
    assert "Fleiss' kappa = 0.5500 (moderate agreement)" in result.output
    result = CliRunner().invoke(app, ["agreement", str(tmp_path / "none.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(app, ["agreement", str(path), "--format", "votes"])
    assert result.exit_code == 2 and "format must be one of" in result.output
