"""A tidy results store on disk: one row per evaluated unit, predictions kept.

Layout of a store directory::

    DIR/results.csv      one row per key (protocol, task, method, selection, [params], seed)
    DIR/predictions.csv  one row per test sample of every unit (long format)

``results.csv`` columns: ``protocol, task, source, target, method, selection,
params`` (JSON, sorted keys), ``seed, mean_f1`` (0..1), ``uar`` (0..1), ``accuracy``
(percent), ``n_test, labels`` (JSON list of the classes averaged over, or empty =
the classes present in ``y_true``), ``created`` (UTC time) and any extra columns a
caller adds (e.g. ``seconds``). ``predictions.csv`` columns: ``protocol, task,
method, selection, params, seed, fold, sample, clip, y_true, y_pred``.

Keys: with ``selection == "none"`` (hyper-parameters given, e.g. every point of a
grid) the params are part of the key; for any other selection (``"oracle"``,
a label-free criterion...) the selection chose the params, so the key ignores them
and re-running replaces the previous choice. Adding a unit whose key exists replaces
it (newer wins), in both files.

Metrics are always computed from the pooled predictions by
:mod:`merkit.results.metrics` (:meth:`ResultStore.recompute` re-derives them from
``predictions.csv``). Writes are atomic (temporary file + ``os.replace``);
predictions are written before results, so a results row never lacks its
predictions. One writer at a time: concurrent writers must batch through one process.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.results.metrics import score_all

log = logging.getLogger(__name__)

__all__ = [
    "PREDICTION_COLUMNS",
    "RESULT_COLUMNS",
    "ResultStore",
    "params_to_json",
    "result_key",
]

RESULT_COLUMNS: tuple[str, ...] = (
    "protocol",
    "task",
    "source",
    "target",
    "method",
    "selection",
    "params",
    "seed",
    "data",
    "mean_f1",
    "uar",
    "accuracy",
    "n_test",
    "labels",
    "created",
)
PREDICTION_COLUMNS: tuple[str, ...] = (
    "protocol",
    "task",
    "method",
    "selection",
    "params",
    "seed",
    "data",
    "fold",
    "sample",
    "clip",
    "y_true",
    "y_pred",
)
_STR_COLUMNS = ("protocol", "task", "source", "target", "method", "selection", "params",
                "labels", "created", "fold", "clip", "data")  # fmt: skip
_KEY_COLUMNS = ("protocol", "task", "method", "selection", "params", "seed", "data")
#: columns added after the first release of the format; older files read with ""
_OPTIONAL_COLUMNS = ("data",)


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"parameter value {o!r} of type {type(o).__name__} is not JSON-serialisable")


def params_to_json(params: Mapping | str | None) -> str:
    """Canonical JSON of hyper-parameters (sorted keys, compact); ``{}`` for None."""
    if isinstance(params, str):
        params = json.loads(params) if params else {}
    return json.dumps(
        dict(params or {}), sort_keys=True, separators=(",", ":"), default=_json_default
    )


def result_key(
    protocol: str, task: str, method: str, selection: str, params, seed, data: str = ""
) -> tuple[str, ...]:
    """The identity of a results row (params only count when ``selection == "none"``).

    ``data`` fingerprints the evaluated inputs (:meth:`FeatureSet.fingerprint` of the
    source and target), so results of other features are never taken for these.
    """
    p = params_to_json(params) if selection == "none" else "*"
    return (str(protocol), str(task), str(method), str(selection), p, str(int(seed)), str(data))


def result_keys(df: pd.DataFrame) -> list[tuple[str, ...]]:
    """Keys of stored rows (their params column is already canonical JSON)."""
    if df.empty:
        return []
    sel = df["selection"].astype(str).to_numpy()
    params = np.where(sel == "none", df["params"].astype(str).to_numpy(), "*")
    cols = [df[c].astype(str).to_numpy() for c in ("protocol", "task", "method")]
    seeds = df["seed"].astype("int64").astype(str).to_numpy()
    data = df["data"].astype(str).to_numpy() if "data" in df.columns else np.full(len(df), "")
    return list(zip(*cols, sel, params, seeds, data, strict=True))


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _as_label_array(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {arr.shape}")
    return arr


class ResultStore:
    """Results and predictions of evaluated units in one directory (created if needed).

    Parameters
    ----------
    directory : str or Path
        Store folder; holds ``results.csv`` and ``predictions.csv``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def results_path(self) -> Path:
        return self.directory / "results.csv"

    @property
    def predictions_path(self) -> Path:
        return self.directory / "predictions.csv"

    def __repr__(self) -> str:
        return f"ResultStore({str(self.directory)!r})"

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
        if not path.is_file():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        df = pd.read_csv(
            path, dtype={c: str for c in _STR_COLUMNS}, keep_default_na=False, na_values=[]
        )
        for c in _OPTIONAL_COLUMNS:
            if c in columns and c not in df.columns:
                df[c] = ""
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: not a merkit results file, columns {missing} are missing")
        for c in ("seed", "n_test", "sample"):
            if c in df.columns:
                df[c] = pd.to_numeric(df[c]).astype("int64")
        for c in ("mean_f1", "uar", "accuracy"):
            if c in df.columns:
                df[c] = pd.to_numeric(df[c].replace("", np.nan)).astype(float)
        for c in ("y_true", "y_pred"):
            if c in df.columns:
                try:
                    df[c] = pd.to_numeric(df[c]).astype("int64")
                except (ValueError, TypeError):
                    df[c] = df[c].astype(str)
        return df

    def results(self) -> pd.DataFrame:
        """All results rows (one per key)."""
        return self._read(self.results_path, RESULT_COLUMNS)

    def predictions(self) -> pd.DataFrame:
        """All stored predictions (long format)."""
        return self._read(self.predictions_path, PREDICTION_COLUMNS)

    def keys(self) -> set[tuple[str, ...]]:
        """Keys of the stored results rows (see :func:`result_key`)."""
        return set(result_keys(self.results()))

    def __contains__(self, key: tuple) -> bool:
        return tuple(key) in self.keys()

    def __len__(self) -> int:
        return len(self.results())

    # ------------------------------------------------------------------ writing
    @staticmethod
    def make_record(
        *,
        protocol: str,
        task: str,
        method: str,
        y_true,
        y_pred,
        params: Mapping | str | None = None,
        seed: int = 0,
        selection: str = "none",
        data: str = "",
        source: str = "",
        target: str = "",
        fold=None,
        sample=None,
        clip=None,
        labels=None,
        extra: Mapping | None = None,
    ) -> tuple[dict, pd.DataFrame]:
        """Score one unit and build its results row and prediction rows.

        Parameters
        ----------
        y_true, y_pred : array-like of shape (n,)
            Pooled test labels and predictions of the unit.
        fold : str or array-like of shape (n,), optional
            Fold of each prediction (e.g. the LOSO test subject); ``""`` by default.
        sample : array-like of int, optional
            Row position of each prediction in the evaluated table (default 0..n-1).
        clip : array-like of str, optional
            Clip id of each prediction.
        labels : array-like, optional
            Classes the macro averages run over (default: those present in y_true).
        extra : mapping, optional
            Additional results columns (e.g. ``{"seconds": 1.2}``).

        Returns
        -------
        row : dict
            The results row.
        predictions : DataFrame
            The prediction rows.
        """
        yt = _as_label_array(y_true)
        yp = _as_label_array(y_pred)
        if yt.shape != yp.shape:
            raise ValueError(
                f"{protocol}/{task}/{method}: y_true has {yt.size} labels, y_pred {yp.size}"
            )
        n = yt.size
        if selection == "":
            raise ValueError("selection must be a non-empty name ('none' = params given)")

        def per_sample(value, default, what):
            if value is None:
                return np.full(n, default, dtype=object)
            if np.isscalar(value):
                return np.full(n, value, dtype=object)
            arr = np.asarray(value)
            if arr.shape != (n,):
                raise ValueError(
                    f"{protocol}/{task}/{method}: {what} needs {n} entries, got {arr.shape}"
                )
            return arr

        pj = params_to_json(params)
        lab = None if labels is None else np.asarray(labels)
        scores = score_all(yt, yp, labels=lab)
        row = {
            "protocol": str(protocol),
            "task": str(task),
            "source": str(source),
            "target": str(target),
            "method": str(method),
            "selection": str(selection),
            "params": pj,
            "seed": int(seed),
            "data": str(data),
            "mean_f1": scores["mean_f1"],
            "uar": scores["uar"],
            "accuracy": scores["accuracy"],
            "n_test": int(n),
            "labels": "" if lab is None else json.dumps(lab.tolist(), default=_json_default),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        for k, v in (extra or {}).items():
            if k in row:
                raise ValueError(f"extra column {k!r} clashes with a standard results column")
            row[k] = v
        preds = pd.DataFrame(
            {
                "protocol": row["protocol"],
                "task": row["task"],
                "method": row["method"],
                "selection": row["selection"],
                "params": pj,
                "seed": int(seed),
                "data": str(data),
                "fold": per_sample(fold, "", "fold").astype(str),
                "sample": np.arange(n, dtype=np.int64)
                if sample is None
                else per_sample(sample, 0, "sample").astype(np.int64),
                "clip": per_sample(clip, "", "clip").astype(str),
                "y_true": yt,
                "y_pred": yp,
            }
        )
        return row, preds

    def add(self, **kwargs) -> dict:
        """Score and store one unit (arguments of :meth:`make_record`); returns its row."""
        row, preds = self.make_record(**kwargs)
        self.add_records([(row, preds)])
        return row

    def add_records(self, records: Iterable[tuple[dict, pd.DataFrame]]) -> None:
        """Store several scored units at once (one atomic rewrite of each file)."""
        latest: dict[tuple[str, ...], tuple[dict, pd.DataFrame]] = {}
        for row, preds in records:  # within one batch the last record of a key wins
            k = result_key(*(row[c] for c in _KEY_COLUMNS))
            latest.pop(k, None)
            latest[k] = (row, preds)
        if not latest:
            return
        new_rows = pd.DataFrame([r for r, _ in latest.values()])
        new_preds = pd.concat([p for _, p in latest.values()], ignore_index=True)
        new_keys = list(latest)
        key_set = set(new_keys)

        old_preds = self.predictions()
        if not old_preds.empty:
            old_preds = old_preds[[k not in key_set for k in result_keys(old_preds)]]
        preds = (
            new_preds if old_preds.empty else pd.concat([old_preds, new_preds], ignore_index=True)
        )
        old_rows = self.results()
        if not old_rows.empty:
            old_rows = old_rows[[k not in key_set for k in result_keys(old_rows)]]
        rows = new_rows if old_rows.empty else pd.concat([old_rows, new_rows], ignore_index=True)
        extra = [c for c in rows.columns if c not in RESULT_COLUMNS]
        rows = rows[list(RESULT_COLUMNS) + extra]
        _atomic_write_csv(preds[list(PREDICTION_COLUMNS)], self.predictions_path)
        _atomic_write_csv(rows, self.results_path)
        log.debug("%s: stored %d unit(s), %d rows in total", self, len(new_rows), len(rows))

    # ------------------------------------------------------------------ checks
    def recompute(self) -> pd.DataFrame:
        """Metrics re-derived from ``predictions.csv``, one row per stored key.

        Returns
        -------
        DataFrame
            Key columns plus ``mean_f1``, ``uar``, ``accuracy``, ``n_test``.
        """
        preds = self.predictions()
        res = self.results()
        labels_of = {k: lab for k, lab in zip(result_keys(res), res["labels"], strict=True)}
        out = []
        if preds.empty:
            return pd.DataFrame(columns=[*_KEY_COLUMNS, "mean_f1", "uar", "accuracy", "n_test"])
        pk = result_keys(preds)
        preds = preds.assign(_key=pk)
        for key, g in preds.groupby("_key", sort=False):
            lab = labels_of.get(key, "")
            s = score_all(
                g["y_true"].to_numpy(),
                g["y_pred"].to_numpy(),
                labels=json.loads(lab) if lab else None,
            )
            first = g.iloc[0]
            out.append({c: first[c] for c in _KEY_COLUMNS} | s | {"n_test": len(g)})
        return pd.DataFrame(out)
