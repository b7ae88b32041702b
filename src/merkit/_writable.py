"""Check that an output folder can be written before any work starts.

Every command that writes results (``demo``, ``synth``, ``extract``, ``cdmer``,
``train``, ``report``) calls :func:`ensure_writable_dir` on its output folder first, so a
read-only, unwritable or mistyped ``--out`` is one line naming the folder and the
option instead of a traceback after minutes of feature extraction or training.

Writability is probed by creating and removing a temporary file: permission bits
alone say nothing about read-only mounts, ACLs or the root user.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

__all__ = ["ensure_writable_dir"]

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
