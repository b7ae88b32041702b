"""Label statistics of a coded database, in the form of the DFME paper's Tables 5-7.

Every function takes a Sample table (:mod:`merkit.data.schema`; e.g. from
:func:`merkit.data.coded.load_coded`) of **one** database and returns a pandas table:

* :func:`au_distribution` (DFME Table 5): how often each AU label occurs. As in the
  paper, an AU coded on one half of the face (``L12``, ``R14``; also ``L12+R12``) is its
  own label ``L/R-AU12``, counted apart from the bilateral ``AU12``; other side codes
  (``T``/``B`` lip, ``A`` asymmetric, SAMM) are kept as written (``T-AU28``). Intensity
  letters are ignored. The paper's ``M57`` / ``M58`` (head movements) and ``AD38`` are
  written ``AU57`` / ``AU58`` / ``AU38`` (FACS numbers are unique across the prefixes).
* :func:`au_by_emotion` (Table 6): per emotion, the percentage of that emotion's clips
  that carry each AU label (not raw counts, so emotions of different sizes compare).
* :func:`au_combinations` (Table 7): per emotion, the most frequent AU combinations, a
  combination being a clip's whole set of AU labels (``AU6+AU12``), with percentages.
* :func:`clips_per_emotion`, :func:`clips_per_subject`: clip counts.
* :func:`clip_durations`, :func:`duration_summary`: durations in ms from each clip's own
  fps and the micro-expression rule of the DFME paper (Sec. 3.3.2): a clip is a
  micro-expression when onset..offset lasts <= 500 ms **or** onset..apex <= 250 ms,
  durations counting frames inclusively (``(offset - onset + 1) / fps``); otherwise it
  is a macro-expression by that rule.
* :func:`duration_figure`: histograms of both durations with the 500 / 250 ms limits.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from merkit.data.adapters.dfme import duration_ms, micro_mask  # noqa: E402
from merkit.data.schema import SchemaError  # noqa: E402

__all__ = [
    "HIGH_OCCURRENCE",
    "MAX_RISE_MS",
    "MAX_TOTAL_MS",
    "PLOT_RANGE",
    "au_by_emotion",
    "au_combinations",
    "au_distribution",
    "au_label",
    "clip_au_labels",
    "clip_durations",
    "clips_per_emotion",
    "clips_per_subject",
    "duration_figure",
    "duration_summary",
    "high_occurrence",
]

#: the DFME rule: a micro-expression lasts at most 500 ms, or rises (onset..apex) in 250 ms
MAX_TOTAL_MS: float = 500.0
MAX_RISE_MS: float = 250.0
#: the histograms of :func:`duration_figure` span 0 .. PLOT_RANGE x the limit (longer
#: clips are drawn in the last bin)
PLOT_RANGE: float = 4.0
#: percentage (of an emotion's clips) from which an AU counts as "of high occurrence";
#: the smallest percentage the DFME paper's Table 6 lists is 4.8
HIGH_OCCURRENCE: float = 4.5


def _need(table: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SchemaError(f"{what}: the clip table lacks columns {missing}")


def au_label(au: int, side: str) -> str:
    """Table-5 name of one coded AU: ``AU12``, ``L/R-AU12`` (left or right half, or both
    halves coded apart) or, for another side code, ``<side>-AU<n>`` (``T-AU28``)."""
    letters = set(str(side).replace("/", ""))
    if not letters:
        return f"AU{int(au)}"
    if letters <= {"L", "R"}:
        return f"L/R-AU{int(au)}"
    return f"{side}-AU{int(au)}"


def clip_au_labels(table: pd.DataFrame) -> list[tuple[str, ...]]:
    """Each clip's AU labels (:func:`au_label`), in AU-number order."""
    _need(table, ("aus", "au_sides"), "AU labels")
    out = []
    for aus, sides in zip(table["aus"], table["au_sides"], strict=True):
        aus = tuple(aus) if isinstance(aus, (tuple, list)) else ()
        sides = tuple(sides) if isinstance(sides, (tuple, list)) else ("",) * len(aus)
        out.append(tuple(au_label(a, s) for a, s in zip(aus, sides, strict=True)))
    return out


def _label_key(label: str) -> tuple[int, int, str]:
    """Table-5 order: bilateral AUs first, then L/R, then other sides; by AU number."""
    prefix, _, number = label.rpartition("AU")
    group = 0 if not prefix else 1 if prefix == "L/R-" else 2
    return (group, int(number), prefix)


def _emotion_sizes(table: pd.DataFrame) -> list[tuple[str, int]]:
    """``(emotion, clips)`` by clip count, largest first (ties by name)."""
    counts = table["emotion"].astype(str).value_counts()
    return sorted(((str(e), int(n)) for e, n in counts.items()), key=lambda x: (-x[1], x[0]))


def au_distribution(table: pd.DataFrame) -> pd.DataFrame:
    """How often each AU label occurs (DFME Table 5).

    Returns
    -------
    DataFrame
        Columns ``au``, ``count`` (clips carrying it; a clip carries a label once),
        ``percent_of_labels`` (of all AU labels), ``percent_of_clips``, ``rank`` (1 = most
        frequent, ties share the smaller rank); rows in Table-5 order (bilateral AUs,
        then ``L/R-``, by AU number). ``attrs``: ``clips``, ``labels`` (the total, the
        paper's 12,928), ``aus_per_clip`` (the paper's 12928 / 7526 = 1.718) and
        ``uncoded`` (clips without any AU).
    """
    labels = clip_au_labels(table)
    counts: dict[str, int] = {}
    for clip in labels:
        for name in clip:
            counts[name] = counts.get(name, 0) + 1
    names = sorted(counts, key=_label_key)
    total = sum(counts.values())
    n = len(labels)
    out = pd.DataFrame({"au": names, "count": [counts[a] for a in names]}, dtype=object)
    out["count"] = out["count"].astype("int64")
    out["percent_of_labels"] = (100.0 * out["count"] / total) if total else 0.0
    out["percent_of_clips"] = (100.0 * out["count"] / n) if n else 0.0
    out["rank"] = out["count"].rank(method="min", ascending=False).astype("int64")
    out.attrs.update(
        clips=n,
        labels=total,
        aus_per_clip=total / n if n else float("nan"),
        uncoded=sum(1 for clip in labels if not clip),
    )
    return out


def au_by_emotion(table: pd.DataFrame) -> pd.DataFrame:
    """Per emotion, the percentage of its clips that carry each AU label (DFME Table 6).

    Returns
    -------
    DataFrame
        Columns ``emotion``, ``emotion_clips``, ``au``, ``clips`` (of that emotion with
        the label), ``percent`` (``100 * clips / emotion_clips``), ``rank`` (within the
        emotion, 1 = most frequent); emotions by clip count (largest first), then AUs
        by percent (highest first, ties in Table-5 order). Emotions of equal size are
        ordered by name.
    """
    _need(table, ("emotion",), "AUs per emotion")
    labels = clip_au_labels(table)
    emotions = table["emotion"].astype(str).to_numpy()
    rows = []
    for emotion, n in _emotion_sizes(table):
        counts: dict[str, int] = {}
        for clip, e in zip(labels, emotions, strict=True):
            if e == emotion:
                for name in clip:
                    counts[name] = counts.get(name, 0) + 1
        for name in sorted(counts, key=lambda a: (-counts[a], _label_key(a))):
            rows.append((emotion, int(n), name, counts[name], 100.0 * counts[name] / n))
    out = pd.DataFrame(rows, columns=["emotion", "emotion_clips", "au", "clips", "percent"])
    out["rank"] = (
        out.groupby("emotion", sort=False)["clips"].rank(method="min", ascending=False)
    ).astype("int64")
    return out


def high_occurrence(by_emotion: pd.DataFrame, min_percent: float = HIGH_OCCURRENCE) -> pd.DataFrame:
    """The rows of :func:`au_by_emotion` at or above ``min_percent`` (Table 6's AUs)."""
    return by_emotion[by_emotion["percent"] >= min_percent].reset_index(drop=True)


def au_combinations(table: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Per emotion, its most frequent AU combinations (DFME Table 7 style).

    A combination is a clip's whole set of AU labels joined by ``+`` in AU-number order
    (``AU6+AU12``; ``L/R-AU12``); clips without AUs are left out.

    Parameters
    ----------
    top : int
        Combinations kept per emotion (the most frequent; ties at the last rank kept).

    Returns
    -------
    DataFrame
        Columns ``emotion``, ``emotion_clips``, ``combination``, ``clips``, ``percent``
        (of the emotion's clips), ``rank``; emotions by clip count, largest first.
    """
    if top < 1:
        raise ValueError(f"top = {top}: give at least 1 combination per emotion")
    _need(table, ("emotion",), "AU combinations")
    combos = ["+".join(sorted(c, key=_label_key)) for c in clip_au_labels(table)]
    frame = pd.DataFrame({"emotion": table["emotion"].astype(str).to_numpy(), "combo": combos})
    rows = []
    for emotion, n in _emotion_sizes(table):
        coded = frame.loc[(frame["emotion"] == emotion) & (frame["combo"] != ""), "combo"]
        counts = coded.value_counts()
        order = sorted(counts.index, key=lambda c: (-counts[c], c))
        for combo in order:
            rows.append((emotion, int(n), combo, int(counts[combo]), 100.0 * counts[combo] / n))
    out = pd.DataFrame(
        rows, columns=["emotion", "emotion_clips", "combination", "clips", "percent"]
    )
    out["rank"] = (
        out.groupby("emotion", sort=False)["clips"].rank(method="min", ascending=False)
    ).astype("int64")
    return out[out["rank"] <= top].reset_index(drop=True)


def clips_per_emotion(table: pd.DataFrame) -> pd.DataFrame:
    """Clips and subjects per emotion: columns ``emotion``, ``clips``, ``percent``,
    ``subjects``; largest first (ties by name)."""
    _need(table, ("emotion", "subject"), "clips per emotion")
    groups = table.groupby(table["emotion"].astype(str))
    out = pd.DataFrame({"clips": groups.size(), "subjects": groups["subject"].nunique()})
    out = out.loc[[e for e, _ in _emotion_sizes(table)]].reset_index()
    out.insert(2, "percent", 100.0 * out["clips"] / len(table) if len(table) else 0.0)
    return out


def clips_per_subject(table: pd.DataFrame) -> pd.DataFrame:
    """Clips per subject and emotion: one row per subject (``subject``, ``clips``, then one
    column per emotion, largest emotion first); subjects by clip count, largest first."""
    _need(table, ("emotion", "subject"), "clips per subject")
    pivot = pd.crosstab(table["subject"].astype(str), table["emotion"].astype(str))
    pivot = pivot[[e for e, _ in _emotion_sizes(table)]]
    pivot.insert(0, "clips", pivot.sum(axis=1))
    pivot = pivot.sort_values("clips", ascending=False, kind="stable")
    pivot.columns.name = None
    return pivot.reset_index()


def clip_durations(table: pd.DataFrame) -> pd.DataFrame:
    """Each clip's durations and its side of the DFME micro/macro rule.

    Returns
    -------
    DataFrame
        Columns ``subject``, ``clip``, ``emotion``, ``fps``, ``frames``
        (``offset - onset + 1``), ``total_ms`` (``frames / fps``), ``rise_ms``
        (``(apex - onset + 1) / fps``; NaN without an apex), ``micro`` (the paper's rule,
        frames counted inclusively), ``micro_intervals`` (the same rule on frame
        intervals, ``(offset - onset) / fps``), ``kind`` (``"micro"`` or ``"macro"``).
    """
    _need(table, ("subject", "clip", "emotion", "fps", "onset", "apex", "offset"), "durations")
    fps = pd.to_numeric(table["fps"], errors="coerce")
    bad = ~(fps > 0)
    if bad.any():
        first = table[bad].iloc[0]
        raise SchemaError(
            f"durations: clip {first['subject']}/{first['clip']} has fps {first['fps']}; "
            "every clip needs a frame rate > 0"
        )
    micro = micro_mask(table, MAX_TOTAL_MS, MAX_RISE_MS)
    out = pd.DataFrame(
        {
            "subject": table["subject"].astype(str).to_numpy(),
            "clip": table["clip"].astype(str).to_numpy(),
            "emotion": table["emotion"].astype(str).to_numpy(),
            "fps": fps.to_numpy(dtype=float),
            "frames": (pd.to_numeric(table["offset"]) - pd.to_numeric(table["onset"]) + 1)
            .to_numpy()
            .astype("int64"),
            "total_ms": duration_ms(table),
            "rise_ms": duration_ms(table, "onset", "apex"),
            "micro": micro,
            "micro_intervals": micro_mask(table, MAX_TOTAL_MS, MAX_RISE_MS, inclusive=False),
        }
    )
    out["kind"] = np.where(micro, "micro", "macro")
    return out


def duration_summary(durations: pd.DataFrame) -> pd.DataFrame:
    """Durations per frame rate (and all clips): the micro/macro split of the DFME rule.

    Parameters
    ----------
    durations : DataFrame
        From :func:`clip_durations`.

    Returns
    -------
    DataFrame
        One row per fps, then ``"all"``: ``fps``, ``clips``, ``median_ms``, ``mean_ms``,
        ``max_ms`` (of ``total_ms``), ``median_rise_ms``, ``total_le_500`` (clips),
        ``rise_le_250`` (clips with an apex rising within 250 ms), ``micro``, ``macro``
        (the rule), ``micro_intervals`` (the rule on frame intervals), ``percent_micro``.
    """

    def row(name: str, d: pd.DataFrame) -> dict:
        return {
            "fps": name,
            "clips": len(d),
            "median_ms": float(d["total_ms"].median()),
            "mean_ms": float(d["total_ms"].mean()),
            "max_ms": float(d["total_ms"].max()),
            "median_rise_ms": float(d["rise_ms"].median()),
            "total_le_500": int((d["total_ms"] <= MAX_TOTAL_MS).sum()),
            "rise_le_250": int((d["rise_ms"] <= MAX_RISE_MS).sum()),
            "micro": int(d["micro"].sum()),
            "macro": int((~d["micro"]).sum()),
            "micro_intervals": int(d["micro_intervals"].sum()),
            "percent_micro": 100.0 * float(d["micro"].mean()) if len(d) else float("nan"),
        }

    rows = [row(f"{fps:g}", d) for fps, d in durations.groupby("fps", sort=True)]
    rows.append(row("all", durations))
    return pd.DataFrame(rows)


def duration_figure(durations: dict[str, pd.DataFrame]) -> Figure:
    """Histograms of total (onset..offset) and rise (onset..apex) durations in ms, one
    line per database, with the 500 ms and 250 ms limits of the micro-expression rule
    (x axis up to :data:`PLOT_RANGE` times the limit; longer clips fall in the last bin).

    Parameters
    ----------
    durations : dict
        Database name -> :func:`clip_durations` table.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    panels = (
        ("total_ms", MAX_TOTAL_MS, "onset..offset (ms)"),
        ("rise_ms", MAX_RISE_MS, "onset..apex (ms)"),
    )
    for ax, (column, limit, xlabel) in zip(axes, panels, strict=True):
        top = PLOT_RANGE * limit
        bins = np.linspace(0.0, top, 41)
        for name, d in durations.items():
            v = d[column].dropna().to_numpy(dtype=float)
            if not v.size:
                continue
            beyond = int((v > top).sum())
            note = f", {beyond} > {top:g} ms in the last bin" if beyond else ""
            ax.hist(np.minimum(v, top), bins=bins, histtype="step", linewidth=1.5,
                    density=True, label=f"{name} ({v.size} clips{note})")  # fmt: skip
        ax.axvline(limit, color="black", linestyle="--", linewidth=1.2)
        ax.text(limit, ax.get_ylim()[1] * 0.95, f" {limit:g} ms", va="top", fontsize=9)
        ax.set_xlim(0.0, top)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of clips (density)")
        ax.legend(fontsize=7)
    fig.suptitle("micro-expression if onset..offset <= 500 ms or onset..apex <= 250 ms")
    return fig
