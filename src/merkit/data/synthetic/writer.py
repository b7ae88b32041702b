"""Write synthetic micro-expression databases in the native on-disk layouts.

Layouts (identical to the real releases, so the adapters read both alike)::

    <out>/CASME2/Cropped/sub01/EP02_01f/img46.jpg ... img86.jpg   (onset..offset, colour JPEG)
    <out>/CASME2/CASME2-coding-synthetic.xlsx                      (the real sheet's columns)
    <out>/SMIC/HS/s01/micro/negative/s01_ne_01/image559740.bmp ... (onset..offset, 6 digits)
    <out>/SMIC/VIS/s01/micro/...    <out>/SMIC/NIR/s01/micro/...   (25 fps, no list)
    <out>/SMIC/smic-3classes.csv                                   (HS clips, no header)
    <out>/SAMM/SAMM_Micro_FACS_Codes_v2.xlsx                       (sheet MICRO_ONLY)
    <out>/SAMM/006/006_1_2/006_05562.jpg ... 006_05632.jpg         (onset..offset, grey JPEG)
    <out>/DFME/training_full_with_AU.xlsx, testA_..., testB_...    (one sheet per released part)
    <out>/DFME/train_data/sub0003_01/00000.png ... 00228.png       (frame 0..offset, colour PNG)
    <out>/DFME/test_A_data/...   <out>/DFME/test_B_data/...        (200, 300 or 500 fps per person)
    <out>/CASME/CASME-coding-synthetic.xlsx                        (the CASME I sheet's columns)
    <out>/CASME/Cropped/sub01/EP01_5/img12.jpg ... img31.jpg       (onset..offset, 60 fps)
    <out>/4DME/4DME_labels_synthetic.xlsx                          (the 4DME sheet's columns)
    <out>/4DME/S01/S01_01/12.jpg ... 31.jpg                        (onset..offset, grey, 60 fps)
    <out>/synthetic.json                                           (ground truth: AUs, amplitudes)

People: CASME II and SMIC draw from disjoint pools; SMIC-VIS and SMIC-NIR film the
first ``k`` SMIC-HS people at the same moments as the HS camera (as in the real
SMIC, where 8 of the 16 HS subjects were also filmed by the VIS and NIR cameras),
so one event gives three clips with the same clip name. SAMM, DFME, CASME I and 4DME are
more disjoint pools (not written by default: ``DEFAULT_DATABASES`` are the CDMER four); a DFME
person is filmed at one of the three frame rates and belongs to one released part
(train / testA / testB, subject-disjoint like the real release). An event is a set of AUs
with amplitudes (pixels of the CASME2 reference camera, scaled by each camera's
resolution), onset/apex/offset times and nuisances (blink, head jitter,
illumination drift); cameras sample it at their own frame rate.

Every random choice comes from a generator keyed by ``(seed, database, subject,
clip, purpose)``, so a database is the same whichever other databases are written,
and the same seed gives byte-identical files.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font

from merkit._io import ensure_writable_dir
from merkit.data.synthetic.camera import CAMERAS, Camera
from merkit.data.synthetic.face import (
    EMOTION_AUS,
    SUBTLE_EMOTIONS,
    FaceGeometry,
    FaceRenderer,
    format_aus,
    parse_au,
    temporal_profile,
)

log = logging.getLogger(__name__)

#: every database the generator writes
DATABASES: tuple[str, ...] = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR", "SAMM", "DFME",
                              "CASME1", "4DME")  # fmt: skip
#: what :func:`synthesize` writes by default: the four databases of the CDMER benchmark
DEFAULT_DATABASES: tuple[str, ...] = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")
#: databases beyond the CDMER four (their size entries enter the manifest only when written)
EXTRA_DATABASES: tuple[str, ...] = ("SAMM", "DFME", "CASME1", "4DME")
SHEET_NAME = "CASME2-coding-synthetic.xlsx"
SAMM_SHEET_NAME = "SAMM_Micro_FACS_Codes_v2.xlsx"
CASME1_SHEET_NAME = "CASME-coding-synthetic.xlsx"
FOURD_SHEET_NAME = "4DME_labels_synthetic.xlsx"
#: DFME released part -> (coding sheet, frame folder), the names of the real release
DFME_PARTS: dict[str, tuple[str, str]] = {
    "train": ("training_full_with_AU.xlsx", "train_data"),
    "testA": ("testA_full_with_AU.xlsx", "test_A_data"),
    "testB": ("testB_full_with_AU.xlsx", "test_B_data"),
}
SMIC_LIST_NAME = "smic-3classes.csv"
MANIFEST_NAME = "synthetic.json"

#: native emotion mix (fractions of the clips); CASME II's 3-class part
#: (happiness / disgust+sadness+fear / surprise) is ~75 % of it
CASME2_EMOTIONS: dict[str, float] = {
    "happiness": 0.22,
    "surprise": 0.18,
    "disgust": 0.25,
    "sadness": 0.07,
    "fear": 0.05,
    "repression": 0.12,
    "others": 0.11,
}
SMIC_EMOTIONS: dict[str, float] = {"negative": 0.42, "positive": 0.31, "surprise": 0.27}
#: what a SMIC class folder holds: native emotion -> underlying expressions
SMIC_SOURCES: dict[str, dict[str, float]] = {
    "negative": {"disgust": 0.35, "sadness": 0.25, "fear": 0.2, "anger": 0.2},
    "positive": {"happiness": 1.0},
    "surprise": {"surprise": 1.0},
}
SMIC_ABBR = {"negative": "ne", "positive": "po", "surprise": "sur"}
SMIC_LABEL = {"positive": 1, "negative": 2, "surprise": 3}

#: SAMM "Estimated Emotion" mix: the counts of the 159 clips of the real v2 sheet
SAMM_EMOTIONS: dict[str, float] = {
    "anger": 57, "other": 26, "happiness": 26, "surprise": 15,
    "contempt": 12, "disgust": 9, "fear": 8, "sadness": 6,
}  # fmt: skip
#: SAMM emotion -> (AU combination, weight). The combinations follow the AUs coded in
#: SAMM (anger mostly AU4 / AU7 alone, contempt a one-sided AU14, surprise AU1+2 or AU5)
#: and give the "Objective Classes" of Davison et al. 2018 (:data:`SAMM_OBJECTIVE_CLASSES`)
#: in about the real proportions (e.g. a third of the anger clips in class III)
SAMM_EMOTION_AUS: dict[str, list[tuple[tuple, float]]] = {
    "anger": [((4,), 0.2), ((4, 7), 0.1), ((4, 5), 0.05), ((7,), 0.35), ((24,), 0.15),
              ((17,), 0.15)],
    "contempt": [(("L14",), 0.35), (("R14",), 0.3), ((14,), 0.2), (("L12",), 0.15)],
    "disgust": [((9,), 0.3), ((10,), 0.2), ((4, 9), 0.2), ((7, 10), 0.2), (("L10",), 0.1)],
    "fear": [((1, 2, 4), 0.8), ((24,), 0.2)],
    "happiness": [((12,), 0.35), ((6, 12), 0.3), (("L12",), 0.15), (("R12",), 0.1),
                  ((7, 12), 0.1)],
    "other": [(("L2",), 0.2), (("R2",), 0.1), ((24,), 0.2), ((17,), 0.15), ((14,), 0.15),
              ((7,), 0.2)],
    "sadness": [((15,), 0.25), ((15, 17), 0.25), ((1, 4), 0.2), ((17,), 0.15), ((24,), 0.15)],
    "surprise": [((1, 2), 0.45), ((5,), 0.3), ((5, 24), 0.15), (("L2",), 0.1)],
}  # fmt: skip
#: Objective classes I..VI (Davison, Merghani & Yap 2018, 'Objective classes for
#: micro-facial expression recognition', J. Imaging 4(10):119): AU sets, sides ignored;
#: any other combination is class VII
SAMM_OBJECTIVE_CLASSES: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((6,), (12,), (6, 12), (6, 7, 12), (7, 12)),
    2: ((1, 2), (5,), (25,), (1, 2, 25), (25, 26), (5, 24)),
    3: ((23,), (4,), (4, 7), (4, 5), (4, 5, 7), (17, 24), (4, 6, 7), (4, 38)),
    4: ((10,), (9,), (4, 9), (4, 40), (4, 5, 40), (4, 7, 9), (4, 9, 17), (4, 7, 10),
        (4, 5, 7, 9), (7, 10)),
    5: ((1,), (15,), (1, 4), (6, 15), (15, 17)),
    6: ((1, 2, 4), (20,)),
}  # fmt: skip

#: CASME I emotions and their mix (disgust the most frequent, then repression and tense, as
#: in the database description; a synthetic mix, not the real counts)
CASME1_EMOTIONS: dict[str, float] = {
    "disgust": 0.4, "repression": 0.2, "tense": 0.15, "surprise": 0.1,
    "happiness": 0.05, "sadness": 0.04, "contempt": 0.03, "fear": 0.03,
}  # fmt: skip
#: CASME I emotion -> (AU combination, weight): the shared table, plus "tense" (brow
#: lowering and lip tightening, like the CASME I tense clips)
CASME1_EMOTION_AUS: dict[str, list[tuple[tuple, float]]] = {
    **{e: EMOTION_AUS[e] for e in CASME1_EMOTIONS if e != "tense"},
    "tense": [((4,), 0.4), ((14,), 0.2), ((4, 14), 0.2), ((17,), 0.2)],
}

#: 4DME emotion labels (one or two per clip) and their mix; a synthetic mix, not the real
#: counts. The AUs of a clip follow its first label (:data:`FOURD_EXPRESSION`)
FOURD_EMOTIONS: dict[tuple[str, ...], float] = {
    ("negative",): 0.35, ("positive",): 0.15, ("surprise",): 0.12, ("repression",): 0.1,
    ("others",): 0.13, ("negative", "surprise"): 0.1, ("positive", "surprise"): 0.05,
}  # fmt: skip
#: 4DME label -> the expression of :data:`~merkit.data.synthetic.face.EMOTION_AUS` drawn
FOURD_EXPRESSION: dict[str, str] = {"negative": "disgust", "positive": "happiness",
                                    "surprise": "surprise", "repression": "repression",
                                    "others": "others"}  # fmt: skip

#: DFME emotions in EmotionId order (0..6) and their mix: the paper's clip counts
#: (Table 1, parts A+B+C, 'others' left out as in the released sheets)
DFME_EMOTIONS: dict[str, float] = {
    "anger": 619, "contempt": 401, "disgust": 2528, "fear": 892,
    "happiness": 992, "sadness": 635, "surprise": 1208,
}  # fmt: skip
DFME_EMOTION_IDS: dict[str, int] = {e: i for i, e in enumerate(DFME_EMOTIONS)}
#: DFME emotion -> (AU combination, weight): the emotion-AU combinations of the DFME
#: paper (Table 7) plus the combinations it reports shared by the negative emotions
#: (AU4, AU4+AU7, AU7, AU24), weighted after its Table 6 (e.g. AU12 in 80 % of the
#: happiness clips, one-sided AU12 in contempt, AU1+AU2+AU5 in surprise)
DFME_EMOTION_AUS: dict[str, list[tuple[tuple, float]]] = {
    "anger": [((4, 5), 0.2), ((23,), 0.1), ((4,), 0.3), ((4, 7), 0.25), ((7,), 0.05),
              ((24,), 0.1)],
    "contempt": [(("L12",), 0.35), (("R12",), 0.35), ((6, "L12"), 0.15), ((6, "R12"), 0.15)],
    "disgust": [((4, 7, 10), 0.2), ((14,), 0.1), ((4,), 0.3), ((4, 7), 0.3), ((7,), 0.05),
                ((24,), 0.05)],
    "fear": [((14, 24), 0.15), ((1, 4), 0.15), ((4, 5), 0.15), ((4,), 0.25), ((4, 7), 0.2),
             ((24,), 0.1)],
    "happiness": [((6, 12), 0.45), ((12,), 0.35), (("L12",), 0.05), (("R12",), 0.05),
                  ((12, 24), 0.1)],
    "sadness": [((14,), 0.2), ((17,), 0.1), ((15,), 0.05), ((14, 24), 0.15), ((4,), 0.25),
                ((4, 7), 0.1), ((24,), 0.15)],
    "surprise": [((1, 2, 5), 0.45), ((1, 2), 0.25), ((5,), 0.15), (("L1", "L2", "L5"), 0.075),
                 (("R1", "R2", "R5"), 0.075)],
}  # fmt: skip
#: DFME frame rates (paper parts A, B, C); a person is filmed at one of them. The released
#: sheets hold about as many clips at each rate (993 / 805 / 831), so people are dealt
#: to the three rates in equal shares
DFME_FRAME_RATES: tuple[float, ...] = (500.0, 300.0, 200.0)
#: share of the DFME people in each test part (the release: 176 / 42 / 41 people)
DFME_TEST_SHARE = 0.16

#: subjects, clips per subject (VIS/NIR: subjects = the first k SMIC_HS people; their
#: clips are the HS clips of those people; DFME: people of the three parts together) and
#: frame scale of each preset
SIZES: dict[str, dict] = {
    "tiny": {
        "CASME2": {"subjects": 3, "clips": 3},
        "SMIC_HS": {"subjects": 3, "clips": 3},
        "SMIC_VIS": {"subjects": 2},
        "SMIC_NIR": {"subjects": 2},
        "SAMM": {"subjects": 3, "clips": 3},
        "DFME": {"subjects": 5, "clips": 2},
        "CASME1": {"subjects": 3, "clips": 3},
        "4DME": {"subjects": 3, "clips": 3},
        "scale": 1.0,
    },
    "default": {
        "CASME2": {"subjects": 10, "clips": 8},
        "SMIC_HS": {"subjects": 8, "clips": 8},
        "SMIC_VIS": {"subjects": 4},
        "SMIC_NIR": {"subjects": 4},
        "SAMM": {"subjects": 10, "clips": 6},
        "DFME": {"subjects": 12, "clips": 6},
        "CASME1": {"subjects": 8, "clips": 6},
        "4DME": {"subjects": 8, "clips": 6},
        "scale": 1.0,
    },
    "large": {
        "CASME2": {"subjects": 24, "clips": 10},
        "SMIC_HS": {"subjects": 16, "clips": 10},
        "SMIC_VIS": {"subjects": 8},
        "SMIC_NIR": {"subjects": 8},
        "SAMM": {"subjects": 28, "clips": 6},
        "DFME": {"subjects": 40, "clips": 8},
        "CASME1": {"subjects": 19, "clips": 10},
        "4DME": {"subjects": 20, "clips": 8},
        "scale": 1.0,
    },
}

#: event duration onset -> offset in seconds (CASME II 49-97 frames, SMIC-HS 25-49,
#: VIS/NIR 6-13: all micro-expressions, under 500 ms)
DURATION_S: tuple[float, float] = (0.24, 0.48)
#: SAMM: 30-101 frames at 200 fps in the real sheet
SAMM_DURATION_S: tuple[float, float] = (0.15, 0.5)
#: DFME: onset..offset of 0.2-0.49 s (the DFME micro criterion, (offset - onset + 1) / fps
#: <= 500 ms, holds at every frame rate)
DFME_DURATION_S: tuple[float, float] = (0.2, 0.49)
#: AU amplitude range at apex, pixels of the reference camera
AMPLITUDE_PX: tuple[float, float] = (1.0, 3.0)
#: amplitude factor of subtle emotions (repression)
SUBTLE_FACTOR = 0.6
#: intensity left at the offset frame (expressions rarely relax fully within the clip)
RESIDUAL: tuple[float, float] = (0.0, 0.0)
#: probability that a blink falls inside a clip
BLINK_PROB = 0.3
#: peak head jitter during a clip (pixels of the reference camera) and its frequencies (Hz)
JITTER_PX = 0.4
JITTER_HZ: tuple[float, float] = (0.3, 2.0)
#: largest per-clip crop offset (pixels of the reference camera): each clip is cropped anew
CROP_JITTER_PX = 1.5

_POOL_CODE = {"CASME2": 1, "SMIC": 2, "SAMM": 3, "DFME": 4, "CASME1": 5, "4DME": 6}
_CAMERA_CODE = {"CASME2": 11, "SMIC_HS": 12, "SMIC_VIS": 13, "SMIC_NIR": 14, "SAMM": 15,
                "DFME_200": 16, "DFME_300": 17, "DFME_500": 18, "CASME1": 19,
                "4DME": 20}  # fmt: skip


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Event:
    """One micro-expression, independent of the camera that films it.

    Times are in seconds on the subject's recording clock.
    """

    emotion: str
    expression: str  # underlying expression (== emotion for CASME2; e.g. "fear" for SMIC negative)
    aus: tuple[tuple[int, str], ...]
    amplitudes: tuple[float, ...]  # reference pixels at apex, one per AU
    lags: tuple[float, ...]  # seconds each AU starts after the onset
    onset: float
    apex: float
    offset: float
    jitter_amp: tuple[tuple[float, float], ...]  # (ax, ay) per sinusoid, reference pixels
    jitter_freq: tuple[float, ...]
    jitter_phase: tuple[tuple[float, float], ...]
    residual: float  # intensity left at the offset
    blink: tuple[float, float] | None  # (start, duration) seconds
    drift: float  # relative illumination change per second (times camera drift)
    crop_offset: tuple[float, float]  # per-clip crop shift, reference pixels

    def intensities(self, t: np.ndarray) -> np.ndarray:
        """Per-AU intensity (n_AU, len(t)) in [0, 1] at times ``t``."""
        t = np.asarray(t, dtype=float)
        out = np.empty((len(self.aus), t.size))
        for k, lag in enumerate(self.lags):
            out[k] = temporal_profile(t - lag, self.onset, self.apex, self.offset, self.residual)
        return out

    def shift(self, t: np.ndarray) -> np.ndarray:
        """Rigid head shift (len(t), 2) in reference pixels (crop offset + smooth jitter)."""
        t = np.asarray(t, dtype=float)[:, None]
        out = np.tile(np.asarray(self.crop_offset, float), (t.shape[0], 1))
        for (ax, ay), f, (px, py) in zip(
            self.jitter_amp, self.jitter_freq, self.jitter_phase, strict=True
        ):
            out[:, :1] += ax * np.sin(2 * np.pi * f * t + px)
            out[:, 1:] += ay * np.sin(2 * np.pi * f * t + py)
        return out

    def eye_closure(self, t: np.ndarray) -> np.ndarray:
        """Blink closure in [0, 1] at times ``t``."""
        t = np.asarray(t, dtype=float)
        if self.blink is None:
            return np.zeros(t.shape)
        start, dur = self.blink
        phase = np.clip((t - start) / dur, 0.0, 1.0)
        return 0.5 - 0.5 * np.cos(2 * np.pi * phase)


def _pick(rng: np.random.Generator, weighted: Mapping | list) -> object:
    if isinstance(weighted, Mapping):
        items, weights = list(weighted), np.asarray(list(weighted.values()), float)
    else:
        items, weights = [w[0] for w in weighted], np.asarray([w[1] for w in weighted], float)
    return items[int(rng.choice(len(items), p=weights / weights.sum()))]


def make_event(
    rng: np.random.Generator,
    emotion: str,
    expression: str,
    onset: float,
    *,
    combos: list[tuple[tuple, float]] | None = None,
    duration: tuple[float, float] = DURATION_S,
) -> Event:
    """Draw the AUs, amplitudes, timing and nuisances of one micro-expression.

    ``combos`` replaces ``EMOTION_AUS[expression]`` (a database's own emotion -> AU
    table); ``duration`` is the onset -> offset range in seconds.
    """
    if combos is None:
        combos = EMOTION_AUS[expression]
    combo = _pick(rng, combos)
    aus = tuple(sorted(parse_au(c) for c in combo))
    lo, hi = AMPLITUDE_PX
    factor = SUBTLE_FACTOR if expression in SUBTLE_EMOTIONS else 1.0
    amps = tuple(float(rng.uniform(lo, hi) * factor) for _ in aus)
    duration = float(rng.uniform(*duration))
    apex = onset + duration * float(rng.uniform(0.35, 0.65))
    offset = onset + duration
    lags = tuple(0.0 if k == 0 else float(rng.uniform(0.0, 0.03)) for k in range(len(aus)))
    n_sin = 3
    amp = rng.uniform(0.1, 1.0, (n_sin, 2))
    amp *= JITTER_PX / max(amp.sum(axis=0).max(), 1e-9) * rng.uniform(0.3, 1.0)
    blink = None
    if rng.random() < BLINK_PROB:
        dur = float(rng.uniform(0.10, 0.18))
        blink = (float(rng.uniform(onset - dur / 2, offset - dur / 2)), dur)
    return Event(
        emotion=emotion,
        expression=expression,
        aus=aus,
        amplitudes=amps,
        lags=lags,
        onset=onset,
        apex=apex,
        offset=offset,
        jitter_amp=tuple((float(a), float(b)) for a, b in amp),
        jitter_freq=tuple(float(f) for f in rng.uniform(*JITTER_HZ, n_sin)),
        jitter_phase=tuple((float(a), float(b)) for a, b in rng.uniform(0, 2 * np.pi, (n_sin, 2))),
        residual=float(rng.uniform(*RESIDUAL)),
        blink=blink,
        drift=float(rng.uniform(-1.0, 1.0)),
        crop_offset=tuple(float(c) for c in rng.uniform(-CROP_JITTER_PX, CROP_JITTER_PX, 2)),
    )


def _deck(rng: np.random.Generator, mix: Mapping[str, float], n: int) -> list[str]:
    """``n`` labels in proportions ``mix`` (largest remainder), shuffled."""
    w = np.asarray(list(mix.values()), float)
    w = w / w.sum() * n
    counts = np.floor(w).astype(int)
    for i in np.argsort(-(w - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    labels = [name for name, c in zip(mix, counts, strict=True) for _ in range(c)]
    return [labels[i] for i in rng.permutation(n)]


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class ClipPlan:
    """A clip to write: who, what, when (event) and its native name."""

    subject: str  # native subject id ("01", "s01")
    clip: str  # native clip name ("EP02_01f", "s01_ne_01")
    subject_index: int
    index: int  # clip number within the subject (0-based)
    event: Event
    info: dict = field(default_factory=dict)  # database-specific (SAMM inducement, DFME part)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *map(int, key)])


def plan_casme2(seed: int, subjects: int, clips: int) -> list[ClipPlan]:
    """Clips of the synthetic CASME II: ``subjects`` people x ``clips`` clips each."""
    deck = _deck(_rng(seed, _POOL_CODE["CASME2"], 0), CASME2_EMOTIONS, subjects * clips)
    plans = []
    for s in range(subjects):
        rng = _rng(seed, _POOL_CODE["CASME2"], 1, s)
        used: set[str] = set()
        for c in range(clips):
            emotion = deck[s * clips + c]
            while True:
                name = f"EP{int(rng.integers(1, 20)):02d}_{int(rng.integers(1, 13)):02d}"
                name += "f" if rng.random() < 0.35 else ""
                if name.rstrip("f") not in {u.rstrip("f") for u in used}:
                    break
            used.add(name)
            onset_frame = int(rng.integers(5, 250))
            event = make_event(
                _rng(seed, _POOL_CODE["CASME2"], 2, s, c),
                emotion,
                emotion,
                onset_frame / CAMERAS["CASME2"].fps,
            )
            plans.append(ClipPlan(f"{s + 1:02d}", name, s, c, event))
    return plans


def plan_casme1(seed: int, subjects: int, clips: int) -> list[ClipPlan]:
    """Clips of the synthetic CASME I: ``subjects`` people (``"01"``...) x ``clips`` clips.

    Clips are named ``EP<episode>_<n>`` (``EP01_5``), unique per person; onsets are
    native frame numbers 1..150 of the 60 fps recording.
    """
    pool = _POOL_CODE["CASME1"]
    deck = _deck(_rng(seed, pool, 0), CASME1_EMOTIONS, subjects * clips)
    fps = CAMERAS["CASME1"].fps
    plans = []
    for s in range(subjects):
        rng = _rng(seed, pool, 1, s)
        used: set[str] = set()
        for c in range(clips):
            emotion = deck[s * clips + c]
            while True:
                name = f"EP{int(rng.integers(1, 20)):02d}_{int(rng.integers(1, 13))}"
                if name not in used:
                    break
            used.add(name)
            onset_frame = int(rng.integers(1, 151))
            event = make_event(_rng(seed, pool, 2, s, c), emotion, emotion, onset_frame / fps,
                               combos=CASME1_EMOTION_AUS[emotion])  # fmt: skip
            plans.append(ClipPlan(f"{s + 1:02d}", name, s, c, event))
    return plans


def plan_4dme(seed: int, subjects: int, clips: int) -> list[ClipPlan]:
    """Clips of the synthetic 4DME: ``subjects`` people (``"S01"``...) x ``clips`` clips
    (``S01_01``...). A clip has one or two emotion labels (``info["emotions"]``); the
    event's emotion is the labels joined by ``+`` (``"negative+surprise"``)."""
    pool = _POOL_CODE["4DME"]
    keys = {"+".join(k): w for k, w in FOURD_EMOTIONS.items()}
    deck = _deck(_rng(seed, pool, 0), keys, subjects * clips)
    fps = CAMERAS["4DME"].fps
    plans = []
    for s in range(subjects):
        rng = _rng(seed, pool, 1, s)
        sid = f"S{s + 1:02d}"
        for c in range(clips):
            labels = tuple(deck[s * clips + c].split("+"))
            onset_frame = int(rng.integers(1, 151))
            event = make_event(_rng(seed, pool, 2, s, c), "+".join(labels),
                               FOURD_EXPRESSION[labels[0]], onset_frame / fps)  # fmt: skip
            plans.append(ClipPlan(sid, f"{sid}_{c + 1:02d}", s, c, event, {"emotions": labels}))
    return plans


def plan_smic(seed: int, subjects: int, clips: int) -> list[ClipPlan]:
    """Events of the synthetic SMIC people (filmed by HS, and VIS/NIR for the first ones)."""
    deck = _deck(_rng(seed, _POOL_CODE["SMIC"], 0), SMIC_EMOTIONS, subjects * clips)
    plans = []
    hs_fps = CAMERAS["SMIC_HS"].fps
    for s in range(subjects):
        rng = _rng(seed, _POOL_CODE["SMIC"], 1, s)
        counter = dict.fromkeys(SMIC_ABBR, 0)
        emotions = deck[s * clips : (s + 1) * clips]
        # onsets: one session, clips spread over it in increasing order, 6-digit frames
        starts = np.sort(rng.choice(np.arange(200, 9900), size=clips, replace=False)) * 100
        for c, emotion in enumerate(emotions):
            counter[emotion] += 1
            name = f"s{s + 1:02d}_{SMIC_ABBR[emotion]}_{counter[emotion]:02d}"
            erng = _rng(seed, _POOL_CODE["SMIC"], 2, s, c)
            expression = str(_pick(erng, SMIC_SOURCES[emotion]))
            onset_frame = int(starts[c]) + int(rng.integers(0, 90))
            event = make_event(erng, emotion, expression, onset_frame / hs_fps)
            plans.append(ClipPlan(f"s{s + 1:02d}", name, s, c, event))
    return plans


def samm_objective_class(aus: Iterable[tuple[int, str]]) -> int:
    """SAMM "Objective Classes" (1..7) of an AU set (sides ignored; see
    :data:`SAMM_OBJECTIVE_CLASSES`)."""
    key = tuple(sorted({int(au) for au, _ in aus}))
    for cls, sets in SAMM_OBJECTIVE_CLASSES.items():
        if key in sets:
            return cls
    return 7


def plan_samm(seed: int, subjects: int, clips: int) -> list[ClipPlan]:
    """Clips of the synthetic SAMM: ``subjects`` people x ``clips`` clips each.

    Subjects are three-digit numbers from 006 up (with gaps, as in SAMM); a clip is
    named ``<subject>_<inducement code>_<n>`` (``006_1_2``): the stimulus (1..7) that
    induced it and its number among the movements coded in that stimulus' recording
    (gaps where a movement was not a micro-movement). Frame numbers count from the start
    of the stimulus recording (up to ~12 000 at 200 fps).
    """
    pool = _POOL_CODE["SAMM"]
    deck = _deck(_rng(seed, pool, 0), SAMM_EMOTIONS, subjects * clips)
    top = min(999, max(37, 6 + subjects + subjects // 4))
    ids = np.sort(_rng(seed, pool, 4).choice(np.arange(6, top + 1), size=subjects, replace=False))
    fps = CAMERAS["SAMM"].fps
    plans = []
    for s in range(subjects):
        rng = _rng(seed, pool, 1, s)
        sid = f"{int(ids[s]):03d}"
        inducement = rng.integers(1, 8, size=clips)
        # per stimulus recording: onsets in increasing order, numbered in that order
        onsets = np.zeros(clips, dtype=np.int64)
        numbers = np.zeros(clips, dtype=np.int64)
        for code in np.unique(inducement):
            idx = np.flatnonzero(inducement == code)
            slots = np.sort(rng.choice(np.arange(0, 115), size=idx.size, replace=False))
            onsets[idx] = 80 + slots * 100 + rng.integers(0, 40, size=idx.size)
            n = int(rng.integers(1, 3))
            for i in idx:
                numbers[i] = n
                n += 1 + int(rng.random() < 0.3)
        for c in range(clips):
            emotion = deck[s * clips + c]
            event = make_event(
                _rng(seed, pool, 2, s, c),
                emotion,
                emotion,
                int(onsets[c]) / fps,
                combos=SAMM_EMOTION_AUS[emotion],
                duration=SAMM_DURATION_S,
            )
            name = f"{sid}_{int(inducement[c])}_{int(numbers[c])}"
            plans.append(ClipPlan(sid, name, s, c, event,
                                  {"inducement_code": int(inducement[c])}))  # fmt: skip
    return plans


def dfme_parts(seed: int, subjects: int) -> list[str]:
    """Released part (``"train"``, ``"testA"``, ``"testB"``) of each DFME person: each test
    part gets :data:`DFME_TEST_SHARE` of the people (at least one), the rest train."""
    if subjects < 3:
        raise ValueError(f"DFME needs >= 3 subjects (one per released part), got {subjects}")
    n_test = max(1, int(round(DFME_TEST_SHARE * subjects)))
    order = _rng(seed, _POOL_CODE["DFME"], 5).permutation(subjects)
    parts = ["train"] * subjects
    for k, i in enumerate(order[: 2 * n_test]):
        parts[int(i)] = "testA" if k < n_test else "testB"
    return parts


def plan_dfme(seed: int, subjects: int, clips: int) -> list[ClipPlan]:
    """Clips of the synthetic DFME: ``subjects`` people x ``clips`` clips each.

    People are ``sub0003``-style four-digit numbers drawn from 1..671 (DFME's
    participants), each filmed at one frame rate (200, 300 or 500 fps: the paper's parts
    C, B, A) and in one released part; clips are ``sub0003_01``, ``sub0003_02``... A clip
    folder starts at frame 0; the onset is frame 0 in ~45 % of the clips (as in the
    released sheets), otherwise up to 120 ms later, and a few frames follow the offset.
    """
    pool = _POOL_CODE["DFME"]
    deck = _deck(_rng(seed, pool, 0), DFME_EMOTIONS, subjects * clips)
    ids = np.sort(
        _rng(seed, pool, 4).choice(np.arange(1, max(671, subjects) + 1), size=subjects,
                                   replace=False)
    )  # fmt: skip
    rates = _deck(_rng(seed, pool, 6), {str(int(f)): 1.0 for f in DFME_FRAME_RATES}, subjects)
    parts = dfme_parts(seed, subjects)
    plans = []
    for s in range(subjects):
        rng = _rng(seed, pool, 1, s)
        sid = f"sub{int(ids[s]):04d}"
        fps = float(rates[s])
        for c in range(clips):
            emotion = deck[s * clips + c]
            onset_s = 0.0 if rng.random() < 0.45 else float(rng.uniform(0.0, 0.12))
            onset_frame = int(round(onset_s * fps))
            tail = int(rng.integers(0, int(round(0.03 * fps)) + 1))
            event = make_event(
                _rng(seed, pool, 2, s, c),
                emotion,
                emotion,
                onset_frame / fps,
                combos=DFME_EMOTION_AUS[emotion],
                duration=DFME_DURATION_S,
            )
            info = {"part": parts[s], "fps": fps, "tail": tail,
                    "emotion_id": DFME_EMOTION_IDS[emotion]}  # fmt: skip
            plans.append(ClipPlan(sid, f"{sid}_{c + 1:02d}", s, c, event, info))
    return plans


def frame_times(event: Event, fps: float) -> tuple[int, int, int]:
    """Native (onset, apex, offset) frame numbers of an event for a camera."""
    on = int(round(event.onset * fps))
    off = int(round(event.offset * fps))
    apex = int(round(event.apex * fps))
    apex = min(max(apex, on), off)
    return on, apex, off


# --------------------------------------------------------------------------- rendering


def render_clip(
    renderer: FaceRenderer,
    camera: Camera,
    event: Event,
    frames: np.ndarray,
    *,
    noise: np.ndarray,
    noise_rng: np.random.Generator,
    pattern: np.ndarray | None = None,
    flicker_phase: float = 0.0,
    flicker_freq: float = 7.0,
) -> list[np.ndarray]:
    """Frames (uint8, camera order) of ``event`` at native frame numbers ``frames``."""
    t = np.asarray(frames, float) / camera.fps
    scale = camera.amplitude_scale
    inten = event.intensities(t)
    shifts = event.shift(t) * scale
    closure = event.eye_closure(t)
    mid = 0.5 * (event.onset + event.offset)
    out = []
    for i in range(t.size):
        amps = {
            au: float(a * scale * inten[k, i])
            for k, (au, a) in enumerate(zip(event.aus, event.amplitudes, strict=True))
        }
        radiance = renderer.frame(amps, shift=tuple(shifts[i]), blink=float(closure[i]))
        gain = 1.0 + camera.drift * event.drift * (t[i] - mid)
        if camera.flicker:
            gain += camera.flicker * np.sin(2 * np.pi * flicker_freq * t[i] + flicker_phase)
        k = int(noise_rng.integers(noise.shape[0]))
        dy = int(noise_rng.integers(0, noise.shape[1] - camera.height + 1))
        dx = int(noise_rng.integers(0, noise.shape[2] - camera.width + 1))
        frame_noise = noise[k, dy : dy + camera.height, dx : dx + camera.width]
        out.append(camera.develop(radiance, gain=gain, noise=frame_noise, pattern=pattern))
    return out


def _write_image(path: Path, image: np.ndarray, camera: Camera) -> None:
    if camera.image_format == "jpg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, camera.jpeg_quality])
    elif camera.image_format == "png":
        # Huffman-only deflate: noisy frames compress as well and encode ~2x faster
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3,
                  cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]  # fmt: skip
        ok, buf = cv2.imencode(".png", image, params)
    else:
        ok, buf = cv2.imencode(".bmp", image)
    if not ok:
        raise RuntimeError(f"could not encode frame {path}")
    path.write_bytes(buf.tobytes())


# --------------------------------------------------------------------------- sheets


def write_casme2_sheet(path: Path, rows: list[dict]) -> None:
    """The coding sheet in the real CASME II format (byte-identical for identical rows).

    Columns: Subject (text ``'01'``), Filename, blank, OnsetFrame, ApexFrame, OffsetFrame,
    blank, Action Units (a number for a single bilateral AU, else text like ``'4+L10'``),
    Estimated Emotion; sheet ``Sheet1`` plus empty ``Sheet2`` and ``Sheet3``.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    wb.create_sheet("Sheet2")
    wb.create_sheet("Sheet3")
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
              "Action Units", "Estimated Emotion"]  # fmt: skip
    ws.append(header)
    rows = sorted(rows, key=lambda r: (r["subject"], r["clip"]))
    font = Font(name="Arial Unicode MS", size=11)
    for cell in ws[1]:
        cell.font = font
        cell.alignment = Alignment(horizontal="left")
    for r in rows:
        ws.append([r["subject"], r["clip"], None, r["onset"], r["apex"], r["offset"], None,
                   r["aus"], r["emotion"]])  # fmt: skip
        ws.cell(ws.max_row, 1).number_format = "@"
        for c in (1, 2, 4, 5, 6, 8, 9):
            ws.cell(ws.max_row, c).font = font
    ws.cell(1, 1).number_format = "@"
    for col, width in zip("ABCDEFGHI", (8.9, 13.4, 5.6, 16.0, 12.0, 13.9, 5.0, 11.6, 20.1),
                          strict=True):  # fmt: skip
        ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_deterministic_zip(buf.getvalue()))


def write_casme1_sheet(path: Path, rows: list[dict]) -> None:
    """The coding sheet in the CASME I format (byte-identical for identical rows).

    Columns, as meb reads the real sheet: Subject (a number), Filename, blank, OnsetF,
    ApexF1, ApexF2 (empty), OffsetF, blank, AU (a number for a single bilateral AU, else
    text like ``'4+L10'``), Emotion; one sheet ``Sheet1``. A row's ``apex2`` (optional)
    fills ApexF2. Rows are written in the order given.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(["Subject", "Filename", None, "OnsetF", "ApexF1", "ApexF2", "OffsetF", None,
               "AU", "Emotion"])  # fmt: skip
    for r in rows:
        ws.append([r["subject"], r["clip"], None, r["onset"], r["apex"], r.get("apex2"),
                   r["offset"], None, r["aus"], r["emotion"]])  # fmt: skip
    buf = io.BytesIO()
    wb.save(buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_deterministic_zip(buf.getvalue()))


#: the emotion columns of the 4DME sheet, in sheet order
FOURD_EMOTION_COLUMNS: tuple[str, ...] = ("Positive", "Negative", "Surprise", "Repression",
                                          "Others")  # fmt: skip


def write_4dme_sheet(path: Path, rows: list[dict]) -> None:
    """A coding sheet in the 4DME format (byte-identical for identical rows).

    Columns, as meb reads the real sheet: sub_ID, fold_name, Onset, Apex, Offset, AUs,
    Emotion, then Positive, Negative, Surprise, Repression, Others (1 for each label in the
    row's ``emotions``, else 0); one sheet ``Sheet1``; rows in the order given.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(["sub_ID", "fold_name", "Onset", "Apex", "Offset", "AUs", "Emotion",
               *FOURD_EMOTION_COLUMNS])  # fmt: skip
    for r in rows:
        labels = {str(e).lower() for e in r.get("emotions", ())}
        flags = [int(c.lower() in labels) for c in FOURD_EMOTION_COLUMNS]
        ws.append([r["subject"], r["clip"], r["onset"], r["apex"], r["offset"], r["aus"],
                   r["emotion"], *flags])  # fmt: skip
    buf = io.BytesIO()
    wb.save(buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_deterministic_zip(buf.getvalue()))


_FIXED_TIME = "2014-05-08T00:00:00Z"


def _deterministic_zip(
    data: bytes,
    *,
    stamp: str = _FIXED_TIME,
    date_time: tuple[int, ...] = (2014, 5, 8, 0, 0, 0),
    cached: Mapping[str, Mapping[str, int]] | None = None,
) -> bytes:
    """Re-pack an xlsx with fixed timestamps (file dates and document properties).

    ``cached`` maps a worksheet part (``"xl/worksheets/sheet1.xml"``) to ``{cell: value}``:
    the value Excel would have cached for a formula cell (openpyxl writes formulas without
    one, so readers that do not compute formulas, like pandas, would see an empty cell).
    """
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = content.decode("utf-8")
                text = re.sub(r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rf"\g<1>{stamp}\g<2>", text)  # fmt: skip
                content = text.encode("utf-8")
            if cached and info.filename in cached:
                values = cached[info.filename]
                text = content.decode("utf-8")

                def _value(m: re.Match, values=values) -> str:
                    if m.group(1) not in values:
                        return m.group(0)
                    return f"{m.group(0)[: -len('<v />')]}<v>{values[m.group(1)]}</v>"

                text = re.sub(r'<c r="([A-Z]+\d+)"[^>]*><f>[^<]*</f><v />', _value, text)
                content = text.encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=date_time)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, content)
    return out.getvalue()


def _samm_preamble() -> list[list[str | None]]:
    """The 13 note rows above the header of the SAMM-style sheet (the real v2 sheet has
    notes in the same places: title and citation, update note, symbol and AU keys)."""
    return [
        ["SAMM-style synthetic dataset - Master FACS Codes",
         "(Generated by merkit.data.synthetic: synthetic faces, not the SAMM dataset. The "
         "layout mirrors the SAMM coding sheet; cite Davison et al. 2018, SAMM: a "
         "spontaneous micro-facial movement dataset, IEEE TAC, when comparing with it.)"],
        [],
        ["Emotional and Objective Classes follow: ",
         "Davison, Merghani & Yap 2018, J. Imaging 4(10):119."],
        ["(Objective Classes are derived from the Action Units: I AU6/12, II AU1+2/AU5, "
         "III AU4/AU4+7, IV AU9/AU10, V AU1/AU15, VI AU1+2+4/AU20, VII others.)"],
        [],
        ["Symbol Key:"],
        ['"/" = or'],
        ['"?" = unclear offset (not used in this synthetic sheet)'],
        [],
        ["AU Help:"],
        ['"L12 or R12" = Unilateral AU 12 on the left / right side of the face'],
        ['"A12" = Asymmetric AU 12 (not used in this synthetic sheet)'],
        [],
    ]  # fmt: skip


def write_samm_sheet(path: Path, rows: list[dict]) -> None:
    """The coding sheet in the format of the real ``SAMM_Micro_FACS_Codes_v2.xlsx``.

    One sheet ``MICRO_ONLY``; 13 note rows, then the header on row 14 (bold Arial Unicode
    MS 11): Subject (text ``'006'``, format ``@``), Filename, Inducement Code, Onset Frame,
    Apex Frame, Offset Frame (numbers), Duration (the formula ``=SUM(Fn-Dn)+1`` with its
    cached value), Micro (``Micro - 1/2``), Action Units (a number for a single bilateral
    AU, else text ``'4+7'``, ``'L14'``), Estimated Emotion (``Anger``, ``Other``...),
    Objective Classes (1..7), Notes (``Blinks`` when the clip holds a blink). Rows sorted
    by subject, inducement code and number. Byte-identical for identical rows.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "MICRO_ONLY"
    for line in _samm_preamble():
        ws.append(line)
    header = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame",
              "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion",
              "Objective Classes", "Notes"]  # fmt: skip
    formats = ["@", "#,##0", "#,##0", "#,##0", "General", "#,##0", "#,##0", "#,##0",
               "General", "#,##0", "#,##0", "General"]  # fmt: skip
    ws.append(header)
    bold = Font(name="Arial Unicode MS", size=11, bold=True)
    font = Font(name="Arial Unicode MS", size=11)
    hr = ws.max_row
    for cell, fmt in zip(ws[hr], formats, strict=True):
        cell.font = bold
        cell.number_format = fmt

    def order(r: dict) -> tuple:
        _, code, num = r["clip"].split("_")
        return (r["subject"], int(code), int(num))

    cached: dict[str, int] = {}
    for r in sorted(rows, key=order):
        n = ws.max_row + 1
        ws.append([r["subject"], r["clip"], r["inducement_code"], r["onset"], r["apex"],
                   r["offset"], f"=SUM(F{n}-D{n})+1", "Micro - 1/2", r["aus"],
                   r["emotion"].capitalize(), r["objective_class"],
                   "Blinks" if r["blink"] else None])  # fmt: skip
        cached[f"G{n}"] = r["offset"] - r["onset"] + 1
        ws.cell(n, 1).number_format = "@"
        for c in range(1, 13):
            ws.cell(n, c).font = font
    widths = (9.5, 13.33, 16.0, 10.5, None, None, 10.33, 12.66, 20.0, 14.33, 16.16, 38.16)
    for col, width in zip("ABCDEFGHIJKL", widths, strict=True):
        if width is not None:
            ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(
        _deterministic_zip(buf.getvalue(), stamp="2017-09-09T00:00:00Z",
                           date_time=(2017, 9, 9, 0, 0, 0),
                           cached={"xl/worksheets/sheet1.xml": cached})
    )  # fmt: skip


def write_dfme_sheet(path: Path, rows: list[dict], *, test: bool = False) -> None:
    """One DFME coding sheet in the format of the released ``*_full_with_AU.xlsx``.

    Sheet ``Sheet1``, header (bold, font 宋体 11): Subject (text ``sub0003``), Filename
    (``sub0003_01``), OnsetFrame, ApexFrame, OffsetFrame (numbers), Emotion (lower case),
    EmotionId (0..6), Fps (200 / 300 / 500), AU (a number for a single bilateral AU,
    else text ``'4+7'``, ``'L12'``, ``'L1+L2+L5'``); rows sorted by Filename. The test
    sheets set column I's width to 9, as the released ones do.
    """
    wb = Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Emotion",
               "EmotionId", "Fps", "AU"])  # fmt: skip
    bold = Font(name="宋体", size=11, bold=True)
    font = Font(name="宋体", size=11)
    for cell in ws[1]:
        cell.font = bold
    for r in sorted(rows, key=lambda r: r["clip"]):
        ws.append([r["subject"], r["clip"], r["onset"], r["apex"], r["offset"], r["emotion"],
                   r["emotion_id"], int(r["fps"]), r["aus"]])  # fmt: skip
        for cell in ws[ws.max_row]:
            cell.font = font
    if test:
        ws.column_dimensions["I"].width = 9.0
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(_deterministic_zip(buf.getvalue(), stamp="2024-07-30T09:36:00Z",
                                        date_time=(2024, 7, 30, 9, 36, 0)))  # fmt: skip


def write_smic_list(path: Path, rows: list[dict]) -> None:
    """``smic-3classes.csv``: no header; subject, clip, onset, apex, offset, label."""
    rows = sorted(rows, key=lambda r: (r["subject"], r["clip"]))
    lines = [
        f"{r['subject']},{r['clip']},{r['onset']},{r['apex']},{r['offset']},"
        f"{SMIC_LABEL[r['emotion']]}"
        for r in rows
    ]
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")


# --------------------------------------------------------------------------- main API


def _resolve_size(size: str | Mapping) -> dict:
    if isinstance(size, str):
        if size not in SIZES:
            raise ValueError(f"unknown size preset {size!r}; presets: {sorted(SIZES)}")
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in SIZES[size].items()}
    if not isinstance(size, Mapping):
        raise TypeError(f"size must be a preset name or a dict, got {type(size).__name__}")
    base = _resolve_size(str(size.get("preset", "default")))
    for key, val in size.items():
        if key == "preset":
            continue
        if key == "scale":
            base["scale"] = float(val)
        elif key in DATABASES:
            if not isinstance(val, Mapping):
                raise TypeError(f"size[{key!r}] must be a dict like {{'subjects': 4}}")
            unknown = set(val) - {"subjects", "clips"}
            if unknown:
                raise ValueError(f"size[{key!r}]: unknown keys {sorted(unknown)} "
                                 "(use 'subjects' and 'clips')")  # fmt: skip
            base[key] = {**base[key], **{k: int(v) for k, v in val.items()}}
        else:
            raise ValueError(f"size: unknown key {key!r}; expected {list(DATABASES)}, "
                             "'scale' or 'preset'")  # fmt: skip
    for db in ("CASME2", "SMIC_HS", "SAMM", "DFME", "CASME1", "4DME"):
        if base[db]["subjects"] < 1 or base[db]["clips"] < 1:
            raise ValueError(f"size[{db!r}]: subjects and clips must be >= 1, got {base[db]}")
    if base["SAMM"]["subjects"] > 994:
        raise ValueError(f"size['SAMM']['subjects'] = {base['SAMM']['subjects']}: SAMM subjects "
                         "are three-digit numbers from 006, so at most 994")  # fmt: skip
    if not 3 <= base["DFME"]["subjects"] <= 9999:
        raise ValueError(f"size['DFME']['subjects'] = {base['DFME']['subjects']}: must be "
                         "3..9999 (a person at least in each of train, testA, testB)")  # fmt: skip
    if base["DFME"]["clips"] > 99:
        raise ValueError(f"size['DFME']['clips'] = {base['DFME']['clips']}: at most 99 "
                         "(clip names sub0003_01..sub0003_99)")  # fmt: skip
    for db in ("SMIC_VIS", "SMIC_NIR"):
        k = base[db]["subjects"]
        if not 1 <= k <= base["SMIC_HS"]["subjects"]:
            raise ValueError(
                f"size[{db!r}]['subjects'] = {k}: must be 1..{base['SMIC_HS']['subjects']} "
                "(VIS/NIR film a subset of the SMIC_HS people)"
            )
    if base["scale"] <= 0:
        raise ValueError(f"size['scale'] must be positive, got {base['scale']}")
    return base


def _write_database(
    db: str,
    plans: list[ClipPlan],
    camera: Camera,
    geometries: dict[int, FaceGeometry],
    clip_dir,
    frame_name,
    seed: int,
    *,
    code: int | None = None,
    frame_range=None,
) -> tuple[list[dict], int]:
    """Render and write every clip of one database; returns the clip records and frame count.

    ``frame_name`` is ``f(number)`` or ``f(plan, number)``; ``code`` keys the camera's
    random streams (default: the database's); ``frame_range(plan, onset, offset) -> (first,
    last)`` widens a clip beyond onset..offset (the records then also give ``first_frame``,
    ``last_frame`` and ``n_frames``).
    """
    code = _CAMERA_CODE[db] if code is None else int(code)
    takes_plan = frame_name.__code__.co_argcount == 2
    noise = camera.noise_bank(int(_rng(seed, code, 0).integers(2**31)))
    pattern = camera.noise_bank(int(_rng(seed, code, 3).integers(2**31)), n=1)
    pattern = pattern[0, : camera.height, : camera.width]
    records = []
    n_frames = 0
    renderers: dict[int, FaceRenderer] = {}
    for p in plans:
        if p.subject_index not in renderers:
            renderers.clear()  # one person at a time: the plans are grouped by subject
            prng = _rng(seed, code, 1, p.subject_index)
            offset = (float(prng.uniform(-2, 2)), float(prng.uniform(-2, 2)))
            renderers[p.subject_index] = FaceRenderer(
                geometries[p.subject_index], camera.framing(offset), camera.lighting
            )
        renderer = renderers[p.subject_index]
        on, apex, off = frame_times(p.event, camera.fps)
        first, last = (on, off) if frame_range is None else frame_range(p, on, off)
        frames = np.arange(first, last + 1)
        crng = _rng(seed, code, 2, p.subject_index, p.index)
        images = render_clip(
            renderer,
            camera,
            p.event,
            frames,
            noise=noise,
            noise_rng=crng,
            pattern=pattern,
            flicker_phase=float(crng.uniform(0, 2 * np.pi)),
            flicker_freq=float(crng.uniform(3.0, 12.0)),
        )
        folder = clip_dir(p)
        folder.mkdir(parents=True, exist_ok=True)
        for n, img in zip(frames, images, strict=True):
            name = frame_name(p, int(n)) if takes_plan else frame_name(int(n))
            _write_image(folder / name, img, camera)
        n_frames += len(images)
        amps = [round(a * camera.amplitude_scale, 4) for a in p.event.amplitudes]
        extra = {}
        if frame_range is not None:
            extra = {"first_frame": int(first), "last_frame": int(last), "n_frames": len(images)}
        records.append({
            "database": db,
            "subject": p.subject,
            "clip": p.clip,
            "frames_dir": str(folder),
            "onset": on,
            "apex": apex,
            "offset": off,
            "emotion": p.event.emotion,
            "expression": p.event.expression,
            "aus": format_aus(list(p.event.aus)),
            "amplitudes_px": amps,
            "blink": p.event.blink is not None,
            "fps": camera.fps,
            "camera": camera.kind,
            **extra,
            **{k: v for k, v in p.info.items() if k not in ("fps", "tail")},
        })  # fmt: skip
    return records, n_frames


def _size_record(cfg: Mapping, dbs: Iterable[str]) -> dict:
    """The size config as the manifest stores it: the SAMM / DFME entries only when written
    (so the manifest of the CDMER four does not change with them)."""
    dbs = set(dbs)
    return {k: v for k, v in cfg.items() if k not in EXTRA_DATABASES or k in dbs}


def _camera_names(db: str) -> list[str]:
    if db == "DFME":
        return [f"DFME_{int(f)}" for f in sorted(DFME_FRAME_RATES)]
    return [db]


def synthesize(
    out_dir: str | Path,
    *,
    seed: int = 0,
    databases: Iterable[str] = DEFAULT_DATABASES,
    size: str | Mapping = "default",
    overwrite: bool = False,
) -> dict:
    """Write synthetic CASME II / SMIC-HS / SMIC-VIS / SMIC-NIR (and SAMM / DFME) databases.

    Parameters
    ----------
    out_dir : path
        Output folder (created). Databases go to ``out_dir/CASME2``, ``out_dir/SMIC``,
        ``out_dir/SAMM`` and ``out_dir/DFME``.
    seed : int
        Everything is a function of the seed: same seed, byte-identical files.
    databases : iterable of str
        Any of :data:`DATABASES`: ``"CASME2"``, ``"SMIC_HS"``, ``"SMIC_VIS"``,
        ``"SMIC_NIR"`` (the default :data:`DEFAULT_DATABASES`), ``"SAMM"``, ``"DFME"``,
        ``"CASME1"`` (written to ``out_dir/CASME``), ``"4DME"``.
    size : str or dict
        A preset of :data:`SIZES` (``"tiny"``, ``"default"``, ``"large"``) or a dict
        overriding one, e.g. ``{"preset": "default", "CASME2": {"subjects": 20, "clips":
        10}, "SMIC_VIS": {"subjects": 6}, "scale": 2.0}``. ``scale`` multiplies every
        frame size (2.0 gives CASME II's real 280x340 crops); AU amplitudes scale with it.
    overwrite : bool
        Replace a database folder that already exists (otherwise raise).

    Returns
    -------
    dict
        ``{"root", "seed", "size", "manifest", "databases": {name: {"path", "annotation",
        "subjects", "clips", "frames", "fps", "camera", "classes"}}}``; ``classes``
        counts the native emotions. DFME: ``annotation`` lists the three sheets, ``fps``
        the frame rates used, ``parts`` gives ``{part: {"subjects", "clips"}}``.

    Raises
    ------
    ValueError
        Unknown database or size.
    FileExistsError
        A database folder exists and ``overwrite`` is False.
    PermissionError, NotADirectoryError
        ``out_dir`` cannot be written (checked before anything is drawn).
    """
    dbs = list(dict.fromkeys(databases))
    unknown = [d for d in dbs if d not in DATABASES]
    if unknown:
        raise ValueError(f"unknown databases {unknown}; choose from {list(DATABASES)}")
    if not dbs:
        raise ValueError("no database to write")
    cfg = _resolve_size(size)
    out = ensure_writable_dir(out_dir, "output folder")  # before any frame is drawn
    folders = {"CASME2": out / "CASME2", "SMIC_HS": out / "SMIC" / "HS",
               "SMIC_VIS": out / "SMIC" / "VIS", "SMIC_NIR": out / "SMIC" / "NIR",
               "SAMM": out / "SAMM", "DFME": out / "DFME",
               "CASME1": out / "CASME", "4DME": out / "4DME"}  # fmt: skip
    for db in dbs:
        if folders[db].exists() and any(folders[db].iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"{folders[db]} already exists and is not empty (pass overwrite=True)"
                )
            shutil.rmtree(folders[db])
    cams = {c: CAMERAS[c].scaled(cfg["scale"]) for db in DATABASES for c in _camera_names(db)}
    summary: dict = {"root": str(out), "seed": int(seed), "size": cfg, "databases": {}}
    manifest: list[dict] = []

    if "CASME2" in dbs:
        plans = plan_casme2(seed, cfg["CASME2"]["subjects"], cfg["CASME2"]["clips"])
        geoms = {
            s: FaceGeometry.random(_rng(seed, _POOL_CODE["CASME2"], 3, s), "east_asian")
            for s in range(cfg["CASME2"]["subjects"])
        }
        root = folders["CASME2"] / "Cropped"
        records, n = _write_database(
            "CASME2", plans, cams["CASME2"], geoms,
            lambda p: root / f"sub{p.subject}" / p.clip, lambda k: f"img{k}.jpg", seed,
        )  # fmt: skip
        sheet = folders["CASME2"] / SHEET_NAME
        write_casme2_sheet(sheet, records)
        manifest += records
        summary["databases"]["CASME2"] = _db_summary(folders["CASME2"], sheet, records, n,
                                                     cams["CASME2"])  # fmt: skip

    smic_dbs = [d for d in dbs if d.startswith("SMIC")]
    if smic_dbs:
        hs = cfg["SMIC_HS"]
        plans = plan_smic(seed, hs["subjects"], hs["clips"])
        geoms = {
            s: FaceGeometry.random(_rng(seed, _POOL_CODE["SMIC"], 3, s), "mixed")
            for s in range(hs["subjects"])
        }
        for db in smic_dbs:
            k = cfg[db]["subjects"] if db != "SMIC_HS" else hs["subjects"]
            sub = [p for p in plans if p.subject_index < k]
            root = folders[db]
            records, n = _write_database(
                db, sub, cams[db], geoms,
                lambda p, root=root: (root / p.subject / "micro" / p.event.emotion / p.clip),
                lambda k: f"image{k:06d}.bmp", seed,
            )  # fmt: skip
            annotation = None
            if db == "SMIC_HS":
                annotation = out / "SMIC" / SMIC_LIST_NAME
                write_smic_list(annotation, records)
            manifest += records
            summary["databases"][db] = _db_summary(root, annotation, records, n, cams[db])

    if "SAMM" in dbs:
        records, n = _write_samm(seed, cfg["SAMM"], cams["SAMM"], folders["SAMM"])
        manifest += records
        summary["databases"]["SAMM"] = _db_summary(folders["SAMM"],
                                                   folders["SAMM"] / SAMM_SHEET_NAME,
                                                   records, n, cams["SAMM"])  # fmt: skip

    if "DFME" in dbs:
        records, n = _write_dfme(seed, cfg["DFME"], cams, folders["DFME"])
        manifest += records
        info = _db_summary(folders["DFME"], None, records, n, cams["DFME_200"])
        info["annotation"] = [str(folders["DFME"] / sheet) for sheet, _ in DFME_PARTS.values()]
        info["fps"] = sorted({r["fps"] for r in records})
        info["parts"] = {
            part: {"subjects": len({r["subject"] for r in records if r["part"] == part}),
                   "clips": sum(r["part"] == part for r in records)}
            for part in DFME_PARTS
        }  # fmt: skip
        summary["databases"]["DFME"] = info

    if "CASME1" in dbs:
        records, n = _write_casme1(seed, cfg["CASME1"], cams["CASME1"], folders["CASME1"])
        manifest += records
        summary["databases"]["CASME1"] = _db_summary(folders["CASME1"],
                                                     folders["CASME1"] / CASME1_SHEET_NAME,
                                                     records, n, cams["CASME1"])  # fmt: skip

    if "4DME" in dbs:
        records, n = _write_4dme(seed, cfg["4DME"], cams["4DME"], folders["4DME"])
        manifest += records
        summary["databases"]["4DME"] = _db_summary(folders["4DME"],
                                                   folders["4DME"] / FOURD_SHEET_NAME,
                                                   records, n, cams["4DME"])  # fmt: skip

    for r in manifest:
        r["frames_dir"] = str(Path(r["frames_dir"]).relative_to(out).as_posix())
    man_path = out / MANIFEST_NAME
    man = {"seed": int(seed), "size": _size_record(cfg, dbs),
           "cameras": {c: _camera_dict(cams[c]) for db in dbs for c in _camera_names(db)},
           "clips": manifest}  # fmt: skip
    man_path.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    summary["manifest"] = str(man_path)
    log.info(
        "synthetic databases in %s: %s",
        out,
        ", ".join(f"{d} {v['clips']} clips" for d, v in summary["databases"].items()),
    )
    return summary


def _write_samm(seed: int, size: Mapping, camera: Camera, folder: Path) -> tuple[list[dict], int]:
    """Render the SAMM-style clips and write their coding sheet."""
    plans = plan_samm(seed, size["subjects"], size["clips"])
    pool = _POOL_CODE["SAMM"]
    geoms = {
        s: FaceGeometry.random(_rng(seed, pool, 3, s), "mixed") for s in range(size["subjects"])
    }
    records, n = _write_database(
        "SAMM", plans, camera, geoms,
        lambda p: folder / p.subject / p.clip, lambda p, k: f"{p.subject}_{k:05d}.jpg", seed,
    )  # fmt: skip
    for r, p in zip(records, plans, strict=True):
        r["objective_class"] = samm_objective_class(p.event.aus)
    write_samm_sheet(folder / SAMM_SHEET_NAME, records)
    return records, n


def _write_casme1(seed: int, size: Mapping, camera: Camera,
                  folder: Path) -> tuple[list[dict], int]:  # fmt: skip
    """Render the CASME I-style clips and write their coding sheet (sorted by subject
    number, then clip)."""
    plans = plan_casme1(seed, size["subjects"], size["clips"])
    pool = _POOL_CODE["CASME1"]
    geoms = {
        s: FaceGeometry.random(_rng(seed, pool, 3, s), "east_asian")
        for s in range(size["subjects"])
    }
    root = folder / "Cropped"
    records, n = _write_database(
        "CASME1", plans, camera, geoms,
        lambda p: root / f"sub{p.subject}" / p.clip, lambda k: f"img{k}.jpg", seed,
    )  # fmt: skip
    rows = [{**r, "subject": int(r["subject"])} for r in records]
    rows.sort(key=lambda r: (r["subject"], r["clip"]))
    write_casme1_sheet(folder / CASME1_SHEET_NAME, rows)
    return records, n


def _write_4dme(seed: int, size: Mapping, camera: Camera,
                folder: Path) -> tuple[list[dict], int]:  # fmt: skip
    """Render the 4DME-style clips and write their coding sheet."""
    plans = plan_4dme(seed, size["subjects"], size["clips"])
    pool = _POOL_CODE["4DME"]
    geoms = {
        s: FaceGeometry.random(_rng(seed, pool, 3, s), "mixed") for s in range(size["subjects"])
    }
    records, n = _write_database(
        "4DME", plans, camera, geoms,
        lambda p: folder / p.subject / p.clip, lambda k: f"{k}.jpg", seed,
    )  # fmt: skip
    rows = [{**r, "emotion": "+".join(e.capitalize() for e in r["emotions"])} for r in records]
    write_4dme_sheet(folder / FOURD_SHEET_NAME, rows)
    return records, n


def _write_dfme(seed: int, size: Mapping, cams: Mapping[str, Camera],
                folder: Path) -> tuple[list[dict], int]:  # fmt: skip
    """Render the DFME-style clips (one camera per frame rate) and write the three sheets."""
    plans = plan_dfme(seed, size["subjects"], size["clips"])
    pool = _POOL_CODE["DFME"]
    geoms = {
        s: FaceGeometry.random(_rng(seed, pool, 3, s), "east_asian")
        for s in range(size["subjects"])
    }
    by_key: dict[tuple[int, int], dict] = {}
    n = 0
    for fps in sorted(DFME_FRAME_RATES):
        sub = [p for p in plans if p.info["fps"] == fps]
        if not sub:
            continue
        name = f"DFME_{int(fps)}"
        records, k = _write_database(
            "DFME", sub, cams[name], geoms,
            lambda p: folder / DFME_PARTS[p.info["part"]][1] / p.clip, lambda k: f"{k:05d}.png",
            seed, code=_CAMERA_CODE[name],
            frame_range=lambda p, on, off: (0, off + p.info["tail"]),
        )  # fmt: skip
        n += k
        for p, r in zip(sub, records, strict=True):
            by_key[(p.subject_index, p.index)] = r
    records = [by_key[(p.subject_index, p.index)] for p in plans]
    for part, (sheet, _) in DFME_PARTS.items():
        rows = [r for r in records if r["part"] == part]
        write_dfme_sheet(folder / sheet, rows, test=part != "train")
    return records, n


def _db_summary(path: Path, annotation: Path | None, records: list[dict], n: int,
                camera: Camera) -> dict:  # fmt: skip
    classes: dict[str, int] = {}
    for r in records:
        classes[r["emotion"]] = classes.get(r["emotion"], 0) + 1
    return {
        "path": str(path),
        "annotation": str(annotation) if annotation else None,
        "subjects": len({r["subject"] for r in records}),
        "clips": len(records),
        "frames": n,
        "fps": camera.fps,
        "camera": camera.kind,
        "classes": dict(sorted(classes.items())),
    }


def _camera_dict(camera: Camera) -> dict:
    d = asdict(camera)
    d["lighting"] = asdict(camera.lighting)
    return d


__all__ = [
    "DATABASES",
    "DEFAULT_DATABASES",
    "DFME_EMOTION_AUS",
    "DFME_PARTS",
    "SAMM_EMOTION_AUS",
    "SIZES",
    "ClipPlan",
    "Event",
    "dfme_parts",
    "frame_times",
    "is_synthesized",
    "make_event",
    "plan_4dme",
    "plan_casme1",
    "plan_casme2",
    "plan_dfme",
    "plan_samm",
    "plan_smic",
    "render_clip",
    "samm_objective_class",
    "synthesize",
    "write_4dme_sheet",
    "write_casme1_sheet",
    "write_casme2_sheet",
    "write_dfme_sheet",
    "write_samm_sheet",
    "write_smic_list",
]


def is_synthesized(
    out_dir: str | Path,
    *,
    seed: int = 0,
    size: str | Mapping = "default",
    databases: Iterable[str] = DEFAULT_DATABASES,
) -> bool:
    """True when ``out_dir`` already holds ``databases`` written with this seed and size.

    Reads the manifest (``synthetic.json``) only; a caller can then reuse the folder
    instead of writing it again (the same seed gives byte-identical files).
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return False
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    written = {r.get("database") for r in man.get("clips", [])}
    if not set(databases) <= written:
        return False
    return man.get("seed") == int(seed) and man.get("size") == json.loads(
        json.dumps(_size_record(_resolve_size(size), written))
    )
