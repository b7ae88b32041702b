"""Known annotation errors, kept as data (``fixes.toml``) and applied to Sample tables.

A fix names one clip by ``(dataset, subject, clip)`` -- the ids of the Sample table, never
a sheet row -- with the erroneous values (``was``), the corrected ones (``set``), a
``reason`` and a ``source``. :func:`apply_fixes` changes a clip only when its current
values equal ``was``; a clip that already holds the ``set`` values (a corrected sheet) is
left alone, and a clip holding anything else is left alone with a warning (the sheet is a
version the fix was not written for). Each applied fix is logged and recorded in
``table.attrs["fixes_applied"]``.

The adapters apply the fixes by default (``fixes=True``) before validating, so
``load_samm(root, fixes=False)`` shows a sheet exactly as distributed (and validation
names its errors).

Positional fixes (``[[row_fix]]``, :class:`RowFix`, :func:`apply_row_fixes`) are the
corrections a peer library names by sheet row only (meb's CASME I and 4DME corrections).
A row number alone could hit the wrong clip in another sheet version, so each carries a
guard: ``"frames"`` applies it only when the clip's frame folder refutes the sheet's
onset / apex / offset and confirms the corrected ones; ``"opt-in"`` only when asked for
(``fixes="all"``), with a warning naming the clips.
"""

from __future__ import annotations

import logging
import numbers
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd

from merkit.data.schema import SchemaError

log = logging.getLogger(__name__)

#: the fixes shipped with merkit
FIXES_PATH = Path(__file__).with_name("fixes.toml")
_KEYS = frozenset({"dataset", "subject", "clip", "was", "set", "reason", "source"})


@dataclass(frozen=True)
class Fix:
    """One known annotation error of one clip.

    Parameters
    ----------
    dataset, subject, clip : str
        The clip (``subject`` without the ``"<dataset>/"`` prefix, e.g. ``"028"``).
    was, set : mapping of column -> value
        Erroneous and corrected values of the same columns.
    reason, source : str
        What is wrong, and where the correction comes from.
    """

    dataset: str
    subject: str
    clip: str
    was: Mapping[str, object]
    set: Mapping[str, object]
    reason: str
    source: str

    @property
    def table_subject(self) -> str:
        """Subject as written in a Sample table (``"SAMM/028"``)."""
        prefix = f"{self.dataset}/"
        return self.subject if self.subject.startswith(prefix) else prefix + self.subject

    @property
    def name(self) -> str:
        """``"SAMM/028/028_4_1"``."""
        return f"{self.table_subject}/{self.clip}"

    def describe(self) -> str:
        """``"apex 1143 -> 1113"``."""
        return ", ".join(f"{k} {self.was[k]!r} -> {self.set[k]!r}" for k in self.set)


def _check_entry(entry: object, i: int, where: str) -> Fix:
    at = f"{where} fix #{i + 1}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{at}: expected a table, got {type(entry).__name__}")
    missing = sorted(_KEYS - set(entry))
    extra = sorted(set(entry) - _KEYS)
    if missing or extra:
        raise ValueError(f"{at}: missing keys {missing}, unknown keys {extra}")
    for k in ("dataset", "subject", "clip", "reason", "source"):
        if not isinstance(entry[k], str) or not entry[k].strip():
            raise ValueError(f"{at}: {k!r} must be non-empty text, got {entry[k]!r}")
    at = f"{at} ({entry['dataset']}/{entry['subject']}/{entry['clip']})"
    was, new = entry["was"], entry["set"]
    if not isinstance(was, Mapping) or not isinstance(new, Mapping) or not new:
        raise ValueError(f"{at}: 'was' and 'set' must be tables of column = value")
    if set(was) != set(new):
        raise ValueError(
            f"{at}: 'was' and 'set' must name the same columns, got {sorted(was)} and {sorted(new)}"
        )
    if any(k in ("dataset", "subject") for k in new):
        raise ValueError(f"{at}: a fix cannot change the dataset or the subject")
    return Fix(
        dataset=entry["dataset"].strip(),
        subject=entry["subject"].strip(),
        clip=entry["clip"].strip(),
        was=MappingProxyType(dict(was)),
        set=MappingProxyType(dict(new)),
        reason=" ".join(entry["reason"].split()),
        source=" ".join(entry["source"].split()),
    )


def load_fixes(path: str | Path | None = None) -> tuple[Fix, ...]:
    """Read a fixes file (default: the ``fixes.toml`` shipped with merkit).

    Raises
    ------
    ValueError
        If an entry lacks a key, has unknown keys, or names a clip and column twice.
    """
    path = Path(path) if path is not None else FIXES_PATH
    with path.open("rb") as f:
        data = tomllib.load(f)
    entries = data.get("fix", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'fix' must be an array of tables ([[fix]])")
    fixes = tuple(_check_entry(e, i, str(path)) for i, e in enumerate(entries))
    seen: dict[tuple[str, str, str, str], int] = {}
    for i, fx in enumerate(fixes):
        for col in fx.set:
            key = (fx.dataset, fx.table_subject, fx.clip, col)
            if key in seen:
                raise ValueError(
                    f"{path}: fixes #{seen[key] + 1} and #{i + 1} both change {col!r} of {fx.name}"
                )
            seen[key] = i
    return fixes


def _norm(value: object) -> object:
    """Comparable form of a cell / TOML value (numbers as int/float, sequences as tuple)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return int(f) if f.is_integer() else f
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    return value


def _cell(value: object, like: object) -> object:
    """A TOML value as a cell of the column that held ``like``."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(like, tuple) and not isinstance(value, tuple):
        return (value,)
    return value


#: manifest that ``merkit synth`` writes at the top of a generated database folder
SYNTHETIC_MANIFEST = "synthetic.json"


def is_synthetic(path: str | Path, levels: int = 4) -> bool:
    """Whether ``path`` (a sheet or folder) lies in a database folder written by ``merkit
    synth`` (its manifest in the folder or one of its ``levels`` parents)."""
    p = Path(path).resolve()
    return any((d / SYNTHETIC_MANIFEST).is_file() for d in [p, *p.parents][: levels + 1])


def apply_fixes(
    table: pd.DataFrame,
    dataset: str | None = None,
    *,
    fixes: Iterable[Fix] | None = None,
    source: str | Path | None = None,
) -> pd.DataFrame:
    """Apply the known fixes of ``dataset`` to a Sample table.

    Parameters
    ----------
    table : DataFrame
        Sample table with ``dataset``, ``subject`` (``"<dataset>/<id>"``) and ``clip``.
    dataset : str, optional
        Only the fixes of this dataset (default: of every dataset in the table).
    fixes : iterable of Fix, optional
        Fixes to apply (default: :func:`load_fixes`).
    source : path, optional
        The sheet the table was read from; a sheet of a ``merkit synth`` database gets no
        fixes (they correct typos of the released sheets, which synthetic sheets do not
        copy; its clip names can still coincide with a fixed clip's).

    Returns
    -------
    DataFrame
        A copy with the fixes applied; ``attrs["fixes_applied"]`` lists them as text
        (``"SAMM/028/028_4_1: apex 1143 -> 1113"``).

    Raises
    ------
    SchemaError
        If a fix names a column the table lacks, or a clip that appears twice.
    """
    for c in ("dataset", "subject", "clip"):
        if c not in table.columns:
            raise SchemaError(f"apply_fixes: table lacks column {c!r}")
    if source is not None and is_synthetic(source):
        log.debug("%s is a merkit synth database: no sheet fixes", source)
        return table
    all_fixes = tuple(fixes) if fixes is not None else load_fixes()
    datasets = {dataset} if dataset is not None else set(table["dataset"].astype(str))
    out = table.copy()
    applied: list[str] = list(table.attrs.get("fixes_applied", []))
    subj = out["subject"].astype(str)
    clip = out["clip"].astype(str)
    dset = out["dataset"].astype(str)
    for fx in all_fixes:
        if fx.dataset not in datasets:
            continue
        hit = (dset == fx.dataset) & (subj == fx.table_subject) & (clip == fx.clip)
        n = int(hit.sum())
        if n == 0:
            log.debug("fix %s: clip not in the table (nothing to do)", fx.name)
            continue
        if n > 1:
            raise SchemaError(f"apply_fixes: clip {fx.name} appears {n} times in the table")
        absent = [c for c in fx.set if c not in out.columns]
        if absent:
            raise SchemaError(f"fix {fx.name}: the table has no column(s) {absent}")
        idx = out.index[hit.to_numpy()][0]
        current = {c: out.at[idx, c] for c in fx.set}
        now = {c: _norm(v) for c, v in current.items()}
        if all(now[c] == _norm(fx.set[c]) for c in fx.set):
            log.debug("fix %s: already corrected (%s)", fx.name, fx.describe())
            continue
        if not all(now[c] == _norm(fx.was[c]) for c in fx.set):
            log.warning(
                "fix %s not applied: the table has %s, the fix expects %s (a sheet version the "
                "fix was not written for?)",
                fx.name,
                {c: now[c] for c in fx.set},
                dict(fx.was),
            )
            continue
        for c, v in fx.set.items():
            numeric = pd.api.types.is_numeric_dtype(out[c])
            if (isinstance(v, list) and out[c].dtype != object) or (isinstance(v, str) and numeric):
                out[c] = out[c].astype(object)
            out.at[idx, c] = _cell(v, current[c])
        text = f"{fx.name}: {fx.describe()}"
        applied.append(text)
        log.info("applied fix %s (%s; source: %s)", text, fx.reason, fx.source)
    out.attrs = {**table.attrs, "fixes_applied": applied}
    return out


# ----------------------------------------------------------------------------------------
# positional fixes: corrections a peer library names by sheet row only
# ----------------------------------------------------------------------------------------

_ROW_KEYS = frozenset({"dataset", "row", "set", "swap_with", "columns", "guard", "reason",
                       "source"})  # fmt: skip
#: how a positional fix is protected from hitting the wrong row
ROW_GUARDS: tuple[str, ...] = ("frames", "opt-in")
#: values of the adapters' ``fixes=`` argument
FIX_MODES: tuple[object, ...] = (True, False, "all")


@dataclass(frozen=True)
class RowFix:
    """A correction known only by the sheet row it applies to (``[[row_fix]]`` of
    ``fixes.toml``).

    Parameters
    ----------
    dataset : str
        The dataset (``"CASME1"``).
    row : int
        0-based data row below the header, in sheet order: the index pandas (and meb)
        give the row when reading the sheet with its header on the first line.
    set : mapping of column -> value
        New values (empty for a swap).
    swap_with : int or None
        Another row whose ``columns`` are exchanged with this row's.
    columns : tuple of str
        Columns a swap exchanges.
    guard : {"frames", "opt-in"}
        ``"frames"``: applied only when the row's onset / apex / offset disagree with the
        clip's frame folder and the corrected values agree with it (see
        :func:`apply_row_fixes`). ``"opt-in"``: applied only when asked for
        (``fixes="all"``), with a warning naming both clips.
    reason, source : str
        What is wrong, and where the correction comes from.
    """

    dataset: str
    row: int
    set: Mapping[str, object]
    swap_with: int | None
    columns: tuple[str, ...]
    guard: str
    reason: str
    source: str

    @property
    def name(self) -> str:
        """``"CASME1 row 40"`` or ``"4DME rows 144 <-> 145"``."""
        if self.swap_with is not None:
            return f"{self.dataset} rows {self.row} <-> {self.swap_with}"
        return f"{self.dataset} row {self.row}"


def _check_row_entry(entry: object, i: int, where: str) -> RowFix:
    at = f"{where} row_fix #{i + 1}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{at}: expected a table, got {type(entry).__name__}")
    need = {"dataset", "row", "guard", "reason", "source"}
    missing = sorted(need - set(entry))
    extra = sorted(set(entry) - _ROW_KEYS)
    if missing or extra:
        raise ValueError(f"{at}: missing keys {missing}, unknown keys {extra}")
    for k in ("dataset", "reason", "source"):
        if not isinstance(entry[k], str) or not entry[k].strip():
            raise ValueError(f"{at}: {k!r} must be non-empty text, got {entry[k]!r}")
    row = entry["row"]
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise ValueError(f"{at}: 'row' must be a 0-based row number, got {row!r}")
    at = f"{at} ({entry['dataset']} row {row})"
    if entry["guard"] not in ROW_GUARDS:
        raise ValueError(f"{at}: 'guard' must be one of {ROW_GUARDS}, got {entry['guard']!r}")
    new = entry.get("set", {})
    swap = entry.get("swap_with")
    columns = entry.get("columns", [])
    if (not new) == (swap is None):
        raise ValueError(f"{at}: give either 'set' (column = value) or 'swap_with' and 'columns'")
    if not isinstance(new, Mapping) or any(k in ("dataset", "subject", "clip") for k in new):
        raise ValueError(f"{at}: 'set' must be a table of columns other than dataset/subject/clip")
    if swap is not None:
        if isinstance(swap, bool) or not isinstance(swap, int) or swap < 0 or swap == row:
            raise ValueError(f"{at}: 'swap_with' must be another 0-based row, got {swap!r}")
        if not columns or not all(isinstance(c, str) for c in columns):
            raise ValueError(f"{at}: a swap needs 'columns', a list of column names")
    if new and entry["guard"] == "frames" and not set(new) <= {"onset", "apex", "offset"}:
        raise ValueError(
            f"{at}: guard 'frames' checks onset/apex/offset only, 'set' has {sorted(new)}"
        )
    return RowFix(
        dataset=entry["dataset"].strip(),
        row=row,
        set=MappingProxyType(dict(new)),
        swap_with=swap,
        columns=tuple(columns),
        guard=entry["guard"],
        reason=" ".join(entry["reason"].split()),
        source=" ".join(entry["source"].split()),
    )


def load_row_fixes(path: str | Path | None = None) -> tuple[RowFix, ...]:
    """Read the ``[[row_fix]]`` entries of a fixes file (default: merkit's ``fixes.toml``).

    Raises
    ------
    ValueError
        If an entry lacks a key, has unknown keys, or a bad row, guard, set or swap.
    """
    path = Path(path) if path is not None else FIXES_PATH
    with path.open("rb") as f:
        data = tomllib.load(f)
    entries = data.get("row_fix", [])
    if not isinstance(entries, list):
        raise ValueError(f"{path}: 'row_fix' must be an array of tables ([[row_fix]])")
    return tuple(_check_row_entry(e, i, str(path)) for i, e in enumerate(entries))


def check_fix_mode(fixes: object) -> None:
    """Refuse a ``fixes=`` value other than ``True``, ``False`` or ``"all"``."""
    if not any(fixes is m or (isinstance(m, str) and fixes == m) for m in FIX_MODES):
        raise ValueError(
            f"fixes must be True (known fixes, positional ones under their guard), False (none) "
            f"or 'all' (also the opt-in positional fixes), got {fixes!r}"
        )


def _clip_name(table: pd.DataFrame, i: int) -> str:
    row = table.iloc[i]
    return f"{row['subject']}/{row['clip']}"


def _frames_agree(values: Mapping[str, object], nums: np.ndarray) -> bool:
    """onset and offset are the first and last frame of the folder, apex between them."""
    onset, apex, offset = (_norm(values[c]) for c in ("onset", "apex", "offset"))
    if onset != int(nums[0]) or offset != int(nums[-1]):
        return False
    return apex is None or (isinstance(apex, int) and onset <= apex <= offset)


def apply_row_fixes(
    table: pd.DataFrame,
    dataset: str,
    *,
    frames: Callable[[int], np.ndarray] | None = None,
    opt_in: bool = False,
    fixes: Iterable[RowFix] | None = None,
    source: str | Path | None = None,
) -> pd.DataFrame:
    """Apply the positional fixes of ``dataset`` to a table in sheet order, under guards.

    Parameters
    ----------
    table : DataFrame
        One row per data row of the sheet, in sheet order (row ``i`` is position ``i``),
        with ``subject`` and ``clip`` and the columns the fixes touch.
    dataset : str
        Only the fixes of this dataset.
    frames : callable, optional
        Position -> sorted frame numbers of that row's clip folder (for the ``"frames"``
        guard; without it such fixes are not applied, logged).
    opt_in : bool
        Apply the ``"opt-in"`` fixes too (``fixes="all"`` of the adapters).
    fixes : iterable of RowFix, optional
        Default: :func:`load_row_fixes`.
    source : path, optional
        The sheet; a ``merkit synth`` database gets no fixes (as :func:`apply_fixes`).

    Returns
    -------
    DataFrame
        A copy with the fixes applied; ``attrs["fixes_applied"]`` gains one line per applied
        fix naming the clip(s), e.g. ``"CASME1/01/EP01_5 (CASME1 row 40): onset 98 -> 100"``.

    Notes
    -----
    Guard ``"frames"`` (meb corrected these rows "based on the image folders"): a fix is
    applied only when (a) the row's onset / apex / offset disagree with its folder (onset
    or offset not its first or last frame, or apex outside [onset, offset]) and (b) with
    the ``set`` values they agree. A row that already agrees with its folder, a row whose
    folder the corrected values do not fit (another sheet version, rows in another order)
    and a row without frames are left alone, each with a warning. Guard ``"opt-in"``:
    nothing in the data can confirm the fix (a swap of label cells), so it is applied only
    when asked for, with a warning naming both clips and the values exchanged.
    """
    if source is not None and is_synthetic(source):
        log.debug("%s is a merkit synth database: no positional sheet fixes", source)
        return table
    chosen = [
        fx for fx in (fixes if fixes is not None else load_row_fixes()) if fx.dataset == dataset
    ]
    out = table.copy()
    applied: list[str] = list(table.attrs.get("fixes_applied", []))
    n = len(out)
    for fx in chosen:
        rows = [fx.row] if fx.swap_with is None else [fx.row, fx.swap_with]
        if max(rows) >= n:
            log.warning("positional fix %s not applied: the sheet has %d data rows", fx.name, n)
            continue
        cols = list(fx.set) if fx.swap_with is None else list(fx.columns)
        absent = [c for c in cols if c not in out.columns]
        if absent:
            raise SchemaError(f"positional fix {fx.name}: the table has no column(s) {absent}")
        if fx.guard == "opt-in":
            if not opt_in:
                log.info(
                    "positional fix %s (%s) is opt-in and was not applied: pass fixes='all' to "
                    "apply it",
                    fx.name,
                    fx.reason,
                )
                continue
            applied.extend(_swap(out, fx))
            continue
        applied.extend(_set_guarded(out, fx, frames))
    out.attrs = {**table.attrs, "fixes_applied": applied}
    return out


def _set_guarded(
    out: pd.DataFrame, fx: RowFix, frames: Callable[[int], np.ndarray] | None
) -> list[str]:
    i = fx.row
    clip = _clip_name(out, i)
    idx = out.index[i]
    current = {c: out.at[idx, c] for c in ("onset", "apex", "offset")}
    if all(_norm(current[c]) == _norm(v) for c, v in fx.set.items()):
        log.debug("positional fix %s (%s): already corrected", fx.name, clip)
        return []
    nums = frames(i) if frames is not None else np.zeros(0, dtype=np.int64)
    if nums.size == 0:
        log.warning(
            "positional fix %s not applied to %s: no frames to check it against", fx.name, clip
        )
        return []
    nums = np.sort(np.asarray(nums, dtype=np.int64))
    shown = {c: _norm(v) for c, v in current.items()}
    if _frames_agree(current, nums):
        log.warning(
            "positional fix %s not applied to %s: the row %s already agrees with its frames "
            "%d..%d (a sheet version or row order the fix was not written for?)",
            fx.name, clip, shown, nums[0], nums[-1],
        )  # fmt: skip
        return []
    new = {**current, **fx.set}
    if not _frames_agree(new, nums):
        log.warning(
            "positional fix %s not applied to %s: the fix %s does not fit its frames %d..%d "
            "either (row %s; a sheet version or row order the fix was not written for?)",
            fx.name, clip, dict(fx.set), nums[0], nums[-1], shown,
        )  # fmt: skip
        return []
    for c, v in fx.set.items():
        out.at[idx, c] = v
    text = f"{clip} ({fx.name}): " + ", ".join(
        f"{c} {shown[c]!r} -> {_norm(v)!r}" for c, v in fx.set.items()
    )
    log.info("applied positional fix %s (%s; source: %s)", text, fx.reason, fx.source)
    return [text]


def _swap(out: pd.DataFrame, fx: RowFix) -> list[str]:
    assert fx.swap_with is not None
    a, b = out.index[fx.row], out.index[fx.swap_with]
    name_a, name_b = _clip_name(out, fx.row), _clip_name(out, fx.swap_with)
    cols = list(fx.columns)
    old_a = {c: out.at[a, c] for c in cols}
    old_b = {c: out.at[b, c] for c in cols}
    if all(_norm(old_a[c]) == _norm(old_b[c]) for c in cols):
        log.warning("positional fix %s: %s and %s hold the same values, nothing to swap",
                    fx.name, name_a, name_b)  # fmt: skip
        return []
    for c in cols:
        out.at[a, c], out.at[b, c] = old_b[c], old_a[c]
    lines = []
    for name, old, new in ((name_a, old_a, old_b), (name_b, old_b, old_a)):
        lines.append(
            f"{name} ({fx.name}): "
            + ", ".join(
                f"{c} {_norm(old[c])!r} -> {_norm(new[c])!r}"
                for c in cols
                if c in ("emotion", "aus")
            )
        )
    log.warning(
        "applied opt-in positional fix %s, unchecked: swapped %s of %s and %s (%s; %s; source: %s)",
        fx.name, cols, name_a, name_b, "; ".join(lines), fx.reason, fx.source,
    )  # fmt: skip
    return lines
