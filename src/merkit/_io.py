"""Writing output files: the folder checked before any work, each file written atomically.

:func:`ensure_writable_dir` is called by every command that writes results (``demo``,
``synth``, ``extract``, ``cdmer``, ``train``, ``report``) on its output folder first, so a
read-only, unwritable or mistyped ``--out`` is one line naming the folder and the option
instead of a traceback after minutes of extraction or training. Writability is probed by
creating and removing a temporary file: permission bits alone say nothing about read-only
mounts, ACLs or the root user.

Atomic writes: a temporary file next to the target, then ``os.replace``.

A crash or Ctrl-C leaves the old file or the new one, never half of one. The temporary
file is created like a normal ``open(path, "w")`` creates a file (mode ``0o666`` less the
umask, or the folder's default ACL), so results, predictions and reports get the
permissions the user's other files get; ``tempfile.mkstemp`` would make them ``0o600``.
Every writer of merkit's output files goes through :func:`atomic_write` (or
:func:`write_temporary` when several files are renamed together); the text, bytes, CSV and
``.npz`` writers below are that one function with the file's serialisation.
"""

from __future__ import annotations

import errno
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_npz",
    "atomic_write_text",
    "ensure_writable_dir",
    "temporary_name",
    "write_temporary",
]


def temporary_name(path: str | Path) -> Path:
    """A fresh hidden name next to ``path``: ``.<name>.<pid>.<random>.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def write_temporary(
    path: str | Path,
    write: Callable[[IO[Any]], object],
    *,
    binary: bool = True,
    fsync: bool = False,
    encoding: str = "utf-8",
) -> Path:
    """Write a new temporary file next to ``path`` with ``write(fh)``; return its name.

    The caller renames it (``os.replace(tmp, path)``) or removes it. It is created with
    ``O_EXCL`` and the permissions a normal ``open()`` gives (umask applied). Text files
    are written with ``newline=""`` (what the ``csv`` module and pandas expect). On any
    error the temporary file is removed and the error re-raised.

    Parameters
    ----------
    path : path
        The file the temporary one will replace (its folder must exist).
    write : callable
        Called with the open file object.
    binary : bool
        Open in binary (``"xb"``) or text (``"x"``) mode.
    fsync : bool
        Flush the data to disk before returning (survives a system crash after the rename).
    encoding : str
        Text mode only.
    """
    tmp = temporary_name(path)
    text_args = {} if binary else {"encoding": encoding, "newline": ""}
    try:
        with open(tmp, "xb" if binary else "x", **text_args) as fh:
            write(fh)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(
    path: str | Path,
    write: Callable[[IO[Any]], object],
    *,
    binary: bool = True,
    fsync: bool = False,
    encoding: str = "utf-8",
) -> Path:
    """Write ``path`` atomically with ``write(fh)`` (see :func:`write_temporary`)."""
    path = Path(path)
    tmp = write_temporary(path, write, binary=binary, fsync=fsync, encoding=encoding)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data), fsync=fsync)


def atomic_write_text(
    path: str | Path, text: str, *, fsync: bool = False, encoding: str = "utf-8"
) -> Path:
    """Write ``text`` to ``path`` atomically (no newline translation)."""
    return atomic_write(path, lambda fh: fh.write(text), binary=False, fsync=fsync,
                        encoding=encoding)  # fmt: skip


def atomic_write_csv(path: str | Path, table: pd.DataFrame, *, fsync: bool = False) -> Path:
    """Write ``table`` to ``path`` as CSV (no index column) atomically."""
    return atomic_write(path, lambda fh: table.to_csv(fh, index=False), binary=False,
                        fsync=fsync)  # fmt: skip


def atomic_write_npz(
    path: str | Path, arrays: Mapping[str, np.ndarray], *, fsync: bool = False
) -> Path:
    """Write ``arrays`` to ``path`` as an uncompressed ``.npz`` (:func:`numpy.savez`)
    atomically."""
    return atomic_write(path, lambda fh: np.savez(fh, **arrays), fsync=fsync)


_REMEDY = "choose a folder you can write to, or fix its permissions"


def _file_in_the_way(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path`` itself) that is not a folder."""
    try:
        for p in [*reversed(path.parents), path]:
            if not p.exists():
                return None
            if not p.is_dir():
                return p
    except OSError:  # a parent that cannot be listed: the mkdir / probe below says why
        return None
    return None


def _unwritable(path: Path, option: str, err: OSError) -> OSError:
    """The one-line error for ``err`` raised while creating or probing ``path``."""
    reason = (err.strerror or type(err).__name__).lower()
    where = f"{option} {path}" if option else str(path)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return OSError(f"{where}: cannot write to this folder ({reason}); free disk space or "
                       "choose another folder")  # fmt: skip
    if err.errno == errno.EROFS:
        return PermissionError(f"{where}: cannot write to this folder (read-only file "
                               "system); choose a folder on a writable disk")  # fmt: skip
    return PermissionError(f"{where}: cannot write to this folder ({reason}); {_REMEDY}")


def ensure_writable_dir(path: str | Path, option: str = "--out") -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it.

    Parameters
    ----------
    path : str or Path
        The output folder.
    option : str
        How the user gave the folder (``"--out"``, ``"--html"``...), named in the error.

    Returns
    -------
    Path
        ``path``, now an existing writable folder.

    Raises
    ------
    NotADirectoryError
        ``path`` or one of its parents is a file.
    PermissionError
        The folder cannot be created or written (no permission, read-only file system).
    OSError
        Another operating-system reason (e.g. no space left for a new file).
    """
    path = Path(path)
    where = f"{option} {path}" if option else str(path)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        what = "is a file" if blocker == path else f"{blocker} is a file"
        raise NotADirectoryError(f"{where}: {what}, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".merkit-write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise _unwritable(path, option, err) from err
    return path
