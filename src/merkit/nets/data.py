"""Datasets for the networks: the MEGC 2019 composite flow folder, tensors, cached clips.

The MEGC 2019 folder (the STSTNet authors' release) holds
``STSNet_whole_norm_u_v_os/<sub>_<clip> .png`` (442 images, 28 x 28 x 3, note the space
before ``.png``) and ``combined_3_class2_for_optical_flow.csv`` (columns ``dataset, sub,
filename_o, label``; 0 Negative, 1 Positive, 2 Surprise). :func:`read_megc2019_flow`
matches every CSV row to exactly one image and returns a :class:`FlowSet`.

Names: the folder writes SMIC subjects with two digits (``s01``, clip ``s01_ne_01``);
merkit's canonical SMIC ids have none (``SMIC_HS/s1``, clip ``s1_ne_01``, see
:func:`merkit.data.adapters.smic.smic_subject_id`). CASME II ``sub01`` becomes
``CASME2/01``; SAMM ``006`` stays ``SAMM/006``. The mapping is explicit: the file name
is rebuilt from the canonical ids (:func:`megc2019_flow_filename`), never guessed.

Inputs too large for memory (clip volumes of a DFME-size database: 7,526 clips of
16 x 112 x 112 float32 are 6 GB) stay on disk as one ``.npy`` per clip: a
:class:`ClipArray` indexes them like an ``(n, C, T, H, W)`` array and reads a clip only when
asked (memory-mapped, copied out, unmapped), and :func:`make_loader` serves its batches
through a :class:`ClipDataset` and a DataLoader (``workers`` processes, pinned memory for
CUDA) in the same seeded order as the in-memory batches: the same numbers either way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset, WeightedRandomSampler

from merkit.data.adapters.smic import smic_clip_name, smic_subject_id
from merkit.video.flow import load_flow_image
from merkit.video.tim import tim

log = logging.getLogger(__name__)

__all__ = [
    "FLOW_CSV",
    "FLOW_IMAGE_DIR",
    "MEGC3_CLASSES",
    "ClipArray",
    "ClipDataset",
    "ClipInputError",
    "FlowSet",
    "batch_as_is",
    "canonical_subject",
    "clip_volume",
    "make_loader",
    "megc2019_flow_filename",
    "read_megc2019_flow",
]

FLOW_CSV = "combined_3_class2_for_optical_flow.csv"
FLOW_IMAGE_DIR = "STSNet_whole_norm_u_v_os"
#: label index -> class name of the MEGC 2019 composite set
MEGC3_CLASSES = ("negative", "positive", "surprise")
_DATASETS = {"casme2": "CASME2", "smic": "SMIC_HS", "samm": "SAMM"}


@dataclass(frozen=True)
class FlowSet:
    """Flow images with labels and a per-sample table.

    Attributes
    ----------
    X : ndarray of float32, shape (n, C, H, W)
        Channel-first images (values as loaded times ``scale``).
    y : ndarray of int64, shape (n,)
    table : DataFrame
        One row per sample with at least ``subject`` (``"<dataset>/<id>"``) and ``clip``.
    channels : str
        Channel order of X (``"uvs"`` or ``"svu"``).
    """

    X: np.ndarray
    y: np.ndarray
    table: pd.DataFrame
    channels: str = "uvs"

    def __post_init__(self) -> None:
        n = len(self.table)
        if self.X.ndim < 4 or self.X.shape[0] != n or np.asarray(self.y).shape != (n,):
            raise ValueError(
                f"FlowSet: X {self.X.shape}, y {np.asarray(self.y).shape} and table ({n} rows) "
                "must agree: X (n, C, H, W) [or (n, C, T, H, W)], y (n,)"
            )
        for col in ("subject", "clip"):
            if col not in self.table.columns:
                raise ValueError(f"FlowSet: table lacks the {col!r} column")

    def __len__(self) -> int:
        return len(self.table)

    def subset(self, idx: np.ndarray) -> FlowSet:
        """Rows ``idx`` (positions) as a new FlowSet."""
        idx = np.asarray(idx, dtype=np.int64)
        return FlowSet(self.X[idx], self.y[idx], self.table.iloc[idx].reset_index(drop=True),
                       self.channels)  # fmt: skip


def canonical_subject(dataset: str, sub: str) -> str:
    """``("smic", "s01") -> "SMIC_HS/s1"``, ``("casme2", "sub01") -> "CASME2/01"``,
    ``("samm", "006") -> "SAMM/006"``."""
    key = str(dataset).strip().lower()
    sub = str(sub).strip()
    if key == "smic":
        return f"SMIC_HS/{smic_subject_id(sub)}"
    if key == "casme2":
        digits = sub.lower().removeprefix("sub")
        if not digits.isdigit():
            raise ValueError(f"CASME II subject {sub!r} is not like 'sub01'")
        return f"CASME2/{int(digits):02d}"
    if key == "samm":
        if not sub.isdigit():
            raise ValueError(f"SAMM subject {sub!r} is not a number like '006'")
        return f"SAMM/{int(sub):03d}"
    raise ValueError(f"unknown MEGC 2019 dataset {dataset!r}; expected one of {sorted(_DATASETS)}")


def megc2019_flow_filename(subject: str, clip: str) -> str:
    """File name of a clip's flow image from merkit's canonical ids.

    ``("SMIC_HS/s1", "s1_ne_01") -> "s01_s01_ne_01 .png"``,
    ``("CASME2/01", "EP02_01f") -> "sub01_EP02_01f .png"``,
    ``("SAMM/006", "006_1_2") -> "006_006_1_2 .png"``.
    """
    db, _, sid = subject.partition("/")
    if db == "SMIC_HS":
        n = int(sid.removeprefix("s"))
        return f"s{n:02d}_{smic_clip_name(clip, padded=True)} .png"
    if db == "CASME2":
        return f"sub{int(sid):02d}_{clip} .png"
    if db == "SAMM":
        return f"{int(sid):03d}_{clip} .png"
    raise ValueError(f"subject {subject!r} is not a MEGC 2019 subject (CASME2/SMIC_HS/SAMM)")


def read_megc2019_flow(
    root: str | Path, *, channels: str = "uvs", scale: float = 1.0,
    csv_name: str = FLOW_CSV, image_dir: str = FLOW_IMAGE_DIR,
) -> FlowSet:  # fmt: skip
    """Read the MEGC 2019 flow folder (the 442 images of the composite set).

    Parameters
    ----------
    root : path
        Folder holding the CSV and the image folder.
    channels : {"uvs", "svu"}
        Channel order (``"svu"`` = cv2's BGR order, needed by the released STSTNet weights).
    scale : float
        Multiplier of the 0..255 pixel values (1.0 keeps them raw, 1/255 gives 0..1).

    Returns
    -------
    FlowSet
        ``X`` float32 (442, 3, 28, 28) in CSV order; ``table`` columns ``dataset`` (CASME2,
        SMIC_HS, SAMM), ``subject``, ``clip`` (canonical), ``native_subject``,
        ``native_clip``, ``path``, ``label`` and ``emotion``.

    Raises
    ------
    FileNotFoundError
        Missing CSV / folder, or a row without its image (the message names the row).
    ValueError
        An image matched by two rows, or images no row uses.
    """
    root = Path(root)
    csv_path, img_dir = root / csv_name, root / image_dir
    if not csv_path.is_file():
        raise FileNotFoundError(f"MEGC 2019 flow list {str(csv_path)!r} does not exist")
    if not img_dir.is_dir():
        raise FileNotFoundError(f"MEGC 2019 flow image folder {str(img_dir)!r} does not exist")
    raw = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = {"dataset", "sub", "filename_o", "label"} - set(raw.columns)
    if missing:
        raise ValueError(f"{csv_path}: missing columns {sorted(missing)}")
    on_disk = {p.name for p in img_dir.iterdir() if p.name.endswith(".png")}
    rows, used = [], {}
    for i, r in raw.iterrows():
        where = f"{csv_path.name} row {i + 2} ({r['dataset']}, {r['sub']}, {r['filename_o']})"
        subject = canonical_subject(r["dataset"], r["sub"])
        native_clip = r["filename_o"].strip()
        clip = smic_clip_name(native_clip) if subject.startswith("SMIC_HS/") else native_clip
        name = megc2019_flow_filename(subject, clip)
        if name not in on_disk:
            raise FileNotFoundError(f"{where}: expected flow image {str(img_dir / name)!r}")
        if name in used:
            raise ValueError(f"{where}: image {name!r} is already used by row {used[name]}")
        used[name] = i + 2
        label = int(r["label"])
        if not 0 <= label < len(MEGC3_CLASSES):
            raise ValueError(f"{where}: label {label} is not 0, 1 or 2")
        rows.append({
            "dataset": _DATASETS[r["dataset"].strip().lower()], "subject": subject,
            "clip": clip, "native_subject": r["sub"].strip(), "native_clip": native_clip,
            "path": str(img_dir / name), "label": label, "emotion": MEGC3_CLASSES[label],
        })  # fmt: skip
    unused = sorted(on_disk - set(used))
    if unused:
        raise ValueError(
            f"{img_dir}: {len(unused)} images match no row of {csv_path.name}: {unused[:5]}"
        )
    table = pd.DataFrame(rows)
    X = np.stack([load_flow_image(p, channels=channels) for p in table["path"]])
    X = np.ascontiguousarray(X.transpose(0, 3, 1, 2), dtype=np.float32)
    if scale != 1.0:
        X *= np.float32(scale)
    y = table["label"].to_numpy(np.int64).copy()  # writable (pandas 3 returns read-only views)
    log.info("read %d MEGC 2019 flow images (%s) from %s", len(table), channels, img_dir)
    return FlowSet(X, y, table, channels)


def clip_volume(frames: np.ndarray, *, length: int = 16, scale: float = 1.0 / 255.0) -> np.ndarray:
    """Network input of a clip for the 3-D models: TIM to ``length`` frames, then scaled.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W)
        Grey frames onset..offset (0..255), already face-cropped / resized.
    length : int
        Frames after the temporal interpolation model (:func:`merkit.video.tim.tim`).
    scale : float
        Multiplier of the pixel values (default 1/255: inputs in about 0..1).

    Returns
    -------
    ndarray of float32, shape (1, length, H, W)
        One channel (grey), channel first: stack clips to ``[B, 1, T, H, W]``.
    """
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 3 or frames.shape[0] < 2:
        raise ValueError(f"a clip needs (T >= 2, H, W) grey frames, got shape {frames.shape}")
    out = tim(frames, int(length)) * np.float32(scale)
    return np.ascontiguousarray(out[None], dtype=np.float32)


class ClipInputError(ValueError):
    """A clip's cached input that is missing, damaged or not the array expected (one line).

    Raised again in the training process when a DataLoader worker raised it; torch then
    passes the worker's traceback as the message, of which only the original line is kept.
    """

    def __init__(self, message: str) -> None:
        if "Original Traceback" in message:  # torch's ExceptionWrapper.reraise
            mark = f"{type(self).__name__}: "
            lines = [ln for ln in message.splitlines() if mark in ln]
            if lines:
                message = lines[-1].split(mark, 1)[1].strip()
        super().__init__(message)


#: what to do about a missing (then a damaged) cache file
_RERUN = (
    "run the same merkit train --data command again: clips missing from the cache are "
    "computed again"
)
_REDO = f"delete the file and {_RERUN}"


class ClipArray:
    """Per-clip arrays on disk, one ``.npy`` each, used like an ``(n, *item_shape)`` array.

    Nothing is read when the array is made or indexed by positions: ``X[idx]`` (an int
    array, a boolean mask or a slice) is another ClipArray over those files, and a clip is
    read by :meth:`load` (``X[i]`` for an integer ``i``) -- memory-mapped, copied out as
    float32, unmapped -- so the memory held is that of the clips being used, never the
    set's. ``np.asarray(X)`` reads every clip of the view (for small views).

    Parameters
    ----------
    paths : sequence of path
        One ``.npy`` file per clip (what ``merkit train --data`` caches).
    item_shape : sequence of int
        Shape of every clip, e.g. ``(1, 16, 112, 112)`` (C, T, H, W).
    names : sequence of str, optional
        Clip names for error messages (default: the file names).

    Attributes
    ----------
    shape : tuple of int
        ``(n, *item_shape)``.
    dtype : numpy.dtype
        float32 (clips are returned as float32 whatever the stored dtype).
    """

    dtype = np.dtype(np.float32)

    def __init__(
        self, paths: Sequence[str | Path], item_shape: Sequence[int], *,
        names: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        self.paths = tuple(str(p) for p in paths)
        self.item_shape = tuple(int(d) for d in item_shape)
        self.names = (
            tuple(str(n) for n in names)
            if names is not None
            else tuple(Path(p).name for p in self.paths)
        )
        if len(self.names) != len(self.paths):
            raise ValueError(
                f"ClipArray: {len(self.paths)} paths but {len(self.names)} names; give one "
                "name per clip"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.item_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the whole view as one in-memory float32 array (never allocated)."""
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"ClipArray(shape={self.shape}, dtype=float32, on disk)"

    def __getitem__(self, idx) -> np.ndarray | ClipArray:
        if isinstance(idx, (int, np.integer)):
            return self.load(int(idx))
        rows = np.arange(len(self))[idx]
        if rows.ndim != 1:
            raise IndexError(f"ClipArray takes one index (int, slice, ints or mask), got {idx!r}")
        return ClipArray([self.paths[i] for i in rows], self.item_shape,
                         names=[self.names[i] for i in rows])  # fmt: skip

    def load(self, i: int) -> np.ndarray:
        """Clip ``i`` as a new float32 array of ``item_shape`` (only its file is read).

        Raises
        ------
        ClipInputError
            (a ValueError) The file is missing, damaged or truncated, or holds an array of
            another shape; one line naming the clip, the file and what to do.
        """
        stored = self._mapped(i)
        out = np.array(stored, dtype=np.float32, order="C")  # reads this clip's bytes only
        del stored  # unmaps the file
        return out

    def _mapped(self, i: int) -> np.ndarray:
        """Clip ``i``'s file memory-mapped read-only, its shape checked (:meth:`load`)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"clip {i} out of range for a ClipArray of {n} clips")
        path, name = self.paths[i], self.names[i]
        try:
            stored = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise ClipInputError(
                f"clip {name}: its cached input {path!r} is missing; {_RERUN}"
            ) from None
        except (ValueError, OSError, EOFError) as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ClipInputError(
                f"clip {name}: its cached input {path!r} is damaged or truncated ({reason}); "
                f"{_REDO}"
            ) from None
        if not isinstance(stored, np.ndarray) or stored.shape != self.item_shape:
            got = getattr(stored, "shape", type(stored).__name__)
            raise ClipInputError(
                f"clip {name}: its cached input {path!r} holds an array of shape {got}, "
                f"expected {self.item_shape}; {_REDO}"
            )
        return stored

    def take(self, idx: Sequence[int] | np.ndarray) -> np.ndarray:
        """Clips ``idx`` stacked, ``(len(idx), *item_shape)`` float32 (a mini-batch); each
        clip is copied once, from its mapped file into the batch."""
        rows = np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.item_shape), dtype=np.float32)
        for j, i in enumerate(rows):
            stored = self._mapped(int(i))
            out[j] = stored
            del stored  # unmaps the file
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self.take(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)


class ClipDataset(Dataset):
    """``(x, y)`` samples of a :class:`ClipArray`: clip ``i`` read when asked.

    Parameters
    ----------
    X : ClipArray, shape (n, C, T, H, W)
    y : ndarray, shape (n,) or (n, L), optional
        Targets, int64 (``-1`` for every clip when not given).

    Notes
    -----
    ``dataset[i]`` returns ``(x, y)`` with ``x`` a float32 tensor ``(C, T, H, W)`` and ``y``
    a 0-d (or ``(L,)``) int64 tensor. A DataLoader fetches whole batches
    (:meth:`__getitems__`: the clips read straight into one ``[B, C, T, H, W]`` array,
    without the per-sample stacking of the default collation, 5-10x slower for clips);
    with :func:`batch_as_is` as ``collate_fn`` its batches equal those of an in-memory
    :class:`~torch.utils.data.TensorDataset` of the same arrays.
    """

    def __init__(self, X: ClipArray, y: np.ndarray | None = None) -> None:
        self.X = X
        if y is None:
            self.y = torch.full((len(X),), -1, dtype=torch.int64)
        else:
            self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        if self.y.shape[0] != len(X):
            raise ValueError(f"ClipDataset: X has {len(X)} clips, y {self.y.shape[0]}")

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.X.load(int(i))), self.y[i]

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``indices``: ``x`` ``[B, C, T, H, W]`` float32, ``y`` ``[B]`` int64."""
        rows = [int(i) for i in indices]
        return torch.from_numpy(self.X.take(rows)), self.y[rows]


def batch_as_is(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``collate_fn`` of batches that :meth:`ClipDataset.__getitems__` already stacked."""
    return batch


def _worker_init(worker_id: int) -> None:
    """One torch thread per DataLoader worker (they read and stack clips, nothing more).

    Workers are seeded by torch from the loader's generator (``base_seed + worker_id``
    for ``random``, torch and NumPy), so every draw in them follows the loader's seed.
    """
    torch.set_num_threads(1)


def make_loader(
    X: np.ndarray | torch.Tensor | ClipArray, y: np.ndarray | torch.Tensor | None = None, *,
    batch_size: int = 32, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
    workers: int = 0, pin_memory: bool = False, balanced: bool = False,
) -> DataLoader:  # fmt: skip
    """DataLoader of ``(x, y)`` batches (``y = -1`` when not given).

    Shuffling uses its own ``torch.Generator`` seeded with ``seed``: the order is
    reproducible and independent of the global RNG, and the same for in-memory and
    on-disk inputs.

    Parameters
    ----------
    X : ndarray, tensor or ClipArray, shape (n, ...)
        In-memory inputs (a :class:`~torch.utils.data.TensorDataset`, batched by
        :func:`merkit.nets.train.fit` without the DataLoader's per-sample work), or a
        :class:`ClipArray` (a :class:`ClipDataset`: each clip read when its batch is made).
    y : ndarray or tensor, shape (n,) or (n, L), optional
    batch_size, shuffle, seed, drop_last
        As for :class:`~torch.utils.data.DataLoader` (``seed`` seeds its generator).
    workers : int
        Worker processes reading a ClipArray's clips (0: in this process). The batches
        are the same for any value (the order is drawn in this process; workers draw
        nothing). In-memory inputs need none and ignore it.
    pin_memory : bool
        Page-locked batches for fast copies to a CUDA device (no effect, and no error,
        without an accelerator); in-memory tensors are pinned once.
    balanced : bool
        Class-balanced sampling (replaces ``shuffle``): each pass draws n rows with
        replacement, row i with probability proportional to ``1 / n_{y_i}``
        (:class:`~torch.utils.data.WeightedRandomSampler` on the seeded generator).

    Raises
    ------
    ValueError
        ``workers`` below 0, X and y of different lengths, or ``balanced`` without
        single-label ``y``.
    """
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 0:
        raise ValueError(
            f"workers={workers!r} (--workers): must be a whole number >= 0 (0 reads the "
            "clips in the training process)"
        )
    gen = torch.Generator().manual_seed(int(seed))
    pin = bool(pin_memory) and torch.accelerator.is_available()
    sampler = None
    if balanced:
        labels = None if y is None else np.asarray(y)
        if labels is None or labels.ndim != 1:
            raise ValueError("make_loader: balanced sampling needs one class label per clip")
        counts = np.bincount(labels.astype(np.int64))
        weights = torch.as_tensor(1.0 / counts[labels.astype(np.int64)], dtype=torch.float64)
        sampler = WeightedRandomSampler(weights, len(labels), replacement=True, generator=gen)
        shuffle = False
    if isinstance(X, ClipArray):
        return DataLoader(ClipDataset(X, None if y is None else np.asarray(y)),
                          batch_size=batch_size, shuffle=shuffle, generator=gen, sampler=sampler,
                          drop_last=drop_last, collate_fn=batch_as_is,
                          num_workers=int(workers), pin_memory=pin,
                          worker_init_fn=_worker_init if workers else None,
                          persistent_workers=False)  # fmt: skip
    xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if y is None:
        yt = torch.full((xt.shape[0],), -1, dtype=torch.int64)
    else:
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    if yt.shape[0] != xt.shape[0]:
        raise ValueError(f"make_loader: X has {xt.shape[0]} samples, y {yt.shape[0]}")
    if pin:
        xt, yt = xt.pin_memory(), yt.pin_memory()
    return DataLoader(TensorDataset(xt, yt), batch_size=batch_size, shuffle=shuffle,
                      generator=gen, drop_last=drop_last, sampler=sampler)  # fmt: skip
