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
"""

from __future__ import annotations

import logging
import numbers
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

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
