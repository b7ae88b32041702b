"""Annotation agreement: Fleiss' kappa over many annotators and two-coder AU reliability.

Fleiss' kappa (Fleiss, Psychol. Bull. 1971, doi:10.1037/h0031619), written as in the DFME
paper (Zhao et al., IEEE TAFFC 2023, doi:10.1109/TAFFC.2023.3341918, eqs. 2-7). With
``N`` items (clips), ``n`` annotators per item, ``K`` categories and ``n_ij`` the number
of annotators who put item ``i`` in category ``j``:

* ``p_j = sum_i n_ij / (N n)``                                   (share of category j)
* ``P_i = (sum_j n_ij^2 - n) / (n (n - 1))``                     (agreeing pairs of item i)
* ``P_bar = mean_i P_i``, ``P_e = sum_j p_j^2``
* ``kappa = (P_bar - P_e) / (1 - P_e)``

The per-category kappa is Fleiss' ``kappa_j = 1 - sum_i n_ij (n - n_ij) /
(N n (n - 1) p_j (1 - p_j))``. :func:`kappa_band` gives the reading of Table 4 of the DFME
paper (Landis & Koch's bands): ``<= 0`` poor, ``(0, 0.2]`` slight, ``(0.2, 0.4]`` fair,
``(0.4, 0.6]`` moderate, ``(0.6, 0.8]`` substantial, ``(0.8, 1]`` almost perfect.

The AU reliability of two FACS coders (DFME eq. 1) is
``R = 2 |AU(A1) ∩ AU(A2)| / All_AU``, ``All_AU`` = the AUs coded by both coders together
(``|AU(A1)| + |AU(A2)|``); see :func:`au_reliability`.

Sheets for ``merkit agreement`` (:func:`read_agreement_sheet`), CSV (UTF-8 / GBK) or XLSX,
one row per item, an optional item-id column (header ``item``, ``clip``, ``sample``,
``id``, ``filename``, ``video`` or ``name``), in one of two formats:

``counts``
    one column per category (header = category name), cells = how many annotators chose
    it; every row has the same total (the number of annotators, >= 2).
``labels``
    one column per annotator (any header), cells = the category that annotator chose
    (a name or a code); blank cells are not allowed (Fleiss' kappa needs every annotator
    on every item).

``format="auto"`` reads ``counts`` when every cell is a whole number >= 0 and every row
has the same total >= 2, else ``labels``; the choice is logged and returned.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "BANDS",
    "FleissResult",
    "AgreementSheet",
    "au_reliability",
    "counts_from_labels",
    "fleiss",
    "fleiss_kappa",
    "kappa_band",
    "read_agreement_sheet",
]

#: (upper bound, reading) of the kappa interpretation bands (DFME Table 4, Landis & Koch)
BANDS: tuple[tuple[float, str], ...] = (
    (0.0, "poor agreement"),
    (0.20, "slight agreement"),
    (0.40, "fair agreement"),
    (0.60, "moderate agreement"),
    (0.80, "substantial agreement"),
    (1.0, "almost perfect agreement"),
)
#: headers read as the item-id column of an agreement sheet (case, spaces, punctuation ignored)
ID_HEADERS: frozenset[str] = frozenset(
    {"item", "items", "clip", "clips", "sample", "samples", "id", "itemid", "clipid",
     "filename", "file", "video", "name", "subject"}
)  # fmt: skip
SHEET_FORMATS = ("auto", "counts", "labels")


def _counts_matrix(counts) -> np.ndarray:
    m = np.asarray(counts, dtype=float)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"counts must be a 2-D (items, categories) table, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("counts must be finite numbers (found NaN or inf)")
    if (m < 0).any():
        raise ValueError("counts must be non-negative")
    if not np.allclose(m, np.round(m)):
        raise ValueError("counts must be whole numbers of annotators")
    raters = m.sum(axis=1)
    if not np.allclose(raters, raters[0]) or raters[0] < 2:
        bad = np.flatnonzero(~np.isclose(raters, raters[0]))[:10]
        where = f" (rows {bad.tolist()} differ from row 0)" if bad.size else ""
        raise ValueError(
            f"every item needs the same number (>= 2) of raters; got "
            f"{np.unique(raters)[:10].tolist()}{where}"
        )
    return m


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa of agreement between raters (e.g. annotators of emotion labels).

    Parameters
    ----------
    counts : array-like of shape (n_items, n_categories)
        ``counts[i, j]`` = number of raters who put item i in category j; every item
        must have the same number of raters (>= 2).

    Returns
    -------
    float
        Kappa (1 = perfect agreement, 0 = chance level). Fleiss, Psychol. Bull. 1971,
        doi:10.1037/h0031619.

    Raises
    ------
    ValueError
        For a malformed table, unequal rater numbers, or when every rating falls in one
        category (kappa is then 0/0).
    """
    return fleiss(counts).kappa


@dataclass(frozen=True)
class FleissResult:
    """Fleiss' kappa with the quantities of DFME eqs. 2-7.

    Attributes
    ----------
    kappa : float
        Eq. 7.
    p_j : ndarray (K,)
        Share of all assignments that went to each category (eq. 2).
    P_i : ndarray (N,)
        Agreement of each item: share of agreeing annotator pairs (eq. 4).
    P_bar, P_e : float
        Mean observed agreement (eq. 5) and chance agreement (eq. 6).
    kappa_j : ndarray (K,)
        Fleiss' per-category kappa (NaN for a category nobody, or everybody, chose).
    n_items, n_raters : int
    categories : tuple of str
        Category names (``"0"``, ``"1"``... when none were given).
    """

    kappa: float
    p_j: np.ndarray
    P_i: np.ndarray
    P_bar: float
    P_e: float
    kappa_j: np.ndarray
    n_items: int
    n_raters: int
    categories: tuple[str, ...]

    @property
    def band(self) -> str:
        """Reading of ``kappa`` (:func:`kappa_band`)."""
        return kappa_band(self.kappa)

    def per_category(self) -> pd.DataFrame:
        """One row per category: ``category``, ``share`` (p_j), ``kappa`` (kappa_j)."""
        return pd.DataFrame(
            {"category": list(self.categories), "share": self.p_j, "kappa": self.kappa_j}
        )


def fleiss(counts, categories: Sequence[str] | None = None) -> FleissResult:
    """Fleiss' kappa and its parts (DFME eqs. 2-7) from an item x category count table.

    Parameters
    ----------
    counts : array-like of shape (N, K)
        ``counts[i, j]`` = annotators who put item ``i`` in category ``j``; equal row sums
        ``n >= 2``.
    categories : sequence of str, optional
        Names of the K categories.

    Returns
    -------
    FleissResult
    """
    m = _counts_matrix(counts)
    n_items, k = m.shape
    if categories is None:
        categories = tuple(str(j) for j in range(k))
    categories = tuple(str(c) for c in categories)
    if len(categories) != k:
        raise ValueError(f"{len(categories)} category names for a table of {k} categories")
    n = float(m[0].sum())
    p_j = m.sum(axis=0) / (n_items * n)
    P_i = (np.sum(m * m, axis=1) - n) / (n * (n - 1))
    P_bar = float(P_i.mean())
    P_e = float(np.sum(p_j**2))
    if math.isclose(P_e, 1.0):
        raise ValueError("kappa undefined: every rating falls in one category")
    kappa = (P_bar - P_e) / (1 - P_e)
    q_j = p_j * (1 - p_j)
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa_j = 1 - np.sum(m * (n - m), axis=0) / (n_items * n * (n - 1) * q_j)
    kappa_j = np.where(q_j > 0, kappa_j, np.nan)
    return FleissResult(
        kappa=float(kappa),
        p_j=p_j,
        P_i=P_i,
        P_bar=P_bar,
        P_e=P_e,
        kappa_j=kappa_j,
        n_items=n_items,
        n_raters=int(round(n)),
        categories=categories,
    )


def kappa_band(kappa: float) -> str:
    """Reading of a kappa value (DFME Table 4): ``0.72`` -> ``"substantial agreement"``."""
    value = float(kappa)
    if math.isnan(value):
        raise ValueError("kappa is NaN: no reading")
    if value > 1.0 + 1e-12:
        raise ValueError(f"kappa {value} > 1 is impossible")
    for upper, reading in BANDS:
        if value <= upper + 1e-12:
            return reading
    return BANDS[-1][1]  # pragma: no cover - unreachable (value <= 1)


def _is_blank(value) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _category_text(value) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def counts_from_labels(
    labels, categories: Sequence | None = None, *, items: Sequence | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Item x category count table from per-annotator labels.

    Parameters
    ----------
    labels : array-like of shape (N, n)
        ``labels[i, r]`` = category annotator ``r`` chose for item ``i`` (names or codes;
        codes ``1`` and ``1.0`` are the same category).
    categories : sequence, optional
        All categories, in the order of the output columns (categories nobody chose still
        get a column). Default: the categories that occur, sorted (numerically if all are
        numbers).
    items : sequence, optional
        Item names, quoted in errors.

    Returns
    -------
    counts : ndarray of int64, shape (N, K)
    categories : tuple of str

    Raises
    ------
    ValueError
        For a blank label (naming the item and annotator) or a label not in ``categories``.
    """
    table = pd.DataFrame(np.asarray(labels, dtype=object))
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] < 2:
        raise ValueError(
            f"labels must be an (items, annotators) table with >= 2 annotators, got shape "
            f"{table.shape}"
        )
    names = list(items) if items is not None else [f"row {i + 1}" for i in range(len(table))]
    blanks = [
        f"{names[i]} (annotator {r + 1})"
        for i in range(table.shape[0])
        for r in range(table.shape[1])
        if _is_blank(table.iat[i, r])
    ]
    if blanks:
        more = f" (+{len(blanks) - 10} more)" if len(blanks) > 10 else ""
        raise ValueError(
            "Fleiss' kappa needs every annotator's label on every item; blank: "
            + ", ".join(blanks[:10])
            + more
        )
    text = table.map(_category_text)
    found = sorted(set(text.to_numpy().ravel()))
    if categories is None:
        if all(re.fullmatch(r"-?\d+", c) for c in found):
            found = sorted(found, key=int)
        cats = tuple(found)
    else:
        cats = tuple(_category_text(c) for c in categories)
        if len(set(cats)) != len(cats):
            raise ValueError(f"categories contain duplicates: {list(cats)}")
        unknown = sorted(set(found) - set(cats))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the categories {list(cats)}")
    index = {c: j for j, c in enumerate(cats)}
    counts = np.zeros((table.shape[0], len(cats)), dtype=np.int64)
    for i, row in enumerate(text.itertuples(index=False)):
        for value in row:
            counts[i, index[value]] += 1
    return counts, cats


def _au_set(value, *, sides: bool, context: str) -> frozenset:
    from merkit.data.labels import parse_aus

    if isinstance(value, (set, frozenset, list, tuple)) and not isinstance(value, str):
        if sides:
            return frozenset(
                (int(v[0]), str(v[1])) if isinstance(v, tuple) else (int(v), "") for v in value
            )
        return frozenset(int(v[0]) if isinstance(v, tuple) else int(v) for v in value)
    aus, au_sides, _ = parse_aus(value, context)
    if sides:
        return frozenset(zip(aus, au_sides, strict=True))
    return frozenset(aus)


def au_reliability(
    coder_a: Iterable,
    coder_b: Iterable,
    *,
    sides: bool = False,
    average: str = "pooled",
) -> float:
    """AU reliability of two FACS coders, ``R = 2 |AU(A1) ∩ AU(A2)| / All_AU`` (DFME eq. 1).

    Parameters
    ----------
    coder_a, coder_b : iterables of the same length
        Per clip, the AUs each coder gave: an AU string (``"4+L10"``, read by
        :func:`merkit.data.labels.parse_aus`) or a collection of AU numbers (or of
        ``(au, side)`` pairs).
    sides : bool
        Compare ``(AU, side)`` (``L10`` differs from ``10``) instead of AU numbers.
    average : {"pooled", "mean"}
        ``"pooled"``: ``2 * sum |A1 ∩ A2| / sum (|A1| + |A2|)`` over all clips (the
        database figure); ``"mean"``: mean of the per-clip R (clips neither coder gave an
        AU are left out, logged).

    Returns
    -------
    float in [0, 1]
    """
    if average not in ("pooled", "mean"):
        raise ValueError(f"average must be 'pooled' or 'mean', got {average!r}")
    a_list, b_list = list(coder_a), list(coder_b)
    if len(a_list) != len(b_list):
        raise ValueError(
            f"coder A coded {len(a_list)} clips, coder B {len(b_list)}: they must be the same"
        )
    if not a_list:
        raise ValueError("no clips to compare")
    both = np.zeros(len(a_list))
    total = np.zeros(len(a_list))
    for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
        sa = _au_set(a, sides=sides, context=f"coder A, clip {i + 1}")
        sb = _au_set(b, sides=sides, context=f"coder B, clip {i + 1}")
        both[i] = len(sa & sb)
        total[i] = len(sa) + len(sb)
    if total.sum() == 0:
        raise ValueError("neither coder gave any AU: reliability undefined")
    if average == "pooled":
        return float(2 * both.sum() / total.sum())
    coded = total > 0
    if not coded.all():
        log.info("AU reliability: %d clips without any AU left out", int((~coded).sum()))
    return float(np.mean(2 * both[coded] / total[coded]))


@dataclass(frozen=True)
class AgreementSheet:
    """An agreement sheet read by :func:`read_agreement_sheet`."""

    counts: np.ndarray
    categories: tuple[str, ...]
    items: tuple[str, ...]
    format: str
    source: str
    encoding: str


def _norm(value) -> str:
    return re.sub(r"[\W_]", "", str(value).casefold())


def _whole_numbers(frame: pd.DataFrame) -> np.ndarray | None:
    num = frame.apply(pd.to_numeric, errors="coerce")
    if num.isna().any().any():
        return None
    values = num.to_numpy(dtype=float)
    if (values < 0).any() or not np.allclose(values, np.round(values)):
        return None
    return values


def read_agreement_sheet(
    path: str | Path,
    *,
    format: str = "auto",
    id_column: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> AgreementSheet:
    """Read a per-item count sheet or a per-annotator label sheet (see the module doc).

    Parameters
    ----------
    path : path
        ``.csv`` / ``.tsv`` / ``.txt`` (UTF-8, UTF-8 with BOM or GBK, tried in that order)
        or ``.xlsx`` / ``.xls``.
    format : {"auto", "counts", "labels"}
    id_column : str, optional
        Header of the item-id column (default: the first column whose header is one of
        :data:`ID_HEADERS`, else none: items are numbered by row).
    sheet : str or int, optional
        Worksheet of an Excel file (default: the first).
    encoding : str, optional
        Text encoding of a CSV (default: detected).

    Returns
    -------
    AgreementSheet
    """
    from merkit.data.adapters.folder import read_table_file

    if format not in SHEET_FORMATS:
        raise ValueError(f"format must be one of {SHEET_FORMATS}, got {format!r}")
    path = Path(path)
    raw, used = read_table_file(path, sheet=sheet, encoding=encoding)
    raw = raw.dropna(how="all").dropna(axis=1, how="all")
    raw = raw.loc[:, [not all(_is_blank(v) for v in raw[c]) for c in raw.columns]]
    raw = raw.loc[[not all(_is_blank(v) for v in row) for row in raw.itertuples(index=False)]]
    if raw.shape[0] < 2:
        raise ValueError(f"{path}: expected a header row and at least one item row")
    header = [str(v).strip() if not _is_blank(v) else f"column {j + 1}"
              for j, v in enumerate(raw.iloc[0])]  # fmt: skip
    body = raw.iloc[1:].reset_index(drop=True)
    body.columns = range(body.shape[1])
    id_pos = None
    if id_column is not None:
        matches = [j for j, h in enumerate(header) if _norm(h) == _norm(id_column)]
        if not matches:
            raise ValueError(f"{path}: no column {id_column!r}; columns: {header}")
        id_pos = matches[0]
    else:
        for j, h in enumerate(header):
            if _norm(h) in ID_HEADERS:
                id_pos = j
                break
    if id_pos is not None:
        items = tuple(_category_text(v) for v in body[id_pos])
        value_cols = [j for j in range(len(header)) if j != id_pos]
    else:
        items = tuple(f"row {i + 2}" for i in range(len(body)))
        value_cols = list(range(len(header)))
    values = body[value_cols]
    names = [header[j] for j in value_cols]
    if len(value_cols) < 2:
        raise ValueError(
            f"{path}: need >= 2 category (counts) or annotator (labels) columns besides the "
            f"item id, found {names}"
        )
    chosen = format
    whole = _whole_numbers(values)
    if format == "auto":
        sums = whole.sum(axis=1) if whole is not None else None
        counts_like = sums is not None and np.allclose(sums, sums[0]) and sums[0] >= 2
        chosen = "counts" if counts_like else "labels"
        log.info("%s: read as a %s sheet (format='auto')", path.name, chosen)
    if chosen == "counts":
        if whole is None:
            bad = [
                f"{items[i]} ({names[c]}={values.iat[i, c]!r})"
                for i in range(values.shape[0])
                for c in range(values.shape[1])
                if pd.isna(pd.to_numeric(values.iat[i, c], errors="coerce"))
                or float(pd.to_numeric(values.iat[i, c], errors="coerce")) < 0
                or not float(pd.to_numeric(values.iat[i, c], errors="coerce")).is_integer()
            ]
            raise ValueError(
                f"{path}: a counts sheet needs whole numbers >= 0 in every category column; "
                f"bad cells: {', '.join(bad[:10])}"
            )
        sums = whole.sum(axis=1)
        odd = [f"{items[i]} ({int(s)})" for i, s in enumerate(sums) if s != sums[0]]
        if odd or sums[0] < 2:
            raise ValueError(
                f"{path}: every item needs the same number (>= 2) of annotators; row totals "
                f"differ from the first item's {int(sums[0])}: {', '.join(odd[:10])}"
            )
        counts = whole.astype(np.int64)
        categories = tuple(names)
    else:
        try:
            counts, categories = counts_from_labels(values.to_numpy(dtype=object), items=items)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
    return AgreementSheet(
        counts=counts,
        categories=categories,
        items=items,
        format=chosen,
        source=str(path),
        encoding=used,
    )
