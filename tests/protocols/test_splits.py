"""Tests of merkit.protocols.splits with concrete tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from merkit.protocols.splits import (
    Split,
    check_leakage,
    group_pair_splits,
    leave_one_subject_out,
    nested_group_rows,
    round_robin_groups,
    source_target,
    stack_domains,
    subject_kfold,
)


def small_table() -> pd.DataFrame:
    rows = [
        ("CASME2", "CASME2/01", "EP02_01f", 0),
        ("CASME2", "CASME2/01", "EP03_02", 1),
        ("CASME2", "CASME2/02", "EP01_11f", 0),
        ("CASME2", "CASME2/01", "EP19_05f", 2),
        ("CASME2", "CASME2/03", "EP09_01", 1),
        ("SMIC_HS", "SMIC_HS/s1", "s1_ne_01", 0),
        ("SMIC_HS", "SMIC_HS/s1", "s1_po_01", 1),
        ("SMIC_HS", "SMIC_HS/s2", "s2_sur_01", 2),
    ]
    return pd.DataFrame(rows, columns=["dataset", "subject", "clip", "y"])


def test_loso_concrete() -> None:
    t = small_table()
    splits = leave_one_subject_out(t)
    assert [s.name for s in splits] == [
        "loso/CASME2/01",
        "loso/CASME2/02",
        "loso/CASME2/03",
        "loso/SMIC_HS/s1",
        "loso/SMIC_HS/s2",
    ]
    np.testing.assert_array_equal(splits[0].test_idx, [0, 1, 3])
    np.testing.assert_array_equal(splits[0].train_idx, [2, 4, 5, 6, 7])
    np.testing.assert_array_equal(splits[3].test_idx, [5, 6])
    # every row tests exactly once
    all_test = np.sort(np.concatenate([s.test_idx for s in splits]))
    np.testing.assert_array_equal(all_test, np.arange(len(t)))
    assert splits[0].n_train == 5 and splits[0].n_test == 3
    assert repr(splits[0]) == "Split('loso/CASME2/01', n_train=5, n_test=3)"


def test_loso_needs_two_subjects() -> None:
    t = small_table().iloc[:2]
    with pytest.raises(ValueError, match="at least 2 subjects"):
        leave_one_subject_out(t)
    with pytest.raises(ValueError, match="no 'subject' column"):
        leave_one_subject_out(t.drop(columns="subject"))


def test_check_leakage_names_subjects() -> None:
    t = small_table()
    leaky = Split("bad", [0, 2, 5], [1, 6, 7])  # CASME2/01 and SMIC_HS/s1 on both sides
    with pytest.raises(ValueError, match=r"2 subjects .*: CASME2/01, SMIC_HS/s1"):
        check_leakage(t, leaky)
    with pytest.raises(ValueError, match=r"1 rows are in both train and test \(rows \[2\]\)"):
        check_leakage(t, Split("overlap", [2, 4], [2, 7]))
    with pytest.raises(ValueError, match="outside the table"):
        check_leakage(t, Split("range", [0], [8]))
    with pytest.raises(ValueError, match="test set is empty"):
        check_leakage(t, Split("empty", [0, 1], []))
    with pytest.raises(ValueError, match=r"train indices repeated: \[4\]"):
        check_leakage(t, Split("dup", [4, 4], [2]))
    check_leakage(t, Split("ok", [0, 1, 3], [2, 4]))  # no error


def test_split_is_immutable_and_validated() -> None:
    s = Split("x", [3, 1, 2], [0])
    np.testing.assert_array_equal(s.train_idx, [1, 2, 3])
    assert s.train_idx.dtype == np.int64
    with pytest.raises(ValueError):
        s.train_idx[0] = 5
    with pytest.raises(ValueError, match="integer row positions"):
        Split("y", [0.5], [1])
    assert s == Split("x", [1, 2, 3], [0]) and s != Split("x", [1, 2], [0])


def kfold_table(n_subjects: int = 23, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        n = int(rng.integers(1, 12))
        ys = rng.choice(3, size=n, p=[0.55, 0.25, 0.2])
        rows += [("DB", f"DB/{s:02d}", f"c{i}", int(y)) for i, y in enumerate(ys)]
    return pd.DataFrame(rows, columns=["dataset", "subject", "clip", "y"])


@pytest.mark.parametrize("stratify", [True, False])
def test_subject_kfold_partition_and_balance(stratify: bool) -> None:
    t = kfold_table()
    splits = subject_kfold(t, n_splits=5, seed=0, stratify=stratify)
    assert [s.name for s in splits] == [f"fold{i}" for i in range(5)]
    tests = np.concatenate([s.test_idx for s in splits])
    assert np.array_equal(np.sort(tests), np.arange(len(t)))  # a partition
    for s in splits:
        check_leakage(t, s)
        assert set(t.subject.iloc[s.test_idx]).isdisjoint(t.subject.iloc[s.train_idx])
    sizes = np.array([s.n_test for s in splits])
    assert sizes.max() - sizes.min() <= 0.25 * len(t) / 5 + 11  # one subject at most
    if stratify:
        share = np.array(
            [np.bincount(t.y.iloc[s.test_idx], minlength=3) for s in splits]
        ) / np.bincount(t.y, minlength=3)
        assert share.std(axis=0).max() < 0.03


def test_subject_kfold_stratification_beats_unstratified() -> None:
    t = kfold_table(n_subjects=30, seed=3)
    tot = np.bincount(t.y, minlength=3)

    def spread(splits):
        return (
            (np.array([np.bincount(t.y.iloc[s.test_idx], minlength=3) for s in splits]) / tot)
            .std(axis=0)
            .sum()
        )

    assert spread(subject_kfold(t, 5, stratify=True)) < spread(subject_kfold(t, 5, stratify=False))


def test_subject_kfold_seed_and_errors() -> None:
    t = kfold_table()
    a = subject_kfold(t, 4, seed=1)
    assert a == subject_kfold(t, 4, seed=1)
    # equal-sized subjects: the seed decides the tie order
    flat = pd.DataFrame({"subject": [f"D/{i}" for i in range(12)], "y": [0, 1] * 6, "dataset": "D"})
    assert subject_kfold(flat, 3, seed=0) != subject_kfold(flat, 3, seed=5)
    with pytest.raises(ValueError, match=r"n_splits must be in \[2, number of subjects = 23\]"):
        subject_kfold(t, 24)
    with pytest.raises(ValueError, match="no 'y' column"):
        subject_kfold(t.drop(columns="y"), 3)
    assert len(subject_kfold(t.drop(columns="y"), 3, stratify=False)) == 3
    # as many folds as subjects: each subject is one fold (= LOSO)
    small = small_table()
    folds = subject_kfold(small, 5)
    assert sorted(tuple(s.test_idx) for s in folds) == sorted(
        tuple(s.test_idx) for s in leave_one_subject_out(small)
    )


def test_source_target() -> None:
    t = small_table()
    s = source_target(t, "SMIC_HS", "CASME2")
    assert s.name == "SMIC_HS->CASME2"
    np.testing.assert_array_equal(s.train_idx, [5, 6, 7])
    np.testing.assert_array_equal(s.test_idx, [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"\['SAMM'\] have no rows"):
        source_target(t, "SAMM", "CASME2")
    with pytest.raises(ValueError, match="both source and target"):
        source_target(t, ["CASME2", "SMIC_HS"], "CASME2")
    # a subject recorded under both database names leaks
    bad = t.copy()
    bad.loc[7, "subject"] = "CASME2/01"
    with pytest.raises(ValueError, match="subject leakage.*CASME2/01"):
        source_target(bad, "SMIC_HS", "CASME2")


def test_stack_domains() -> None:
    t = small_table()
    src, tgt = t[t.dataset == "CASME2"], t[t.dataset == "SMIC_HS"]
    table, split = stack_domains(src, tgt)
    assert len(table) == 8 and split.name == "CASME2->SMIC_HS"
    np.testing.assert_array_equal(split.train_idx, np.arange(5))
    np.testing.assert_array_equal(split.test_idx, [5, 6, 7])
    assert table["clip"].iloc[5] == "s1_ne_01"
    with pytest.raises(ValueError, match="subject leakage"):
        stack_domains(src, src)


def test_round_robin_groups_deal_each_database_in_turn() -> None:
    subjects = ["A/1", "A/2", "A/3", "B/1", "B/2", "A/1"]  # a repeat counts once
    assert round_robin_groups(subjects, 2) == {"A/1": 0, "A/2": 1, "A/3": 0, "B/1": 1, "B/2": 0}
    with pytest.raises(ValueError, match=r"groups=1: need at least 2 groups of subjects"):
        round_robin_groups(subjects, 1)
    with pytest.raises(ValueError, match=r"groups=6: only 5 subjects to deal into groups"):
        round_robin_groups(subjects, 6)


def test_group_pair_splits_and_the_rows_that_may_choose_for_a_group() -> None:
    table = pd.DataFrame({"subject": ["A/1", "A/1", "A/2", "B/1", "B/2", "B/3"]})
    groups = {"A/1": 0, "A/2": 1, "B/1": 2, "B/2": 0, "B/3": 1}
    splits = group_pair_splits(table, groups)
    assert [s.name for s in splits] == ["pair/0-1", "pair/0-2", "pair/1-2"]
    assert splits[0].train_idx.tolist() == [0, 1, 2, 4, 5]
    assert splits[0].test_idx.tolist() == [3]
    assert splits[2].train_idx.tolist() == [2, 3, 5] and splits[2].test_idx.tolist() == [0, 1, 4]
    # predictions: (split, group of the predicted clip)
    names = ["pair/0-1", "pair/0-2", "pair/0-2", "pair/1-2", "pair/1-2"]
    held = [2, 1, 1, 0, 0]
    assert nested_group_rows(names, held, 0).tolist() == [False, False, False, False, False]
    assert nested_group_rows(names, held, 1).tolist() == [False, False, False, False, False]
    assert nested_group_rows(names, held, 2).tolist() == [False, False, False, False, False]
    # with 4 groups the pairs without g each have one non-g group left to score on
    names4 = ["pair/0-1", "pair/0-1", "pair/2-3", "pair/1-2"]
    held4 = [2, 3, 0, 3]
    assert nested_group_rows(names4, held4, 3).tolist() == [True, False, False, False]
    assert nested_group_rows(names4, held4, 0).tolist() == [False, False, False, True]
    with pytest.raises(ValueError, match=r"subjects without a group: C/9"):
        group_pair_splits(pd.DataFrame({"subject": ["A/1", "C/9"]}), groups)
