"""Where the networks run and in what precision: device names, autocast, host copies.

``--device`` takes ``auto`` (CUDA if available, else Apple's MPS, else the CPU),
``cpu``, ``cuda``, ``cuda:N`` or ``mps``; :func:`resolve_device` turns it into a
:class:`torch.device` or says in one line why it cannot be used. ``--precision`` takes
``32`` (float32, the default: published numbers stay comparable), ``16-mixed`` (float16
autocast with a gradient scaler; CUDA and MPS) or ``bf16-mixed`` (bfloat16 autocast;
CUDA, MPS and CPUs, where it pays only with AVX-512 BF16 or AMX).

Whatever the device, results come back as CPU NumPy arrays (:func:`host`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch.nn as nn

__all__ = [
    "DEVICE_CHOICES",
    "PRECISIONS",
    "autocast",
    "check_precision",
    "deterministic_cuda",
    "device_name",
    "grad_scaler",
    "host",
    "model_device",
    "resolve_device",
]

#: what ``--device`` accepts (``cuda:N`` for any N)
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: what ``--precision`` accepts
PRECISIONS: tuple[str, ...] = ("32", "16-mixed", "bf16-mixed")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The :class:`torch.device` of a ``--device`` value.

    Parameters
    ----------
    spec : str, torch.device or None
        ``"auto"`` / None: CUDA if available, else MPS, else CPU; ``"cpu"``, ``"cuda"``,
        ``"cuda:N"``, ``"mps"``; a :class:`torch.device` is returned as it is (any type,
        e.g. ``meta`` in tests).

    Raises
    ------
    ValueError
        One line: an unknown name, or a device this machine's torch cannot use (names
        the torch build and what to use instead).
    """
    if isinstance(spec, torch.device):
        return spec
    name = device_name(spec)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    build = f"torch {torch.__version__}"
    if name == "mps":
        if not _mps_available():
            raise ValueError(f"device 'mps': Apple's MPS is not available with {build} on "
                             "this machine; use --device cpu or auto")  # fmt: skip
        return torch.device("mps")
    # cuda or cuda:N (device_name admits nothing else)
    index = name.partition(":")[2]
    if not torch.cuda.is_available():
        why = "a CPU-only build" if torch.version.cuda is None else "no GPU is visible"
        raise ValueError(f"device {spec!r}: CUDA is not available ({build}, {why}); use "
                         "--device cpu or auto")  # fmt: skip
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"device {spec!r}: this machine has {torch.cuda.device_count()} "
                         f"GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")  # fmt: skip
    return torch.device(name)


def device_name(spec: str | None) -> str:
    """A ``--device`` value checked by its form only (``"auto"``, ``"cpu"``, ``"cuda"``,
    ``"cuda:N"``, ``"mps"``, lower case), whether or not this machine has that device:
    what a driver checks before sending work to a cluster's GPU workers."""
    name = "auto" if spec is None else str(spec).strip().lower()
    if name in ("auto", "cpu", "cuda", "mps"):
        return name
    if name.startswith("cuda:"):
        if not name.partition(":")[2].isdigit():
            raise ValueError(f"device {spec!r}: the GPU index must be a number, e.g. cuda:0")
        return name
    raise ValueError(f"device {spec!r}: expected one of {', '.join(DEVICE_CHOICES)}")


def check_precision(precision: str, device: torch.device | None = None) -> str:
    """``precision`` if it is known and usable on ``device``, else a one-line ValueError."""
    value = str(precision)
    if value not in PRECISIONS:
        raise ValueError(f"precision={precision!r} (--precision): expected one of "
                         f"{', '.join(PRECISIONS)}")  # fmt: skip
    if device is not None and value == "16-mixed" and device.type not in ("cuda", "mps"):
        raise ValueError(f"precision '16-mixed' needs a GPU (cuda or mps), the device is "
                         f"{device.type}; on a CPU use bf16-mixed or 32")  # fmt: skip
    return value


def model_device(model: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "32") -> Iterator[None]:
    """``torch.autocast`` for ``precision`` on ``device`` (nothing for ``"32"``)."""
    if precision == "32":
        yield
        return
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """The loss scaler float16 training needs (None for ``32`` and ``bf16-mixed``)."""
    if precision != "16-mixed":
        return None
    return torch.amp.GradScaler(device.type)


def host(t: torch.Tensor):
    """A tensor's values as a CPU NumPy array (float32 for reduced-precision floats)."""
    t = t.detach()
    if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    return t.cpu().numpy()


@contextlib.contextmanager
def deterministic_cuda(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """cuDNN's deterministic algorithms (no autotuning) on CUDA while training.

    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` is set when absent (it takes effect only before
    CUDA's first matrix product in the process). What stays nondeterministic is listed in
    docs/devices.md.
    """
    if device.type != "cuda" or not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    cudnn = torch.backends.cudnn
    old = (cudnn.deterministic, cudnn.benchmark)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = old
