"""Train deep models under a protocol: clips (or a flow folder) -> inputs -> folds -> results.

This is ``merkit train`` (:func:`run_train`). The
protocols and their tasks are those of :mod:`merkit.protocols.deep` (cde, cdmer, loso,
kfold, au); the training loop is :func:`merkit.nets.train.train_fold`, or for the
networks with a fold-batched path (STSTNet) all folds of a seed at once
(:mod:`merkit.nets.fold_batched`, ``fold_batching``); no early stopping, no model
selection: every fold trains for the preset's epochs and its last weights predict its
test clips.

Inputs
------
Flow networks get the onset -> apex TV-L1 flow image of each clip (28 x 28, u, v,
strain, values 0..255; :data:`FLOW_IMAGE_PARAMS`), 3-D networks the onset..offset frames
(grey, :data:`CLIP_PARAMS`: face-aligned, 112 x 112, TIM to 16 frames, values / 255),
flow-sequence networks (MERSiam) key-frame flow sequences (:data:`FLOWSEQ_PARAMS`: 10
TV-L1 flows onset -> key frame, u, v, strain, 112 x 112, 0..255). All are computed from
databases in their native layouts (``data_dir``) and cached as ``.npy`` per clip under
``<cache>/flows`` / ``<cache>/clips`` / ``<cache>/flowseqs``, keyed by the clip and the
parameters. ``flows_dir`` reads the MEGC 2019 composite flow folder instead (3-class
labels of CASME II, SMIC-HS and SAMM: protocol ``cde`` and the ``SMIC_HS-3`` LOSO task;
for MERSiam each image is a flow sequence of length 1).
Flow images (28 x 28 x 3) are held in memory; cached clip volumes stay on disk and are
read clip by clip for each mini-batch (:class:`merkit.nets.data.ClipArray`, ``workers``
loader processes), so memory does not grow with the number of clips; without a cache
(``cache=False``) they are held in memory. Both give the same numbers
(docs/data-at-scale.md).

Output folder
-------------
``results.csv`` / ``predictions.csv``
    The results store (rows as documented in :mod:`merkit.protocols.deep`; ``mean_f1``
    is UF1), one row per protocol / task / model / seed (per AU for ``au``).
``summary.csv``
    :func:`merkit.protocols.deep.summarize` of this call's rows.
``history.csv``
    Learning curves, one block per trained fold: ``protocol, task, method`` (the model),
    ``seed, fold`` (held-out subject or fold id), ``epoch`` (1-based), ``loss, accuracy,
    lr`` (+ ``val_loss, val_accuracy`` when present). Blocks of the same (protocol, task,
    method, seed, fold) are replaced; the file is rewritten atomically.
``embeddings/<protocol>__<task>__<model>__seed<seed>.npz``
    ``z`` (n_test x d float32: penultimate features of each test clip from its own fold's
    model), ``y_true``, ``y_pred`` (int64; ``(n,)`` classes, or ``(n, n_aus)`` 0/1 for
    ``au``), ``sample_id`` (``"<subject>/<clip>"``), ``classes`` (class or AU names) and
    ``fold``; rows in task-table order over the folds run.
``folds/<run>/seed<s>/<fold>.csv`` (+ ``.history.csv``, ``.npz``)
    Each fold's predictions (with probabilities and seconds), history and features: the
    resume cache, folds found there are not retrained.
``weights/<run>/seed<s>/<fold>.pth``, ``weights/<run>/model.json``
    State dicts (``torch.load(..., weights_only=True)``; not with ``fold_weights=False``)
    and the model card
    (:mod:`merkit.nets.predict`); with ``final``, ``weights/<run>/final.pth`` + ``.json``
    trained on every clip any fold trains on.
``run.json``
    What the last call ran: ``runs`` (task -> run), data fingerprints, settings, and
    ``seeds``: every seed trained into those runs, by this call and earlier ones.

``<run>`` is ``<model>-<hash>`` of the protocol, task, data and settings, so other
settings never resume from these folds.

Where folds train
-----------------
In this process (``n_jobs=1``), in ``n_jobs`` local processes, or on a Ray / Dask cluster
(``backend``, ``address``: :class:`merkit.parallel.Backend`), one fold per job; the inputs
go to a cluster once, and the files are the same wherever folds train
(``docs/cluster-training.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from rich.console import Console

from merkit._io import atomic_write, ensure_writable_dir
from merkit._progress import progress_bar
from merkit.data.adapters import discover
from merkit.features.cache import clip_source
from merkit.features.extract import Preprocess
from merkit.parallel import Backend
from merkit.protocols.composite import CDE
from merkit.protocols.deep import (
    DeepProtocol,
    DeepTask,
    Fold,
    TaskSpec,
    deep_protocol,
    make_task,
    resolve_specs,
    summarize,
    with_training_copies,
)
from merkit.results.audit import FoldAudit, leak_audit
from merkit.store import (
    ResultStore,
    embeddings_path,
    fold_paths,
    params_to_json,
    read_fold,
    read_fold_audit,
    read_run_info,
    write_audit,
    write_embeddings,
    write_fold,
    write_history,
    write_run_info,
    write_skipped,
    write_summary_table,
)
from merkit.video.face import FaceNotFoundError
from merkit.video.flow import KEYFRAMES, flow_images, flow_sequences
from merkit.video.magnify import Magnification
from merkit.workflows.databases import cache_folder, load_databases, scheme_classes, skipped_clips

if TYPE_CHECKING:
    from merkit.nets.data import ClipArray

log = logging.getLogger(__name__)

__all__ = [
    "CLIP_PARAMS",
    "FLOWSEQ_PARAMS",
    "FLOW_IMAGE_PARAMS",
    "TrainResult",
    "clip_inputs",
    "composite_flows_from_data",
    "flow_inputs",
    "flowseq_inputs",
    "magnify_augment_factors",
    "preset_for",
    "read_fold_epochs",
    "run_train",
    "summary_table",
]

#: how flow images are computed from clips (:func:`flow_inputs`)
FLOW_IMAGE_PARAMS: dict = {"align": True, "face_size": [112, 112], "margin": 0.1,
                           "detector": "auto", "landmarks": "auto", "preset": "default",
                           "strain": True, "size": [28, 28]}  # fmt: skip
#: how clip volumes are made for the 3-D networks (:func:`clip_inputs`)
CLIP_PARAMS: dict = {"align": True, "size": [112, 112], "length": 16, "margin": 0.1,
                     "detector": "auto", "landmarks": "auto"}  # fmt: skip
#: how key-frame flow sequences are made for MERSiam (:func:`flowseq_inputs`; DFME's
#: setting: 10 flows of 112 x 112)
FLOWSEQ_PARAMS: dict = {"align": True, "face_size": [112, 112], "margin": 0.1,
                        "detector": "auto", "landmarks": "auto", "preset": "default",
                        "size": [112, 112], "length": 10, "keyframes": "motion"}  # fmt: skip
#: the flow sequence of a MEGC 2019 flow image: its one onset -> apex flow
_RELEASED_SEQUENCE = {"length": 1, "keyframes": "apex"}
#: tasks the MEGC 2019 flow folder can feed (its labels are the 3 composite classes)
_FLOW_FOLDER_TASKS = {("cde", "composite"), ("loso", "SMIC_HS-3")}
_FINAL_FOLD_INDEX = 99_991
#: folds of one process train one at a time (a Dask worker may run jobs in threads; torch's
#: random state and thread count belong to the process)
_FOLD_LOCK = threading.Lock()
#: clips computed (and held in memory) at a time per worker when the cache is filled for
#: on-disk inputs
_COMPUTE_CHUNK = 32


def preset_for(model: str, protocol: str) -> str:
    """The :data:`merkit.nets.train.PRESETS` entry a model trains with under a protocol.

    STSTNet and RCN-A keep their authors' settings; the others use FR's: ``fr_cde`` (SGD
    lr 1e-3, no momentum) for CDE, ``fr_cdmer`` (SGD lr 5e-4, momentum 0.8, batch 32;
    also FR's single-database setting) otherwise.
    """
    from merkit.nets import training_preset

    own = training_preset(model)
    if own is not None:
        return own
    return "fr_cde" if protocol == "cde" else "fr_cdmer"


# --------------------------------------------------------------------------- inputs
def _clip_key(row: pd.Series, params: dict, kind: str = "flow", digests: Path | None = None) -> str:
    """Cache key of one clip's input: its identity, the bytes of its frames (or video file,
    :func:`merkit.features.cache.clip_source`) and the parameters, so a frame replaced by
    another of the same size and mtime is computed again."""
    ident = {k: str(row.get(k, "")) for k in ("dataset", "subject", "clip", "onset", "apex",
                                               "offset", "frames_dir", "video_path")}  # fmt: skip
    try:
        source = clip_source(row, digests)
    except (OSError, ValueError) as exc:
        raise ValueError(f"clip {ident['subject']}/{ident['clip']}: {exc}") from exc
    body: dict = {"clip": ident, "source": source, "params": params, "kind": kind}
    return hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def _cached_arrays(
    table: pd.DataFrame, params: dict, folder: Path | None, kind: str, compute,
    memo: dict | None,
) -> list[np.ndarray]:  # fmt: skip
    digests = None if folder is None else folder / "digests"
    keys = [_clip_key(r, params, kind, digests) for _, r in table.iterrows()]
    out: list[np.ndarray | None] = [None] * len(table)
    for i, k in enumerate(keys):
        if memo is not None and k in memo:
            out[i] = memo[k]
        elif folder is not None and (folder / f"{k}.npy").is_file():
            out[i] = np.load(folder / f"{k}.npy")
    todo = [i for i, a in enumerate(out) if a is None]
    if todo:
        new = compute(table.iloc[todo])
        for i, a in zip(todo, new, strict=True):
            out[i] = a
            if folder is not None:
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write(folder / f"{keys[i]}.npy", lambda fh, a=a: np.save(fh, a))
    if memo is not None:
        memo.update(zip(keys, out, strict=True))
    log.info("%s inputs: %d computed, %d cached (%s)", kind, len(todo), len(table) - len(todo),
             folder)  # fmt: skip
    return out  # type: ignore[return-value]


def _cached_files(
    table: pd.DataFrame, params: dict, folder: Path, kind: str, compute, chunk: int
) -> list[Path]:
    """The cache file of every clip's input (same keys as :func:`_cached_arrays`); missing
    ones are computed ``chunk`` clips at a time and written, so at most a chunk of inputs
    is in memory, whatever the number of clips."""
    keys = [_clip_key(r, params, kind, folder / "digests") for _, r in table.iterrows()]
    paths = [folder / f"{k}.npy" for k in keys]
    todo, seen = [], set()
    for i, path in enumerate(paths):
        if path not in seen and not path.is_file():
            todo.append(i)
        seen.add(path)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        new = compute(table.iloc[part])
        folder.mkdir(parents=True, exist_ok=True)
        for i, a in zip(part, new, strict=True):
            atomic_write(paths[i], lambda fh, a=a: np.save(fh, a))
        del new
    log.info("%s inputs: %d computed, %d cached (%s, read from disk per batch)", kind,
             len(todo), len(table) - len(todo), folder)  # fmt: skip
    return paths


def flow_inputs(
    table: pd.DataFrame, *, params: Mapping | None = None, folder: str | Path | None = None,
    n_jobs: int = 1, memo: dict | None = None,
) -> np.ndarray:  # fmt: skip
    """Flow images of a Sample table, ``(n, 3, H, W)`` float32 in 0..255 (cached per clip).

    Parameters
    ----------
    params : mapping, optional
        Overrides of :data:`FLOW_IMAGE_PARAMS` (``align``, ``detector``, ``preset``,
        ``face_size``, ``size``...; ``magnify``: :class:`merkit.video.magnify.Magnification`
        arguments, the clip magnified before the flow).
    folder : path, optional
        Cache folder (``.npy`` per clip); None computes everything.
    """
    p = {**FLOW_IMAGE_PARAMS, **(params or {})}

    def compute(rows: pd.DataFrame) -> list[np.ndarray]:
        kw = {k: p[k] for k in ("align", "margin", "detector", "landmarks", "preset")}
        kw["magnify"] = p.get("magnify")  # Magnification arguments, or None
        try:
            images = flow_images(rows, size=tuple(p["size"]), strain=bool(p["strain"]),
                                 n_jobs=n_jobs, face_size=tuple(p["face_size"]),
                                 **kw)  # fmt: skip
        except RuntimeError as err:  # FaceNotFoundError names the clip
            raise ValueError(
                f"{err}; faces that fill the frame (cropped releases, synthetic data) need "
                "no detection: use align=False (--no-align) or detector='frame'"
            ) from err
        return list(images)

    folder = None if folder is None else Path(folder)
    arrays = _cached_arrays(table, p, folder, "flow", compute, memo)
    return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2), dtype=np.float32)


def clip_inputs(
    table: pd.DataFrame, *, params: Mapping | None = None, folder: str | Path | None = None,
    n_jobs: int = 1, memo: dict | None = None, lazy: bool | None = None,
) -> np.ndarray | ClipArray:  # fmt: skip
    """Clip volumes of a Sample table, ``(n, 1, T, H, W)`` float32 in about 0..1.

    Each clip: onset..offset grey frames, face-aligned (or resized) to ``size``, TIM to
    ``length`` frames, / 255 (:func:`merkit.nets.data.clip_volume`); cached per clip.

    Parameters
    ----------
    params : mapping, optional
        Overrides of :data:`CLIP_PARAMS` (``magnify``: Magnification arguments, the clip
        magnified before TIM).
    folder : path, optional
        Cache folder (``.npy`` per clip); None computes everything in memory.
    memo : dict, optional
        Arrays already computed in this process (in-memory inputs only).
    lazy : bool, optional
        Return a :class:`merkit.nets.data.ClipArray` over the cache files instead of one
        array: the clips stay on disk and are read when a batch needs them; missing ones
        are computed a few at a time. Default: lazy whenever ``folder`` is given (the
        numbers are the same either way).

    Returns
    -------
    ndarray of float32 or ClipArray, shape (n, 1, length, H, W)

    Raises
    ------
    ValueError
        ``lazy=True`` without a ``folder``; a clip without a face (named, with what to do).
    """
    from merkit.nets.data import clip_volume

    p = {**CLIP_PARAMS, **(params or {})}
    prep = Preprocess(size=tuple(p["size"]), length=int(p["length"]), align=bool(p["align"]),
                      detector=p["detector"], landmarks=p["landmarks"],
                      margin=float(p["margin"]), magnify=p.get("magnify"))  # fmt: skip

    def one(row: pd.Series) -> np.ndarray:
        name = f"{row.get('dataset')}/{row.get('subject')}/{row.get('clip')}"
        try:
            return clip_volume(prep.load(row), length=prep.length)
        except FaceNotFoundError as err:
            raise ValueError(
                f"clip {name}: {err}; faces that fill the frame need no detection: use "
                "align=False (--no-align) or detector='frame'"
            ) from err

    def compute(rows: pd.DataFrame) -> list[np.ndarray]:
        return list(Parallel(n_jobs=n_jobs)(delayed(one)(r) for _, r in rows.iterrows()))

    return _volumes(table, p, folder, "clip", compute, (1, prep.length, *prep.size),
                    n_jobs=n_jobs, memo=memo, lazy=lazy, caller="clip_inputs")  # fmt: skip


def _volumes(
    table: pd.DataFrame, p: Mapping, folder: str | Path | None, kind: str, compute,
    shape: tuple[int, ...], *, n_jobs: int, memo: dict | None, lazy: bool | None, caller: str,
) -> np.ndarray | ClipArray:  # fmt: skip
    """The 5-D inputs of a table (clip volumes, flow sequences): a :class:`ClipArray` over
    the cache files (``lazy``; default: whenever ``folder`` is given), else one array."""
    from merkit.nets.data import ClipArray

    folder = None if folder is None else Path(folder)
    if lazy is None:
        lazy = folder is not None
    if lazy:
        if folder is None:
            raise ValueError(f"{caller}(lazy=True) reads the inputs from a cache: give folder")
        chunk = _COMPUTE_CHUNK * max(1, int(n_jobs))
        paths = _cached_files(table, p, folder, kind, compute, chunk)
        names = [f"{r.get('subject')}/{r.get('clip')}" for _, r in table.iterrows()]
        return ClipArray(paths, shape, names=names)
    arrays = _cached_arrays(table, p, folder, kind, compute, memo)
    return np.ascontiguousarray(np.stack(arrays), dtype=np.float32)


def flowseq_inputs(
    table: pd.DataFrame, *, params: Mapping | None = None, folder: str | Path | None = None,
    n_jobs: int = 1, memo: dict | None = None, lazy: bool | None = None,
) -> np.ndarray | ClipArray:  # fmt: skip
    """Key-frame flow sequences of a Sample table, ``(n, 3, T, H, W)`` float32 in 0..255.

    Each clip: :func:`merkit.video.flow.sample_flow_sequence` (key frames, TV-L1 flows
    onset -> key frame, u, v, strain min-max encoded once per sequence), cached per clip
    as uint8 like the clip volumes (``lazy``: as in :func:`clip_inputs`).

    Parameters
    ----------
    params : mapping, optional
        Overrides of :data:`FLOWSEQ_PARAMS` (``length``, ``keyframes``, ``size``,
        ``face_size``, ``align``, ``preset``...; ``magnify``: Magnification arguments).
    """
    p = {**FLOWSEQ_PARAMS, **(params or {})}
    kw = {k: p[k] for k in ("align", "margin", "detector", "landmarks", "preset", "keyframes")}
    kw.update(length=int(p["length"]), size=tuple(p["size"]), face_size=tuple(p["face_size"]),
              magnify=p.get("magnify"))  # fmt: skip

    def compute(rows: pd.DataFrame) -> list[np.ndarray]:
        try:
            return flow_sequences(rows, n_jobs=n_jobs, **kw)
        except RuntimeError as err:  # FaceNotFoundError names the clip
            raise ValueError(
                f"{err}; faces that fill the frame (cropped releases, synthetic data) need "
                "no detection: use align=False (--no-align) or detector='frame'"
            ) from err

    return _volumes(table, p, folder, "flowseq", compute, (3, kw["length"], *kw["size"]),
                    n_jobs=n_jobs, memo=memo, lazy=lazy, caller="flowseq_inputs")  # fmt: skip


def _fingerprint(prefix: str, X: np.ndarray | ClipArray, y: np.ndarray) -> str:
    """``<prefix>:<12 hex digits>``: SHA-1 of the float32 inputs' bytes, then of the labels.

    A :class:`merkit.nets.data.ClipArray` is hashed clip by clip (one clip in memory at a
    time; every cache file is read and checked, so a missing or damaged one stops the run
    here, named): its bytes in order are those of the stacked in-memory array, so the
    same clips give the same fingerprint (and run names) either way.
    """
    if isinstance(X, np.ndarray):
        h = hashlib.sha1(np.ascontiguousarray(X).tobytes())
    else:
        h = hashlib.sha1()
        for i in range(len(X)):
            h.update(X.load(i).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return f"{prefix}:{h.hexdigest()[:12]}"


def composite_flows_from_data(
    data_dir: str | Path,
    *,
    cache: str | Path | bool | None = None,
    n_jobs: int = 1,
    params: dict | None = None,
):
    """The CDE flow set computed from CASME II / SMIC-HS / SAMM clips in native layouts.

    Every database of the composite set found under ``data_dir`` is read with the
    ``megc3`` scheme; each clip's onset -> apex flow image (:func:`flow_inputs`) is cached
    under ``<cache>/flows/``.

    Returns
    -------
    FlowSet
        ``X`` float32 (n, 3, 28, 28) in 0..255, ``y`` the megc3 labels;
        ``table.attrs["fingerprint"]`` identifies the images.
    """
    from merkit.nets.data import FlowSet

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist")
    found = [d for d in CDE.databases if d in discover(data_dir)]
    if not found:
        raise FileNotFoundError(
            f"no database of the composite set ({', '.join(CDE.databases)}) found in {data_dir}"
        )
    table = pd.concat(list(load_databases(data_dir, names=found, scheme="megc3").values()),
                      ignore_index=True)  # fmt: skip
    base = cache_folder(data_dir, cache)
    X = flow_inputs(table, params=params, folder=None if base is None else base / "flows",
                    n_jobs=n_jobs)  # fmt: skip
    out = FlowSet(X, table["y"].to_numpy(np.int64).copy(), table, "uvs")
    fp = hashlib.sha1(X.tobytes()).hexdigest()[:12]
    out.table.attrs["fingerprint"] = f"tvl1-onset-apex:{fp}"
    return out


# --------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    """What :func:`run_train` wrote and measured.

    ``run_dir``, ``weights_dir`` and ``final_weights`` are those of the first task;
    ``runs``, ``weights_dirs`` and ``final_paths`` map every task to its own; ``tables``
    holds the titled summary table to print (:func:`summary_table`).
    """

    out_dir: Path
    results: pd.DataFrame
    summary: pd.DataFrame
    run_dir: str
    folds_done: int
    folds_cached: int
    weights_dir: Path
    final_weights: Path | None
    seconds: float
    runs: dict[str, str] = field(default_factory=dict)
    weights_dirs: dict[str, Path] = field(default_factory=dict)
    final_paths: dict[str, Path] = field(default_factory=dict)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    embeddings: list[Path] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    audit: pd.DataFrame = field(default_factory=pd.DataFrame)


def audit_table(audit: pd.DataFrame) -> pd.DataFrame:
    """The leak-audit rows to show: per (method, task, selection) the seed means of UF1,
    UAR, the UF1 gain over the honest score and the mean chosen epoch; 4 decimals (indexed
    by the selection alone when there is one method and task)."""
    order = {name: i for i, name in enumerate(audit["selection"].drop_duplicates())}
    got = (audit.groupby(["method", "task", "selection"], sort=False)
           [["uf1", "uar", "uf1_gain", "mean_epoch"]].mean())  # fmt: skip
    got["seeds"] = audit.groupby(["method", "task", "selection"], sort=False)["seed"].nunique()
    got = got.reset_index()
    got["_o"] = got["selection"].map(order)
    got = got.sort_values(["method", "task", "_o"], kind="stable").drop(columns="_o")
    got = got.rename(columns={"uf1_gain": "+uf1", "mean_epoch": "epoch"})
    index = ["method", "task", "selection"]
    if got["method"].nunique() == 1 and got["task"].nunique() == 1:  # one run: just the rows
        got, index = got.drop(columns=["method", "task"]), ["selection"]
    return got.set_index(index).round(4)


def summary_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary rows to show: pooled UF1, UAR, accuracy and test clips per (method,
    task), the fold means when the protocol has them, the seeds and UF1's spread over them
    when there are several; 4 decimals."""
    cols = ["uf1", "uar", "accuracy", "n_test"]
    cols += [c for c in ("fold_uf1", "fold_uar", "fold_accuracy") if c in summary.columns]
    if (summary["seeds"] > 1).any():
        cols += ["seeds", "uf1_std"]
    return summary.set_index(["method", "task"])[cols].round(4)


def _history_frame(history: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    df = pd.DataFrame({k: list(v) for k, v in history.items()})
    df.insert(0, "epoch", np.arange(1, len(df) + 1))
    return df


# --------------------------------------------------------------------------- one task
@dataclass
class _Inputs:
    X: np.ndarray | ClipArray
    data_fp: str
    source: dict
    kind: str  # "flow" or "clip"
    channels: str = "uvs"
    scale: float = 1.0
    #: fingerprint of the training copies' inputs ("" without --magnify-augment)
    copies_fp: str = ""
    #: the magnify-and-reduce setting ({} without it), part of the run's parameters
    magnify_augment: dict = field(default_factory=dict)


@dataclass
class _TaskRun:
    records: list
    history: list
    embeddings: list
    done: int
    cached: int
    run: str
    weights_dir: Path
    final: Path | None
    audit: list = field(default_factory=list)


def _fold_frame(task: DeepTask, fold: Fold, seed: int, got) -> pd.DataFrame:
    te = fold.test_idx
    part = pd.DataFrame({
        "seed": int(seed), "fold": fold.name, "sample": te,
        "subject": task.table["subject"].astype(str).to_numpy()[te],
        "clip": task.table["clip"].astype(str).to_numpy()[te],
    })  # fmt: skip
    if task.multilabel:
        for j, name in enumerate(task.classes):
            part[f"true_{name}"] = task.y[te, j].astype(np.int64)
            part[f"pred_{name}"] = got.y_pred[:, j].astype(np.int64)
            part[f"prob_{name}"] = got.probs[:, j]
    else:
        part["y_true"] = task.y[te]
        part["y_pred"] = got.y_pred
        for c in range(got.probs.shape[1]):
            part[f"prob_{c}"] = got.probs[:, c]
    part["seconds"] = float(got.seconds)
    return part


def _train_one(
    task: DeepTask, fold: Fold, seed: int, X: np.ndarray | ClipArray, cfg, model: str,
    model_kwargs: dict, device: str = "cpu", workers: int = 0, audit_every: int = 0,
):  # fmt: skip
    """Train one fold on ``device`` (:func:`merkit.nets.train.train_fold`, test features
    included), with ``workers`` loader processes (batches pinned on CUDA) and the leak
    audit's test predictions every ``audit_every`` epochs."""
    from merkit.nets.train import train_fold

    return train_fold(model, X, task.y, fold.train_idx, fold.test_idx, cfg, seed=seed,
                      fold_index=fold.index, model_kwargs=model_kwargs,
                      multilabel=task.multilabel, features=True, device=device,
                      workers=workers, pin_memory=str(device).startswith("cuda"),
                      audit_every=audit_every)  # fmt: skip


def _fit_fold(
    *, task: DeepTask, fold: Fold, seed: int, X: np.ndarray | ClipArray, cfg, model: str,
    model_kwargs: dict, weights_root: Path | None, base: Path, device: str = "cpu",
    workers: int = 0, audit_every: int = 0,
) -> tuple[int, str, tuple[pd.DataFrame, pd.DataFrame, tuple[np.ndarray, np.ndarray]]]:  # fmt: skip
    """Train one fold and write its weights, then its files (:func:`merkit.store.write_fold`
    at ``base``: the predictions file, written last, marks the fold as done); a
    worker-process unit of :func:`_run_task`."""
    got = _train_one(task, fold, seed, X, cfg, model, model_kwargs, device, workers,
                     audit_every)  # fmt: skip
    return seed, fold.name, _store_fold(task, fold, seed, got, weights_root, base)


def _fold_job(
    in_worker: bool, task: DeepTask, X: np.ndarray | ClipArray, fold: Fold, seed: int, cfg,
    model: str, model_kwargs: dict, weights_root: Path | None, base: Path, device: str,
    workers: int = 0, audit_every: int = 0,
) -> tuple[int, str, object]:  # fmt: skip
    """One fold as a :class:`merkit.parallel.Backend` job (positional arguments: ``task``
    and ``X``, the same objects in every fold's job, go to a cluster once).

    ``in_worker``: the worker sees this file system and writes the fold's files itself
    (:func:`_fit_fold`'s result); otherwise it returns the trained fold
    (:class:`merkit.nets.train.FoldResult`, model on the CPU) for the driver to write.
    Jobs of one worker process run one at a time (:data:`_FOLD_LOCK`).
    """
    with _FOLD_LOCK:
        if in_worker:
            return _fit_fold(task=task, fold=fold, seed=seed, X=X, cfg=cfg, model=model,
                             model_kwargs=model_kwargs, weights_root=weights_root, base=base,
                             device=device, workers=workers,
                             audit_every=audit_every)  # fmt: skip
        got = _train_one(task, fold, seed, X, cfg, model, model_kwargs, device, workers,
                         audit_every)  # fmt: skip
        return seed, fold.name, replace(got, model=got.model.cpu())


def _fold_resources(device: str, threads: int) -> dict[str, float]:
    """What one fold asks a cluster for: its torch threads as CPUs, and a GPU when it trains
    on CUDA (:meth:`merkit.parallel.Backend.map`)."""
    need = {"CPU": float(threads)}
    if str(device).startswith("cuda"):
        need["GPU"] = 1.0
    return need


def _train_on_backend(
    be: Backend, todo: list[tuple[int, Fold]], *, base, fit_args: dict, cfg_of, bar, bar_task,
) -> dict[tuple[int, str], tuple]:  # fmt: skip
    """Train ``todo`` (seed, fold) on ``be``, one fold per job (``cfg_of(fold)``: its
    training configuration); the fold files are written by the workers when they share this
    file system, else here as each fold comes back."""
    from merkit.nets.data import ClipArray

    a = fit_args
    in_worker = be.shares_filesystem
    X = a["X"]
    if isinstance(X, ClipArray) and not in_worker:  # its files are on this machine only
        log.info("backend %s at an address: the %d clips on disk are sent in memory", be.name,
                 len(X))  # fmt: skip
        X = np.asarray(X)
    calls = [(_fold_job, (in_worker, a["task"], X, fold, seed, cfg_of(fold), a["model"],
                          a["model_kwargs"], a["weights_root"], base(seed, fold), a["device"],
                          a["workers"], a["audit_every"]))
             for seed, fold in todo]  # fmt: skip
    fresh: dict[tuple[int, str], tuple] = {}
    need = _fold_resources(a["device"], cfg_of(todo[0][1]).threads)
    with closing(be.map(calls, resources=need)) as jobs:  # stopping cancels pending jobs
        for (seed, fold), (_, name, got) in zip(todo, jobs, strict=True):
            if not in_worker:
                got = _store_fold(a["task"], fold, seed, got, a["weights_root"],
                                  base(seed, fold))  # fmt: skip
            fresh[seed, name] = got
            bar.advance(bar_task)
    return fresh


def _store_fold(
    task: DeepTask, fold: Fold, seed: int, got, weights_root: Path | None, base: Path
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[np.ndarray, np.ndarray]]:
    """Write a trained fold's weights, then its files (the predictions file, written last by
    :func:`merkit.store.write_fold`, marks the fold as done)."""
    from merkit.nets.train import save_weights

    if weights_root is not None:
        save_weights(got.model, weights_root / f"seed{seed}" / f"{fold.file_name}.pth")
    part = _fold_frame(task, fold, seed, got)
    hist = _history_frame(got.history)
    write_fold(base, part, hist, fold.test_idx, got.features, getattr(got, "audit", None))
    return part, hist, (fold.test_idx, got.features)


def _folds_digest(folds: Sequence[Fold]) -> str:
    """Short name of a set of folds (the checkpoint of their batched training)."""
    names = "\n".join(sorted(f.name for f in folds))
    return hashlib.sha1(names.encode()).hexdigest()[:10]


def _run_task(
    task: DeepTask, inputs: _Inputs, *, model: str, cfg, model_kwargs: dict, seeds: list[int],
    folds, final: bool, out_dir: Path, split: dict, bar, bar_task, input_params: dict,
    fold_weights: bool = True, backend: Backend | None = None, fold_batching: str = "auto",
    device: str = "cpu", workers: int = 0, audit_every: int = 0,
    fold_epochs: Mapping[str, int] | None = None,
) -> _TaskRun:  # fmt: skip
    from merkit.nets.fold_batched import FoldSpec, batching_problem, train_folds_batched
    from merkit.nets.predict import ModelCard, write_model_card
    from merkit.nets.train import save_weights, train_fold

    chosen = task.select_folds(folds)
    problem = "off"  # batching_problem builds the kernel: not asked when off
    if fold_batching != "off":
        problem = batching_problem(model, n_folds=len(chosen), multilabel=task.multilabel,
                                   model_kwargs=model_kwargs, device=device,
                                   precision=cfg.precision, augment=cfg.augment,
                                   sampler=cfg.sampler)  # fmt: skip
    if fold_batching == "on" and problem is not None:
        raise ValueError(f"--fold-batching on: task {task.name}: {problem}; use auto or off")
    batched = problem is None
    params = {"model": model, **model_kwargs,
              **{k: v for k, v in cfg.to_dict().items() if k != "seed"}, **split,
              **({"fold_batched": True} if batched else {}),
              **({"device": device.split(":")[0]} if device != "cpu" else {}),
              **({"magnify_augment": inputs.magnify_augment} if inputs.magnify_augment
                 else {})}  # fmt: skip
    if fold_epochs is not None:  # every fold of the task, so a --folds subset shares the id
        params["epochs"] = "per fold"
        params["fold_epochs"] = {f.name: int(fold_epochs[f.name]) for f in task.folds}

    def cfg_of(fold: Fold):
        return cfg if fold_epochs is None else replace(cfg, epochs=int(fold_epochs[fold.name]))

    # torch threads do not change the numbers: hashed as 1, so a run resumes with any --threads
    ident = params_to_json({"params": {**params, "threads": 1}, "protocol": task.protocol,
                            "task": task.name})  # fmt: skip
    fingerprints = inputs.data_fp + inputs.copies_fp  # the copies' only with --magnify-augment
    run = f"{model}-" + hashlib.sha1((ident + fingerprints).encode()).hexdigest()[:10]
    fold_root, weights_root = out_dir / "folds" / run, out_dir / "weights" / run
    weights_root.mkdir(parents=True, exist_ok=True)
    card = ModelCard(
        model=model, classes=() if task.multilabel else task.classes,
        aus=task.classes if task.multilabel else (), channels=inputs.channels,
        scale=inputs.scale, size=tuple(inputs.X.shape[-2:]), model_kwargs=model_kwargs,
        input_kind=inputs.kind,
        flow=input_params if inputs.kind in ("flow", "flowseq") else {},
        clip=input_params if inputs.kind == "clip" else {},
        info={"protocol": task.protocol, "task": task.name, "data": inputs.data_fp,
              **inputs.source, "params": params},
    )  # fmt: skip
    write_model_card(weights_root / "model.json", card)
    X = inputs.X
    records, history, embeddings, audits = [], [], [], []
    done = cached = 0
    sample_ids = task.sample_ids()

    def base(seed: int, fold: Fold) -> Path:
        return fold_root / f"seed{seed}" / fold.file_name

    fit_args = {"task": task, "X": X, "model": model, "model_kwargs": model_kwargs,
                "weights_root": weights_root if fold_weights else None,
                "device": device, "workers": workers, "audit_every": audit_every}  # fmt: skip
    fresh: dict[tuple[int, str], tuple] = {}
    todo = [(seed, fold) for seed in seeds for fold in chosen
            if not fold_paths(base(seed, fold))[0].is_file()]  # fmt: skip
    pending = set(todo)
    if len(pending) < len(seeds) * len(chosen):  # stored folds count as done from the start
        bar.advance(bar_task, len(seeds) * len(chosen) - len(pending))
    if batched:  # the folds of a seed as one computation (merkit.nets.fold_batched)
        # one computation per seed and epoch count (a fold's batches, dropout masks and
        # result do not depend on the other folds it trains with)
        groups: dict[tuple[int, int], list[Fold]] = {}
        for s, fold in todo:
            groups.setdefault((s, cfg_of(fold).epochs), []).append(fold)
        for (seed, _), group in groups.items():
            label = next(t.description for t in bar.tasks if t.id == bar_task)

            def on_epoch(epoch: int, epochs: int, n: int = len(group), label: str = label) -> None:
                bar.update(bar_task, description=f"{label} ({n} folds batched, epoch "
                                                 f"{epoch}/{epochs})")  # fmt: skip

            specs = [FoldSpec(f.train_idx, f.test_idx, f.index) for f in group]
            ckpt = fold_root / f"seed{seed}" / f"batched-{_folds_digest(group)}.pt"
            got = train_folds_batched(
                model, X, task.y, specs, cfg_of(group[0]), seed=seed, model_kwargs=model_kwargs,
                features=True, protocol_folds=len(task.folds), checkpoint=ckpt,
                on_epoch=on_epoch, audit_every=audit_every)  # fmt: skip
            bar.update(bar_task, description=label)
            for fold, result in zip(group, got, strict=True):
                weights = fit_args["weights_root"]
                fresh[seed, fold.name] = _store_fold(task, fold, seed, result, weights,
                                                     base(seed, fold))  # fmt: skip
                bar.advance(bar_task)
        todo = []
    be = backend if backend is not None else Backend("loky", 1)
    if todo and not be.serial:  # one fold per job (local processes or a cluster's workers)
        fresh.update(_train_on_backend(be, todo, base=base, fit_args=fit_args, cfg_of=cfg_of,
                                       bar=bar, bar_task=bar_task))  # fmt: skip
    for seed in seeds:
        parts, zs = [], []
        for fold in chosen:
            stored = None if (seed, fold.name) in fresh else read_fold(base(seed, fold))
            if (seed, fold.name) in fresh:
                part, hist, z = fresh[seed, fold.name]
                zs.append(z)
                done += 1
            elif stored is not None:
                part, hist, z = stored
                if z is not None:
                    zs.append(z)
                cached += 1
            else:
                _, _, (part, hist, z) = _fit_fold(seed=seed, fold=fold, base=base(seed, fold),
                                                  cfg=cfg_of(fold), **fit_args)  # fmt: skip
                zs.append(z)
                done += 1
                if (seed, fold) in pending:  # a stored fold that did not read was counted
                    bar.advance(bar_task)
            if hist is not None:
                history.append(hist.assign(protocol=task.protocol, task=task.name, method=model,
                                           seed=int(seed), fold=fold.name))  # fmt: skip
            else:
                log.warning("%s seed %d fold %s: cached without a history", run, seed, fold.name)
            parts.append(part)
        pooled = pd.concat(parts, ignore_index=True)
        extra = {"folds": len(chosen),
                 "seconds": float(pooled.groupby("fold")["seconds"].first().sum())}  # fmt: skip
        records += task.score(pooled, method=model, params=params, seed=seed,
                              data=inputs.data_fp, extra=extra)  # fmt: skip
        embeddings.append((seed, _embedding(task, pooled, zs, sample_ids)))
        if audit_every and not task.multilabel:
            audits.append(_seed_audit(task, chosen, seed, run, model, base))
    final_path = None
    if final:
        train_all = np.unique(np.concatenate([f.train_idx for f in task.folds]))
        got = train_fold(model, X, task.y, train_all, np.zeros(0, np.int64), cfg, seed=seeds[0],
                         fold_index=_FINAL_FOLD_INDEX, model_kwargs=model_kwargs,
                         multilabel=task.multilabel, device=device, workers=workers,
                         pin_memory=str(device).startswith("cuda"))  # fmt: skip
        final_path = save_weights(got.model, weights_root / "final.pth")
        info = {**card.info, "fold": "final (every training clip)", "seed": seeds[0]}
        write_model_card(final_path.with_suffix(".json"), replace(card, info=info))
    return _TaskRun(records, history, embeddings, done, cached, run, weights_root, final_path,
                    [a for a in audits if a is not None])  # fmt: skip


def _seed_audit(
    task: DeepTask, chosen: Sequence[Fold], seed: int, run: str, model: str, base
) -> pd.DataFrame | None:
    """The leak audit of one seed (:func:`merkit.results.audit.leak_audit`) from its folds'
    records; folds without one (trained before ``--audit-every``) are left out, logged."""
    folds, missing = [], []
    for fold in chosen:
        got = read_fold_audit(base(seed, fold))
        if got is None:
            missing.append(fold.name)
        elif len(got["sample"]):
            folds.append(FoldAudit(fold.name, task.y[got["sample"]], got["epochs"], got["probs"]))
    if missing:
        log.warning("%s seed %d: %d of %d folds have no leak-audit record (trained without "
                    "--audit-every); the audit covers the others", run, seed, len(missing),
                    len(chosen))  # fmt: skip
    if not folds:
        return None
    table = leak_audit(folds, list(range(len(task.classes))), seed=seed)
    table.insert(0, "seed", int(seed))
    for name, value in (("run", run), ("method", model), ("task", task.name),
                        ("protocol", task.protocol)):  # fmt: skip
        table.insert(0, name, value)
    table["folds_total"] = len(chosen)
    return table


def _embedding(task: DeepTask, pooled: pd.DataFrame, zs: list, sample_ids: np.ndarray) -> dict:
    """The embeddings file of one seed (rows in task-table order; folds without features
    are left out with a warning)."""
    got = {int(s): z for samples, z in zs for s, z in zip(samples, z, strict=True)}
    pooled = pooled.sort_values("sample", kind="stable")
    keep = pooled["sample"].isin(got).to_numpy()
    if not keep.all():
        log.warning("%s: %d test clips have no stored features (older cache); left out of the "
                    "embeddings", task.name, int((~keep).sum()))  # fmt: skip
    pooled = pooled[keep]
    sample = pooled["sample"].to_numpy(np.int64)
    if task.multilabel:
        y_true = pooled[[f"true_{c}" for c in task.classes]].to_numpy(np.int64)
        y_pred = pooled[[f"pred_{c}" for c in task.classes]].to_numpy(np.int64)
    else:
        y_true = pooled["y_true"].to_numpy(np.int64)
        y_pred = pooled["y_pred"].to_numpy(np.int64)
    dim = next((z.shape[-1] for _, z in zs if z is not None and len(z)), 0)
    z = np.stack([got[int(s)] for s in sample]) if len(sample) else np.zeros((0, dim))
    return {"z": z.astype(np.float32), "y_true": y_true, "y_pred": y_pred,
            "sample_id": sample_ids[sample].astype(str),
            "classes": np.array(task.classes, dtype=str),
            "fold": pooled["fold"].astype(str).to_numpy().astype(str)}  # fmt: skip


# --------------------------------------------------------------------------- magnify-and-reduce
def magnify_augment_factors(
    magnify_augment: str | Sequence[float] | Mapping | None, own: Mapping | None = None,
    *, flows_dir=None,
) -> list[Magnification]:  # fmt: skip
    """The magnification of each training copy of ``--magnify-augment`` (EMR's
    magnify-and-reduce), checked before any work (one-line errors).

    Parameters
    ----------
    magnify_augment : str, sequence of float, mapping or None
        Factors ``alpha`` (> -1; negative: reduction) as ``"2,4,8"`` or ``[2, 4, 8]``, or
        ``{"factors": [...], "band": ..., ...}`` with other
        :class:`~merkit.video.magnify.Magnification` arguments; None: no copies.
    own : mapping, optional
        The run's own magnification (``--magnify``, Magnification arguments): its band,
        pyramid, filter, cut-off, levels and order are the copies' defaults, and its alpha
        (0 without it) may not be a factor (that copy would repeat the clip).
    flows_dir : path, optional
        Given: an error (the released flow images cannot be magnified).

    Returns
    -------
    list of Magnification
        One per factor, in the order given; empty when ``magnify_augment`` is None.

    Raises
    ------
    ValueError
        With ``flows_dir``; no factor; a factor that is not a number, is <= -1, is given
        twice or equals the run's own alpha; a bad band, pyramid, filter or cut-off.
    """
    if magnify_augment is None:
        return []
    flag = "--magnify-augment"
    if flows_dir is not None:
        raise ValueError(f"{flag} needs the clips (--data): the MEGC 2019 flow images of "
                         "--flows-dir are already computed")  # fmt: skip
    options = {k: v for k, v in (own or {}).items() if k != "alpha"}
    if isinstance(magnify_augment, Mapping):
        options.update({k: v for k, v in magnify_augment.items() if k != "factors"})
        given = magnify_augment.get("factors", ())
    else:
        given = magnify_augment
    text = given if isinstance(given, str) else ",".join(str(v) for v in given)
    items = given.split(",") if isinstance(given, str) else list(given)
    if isinstance(given, str) and not given.strip():
        items = []
    if not items:
        raise ValueError(f"{flag} {text!r}: give one or more magnification factors, e.g. 2,4,8")
    factors = []
    for item in items:
        try:
            factors.append(float(item))
        except (TypeError, ValueError):
            raise ValueError(f"{flag} {text!r}: {str(item).strip()!r} is not a number; give "
                             "factors alpha > -1 like 2,4,8") from None  # fmt: skip
    own_alpha = float((own or {}).get("alpha", 0.0))
    out = []
    for alpha in factors:
        try:
            out.append(Magnification(alpha, **options))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{flag} factor {alpha:g}: {err}") from None
        if factors.count(alpha) > 1:
            raise ValueError(f"{flag} {text}: factor {alpha:g} is given twice; give each once")
        if alpha == own_alpha:
            raise ValueError(f"{flag} factor {alpha:g} is the run's own magnification "
                             f"(--magnify {own_alpha:g}: the clips as trained and tested); "
                             "leave it out")  # fmt: skip
    return out


def _stack_inputs(parts: Sequence[np.ndarray | ClipArray]) -> np.ndarray | ClipArray:
    """Inputs one after another (in-memory arrays, or cache files read per batch)."""
    from merkit.nets.data import ClipArray

    if all(isinstance(p, ClipArray) for p in parts):
        return ClipArray([f for p in parts for f in p.paths], parts[0].item_shape,
                         names=[n for p in parts for n in p.names])  # fmt: skip
    return np.concatenate([np.asarray(p) for p in parts])


def _with_magnified_copies(
    task: DeepTask, inputs: _Inputs, mags: Sequence[Magnification], input_params: Mapping,
    *, n_jobs: int, memo: dict, folder: Path | None,
) -> tuple[DeepTask, _Inputs]:  # fmt: skip
    """The task with one training copy of every clip per magnification (its inputs made by
    :func:`flow_inputs` / :func:`clip_inputs` with that ``magnify``, cached like the
    others) and the inputs stacked in :func:`merkit.protocols.deep.with_training_copies`'
    order; the test clips stay those of ``inputs``."""
    make = {"flow": flow_inputs, "flowseq": flowseq_inputs}.get(inputs.kind, clip_inputs)
    plain = {k: v for k, v in input_params.items() if k != "magnify"}
    parts = []
    for m in mags:  # alpha 0 (with --magnify A) is the plain clip: its cache entry is shared
        params = plain if m.alpha == 0 else {**plain, "magnify": m.key()}
        parts.append(make(task.table, params=params, n_jobs=n_jobs, memo=memo, folder=folder))
    pairs = zip(mags, parts, strict=True)
    prints = "".join(_fingerprint(f"x{m.alpha:g}", p, task.y) for m, p in pairs)
    copies_fp = ":copies:" + hashlib.sha1(prints.encode()).hexdigest()[:12]
    setting = {"factors": [m.alpha for m in mags],
               **{k: v for k, v in mags[0].key().items() if k != "alpha"}}  # fmt: skip
    X = _stack_inputs([inputs.X, *parts])
    return with_training_copies(task, len(mags)), replace(
        inputs, X=X, copies_fp=copies_fp, magnify_augment=setting
    )


# --------------------------------------------------------------------------- main
def _load_task_table(
    spec: TaskSpec, data_dir: Path, missing: str = "raise"
) -> tuple[pd.DataFrame, tuple[str, ...], pd.DataFrame]:
    """The task's clips, its class names and the clips left out (``missing="skip"``)."""
    tables = load_databases(data_dir, names=list(spec.datasets), scheme=spec.scheme,
                            missing=missing)  # fmt: skip
    table = pd.concat(list(tables.values()), ignore_index=True)
    return table, scheme_classes(tables, spec.scheme), skipped_clips(tables)


def _check_combination(
    protocol: str, model: str, flows_dir, data_dir, magnify: bool = False
) -> None:
    from merkit.nets import MODELS, input_kind

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; registered: {sorted(MODELS)}")
    if (flows_dir is None) == (data_dir is None):
        raise ValueError("give exactly one of --flows-dir (flow images) or --data (clips)")
    if flows_dir is not None and magnify:
        raise ValueError(
            "--magnify needs the clips (--data): the MEGC 2019 flow images of --flows-dir are "
            "already computed"
        )
    if flows_dir is not None and input_kind(model) == "clip":
        raise ValueError(
            f"model {model!r} is a 3-D network that takes whole clips; give --data (databases "
            "in native layouts), not --flows-dir (flow images)"
        )
    if flows_dir is not None and input_kind(model) == "flowseq":
        log.info("--flows-dir with %s: each released onset -> apex flow image is a "
                 "flow sequence of length 1", model)  # fmt: skip


def _positive_int(value, name: str, flag: str, least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name}={value!r} ({flag}): must be a whole number >= {least}")


def _check_options(
    declared: DeepProtocol, model: str, kind: str, kwargs: Mapping, *, epochs, lr, batch_size,
    threads, folds, n_folds, flow: Mapping | None, clip: Mapping | None,
    fold_batching: str = "auto", device: str = "cpu", precision: str = "32",
    augment: str = "none", on_workers: bool = False, workers: int = 0,
    prior_epochs: int | None = None, label_smoothing: float | None = None,
    ema_decay: float | None = None, scheduler: str | None = None, sampler: str | None = None,
) -> str:  # fmt: skip
    """Every training option, before any input is read or computed (one-line errors).

    Returns the device to train on (``auto`` resolved, e.g. ``"cpu"`` or ``"cuda:0"``);
    ``on_workers`` (a Ray / Dask backend): an explicit device is checked by name only, the
    workers resolve it.
    """
    from merkit.nets import check_model_kwargs, network_class
    from merkit.nets.augment import POLICIES, get_policy
    from merkit.nets.device import check_precision, device_name, resolve_device
    from merkit.nets.fold_batched import FOLD_BATCHING, batching_problem
    from merkit.nets.train import SAMPLERS, SCHEDULERS, check_training_options

    if on_workers and device_name(device) != "auto":  # the workers have the GPUs
        import torch

        dev = torch.device(device_name(device))
    else:
        dev = resolve_device(device)
    check_precision(precision, dev)

    check_training_options(epochs=epochs, lr=lr, batch_size=batch_size, threads=threads,
                           prior_epochs=prior_epochs, label_smoothing=label_smoothing,
                           ema_decay=ema_decay)  # fmt: skip
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ValueError(f"--scheduler {scheduler}: expected one of {', '.join(SCHEDULERS)}")
    if sampler is not None and sampler not in SAMPLERS:
        raise ValueError(f"--sampler {sampler}: expected one of {', '.join(SAMPLERS)}")
    if sampler == "balanced" and declared.multilabel:
        raise ValueError(f"--sampler balanced: the {declared.name} protocol is multi-label; "
                         "there is no single class per clip to balance")  # fmt: skip
    staged = bool(getattr(network_class(model), "training_stages", ()))
    if prior_epochs and not staged:
        raise ValueError(f"--prior-epochs {prior_epochs}: model {model!r} trains in one stage; "
                         "only two-stage networks (mersiam) have a prior stage")  # fmt: skip
    if label_smoothing and (staged or declared.multilabel):
        why = "a two-stage network's own losses" if staged else "a multi-label loss"
        raise ValueError(f"--label-smoothing {label_smoothing}: model {model!r} trains with "
                         f"{why}; label smoothing applies to cross-entropy only")  # fmt: skip
    if staged and declared.multilabel:
        raise ValueError(f"model {model!r} trains in two stages on class labels (pairs, focal "
                         f"loss); the {declared.name} protocol is multi-label")  # fmt: skip
    keyframes = (clip or {}).get("keyframes")
    if keyframes is not None:
        if kind != "flowseq":
            raise ValueError(f"--keyframes {keyframes}: model {model!r} takes {kind} inputs; "
                             "key frames choose the flows of flow-sequence models "
                             "(mersiam)")  # fmt: skip
        if keyframes not in KEYFRAMES:
            raise ValueError(f"--keyframes {keyframes}: expected one of {', '.join(KEYFRAMES)}")
        length = (clip or {}).get("length", FLOWSEQ_PARAMS["length"])
        if keyframes == "apex" and length != 1:
            raise ValueError(f"--keyframes apex gives one flow (onset -> apex): use "
                             f"--clip-length 1, not {length}")  # fmt: skip
    policy = get_policy(augment)  # unknown: one line listing the policies
    if policy.kind not in (None, kind):
        fits = ", ".join(name for name, p in POLICIES.items() if p.kind in (None, kind))
        raise ValueError(f"--augment {augment} is a policy for {policy.kind} inputs; model "
                         f"{model!r} takes {kind} inputs: use one of {fits}")  # fmt: skip
    if policy.mixes and declared.multilabel:
        raise ValueError(f"--augment {augment} mixes labels; the {declared.name} protocol is "
                         "multi-label: use a policy without mixup")  # fmt: skip
    if fold_batching not in FOLD_BATCHING:
        raise ValueError(f"fold_batching={fold_batching!r} (--fold-batching): expected one of "
                         f"{', '.join(FOLD_BATCHING)}")  # fmt: skip
    if fold_batching == "on":
        problem = batching_problem(model, n_folds=2, multilabel=declared.multilabel,
                                   model_kwargs=kwargs, device=dev,
                                   precision=precision, augment=augment,
                                   sampler=sampler or "shuffle")  # fmt: skip
        if problem is not None:
            raise ValueError(f"--fold-batching on: {problem}; use auto or off")
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        _positive_int(folds, "folds", "--folds")
    if declared.takes_n_folds:
        _positive_int(n_folds, "n_folds", "--n-folds", least=2)
    _positive_int(workers, "workers", "--workers", least=0)
    sizes = [("face_size", "--face-size", (flow or {}).get("face_size")),
             ("clip size", "--clip-size", (clip or {}).get("size")),
             ("clip length", "--clip-length", [(clip or {}).get("length")])]  # fmt: skip
    for name, flag, values in sizes:
        for v in values or []:
            if v is not None:
                _positive_int(v, name, flag)
    for given in (flow, clip):
        if (given or {}).get("magnify") is not None:
            Magnification(**given["magnify"])  # a bad magnification: one line, before any work
    if "num_classes" in kwargs:
        raise ValueError(
            f"model argument num_classes={kwargs['num_classes']!r} (--model-arg): the task's "
            "classes set it; leave it out"
        )
    check_model_kwargs(model, {"in_channels": 1, **kwargs} if kind == "clip" else kwargs)
    return str(dev)


def _seeds_of_runs(out_dir: Path, runs: Mapping[str, str], seeds: Sequence[int]) -> list[int]:
    """``seeds`` and the seeds that ``out_dir/run.json`` lists for the same ``runs``: a
    folder trained seed by seed (``--seeds 0``, then ``--seeds 1``) names all of them."""
    try:
        prev = read_run_info(out_dir)
    except (FileNotFoundError, ValueError):
        prev = {}
    old = prev.get("seeds") if prev.get("runs") == dict(runs) else None
    if not isinstance(old, list) or not all(isinstance(s, int) for s in old):
        old = []
    return sorted({*old, *(int(s) for s in seeds)})


def read_fold_epochs(source: str | Path | Mapping) -> dict[str, int]:
    """Epochs per fold: ``{fold name: epochs}`` from a mapping or a JSON file.

    The file holds that object, or an object with it under ``"fold_epochs"`` (the
    ``selection.json`` of ``benchmarks/cde.py select``, which chooses each test group's
    epochs on training subjects only). Fold names are the task's (LOSO: the held-out
    subject, e.g. ``"CASME2/01"``).

    Raises
    ------
    FileNotFoundError, ValueError
        The file is missing or not such an object, or an entry is not a whole number
        >= 1 (the message names the file and the fold).
    """
    where = "--fold-epochs"
    data = source
    if not isinstance(source, Mapping):
        path = Path(source)
        where = f"--fold-epochs {path}"
        if not path.is_file():
            raise FileNotFoundError(f"{where}: no such file; give a JSON object "
                                    '{"<fold>": epochs, ...}')  # fmt: skip
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{where}: not JSON ({e}); give an object "
                             '{"<fold>": epochs, ...}') from None  # fmt: skip
    if isinstance(data, Mapping) and isinstance(data.get("fold_epochs"), Mapping):
        data = data["fold_epochs"]
    if not isinstance(data, Mapping) or not data:
        raise ValueError(f"{where}: expected a non-empty JSON object "
                         '{"<fold>": epochs, ...}')  # fmt: skip
    out = {}
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) \
                or int(value) < 1:  # fmt: skip
            raise ValueError(f"{where}: fold {name!r} has epochs {value!r}; each must be a "
                             "whole number >= 1")  # fmt: skip
        out[str(name)] = int(value)
    return out


def _check_fold_epochs(fold_epochs: Mapping[str, int], built: Sequence) -> None:
    """Every fold of every task has an entry and every entry names a fold (a typo would
    otherwise train the wrong number of epochs or be ignored)."""
    names = {f.name for task, _ in built for f in task.folds}
    unknown = sorted(set(fold_epochs) - names)
    if unknown:
        raise ValueError(f"--fold-epochs names {len(unknown)} fold(s) the task does not have, "
                         f"e.g. {unknown[0]!r}; its folds are named like "
                         f"{sorted(names)[0]!r}")  # fmt: skip
    for task, _ in built:
        missing = [f.name for f in task.folds if f.name not in fold_epochs]
        if missing:
            raise ValueError(f"--fold-epochs: task {task.name} fold {missing[0]!r} has no "
                             f"epochs ({len(missing)} of its {len(task.folds)} folds lack "
                             "one); give every fold, also when --folds runs a few")  # fmt: skip


def run_train(
    out_dir: str | Path,
    *,
    protocol: str = "cde",
    model: str = "fr",
    flows_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    tasks: str | Sequence[str] | None = None,
    n_folds: int = 10,
    split_seed: int = 0,
    epochs: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    class_weight: str | None = None,
    preset: str | None = None,
    threads: int | None = None,
    seeds: Sequence[int] = (0,),
    folds: int | Sequence[str] | None = None,
    final: bool = False,
    fold_weights: bool = True,
    model_kwargs: Mapping | None = None,
    flow: Mapping | None = None,
    clip: Mapping | None = None,
    cache: str | Path | bool | None = None,
    n_jobs: int = 1,
    fold_batching: str = "auto",
    device: str = "auto",
    precision: str = "32",
    augment: str = "none",
    magnify_augment: str | Sequence[float] | Mapping | None = None,
    console: Console | None = None,
    progress: bool = True,
    missing: str = "raise",
    backend: str | Backend = "loky",
    address: str | None = None,
    workers: int = 0,
    audit_every: int | None = None,
    prior_epochs: int | None = None,
    label_smoothing: float | None = None,
    ema_decay: float | None = None,
    scheduler: str | None = None,
    sampler: str | None = None,
    fold_epochs: str | Path | Mapping[str, int] | None = None,
) -> TrainResult:
    """Train a network under a protocol (module docstring for inputs and outputs).

    Parameters
    ----------
    protocol : {"cde", "cdmer", "loso", "kfold", "au"}
        See :mod:`merkit.protocols.deep`.
    model : str
        Registry name (:data:`merkit.nets.MODELS`); 3-D networks need ``data_dir``.
    flows_dir, data_dir : path
        Exactly one: the MEGC 2019 flow folder (cde, loso ``SMIC_HS-3``) or databases in
        native layouts.
    tasks : str or sequence of str, optional
        Tasks of the protocol (default: its default tasks whose databases are present).
    n_folds, split_seed : int
        Folds and subject-assignment seed of kfold / au.
    epochs, lr, batch_size : optional
        Override the preset.
    class_weight : {None, "none", "balanced"}
        Loss weights per class: "balanced" = n / (K * n_k) of each fold's training labels
        (FR: also its detectors); None keeps the preset's (unweighted).
    preset : str, optional
        A :data:`merkit.nets.train.PRESETS` entry (default: :func:`preset_for`).
    threads : int, optional
        torch threads per training process (default 1: the small nets gain little from
        more; with ``n_jobs`` folds in parallel, keep ``n_jobs * threads`` <= cores).
    seeds : sequence of int
        One model per fold and seed.
    folds : int or sequence of str, optional
        A quick subset: the first k folds (cde: round robin over its databases) or names.
    final : bool
        Also train one model on every training clip of each task (first seed).
    fold_weights : bool
        Save every fold's weights (FR: 41 MB each; False keeps only predictions, history
        and features of the folds).
    model_kwargs : mapping, optional
        Constructor arguments (e.g. ``{"width": 8}`` for ``r3d``); 3-D networks get
        ``in_channels = 1`` (grey clips) unless given.
    flow, clip : mapping, optional
        Overrides of :data:`FLOW_IMAGE_PARAMS` / :data:`CLIP_PARAMS` (e.g.
        ``{"align": False, "preset": "fast", "face_size": [56, 56]}``).
    cache : path, bool or None
        Input cache folder (None/True: ``<data_dir>/.merkit-cache``; False: none).
    n_jobs : int
        Worker processes for computing the inputs and for training the folds (each fold
        with the preset's torch threads, 1 by default); the same numbers for any value.
        With ``backend`` ray / dask: the workers of the local cluster started for the run
        (no ``address``), or the most folds Ray trains at once (-1: every CPU).
    fold_batching : {"auto", "on", "off"}
        Train the folds of a seed as one computation (:mod:`merkit.nets.fold_batched`):
        ``auto`` where the network has that path and its kernel builds here, ``on``
        requires it (an error otherwise, before any input is read), ``off`` trains fold
        by fold. Batched runs carry ``fold_batched: true`` in their parameters (their
        mini-batches differ from the per-fold path's, so they never share a cache). On a
        Ray / Dask backend folds train one per job: ``auto`` trains fold by fold, ``on``
        is an error.
    backend, address
        Where the folds train (:class:`merkit.parallel.Backend`): ``"loky"`` (this process
        or ``n_jobs`` local processes), ``"ray"`` or ``"dask"`` (the cluster at
        ``address``, or a local one of ``n_jobs`` workers for the call), or an open
        Backend (left open). One fold per job; the inputs go to the cluster once; each
        fold asks for ``threads`` CPUs (Ray). Workers of a cluster at an address may not
        see this file system: their folds come back and are written here. Folds already
        stored are not sent; the files equal those of a local run.
    device : str
        Where to train and predict: ``auto`` (CUDA, else MPS, else CPU), ``cpu``,
        ``cuda``, ``cuda:N``, ``mps`` (:func:`merkit.nets.device.resolve_device`). Runs
        off the CPU carry ``device`` in their parameters (their numbers differ in the
        last digits, so they never share a cache with CPU runs). On a Ray / Dask backend
        ``auto`` is resolved here and an explicit ``cuda`` / ``mps`` on the workers (this
        machine need not have the GPU); each fold then asks for one GPU.
    precision : {"32", "16-mixed", "bf16-mixed"}
        float32 (default: the published numbers) or mixed-precision autocast; part of
        the run's parameters when not ``32``.
    augment : str
        Augmentation policy of the training batches (:data:`merkit.nets.augment.POLICIES`,
        docs/augmentation.md); ``"none"`` (the presets') adds nothing to the parameters.
        It must fit the model's input (flow or clip); augmented runs train fold by fold.
    magnify_augment : str, sequence of float or mapping, optional
        Magnify-and-reduce (EMR; docs/magnification.md): magnification factors ``alpha``
        (> -1; in (-1, 0) a reduction), e.g. ``[2, 4, 8]`` or ``"2,4,8"``. Every training
        clip of a fold adds one training sample per factor: the clip magnified by that
        factor (before the flow or TIM, like ``flow["magnify"]``), with its subject and
        label; the test clips are only the clips as the run makes them (``flow`` /
        ``clip["magnify"]``, or plain). The band, pyramid, filter, cut-off, levels and order
        are those of the run's own ``magnify``, else the defaults, or given as
        ``{"factors": [...], "band": (1, 10), ...}``. The copies' inputs are cached like
        the others; the setting joins the run's parameters (``magnify_augment``), so runs
        without it keep their ids. Training takes about ``1 + len(factors)`` times as long.
        Needs ``data_dir``.
    missing : {"raise", "error", "skip"}
        With ``data_dir``: clips whose frames are missing stop the run (listed), or are
        left out and listed in ``out_dir/skipped.csv``.
    workers : int
        DataLoader worker processes reading the cached clip volumes of the 3-D networks
        (0: read in the training process; flow images are in memory and need none); the
        same numbers for any value.
    audit_every : int, optional
        Leak audit (:mod:`merkit.results.audit`, docs/leak-audit.md): record every test
        fold's probabilities after every ``audit_every``-th epoch and the last, and score
        the run under the test-subject selections of published code beside the honest
        score (``audit.csv``, the report). None: 1 for flow-image networks and for the
        length-1 flow sequences of ``flows_dir`` (cheap), 0 (off) for clips and computed
        flow sequences, whose test inputs cost a 3-D forward pass each. Never changes the
        trained weights, the results or the run id. Single-label protocols only; a
        two-stage network is recorded in its target stage.
    prior_epochs : int, optional
        Epochs of the prior stage of a two-stage network (mersiam; default: its preset's).
    label_smoothing, ema_decay : float, optional
        :class:`merkit.nets.train.TrainConfig`'s label smoothing and weight average
        (default: the preset's, off). Part of the run id only when non-zero.
    scheduler : {"none", "step", "cosine"}, optional
        The learning-rate schedule (default: the preset's; ``cosine`` anneals to 0 over the
        epochs).
    sampler : {"shuffle", "balanced"}, optional
        Class-balanced sampling of each fold's training clips (``balanced``; per-fold
        path) or every clip once per epoch (default).
    fold_epochs : path or mapping, optional
        Each fold's own number of epochs, ``{fold name: epochs}`` or a JSON file of it
        (:func:`read_fold_epochs`), e.g. epochs chosen per group of test subjects on
        training subjects only (docs/cde-reproduction.md). Every fold of the task needs
        one; not with ``epochs`` or ``final``. The mapping joins the run's parameters
        (``epochs: "per fold"``); batched folds train one computation per epoch count.

    Raises
    ------
    PermissionError, NotADirectoryError
        ``out_dir`` cannot be written (checked before any input is read).
    """
    from merkit.nets import input_kind
    from merkit.nets.train import PRESETS, TrainConfig

    t0 = time.perf_counter()
    protocol = str(protocol).lower()
    declared = deep_protocol(protocol)
    _check_combination(protocol, model, flows_dir, data_dir,
                       magnify=any((d or {}).get("magnify") for d in (flow, clip)))  # fmt: skip
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct integers, got {seeds}")
    kind = input_kind(model)
    own_magnify = ((flow if kind == "flow" else clip) or {}).get("magnify")
    copies = magnify_augment_factors(magnify_augment, own_magnify, flows_dir=flows_dir)
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown training preset {preset!r}; known: {sorted(PRESETS)}")
    kwargs = dict(model_kwargs or {})
    owned = not isinstance(backend, Backend)
    be = Backend(backend, n_jobs, address) if owned else backend  # checks the options only
    if be.name != "loky":  # a cluster trains one fold per job
        if fold_batching == "on":
            raise ValueError(
                f"--fold-batching on trains the folds of a seed together in one process; "
                f"--backend {be.name} sends each fold to a worker as its own job: use "
                "--fold-batching off or auto"
            )
        if fold_batching == "auto":
            log.info("backend %s: folds train one per job (no fold batching)", be.name)
            fold_batching = "off"
    if fold_epochs is not None:
        if epochs is not None:
            raise ValueError("--fold-epochs and --epochs both set the epochs; give one")
        if final:
            raise ValueError("--final trains one model on every clip for one number of "
                             "epochs; with --fold-epochs train it in a run of its own with "
                             "--epochs")  # fmt: skip
        fold_epochs = read_fold_epochs(fold_epochs)
    if audit_every is None:  # the 3-D inputs' test clips cost a forward pass each
        audit_every = 1 if kind == "flow" or (kind == "flowseq" and flows_dir) else 0
    _positive_int(audit_every, "audit_every", "--audit-every", least=0)
    dev = _check_options(declared, model, kind, kwargs, epochs=epochs, lr=lr,
                         batch_size=batch_size, threads=threads, folds=folds, n_folds=n_folds,
                         flow=flow, clip=clip, fold_batching=fold_batching, device=device,
                         precision=precision, augment=augment,
                         on_workers=be.name != "loky", workers=workers,
                         prior_epochs=prior_epochs, label_smoothing=label_smoothing,
                         ema_decay=ema_decay, scheduler=scheduler, sampler=sampler)  # fmt: skip
    given = sorted(k for k in ("size", "length", "keyframes") if k in (clip or {}))
    if flows_dir is not None and kind == "flowseq" and given:
        raise ValueError(
            f"--flows-dir gives one 28 x 28 onset -> apex flow per clip (a sequence of length "
            f"1); the sequence options ({', '.join(given)}) need --data (clips)"
        )
    overrides = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size),
                                   ("threads", threads), ("prior_epochs", prior_epochs),
                                   ("label_smoothing", label_smoothing), ("ema_decay", ema_decay),
                                   ("scheduler", scheduler), ("sampler", sampler))
                 if v is not None}  # fmt: skip
    if precision != "32":
        overrides["precision"] = precision
    if class_weight is not None:
        if class_weight not in ("none", "balanced"):
            raise ValueError(f"class_weight={class_weight!r}; expected 'none' or 'balanced'")
        if declared.multilabel:
            raise ValueError(f"the {protocol} protocol is multi-label: it takes no class weights")
        overrides["class_weight"] = None if class_weight == "none" else "balanced"
    split = (
        {"n_folds": int(n_folds), "split_seed": int(split_seed)} if declared.takes_n_folds else {}
    )

    out_dir = ensure_writable_dir(out_dir, "--out")  # before any input is read or computed

    # ---- tables and inputs of every task
    flow_set = None
    if flows_dir is not None:
        from merkit.nets.data import read_megc2019_flow

        flows_dir = Path(flows_dir)
        if not flows_dir.is_dir():
            raise FileNotFoundError(f"flow folder {flows_dir} does not exist")
        flow_set = read_megc2019_flow(flows_dir, channels="uvs")
        available = set(flow_set.table["dataset"].astype(str))
    else:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data folder {data_dir} does not exist")
        available = set(discover(data_dir))
    specs = resolve_specs(protocol, tasks, available=available)
    if flow_set is not None:
        bad = [s.name for s in specs if (s.protocol, s.name) not in _FLOW_FOLDER_TASKS]
        if bad:
            raise ValueError(
                f"--flows-dir holds the MEGC 2019 3-class composite labels only (protocol cde, "
                f"loso task SMIC_HS-3); {protocol} task(s) {bad} need --data (clips)"
            )
    base = None if data_dir is None else cache_folder(data_dir, cache)
    if flow_set is not None:  # how the released images were made is not recorded
        input_params = {k: v for k, v in FLOW_IMAGE_PARAMS.items() if k != "size"}
        if kind == "flowseq":  # predict: one onset -> apex flow, as the released images
            input_params.update(_RELEASED_SEQUENCE)
    elif kind == "flowseq":  # the flow options (--face-size, --flow-preset) and the
        # sequence's (--clip-size, --clip-length, --keyframes)
        input_params = {**FLOWSEQ_PARAMS, **(flow or {}), **(clip or {})}
    elif kind == "flow":
        input_params = {**FLOW_IMAGE_PARAMS, **(flow or {})}
    else:
        input_params = {**CLIP_PARAMS, **(clip or {})}
    if kind == "clip":
        kwargs.setdefault("in_channels", 1)
    memo: dict = {}
    built: list[tuple[DeepTask, _Inputs]] = []
    dropped: list[pd.DataFrame] = []  # clips left out with missing="skip"
    for spec in specs:
        if flow_set is not None:
            t = flow_set.table.assign(y=flow_set.y, _row=np.arange(len(flow_set)))
            task = make_task(spec, t, n_folds=n_folds, split_seed=split_seed)
            X = flow_set.X[task.table["_row"].to_numpy()]
            fp = _fingerprint("megc2019_flow", X, task.y)
            source = {"source": "flow images", "flows_dir": str(flows_dir)}
            if kind == "flowseq":  # each image: a sequence of one flow
                X = np.ascontiguousarray(X[:, :, None])
                source["sequence"] = "each flow image is a flow sequence of length 1"
            built.append((task, _Inputs(X, fp, source, kind)))
            continue
        table, classes, left_out = _load_task_table(spec, data_dir, missing)
        dropped.append(left_out)
        task = make_task(spec, table, classes=classes, n_folds=n_folds, split_seed=split_seed)
        sub = {"flow": "flows", "flowseq": "flowseqs"}.get(kind, "clips")
        folder = None if base is None else base / sub
        if kind == "flow":
            X = flow_inputs(task.table, params=input_params, n_jobs=n_jobs, memo=memo,
                            folder=folder)  # fmt: skip
            fp = _fingerprint("tvl1-onset-apex", X, task.y)
            inputs = _Inputs(X, fp, {"source": "clips"}, "flow")
        elif kind == "flowseq":
            X = flowseq_inputs(task.table, params=input_params, n_jobs=n_jobs, memo=memo,
                               folder=folder)  # fmt: skip
            prefix = f"tvl1-{input_params['keyframes']}{input_params['length']}"
            fp = _fingerprint(prefix, X, task.y)
            inputs = _Inputs(X, fp, {"source": "clips"}, "flowseq")
        else:
            X = clip_inputs(task.table, params=input_params, n_jobs=n_jobs, memo=memo,
                            folder=folder)  # fmt: skip
            fp = _fingerprint(f"clips-tim{input_params['length']}", X, task.y)
            inputs = _Inputs(X, fp, {"source": "clips"}, "clip", scale=1 / 255)
        if copies:  # magnify-and-reduce: training copies, the test clips unchanged
            task, inputs = _with_magnified_copies(task, inputs, copies, input_params,
                                                  n_jobs=n_jobs, memo=memo,
                                                  folder=folder)  # fmt: skip
        built.append((task, inputs))

    if fold_epochs is not None:
        _check_fold_epochs(fold_epochs, built)
    if dropped:  # --data: skipped.csv lists the clips left out (a stale list goes)
        write_skipped(out_dir, pd.concat(dropped, ignore_index=True).drop_duplicates())

    # ---- train, score, store
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out_dir)
    runs: list[tuple[DeepTask, _Inputs, _TaskRun]] = []
    total = sum(len(t.select_folds(folds)) for t, _ in built) * len(seeds)
    with progress_bar(progress, console=console) as bar, be if owned else nullcontext():
        bar_task = bar.add_task(f"{protocol} {model}", total=total)
        for task, inputs in built:
            n_classes = len(task.classes)
            cfg = TrainConfig.preset(preset or preset_for(model, protocol),
                                     num_classes=n_classes, augment=augment,
                                     flow_channels=inputs.channels, **overrides)  # fmt: skip
            got = _run_task(task, inputs, model=model, cfg=cfg, model_kwargs=kwargs,
                            seeds=seeds, folds=folds, final=final, out_dir=out_dir, split=split,
                            bar=bar, bar_task=bar_task, input_params=input_params,
                            fold_weights=fold_weights, backend=be,
                            fold_batching=fold_batching, device=dev,
                            workers=workers, audit_every=audit_every,
                            fold_epochs=fold_epochs)  # fmt: skip
            runs.append((task, inputs, got))
    store.add_records([r for _, _, g in runs for r in g.records])
    history = write_history(out_dir / "history.csv", [h for _, _, g in runs for h in g.history])
    audit_rows = [a for _, _, g in runs for a in g.audit]
    audit = pd.concat(audit_rows, ignore_index=True) if audit_rows else pd.DataFrame()
    if not audit.empty:
        write_audit(out_dir, audit)
    written = []
    for task, _, got in runs:
        for seed, arrays in got.embeddings:
            path = embeddings_path(out_dir, task.protocol, task.name, model, seed)
            written.append(write_embeddings(path, **arrays))
    run_ids = {t.name: g.run for t, _, g in runs}
    write_run_info(out_dir, {
        "protocol": protocol, "model": model, "seeds": _seeds_of_runs(out_dir, run_ids, seeds),
        "run": runs[0][2].run, "runs": run_ids,
        "data": {t.name: i.data_fp for t, i, _ in runs},
        "folds": {t.name: len(t.select_folds(folds)) for t, _, _ in runs},
        "model_kwargs": kwargs, "inputs": input_params, **split,
        **runs[0][1].source,
        **({"magnify_augment": runs[0][1].magnify_augment} if copies else {}),
    })  # fmt: skip

    results = store.results_of(r for _, _, g in runs for r in g.records)
    summary = summarize(results)
    write_summary_table(out_dir, summary)
    first = runs[0][2]
    return TrainResult(
        out_dir, results, summary, first.run, sum(g.done for _, _, g in runs),
        sum(g.cached for _, _, g in runs), first.weights_dir, first.final,
        time.perf_counter() - t0, runs={t.name: g.run for t, _, g in runs},
        weights_dirs={t.name: g.weights_dir for t, _, g in runs},
        final_paths={t.name: g.final for t, _, g in runs if g.final is not None},
        history=history, embeddings=written, audit=audit,
        tables=[(f"{protocol}: pooled UF1, UAR, accuracy (%), seed mean",
                 summary_table(summary))]
        + ([(f"{protocol} leak audit: test-subject epoch picking (an estimate of its "
             "inflation, not a result), seed mean", audit_table(audit))]
           if not audit.empty else []),
    )  # fmt: skip
