"""On-disk cache of per-clip feature vectors, keyed by everything that determines them.

Layout::

    <cache dir>/<descriptor>/<key[:2]>/<key>.npy     one 1-D float32 vector per clip

``<descriptor>`` is the canonical spec with ``:`` replaced by ``-`` (``lbp_top-r3p8``), so a
descriptor's entries can be deleted as one folder. The key (:func:`clip_key`) is the
SHA-256 of a canonical JSON document holding

* the clip identity (dataset, subject, clip),
* the clip's source on disk: name, size, modification time (ns) and a BLAKE2b digest of
  the bytes of every frame file numbered in ``[onset, offset]``, or the same of its video
  file,
* ``onset`` and ``offset``,
* the preprocessing parameters (frame size, TIM length, alignment options),
* the descriptor (canonical spec and every parameter, block layout included),
* :data:`FEATURE_CODE_VERSION`.

Editing, adding or removing a frame of a clip therefore recomputes that clip only, also
when the new file has the old size and modification time (``cp -p`` / ``rsync -a`` of
other frames over the old ones): the key follows the bytes, not only the ``stat``. Any
other parameter change recomputes everything it touches. Computing a key reads every
frame of the clip in range (BLAKE2b, a few hundred MB/s), once: the digests of a clip are
remembered in ``<cache dir>/digests/`` under the files' full ``stat`` (device, inode, size,
modification *and* change time in ns). Writing a file's bytes always sets its change time
(ctime), which ``touch``, ``cp -p`` and ``rsync -a`` cannot set back, so a remembered digest
is used only for bytes that have not been written since it was taken; a warm run reads
``stat`` and one small file per clip, not every frame. Entries are written to a temporary
file in the same folder and renamed (``os.replace``), so an interrupted run never leaves a
half-written entry; an entry that cannot be read (or has the wrong shape) is recomputed
with a warning. A zero-length entry records "no face on the onset frame" for an aligned
clip, so skipped clips are not searched again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from merkit._io import atomic_write, atomic_write_text
from merkit.video.io import frame_number, list_frames

log = logging.getLogger(__name__)

__all__ = [
    "CACHE_DIRNAME",
    "FEATURE_CODE_VERSION",
    "FeatureCache",
    "canonical",
    "clip_key",
    "clip_source",
    "file_digest",
]

#: bump whenever a descriptor, TIM, resizing or alignment changes its numbers: every cache
#: entry written by older code is then ignored
FEATURE_CODE_VERSION = "1"

#: default cache folder name inside a dataset directory
CACHE_DIRNAME = ".merkit-cache"

#: entry meaning "describing this clip found no face" (aligned extraction, skip mode)
MISSING = np.zeros(0, dtype=np.float32)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return bool(str(value))


#: bytes read at a time when hashing a file
_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """BLAKE2b digest (32 hex digits) of a file's bytes, read in chunks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _signature(st: os.stat_result) -> list[int]:
    """What changes whenever a file's bytes are written: device, inode, size, mtime, ctime."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _digests(files: list[Path], memo_dir: Path | None) -> tuple[list[str], list[os.stat_result]]:
    """:func:`file_digest` and ``stat`` of each file; digests remembered under ``memo_dir``.

    A remembered list is used only when every file has the signature (device, inode, size,
    mtime, ctime) it had when it was hashed; files written while they were being hashed
    are not remembered.
    """
    stats = [f.stat() for f in files]
    if memo_dir is None:
        return [file_digest(f) for f in files], stats
    before = [_signature(st) for st in stats]
    key = hashlib.sha256(json.dumps(before, separators=(",", ":")).encode()).hexdigest()
    memo = memo_dir / key[:2] / f"{key}.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if isinstance(known, list) and len(known) == len(files):
            return [str(d) for d in known], stats
    except (OSError, ValueError):
        pass
    digests = [file_digest(f) for f in files]
    if [_signature(f.stat()) for f in files] == before:
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(digests)
            atomic_write_text(memo, text)
        except OSError as err:  # a read-only cache still gives correct keys, only slower
            log.debug("cannot remember frame digests in %s: %s", memo, err)
    return digests, stats


def clip_source(row: Mapping, memo_dir: str | Path | None = None) -> dict[str, Any]:
    """What is on disk for one clip: frame files in ``[onset, offset]`` or the video file.

    Parameters
    ----------
    row : mapping
        Sample-table row (``onset``, ``offset``, ``frames_dir`` or ``video_path``).
    memo_dir : path, optional
        Folder remembering the digests of files whose bytes have not been written since
        they were hashed (``FeatureCache.digests``); without it every file is read.

    Returns
    -------
    dict
        ``{"frames": [[name, size, mtime_ns, digest], ...]}`` or
        ``{"video": [path, size, mtime_ns, digest]}``; ``digest`` is :func:`file_digest`
        of the file's bytes, so a file replaced by another one of the same size and
        modification time still changes the source.

    Raises
    ------
    FileNotFoundError, ValueError
        From :func:`merkit.video.io.list_frames` (missing folder, no images, clashing
        frame numbers) or a missing video file.
    """
    onset, offset = int(row["onset"]), int(row["offset"])
    memo = Path(memo_dir) if memo_dir is not None else None
    if _present(row.get("frames_dir")):
        files = [f for f in list_frames(row["frames_dir"]) if onset <= frame_number(f) <= offset]
        digests, stats = _digests(files, memo)
        entries = [[f.name, st.st_size, st.st_mtime_ns, d]
                   for f, st, d in zip(files, stats, digests, strict=True)]  # fmt: skip
        return {"frames": entries}
    if _present(row.get("video_path")):
        path = Path(row["video_path"])
        if not path.is_file():
            raise FileNotFoundError(f"video {str(path)!r} does not exist")
        (digest,), (st,) = _digests([path], memo)
        return {"video": [str(path.resolve()), st.st_size, st.st_mtime_ns, digest]}
    raise ValueError("neither frames_dir nor video_path is set")


def canonical(value: Any) -> Any:
    """JSON-able, deterministic form of parameter values (block layouts, tuples, arrays)."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return canonical(value.tolist())
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)  # dataclasses such as BlockLayout have a deterministic repr


def clip_key(
    row: Mapping,
    descriptor: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    *,
    source: Mapping[str, Any] | None = None,
) -> str:
    """Cache key (64 hex digits) of one clip described with one set of parameters.

    Parameters
    ----------
    row : mapping
        Sample-table row (``dataset``, ``subject``, ``clip``, ``onset``, ``offset`` and
        ``frames_dir`` or ``video_path``).
    descriptor : mapping
        Descriptor identity, e.g. ``{"name": "lbp_top:r3p8", "params": {...}}``.
    preprocess : mapping
        Preprocessing parameters (size, TIM length, alignment options).
    source : mapping, optional
        Precomputed :func:`clip_source` of the row.
    """
    doc = {
        "version": FEATURE_CODE_VERSION,
        "clip": [str(row["dataset"]), str(row["subject"]), str(row["clip"])],
        "range": [int(row["onset"]), int(row["offset"])],
        "source": canonical(source if source is not None else clip_source(row)),
        "preprocess": canonical(preprocess),
        "descriptor": canonical(descriptor),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", name).strip("-") or "descriptor"


class FeatureCache:
    """Per-clip feature vectors under ``directory`` (created on first write).

    Parameters
    ----------
    directory : path
        Cache root.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r})"

    @property
    def digests(self) -> Path:
        """Folder remembering frame digests (see :func:`clip_source`)."""
        return self.directory / "digests"

    def path(self, descriptor: str, key: str) -> Path:
        """File of an entry."""
        if not re.fullmatch(r"[0-9a-f]{16,}", key):
            raise ValueError(f"cache key {key!r} is not a hex digest")
        return self.directory / _safe(descriptor) / key[:2] / f"{key}.npy"

    def load(self, descriptor: str, key: str, dim: int | None = None) -> np.ndarray | None:
        """The stored vector, or None when absent or unreadable (then logged and removed).

        Parameters
        ----------
        dim : int, optional
            Expected length; an entry of another length (other than the zero-length
            "no face" marker) counts as corrupt.
        """
        path = self.path(descriptor, key)
        if not path.is_file():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.ndim != 1 or arr.dtype != np.float32:
                raise ValueError(f"expected a 1-D float32 array, got {arr.dtype} {arr.shape}")
            if dim is not None and arr.size not in (0, dim):
                raise ValueError(f"expected {dim} values, got {arr.size}")
        except (OSError, ValueError, EOFError) as err:
            log.warning("feature cache entry %s is unreadable (%s); recomputing it", path, err)
            path.unlink(missing_ok=True)
            return None
        return arr

    def save(self, descriptor: str, key: str, vector: np.ndarray) -> Path:
        """Store a vector atomically (temporary file in the same folder + ``os.replace``)."""
        vector = np.ascontiguousarray(vector, dtype=np.float32)
        if vector.ndim != 1:
            raise ValueError(f"cache entries are 1-D vectors, got shape {vector.shape}")
        path = self.path(descriptor, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(path, lambda fh: np.save(fh, vector, allow_pickle=False))

    def entries(self, descriptor: str | None = None) -> list[Path]:
        """Stored entry files (of one descriptor, or all)."""
        root = self.directory / _safe(descriptor) if descriptor else self.directory
        return sorted(root.glob("**/*.npy")) if root.is_dir() else []
