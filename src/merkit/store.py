"""The results store on disk: the one reader and writer of a results folder's files.

One row per evaluated unit, predictions kept. Layout of a store directory::

    DIR/results.csv      one row per key (protocol, task, method, selection, [params], seed)
    DIR/predictions.csv  one row per test sample of every unit (long format)
    DIR/parts/           rows added since the last merge (present while a large store grows;
                         the grid table keeps its own parts ``NNNNNNNN.grid.csv`` there)
    DIR/grid.csv         every point of a hyper-parameter grid run (:func:`read_grid`,
                         :func:`write_grid_part`, :func:`merge_grid`)
    DIR/tgsr_blocks.json TGSR's selected blocks per task (:func:`write_tgsr_blocks`,
                         :func:`read_tgsr_blocks`, :func:`read_tgsr_grouping`)
    DIR/history.csv      learning curves of a deep training run (:func:`write_history`,
                         :func:`read_history`)
    DIR/embeddings/      learned features per run (:func:`write_embeddings`,
                         :func:`read_embeddings`)
    DIR/folds/           the files of each trained fold (:func:`write_fold`, :func:`read_fold`)
    DIR/skipped.csv, run.json, summary.csv, summary.md
                         clips left out, what a run ran, its summaries (``write_*`` below)

Every file is written atomically by :mod:`merkit._io` (a temporary file, then a rename:
a crash leaves the old file or the new one; permissions as a normal write).

``results.csv`` columns: ``protocol, task, source, target, method, selection,
params`` (JSON, sorted keys), ``seed, mean_f1`` (0..1), ``uar`` (0..1), ``accuracy``
(percent), ``n_test, labels`` (JSON list of the classes averaged over, or empty =
the classes present in ``y_true``), ``classes`` (JSON list of class names indexed by
the integer labels, or empty when unknown; files written before it read as empty),
``created`` (UTC time) and any extra columns a caller adds (e.g. ``seconds``).
``predictions.csv`` columns: ``protocol, task, method, selection, params, seed, fold,
sample, clip, y_true, y_pred``.

Keys: with ``selection == "none"`` (hyper-parameters given, e.g. every point of a
grid) the params are part of the key; for any other selection (``"oracle"``,
a label-free criterion...) the selection chose the params, so the key ignores them
and re-running replaces the previous choice. Adding a unit whose key exists replaces
it (newer wins), in both files.

Metrics are always computed from the pooled predictions by
:mod:`merkit.metrics` (:meth:`ResultStore.recompute` re-derives them from
``predictions.csv``). Writes are atomic (temporary file + ``os.replace``);
predictions are written before results, so a results row never lacks its
predictions. Writers of one store in several processes serialise on
:func:`directory_lock`.

Writes are incremental: :meth:`ResultStore.add_records` writes only the new rows, as the
pair ``parts/NNNNNNNN.predictions.csv`` then ``parts/NNNNNNNN.results.csv`` (the results
part commits the pair: a predictions part without it, left by a crash, is ignored).
Reading returns the main files plus the committed parts (newer wins per key), so every
read sees the same table whether or not the parts are merged. :meth:`ResultStore.compact`
merges the parts into ``results.csv`` / ``predictions.csv``; it runs after a write when
``predictions.csv`` is still small (< 4 MiB: small stores keep complete main files, as
before), when the parts outgrow it (so a row is rewritten O(1) times on average), or when
they number 128; the runners call it at the end of a run. A crash at any point leaves
every file either old or new and the store readable with all committed rows (parts are
removed oldest first after the merged files are in place).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

try:  # POSIX; elsewhere the store is single-writer
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

import numpy as np
import pandas as pd

from merkit import _io
from merkit.metrics import score_all

log = logging.getLogger(__name__)

__all__ = [
    "AUDIT_FILE",
    "AUTO_FILE",
    "AUDIT_SUFFIX",
    "EMBEDDINGS_DIR",
    "FOLD_SUFFIXES",
    "GRID_FILE",
    "GRID_PART",
    "HISTORY_COLUMNS",
    "HISTORY_FILE",
    "PREDICTION_COLUMNS",
    "RESULT_COLUMNS",
    "RUN_FILE",
    "SKIPPED_FILE",
    "SUMMARY_FILE",
    "SUMMARY_TABLE_FILE",
    "TGSR_BLOCKS_FILE",
    "ResultStore",
    "audit_path",
    "directory_lock",
    "embeddings_path",
    "fold_paths",
    "grid_key",
    "merge_grid",
    "params_to_json",
    "read_audit",
    "read_embeddings",
    "read_fold",
    "read_fold_audit",
    "read_grid",
    "read_history",
    "read_auto_selection",
    "read_run_info",
    "read_stats_table",
    "read_tgsr_blocks",
    "read_tgsr_grouping",
    "result_key",
    "result_keys",
    "stored_folds",
    "stored_seeds",
    "write_audit",
    "write_embeddings",
    "write_fold",
    "write_grid_part",
    "write_history",
    "write_run_info",
    "write_auto_selection",
    "write_skipped",
    "write_stats",
    "write_summary",
    "write_summary_table",
    "write_tgsr_blocks",
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
    "classes",
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
                "labels", "classes", "created", "fold", "clip", "data")  # fmt: skip
_KEY_COLUMNS = ("protocol", "task", "method", "selection", "params", "seed", "data")
#: columns added after the first release of the format; older files read with ""
_OPTIONAL_COLUMNS = ("data", "classes")

#: folder of a store holding the rows added since the last merge
PARTS_DIR = "parts"
#: while predictions.csv is smaller than this, every write merges at once
COMPACT_BELOW_BYTES = 4 << 20
#: merge when this many parts have accumulated
MAX_PARTS = 128
_PART_KINDS = ("results", "predictions")


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


def _remove_empty_dir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


_held: dict[Path, int] = {}  # re-entrancy: directories this process holds, and how deep


@contextlib.contextmanager
def directory_lock(directory: str | Path) -> Iterator[None]:
    """Exclusive lock on a store directory across processes (``flock`` on the directory
    itself, so no lock file; re-entrant within a process).

    Several processes may write one store (e.g. one ``merkit train`` per fold into the
    same ``--out``): part numbers, merges and the removal of stale temporary files happen
    under this lock, so no writer removes or renumbers another's files.
    """
    key = Path(directory).resolve()
    if _held.get(key):
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    key.mkdir(parents=True, exist_ok=True)
    fd = os.open(key, os.O_RDONLY)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        _held[key] = 1
        try:
            yield
        finally:
            _held.pop(key, None)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ------------------------------------------------ part files (shared with the grid table)
def list_parts(parts_dir: Path, kinds: Sequence[str]) -> dict[int, dict[str, Path]]:
    """``{number: {kind: path}}`` of the part files ``NNNNNNNN.<kind>.csv`` in ``parts_dir``
    whose kind is one of ``kinds`` (temporary files of unfinished writes are not listed)."""
    out: dict[int, dict[str, Path]] = {}
    try:
        names = list(parts_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):  # none yet, or a merge just removed it
        return out
    for f in names:
        num, _, rest = f.name.partition(".")
        kind = rest.removesuffix(".csv")
        if num.isdigit() and rest.endswith(".csv") and kind in kinds:
            out.setdefault(int(num), {})[kind] = f
    return out


def write_part(parts_dir: Path, frames: Sequence[tuple[str, pd.DataFrame]]) -> int:
    """Write one part: ``parts_dir/NNNNNNNN.<kind>.csv`` per ``(kind, frame)``, in order,
    each atomically; the last file commits the part (readers ignore a part without it).
    Numbered after every part of these kinds already there; returns the number."""
    number = max(list_parts(parts_dir, [k for k, _ in frames]), default=0) + 1
    made_dir = not parts_dir.is_dir()
    parts_dir.mkdir(exist_ok=True)
    try:
        for kind, df in frames:
            _io.atomic_write_csv(parts_dir / f"{number:08d}.{kind}.csv", df, fsync=True)
    except BaseException:
        if made_dir:
            _remove_empty_dir(parts_dir)
        raise
    return number


def merge_due(main_bytes: int, part_bytes: int, n_parts: int, compact_below: int,
              max_parts: int) -> bool:  # fmt: skip
    """The merge policy of part files: merge while the main file is small, when the parts
    outgrow it (so a row is rewritten O(1) times on average) or when they are many."""
    return main_bytes < compact_below or part_bytes >= main_bytes or n_parts >= max_parts


def remove_parts(found: Mapping[int, Mapping[str, Path]], kinds: Sequence[str]) -> None:
    """Remove merged parts oldest first, the files of a part in the order of ``kinds`` (the
    committing file first): a crash leaves only newer parts, which re-apply their rows."""
    for n in sorted(found):
        for kind in kinds:
            if kind in found[n]:
                found[n][kind].unlink(missing_ok=True)


def _key_strings(df: pd.DataFrame) -> pd.Series:
    """One string per row identifying its key (as :func:`result_keys`), vectorised."""
    sel = df["selection"].astype(str)
    params = df["params"].astype(str).where(sel == "none", "*")
    seed = pd.to_numeric(df["seed"]).astype("int64").astype(str)
    data = df["data"].astype(str) if "data" in df.columns else ""
    sep = "\x1f"
    head = df["protocol"].astype(str) + sep + df["task"].astype(str) + sep
    return head + df["method"].astype(str) + sep + sel + sep + params + sep + seed + sep + data


def _newest_per_key(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows of ``frames`` (oldest first), each key taken from the newest frame holding it."""
    kept: list[pd.DataFrame] = []
    seen = pd.Index([], dtype=object)
    for df in reversed(frames):
        if df.empty:
            continue
        keys = _key_strings(df)
        kept.append(df[~keys.isin(seen).to_numpy()])
        seen = seen.append(pd.Index(keys.unique()))
    if not kept:
        return frames[0]
    return pd.concat(kept[::-1], ignore_index=True)


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    """Results columns in the standard order, extra columns after them."""
    first = [c for c in RESULT_COLUMNS if c in rows.columns]
    return rows[first + [c for c in rows.columns if c not in RESULT_COLUMNS]]


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
        Store folder; holds ``results.csv`` and ``predictions.csv`` (and ``parts/``, see
        the module docstring).
    compact_below : int
        Merge after every write while ``predictions.csv`` is smaller than this (bytes).
    max_parts : int
        Merge when this many parts have accumulated.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        compact_below: int = COMPACT_BELOW_BYTES,
        max_parts: int = MAX_PARTS,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.compact_below = int(compact_below)
        self.max_parts = max(1, int(max_parts))

    @property
    def results_path(self) -> Path:
        return self.directory / "results.csv"

    @property
    def predictions_path(self) -> Path:
        return self.directory / "predictions.csv"

    @property
    def parts_dir(self) -> Path:
        return self.directory / PARTS_DIR

    def _part_files(self) -> dict[int, dict[str, Path]]:
        """``{number: {"results": path, "predictions": path}}`` of every part file."""
        return list_parts(self.parts_dir, _PART_KINDS)

    def _parts(self) -> list[tuple[Path, Path]]:
        """``(results part, predictions part)`` of the committed parts, oldest first."""
        found = self._part_files()
        return [(found[n]["results"], found[n]["predictions"]) for n in sorted(found)
                if len(found[n]) == 2]  # fmt: skip

    def __repr__(self) -> str:
        return f"ResultStore({str(self.directory)!r})"

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _read(
        path: Path, columns: tuple[str, ...], text: io.StringIO | None = None
    ) -> pd.DataFrame:
        if text is None and not path.is_file():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
        df = pd.read_csv(
            path if text is None else text,
            dtype={c: str for c in _STR_COLUMNS},
            keep_default_na=False,
            na_values=[],
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
        with directory_lock(self.directory):
            return self._results()

    def results_of(self, records: Iterable[tuple[dict, pd.DataFrame]]) -> pd.DataFrame:
        """The stored results rows of ``records`` (as built by :meth:`make_record`), in the
        store's order: the rows one call added, without the folder's other rows."""
        mine = {result_key(*(row[c] for c in _KEY_COLUMNS)) for row, _ in records}
        results = self.results()
        keep = np.array([k in mine for k in result_keys(results)], dtype=bool)
        return results[keep].reset_index(drop=True)

    def _results(self) -> pd.DataFrame:
        parts = self._parts()
        if not parts:
            return self._read(self.results_path, RESULT_COLUMNS)
        rows = self._merged_results([self.results_path, *(r for r, _ in parts)])
        text = io.StringIO(rows.to_csv(index=False))  # the types a merged file reads with
        return self._read(self.results_path, RESULT_COLUMNS, text=text)

    def predictions(self) -> pd.DataFrame:
        """All stored predictions (long format)."""
        with directory_lock(self.directory):
            return self._predictions()

    def _predictions(self) -> pd.DataFrame:
        parts = self._parts()
        if not parts:
            return self._read(self.predictions_path, PREDICTION_COLUMNS)
        frames = [self._read(f, PREDICTION_COLUMNS) for f in
                  (self.predictions_path, *(p for _, p in parts))]  # fmt: skip
        return _newest_per_key(frames)

    def _merged_results(self, files: list[Path]) -> pd.DataFrame:
        """Results rows of ``files`` as strings (as written), the newest row per key."""
        frames = []
        for f in files:
            if f.is_file():
                df = pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[])
                missing = [c for c in RESULT_COLUMNS
                           if c not in df.columns and c not in _OPTIONAL_COLUMNS]  # fmt: skip
                if missing:
                    raise ValueError(
                        f"{f}: not a merkit results file, columns {missing} are missing"
                    )
                frames.append(df)
        rows = pd.concat(frames, ignore_index=True).fillna("")
        for c in _OPTIONAL_COLUMNS:
            if c not in rows.columns:
                rows[c] = ""
        rows = rows[~_key_strings(rows).duplicated(keep="last").to_numpy()]
        return _ordered(rows).reset_index(drop=True)

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
        classes=None,
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
        classes : sequence of str, optional
            Class names indexed by the integer labels (shown by reports); not scored.
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
        names = [] if classes is None else [str(c) for c in classes]
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
            "classes": json.dumps(names) if names else "",
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
        """Store several scored units at once (one part of new rows, see the module
        docstring; merged at once while the store is small)."""
        latest: dict[tuple[str, ...], tuple[dict, pd.DataFrame]] = {}
        for row, preds in records:  # within one batch the last record of a key wins
            k = result_key(*(row[c] for c in _KEY_COLUMNS))
            latest.pop(k, None)
            latest[k] = (row, preds)
        if not latest:
            return
        new_rows = _ordered(pd.DataFrame([r for r, _ in latest.values()]))
        new_preds = pd.concat([p for _, p in latest.values()], ignore_index=True)
        files = [("predictions", new_preds[list(PREDICTION_COLUMNS)]), ("results", new_rows)]
        with directory_lock(self.directory):  # other processes may write this store too
            number = write_part(self.parts_dir, files)  # the results part commits the pair
            log.debug("%s: stored %d unit(s) in part %d", self, len(new_rows), number)
            parts = self._parts()
            base = (self.predictions_path.stat().st_size if self.predictions_path.is_file()
                    else 0)  # fmt: skip
            size = sum(f.stat().st_size for pair in parts for f in pair)
            if merge_due(base, size, len(parts), self.compact_below, self.max_parts):
                self.compact()

    def compact(self) -> None:
        """Merge the parts into ``results.csv`` / ``predictions.csv`` (atomic writes), then
        remove them oldest first; a no-op without parts. Temporary files left by a killed
        writer are removed (under :func:`directory_lock`: no live writer's)."""
        with directory_lock(self.directory):
            self._compact()

    def _compact(self) -> None:
        stale = [*self.directory.glob(".results.csv.*.tmp"),
                 *self.directory.glob(".predictions.csv.*.tmp")]  # fmt: skip
        if self.parts_dir.is_dir():
            stale += list(self.parts_dir.glob(".*.tmp"))
        for f in stale:
            f.unlink(missing_ok=True)
        found = self._part_files()
        if not found:
            _remove_empty_dir(self.parts_dir)
            return
        parts = self._parts()
        if parts:
            rows = self._merged_results([self.results_path, *(r for r, _ in parts)])
            preds = self.predictions()
            _io.atomic_write_csv(self.predictions_path, preds[list(PREDICTION_COLUMNS)],
                                fsync=True)  # fmt: skip
            _io.atomic_write_csv(self.results_path, rows, fsync=True)
            log.debug("%s: merged %d part(s), %d rows", self, len(parts), len(rows))
        remove_parts(found, _PART_KINDS)  # the results part (commit) goes first
        _remove_empty_dir(self.parts_dir)

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

    # ------------------------------------------------------------ per-run files
    @property
    def grid_path(self) -> Path:
        return self.directory / GRID_FILE

    @property
    def tgsr_blocks_path(self) -> Path:
        return self.directory / TGSR_BLOCKS_FILE

    @property
    def history_path(self) -> Path:
        return self.directory / HISTORY_FILE

    @property
    def embeddings_dir(self) -> Path:
        return self.directory / EMBEDDINGS_DIR

    def has_parts(self) -> bool:
        """Whether rows written since the last merge wait in ``parts/`` (of any table)."""
        try:
            return any(self.parts_dir.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return False

    def grid(self) -> pd.DataFrame:
        """The grid rows of the store (:func:`read_grid`; empty without a grid run)."""
        return read_grid(self.directory)

    def tgsr_blocks(self) -> tuple[tuple[int, ...], dict[str, list[int]]] | None:
        """Levels and selected blocks per task (:func:`read_tgsr_blocks`), or None without
        ``tgsr_blocks.json``."""
        return read_tgsr_blocks(self.tgsr_blocks_path) if self.tgsr_blocks_path.is_file() else None

    def tgsr_grouping(self) -> tuple[str, dict[str, list[int]]]:
        """TGSR's grouping and selected groups per task (:func:`read_tgsr_grouping`);
        ``("spatial", {})`` without ``tgsr_blocks.json``."""
        if not self.tgsr_blocks_path.is_file():
            return "spatial", {}
        return read_tgsr_grouping(self.tgsr_blocks_path)

    def history(self) -> pd.DataFrame | None:
        """The training history (:func:`read_history`), or None without ``history.csv``."""
        return read_history(self.history_path) if self.history_path.is_file() else None

    def embedding_files(self) -> list[Path]:
        """The ``embeddings/*.npz`` files of the store, sorted by name (read each with
        :func:`read_embeddings`)."""
        folder = self.embeddings_dir
        return sorted(folder.glob("*.npz")) if folder.is_dir() else []


# ================================================================== the grid table
#: name of the per-grid-point table written next to the results store
GRID_FILE = "grid.csv"
#: kind of the grid's part files (``DIR/parts/NNNNNNNN.grid.csv``)
GRID_PART = "grid"
#: merge the grid parts after every write while ``grid.csv`` is smaller than this (bytes)
GRID_COMPACT_BELOW = COMPACT_BELOW_BYTES
#: merge the grid parts when this many have accumulated
GRID_MAX_PARTS = MAX_PARTS

_GRID_COLUMNS = (*RESULT_COLUMNS, "published_params", "seconds", "criteria_seconds",
                 "criteria", "entropy", "class_entropy", "reverse", "iwcv", "snd",
                 "snd_guarded", "dev", "mixval", "mixval_inter", "mixval_intra", "y_pred",
                 "y_prob")  # fmt: skip
_GRID_STR_COLUMNS = ("protocol", "task", "source", "target", "method", "selection",
                     "params", "published_params", "data", "labels", "created", "criteria",
                     "y_pred", "y_prob")  # fmt: skip
_GRID_FLOAT_COLUMNS = ("mean_f1", "uar", "accuracy", "seconds", "criteria_seconds", "score",
                       "entropy", "class_entropy", "reverse", "iwcv", "snd", "snd_guarded",
                       "dev", "mixval", "mixval_inter", "mixval_intra")  # fmt: skip


def grid_key(row: Mapping) -> tuple[str, ...]:
    """The identity of a grid row: its results key with ``selection = "none"`` (every
    point of a grid is a given parameter set)."""
    return result_key(row["protocol"], row["task"], row["method"], "none", row["params"],
                      row["seed"], row.get("data", ""))  # fmt: skip


def read_grid(directory: str | Path) -> pd.DataFrame:
    """The grid rows of ``DIR`` as a DataFrame (empty when there are none); ``criteria``
    and ``y_pred`` stay JSON strings.

    Layout: ``DIR/grid.csv`` holds the merged rows, one per key (:func:`grid_key`: task,
    method, params, seed, data); ``DIR/parts/NNNNNNNN.grid.csv`` (next to the results'
    parts, written with the same helpers) the rows written or updated since the last merge
    (:func:`write_grid_part`), each part written atomically (its rename commits it).
    Reading applies the parts oldest first: the newest version of a key wins and keeps
    the place where its key first appeared, so the table is the same, column order and
    dtypes included, whether or not the parts are merged.
    """
    directory = Path(directory)
    path = directory / GRID_FILE
    for _ in range(20):
        found = _grid_parts(directory)
        if not found:
            return _read_grid_csv(path) if path.is_file() else pd.DataFrame()
        try:
            rows = _merged_grid(directory, found)
        except FileNotFoundError:  # a merge removed a part meanwhile: read again
            continue
        other = [c for c in rows.columns if c not in _GRID_STR_COLUMNS]
        if not other:
            return rows
        # the types a merged file reads with (the string columns are read as strings)
        typed = _read_grid_csv(io.StringIO(rows[other].to_csv(index=False)))
        return pd.concat([rows.drop(columns=other), typed], axis=1)[rows.columns]
    raise RuntimeError(f"{directory}: the grid parts kept changing while being read")


def _read_grid_csv(source) -> pd.DataFrame:
    df = pd.read_csv(source, dtype={c: str for c in _GRID_STR_COLUMNS}, keep_default_na=False,
                     na_values=[])  # fmt: skip
    for c in _GRID_FLOAT_COLUMNS:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c].replace("", np.nan)).astype(float)
    return df


def _grid_frame(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Grid rows as a table: the standard columns first, others in order of appearance."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    first = [c for c in _GRID_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def _grid_parts(directory: Path) -> dict[int, dict[str, Path]]:
    return list_parts(directory / PARTS_DIR, (GRID_PART,))


def _merged_grid(directory: Path, found: Mapping[int, Mapping[str, Path]]) -> pd.DataFrame:
    """``grid.csv`` and the parts ``found`` as the strings written: per key the row of the
    newest part, at the place its key first appeared."""
    files = [found[n][GRID_PART] for n in sorted(found)]
    if (directory / GRID_FILE).is_file():
        files.insert(0, directory / GRID_FILE)
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[]) for f in files]
    df = pd.concat(frames, ignore_index=True).fillna("")
    keys = _key_strings(df.assign(selection="none"))  # as grid_key
    first, _ = pd.factorize(keys)  # numbered in order of first appearance
    newest = ~keys.duplicated(keep="last").to_numpy()
    df = df[newest].iloc[np.argsort(first[newest])]
    return _grid_frame(df).reset_index(drop=True)


def write_grid_part(directory: str | Path, rows: Iterable[Mapping]) -> None:
    """Write the new or changed grid ``rows`` as one part ``DIR/parts/NNNNNNNN.grid.csv``,
    then merge the parts when the store's policy says so (:func:`merge_due` with
    :data:`GRID_COMPACT_BELOW` and :data:`GRID_MAX_PARTS`); under :func:`directory_lock`."""
    directory = Path(directory)
    frame = _grid_frame(rows)
    with directory_lock(directory):
        number = write_part(directory / PARTS_DIR, [(GRID_PART, frame)])
        found = _grid_parts(directory)
        main = directory / GRID_FILE
        size = sum(f.stat().st_size for part in found.values() for f in part.values())
        if merge_due(main.stat().st_size if main.is_file() else 0, size, len(found),
                     GRID_COMPACT_BELOW, GRID_MAX_PARTS):  # fmt: skip
            _merge_grid_locked(directory)
        else:
            log.debug("%s: grid rows in part %d", directory, number)


def merge_grid(directory: str | Path) -> None:
    """Merge the grid parts into ``grid.csv`` (atomic write), then remove them oldest
    first (a crash leaves newer parts, which re-apply the same rows); also removes the
    temporary files of a killed writer (under :func:`directory_lock`)."""
    directory = Path(directory)
    with directory_lock(directory):
        _merge_grid_locked(directory)


def _merge_grid_locked(directory: Path) -> None:
    parts_dir = directory / PARTS_DIR
    stale = list(directory.glob(f".{GRID_FILE}.*.tmp"))
    if parts_dir.is_dir():
        stale += parts_dir.glob(f".*.{GRID_PART}.csv.*.tmp")
    for f in stale:
        f.unlink(missing_ok=True)
    found = _grid_parts(directory)
    if found:
        _io.atomic_write_csv(directory / GRID_FILE, _merged_grid(directory, found), fsync=True)
        remove_parts(found, (GRID_PART,))
    _remove_empty_dir(parts_dir)


# =================================================================== TGSR blocks
#: written next to the results store when TGSR runs: its selected blocks per task
TGSR_BLOCKS_FILE = "tgsr_blocks.json"
#: block levels of a ``tgsr_blocks.json`` file that names none
_TGSR_LEVELS = (1, 2, 4, 8)


def write_tgsr_blocks(
    directory: str | Path,
    levels: Sequence[int],
    tasks: Mapping[str, Sequence[int]],
    *,
    grouping: str = "spatial",
    groups: Mapping[str, Sequence[int]] | None = None,
) -> Path:
    """Write TGSR's selected blocks per task to ``DIR/tgsr_blocks.json`` (atomic write).

    The file is ``{"levels": [block levels], "tasks": {task name: [selected block ids]}}``
    (read by :func:`read_tgsr_blocks`). When TGSR's groups are not the facial blocks
    (``grouping`` other than ``"spatial"``, e.g. the authors' column runs of the benchmark
    files), ``"grouping"`` names them, ``"groups"`` holds the selected group ids per task
    and ``"tasks"`` the facial blocks that hold at least one column of a selected group
    (:func:`read_tgsr_grouping`). Tasks of an existing file with the same levels and
    grouping are kept (a task given here replaces its entry).

    Parameters
    ----------
    directory : str or Path
        The results folder.
    levels : sequence of int
        Block levels the block ids refer to (:class:`merkit.features.layout.BlockLayout`).
    tasks : mapping
        Task name -> selected block ids (or, for a non-spatial grouping, the blocks the
        selected groups reach).
    grouping : str
        Name of TGSR's column grouping (``"spatial"``: the groups are the blocks).
    groups : mapping, optional
        Task name -> selected group ids, for a non-spatial grouping.

    Returns
    -------
    Path
        The file written.
    """
    path = Path(directory) / TGSR_BLOCKS_FILE
    levels = [int(v) for v in levels]
    tasks = {str(t): [int(b) for b in ids] for t, ids in tasks.items()}
    runs = {str(t): [int(g) for g in ids] for t, ids in (groups or {}).items()}
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError:
            old = None
        same = isinstance(old, dict) and old.get("levels") == levels
        if same and "tasks" in old and old.get("grouping", "spatial") == grouping:
            tasks = {**old["tasks"], **tasks}
            runs = {**old.get("groups", {}), **runs}
    rows = ",\n".join(f"  {json.dumps(t)}: {json.dumps(ids)}" for t, ids in tasks.items())
    head = f'{{"levels": {json.dumps(levels)}, '
    if grouping != "spatial":
        grp = ",\n".join(f"  {json.dumps(t)}: {json.dumps(ids)}" for t, ids in runs.items())
        head += f'"grouping": {json.dumps(grouping)}, "groups": {{\n{grp}\n}}, '
    _io.atomic_write_text(path, f'{head}"tasks": {{\n{rows}\n}}}}\n', fsync=True)
    log.info("TGSR selected blocks of %s: %s", ", ".join(tasks), path)
    return path


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


def read_tgsr_blocks(path: str | Path) -> tuple[tuple[int, ...], dict[str, list[int]]]:
    """Block levels and ``{task: selected block ids}`` of a ``tgsr_blocks.json`` file.

    The file is the object :func:`write_tgsr_blocks` writes, or (written by hand) a plain
    ``{task: [block ids...]}`` of the block levels ``(1, 2, 4, 8)``.
    """
    path = Path(path)
    data = _read_json(path)
    levels: tuple[int, ...] = _TGSR_LEVELS
    if isinstance(data, dict) and "tasks" in data:
        levels = tuple(int(v) for v in data.get("levels", levels))
        data = data["tasks"]
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path}: expected a JSON object {{task: [block ids...]}}")
    try:
        blocks = {str(t): [int(b) for b in v] for t, v in data.items()}
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: block ids must be integers ({err})") from err
    return levels, blocks


def read_tgsr_grouping(path: str | Path) -> tuple[str, dict[str, list[int]]]:
    """TGSR's grouping of a ``tgsr_blocks.json`` file and ``{task: selected group ids}``.

    ``"spatial"`` (the groups are the facial blocks; no separate group ids) unless the
    file names another grouping (e.g. ``"authors"``: contiguous column runs), whose
    selected groups are then returned (:func:`read_tgsr_blocks` gives the facial blocks
    those groups' columns fall in).
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or "grouping" not in data:
        return "spatial", {}
    groups = data.get("groups", {})
    if not isinstance(groups, dict):
        raise ValueError(f"{path}: 'groups' must be a JSON object {{task: [group ids...]}}")
    return str(data["grouping"]), {str(t): [int(g) for g in v] for t, v in groups.items()}


# ========================================================== deep training runs
#: learning curves of a deep training run: one row per (protocol, task, model, seed, fold,
#: epoch)
HISTORY_FILE = "history.csv"
#: the leading columns of ``history.csv`` (written in this order, others after them)
HISTORY_COLUMNS: tuple[str, ...] = ("protocol", "task", "method", "seed", "fold", "epoch",
                                    "loss", "accuracy", "lr")  # fmt: skip
#: columns a history file must have (``lr``, ``val_loss``, ``val_accuracy`` are optional)
_HISTORY_REQUIRED = ("protocol", "task", "method", "seed", "fold", "epoch", "loss", "accuracy")
_HISTORY_KEY = ["protocol", "task", "method", "seed", "fold"]
_HISTORY_TEXT = ("protocol", "task", "method", "fold")
#: folder of a deep training run holding the learned features per (protocol, task, model,
#: seed)
EMBEDDINGS_DIR = "embeddings"
#: the three files of one trained fold: predictions (written last: marks the fold done),
#: history and test features
FOLD_SUFFIXES = (".csv", ".history.csv", ".npz")


def write_history(path: str | Path, blocks: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Merge history ``blocks`` into the file ``path`` atomically; returns the file's rows.

    A block holds the epochs of one (protocol, task, method, seed, fold) key; the rows
    of a key already in the file are replaced by the new block's. Columns:
    :data:`HISTORY_COLUMNS` first, any others (``val_loss``...) after them. Without a
    non-empty block nothing is written and an empty table returned.
    """
    path = Path(path)
    blocks = [b for b in blocks if not b.empty]
    if not blocks:
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    new = pd.concat(blocks, ignore_index=True)
    new["seed"] = new["seed"].astype("int64")
    if path.is_file():
        old = pd.read_csv(path, dtype={c: str for c in _HISTORY_TEXT}, keep_default_na=False,
                          na_values=[""])  # fmt: skip
        keys = set(map(tuple, new[_HISTORY_KEY].astype(str).to_numpy()))
        stale = [tuple(r) in keys for r in old[_HISTORY_KEY].astype(str).to_numpy()]
        new = pd.concat([old[~np.array(stale, dtype=bool)], new], ignore_index=True)
    extra = [c for c in new.columns if c not in HISTORY_COLUMNS]
    new = new[list(HISTORY_COLUMNS) + extra]
    path.parent.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_csv(path, new)
    return new


def read_history(path: str | Path) -> pd.DataFrame:
    """A training history file (``history.csv``), validated; ``fold`` read as text.

    Raises
    ------
    ValueError
        Naming the file and the missing columns, or the rows with a non-numeric value.
    """
    path = Path(path)
    df = pd.read_csv(path, dtype={c: str for c in _HISTORY_TEXT}, keep_default_na=False,
                     na_values=[""])  # fmt: skip
    missing = [c for c in _HISTORY_REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: not a training history, columns {missing} are missing (expected "
            f"{', '.join(_HISTORY_REQUIRED)}[, lr, val_loss, val_accuracy])"
        )
    for c in ("seed", "epoch", "loss", "accuracy", "lr", "val_loss", "val_accuracy"):
        if c in df.columns:
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna() & df[c].notna()
            if c in ("seed", "epoch", "loss", "accuracy"):
                bad |= num.isna()
            if bad.any():
                rows = (np.flatnonzero(bad.to_numpy()) + 2).tolist()[:5]
                raise ValueError(f"{path}: column {c!r} is not numeric on lines {rows}")
            df[c] = num
    df["seed"] = df["seed"].astype("int64")
    df["epoch"] = df["epoch"].astype("int64")
    return df


def embeddings_path(directory: str | Path, protocol: str, task: str, model: str,
                    seed: int) -> Path:  # fmt: skip
    """``DIR/embeddings/<protocol>__<task>__<model>__seed<seed>.npz``: where the learned
    features of one (protocol, task, model, seed) go (:func:`read_embeddings` parses the
    name back)."""
    name = f"{protocol}__{task}__{model}__seed{int(seed)}.npz"
    return Path(directory) / EMBEDDINGS_DIR / name


def write_embeddings(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write the learned features of one run to ``path`` (an uncompressed ``.npz``,
    atomically; the folder is created): ``z`` (n, d), ``y_true``, ``y_pred`` (n,) or (n, L),
    ``sample_id``, ``classes`` and any other arrays given (e.g. ``fold``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return _io.atomic_write_npz(path, arrays)


def read_embeddings(path: str | Path) -> dict:
    """Learned features of one run (``embeddings/*.npz``), validated.

    Returns
    -------
    dict
        ``z`` (n, d) float, ``y_true``, ``y_pred`` (n,) int, or (n, L) 0/1 for a
        multi-label (AU) task, ``multilabel`` (bool), ``classes`` (list of str, class or
        AU names; empty if absent), ``name`` (``protocol``, ``task``, ``model``, ``seed``
        parsed from ``<protocol>__<task>__<model>__seed<seed>.npz``, else ``None``).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as err:
        raise ValueError(f"{path}: not a plain .npz of arrays (string arrays must be "
                         f"unicode, not object: {err})") from err  # fmt: skip
    missing = [k for k in ("z", "y_true", "y_pred") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: arrays {missing} are missing (expected z, y_true, y_pred, "
                         "sample_id, classes)")  # fmt: skip
    z = np.asarray(arrays["z"], dtype=np.float64)
    yt, yp = np.asarray(arrays["y_true"]), np.asarray(arrays["y_pred"])
    if z.ndim != 2:
        raise ValueError(f"{path}: z must be 2-D (n, d), got shape {z.shape}")
    sid = arrays.get("sample_id")
    if yt.ndim not in (1, 2) or yt.shape[0] != z.shape[0] or yp.shape != yt.shape:
        raise ValueError(f"{path}: y_true {yt.shape} and y_pred {yp.shape} must both be (n,) "
                         f"or (n, L) with n = {z.shape[0]} rows of z")  # fmt: skip
    if sid is not None and sid.shape != (z.shape[0],):
        raise ValueError(f"{path}: sample_id has shape {sid.shape}, z has {z.shape[0]} rows")
    parsed = None
    parts = path.stem.split("__")
    if len(parts) == 4 and re.fullmatch(r"seed-?\d+", parts[3]):
        parsed = {"protocol": parts[0], "task": parts[1], "model": parts[2],
                  "seed": int(parts[3][4:])}  # fmt: skip
    classes = [str(c) for c in np.atleast_1d(arrays.get("classes", np.array([], dtype=str)))]
    return {"z": z, "y_true": yt, "y_pred": yp, "multilabel": yt.ndim == 2,
            "classes": classes, "name": parsed}  # fmt: skip


def fold_paths(base: str | Path) -> tuple[Path, Path, Path]:
    """``(predictions, history, features)`` files of one trained fold: ``base`` +
    :data:`FOLD_SUFFIXES` (``<fold>.csv``, ``<fold>.history.csv``, ``<fold>.npz``)."""
    base = Path(base)
    csv, hist, npz = (base.with_name(base.name + ext) for ext in FOLD_SUFFIXES)
    return csv, hist, npz


#: the leak audit's record of one fold: ``<fold>.audit.npz`` beside its other files
AUDIT_SUFFIX = ".audit.npz"


def audit_path(base: str | Path) -> Path:
    """The leak-audit file of one trained fold: ``base`` + :data:`AUDIT_SUFFIX`."""
    base = Path(base)
    return base.with_name(base.name + AUDIT_SUFFIX)


def write_fold(
    base: str | Path,
    predictions: pd.DataFrame,
    history: pd.DataFrame,
    sample: np.ndarray,
    z: np.ndarray,
    audit: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Write the files of one trained fold (:func:`fold_paths`), each atomically: the test
    features (``sample``, ``z``), the leak audit's ``(epochs, probs)`` when given
    (:func:`audit_path`; a stale one is removed otherwise), the history, then the
    predictions, whose presence marks the fold as done (:func:`read_fold`)."""
    csv, hist, npz = fold_paths(base)
    csv.parent.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_npz(npz, {"sample": sample, "z": z})
    if audit is not None:
        epochs, probs = audit
        arrays = {"sample": np.asarray(sample, np.int64), "epochs": np.asarray(epochs, np.int64),
                  "probs": np.asarray(probs, np.float32)}  # fmt: skip
        _io.atomic_write_npz(audit_path(base), arrays)
    else:
        audit_path(base).unlink(missing_ok=True)
    _io.atomic_write_csv(hist, history)
    _io.atomic_write_csv(csv, predictions)


def stored_seeds(directory: str | Path, run: str) -> list[int]:
    """Seeds with stored folds of ``run`` in a ``merkit train`` folder (``folds/<run>/seed<S>``)."""
    root = Path(directory) / "folds" / run
    if not root.is_dir():
        return []
    found = (re.fullmatch(r"seed(-?\d+)", p.name) for p in root.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def stored_folds(directory: str | Path, run: str, seed: int) -> list[Path]:
    """The bases (:func:`fold_paths`) of the finished folds of ``run`` and ``seed`` in a
    ``merkit train`` folder, sorted by name (a fold is finished when its predictions file
    exists)."""
    folder = Path(directory) / "folds" / run / f"seed{int(seed)}"
    if not folder.is_dir():
        return []
    csv_ext, hist_ext = FOLD_SUFFIXES[0], FOLD_SUFFIXES[1]
    names = [p.name[: -len(csv_ext)] for p in folder.glob(f"*{csv_ext}")
             if not p.name.endswith(hist_ext)]  # fmt: skip
    return [folder / n for n in sorted(names)]


def read_fold(
    base: str | Path,
) -> tuple[pd.DataFrame, pd.DataFrame | None, tuple[np.ndarray, np.ndarray] | None] | None:
    """The files of one trained fold (:func:`write_fold`): ``(predictions, history or
    None, (sample, z) or None)``, or None when the fold is not done (no predictions file).
    ``fold``, ``subject`` and ``clip`` of the predictions are read as text."""
    csv, hist, npz = fold_paths(base)
    if not csv.is_file():
        return None
    predictions = pd.read_csv(csv, dtype={"fold": str, "subject": str, "clip": str},
                              keep_default_na=False)  # fmt: skip
    history = pd.read_csv(hist) if hist.is_file() else None
    features = None
    if npz.is_file():
        with np.load(npz) as f:
            features = (f["sample"], f["z"])
    return predictions, history, features


def read_fold_audit(base: str | Path) -> dict[str, np.ndarray] | None:
    """The leak-audit record of one fold (:func:`write_fold`): ``sample`` ``(n,)`` (rows of
    the task table), ``epochs`` ``(E,)``, ``probs`` ``(E, n, K)``; None when the fold has
    none (trained without ``--audit-every``, or by an older merkit).

    Raises
    ------
    ValueError
        The file is damaged or its arrays disagree (the message names the file).
    """
    path = audit_path(base)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            got = {k: f[k] for k in ("sample", "epochs", "probs")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a leak-audit record ({err}); delete it and retrain "
                         "the fold with --audit-every") from err  # fmt: skip
    p = got["probs"]
    if p.ndim != 3 or p.shape[:2] != (len(got["epochs"]), len(got["sample"])):
        raise ValueError(f"{path}: probs has shape {p.shape}, expected (epochs "
                         f"{len(got['epochs'])}, rows {len(got['sample'])}, K); delete it and "
                         "retrain the fold")  # fmt: skip
    return got


#: the leak audit of training runs (:mod:`merkit.results.audit`), one row per
#: (protocol, task, method, run, seed, selection)
AUDIT_FILE = "audit.csv"
_AUDIT_KEY = ["protocol", "task", "method", "run", "seed", "selection"]


def write_audit(directory: str | Path, table: pd.DataFrame) -> pd.DataFrame:
    """Merge ``table`` into ``DIR/audit.csv`` atomically (rows of the same
    (protocol, task, method, run, seed, selection) are replaced); returns the file's rows."""
    path = Path(directory) / AUDIT_FILE
    new = table.copy()
    if path.is_file():
        old = read_audit(directory)
        keys = set(map(tuple, new[_AUDIT_KEY].astype(str).to_numpy()))
        stale = np.array([tuple(r) in keys for r in old[_AUDIT_KEY].astype(str).to_numpy()],
                         dtype=bool)  # fmt: skip
        new = pd.concat([old[~stale], new], ignore_index=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_csv(path, new)
    return new


def read_audit(directory: str | Path) -> pd.DataFrame | None:
    """``DIR/audit.csv`` (:func:`write_audit`), or None when there is none."""
    path = Path(directory) / AUDIT_FILE
    if not path.is_file():
        return None
    df = pd.read_csv(path, dtype={"task": str, "run": str, "method": str, "protocol": str},
                     keep_default_na=False, na_values=[""])  # fmt: skip
    missing = [c for c in (*_AUDIT_KEY, "uf1", "uar") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: columns {missing} are missing; delete it and rerun "
                         "merkit train (the audit is rebuilt from the fold records)")  # fmt: skip
    return df


# =============================================================== other run files
#: clips a run left out (``--missing skip``): ``dataset, subject, clip, reason``
SKIPPED_FILE = "skipped.csv"
#: what a training run ran (runs, data fingerprints, settings)
RUN_FILE = "run.json"
#: summary table of a training run (:func:`merkit.protocols.deep.summarize`)
SUMMARY_TABLE_FILE = "summary.csv"
#: Markdown summary of a CDMER run
SUMMARY_FILE = "summary.md"


def write_skipped(directory: str | Path, skipped: pd.DataFrame) -> Path | None:
    """``DIR/skipped.csv`` listing ``skipped`` (with a warning naming their number), or
    None, removing a stale list, when nothing was left out."""
    path = Path(directory) / SKIPPED_FILE
    if not len(skipped):
        path.unlink(missing_ok=True)
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    _io.atomic_write_csv(path, skipped)
    log.warning("%d clip(s) left out (--missing skip), listed in %s", len(skipped), path)
    return path


def read_run_info(directory: str | Path) -> dict:
    """``DIR/run.json`` (:func:`write_run_info`) of a ``merkit train`` folder.

    Raises
    ------
    FileNotFoundError
        ``DIR`` has no run.json (not the output folder of ``merkit train``).
    ValueError
        run.json is not a JSON object (the message names the file).
    """
    path = Path(directory) / RUN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {RUN_FILE}; give the --out folder of a "
                                "finished merkit train run")  # fmt: skip
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not readable JSON ({err}); rerun merkit train into "
                         "that folder to rewrite it") from err  # fmt: skip
    if not isinstance(info, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(info).__name__}")
    return info


def write_run_info(directory: str | Path, info: Mapping) -> Path:
    """``DIR/run.json``: ``info`` as indented JSON with sorted keys (values JSON cannot
    hold written as text), atomically."""
    path = Path(directory) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(info, indent=2, sort_keys=True, default=str) + "\n"
    return _io.atomic_write_text(path, text)


def write_summary_table(directory: str | Path, table: pd.DataFrame) -> Path:
    """``DIR/summary.csv``: ``table`` as CSV (no index), atomically."""
    path = Path(directory) / SUMMARY_TABLE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return _io.atomic_write_csv(path, table)


#: the label-free choices of method and parameters of a grid run (``--select auto``)
AUTO_FILE = "auto.csv"


def write_auto_selection(directory: str | Path, choices: pd.DataFrame) -> Path:
    """``DIR/auto.csv``: the across-method choices of a grid run (one row per task, seed
    and selection), atomically."""
    path = Path(directory) / AUTO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return _io.atomic_write_csv(path, choices)


def read_auto_selection(directory: str | Path) -> pd.DataFrame | None:
    """``DIR/auto.csv`` (:func:`write_auto_selection`), or None when the run has none."""
    path = Path(directory) / AUTO_FILE
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"params": str, "method": str, "selection": str})


def write_summary(directory: str | Path, markdown: str) -> Path:
    """``DIR/summary.md``: the Markdown summary of a run, atomically."""
    path = Path(directory) / SUMMARY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return _io.atomic_write_text(path, markdown)


#: the figure of ``merkit stats``: duration histograms with the micro-expression limits
STATS_FIGURE_FILE = "durations.png"


def write_stats(
    directory: str | Path, tables: Mapping[str, pd.DataFrame], figure: bytes | None = None
) -> list[Path]:
    """``DIR/<name>.csv`` for each of ``tables`` (no index) and, when given, the PNG bytes
    ``figure`` as ``DIR/durations.png``; every file atomically. Returns the paths written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = [_io.atomic_write_csv(directory / f"{name}.csv", t) for name, t in tables.items()]
    if figure is not None:
        written.append(_io.atomic_write_bytes(directory / STATS_FIGURE_FILE, figure))
    return written


def read_stats_table(directory: str | Path, name: str) -> pd.DataFrame:
    """One table written by :func:`write_stats` (``DIR/<name>.csv``).

    Raises
    ------
    FileNotFoundError
        If ``DIR/<name>.csv`` does not exist (naming it).
    """
    path = Path(directory) / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such statistics table; run 'merkit stats' first")
    return pd.read_csv(path)
