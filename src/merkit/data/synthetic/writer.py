"""Write synthetic micro-expression databases in the native on-disk layouts.

Layouts (identical to the real releases, so the adapters read both alike)::

    <out>/CASME2/Cropped/sub01/EP02_01f/img46.jpg ... img86.jpg   (onset..offset, colour JPEG)
    <out>/CASME2/CASME2-coding-synthetic.xlsx                      (the real sheet's columns)
    <out>/SMIC/HS/s01/micro/negative/s01_ne_01/image559740.bmp ... (onset..offset, 6 digits)
    <out>/SMIC/VIS/s01/micro/...    <out>/SMIC/NIR/s01/micro/...   (25 fps, no list)
    <out>/SMIC/smic-3classes.csv                                   (HS clips, no header)
    <out>/synthetic.json                                           (ground truth: AUs, amplitudes)

People: CASME II and SMIC draw from disjoint pools; SMIC-VIS and SMIC-NIR film the
first ``k`` SMIC-HS people at the same moments as the HS camera (as in the real
SMIC, where 8 of the 16 HS subjects were also filmed by the VIS and NIR cameras),
so one event gives three clips with the same clip name. An event is a set of AUs
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
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

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

DATABASES: tuple[str, ...] = ("CASME2", "SMIC_HS", "SMIC_VIS", "SMIC_NIR")
SHEET_NAME = "CASME2-coding-synthetic.xlsx"
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

#: subjects, clips per subject (VIS/NIR: subjects = the first k SMIC_HS people; their
#: clips are the HS clips of those people) and frame scale of each preset
SIZES: dict[str, dict] = {
    "tiny": {
        "CASME2": {"subjects": 3, "clips": 3},
        "SMIC_HS": {"subjects": 3, "clips": 3},
        "SMIC_VIS": {"subjects": 2},
        "SMIC_NIR": {"subjects": 2},
        "scale": 1.0,
    },
    "default": {
        "CASME2": {"subjects": 10, "clips": 8},
        "SMIC_HS": {"subjects": 8, "clips": 8},
        "SMIC_VIS": {"subjects": 4},
        "SMIC_NIR": {"subjects": 4},
        "scale": 1.0,
    },
    "large": {
        "CASME2": {"subjects": 24, "clips": 10},
        "SMIC_HS": {"subjects": 16, "clips": 10},
        "SMIC_VIS": {"subjects": 8},
        "SMIC_NIR": {"subjects": 8},
        "scale": 1.0,
    },
}

#: event duration onset -> offset in seconds (CASME II 49-97 frames, SMIC-HS 25-49,
#: VIS/NIR 6-13: all micro-expressions, under 500 ms)
DURATION_S: tuple[float, float] = (0.24, 0.48)
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

_POOL_CODE = {"CASME2": 1, "SMIC": 2}
_CAMERA_CODE = {"CASME2": 11, "SMIC_HS": 12, "SMIC_VIS": 13, "SMIC_NIR": 14}


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


def make_event(rng: np.random.Generator, emotion: str, expression: str, onset: float) -> Event:
    """Draw the AUs, amplitudes, timing and nuisances of one micro-expression."""
    combo = _pick(rng, EMOTION_AUS[expression])
    aus = tuple(sorted(parse_au(c) for c in combo))
    lo, hi = AMPLITUDE_PX
    factor = SUBTLE_FACTOR if expression in SUBTLE_EMOTIONS else 1.0
    amps = tuple(float(rng.uniform(lo, hi) * factor) for _ in aus)
    duration = float(rng.uniform(*DURATION_S))
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
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

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


_FIXED_TIME = "2014-05-08T00:00:00Z"


def _deterministic_zip(data: bytes) -> bytes:
    """Re-pack an xlsx with fixed timestamps (file dates and document properties)."""
    import re

    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                text = content.decode("utf-8")
                text = re.sub(r"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)",
                              rf"\g<1>{_FIXED_TIME}\g<2>", text)  # fmt: skip
                content = text.encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=(2014, 5, 8, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, content)
    return out.getvalue()


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
    for db in ("CASME2", "SMIC_HS"):
        if base[db]["subjects"] < 1 or base[db]["clips"] < 1:
            raise ValueError(f"size[{db!r}]: subjects and clips must be >= 1, got {base[db]}")
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
) -> tuple[list[dict], int]:
    """Render and write every clip of one database; returns the clip records and frame count."""
    noise = camera.noise_bank(int(_rng(seed, _CAMERA_CODE[db], 0).integers(2**31)))
    pattern = camera.noise_bank(int(_rng(seed, _CAMERA_CODE[db], 3).integers(2**31)), n=1)
    pattern = pattern[0, : camera.height, : camera.width]
    records = []
    n_frames = 0
    renderers: dict[int, FaceRenderer] = {}
    for p in plans:
        if p.subject_index not in renderers:
            renderers.clear()  # one person at a time: the plans are grouped by subject
            prng = _rng(seed, _CAMERA_CODE[db], 1, p.subject_index)
            offset = (float(prng.uniform(-2, 2)), float(prng.uniform(-2, 2)))
            renderers[p.subject_index] = FaceRenderer(
                geometries[p.subject_index], camera.framing(offset), camera.lighting
            )
        renderer = renderers[p.subject_index]
        on, apex, off = frame_times(p.event, camera.fps)
        frames = np.arange(on, off + 1)
        crng = _rng(seed, _CAMERA_CODE[db], 2, p.subject_index, p.index)
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
            _write_image(folder / frame_name(int(n)), img, camera)
        n_frames += len(images)
        amps = [round(a * camera.amplitude_scale, 4) for a in p.event.amplitudes]
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
        })  # fmt: skip
    return records, n_frames


def synthesize(
    out_dir: str | Path,
    *,
    seed: int = 0,
    databases: Iterable[str] = DATABASES,
    size: str | Mapping = "default",
    overwrite: bool = False,
) -> dict:
    """Write synthetic CASME II / SMIC-HS / SMIC-VIS / SMIC-NIR databases.

    Parameters
    ----------
    out_dir : path
        Output folder (created). Databases go to ``out_dir/CASME2`` and ``out_dir/SMIC``.
    seed : int
        Everything is a function of the seed: same seed, byte-identical files.
    databases : iterable of str
        Any of ``"CASME2"``, ``"SMIC_HS"``, ``"SMIC_VIS"``, ``"SMIC_NIR"``.
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
        counts the native emotions.

    Raises
    ------
    ValueError
        Unknown database or size.
    FileExistsError
        A database folder exists and ``overwrite`` is False.
    """
    dbs = list(dict.fromkeys(databases))
    unknown = [d for d in dbs if d not in DATABASES]
    if unknown:
        raise ValueError(f"unknown databases {unknown}; choose from {list(DATABASES)}")
    if not dbs:
        raise ValueError("no database to write")
    cfg = _resolve_size(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = {"CASME2": out / "CASME2", "SMIC_HS": out / "SMIC" / "HS",
               "SMIC_VIS": out / "SMIC" / "VIS", "SMIC_NIR": out / "SMIC" / "NIR"}  # fmt: skip
    for db in dbs:
        if folders[db].exists() and any(folders[db].iterdir()):
            if not overwrite:
                raise FileExistsError(
                    f"{folders[db]} already exists and is not empty (pass overwrite=True)"
                )
            shutil.rmtree(folders[db])
    cams = {db: CAMERAS[db].scaled(cfg["scale"]) for db in DATABASES}
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

    for r in manifest:
        r["frames_dir"] = str(Path(r["frames_dir"]).relative_to(out).as_posix())
    man_path = out / MANIFEST_NAME
    man = {"seed": int(seed), "size": cfg, "cameras": {db: _camera_dict(cams[db]) for db in dbs},
           "clips": manifest}  # fmt: skip
    man_path.write_text(json.dumps(man, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    summary["manifest"] = str(man_path)
    log.info(
        "synthetic databases in %s: %s",
        out,
        ", ".join(f"{d} {v['clips']} clips" for d, v in summary["databases"].items()),
    )
    return summary


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
    "SIZES",
    "ClipPlan",
    "Event",
    "frame_times",
    "make_event",
    "plan_casme2",
    "plan_smic",
    "render_clip",
    "synthesize",
    "write_casme2_sheet",
    "write_smic_list",
]


def is_synthesized(out_dir: str | Path, *, seed: int = 0, size: str | Mapping = "default") -> bool:
    """True when ``out_dir`` already holds databases written with this seed and size.

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
    return man.get("seed") == int(seed) and man.get("size") == json.loads(
        json.dumps(_resolve_size(size))
    )

