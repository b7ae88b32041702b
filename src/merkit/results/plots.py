"""Figures of a results report: confusion matrices, grid sensitivity, TGSR salient regions.

Every function returns a :class:`matplotlib.figure.Figure` drawn with the Agg backend
(no display needed); :func:`figure_png` turns one into PNG bytes. No metric is computed
here: confusion matrices come from :func:`merkit.results.metrics.confusion_matrix`, the
sensitivity curves plot the mean-F1 stored in ``grid.csv``.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from merkit.features.grid import Grid  # noqa: E402
from merkit.results.metrics import confusion_matrix  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "confusion_grid",
    "figure_png",
    "is_multiplicative",
    "neutral_face",
    "salient_map",
    "sensitivity_figure",
]


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (the figure is closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def confusion_grid(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    labels: Sequence | None = None,
    title: str | None = None,
    ncols: int = 4,
) -> Figure:
    """Small confusion matrices, one panel per ``(title, y_true, y_pred)``.

    Cells are coloured by the row-normalised rate (per-class recall on the diagonal)
    and show the raw count with the rate.

    Parameters
    ----------
    panels : sequence of (str, array-like, array-like)
        Panel title and the pooled labels / predictions of that panel.
    labels : sequence, optional
        Classes of every panel (default: per panel, the union of true and predicted).
    title : str, optional
        Figure title.
    ncols : int
        Panels per row.
    """
    if not panels:
        raise ValueError("confusion_grid needs at least one (title, y_true, y_pred) panel")
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.8 * nrows + 0.4),
                             squeeze=False)  # fmt: skip
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, (name, yt, yp) in zip(axes.ravel(), panels, strict=False):
        yt, yp = np.asarray(yt), np.asarray(yp)
        lab = np.unique(np.concatenate([yt, yp])) if labels is None else np.asarray(labels)
        counts = confusion_matrix(yt, yp, labels=lab)
        rates = confusion_matrix(yt, yp, labels=lab, normalize="true")
        ax.imshow(rates, vmin=0.0, vmax=1.0, cmap="Blues")
        k = lab.size
        for i in range(k):
            for j in range(k):
                dark = rates[i, j] > 0.55
                ax.text(j, i, f"{counts[i, j]}\n{rates[i, j]:.2f}", ha="center", va="center",
                        fontsize=7, color="white" if dark else "black")  # fmt: skip
        names = [str(v)[:8] for v in lab]
        ax.set_xticks(range(k), names, fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(f"{name} (n={yt.size})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(h_pad=1.5)
    return fig


def is_multiplicative(values: Sequence[float]) -> bool:
    """True when positive grid values are spread geometrically (plot on a log axis).

    The values (3 or more distinct, all > 0) must span a factor of at least 10 and be
    more evenly spaced in log than in linear scale.
    """
    v = np.unique(np.asarray(values, dtype=float))
    if v.size < 3 or np.any(v <= 0) or v[-1] / v[0] < 10:
        return False
    lin = np.diff(v) / (v[-1] - v[0])
    lg = np.diff(np.log(v)) / (np.log(v[-1]) - np.log(v[0]))
    return float(np.std(lg)) < float(np.std(lin))


def sensitivity_figure(
    curves: Mapping[str, Mapping[str, tuple[Sequence, Sequence[float]]]],
    *,
    title: str | None = None,
    oracle: Mapping[str, Mapping[str, object]] | None = None,
) -> Figure:
    """Mean-F1 against each swept hyper-parameter, one panel per parameter.

    Parameters
    ----------
    curves : mapping
        ``{parameter: {task: (x values, mean-F1 values)}}``, the other parameters held
        at the oracle point of that task. Numeric x on a log axis when
        :func:`is_multiplicative`, non-numeric x as categories.
    title : str, optional
        Figure title.
    oracle : mapping, optional
        ``{parameter: {task: x}}`` oracle value marked on each curve.
    """
    if not curves:
        raise ValueError("sensitivity_figure needs at least one swept parameter")
    n = len(curves)
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows + 0.4),
                             squeeze=False)  # fmt: skip
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, (param, per_task) in zip(axes.ravel(), curves.items(), strict=False):
        xs_all = [x for xs, _ in per_task.values() for x in xs]
        numeric = all(
            isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
            for x in xs_all
        )
        cats = None if numeric else list(dict.fromkeys(str(x) for x in xs_all))
        for task, (xs, ys) in per_task.items():
            pos = np.asarray(xs, float) if numeric else np.array([cats.index(str(x)) for x in xs])
            order = np.argsort(pos, kind="stable")
            (line,) = ax.plot(pos[order], np.asarray(ys, float)[order], marker="o",
                              markersize=3, linewidth=1.2, label=str(task))  # fmt: skip
            if oracle and task in oracle.get(param, {}):
                ox = oracle[param][task]
                at = [i for i, x in enumerate(xs) if str(x) == str(ox)]
                if at:
                    ax.plot(pos[at[0]], float(ys[at[0]]), marker="*", markersize=11,
                            color=line.get_color(), markeredgecolor="black")  # fmt: skip
        if numeric and is_multiplicative(xs_all):
            ax.set_xscale("log")
        if cats is not None:
            ax.set_xticks(range(len(cats)), [c[:10] for c in cats], rotation=30, fontsize=7)
        ax.set_xlabel(param)
        ax.set_ylabel("mean-F1")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def neutral_face(size: int = 160) -> np.ndarray:
    """A neutral synthetic grey face (size, size) in [0, 1] (merkit's face renderer)."""
    from merkit.data.synthetic.face import FaceGeometry, Framing, render_face

    rgb = render_face(FaceGeometry(), Framing(width=size, height=size))
    return np.clip(rgb.mean(axis=-1), 0.0, 1.0).astype(np.float32)


def salient_map(
    selected_blocks: Sequence[int],
    levels: Sequence[int] | str = (1, 2, 4, 8),
    image: np.ndarray | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """TGSR's selected facial blocks drawn over a face, one panel per grid level.

    Block ids follow :class:`merkit.features.grid.Grid` (levels in order, row-major
    inside a level: 0 = the whole face, 1..4 the 2x2 blocks, 5..20 the 4x4, 21..84 the
    8x8 for levels 1, 2, 4, 8), as TGSR's ``selected_blocks_`` on the CDMER LBP-TOP
    layout. A last panel counts, per pixel, how many levels selected the block holding it.

    Parameters
    ----------
    selected_blocks : sequence of int
        Ids of the blocks with a non-zero coefficient group.
    levels : sequence of int or str
        Grid levels the ids refer to.
    image : ndarray of shape (H, W) or (H, W, 3), optional
        A face frame (grey or RGB; uint8 or float); default :func:`neutral_face`.
    title : str, optional
        Figure title.
    """
    grid = Grid(levels=levels)
    sel = np.unique(np.asarray(list(selected_blocks), dtype=np.int64))
    bad = sel[(sel < 0) | (sel >= grid.n_blocks)]
    if bad.size:
        raise ValueError(
            f"block ids {bad.tolist()} are outside 0..{grid.n_blocks - 1} "
            f"(grid levels {grid.levels})"
        )
    face = neutral_face() if image is None else np.asarray(image)
    if face.ndim == 3:
        face = face[..., :3].mean(axis=-1)
    if face.ndim != 2:
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {np.shape(image)}")
    face = face.astype(float)
    if face.max() > 1.0:
        face = face / 255.0
    h, w = face.shape
    bounds = grid.block_bounds(h, w)
    chosen = set(sel.tolist())
    n_panels = len(grid.levels) + 1
    fig, axes = plt.subplots(1, n_panels, figsize=(2.6 * n_panels, 3.0), squeeze=False)
    axes = axes[0]
    coverage = np.zeros((h, w), dtype=int)
    for ax, n, sl in zip(axes, grid.levels, grid.level_slices, strict=False):
        ax.imshow(face, cmap="gray", vmin=0.0, vmax=1.0)
        n_sel = 0
        for b in range(sl.start, sl.stop):
            y0, y1, x0, x1 = bounds[b]
            on = b in chosen
            n_sel += on
            if on:
                coverage[y0:y1, x0:x1] += 1
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, linewidth=0.6,
                                   edgecolor="yellow" if on else (1, 1, 1, 0.35),
                                   facecolor=(1.0, 0.35, 0.0, 0.45) if on else "none"))  # fmt: skip
        ax.set_title(f"{n}x{n}: {n_sel}/{n * n} blocks", fontsize=8)
        ax.axis("off")
    ax = axes[-1]
    ax.imshow(face, cmap="gray", vmin=0.0, vmax=1.0)
    masked = np.ma.masked_equal(coverage, 0)
    im = ax.imshow(masked, cmap="autumn_r", alpha=0.6, vmin=1, vmax=max(1, len(grid.levels)))
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cbar.set_ticks(range(1, max(1, len(grid.levels)) + 1))
    cbar.ax.tick_params(labelsize=6)
    ax.set_title("levels selecting each pixel", fontsize=8)
    ax.axis("off")
    if title:
        fig.suptitle(f"{title}: {sel.size}/{grid.n_blocks} blocks selected", fontsize=10)
    fig.tight_layout()
    return fig
