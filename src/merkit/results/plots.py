"""Figures of a results report: confusion matrices, confidence intervals, grid
sensitivity, TGSR salient regions, learning curves and 2-D feature embeddings.

Every plotting function returns a :class:`matplotlib.figure.Figure` drawn with the Agg
backend (no display needed); :func:`figure_png` turns one into PNG bytes. No metric is
computed here: confusion matrices come from
:func:`merkit.metrics.confusion_matrix`, intervals from
:func:`merkit.metrics.bootstrap_ci`, the sensitivity curves plot the mean-F1
stored in ``grid.csv``, learning curves the losses a training run logged.
:func:`embed_2d` is the one computation: a seeded t-SNE projection for display.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402

from merkit.data.synthetic.face import FaceGeometry, Framing, render_face  # noqa: E402
from merkit.features.layout import BlockLayout  # noqa: E402
from merkit.metrics import confusion_matrix  # noqa: E402

log = logging.getLogger(__name__)

__all__ = [
    "confusion_panels",
    "embed_2d",
    "embedding_figure",
    "figure_png",
    "interval_figure",
    "is_multiplicative",
    "learning_curves",
    "neutral_face",
    "read_face",
    "salient_map",
    "sensitivity_figure",
]


def figure_png(fig: Figure, *, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (the figure is closed afterwards)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def confusion_panels(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    *,
    labels: Sequence | None = None,
    class_names: Sequence[str] | None = None,
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
    class_names : sequence of str, optional
        Tick label of integer class ``i`` (default: the class values themselves).
    title : str, optional
        Figure title.
    ncols : int
        Panels per row.
    """
    if not panels:
        raise ValueError("confusion_panels needs at least one (title, y_true, y_pred) panel")
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    # fixed margins in inches (tight_layout would draw every text once more)
    pw, ph, top = 2.9, 2.9, (0.55 if title else 0.3)
    width, height = pw * ncols, ph * nrows + top
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.1 / width, bottom=0.75 / height,
                        top=1 - top / height, wspace=0.9 / (pw - 0.9),
                        hspace=1.0 / (ph - 1.0))  # fmt: skip
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
        names = [_class_name(v, class_names)[:10] for v in lab]
        ax.set_xticks(range(k), names, fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(f"{name} (n={yt.size})", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.12 / height, va="top")
    return fig


def _class_name(value, class_names: Sequence[str] | None) -> str:
    if class_names is not None:
        try:
            i = int(value)
        except (TypeError, ValueError):
            return str(value)
        if 0 <= i < len(class_names) and i == value:
            return str(class_names[i])
    return str(value)


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
    rgb = render_face(FaceGeometry(), Framing(width=size, height=size))
    return np.clip(rgb.mean(axis=-1), 0.0, 1.0).astype(np.float32)


def salient_map(
    selected_blocks: Sequence[int],
    levels: Sequence[int] | str = (1, 2, 4, 8),
    image: np.ndarray | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """TGSR's selected facial blocks drawn over a face, one panel per block level.

    Block ids follow :class:`merkit.features.layout.BlockLayout` (levels in order, row-major
    inside a level: 0 = the whole face, 1..4 the 2x2 blocks, 5..20 the 4x4, 21..84 the
    8x8 for levels 1, 2, 4, 8), as TGSR's ``selected_blocks_`` on the CDMER LBP-TOP
    layout. A last panel counts, per pixel, how many levels selected the block holding it.

    Parameters
    ----------
    selected_blocks : sequence of int
        Ids of the blocks with a non-zero coefficient group.
    levels : sequence of int or str
        Block levels the ids refer to.
    image : ndarray of shape (H, W) or (H, W, 3), optional
        A face frame (grey or RGB; uint8 or float); default :func:`neutral_face`.
    title : str, optional
        Figure title.
    """
    layout = BlockLayout(levels=levels)
    sel = np.unique(np.asarray(list(selected_blocks), dtype=np.int64))
    bad = sel[(sel < 0) | (sel >= layout.n_blocks)]
    if bad.size:
        raise ValueError(
            f"block ids {bad.tolist()} are outside 0..{layout.n_blocks - 1} "
            f"(block levels {layout.levels})"
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
    bounds = layout.block_bounds(h, w)
    chosen = set(sel.tolist())
    n_panels = len(layout.levels) + 1
    fig, axes = plt.subplots(1, n_panels, figsize=(2.6 * n_panels, 3.0), squeeze=False)
    axes = axes[0]
    coverage = np.zeros((h, w), dtype=int)
    for ax, n, sl in zip(axes, layout.levels, layout.level_slices, strict=False):
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
    im = ax.imshow(masked, cmap="autumn_r", alpha=0.6, vmin=1, vmax=max(1, len(layout.levels)))
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cbar.set_ticks(range(1, max(1, len(layout.levels)) + 1))
    cbar.ax.tick_params(labelsize=6)
    ax.set_title("levels selecting each pixel", fontsize=8)
    ax.axis("off")
    if title:
        fig.suptitle(f"{title}: {sel.size}/{layout.n_blocks} blocks selected", fontsize=10)
    fig.tight_layout()
    return fig


def read_face(path: str | Path) -> np.ndarray:
    """A face frame from an image file as grey (H, W) in [0, 1] (for :func:`salient_map`).

    The block layout is laid over the whole image, so give an aligned face crop (as the
    features were computed on).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: face image not found")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"{path}: not a readable image (PNG, JPEG, BMP...)")
    return img.astype(np.float32) / 255.0


def interval_figure(
    cells: Mapping[str, Mapping[str, tuple[float, float, float]]],
    tasks: Sequence[str],
    *,
    task_labels: Mapping[str, str] | None = None,
    groups: Mapping[str, str] | None = None,
    title: str | None = None,
    ncols: int = 6,
) -> Figure:
    """Forest plot: one panel per task, one horizontal interval per row.

    Parameters
    ----------
    cells : mapping
        ``{row label: {task: (estimate, low, high)}}``; missing cells are left empty.
    tasks : sequence of str
        Panel order.
    task_labels : mapping, optional
        Panel title per task (e.g. ``"Exp.1 H->V, n=71"``).
    groups : mapping, optional
        Group of each row (e.g. its method): one colour per group, the first row of a
        group drawn solid, the others dashed (default: every row its own group).
    title : str, optional
        Figure title.
    ncols : int
        Panels per row.
    """
    if not cells or not tasks:
        raise ValueError("interval_figure needs at least one row and one task")
    rows = list(cells)
    n = len(tasks)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    height = 0.9 + 0.22 * len(rows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols + 1.6, height * nrows + 0.4),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    ypos = np.arange(len(rows))[::-1]
    group = [(groups or {}).get(r, r) for r in rows]
    names = list(dict.fromkeys(group))
    colour = [f"C{names.index(g) % 10}" for g in group]
    style = ["-" if group.index(g) == i else (0, (2, 1)) for i, g in enumerate(group)]
    for k, (ax, task) in enumerate(zip(axes.ravel(), tasks, strict=False)):
        for i, (y, row) in enumerate(zip(ypos, rows, strict=True)):
            if task in cells[row]:
                e, lo, hi = cells[row][task]
                ax.plot([lo, hi], [y, y], color=colour[i], linestyle=style[i], linewidth=2.0,
                        solid_capstyle="butt")  # fmt: skip
                ax.plot([e], [y], marker="o", markersize=4, color="black")
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["0", "", "0.5", "", "1"], fontsize=7)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_title((task_labels or {}).get(task, task), fontsize=8)
        if k % ncols == 0:
            ax.set_yticks(ypos, [r[:28] for r in rows], fontsize=7)
        if k // ncols == nrows - 1 or k + ncols >= n:
            ax.set_xlabel("mean-F1", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(
    history: pd.DataFrame,
    *,
    title: str | None = None,
) -> Figure:
    """Loss and training accuracy against epoch, one row of panels per seed.

    Each fold is a thin line, the mean over the folds (per epoch, over the folds that
    reached it) a thick one; ``val_loss`` / ``val_accuracy`` columns, when present, are
    drawn dashed the same way. A learning-rate panel is added when ``lr`` changes.

    Parameters
    ----------
    history : DataFrame
        Rows of one (protocol, task, model): columns ``seed, fold, epoch, loss,
        accuracy`` and optionally ``lr, val_loss, val_accuracy``.
    title : str, optional
        Figure title.
    """
    need = ("seed", "fold", "epoch", "loss", "accuracy")
    missing = [c for c in need if c not in history.columns]
    if missing:
        raise ValueError(f"learning_curves: history lacks columns {missing}")
    if history.empty:
        raise ValueError("learning_curves: no history rows")
    seeds = sorted(history["seed"].unique())
    show_lr = "lr" in history.columns and history["lr"].nunique(dropna=True) > 1
    metrics = [("loss", "loss"), ("accuracy", "training accuracy")]
    if show_lr:
        metrics.append(("lr", "learning rate"))
    ncols = len(metrics)
    fig, axes = plt.subplots(len(seeds), ncols, figsize=(4.0 * ncols, 2.7 * len(seeds) + 0.5),
                             squeeze=False)  # fmt: skip
    for r, seed in enumerate(seeds):
        h = history[history["seed"] == seed]
        n_folds = h["fold"].nunique()
        for c, (col, label) in enumerate(metrics):
            ax = axes[r, c]
            series = [(col, "C0", "-", "train" if col != "lr" else None)]
            val = f"val_{col}"
            if col != "lr" and val in h.columns and h[val].notna().any():
                series.append((val, "C1", "--", "validation"))
            for name, colour, style, lab in series:
                thin = 0.8 if n_folds <= 5 else 0.5
                alpha = 0.5 if n_folds <= 5 else 0.22
                for _, f in h.groupby("fold", sort=False):
                    f = f.sort_values("epoch")
                    ax.plot(f["epoch"], f[name], color=colour, linestyle=style,
                            linewidth=thin, alpha=alpha)  # fmt: skip
                mean = h.groupby("epoch")[name].mean()
                legend = None if lab is None else f"{lab}, mean of {n_folds} folds"
                ax.plot(mean.index, mean.to_numpy(), color=colour, linestyle=style,
                        linewidth=2.0, label=legend)  # fmt: skip
            if col == "accuracy":
                ax.set_ylim(-0.02, 1.02)
            if col == "lr" and (h["lr"] > 0).all():
                ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(f"seed {seed}: {label}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            if col != "lr":
                ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def embed_2d(
    z: np.ndarray,
    *,
    random_state: int = 0,
    max_points: int = 2000,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Seeded 2-D t-SNE of feature rows, for display.

    Above ``max_points`` rows a seeded random subset (sorted row positions) is embedded;
    features wider than 50 are first reduced to 50 principal components. Perplexity is
    ``clip((n - 1) / 3, 2, 30)`` so that small sets work.

    Parameters
    ----------
    z : ndarray of shape (n, d)
        Features, n >= 5.
    random_state : int
        Seed of the subset, the PCA and t-SNE (same seed, same picture).
    max_points : int
        Largest number of rows embedded.

    Returns
    -------
    xy : ndarray of shape (m, 2)
    rows : ndarray of shape (m,)
        Positions in ``z`` of the embedded rows.
    perplexity : float
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"embed_2d: features must be 2-D (n, d), got shape {z.shape}")
    n = z.shape[0]
    if n < 5:
        raise ValueError(f"embed_2d: needs at least 5 feature rows, got {n}")
    if not np.isfinite(z).all():
        raise ValueError("embed_2d: features contain NaN or infinite values")
    rows = np.arange(n)
    if n > max_points:
        rng = np.random.default_rng(random_state)
        rows = np.sort(rng.choice(n, size=max_points, replace=False))
    x = z[rows] - z[rows].mean(axis=0)
    if x.shape[1] > 50 and x.shape[0] > 50:
        x = PCA(50, random_state=random_state).fit_transform(x)
    perplexity = float(np.clip((len(rows) - 1) / 3.0, 2.0, 30.0))
    tsne = TSNE(2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=random_state)  # fmt: skip
    return tsne.fit_transform(x), rows, perplexity


def embedding_figure(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    ncols: int = 3,
) -> Figure:
    """2-D embeddings coloured by true class, misclassified points ringed in black.

    Parameters
    ----------
    panels : sequence of (str, xy, y_true, y_pred)
        Panel title, ``xy`` (m, 2) and the labels of those points.
    class_names : sequence of str, optional
        Legend name of integer class ``i``.
    title : str, optional
        Figure title.
    ncols : int
        Panels per row.
    """
    if not panels:
        raise ValueError("embedding_figure needs at least one (title, xy, y_true, y_pred) panel")
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 4.0 * nrows + 0.4),
                             squeeze=False)  # fmt: skip
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    classes = np.unique(np.concatenate([np.asarray(p[2]) for p in panels]))
    colours = {c: plt.get_cmap("tab10")(i % 10) for i, c in enumerate(classes)}
    for ax, (name, xy, yt, yp) in zip(axes.ravel(), panels, strict=False):
        xy, yt, yp = np.asarray(xy), np.asarray(yt), np.asarray(yp)
        if xy.shape != (yt.size, 2) or yp.shape != yt.shape:
            raise ValueError(f"embedding panel {name!r}: xy {xy.shape}, y_true {yt.shape}, "
                             f"y_pred {yp.shape} do not match")  # fmt: skip
        for c in classes:
            m = yt == c
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=14, color=colours[c], alpha=0.8, linewidths=0,
                           label=f"{_class_name(c, class_names)} ({int(m.sum())})")  # fmt: skip
        wrong = yt != yp
        if wrong.any():
            ax.scatter(xy[wrong, 0], xy[wrong, 1], s=40, facecolors="none", edgecolors="black",
                       linewidths=0.7, label=f"misclassified ({int(wrong.sum())})")  # fmt: skip
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, loc="best", framealpha=0.7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
