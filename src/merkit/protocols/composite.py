"""The MEGC 2019 composite database evaluation (CDE) as a protocol object.

CDE (See et al., "MEGC 2019 - the second facial micro-expressions grand challenge",
FG 2019, doi:10.1109/FG.2019.8756611) pools SMIC-HS, CASME II and SAMM into one
3-class set (negative, positive, surprise; 442 clips of 68 subjects in the official
list) and evaluates by leave-one-subject-out over all subjects. Predictions of the
folds are pooled, and UF1 / UAR are computed once over the pooled predictions
(never averaged over folds); the challenge also reports the same scores restricted to
each database, again from the pooled predictions.

Here: the overall row has ``task = "composite"``, the per-database rows ``task`` = the
database name (``CASME2``, ``SMIC_HS``, ``SAMM``); all rows have ``protocol = "cde"``.
Scores come from :meth:`merkit.store.ResultStore.make_record` only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from merkit.protocols.splits import Split, check_leakage, leave_one_subject_out
from merkit.store import ResultStore

log = logging.getLogger(__name__)

__all__ = [
    "CDE",
    "CDE_CLASSES",
    "CDE_DATABASES",
    "COMPOSITE_TASK",
    "CompositeProtocol",
    "fold_file_name",
]

#: the databases of the MEGC 2019 composite set, in the challenge's table order
CDE_DATABASES: tuple[str, ...] = ("SMIC_HS", "CASME2", "SAMM")
#: class index -> name (the ``megc3`` label scheme)
CDE_CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")
#: task name of the row pooled over every database
COMPOSITE_TASK = "composite"

_PRED_COLUMNS = ("fold", "sample", "y_true", "y_pred")


def fold_file_name(subject: str) -> str:
    """File-system-safe name of a LOSO fold (``"CASME2/01" -> "CASME2_01"``)."""
    return str(subject).replace("/", "_")


@dataclass(frozen=True)
class CompositeProtocol:
    """Leave-one-subject-out over the pooled databases, scored overall and per database.

    Parameters
    ----------
    name : str
        Protocol name written to the results store (``"cde"``).
    databases : tuple of str
        Databases the composite set may hold; a table may hold a subset (e.g. a
        synthetic check), never another database.
    classes : tuple of str
        Class names indexed by the labels ``y``.
    """

    name: str = "cde"
    databases: tuple[str, ...] = CDE_DATABASES
    classes: tuple[str, ...] = CDE_CLASSES

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # ------------------------------------------------------------------ table
    def check(self, table: pd.DataFrame, y: np.ndarray | None = None) -> None:
        """Raise unless ``table`` is a composite table (and ``y`` valid labels for it).

        Every row needs ``dataset`` among :attr:`databases` and ``subject`` written
        ``"<dataset>/<id>"`` with the row's own dataset (so subjects never collide).
        """
        for col in ("dataset", "subject", "clip"):
            if col not in table.columns:
                raise ValueError(
                    f"{self.name}: the table has no {col!r} column (columns: {list(table.columns)})"
                )
        if len(table) == 0:
            raise ValueError(f"{self.name}: the table is empty")
        ds = table["dataset"].astype(str).to_numpy()
        unknown = sorted(set(ds) - set(self.databases))
        if unknown:
            raise ValueError(
                f"{self.name}: databases {unknown} are not part of the composite set "
                f"{list(self.databases)}"
            )
        subj = table["subject"].astype(str).to_numpy()
        bad = [s for s, d in zip(subj, ds, strict=True) if not s.startswith(f"{d}/")]
        if bad:
            raise ValueError(
                f"{self.name}: {len(bad)} rows have a subject not written '<dataset>/<id>' with "
                f"their own dataset, e.g. {sorted(set(bad))[:5]}"
            )
        if y is not None:
            y = np.asarray(y)
            if y.shape != (len(table),):
                raise ValueError(f"{self.name}: {y.shape} labels for {len(table)} rows")
            out = (y < 0) | (y >= self.num_classes)
            if out.any():
                raise ValueError(
                    f"{self.name}: labels must be 0..{self.num_classes - 1} "
                    f"({', '.join(self.classes)}); rows {np.flatnonzero(out)[:10].tolist()} "
                    "are not"
                )

    def splits(self, table: pd.DataFrame) -> list[Split]:
        """The LOSO splits (``"loso/<subject>"``, sorted by subject), each leakage-checked."""
        self.check(table)
        splits = leave_one_subject_out(table)
        for s in splits:
            check_leakage(table, s)
        return splits

    def folds(self, table: pd.DataFrame) -> list[str]:
        """Test subjects of the folds, in split order."""
        return [s.name.removeprefix("loso/") for s in self.splits(table)]

    def select_folds(self, table: pd.DataFrame, folds: int | Iterable[str] | None) -> list[str]:
        """The folds to run: all (None), the first ``k`` of each database in turn (an
        int, a quick subset that still covers every database), or the given subjects."""
        every = self.folds(table)
        if folds is None:
            return every
        if isinstance(folds, (int, np.integer)):
            k = int(folds)
            if not 1 <= k <= len(every):
                raise ValueError(f"{self.name}: folds must be in 1..{len(every)}, got {k}")
            by_db: dict[str, list[str]] = {}
            for s in every:
                by_db.setdefault(s.split("/", 1)[0], []).append(s)
            order = [d for d in self.databases if d in by_db]
            picked: list[str] = []
            i = 0
            while len(picked) < k:
                for d in order:
                    if i < len(by_db[d]) and len(picked) < k:
                        picked.append(by_db[d][i])
                i += 1
            return sorted(picked, key=every.index)
        wanted = [str(f) for f in folds]
        unknown = sorted(set(wanted) - set(every))
        if unknown:
            raise ValueError(f"{self.name}: folds {unknown} are not subjects of the table")
        return [s for s in every if s in set(wanted)]

    # ------------------------------------------------------------------ scoring
    def score(
        self,
        predictions: pd.DataFrame,
        table: pd.DataFrame,
        *,
        method: str,
        params: Mapping | None = None,
        seed: int = 0,
        data: str = "",
        extra: Mapping | None = None,
    ) -> list[tuple[dict, pd.DataFrame]]:
        """Results records of one (method, seed): the pooled composite row, then one per
        database present.

        Parameters
        ----------
        predictions : DataFrame
            Pooled test predictions, columns ``fold, sample`` (row position in ``table``),
            ``y_true, y_pred``; each sample at most once.
        table : DataFrame
            The evaluated table (``dataset``, ``clip`` are read from it).

        Returns
        -------
        list of (row, predictions)
            From :meth:`ResultStore.make_record`, ready for :meth:`ResultStore.add_records`.
        """
        missing = [c for c in _PRED_COLUMNS if c not in predictions.columns]
        if missing:
            raise ValueError(f"{self.name}: predictions lack columns {missing}")
        if predictions.empty:
            raise ValueError(f"{self.name}: no predictions to score ({method}, seed {seed})")
        sample = predictions["sample"].to_numpy(np.int64)
        if sample.min() < 0 or sample.max() >= len(table):
            raise ValueError(f"{self.name}: prediction sample positions outside the table")
        if np.unique(sample).size != sample.size:
            raise ValueError(f"{self.name}: a sample is predicted twice ({method}, seed {seed})")
        dataset = table["dataset"].astype(str).to_numpy()[sample]
        clip = table["clip"].astype(str).to_numpy()[sample]
        labels = list(range(self.num_classes))
        fold = predictions["fold"].astype(str).to_numpy()
        yt = predictions["y_true"].to_numpy(np.int64)
        yp = predictions["y_pred"].to_numpy(np.int64)
        parts: list[tuple[str, np.ndarray]] = [(COMPOSITE_TASK, np.ones(len(yt), dtype=bool))]
        parts += [(d, dataset == d) for d in self.databases if (dataset == d).any()]
        records = []
        for task, m in parts:
            records.append(ResultStore.make_record(
                protocol=self.name, task=task, method=method, params=params, seed=int(seed),
                data=data, y_true=yt[m], y_pred=yp[m], fold=fold[m], sample=sample[m],
                clip=clip[m], labels=labels, classes=self.classes,
                target="+".join(sorted(set(dataset[m]))), extra=extra,
            ))  # fmt: skip
        return records

    def summary(self, results: pd.DataFrame) -> pd.DataFrame:
        """Mean and standard deviation over seeds of UF1 / UAR per (method, task), in the
        order composite, then :attr:`databases`."""
        res = results[results["protocol"] == self.name]
        if res.empty:
            return pd.DataFrame(
                columns=["method", "task", "seeds", "uf1", "uf1_std", "uar", "uar_std", "n_test"]
            )
        g = res.groupby(["method", "task"], sort=False)
        out = g.agg(
            seeds=("seed", "nunique"), uf1=("mean_f1", "mean"), uf1_std=("mean_f1", "std"),
            uar=("uar", "mean"), uar_std=("uar", "std"), n_test=("n_test", "max"),
        ).reset_index()  # fmt: skip
        order = {t: i for i, t in enumerate((COMPOSITE_TASK, *self.databases))}
        out["_o"] = out["task"].map(lambda t: order.get(t, len(order)))
        out = out.sort_values(["method", "_o"], kind="stable").drop(columns="_o")
        return out.fillna({"uf1_std": 0.0, "uar_std": 0.0}).reset_index(drop=True)


#: the MEGC 2019 composite protocol
CDE = CompositeProtocol()
