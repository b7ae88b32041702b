"""Toy clips shared by the descriptor tests: a bar moving up or down on a static texture."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC


def bar_clips(n_per_class: int = 20, seed: int = 0, frames: int = 12, size: int = 32):
    """A bright 5-pixel bar sweeping the same rows of a static random texture downwards
    (label 1) or upwards (label 0), with sensor noise: only the direction of motion differs."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_per_class)
    rows = np.arange(size)[:, None] + 0.5
    clips = []
    for down in labels:
        background = gaussian_filter(rng.normal(size=(size, size)), 1.0) * 30 + 100
        speed, start = rng.uniform(1.2, 1.8), rng.uniform(4, 8)
        clip = np.empty((frames, size, size))
        for t in range(frames):
            top = start + speed * t if down else size - 5 - start - speed * t
            cover = np.clip(np.minimum(rows - top, top + 5 - rows) + 0.5, 0, 1)
            clip[t] = background + 60 * cover
        clips.append(clip + rng.normal(0, 2, clip.shape))
    return clips, labels


def cv_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    model = make_pipeline(StandardScaler(), SVC(kernel="linear", C=1.0))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds).mean())
