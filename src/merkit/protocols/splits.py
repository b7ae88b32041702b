"""Train/test splits: the only place in merkit that decides which samples train and which test.

Every split is expressed as integer row positions into one Sample table (or the
table of a :class:`~merkit.data.schema.FeatureSet`) and is checked by
:func:`check_leakage` before it is returned: no row on both sides and no subject
(``"<dataset>/<id>"``) on both sides.

Note that subjects are compared as strings, so ``"SMIC_VIS/s3"`` and ``"SMIC_HS/s3"``
(the same person filmed by two cameras) count as different subjects, as in the
published cross-camera CDMER tasks, where train and test are different databases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "Split",
    "check_leakage",
    "group_pair_splits",
    "nested_group_rows",
    "round_robin_groups",
    "leave_one_subject_out",
    "source_target",
    "stack_domains",
    "subject_kfold",
]


@dataclass(frozen=True, eq=False)
class Split:
    """One train/test partition of a table.

    Parameters
    ----------
    name : str
        Human-readable name, e.g. ``"loso/CASME2/01"``, ``"fold3"``, ``"CASME2->SMIC_VIS"``.
    train_idx, test_idx : array-like of int
        Row positions (0-based, ``iloc``) into the table the split was made for;
        stored as sorted, read-only int64 arrays.
    """

    name: str
    train_idx: np.ndarray
    test_idx: np.ndarray

    def __post_init__(self) -> None:
        for attr in ("train_idx", "test_idx"):
            raw = np.asarray(getattr(self, attr))
            if raw.ndim != 1:
                raise ValueError(f"split {self.name!r}: {attr} must be 1-D, got shape {raw.shape}")
            if raw.size and not np.issubdtype(raw.dtype, np.integer):
                raise ValueError(
                    f"split {self.name!r}: {attr} must hold integer row positions, "
                    f"got dtype {raw.dtype}"
                )
            arr = np.sort(raw.astype(np.int64))
            arr.setflags(write=False)
            object.__setattr__(self, attr, arr)

    @property
    def n_train(self) -> int:
        """Number of training rows."""
        return int(self.train_idx.size)

    @property
    def n_test(self) -> int:
        """Number of test rows."""
        return int(self.test_idx.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return (
            self.name == other.name
            and np.array_equal(self.train_idx, other.train_idx)
            and np.array_equal(self.test_idx, other.test_idx)
        )

    def __hash__(self) -> int:
        return hash((self.name, self.train_idx.tobytes(), self.test_idx.tobytes()))

    def __repr__(self) -> str:
        return f"Split({self.name!r}, n_train={self.n_train}, n_test={self.n_test})"


def _column(table: pd.DataFrame, col: str, what: str) -> np.ndarray:
    if col not in table.columns:
        raise ValueError(
            f"{what}: the table has no {col!r} column (columns: {list(table.columns)})"
        )
    values = table[col]
    if values.isna().any():
        raise ValueError(f"{what}: {int(values.isna().sum())} rows have no {col!r}")
    return values.astype(str).to_numpy()


def _sample_names(subjects: Iterable[str], limit: int = 10) -> str:
    s = sorted(set(subjects))
    more = f" (+{len(s) - limit} more)" if len(s) > limit else ""
    return ", ".join(s[:limit]) + more


def check_leakage(table: pd.DataFrame, split: Split, *, subject_col: str = "subject") -> None:
    """Raise unless ``split`` is a clean, subject-independent partition of ``table``.

    Raises
    ------
    ValueError
        When an index is out of range or repeated, a row is in both train and test,
        train or test is empty, or a subject has rows on both sides (the subjects
        are named in the message).
    """
    n = len(table)
    where = f"split {split.name!r}"
    for side, idx in (("train", split.train_idx), ("test", split.test_idx)):
        if idx.size == 0:
            raise ValueError(f"{where}: the {side} set is empty")
        if idx[0] < 0 or idx[-1] >= n:
            bad = idx[(idx < 0) | (idx >= n)]
            raise ValueError(
                f"{where}: {side} indices {bad[:10].tolist()} are outside the table (n={n})"
            )
        dup = idx[1:][idx[1:] == idx[:-1]]
        if dup.size:
            raise ValueError(f"{where}: {side} indices repeated: {np.unique(dup)[:10].tolist()}")
    both = np.intersect1d(split.train_idx, split.test_idx)
    if both.size:
        raise ValueError(
            f"{where}: {both.size} rows are in both train and test (rows {both[:10].tolist()})"
        )
    subjects = _column(table, subject_col, where)
    shared = np.intersect1d(subjects[split.train_idx], subjects[split.test_idx])
    if shared.size:
        raise ValueError(
            f"{where}: subject leakage, {shared.size} subjects have clips in both train and "
            f"test: {_sample_names(shared)}"
        )


def leave_one_subject_out(table: pd.DataFrame, *, subject_col: str = "subject") -> list[Split]:
    """Leave-one-subject-out: one split per subject (sorted by name), that subject tests.

    Parameters
    ----------
    table : DataFrame
        Sample table with a ``subject`` column (``"<dataset>/<id>"``).

    Returns
    -------
    list of Split
        Named ``"loso/<subject>"``.
    """
    subjects = _column(table, subject_col, "leave_one_subject_out")
    uniq = np.unique(subjects)
    if uniq.size < 2:
        raise ValueError(
            f"leave_one_subject_out needs at least 2 subjects, the table has {uniq.size} "
            f"({_sample_names(uniq)})"
        )
    rows = np.arange(len(table))
    splits = []
    for s in uniq:
        test = subjects == s
        split = Split(f"loso/{s}", rows[~test], rows[test])
        check_leakage(table, split, subject_col=subject_col)
        splits.append(split)
    return splits


def subject_kfold(
    table: pd.DataFrame,
    n_splits: int = 5,
    seed: int = 0,
    stratify: bool = True,
    *,
    subject_col: str = "subject",
    label_col: str = "y",
) -> list[Split]:
    """Subject-independent k-fold: all clips of a subject fall in one test fold.

    Subjects are assigned greedily, largest first (ties broken by a seeded shuffle),
    to the fold that keeps the folds most balanced, then single moves and pairwise
    swaps of subjects are applied while they reduce the imbalance. Imbalance: with
    ``stratify`` the spread (standard deviation over folds) of each class's share of
    its total, summed over classes, plus the relative spread of fold sizes; without it
    the fold sizes alone. No fold is ever left empty.

    Parameters
    ----------
    table : DataFrame
        Sample table with ``subject`` (and ``label_col`` when stratifying).
    n_splits : int
        Number of folds, 2 <= n_splits <= number of subjects.
    seed : int
        Seed of the tie-breaking shuffle.
    stratify : bool
        Balance the class distribution across folds.

    Returns
    -------
    list of Split
        ``"fold0"`` .. ``"fold{n_splits-1}"``; the test folds partition the table.
    """
    subjects = _column(table, subject_col, "subject_kfold")
    uniq, inv = np.unique(subjects, return_inverse=True)
    n_sub = uniq.size
    if not 2 <= n_splits <= n_sub:
        raise ValueError(
            f"subject_kfold: n_splits must be in [2, number of subjects = {n_sub}], got {n_splits}"
        )
    if stratify:
        labels = _column(table, label_col, "subject_kfold(stratify=True)")
        _, lab_inv = np.unique(labels, return_inverse=True)
        k = int(lab_inv.max()) + 1
    else:
        lab_inv = np.zeros(len(table), dtype=np.int64)
        k = 1
    counts = np.zeros((n_sub, k))
    np.add.at(counts, (inv, lab_inv), 1.0)
    sizes = counts.sum(axis=1)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_sub)
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    class_tot = counts.sum(axis=0)
    mean_size = max(sizes.sum() / n_splits, 1.0)

    def cost(fc: np.ndarray) -> np.ndarray:
        """Imbalance of fold count tables ``fc`` (..., F, K) (lower is better)."""
        size_cost = fc.sum(axis=-1).std(axis=-1) / mean_size
        if not stratify:
            return np.round(size_cost, 12)
        return np.round((fc / class_tot).std(axis=-2).sum(axis=-1) + size_cost, 12)

    # greedy: largest subjects first, each to the fold that keeps the folds most balanced
    fold_counts = np.zeros((n_splits, k))
    fold_of = np.empty(n_sub, dtype=np.int64)
    eye = np.eye(n_splits)[:, :, None]
    for s in order:
        empty = np.flatnonzero(fold_counts.sum(axis=1) == 0)
        if empty.size:
            f = int(empty[0])
        else:
            f = int(np.argmin(cost(fold_counts[None] + eye * counts[s][None, None, :])))
        fold_of[s] = f
        fold_counts[f] += counts[s]
    # local search: single moves and pairwise swaps while they reduce the imbalance
    best = cost(fold_counts)
    for _ in range(100):
        improved = False
        for s in order:
            cur = fold_of[s]
            if np.count_nonzero(fold_of == cur) > 1:
                cand = fold_counts[None] + eye * counts[s][None, None, :]
                cand[:, cur] -= counts[s]
                c = cost(cand)
                c[cur] = np.inf
                f = int(np.argmin(c))
                if c[f] < best:
                    fold_of[s], best, improved = f, c[f], True
                    fold_counts = cand[f]
                    continue
            other = np.flatnonzero(fold_of != cur)
            if other.size == 0:
                continue
            delta = counts[other] - counts[s]  # (m, K): what fold `cur` gains by swapping
            cand = np.repeat(fold_counts[None], other.size, axis=0)
            cand[:, cur] += delta
            cand[np.arange(other.size), fold_of[other]] -= delta
            c = cost(cand)
            j = int(np.argmin(c))
            if c[j] < best:
                t = other[j]
                fold_of[s], fold_of[t] = fold_of[t], cur
                fold_counts, best, improved = cand[j], c[j], True
        if not improved:
            break
    rows = np.arange(len(table))
    row_fold = fold_of[inv]
    splits = []
    for f in range(n_splits):
        test = row_fold == f
        split = Split(f"fold{f}", rows[~test], rows[test])
        check_leakage(table, split, subject_col=subject_col)
        splits.append(split)
    log.debug(
        "subject_kfold: %d subjects into %d folds, test sizes %s",
        n_sub,
        n_splits,
        [s.n_test for s in splits],
    )
    return splits


def _as_names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def source_target(
    table: pd.DataFrame,
    source: str | Iterable[str],
    target: str | Iterable[str],
    *,
    dataset_col: str = "dataset",
    subject_col: str = "subject",
) -> Split:
    """Cross-database split: train = every row of the source database(s), test = target.

    Parameters
    ----------
    table : DataFrame
        Table holding both domains (e.g. from :func:`stack_domains`).
    source, target : str or iterable of str
        Database name(s) in ``table[dataset_col]``; they must not overlap.

    Returns
    -------
    Split
        Named ``"<source>-><target>"`` (names joined by ``+``).
    """
    src, tgt = _as_names(source), _as_names(target)
    overlap = sorted(set(src) & set(tgt))
    if overlap:
        raise ValueError(f"source_target: databases {overlap} are both source and target")
    datasets = _column(table, dataset_col, "source_target")
    present = set(np.unique(datasets))
    missing = [d for d in src + tgt if d not in present]
    if missing:
        raise ValueError(
            f"source_target: databases {missing} have no rows in the table "
            f"(present: {sorted(present)})"
        )
    rows = np.arange(len(table))
    split = Split(
        f"{'+'.join(src)}->{'+'.join(tgt)}",
        rows[np.isin(datasets, src)],
        rows[np.isin(datasets, tgt)],
    )
    check_leakage(table, split, subject_col=subject_col)
    return split


def stack_domains(
    source_table: pd.DataFrame,
    target_table: pd.DataFrame,
    *,
    subject_col: str = "subject",
) -> tuple[pd.DataFrame, Split]:
    """Concatenate a source and a target table and split them source -> target.

    Returns
    -------
    table : DataFrame
        ``source_table`` rows (positions ``0..n_s-1``) then ``target_table`` rows.
    split : Split
        train = the source rows, test = the target rows, checked for leakage.
    """
    ns, nt = len(source_table), len(target_table)
    table = pd.concat([source_table, target_table], ignore_index=True)

    def _name(t: pd.DataFrame, default: str) -> str:
        if "dataset" in t.columns and t["dataset"].nunique() > 0:
            return "+".join(sorted(t["dataset"].astype(str).unique()))
        return default

    split = Split(
        f"{_name(source_table, 'source')}->{_name(target_table, 'target')}",
        np.arange(ns),
        np.arange(ns, ns + nt),
    )
    check_leakage(table, split, subject_col=subject_col)
    return table, split


def round_robin_groups(subjects: Iterable[str], k: int) -> dict[str, int]:
    """Subject -> group in ``0..k-1``, dealt round robin within each database.

    ``subjects`` are ``"<dataset>/<id>"`` names in protocol (fold) order; each database's
    subjects are dealt in turn, continuing where the previous database stopped, so every
    database spreads evenly over the groups (CDE's 68 subjects, k 4: 17 per group).

    Raises
    ------
    ValueError
        ``k`` < 2 or more groups than subjects (one line).
    """
    names = list(dict.fromkeys(str(s) for s in subjects))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"groups={k!r}: need at least 2 groups of subjects")
    if k > len(names):
        raise ValueError(f"groups={k}: only {len(names)} subjects to deal into groups")
    by_db: dict[str, list[str]] = {}
    for s in names:
        by_db.setdefault(s.split("/", 1)[0], []).append(s)
    groups: dict[str, int] = {}
    offset = 0
    for members in by_db.values():
        for i, s in enumerate(members):
            groups[s] = (offset + i) % k
        offset += len(members)
    return groups


def group_pair_splits(
    table: pd.DataFrame, groups: dict[str, int], *, subject_col: str = "subject"
) -> list[Split]:
    """Inner validation on training subjects: train on every pair of groups, test on the
    other groups (``k (k - 1) / 2`` splits named ``"pair/a-b"``).

    With :func:`nested_group_rows`, the splits that never saw group g score a choice (of
    epochs, of a training recipe) for the test subjects of g, so that choice never uses
    them (docs/cde-reproduction.md, "Choosing the number of epochs without a test fold").

    Raises
    ------
    ValueError
        A subject of the table has no group (one line naming it).
    """
    subj = _column(table, subject_col, "subject").astype(str)
    missing = sorted(set(subj) - set(groups))
    if missing:
        raise ValueError(f"subjects without a group: {_sample_names(missing)}")
    g = np.array([groups[s] for s in subj])
    k = max(groups.values()) + 1
    out = []
    for a in range(k):
        for b in range(a + 1, k):
            pair = np.isin(g, (a, b))
            split = Split(f"pair/{a}-{b}", np.flatnonzero(pair), np.flatnonzero(~pair))
            check_leakage(table, split, subject_col=subject_col)
            out.append(split)
    return out


def nested_group_rows(
    split_names: Iterable[str], test_groups: Iterable[int], group: int
) -> np.ndarray:
    """Which validation predictions may choose for the test subjects of ``group``.

    ``split_names`` ``(n,)``: the :func:`group_pair_splits` name of each prediction;
    ``test_groups`` ``(n,)``: the group of the predicted clip. True where the split did not
    train on ``group`` and the clip is not of ``group``: the pairs without g, each scored
    on its remaining non-g group.
    """
    names = list(split_names)
    held = np.asarray(list(test_groups), dtype=np.int64)
    pairs = {n: {int(v) for v in n.removeprefix("pair/").split("-")} for n in set(names)}
    trained_on_g = np.array([group in pairs[n] for n in names], dtype=bool)
    return ~trained_on_g & (held != group)
