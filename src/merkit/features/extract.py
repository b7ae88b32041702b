"""Run preprocessing -> TIM -> descriptor over every clip of a Sample table, cached.

Per clip: frames ``onset..offset`` (grey) -> resized to ``size`` (or, with ``align``, the
face found on the onset frame is aligned and cropped to ``size`` with one similarity
transform for the whole clip, :func:`merkit.video.face.load_aligned_clip`) -> optionally
magnified (linear EVM at the clip's fps, :mod:`merkit.video.magnify`) -> TIM to
``length`` frames (:func:`merkit.video.tim.tim`) -> descriptor (registry spec,
:func:`merkit.features.registry.get_descriptor`).

Clips are described in parallel with joblib (``n_jobs``; the same numbers as a serial
run), on local processes or a Ray / Dask cluster (``backend``, ``address``:
:class:`merkit.parallel.Backend`) and, when a cache is given, each finished clip is stored
at once
(:mod:`merkit.features.cache`): a second run reads every vector back, an interrupted run
resumes with the clips it had not finished.

Feature files
-------------
:func:`save_feature_file` writes the features of one or several databases as
``F.npz`` + ``F.csv`` (+ ``F.skipped.csv`` when clips were dropped), and
:func:`load_feature_file` reads them back as one :class:`~merkit.data.schema.FeatureSet`
per database. ``F.npz`` (``numpy.load(..., allow_pickle=False)``) holds

``X`` (n, D) float32; ``y`` (n,) int64 (-1 when unlabelled); ``dataset``, ``subject``,
``clip`` (n,) str; ``blocks`` (D,) int64 block index of each column; ``levels`` block
levels; ``classes`` class names indexed by ``y``; 0-d strings ``format``
(``"merkit-features/1"``), ``descriptor`` (canonical spec), ``params`` and
``preprocess`` (JSON), ``scheme``, ``code_version``.

``F.csv`` is the Sample table of the same rows in the same order (with ``label`` / ``y``).
"""

from __future__ import annotations

import ast
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from merkit._io import atomic_write_csv, write_temporary
from merkit.data.features_io import read_feature_npz
from merkit.data.schema import FeatureSet
from merkit.features import c3d
from merkit.features.cache import (
    FEATURE_CODE_VERSION,
    MISSING,
    FeatureCache,
    canonical,
    clip_key,
    clip_source,
)
from merkit.features.layout import BlockLayout
from merkit.features.registry import Descriptor, get_descriptor, with_weights
from merkit.parallel import Backend, open_backend
from merkit.video.face import (
    DETECTORS,
    LANDMARK_MODES,
    FaceNotFoundError,
    landmark_model_available,
    load_aligned_clip,
)
from merkit.video.io import load_clip
from merkit.video.magnify import Magnification
from merkit.video.tim import tim

log = logging.getLogger(__name__)

__all__ = [
    "FEATURE_FILE_FORMAT",
    "ClipError",
    "Extraction",
    "FaceMissingError",
    "FeatureFile",
    "Preprocess",
    "check_clip_shape",
    "configure_descriptor",
    "describe_clip",
    "extract",
    "extract_features",
    "feature_file_paths",
    "load_feature_file",
    "save_feature_file",
]

FEATURE_FILE_FORMAT = "merkit-features/1"


class ClipError(ValueError):
    """Describing one clip failed (unreadable frames, bad range...); names the clip."""

    def __init__(self, message: str, clip: str = "") -> None:
        super().__init__(message, clip)
        self.clip = clip

    def __str__(self) -> str:
        return str(self.args[0])


class FaceMissingError(ClipError):
    """Aligned extraction found no face on the onset frame of a clip."""


def _clip_name(row: Mapping) -> str:
    subject = str(row.get("subject"))
    if "/" not in subject:
        subject = f"{row.get('dataset')}/{subject}"
    return f"{subject}/{row.get('clip')}"


@dataclass(frozen=True)
class Preprocess:
    """How a clip becomes the fixed-size grey volume a descriptor sees.

    Attributes
    ----------
    size : (H, W)
        Frame size after resizing / aligned cropping (112 x 112 in the CDMER benchmark).
    length : int
        TIM output frames (16 in the CDMER benchmark).
    align : bool
        Detect the face on the onset frame and align/crop every frame with one similarity
        transform (:func:`merkit.video.face.load_aligned_clip`). Off by default: the CASME II
        "Cropped" and SMIC cropped releases (and the synthetic databases) are already faces.
    detector, landmarks, margin
        Alignment options (:func:`merkit.video.face.align_clip`); ``"auto"`` resolves to
        dlib when installed, else the Haar cascade without landmarks.
    magnify : Magnification, mapping or None
        Linear Eulerian video magnification of the frames before TIM, at each clip's
        ``fps`` (:mod:`merkit.video.magnify`); None (the default) leaves them as read.
    """

    size: tuple[int, int] = (112, 112)
    length: int = 16
    align: bool = False
    detector: str = "auto"
    landmarks: str = "auto"
    margin: float = 0.1
    magnify: Magnification | None = None

    def __post_init__(self) -> None:
        if isinstance(self.magnify, Mapping):
            object.__setattr__(self, "magnify", Magnification(**self.magnify))
        elif self.magnify is not None and not isinstance(self.magnify, Magnification):
            raise ValueError(f"magnify must be a Magnification or None, got {self.magnify!r}")
        size = tuple(int(v) for v in self.size)
        if len(size) != 2 or min(size) < 8:
            raise ValueError(f"frame size must be (H, W) with sides >= 8, got {self.size!r}")
        object.__setattr__(self, "size", size)
        if int(self.length) < 2:
            raise ValueError(f"TIM length must be at least 2, got {self.length}")
        object.__setattr__(self, "length", int(self.length))

        if self.detector not in DETECTORS:
            raise ValueError(
                f"unknown face detector {self.detector!r}; expected one of {DETECTORS}"
            )
        if self.landmarks not in LANDMARK_MODES:
            raise ValueError(f"landmarks={self.landmarks!r}; expected one of {LANDMARK_MODES}")
        if not 0.0 <= float(self.margin) < 1.0:
            raise ValueError(f"face margin must be in [0, 1), got {self.margin}")

    def resolved(self) -> Preprocess:
        """``"auto"`` options replaced by what this installation uses."""
        if not self.align:
            return self

        dlib = landmark_model_available()
        detector = self.detector if self.detector != "auto" else ("dlib" if dlib else "haar")
        landmarks = self.landmarks if self.landmarks != "auto" else ("dlib" if dlib else "none")
        return replace(self, detector=detector, landmarks=landmarks)

    def key(self) -> dict[str, Any]:
        """Parameters that change the numbers (alignment options only when aligning,
        ``magnify`` only when magnifying)."""
        d = asdict(replace(self.resolved(), magnify=None))
        d.pop("magnify")
        if not self.align:
            for k in ("detector", "landmarks", "margin"):
                d.pop(k)
        if self.magnify is not None:
            d["magnify"] = self.magnify.key()
        return d

    def load(self, row: Mapping) -> np.ndarray:
        """Frames of one clip, (T, H, W) float32 in 0..255, before TIM.

        Raises
        ------
        merkit.video.face.FaceNotFoundError
            With ``align``, when the onset frame shows no face.
        """
        if not self.align:
            return self._magnified(row, load_clip(row, size=self.size, grey=True))

        p = self.resolved()
        frames, _ = load_aligned_clip(
            row,
            size=p.size,
            grey=True,
            margin=p.margin,
            landmarks=p.landmarks,
            detector=p.detector,
            on_missing="raise",
        )
        return self._magnified(row, frames)

    def _magnified(self, row: Mapping, frames: np.ndarray) -> np.ndarray:
        if self.magnify is None:
            return frames
        return self.magnify.apply_to_row(frames, row)


def configure_descriptor(
    descriptor: str | Descriptor,
    layout: BlockLayout | str | None = None,
    weights: str | Path | None = None,
) -> Descriptor:
    """The registry descriptor of a spec, with its block levels replaced by ``layout``'s
    and, for ``c3d``, its weights file attached (checked, :func:`registry.with_weights`).

    The descriptor's block order and partition are kept (``lbp_top_cdmer`` stays
    column-major with the benchmark's partition).

    Raises
    ------
    UnknownDescriptorError
        (a KeyError) Unknown family.
    ValueError
        Malformed spec, a block layout for a descriptor without blocks (``mdmo``), weights
        for a descriptor that takes none or none for ``c3d``.
    FileNotFoundError, merkit.features.c3d.C3DWeightsError
        The weights file is missing or not a C3D state dict.
    """
    desc = descriptor if isinstance(descriptor, Descriptor) else get_descriptor(descriptor)
    desc = with_weights(desc, weights)
    if layout is None:
        return desc
    levels = layout.levels if isinstance(layout, BlockLayout) else BlockLayout.parse(layout).levels
    if "layout" not in desc.params:
        raise ValueError(f"descriptor {desc.name} does not take a block layout (got {layout!s})")
    new = BlockLayout(levels, order=desc.layout.order, partition=desc.layout.partition)
    return replace(desc, layout=new, params={**desc.params, "layout": new})


def check_clip_shape(desc: Descriptor, preprocess: Preprocess | None) -> None:
    """Raise ValueError when ``desc`` needs another clip size than ``preprocess`` gives
    (``c3d``: 16 frames of 112 x 112)."""
    pre = preprocess or Preprocess()
    if desc.family == "c3d" and (pre.length, *pre.size) != c3d.CLIP_SHAPE:
        t, h, w = c3d.CLIP_SHAPE
        raise ValueError(
            f"{desc.name} takes {t}-frame {h}x{w} clips, not {pre.length} frames of "
            f"{pre.size[0]}x{pre.size[1]}; use --size {h} --length {t} (the defaults)"
        )


def _descriptor_key(desc: Descriptor) -> dict[str, Any]:
    # a weights file counts by its digest (a parameter too), not by where it lies
    return {
        "name": desc.name,
        "params": {k: v for k, v in desc.params.items() if k != "weights"},
        "dim": desc.dim,
        "column_order": desc.column_order,
    }


def describe_clip(
    row: Mapping, descriptor: Descriptor, preprocess: Preprocess, *, on_missing: str = "raise"
) -> np.ndarray:
    """Feature vector of one clip (1-D float32); the zero-length vector when the clip has no
    face and ``on_missing == "skip"``.

    Raises
    ------
    FaceMissingError
        No face on the onset frame (``align`` with ``on_missing == "raise"``).
    ClipError
        Frames missing or unreadable, bad range, or a descriptor that rejects the clip; the
        message names the clip and the cause.
    """
    name = _clip_name(row)
    try:
        frames = preprocess.load(row)
        clip = tim(frames, preprocess.length)
        vec = np.asarray(descriptor(clip), dtype=np.float32).ravel()
    except FaceNotFoundError as exc:
        p = preprocess.resolved()
        msg = f"clip {name}: no face found on the onset frame ({p.detector} detector)"
        if on_missing == "skip":
            log.info("%s; skipped", msg)
            return MISSING.copy()
        raise FaceMissingError(msg, name) from exc
    except (OSError, ValueError, cv2.error) as exc:
        raise ClipError(f"clip {name}: {exc}", name) from exc
    except Exception as exc:
        exc.add_note(f"while describing clip {name} with {descriptor.name}")
        raise
    if vec.size != descriptor.dim:
        raise ClipError(
            f"clip {name}: {descriptor.name} returned {vec.size} values, expected {descriptor.dim}",
            name,
        )
    return vec


def _compute_clip(
    row: dict,
    descriptor: Descriptor,
    preprocess: Preprocess,
    on_missing: str,
    cache_dir: str | None,
    key: str | None,
) -> np.ndarray:
    """Worker: describe one clip and store it in the cache before returning it."""
    vec = describe_clip(row, descriptor, preprocess, on_missing=on_missing)
    if cache_dir is not None and key is not None:
        FeatureCache(cache_dir).save(descriptor.name, key, vec)
    return vec


@dataclass
class Extraction:
    """What :func:`extract` produced.

    Attributes
    ----------
    features : FeatureSet
        Rows of the described clips, table order (skipped clips removed).
    skipped : DataFrame
        ``dataset, subject, clip, reason`` of the clips dropped (no face, skip mode).
    computed, cached : int
        Clips described now / read from the cache.
    descriptor : Descriptor
    preprocess : Preprocess
    """

    features: FeatureSet
    skipped: pd.DataFrame
    computed: int
    cached: int
    descriptor: Descriptor
    preprocess: Preprocess = field(default_factory=Preprocess)


_SKIPPED_COLUMNS = ("dataset", "subject", "clip", "reason")


def extract(
    table: pd.DataFrame,
    descriptor: str | Descriptor = "lbp_top:r3p8",
    *,
    layout: BlockLayout | str | None = None,
    preprocess: Preprocess | None = None,
    n_jobs: int = 1,
    cache: FeatureCache | str | Path | None = None,
    on_missing: str = "raise",
    classes: tuple[str, ...] = (),
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
    backend: str | Backend = "loky",
    address: str | None = None,
) -> Extraction:
    """Describe every clip of ``table`` (see the module docstring).

    Parameters
    ----------
    table : DataFrame
        A validated Sample table (one database or several).
    descriptor : str or Descriptor
        Registry spec, e.g. ``"lbp_top:r3p8"``.
    layout : BlockLayout or str, optional
        Block levels replacing the descriptor's (default 1, 2, 4, 8 -> 85 blocks).
    preprocess : Preprocess, optional
        Size, TIM length and alignment (default 112 x 112, 16 frames, no alignment).
    n_jobs : int
        joblib workers over clips; the numbers equal the serial run's.
    backend, address
        ``"loky"`` (local processes), ``"ray"`` or ``"dask"`` (the cluster at ``address``,
        or a local one of ``n_jobs`` workers for the call), or an open
        :class:`merkit.parallel.Backend`. Workers of a cluster at an address store no
        cache entries themselves (they may not see this file system): this process does.
    cache : FeatureCache or path, optional
        Per-clip cache; None computes everything and stores nothing.
    on_missing : {"raise", "skip"}
        With alignment, a clip without a face raises :class:`FaceMissingError`, or is
        dropped and listed in :attr:`Extraction.skipped` (with a warning).
    classes, name
        Class names indexed by ``y`` and the domain name of the FeatureSet.
    progress : callable, optional
        Called with the number of clips finished (cached ones at once, then one by one).

    Returns
    -------
    Extraction
    """
    if on_missing not in ("raise", "skip"):
        raise ValueError(f"on_missing={on_missing!r}; expected 'raise' or 'skip'")
    desc = configure_descriptor(descriptor, layout)
    pre = (preprocess or Preprocess()).resolved()
    check_clip_shape(desc, pre)
    if isinstance(cache, (str, Path)):
        cache = FeatureCache(cache)
    rows = table.to_dict("records")
    if not rows:
        raise ValueError("no clips to describe: the Sample table is empty")

    vectors: list[np.ndarray | None] = [None] * len(rows)
    keys: list[str | None] = [None] * len(rows)
    n_cached = 0
    if cache is not None:
        dkey, pkey = _descriptor_key(desc), pre.key()
        for i, row in enumerate(rows):
            try:
                source = clip_source(row, cache.digests)
            except (OSError, ValueError) as exc:
                raise ClipError(f"clip {_clip_name(row)}: {exc}", _clip_name(row)) from exc
            keys[i] = clip_key(row, dkey, pkey, source=source)
            vectors[i] = cache.load(desc.name, keys[i], desc.dim)
        n_cached = sum(v is not None for v in vectors)
        if progress is not None and n_cached:
            progress(n_cached)
    todo = [i for i, v in enumerate(vectors) if v is None]
    cache_dir = str(cache.directory) if cache is not None else None
    if todo:
        log.info(
            "%s: describing %d clip(s), %d from the cache (%s)",
            desc.name,
            len(todo),
            n_cached,
            cache if cache is not None else "no cache",
        )
        with open_backend(backend, n_jobs, address) as be:
            in_worker = cache_dir if be.shares_filesystem else None
            results = be.map(
                (_compute_clip, (rows[i], desc, pre, on_missing, in_worker, keys[i])) for i in todo
            )
            for i, vec in zip(todo, results, strict=True):
                vectors[i] = vec
                if cache is not None and in_worker is None:
                    cache.save(desc.name, keys[i], vec)
                if progress is not None:
                    progress(1)

    skipped = []
    for row, vec in zip(rows, vectors, strict=True):
        if vec is not None and vec.size == 0:
            reason = f"no face on the onset frame ({pre.detector} detector)"
            if on_missing == "raise":
                raise FaceMissingError(f"clip {_clip_name(row)}: {reason}", _clip_name(row))
            skipped.append({"dataset": row["dataset"], "subject": row["subject"],
                            "clip": row["clip"], "reason": reason})  # fmt: skip
    keep = np.array([v.size > 0 for v in vectors], dtype=bool)
    if skipped:
        log.warning(
            "%d clip(s) dropped, no face found on the onset frame: %s",
            len(skipped),
            ", ".join(_clip_name(s) for s in skipped),
        )
    if not keep.any():
        raise ValueError(f"no clip left to describe: all {len(rows)} clips were skipped")
    X = np.vstack([v for v in vectors if v.size > 0]).astype(np.float32, copy=False)
    kept = table.loc[keep].reset_index(drop=True) if not keep.all() else table
    fs = FeatureSet(
        X,
        kept,
        name=name or "+".join(sorted(table["dataset"].astype(str).unique())),
        classes=classes,
        blocks=desc.column_blocks(),
        levels=desc.layout.levels,
    )
    log.info(
        "described %d clips with %s: X %s (%d computed, %d cached)",
        len(kept),
        desc.name,
        X.shape,
        len(todo),
        n_cached,
    )
    return Extraction(
        fs,
        pd.DataFrame(skipped, columns=list(_SKIPPED_COLUMNS)),
        computed=len(todo),
        cached=n_cached,
        descriptor=desc,
        preprocess=pre,
    )


def extract_features(
    table: pd.DataFrame,
    descriptor: str = "lbp_top:r3p8",
    *,
    layout: BlockLayout | str | None = None,
    size: tuple[int, int] = (112, 112),
    length: int = 16,
    n_jobs: int = 1,
    classes: tuple[str, ...] = (),
    name: str | None = None,
    progress: Callable[[int], None] | None = None,
    cache: FeatureCache | str | Path | None = None,
    align: bool = False,
    on_missing: str = "raise",
) -> FeatureSet:
    """Describe every clip of ``table``: frames -> ``size`` -> TIM ``length`` -> descriptor.

    A shortcut for :func:`extract` returning only the FeatureSet (``X`` (n, D) float32 in
    table order, block layout attached); see there for the parameters.
    """
    return extract(
        table,
        descriptor,
        layout=layout,
        preprocess=Preprocess(size=size, length=length, align=align),
        n_jobs=n_jobs,
        cache=cache,
        on_missing=on_missing,
        classes=classes,
        name=name,
        progress=progress,
    ).features


# ----------------------------------------------------------------------------- files
def feature_file_paths(path: str | Path) -> tuple[Path, Path, Path]:
    """``(F.npz, F.csv, F.skipped.csv)`` for ``F`` or ``F.npz``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix.lower() == ".npz" else path
    return (
        stem.with_name(stem.name + ".npz"),
        stem.with_name(stem.name + ".csv"),
        stem.with_name(stem.name + ".skipped.csv"),
    )


def save_feature_file(
    features: FeatureSet | Mapping[str, FeatureSet],
    path: str | Path,
    *,
    descriptor: str | Descriptor,
    preprocess: Preprocess | Mapping | None = None,
    scheme: str = "",
    skipped: pd.DataFrame | None = None,
) -> tuple[Path, Path]:
    """Write features (one FeatureSet or several databases) as ``F.npz`` + ``F.csv``.

    Both files are written to temporary names first and then renamed. ``F.skipped.csv``
    lists dropped clips when ``skipped`` has rows (a stale one is removed otherwise).

    Returns
    -------
    (npz path, csv path)
    """
    sets = [features] if isinstance(features, FeatureSet) else list(features.values())
    if not sets:
        raise ValueError("no features to write")
    desc = descriptor if isinstance(descriptor, Descriptor) else get_descriptor(descriptor)
    dims = {fs.X.shape[1] for fs in sets}
    if len(dims) != 1:
        raise ValueError(f"feature sets have different widths {sorted(dims)}; one descriptor only")
    classes = sets[0].classes
    for fs in sets[1:]:
        if fs.classes != classes:
            raise ValueError(
                f"class lists differ: {sets[0].name} {classes} vs {fs.name} {fs.classes}"
            )
    tables = []
    for fs in sets:
        t = fs.table.copy()
        t["dataset"] = t["dataset"].astype(str)
        tables.append(t)
    table = pd.concat(tables, ignore_index=True)
    X = np.vstack([fs.X for fs in sets]).astype(np.float32, copy=False)
    y = (
        np.asarray(table["y"], dtype=np.int64)
        if "y" in table.columns
        else np.full(len(table), -1, dtype=np.int64)
    )
    blocks = sets[0].blocks if sets[0].blocks is not None else np.zeros(0, dtype=np.int64)
    levels = np.asarray(sets[0].levels or (), dtype=np.int64)
    if isinstance(preprocess, Preprocess):
        pre_json = json.dumps(preprocess.key(), sort_keys=True)
    else:
        pre_json = json.dumps(dict(preprocess or {}), sort_keys=True, default=str)

    arrays = {
        "X": X,
        "y": y,
        "dataset": table["dataset"].astype(str).to_numpy(dtype=str),
        "subject": table["subject"].astype(str).to_numpy(dtype=str),
        "clip": table["clip"].astype(str).to_numpy(dtype=str),
        "blocks": np.asarray(blocks, dtype=np.int64),
        "levels": levels,
        "classes": np.asarray(classes, dtype=str),
        "format": np.asarray(FEATURE_FILE_FORMAT),
        "descriptor": np.asarray(desc.name),
        "params": np.asarray(json.dumps(canonical(desc.params), sort_keys=True)),
        "preprocess": np.asarray(pre_json),
        "scheme": np.asarray(scheme),
        "code_version": np.asarray(FEATURE_CODE_VERSION),
    }
    npz, csv, skipped_csv = feature_file_paths(path)
    npz.parent.mkdir(parents=True, exist_ok=True)
    # both written to temporary names before either is renamed: the pair stays consistent
    tmp_npz = write_temporary(npz, lambda fh: np.savez(fh, **arrays))
    try:
        tmp_csv = write_temporary(csv, lambda fh: table.to_csv(fh, index=False), binary=False)
    except BaseException:
        tmp_npz.unlink(missing_ok=True)
        raise
    os.replace(tmp_csv, csv)
    os.replace(tmp_npz, npz)
    if skipped is not None and len(skipped):
        atomic_write_csv(skipped_csv, skipped)
    else:
        skipped_csv.unlink(missing_ok=True)
    log.info("wrote %s (X %s) and %s", npz, X.shape, csv)
    return npz, csv


@dataclass
class FeatureFile:
    """A merkit feature file read back (:func:`load_feature_file`).

    Attributes
    ----------
    features : dict
        Dataset name -> FeatureSet (order of first appearance in the file).
    descriptor : str
        Canonical descriptor spec.
    params, preprocess : dict
        Descriptor parameters and preprocessing, as stored.
    scheme : str
        Label scheme of ``y``.
    skipped : DataFrame
        Clips dropped at extraction (``F.skipped.csv``), possibly empty.
    path : Path
        The ``.npz`` file.
    """

    features: dict[str, FeatureSet]
    descriptor: str
    params: dict
    preprocess: dict
    scheme: str
    skipped: pd.DataFrame
    path: Path


_TUPLE_COLUMNS = ("aus", "au_sides", "au_intensities")


def _parse_tuple(value: Any) -> tuple:
    if isinstance(value, tuple):
        return value
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
    if not text:
        return ()
    try:
        parsed = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return (text,)
    return tuple(parsed) if isinstance(parsed, (tuple, list)) else (parsed,)


def load_feature_file(path: str | Path) -> FeatureFile:
    """Read ``F.npz`` (+ ``F.csv``) written by :func:`save_feature_file`.

    Raises
    ------
    FileNotFoundError
        No such ``.npz``.
    ValueError
        Not a merkit feature file, or ``F.csv`` does not list the same clips in the same order.
    """
    npz, csv, skipped_csv = feature_file_paths(path)
    if not npz.is_file():
        raise FileNotFoundError(f"feature file {npz} does not exist")

    # unreadable, incomplete or inconsistent files: one line naming the file
    data = read_feature_npz(npz, expected_format=FEATURE_FILE_FORMAT)
    X = data["X"]
    n = X.shape[0]
    ids = pd.DataFrame({"dataset": data["dataset"], "subject": data["subject"],
                        "clip": data["clip"]}).astype(str)  # fmt: skip
    if csv.is_file():
        table = pd.read_csv(csv, dtype={c: str for c in ("dataset", "subject", "clip")},
                            keep_default_na=True)  # fmt: skip
        for c in _TUPLE_COLUMNS:
            if c in table.columns:
                table[c] = [_parse_tuple(v) for v in table[c]]
        if "apex" in table.columns:
            table["apex"] = pd.to_numeric(table["apex"]).astype("Int64")
        same = len(table) == n and (table[["dataset", "subject", "clip"]].astype(str).to_numpy()
                                    == ids.to_numpy()).all()  # fmt: skip
        if not same:
            raise ValueError(
                f"{csv} does not list the clips of {npz} in the same order ({len(table)} rows "
                f"vs {n}); re-run 'merkit extract'"
            )
    else:
        log.warning("%s: no Sample table %s; using the clip ids stored in the .npz", npz, csv)
        table = ids.copy()
    classes = tuple(str(c) for c in data["classes"])
    y = data["y"].astype(np.int64)
    table["y"] = y
    if "label" not in table.columns and classes and (y >= 0).all():
        table["label"] = [classes[i] for i in y]
    blocks = data["blocks"] if data["blocks"].size else None
    levels = tuple(int(v) for v in data["levels"]) or None
    features: dict[str, FeatureSet] = {}
    datasets = ids["dataset"].to_numpy()
    for name in dict.fromkeys(datasets.tolist()):
        mask = datasets == name
        features[name] = FeatureSet(
            X[mask],
            table.loc[mask].reset_index(drop=True),
            name=name,
            classes=classes,
            blocks=blocks,
            levels=levels,
        )
    skipped = (
        pd.read_csv(skipped_csv, dtype=str)
        if skipped_csv.is_file()
        else pd.DataFrame(columns=list(_SKIPPED_COLUMNS))
    )
    return FeatureFile(
        features=features,
        descriptor=str(data["descriptor"]),
        params=json.loads(str(data["params"])),
        preprocess=json.loads(str(data["preprocess"])),
        scheme=str(data["scheme"]),
        skipped=skipped,
        path=npz,
    )
