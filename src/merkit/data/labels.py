"""Action-unit strings and label schemes.

Action units
------------
:func:`parse_aus` turns the AU cell of a FACS coding sheet into sorted AU numbers
with their side and intensity, e.g. ``"4+L10"`` -> ``((4, 10), ("", "L"), ("", ""))``.
It reads every AU string of the real CASME II, SAMM, CAS(ME)^3 and DFME sheets.
Conventions (FACS 2002, and the SAMM sheet's symbol key):

* side prefix ``L`` / ``R``: unilateral (left / right side of the face);
  ``T`` / ``B``: top / bottom lip only (FACS scores lip AUs 8, 18, 22, 23, 24, 28
  on one lip this way, e.g. ``T28`` = upper-lip suck); ``A``: asymmetric (both sides,
  stronger on one; SAMM). The letter is kept in ``sides``.
* intensity suffix ``A``..``E`` (trace .. maximum), e.g. ``R12C``.
* ``AU``, ``AD`` (action descriptor, e.g. DFME ``AD38``) and ``M`` (movement code,
  e.g. ``M58``) prefixes are dropped: FACS numbers are unique across them.
* ``/`` inside a code means "or" (SAMM): ``10A/B`` -> intensity ``"A/B"``,
  ``A/L12`` -> side ``"A/L"``; the uncertain value is kept as written.
* ``X or Y`` (SAMM: ``(R6 or R12) + R15``): the coder was unsure which AU;
  ``alternatives="union"`` (default) keeps all of them, ``"first"`` the first one,
  ``"raise"`` refuses. Either way it is logged.
* ``ref(X)`` (SAMM) is read as AU X (the wrapper is logged); a trailing ``?``
  (CAS(ME)^3 ``13?``) marks an uncertain AU, which is kept (logged).
* separators ``+`` and ``,`` (CAS(ME)^3 part C, also the full-width ``，``); empty
  pieces from trailing separators (``14,L24,``) carry nothing and are skipped.
* a whole cell ``?`` / ``/`` / empty / NaN means "not coded": empty result, logged.
* ``soft focus`` (SAMM; an eye descriptor with no FACS number) is dropped, logged.
* an AU coded twice is merged: sides join in alphabetical order (``L12+R12`` -> AU 12
  side ``"LR"``), except that an unprefixed (bilateral) coding wins (``12+L12`` -> ``""``);
  the strongest intensity is kept (``""`` only if none is given).

Anything else raises :class:`ValueError` quoting the text and its context.

Label schemes
-------------
A :class:`LabelScheme` maps ``(dataset family, native emotion)`` to a class or to
``None`` (dropped on purpose). :func:`apply_scheme` adds ``label`` and ``y``, drops the
excluded rows, logs and records (``table.attrs["dropped"]``) how many per emotion, and
raises for an emotion the scheme does not know. The dataset family is the part of the
dataset name before the first ``_`` (``SMIC_HS`` -> ``SMIC``).

Multi-label clips (4DME codes some clips with two labels: Emotion ``negative+surprise``,
``emotions`` ``("negative", "surprise")``) have no single class: every scheme here is
single-label, so :func:`apply_scheme` drops such a clip whatever its labels map to, counts
it under its Emotion text in ``attrs["dropped"]`` and in ``attrs["multi_label_dropped"]``
and logs the count. Each of its labels must still be known to the scheme (else the usual
error naming the clips). A scheme that maps the combined text itself (a key
``("4DME", "negative+surprise")``) is followed instead; none of the shipped schemes does.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from merkit.data.schema import SchemaError

log = logging.getLogger(__name__)

#: side prefixes: Left, Right, Top lip, Bottom lip, Asymmetric
AU_SIDES: tuple[str, ...] = ("L", "R", "T", "B", "A")
#: FACS intensity letters, weakest first
AU_INTENSITIES: tuple[str, ...] = ("A", "B", "C", "D", "E")
#: codes without a FACS number that appear in real sheets; dropped with a log message
NON_AU_CODES: Mapping[str, str] = {"SOFT FOCUS": "eye-gaze descriptor without a FACS number"}
#: whole-cell markers meaning "AUs not coded"
UNKNOWN_MARKERS: frozenset[str] = frozenset({"", "?", "/"})

_ATOM = re.compile(
    r"^(?:AU-?|AD|M)?"
    r"(?P<side>[LRTBA](?:/[LRTBA])*)?"
    r"(?P<num>\d+)(?:\.0+)?"
    r"(?P<intensity>[A-E](?:/[A-E])*)?"
    r"(?P<unsure>\?)?$"
)
_REF = re.compile(r"^REF\s*\((?P<inner>.*)\)$")
_OR = re.compile(r"\s+OR\s+")

AUParse = tuple[tuple[int, ...], tuple[str, ...], tuple[str, ...]]


def _where(context: str | None) -> str:
    return f" ({context})" if context else ""


def _strip_parens(term: str) -> str:
    while term.startswith("(") and term.endswith(")"):
        term = term[1:-1].strip()
    return term


def _parse_atom(atom: str, text: object, context: str | None) -> tuple[int, str, str]:
    ref = _REF.match(atom)
    if ref:
        log.info("AU %r%s: read ref(...) as the AU it wraps", text, _where(context))
        atom = _strip_parens(ref.group("inner").strip())
    compact = re.sub(r"\s+", "", atom)
    m = _ATOM.match(compact)
    if not m:
        raise ValueError(
            f"cannot parse action units {text!r}{_where(context)}: token {atom!r} is not an "
            "AU code (expected e.g. '12', 'L4', 'R12C', 'T28', 'AU 6', 'AD38')"
        )
    if m.group("unsure"):
        log.info("AU %r%s: uncertain AU %s kept", text, _where(context), m.group("num"))
    au = int(m.group("num"))
    if au <= 0:
        raise ValueError(f"cannot parse action units {text!r}{_where(context)}: AU {au} <= 0")
    return au, m.group("side") or "", m.group("intensity") or ""


def _merge_side(sides: list[str]) -> str:
    if "" in sides:
        return ""
    return "".join(sorted(set(sides)))


def _intensity_rank(value: str) -> int:
    return max((AU_INTENSITIES.index(c) + 1 for c in value if c in AU_INTENSITIES), default=0)


def _merge_intensity(values: list[str]) -> str:
    return max(values, key=_intensity_rank)


def parse_aus(text: object, context: str | None = None, *, alternatives: str = "union") -> AUParse:
    """Parse an AU cell of a FACS coding sheet.

    Parameters
    ----------
    text : str, int, float or None
        The cell: ``"4+L10"``, ``"R12C"``, ``"T28+14"``, ``"4,7"``, ``12``, ``12.0``, ``"?"``.
    context : str, optional
        Where the text comes from (file, row, clip), quoted in messages.
    alternatives : {"union", "first", "raise"}
        What to do with ``"X or Y"`` codings (see the module docstring).

    Returns
    -------
    aus : tuple of int
        Sorted, unique AU numbers.
    sides, intensities : tuple of str
        Side prefix and intensity letter per AU (``""`` when not given).

    Raises
    ------
    ValueError
        If any token is not an AU code; the message quotes the text and ``context``.
    """
    if alternatives not in ("union", "first", "raise"):
        raise ValueError(f"alternatives must be 'union', 'first' or 'raise', got {alternatives!r}")
    if text is None or text is pd.NA or (isinstance(text, float) and math.isnan(text)):
        log.info("AU cell empty%s: no AUs", _where(context))
        return (), (), ()
    if isinstance(text, bool):
        raise ValueError(f"cannot parse action units {text!r}{_where(context)}: a boolean")
    if isinstance(text, numbers.Number):
        value = float(text)
        if not value.is_integer() or value <= 0:
            raise ValueError(
                f"cannot parse action units {text!r}{_where(context)}: "
                "a number that is not a positive whole AU number"
            )
        return (int(value),), ("",), ("",)
    if not isinstance(text, str):
        raise ValueError(
            f"cannot parse action units {text!r}{_where(context)}: "
            f"expected text or a number, got {type(text).__name__}"
        )
    norm = unicodedata.normalize("NFKC", text).strip().upper()
    if norm in UNKNOWN_MARKERS:
        log.warning("AU cell %r%s means 'not coded': no AUs", text, _where(context))
        return (), (), ()

    found: list[tuple[int, str, str]] = []
    for raw_term in re.split(r"[+,]", norm):
        term = _strip_parens(raw_term.strip())
        if not term:
            continue
        if term in NON_AU_CODES:
            log.warning(
                "AU %r%s: dropped %r (%s)", text, _where(context), term.lower(), NON_AU_CODES[term]
            )
            continue
        options = [_strip_parens(o.strip()) for o in _OR.split(term)]
        atoms = [_parse_atom(o, text, context) for o in options]
        if len(atoms) > 1:
            if alternatives == "raise":
                raise ValueError(
                    f"action units {text!r}{_where(context)}: {term!r} gives alternatives "
                    "(alternatives='raise')"
                )
            if alternatives == "first":
                atoms = atoms[:1]
            log.info(
                "AU %r%s: alternatives %r, kept %s",
                text,
                _where(context),
                term,
                [a[0] for a in atoms],
            )
        found.extend(atoms)

    if not found:
        log.warning("AU cell %r%s holds no AU: no AUs", text, _where(context))
        return (), (), ()
    merged: dict[int, tuple[list[str], list[str]]] = {}
    for au, side, intensity in found:
        sides, intensities = merged.setdefault(au, ([], []))
        sides.append(side)
        intensities.append(intensity)
    aus = tuple(sorted(merged))
    return (
        aus,
        tuple(_merge_side(merged[a][0]) for a in aus),
        tuple(_merge_intensity(merged[a][1]) for a in aus),
    )


def au_onehot(table: pd.DataFrame, aus: Iterable[int] | None = None) -> pd.DataFrame:
    """One 0/1 column ``AU<n>`` per action unit, one row per clip.

    Parameters
    ----------
    table : DataFrame
        Sample table with the ``aus`` column.
    aus : iterable of int, optional
        AUs to encode (default: every AU that occurs, sorted).

    Returns
    -------
    DataFrame of int8, same index as ``table``.
    """
    rows = [tuple(v) if isinstance(v, (tuple, list)) else () for v in table["aus"]]
    wanted = sorted(set(aus) if aus is not None else {a for r in rows for a in r})
    col = {a: j for j, a in enumerate(wanted)}
    mat = np.zeros((len(rows), len(wanted)), dtype=np.int8)
    for i, r in enumerate(rows):
        for a in r:
            if a in col:
                mat[i, col[a]] = 1
    return pd.DataFrame(mat, index=table.index, columns=[f"AU{a}" for a in wanted])


#: the 12 AUs of the DFME AU-detection task (Zhao et al. 2023, Sec. 4.1, after CD6ME)
AU12: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17)
#: named AU sets for multi-label (AU detection) tasks
AU_SETS: dict[str, tuple[int, ...]] = {"au12": AU12}
AU_SIDE_MODES: tuple[str, ...] = ("any", "bilateral", "unilateral")


def au_labels(
    table: pd.DataFrame, aus: str | Iterable[int] = AU12, *, side: str = "any"
) -> tuple[np.ndarray, list[str]]:
    """Multi-hot AU targets of an AU-detection task (e.g. the DFME ``au12`` task).

    AU detection is multi-label, not a class scheme: every clip gets one 0/1 entry per AU
    instead of one class, so this returns an array rather than adding ``label`` / ``y``.
    The table keeps the sides (``au_sides``) and intensities; they are not lost here.

    Parameters
    ----------
    table : DataFrame
        Sample table with ``aus`` (and ``au_sides`` unless ``side="any"``).
    aus : str or iterable of int
        A name in :data:`AU_SETS` (``"au12"``) or AU numbers, in output column order.
    side : {"any", "bilateral", "unilateral"}
        ``"any"`` (default, the DFME task): an AU coded on one half of the face (``L12``,
        ``R12``) or one lip (``T``/``B``) or asymmetrically (``A``) counts as the AU.
        ``"bilateral"``: only codings without a side prefix count. ``"unilateral"``: only
        codings with a side prefix count (e.g. ``L/R-AU12``, the DFME contempt cue).

    Returns
    -------
    Y : ndarray of int8, shape (n_clips, n_aus)
    names : list of str
        ``["AU1", "AU2", ...]``.
    """
    if isinstance(aus, str):
        try:
            aus = AU_SETS[aus.lower()]
        except KeyError:
            raise KeyError(f"unknown AU set {aus!r}; known: {sorted(AU_SETS)}") from None
    wanted = [int(a) for a in aus]
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"aus must be distinct AU numbers, got {wanted}")
    if side not in AU_SIDE_MODES:
        raise ValueError(f"side must be one of {AU_SIDE_MODES}, got {side!r}")
    if "aus" not in table.columns:
        raise SchemaError("au_labels: table lacks the 'aus' column")
    names = [f"AU{a}" for a in wanted]
    if side == "any":
        return au_onehot(table, wanted)[names].to_numpy(dtype=np.int8), names
    if "au_sides" not in table.columns:
        raise SchemaError(f"au_labels(side={side!r}): table lacks the 'au_sides' column")
    col = {a: j for j, a in enumerate(wanted)}
    Y = np.zeros((len(table), len(wanted)), dtype=np.int8)
    for i, (row_aus, row_sides) in enumerate(zip(table["aus"], table["au_sides"], strict=True)):
        row_aus = tuple(row_aus) if isinstance(row_aus, (tuple, list)) else ()
        row_sides = tuple(row_sides) if isinstance(row_sides, (tuple, list)) else ()
        if len(row_sides) != len(row_aus):
            raise SchemaError(
                f"au_labels: row {i} has {len(row_aus)} AUs but {len(row_sides)} sides"
            )
        for a, sd in zip(row_aus, row_sides, strict=True):
            if a in col and (sd == "") == (side == "bilateral"):
                Y[i, col[a]] = 1
    return Y, names


# ----------------------------------------------------------------------------------------
# label schemes
# ----------------------------------------------------------------------------------------


#: suffixes naming a camera or a part of one database (``SMIC_HS``, ``CASME3_A``)
FAMILY_SUFFIXES: frozenset[str] = frozenset({"HS", "VIS", "NIR", "A", "C"})


def dataset_family(dataset: str) -> str:
    """Database family of a dataset name: ``"SMIC_HS"`` -> ``"SMIC"``, ``"CASME3_A"`` ->
    ``"CASME3"``; any other name is its own family (``"CASME2"``, ``"CASME_SQ"``)."""
    name = str(dataset).strip().upper()
    head, sep, tail = name.rpartition("_")
    return head if sep and tail in FAMILY_SUFFIXES else name


@dataclass(frozen=True)
class LabelScheme:
    """A mapping from native emotions to the classes of a protocol.

    Parameters
    ----------
    name : str
        Registry name (``"cdmer3"``).
    classes : tuple of str
        Class names; ``y`` is the index into this tuple.
    mapping : mapping of (family, emotion) to str or None
        Dataset family (upper case, see :func:`dataset_family`) and native emotion
        (lower case) to a class, or to ``None`` for rows dropped on purpose.
    description : str
        One line on where the scheme comes from.
    """

    name: str
    classes: tuple[str, ...]
    mapping: Mapping[tuple[str, str], str | None]
    description: str = ""
    _families: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.mapping.items() if v is not None and v not in self.classes}
        if bad:
            raise ValueError(f"scheme {self.name!r} maps to classes not in {self.classes}: {bad}")
        object.__setattr__(self, "_families", frozenset(f for f, _ in self.mapping))

    @classmethod
    def from_groups(
        cls,
        name: str,
        classes: tuple[str, ...],
        groups: Mapping[str, Mapping[str, Iterable[str]]],
        excluded: Mapping[str, Iterable[str]],
        description: str = "",
    ) -> LabelScheme:
        """Build a scheme from ``{family: {class: emotions}}`` and ``{family: excluded}``."""
        mapping: dict[tuple[str, str], str | None] = {}
        for fam, per_class in groups.items():
            for cls_name, emotions in per_class.items():
                for e in emotions:
                    mapping[(fam.upper(), e.lower())] = cls_name
        for fam, emotions in excluded.items():
            for e in emotions:
                key = (fam.upper(), e.lower())
                if key in mapping:
                    raise ValueError(f"scheme {name!r}: {key} is both mapped and excluded")
                mapping[key] = None
        return cls(name=name, classes=tuple(classes), mapping=mapping, description=description)

    @property
    def families(self) -> frozenset[str]:
        """Dataset families the scheme covers."""
        return self._families

    def label_of(self, dataset: str, emotion: str) -> str | None:
        """Class of one clip (``None``: excluded). Raises ``KeyError`` if unknown."""
        return self.mapping[(dataset_family(dataset), str(emotion).strip().lower())]


_SMIC_AS_IS = {"negative": ["negative"], "positive": ["positive"], "surprise": ["surprise"]}
_THREE = ("negative", "positive", "surprise")
#: CASME I emotions (Yan et al., FG 2013) as the sheet writes them, lower case
CASME1_EMOTIONS: tuple[str, ...] = (
    "tense", "repression", "disgust", "surprise", "happiness", "fear", "sadness", "contempt",
)  # fmt: skip
#: the 4 CASME I classes of the usual CASME I experiments (the other emotions have too few
#: clips to be classes of their own)
CASME1_4: tuple[str, ...] = ("disgust", "repression", "surprise", "tense")
#: 4DME's 5 labels (Li et al., IEEE TAFFC 2022), in the order of its sheet's emotion columns
FOURD5: tuple[str, ...] = ("positive", "negative", "surprise", "repression", "others")
#: the seven DFME emotions in the order of the sheets' EmotionId (0..6)
DFME7: tuple[str, ...] = (
    "anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise",
)  # fmt: skip

SCHEMES: dict[str, LabelScheme] = {
    s.name: s
    for s in (
        LabelScheme.from_groups(
            "cdmer3",
            _THREE,
            {
                "CASME2": {
                    "negative": ["disgust", "sadness", "fear"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                },
                "SMIC": _SMIC_AS_IS,
            },
            {"CASME2": ["repression", "others"]},
            "CDMER benchmark (Zong et al., 'Cross-database micro-expression recognition: a "
            "benchmark'): labels 1/2/3 = negative/positive/surprise",
        ),
        LabelScheme.from_groups(
            "cdmer3_tsrg",
            _THREE,
            {
                "CASME2": {
                    "negative": ["disgust", "repression"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                },
                "SMIC": _SMIC_AS_IS,
            },
            {"CASME2": ["sadness", "fear", "others"]},
            "TSRG (Zong et al., 'Learning a target sample re-generator for cross-database "
            "micro-expression recognition', ACM MM 2017): CASME II negative = disgust + repression",
        ),
        LabelScheme.from_groups(
            "megc3",
            _THREE,
            {
                "CASME2": {
                    "negative": ["disgust", "repression"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                },
                "SAMM": {
                    "negative": ["anger", "contempt", "disgust", "fear", "sadness"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                },
                "SMIC": _SMIC_AS_IS,
                "CASME1": {
                    "negative": ["disgust", "repression", "fear", "sadness", "contempt"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                },
                "4DME": {
                    "negative": ["negative", "repression"],
                    "positive": ["positive"],
                    "surprise": ["surprise"],
                },
            },
            {
                "CASME2": ["sadness", "fear", "others"],
                "SAMM": ["other", "others"],
                "CASME1": ["tense"],
                "4DME": ["others"],
            },
            "MEGC2019 composite (CDE) emotion mapping of CASME II, SAMM and SMIC; the official "
            "list also leaves out CASME II sub04/EP12_01f and sub05/EP09_05f. Extended by "
            "merkit (not part of MEGC2019) with the same rules: CASME I (Yan et al., FG 2013) "
            "repression -> negative as CASME II's, disgust/fear/sadness/contempt -> negative as "
            "SAMM's, tense dropped (no valence, like CASME II's others); 4DME (Li et al., IEEE "
            "TAFFC 2022) repression -> negative, others dropped, multi-label clips dropped",
        ),
        LabelScheme.from_groups(
            "casme2_5",
            ("happiness", "surprise", "disgust", "repression", "others"),
            {
                "CASME2": {
                    e: [e] for e in ("happiness", "surprise", "disgust", "repression", "others")
                }
            },
            {"CASME2": ["sadness", "fear"]},
            "CASME II 5 classes (Yan et al. 2014, doi:10.1371/journal.pone.0086041)",
        ),
        LabelScheme.from_groups(
            "four_class",
            ("negative", "positive", "surprise", "others"),
            {
                "CASME2": {
                    "negative": ["disgust", "sadness", "fear"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                    "others": ["repression", "others"],
                },
                "SAMM": {
                    "negative": ["anger", "contempt", "disgust", "fear", "sadness"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                    "others": ["other", "others"],
                },
                "CASME1": {
                    "negative": ["disgust", "sadness", "fear", "contempt"],
                    "positive": ["happiness"],
                    "surprise": ["surprise"],
                    "others": ["repression", "tense"],
                },
                "4DME": {
                    "negative": ["negative"],
                    "positive": ["positive"],
                    "surprise": ["surprise"],
                    "others": ["repression", "others"],
                },
            },
            {},
            "4 classes of the single-database experiments of FR (Zhou et al., Pattern "
            "Recognition 2022, doi:10.1016/j.patcog.2021.108275, Table 12): CASME II 7-emotion "
            "version (disgust, sadness, fear -> negative; repression, others -> others) and "
            "SAMM (anger, contempt, disgust, fear, sadness -> negative); no clip is dropped. "
            "Extended by merkit (not in FR) with the same rules: CASME I disgust, sadness, fear, "
            "contempt -> negative, repression and tense -> others; 4DME repression and others "
            "-> others; only 4DME's multi-label clips are dropped",
        ),
        LabelScheme.from_groups(
            "dfme7",
            DFME7,
            {"DFME": {e: [e] for e in DFME7}},
            {"DFME": ["others"]},
            "DFME 7 emotions (Zhao et al., IEEE TAFFC 2023, doi:10.1109/TAFFC.2023.3341918); "
            "'others' excluded; y = the sheets' EmotionId (classes in alphabetical order)",
        ),
        LabelScheme.from_groups(
            "casme1_4",
            CASME1_4,
            {"CASME1": {e: [e] for e in CASME1_4}},
            {"CASME1": ["happiness", "fear", "sadness", "contempt"]},
            "CASME I 4 classes (database: Yan et al., FG 2013, doi:10.1109/FG.2013.6553799; "
            "the 4-class setting of CASME I experiments, e.g. Wang et al., IEEE TIP 2015, "
            "doi:10.1109/TIP.2015.2496314): disgust, repression, surprise, tense; happiness, "
            "fear, sadness and contempt excluded (too few clips for a class)",
        ),
        LabelScheme.from_groups(
            "fourd5",
            FOURD5,
            {"4DME": {e: [e] for e in FOURD5}},
            {},
            "4DME 5 labels (Li et al., '4DME: a spontaneous 4D micro-expression dataset with "
            "multimodalities', IEEE TAFFC 2022): positive, negative, surprise, repression, "
            "others; a multi-label clip (e.g. negative+surprise) is dropped, counted and logged "
            "(its labels stay in the table's 'emotions' column)",
        ),
    )
}


def get_scheme(name: str | LabelScheme) -> LabelScheme:
    """The registered scheme called ``name`` (a :class:`LabelScheme` passes through)."""
    if isinstance(name, LabelScheme):
        return name
    try:
        return SCHEMES[name]
    except KeyError:
        raise KeyError(f"unknown label scheme {name!r}; known: {sorted(SCHEMES)}") from None


def apply_scheme(table: pd.DataFrame, scheme: str | LabelScheme) -> pd.DataFrame:
    """Label a Sample table with a scheme.

    Parameters
    ----------
    table : DataFrame
        Sample table (``dataset``, ``subject``, ``clip``, ``emotion``).
    scheme : str or LabelScheme
        Registry name (see :data:`SCHEMES`) or a scheme.

    Returns
    -------
    DataFrame
        The kept rows (original order, fresh index) with ``label`` (class name) and ``y``
        (int64 index into ``scheme.classes``). ``attrs`` holds ``scheme``, ``classes`` and
        ``dropped`` = ``{dataset: {emotion: count}}`` of the rows the scheme excludes
        (also logged); ``multi_label_dropped`` the same for the multi-label clips among
        them (see the module docstring).

    Raises
    ------
    SchemaError
        If an emotion (or a whole dataset family) is unknown to the scheme; the message
        names the clips.
    """
    scheme = get_scheme(scheme)
    for c in ("dataset", "emotion"):
        if c not in table.columns:
            raise SchemaError(f"apply_scheme({scheme.name!r}): table lacks column {c!r}")
    datasets = table["dataset"].astype(str).tolist()
    emotions = [str(e).strip().lower() for e in table["emotion"]]
    keys = [(dataset_family(d), e) for d, e in zip(datasets, emotions, strict=True)]
    parts = _label_parts(table, emotions)
    # a multi-label clip (unless the scheme maps its combined Emotion text): known when
    # each of its labels is known
    multi = [
        len(p) > 1 and not ("+" in k[1] and k in scheme.mapping)
        for p, k in zip(parts, keys, strict=True)
    ]
    unknown = [
        i
        for i, k in enumerate(keys)
        if (not multi[i] and k not in scheme.mapping)
        or (multi[i] and any((k[0], e) not in scheme.mapping for e in parts[i]))
    ]
    if unknown:
        names = []
        for i in unknown[:10]:
            row = table.iloc[i]
            names.append(
                f"{row.get('dataset')}/{row.get('subject')}/{row.get('clip')} "
                f"(emotion {emotions[i]!r})"
            )
        more = f" (+{len(unknown) - 10} more)" if len(unknown) > 10 else ""
        pairs = sorted(
            {
                (keys[i][0], e)
                for i in unknown
                for e in parts[i]
                if (keys[i][0], e) not in scheme.mapping
            }
            | {keys[i] for i in unknown if not multi[i]}
        )
        raise SchemaError(
            f"label scheme {scheme.name!r} does not know {pairs} (it covers families "
            f"{sorted(scheme.families)}); clips: {', '.join(names)}{more}"
        )
    labels = [None if m else scheme.mapping[k] for k, m in zip(keys, multi, strict=True)]
    keep = np.array([lab is not None for lab in labels], dtype=bool)
    dropped: dict[str, dict[str, int]] = {}
    multi_dropped: dict[str, dict[str, int]] = {}
    for d, e, k, m in zip(datasets, emotions, keep, multi, strict=True):
        if not k:
            per = dropped.setdefault(d, {})
            per[e] = per.get(e, 0) + 1
        if m:
            per = multi_dropped.setdefault(d, {})
            per[e] = per.get(e, 0) + 1
    for d, per in multi_dropped.items():
        log.warning(
            "scheme %s: dropped %d multi-label %s clips (%s): a single-label scheme has no "
            "one class for them (their labels stay in the 'emotions' column)",
            scheme.name,
            sum(per.values()),
            d,
            ", ".join(f"{e} {n}" for e, n in sorted(per.items())),
        )
    for d, per in dropped.items():
        n_d = sum(1 for x in datasets if x == d)
        detail = ", ".join(f"{e} {n}" for e, n in sorted(per.items()))
        log.info(
            "scheme %s: dropped %d of %d %s rows (%s)",
            scheme.name,
            sum(per.values()),
            n_d,
            d,
            detail,
        )
    out = table.loc[keep].copy()
    kept = [lab for lab in labels if lab is not None]
    out["label"] = kept
    out["y"] = np.array([scheme.classes.index(lab) for lab in kept], dtype=np.int64)
    out = out.reset_index(drop=True)
    out.attrs = {
        **table.attrs,
        "scheme": scheme.name,
        "classes": scheme.classes,
        "dropped": dropped,
        "multi_label_dropped": multi_dropped,
    }
    return out


def _label_parts(table: pd.DataFrame, emotions: list[str]) -> list[tuple[str, ...]]:
    """The labels of each row: the ``emotions`` tuple when it holds several (4DME), else
    the Emotion text split at ``+`` (``"negative+surprise"`` -> two labels)."""
    tuples = table["emotions"].tolist() if "emotions" in table.columns else [()] * len(table)
    out: list[tuple[str, ...]] = []
    for text, labs in zip(emotions, tuples, strict=True):
        from_text = tuple(p.strip() for p in text.split("+") if p.strip())
        from_tuple = (
            tuple(str(x).strip().lower() for x in labs) if isinstance(labs, (tuple, list)) else ()
        )
        out.append(from_tuple if len(from_tuple) > len(from_text) else from_text)
    return out
