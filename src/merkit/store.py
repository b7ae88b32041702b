"""A tidy results store on disk: one row per evaluated unit, predictions kept.

Layout of a store directory::

    DIR/results.csv      one row per key (protocol, task, method, selection, [params], seed)
    DIR/predictions.csv  one row per test sample of every unit (long format)
    DIR/parts/           rows added since the last merge (present while a large store grows;
                         ``grid.csv`` of :func:`merkit.protocols.runner.run_grid` keeps its
                         own parts ``NNNNNNNN.grid.csv`` there, with the helpers below)

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
predictions. One writer at a time: concurrent writers must batch through one process.

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
    "PREDICTION_COLUMNS",
    "RESULT_COLUMNS",
    "ResultStore",
    "atomic_write_text",
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


def _atomic_write_csv(df: pd.DataFrame, path: Path) -> None:
    # on disk before the rename (survives a system crash too); umask permissions
    _io.atomic_write(path, lambda fh: df.to_csv(fh, index=False), binary=False, fsync=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``: a crash
    leaves the old file or the new one, never half of it (permissions as a normal write)."""
    _io.atomic_write_text(path, text, fsync=True)


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
            _atomic_write_csv(df, parts_dir / f"{number:08d}.{kind}.csv")
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
            _atomic_write_csv(preds[list(PREDICTION_COLUMNS)], self.predictions_path)
            _atomic_write_csv(rows, self.results_path)
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
