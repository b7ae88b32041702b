"""C3D deep features (Tran et al. 2015, doi:10.1109/ICCV.2015.510): fc6 / fc7 activations.

The network (Tran et al., Fig. 3): eight 3x3x3 convolutions (stride 1, padding 1) with
ReLU, ``conv1a`` 64, ``conv2a`` 128, ``conv3a/b`` 256, ``conv4a/b`` 512, ``conv5a/b`` 512
channels; max pooling ``pool1`` 1x2x2, ``pool2``..``pool5`` 2x2x2 (stride = kernel);
``fc6`` and ``fc7`` 4096 units with ReLU (and dropout in training), ``fc8`` the classes
(487 for Sports-1M). For a 3 x 16 x 112 x 112 clip ``pool5`` pads H and W by one
(padding (0, 1, 1)), as the Caffe model does, so that it gives 512 x 1 x 4 x 4 = 8192
values into ``fc6``.

Weights are the user's: a state dict in the key layout of the commonly shared PyTorch
conversion of the Sports-1M model (``c3d.pickle`` of the "c3d-pytorch" repository):
``conv1, conv2, conv3a, conv3b, conv4a, conv4b, conv5a, conv5b, fc6, fc7, fc8`` each with
``.weight`` and ``.bias`` (:data:`SHAPES`). It is read with
``torch.load(weights_only=True)`` (nothing in the file is executed), checked key by key
and shape by shape, and never downloaded.

Input, as that conversion's own prediction script feeds it: RGB frames in 0..255 as
floats, ``[B, 3, 16, 112, 112]``, no mean clip subtracted and no rescaling. merkit's
clips are grey (T = 16, 112 x 112, 0..255 after TIM): the grey value is repeated on the
three channels (a grey frame in RGB). The features are the ReLU outputs of ``fc6``
("C3D-FC1") or ``fc7`` ("C3D-FC2"), 4096 values each, dropout off.

torch is the ``[nets]`` extra and is imported only when features are computed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CLIP_SHAPE",
    "CONVS",
    "FCS",
    "FEATURE_LAYERS",
    "SHAPES",
    "C3DWeightsError",
    "TorchMissingError",
    "c3d_features",
    "check_state_dict",
    "forward",
    "load_weights",
    "n_parameters",
    "weights_digest",
]

#: (name, input channels, output channels) of the eight 3x3x3 convolutions, in order
CONVS: tuple[tuple[str, int, int], ...] = (
    ("conv1", 3, 64),
    ("conv2", 64, 128),
    ("conv3a", 128, 256),
    ("conv3b", 256, 256),
    ("conv4a", 256, 512),
    ("conv4b", 512, 512),
    ("conv5a", 512, 512),
    ("conv5b", 512, 512),
)
#: the pooling after these convolutions: (kernel = stride, padding)
_POOLS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "conv1": ((1, 2, 2), (0, 0, 0)),
    "conv2": ((2, 2, 2), (0, 0, 0)),
    "conv3b": ((2, 2, 2), (0, 0, 0)),
    "conv4b": ((2, 2, 2), (0, 0, 0)),
    "conv5b": ((2, 2, 2), (0, 1, 1)),
}
#: (name, inputs, outputs) of the fully connected layers (fc8: the 487 Sports-1M classes)
FCS: tuple[tuple[str, int, int], ...] = (
    ("fc6", 8192, 4096),
    ("fc7", 4096, 4096),
    ("fc8", 4096, 487),
)
#: the descriptor's layers (fc6 = the CDMER benchmark's C3D-FC1, fc7 = C3D-FC2)
FEATURE_LAYERS = ("fc6", "fc7")
#: (T, H, W) of the grey clip the network takes
CLIP_SHAPE = (16, 112, 112)


def _shapes(n_classes: int = 487) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for name, cin, cout in CONVS:
        shapes[f"{name}.weight"] = (cout, cin, 3, 3, 3)
        shapes[f"{name}.bias"] = (cout,)
    for name, cin, cout in FCS:
        cout = n_classes if name == "fc8" else cout
        shapes[f"{name}.weight"] = (cout, cin)
        shapes[f"{name}.bias"] = (cout,)
    return shapes


#: key -> tensor shape of the Sports-1M state dict (487 classes)
SHAPES: dict[str, tuple[int, ...]] = _shapes()


def n_parameters(n_classes: int = 487) -> int:
    """Number of weights and biases of C3D with ``n_classes`` outputs (79,991,015 for 487)."""
    return int(sum(np.prod(s) for s in _shapes(n_classes).values()))


class C3DWeightsError(ValueError):
    """A C3D weights file that cannot be used (unreadable, wrong keys or shapes)."""


class TorchMissingError(ValueError):
    """PyTorch (the ``[nets]`` extra) is not installed."""


def weights_digest(path: str | Path) -> str:
    """SHA-256 (hex) of a weights file's bytes: the feature cache identity of the weights."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise TorchMissingError(
            "the c3d descriptor needs PyTorch: install the nets extra (pip install 'merkit[nets]')"
        ) from exc
    return torch


def check_state_dict(state: Any, where: str = "C3D weights") -> None:
    """Raise :class:`C3DWeightsError` unless ``state`` has exactly the keys and shapes of
    :data:`SHAPES` (any number of ``fc8`` classes); the one-line message lists what differs.
    """
    torch = _import_torch()
    hint = "expected a state dict of the Sports-1M C3D conversion (keys conv1 ... fc8)"
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise C3DWeightsError(f"{where} does not hold a dict of tensors; {hint}")
    missing = [k for k in SHAPES if k not in state]
    unexpected = sorted(k for k in state if k not in SHAPES)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {', '.join(missing)}")
        if unexpected:
            shown = ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
            parts.append(f"unexpected keys {shown}")
        raise C3DWeightsError(f"{where}: {'; '.join(parts)}; {hint}")
    n_classes = int(state["fc8.bias"].shape[0]) if state["fc8.bias"].ndim == 1 else 487
    expected = _shapes(n_classes)
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {expected[k]})"
        for k in expected
        if tuple(state[k].shape) != expected[k]
    ]
    if wrong:
        raise C3DWeightsError(f"{where}: wrong shapes {', '.join(wrong)}; {hint}")


def load_weights(path: str | Path) -> dict[str, Any]:
    """The checked C3D state dict of a weights file (float32 tensors on the CPU).

    Raises
    ------
    FileNotFoundError
        No such file.
    C3DWeightsError
        (a ValueError) Not a PyTorch weights file, pickled objects besides tensors, or
        keys / shapes other than :data:`SHAPES`; the message names the file.
    """
    torch = _import_torch()
    path = Path(path)
    where = f"weights file {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist; give a C3D state dict with --weights")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # a damaged file, not a PyTorch file, or pickled objects
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise C3DWeightsError(
            f"{where} cannot be read as PyTorch weights ({reason}); save the state dict "
            "again with torch.save(state_dict, path)"
        ) from exc
    check_state_dict(state, where)
    return {k: v.detach().to(torch.float32) for k, v in state.items()}


def forward(weights: dict[str, Any], x: Any, layer: str = "fc8") -> Any:
    """C3D from its input to ``layer`` (inference: no dropout).

    Parameters
    ----------
    weights : dict of str -> Tensor
        Parameters in the key layout of :data:`SHAPES`.
    x : Tensor, shape (B, 3, 16, 112, 112)
        RGB clips, 0..255.
    layer : {"fc6", "fc7", "fc8"}
        Output: ``fc6`` / ``fc7`` after their ReLU, ``fc8`` the class scores (logits).

    Returns
    -------
    Tensor, shape (B, 4096) or (B, n_classes)
    """
    torch = _import_torch()
    f = torch.nn.functional
    if layer not in ("fc6", "fc7", "fc8"):
        raise ValueError(f"C3D layer {layer!r}: expected fc6, fc7 or fc8")
    for name, _, _ in CONVS:
        x = f.relu(f.conv3d(x, weights[f"{name}.weight"], weights[f"{name}.bias"], padding=1))
        if name in _POOLS:
            kernel, pad = _POOLS[name]
            x = f.max_pool3d(x, kernel, stride=kernel, padding=pad)
    x = x.flatten(1)
    for name, _, _ in FCS:
        x = f.linear(x, weights[f"{name}.weight"], weights[f"{name}.bias"])
        if name == "fc8":
            return x
        x = f.relu(x)
        if name == layer:
            return x
    raise AssertionError("unreachable")  # pragma: no cover


#: weights read by this process: (path, digest) -> state dict (one model per worker)
_LOADED: dict[tuple[str, str], dict[str, Any]] = {}


def _weights_for(path: str, digest: str) -> dict[str, Any]:
    key = (path, digest)
    if key not in _LOADED:
        if Path(path).is_file() and weights_digest(path) != digest:
            raise C3DWeightsError(
                f"weights file {path!r} changed while features were computed; run again"
            )
        _LOADED.clear()
        _LOADED[key] = load_weights(path)
    return _LOADED[key]


def c3d_features(
    clip: np.ndarray, layer: str = "fc6", weights: str | None = None, digest: str = ""
) -> np.ndarray:
    """C3D ``fc6`` / ``fc7`` features of one grey clip.

    Parameters
    ----------
    clip : ndarray, shape (16, 112, 112)
        Grey clip, 0..255 (TIM to 16 frames, 112 x 112).
    layer : {"fc6", "fc7"}
    weights : str
        C3D state dict file (:func:`load_weights`).
    digest : str
        Its :func:`weights_digest` (the weights' identity in the feature cache).

    Returns
    -------
    ndarray of float32, shape (4096,)
    """
    if weights is None:
        raise ValueError("the c3d descriptor needs a weights file (--weights FILE)")
    clip = np.asarray(clip, dtype=np.float32)
    if clip.shape != CLIP_SHAPE:
        raise ValueError(
            f"c3d takes grey clips of {CLIP_SHAPE[0]} frames of {CLIP_SHAPE[1]}x{CLIP_SHAPE[2]}, "
            f"got shape {clip.shape}; use the default preprocessing (112x112, TIM 16)"
        )
    torch = _import_torch()
    state = _weights_for(weights, digest)
    x = torch.from_numpy(np.ascontiguousarray(clip))[None, None].expand(1, 3, *CLIP_SHAPE)
    with torch.inference_mode():
        out = forward(state, x.contiguous(), layer)
    return out[0].numpy().astype(np.float32, copy=True)
