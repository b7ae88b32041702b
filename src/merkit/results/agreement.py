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
has the same total >= 2, and ``labels`` when the cells hold text, or whole numbers under
headers named like annotators (``r1``, ``A2``, ``coder 3``, ``annotator4``...). Any other
sheet of whole numbers is a counts sheet whose row totals differ: it is refused with the
rows named (never re-read as labels); ``format="labels"`` reads it as numeric category
codes. The choice is logged and returned.

Sheets that are not agreement sheets (a database's coding sheet, a list of clips and
labels, a FACS sheet) are refused with a :class:`ValueError` that names the file, what
is wrong and what an agreement sheet looks like. The rules:

* a value column whose *header* names frame numbers or timing (``onset``, ``apex``,
  ``offset``, ``frame``, ``fps``, ``duration`` in the header), action units (``AU``,
  ``Action Units``, ``FACS``), files or items (``Filename``, ``file``, ``path``,
  ``folder``, ``video``, ``clip``... besides the item-id column) or subjects
  (``Subject``, ``sub``, ``participant``) is not an annotator (all formats);
* in a labels reading, a column is not an annotator when most of its values are AU codes
  (``4+7``, ``AU12``, ``L1``, ``R4,5``; at least a tenth unambiguous: joined, prefixed
  or with a side or intensity letter), subject ids (``sub01``, ``s01``, ``spNO.1``), file
  or folder names (an extension such as ``.avi`` / ``.jpg`` or a path separator), or
  numbers no category code takes (fractions, or beyond :data:`MAX_CODE`: frame numbers,
  times), or when it holds more than :data:`MAX_CATEGORIES` different values;
* an annotation scheme is small: a sheet with more than :data:`MAX_CATEGORIES`
  categories, or with more than 20 whose once-used values make up a quarter or more of
  all labels (categories nearly as many as items, most used once), is refused;
* with 10 or more items, a column whose values repeat but share no category with any
  other column belongs to a different scheme (e.g. ``Estimated Emotion`` next to
  ``Objective Classes``), not to an annotator of the same one.
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

from merkit.data.adapters.folder import read_table_file
from merkit.data.labels import parse_aus

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
#: most categories an annotation scheme (and one annotator's column) may have
MAX_CATEGORIES = 50
#: largest number read as a category code; larger numbers are frame numbers, times...
MAX_CODE = 100
#: what an agreement sheet looks like (the end of every refusal)
SHEET_HELP = (
    "an agreement sheet has one row per item (plus an optional item-id column) and either "
    "one column per category holding how many annotators chose it (whole numbers, every "
    "row summing to the number of annotators) or one column per annotator holding the "
    f"category that annotator chose from one small scheme (at most {MAX_CATEGORIES} "
    "categories)"
)
_FRAME_HEADER = re.compile(r"onset|apex|offset|frame|fps|duration")
_AU_HEADERS = frozenset(
    {"au", "aus", "actionunit", "actionunits", "aucode", "aucodes", "facs", "facscode",
     "facscodes"}
)  # fmt: skip
_FILE_HEADERS = (ID_HEADERS - {"subject"}) | frozenset(
    {"filename", "filenames", "filepath", "path", "paths", "folder", "folders", "directory",
     "dir", "videoname", "clipname", "image", "images", "imagename"}
)  # fmt: skip
_SUBJECT_HEADERS = frozenset(
    {"subject", "subjects", "sub", "subj", "subjectid", "participant", "participants",
     "person", "spno"}
)  # fmt: skip
_ANNOTATOR_HEADER = re.compile(
    r"^[racjeo]\d+$|annotat|rater|coder|judge|observer|label+er|reviewer|expert|assessor"
    r"|标注|评分|打分|编码"
)
_AU_TOKEN = r"(?:au\s*)?[lrbtu]?\s*\d{1,2}[a-e]?\??"
_AU_CODE = re.compile(rf"^{_AU_TOKEN}(?:\s*[+,/&]\s*{_AU_TOKEN})*$", re.IGNORECASE)
_AU_MARK = re.compile(r"[+,/&]|^au|^[lrbtu]|\d[a-e]", re.IGNORECASE)
_SUBJECT_ID = re.compile(r"^(?:sub|subj|subject|s|spno\.?)[\s_.-]*\d+$", re.IGNORECASE)
_FILE_NAME = re.compile(
    r"[^\W\d][/\\]|[/\\][^\W\d]"  # a path separator next to a letter (not 1/2)
    r"|\.(?:avi|mp4|mov|mkv|wmv|mpe?g|jpe?g|png|bmp|tiff?|gif|mat|npy|npz|csv|tsv|xlsx?|txt"
    r"|json|h5|pth|flo)$",
    re.IGNORECASE,
)


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


def _quoted(names: Sequence[str], width: int = 40) -> str:
    """``'a', 'b'``: names quoted, each cut to ``width`` characters."""
    return ", ".join(
        repr(n if len(n) <= width else n[: width - 3] + "...") for n in map(str, names)
    )


def _header_problems(names: Sequence[str]) -> list[tuple[str, str]]:
    """``(header, what it holds)`` for the value columns whose header says "not an annotator"."""
    out = []
    for name in names:
        key = _norm(name)
        if _FRAME_HEADER.search(key):
            out.append((name, "frame numbers or timing"))
        elif key in _AU_HEADERS:
            out.append((name, "AU codes"))
        elif key in _SUBJECT_HEADERS:
            out.append((name, "subject ids"))
        elif key in _FILE_HEADERS:
            out.append((name, "file or item names"))
    return out


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _column_problem(cells: Sequence[str]) -> str | None:
    """What a labels column holds when it is not one annotator's categories, else None."""
    if not cells:
        return None
    share = lambda pattern: sum(bool(pattern.search(c)) for c in cells) / len(cells)  # noqa: E731
    if share(_AU_CODE) >= 0.8 and share(_AU_MARK) >= 0.1:
        return "AU codes"
    if share(_SUBJECT_ID) >= 0.8:
        return "subject ids"
    if share(_FILE_NAME) >= 0.5:
        return "file or folder names"
    numbers = [float(c) for c in cells if _is_number(c)]
    if len(numbers) >= 0.8 * len(cells) and any(
        abs(v) > MAX_CODE or not v.is_integer() for v in numbers
    ):
        return "numbers too large or fractional for category codes, e.g. frame numbers"
    distinct = len(set(cells))
    if distinct > MAX_CATEGORIES:
        return f"{distinct} different values, i.e. names, ids or free text"
    return None


def _scheme_problems(
    text: pd.DataFrame, names: Sequence[str], flagged: Iterable[int] = ()
) -> list[str]:
    """Why the labels of ``text`` (items x annotators, ``None`` = blank) are not one scheme.

    Columns in ``flagged`` (already refused for what they hold) count for the categories
    but are not compared for a shared scheme.
    """
    cells = [c for c in text.to_numpy(dtype=object).ravel() if isinstance(c, str)]
    tally = pd.Series(cells, dtype=object).value_counts()
    k, n_items = len(tally), text.shape[0]
    out = []
    if k > MAX_CATEGORIES:
        out.append(
            f"read as labels it has {k} categories over {n_items} items (an annotation scheme "
            f"has at most {MAX_CATEGORIES})"
        )
    else:
        once = int((tally == 1).sum())
        if k > 20 and once >= 0.25 * len(cells):
            out.append(
                f"read as labels it has {k} categories over {n_items} items, {once} of them "
                f"used only once ({once / len(cells):.0%} of the labels): values of single "
                "items, not a scheme"
            )
    kept = [j for j in range(text.shape[1]) if j not in set(flagged)]
    if n_items >= 10 and len(kept) >= 2:
        sets = {j: {c for c in text.iloc[:, j] if isinstance(c, str)} for j in kept}
        apart = [
            names[j]
            for j, own in sets.items()
            if own
            and len(own) <= n_items / 2
            and not own & set().union(*(o for i, o in sets.items() if i != j))
        ]
        if apart:
            out.append(
                f"column{'s' if len(apart) > 1 else ''} {_quoted(apart)} share no category "
                "with the other columns (different schemes, not annotators of one)"
            )
    return out


def _refusal(path: Path, problems: Sequence[str], header: Sequence[str]) -> ValueError:
    """The one-line error for a sheet that is not an agreement sheet."""
    note = ""
    if sum(_is_number(h) for h in header) >= len(header) / 2:
        note = " (its first row, read as the header, holds data: is the header row missing?)"
    return ValueError(f"{path}: not an agreement sheet{note}: {'; '.join(problems)}; {SHEET_HELP}")


def _not_annotators(found: Sequence[tuple[str, str]], what: str) -> str:
    groups: dict[str, list[str]] = {}
    for name, reason in found:
        groups.setdefault(reason, []).append(name)
    listed = ", ".join(f"{_quoted(cols)} ({reason})" for reason, cols in groups.items())
    return f"these columns are not {what}: {listed}"


def _totals_error(
    path: Path, whole: np.ndarray, items: Sequence[str], *, hint: bool
) -> ValueError | None:
    """Error for a counts table whose row totals differ (or are < 2), else None."""
    sums = whole.sum(axis=1).astype(np.int64)
    values, first, tally = np.unique(sums, return_index=True, return_counts=True)
    # the most common total (ties: the one seen first), the rows that differ from it
    common = int(values[np.lexsort((first, -tally))[0]])
    odd = [f"{items[i]} ({int(s)})" for i, s in enumerate(sums) if s != common]
    if not odd and common >= 2:
        return None
    more = f" (+{len(odd) - 10} more)" if len(odd) > 10 else ""
    if odd:
        listed = ", ".join(odd[:10])
        what = f"row totals differ from the most common total {common}: {listed}{more}"
    else:
        what = f"every row totals {common}"
    advice = (
        "; if each column is one annotator and the numbers are category codes, pass "
        "--format labels (format='labels')"
        if hint
        else ""
    )
    return ValueError(
        f"{path}: read as a counts sheet (whole numbers, one column per category), every item "
        f"needs the same number (>= 2) of annotators, but {what}{advice}"
    )


def _check_labels(
    path: Path, values: pd.DataFrame, names: Sequence[str], header: Sequence[str]
) -> None:
    """Refuse ``values`` as a labels sheet when its columns are not annotators of one scheme."""
    cells = values.to_numpy(dtype=object)
    text = pd.DataFrame(
        [[None if _is_blank(v) else _category_text(v) for v in row] for row in cells],
        dtype=object,
    )
    found, flagged = [], []
    for j, name in enumerate(names):
        problem = _column_problem([c for c in text.iloc[:, j] if c is not None])
        if problem is not None:
            found.append((name, problem))
            flagged.append(j)
    problems = [_not_annotators(found, "annotators")] if found else []
    problems += _scheme_problems(text, names, flagged)
    if problems:
        raise _refusal(path, problems, header)


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
    found = _header_problems(names)
    if found:
        what = "annotators" if format == "labels" else "annotators or categories"
        raise _refusal(path, [_not_annotators(found, what)], header)
    chosen = format
    whole = _whole_numbers(values)
    if format == "auto":
        if whole is not None and _totals_error(path, whole, items, hint=False) is None:
            chosen = "counts"
        elif whole is not None and not all(_ANNOTATOR_HEADER.search(_norm(h)) for h in names):
            # whole numbers under category-like headers: a counts sheet whose totals differ
            # (refused with the rows named); when no total is shared by half the rows, first
            # make sure the columns are not something else altogether (frame numbers...)
            sums = whole.sum(axis=1)
            if np.unique(sums, return_counts=True)[1].max() < len(sums) / 2:
                _check_labels(path, values, names, header)
            raise _totals_error(path, whole, items, hint=True)
        else:
            chosen = "labels"
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
        error = _totals_error(path, whole, items, hint=False)
        if error is not None:
            raise error
        if len(names) > MAX_CATEGORIES:
            raise _refusal(
                path,
                [
                    f"read as counts it has {len(names)} category columns (an annotation "
                    f"scheme has at most {MAX_CATEGORIES})"
                ],
                header,
            )
        counts = whole.astype(np.int64)
        categories = tuple(names)
    else:
        _check_labels(path, values, names, header)
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
