"""C++ kernels of merkit's networks, compiled on first use.

A kernel is a C++ source file in this folder, built with
:func:`torch.utils.cpp_extension.load` (a C++ compiler and ``ninja`` must be present:
``pip install ninja``) into a per-user cache folder the first time it is asked for, and
loaded from there afterwards (a source change rebuilds it). Nothing is downloaded. Where
it cannot be built, :func:`load_kernel` returns None with the reason in
:func:`kernel_problem`, and callers fall back to plain PyTorch code.

Cache folder: ``$MERKIT_KERNEL_DIR`` when set, else ``$XDG_CACHE_HOME/merkit/kernels``
(``~/.cache/merkit/kernels``); one sub-folder per kernel source, torch version and CPU
flags, and checkout (the source's path).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import threading
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

__all__ = ["kernel_cache_dir", "kernel_problem", "load_kernel"]

_HERE = Path(__file__).resolve().parent
_LOADED: dict[str, ModuleType | None] = {}
_PROBLEMS: dict[str, str] = {}
_LOCK = threading.Lock()


def kernel_cache_dir() -> Path:
    """Where built kernels are kept (see the module docstring)."""
    env = os.environ.get("MERKIT_KERNEL_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "merkit" / "kernels"


def _compiler() -> str | None:
    cxx = os.environ.get("CXX", "c++")
    return shutil.which(cxx)


def _flags() -> list[str]:
    # -march=native: the kernel is built on the machine that runs it
    arch = "-mcpu=native" if platform.machine().lower() in ("arm64", "aarch64") else "-march=native"
    return ["-O3", arch, "-fopenmp", "-ffp-contract=fast"]


def kernel_problem(name: str) -> str | None:
    """Why kernel ``name`` could not be built or loaded (None: it was, or was not tried)."""
    return _PROBLEMS.get(name)


def load_kernel(name: str) -> ModuleType | None:
    """The compiled kernel ``name`` (``<name>.cpp`` in this folder), built on first use.

    Returns None when it cannot be built here (no C++ compiler, no ninja, a compile
    error); :func:`kernel_problem` then says why (also logged once, as a warning).
    """
    with _LOCK:
        if name in _LOADED:
            return _LOADED[name]
        _LOADED[name] = module = _build(name)
        return module


def _build(name: str) -> ModuleType | None:
    source = _HERE / f"{name}.cpp"
    if not source.is_file():
        raise KeyError(f"no kernel {name!r}; known: {sorted(p.stem for p in _HERE.glob('*.cpp'))}")
    import torch
    from torch.utils.cpp_extension import is_ninja_available, load

    problem = None
    if _compiler() is None:
        problem = f"no C++ compiler ({os.environ.get('CXX', 'c++')}) on PATH"
    elif not is_ninja_available():
        problem = "ninja is not installed (pip install ninja)"
    if problem is not None:
        _PROBLEMS[name] = problem
        log.warning("kernel %s not built: %s; using the PyTorch path", name, problem)
        return None
    flags = _flags()
    # the source's path too: torch's build file names it, so two checkouts sharing one
    # cache folder would otherwise rebuild each other's kernel on every first use
    digest = hashlib.sha1(
        source.read_bytes()
        + torch.__version__.encode()
        + " ".join(flags).encode()
        + str(source).encode()
    ).hexdigest()[:12]
    build = kernel_cache_dir() / f"{name}-{digest}"
    build.mkdir(parents=True, exist_ok=True)
    if not any(build.glob("*.so")):
        log.info("building the C++ kernel %s in %s (once per machine, about a minute)", name, build)
    try:
        return load(
            name=f"merkit_{name}_{digest}",
            sources=[str(source)],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            build_directory=str(build),
            verbose=False,
        )
    except (RuntimeError, OSError, ImportError) as err:
        lines = [ln for ln in str(err).splitlines() if "error" in ln.lower()]
        _PROBLEMS[name] = f"compiling {source.name} failed ({(lines or [str(err)])[0].strip()})"
        log.warning("kernel %s not built: %s; using the PyTorch path", name, _PROBLEMS[name])
        return None
