"""Label-free model selection with scikit-learn's tools: a domain-aware splitter and scorer.

Plain ``GridSearchCV(est, grid, cv=5)`` on DA inputs (target rows labelled ``-1``) splits
source and target rows alike and scores accuracy against ``-1`` as if it were a class.
:class:`DomainAwareSplit` splits only the target rows: every train fold holds all the
labelled source rows plus (masked, ``y = -1``) target rows, and every test fold holds
only unlabelled target rows, so the scorer must be label-free, e.g.
:func:`target_entropy_score` (merkit's prediction-entropy criterion,
:func:`merkit.adapt.criteria.row_entropy`) or skada's ``PredictionEntropyScorer``::

    search = GridSearchCV(TransferComponentAnalysis(), {"n_components": [2, 5, 10]},
                          cv=DomainAwareSplit(3), scoring=target_entropy_score)
    search.fit(X, y_masked, groups=sample_domain)   # or sample_domain=... when routing

The splitter refuses target rows that carry labels, so no target label can reach ``fit``
or the scorer through it.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from merkit.adapt.base import MASKED_LABEL
from merkit.adapt.criteria import row_entropy

__all__ = ["DomainAwareSplit", "target_entropy_score"]


def _domains(n: int, y, groups, sample_domain) -> np.ndarray:
    """Domain of each row: ``sample_domain`` (or ``groups``), else ``-1`` where ``y = -1``."""
    sd = sample_domain if sample_domain is not None else groups
    if sd is not None:
        sd = np.asarray(sd)
        if sd.shape != (n,):
            raise ValueError(
                f"DomainAwareSplit: sample_domain must have one entry per row ({n}), "
                f"got shape {sd.shape}"
            )
        if (sd == 0).any():
            raise ValueError(
                "DomainAwareSplit: sample_domain 0 is invalid; use > 0 for source and < 0 "
                "for target rows"
            )
        if y is not None:
            yy = np.asarray(y)
            leak = (sd < 0) & (yy != MASKED_LABEL)
            if leak.any():
                raise ValueError(
                    f"DomainAwareSplit: target rows {np.flatnonzero(leak)[:10].tolist()} carry "
                    "labels; pass y = -1 on every target row (no target label may reach fit "
                    "or the scorer)"
                )
        return sd
    if y is None:
        raise ValueError(
            "DomainAwareSplit: pass sample_domain (or groups) or y with -1 on target rows"
        )
    return np.where(np.asarray(y) == MASKED_LABEL, -1, 1)


class DomainAwareSplit(BaseCrossValidator):
    """K folds of the unlabelled target rows; the labelled source rows always train.

    Fold k: test = the k-th part of the target rows (``sample_domain < 0``); train = every
    source row plus the other target rows (or all target rows with ``transductive=True``,
    the usual DA setting where the unlabelled test rows are also seen by ``fit``). Target
    rows must carry ``y = -1`` (checked); a scorer then sees only unlabelled target rows.

    The domains come from ``sample_domain`` (routed when scikit-learn's metadata routing is
    on, as skada switches it on), else from ``groups`` (pass ``groups=sample_domain`` to
    ``GridSearchCV.fit`` without routing), else from ``y == -1``.

    Parameters
    ----------
    n_splits : int
        Number of target folds (>= 2, at most the number of target rows).
    transductive : bool
        Keep every target row (masked) in every train fold.
    shuffle : bool
        Shuffle the target rows before splitting.
    random_state : int or None
        Seed of the shuffle.
    """

    __metadata_request__split = {"sample_domain": True}

    def __init__(
        self,
        n_splits: int = 5,
        *,
        transductive: bool = False,
        shuffle: bool = True,
        random_state: int | None = 0,
    ) -> None:
        if not isinstance(n_splits, numbers.Integral) or n_splits < 2:
            raise ValueError(f"DomainAwareSplit: n_splits must be an int >= 2, got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.transductive = transductive
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None, sample_domain=None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X, y=None, groups=None, sample_domain=None):
        """Yield ``(train, test)`` index arrays; test rows are target rows only.

        Raises
        ------
        ValueError
            A target row with a label, fewer target rows than folds, or no source row.
        """
        n = len(X)
        sd = _domains(n, y, groups, sample_domain)
        src = np.flatnonzero(sd > 0)
        tgt = np.flatnonzero(sd < 0)
        if src.size == 0:
            raise ValueError("DomainAwareSplit: no source rows (sample_domain > 0) to train on")
        if tgt.size < self.n_splits:
            raise ValueError(
                f"DomainAwareSplit: {tgt.size} target rows cannot make {self.n_splits} folds; "
                "lower n_splits"
            )
        order = tgt.copy()
        if self.shuffle:
            np.random.default_rng(self.random_state).shuffle(order)
        for part in np.array_split(order, self.n_splits):
            test = np.sort(part)
            rest = tgt if self.transductive else np.setdiff1d(tgt, test)
            yield np.sort(np.concatenate([src, rest])), test

    def _iter_test_indices(self, X=None, y=None, groups=None):  # pragma: no cover - unused
        raise NotImplementedError("DomainAwareSplit.split yields the folds directly")


def target_entropy_score(estimator, X, y=None, sample_domain=None, **_) -> float:
    """Label-free score: minus the mean entropy (nats) of ``predict_proba`` on rows ``X``.

    Higher is better (confident predictions on the target rows), as the ``"entropy"``
    criterion (:mod:`merkit.adapt.criteria`) of the probabilities. ``y`` must be absent or
    all ``-1``: the score refuses labelled rows, so a search built on it cannot score target
    labels.
    """
    if y is not None and np.any(np.asarray(y) != MASKED_LABEL):
        raise ValueError(
            "target_entropy_score: the scored rows carry labels; it scores unlabelled target "
            "rows only (use DomainAwareSplit so test folds hold y = -1 target rows)"
        )
    return -float(row_entropy(estimator.predict_proba(X)).mean())
