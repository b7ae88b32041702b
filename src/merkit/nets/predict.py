"""Predict the emotion of a new clip with trained flow weights, and the model card beside them.

A weights file ``W.pth`` is a plain ``state_dict`` (loadable with
``torch.load(W, weights_only=True)``). What is needed to use it sits in a JSON *model
card*: ``W.json`` beside it, or ``model.json`` in its folder or the folder above (one card
for the per-fold weights of a run). The card holds the registry name, the model keyword
arguments, the class names, the input channel order and scale, and how the flow image was
made, so that :func:`predict_clip` needs nothing else.

The chain of :func:`predict_clip` (the onset -> apex input of OFF-ApexNet, STSTNet,
Dual-Inception and FR): frames of a video file or a frame folder -> onset..offset ->
face detection and alignment with one transform from the onset
(:func:`merkit.video.face.align_clip`) -> apex (given, or spotted by
:func:`merkit.video.apex.spot_apex`) -> TV-L1 flow onset -> apex -> 28 x 28 flow image
(u, v, strain; :func:`merkit.video.flow.flow_image`) -> network -> softmax. For the 3-D
networks (card ``input_kind = "clip"``) the aligned frames are resampled to the card's
``clip["length"]`` frames (:func:`merkit.nets.data.clip_volume`) and fed whole. For the
flow-sequence networks (``input_kind = "flowseq"``, MERSiam) the card's ``flow`` says how
the sequence is made (``length``, ``keyframes``, ``preset``...): the key frames of the
aligned frames (or the apex, ``keyframes = "apex"``: one onset -> apex flow, the runs on
the MEGC 2019 flow images), TV-L1 onset -> each key frame, one min-max per channel over
the sequence (:func:`merkit.video.flow.flow_sequence`), resized to the card's ``size``.

Outputs: the network's first ``len(classes)`` logits are the emotion classes (softmax);
the next ``len(aus)`` are action units (sigmoid each; an AU is present when its
probability exceeds ``au_threshold``). A card may have either or both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from merkit._io import atomic_write_text
from merkit.nets import MODELS, create_model, input_kind
from merkit.nets.blocks import logits_of
from merkit.nets.data import clip_volume
from merkit.nets.device import model_device, resolve_device
from merkit.nets.train import read_state_dict
from merkit.video.apex import spot_apex
from merkit.video.face import align_clip
from merkit.video.flow import flow_image, flow_sequence, get_tvl1, keyframe_positions, tvl1_flow
from merkit.video.io import frame_number, list_frames, read_frames, read_video, video_fps
from merkit.video.magnify import Magnification

log = logging.getLogger(__name__)

__all__ = [
    "CARD_NAME",
    "ClipPrediction",
    "ModelCard",
    "find_model_card",
    "load_predictor",
    "predict_clip",
    "predict_images",
    "predict_outputs",
    "read_model_card",
    "write_model_card",
]

#: file name of a run-wide model card
CARD_NAME = "model.json"
_CHANNELS = ("uvs", "svu")


@dataclass(frozen=True)
class ModelCard:
    """What a weights file needs to be used.

    Attributes
    ----------
    model : str
        Registry name (:data:`merkit.nets.MODELS`).
    classes : tuple of str
        Class names indexed by the first output logits (may be empty when ``aus`` is not).
    channels : {"uvs", "svu"}
        Channel order of the input images (u, v, strain or reversed).
    scale : float
        Multiplier of the 0..255 image values fed to the network.
    size : (int, int)
        Input image size (H, W): the flow image, or the frames of a clip.
    model_kwargs : dict
        Keyword arguments of the constructor besides ``num_classes``.
    flow : dict
        How the flow image of a clip is made (``align``, ``face_size``, ``margin``,
        ``preset``...), passed to :func:`predict_clip`.
    info : dict
        Free provenance (protocol, data, epochs, seed, fold...).
    aus : tuple of str
        Action units scored by the logits after the classes (``"AU1"``...).
    au_threshold : float
        Probability above which an AU is reported present.
    input_kind : {"flow", "clip", "flowseq"}
        What the network takes (:func:`merkit.nets.input_kind`); a ``"flowseq"`` card
        keeps how its sequences are made in ``flow`` (with ``length`` and ``keyframes``).
    clip : dict
        How a clip becomes the input of a ``"clip"`` network (``length``, ``align``,
        ``detector``, ``landmarks``, ``margin``).
    """

    model: str
    classes: tuple[str, ...]
    channels: str = "uvs"
    scale: float = 1.0
    size: tuple[int, int] = (28, 28)
    model_kwargs: dict = field(default_factory=dict)
    flow: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    aus: tuple[str, ...] = ()
    au_threshold: float = 0.5
    input_kind: str = "flow"
    clip: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model card: unknown model {self.model!r}; known: {sorted(MODELS)}")
        if input_kind(self.model) != self.input_kind:
            raise ValueError(
                f"model card: {self.model!r} takes {input_kind(self.model)} inputs, the card "
                f"says {self.input_kind!r}"
            )
        if self.channels not in _CHANNELS:
            raise ValueError(f"model card: channels={self.channels!r}; expected one of {_CHANNELS}")
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "aus", tuple(str(a) for a in self.aus))
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if len(self.classes) == 1 or (not self.classes and not self.aus):
            raise ValueError(
                f"model card: needs at least 2 classes or some AUs, got classes {self.classes}, "
                f"aus {self.aus}"
            )
        if len(set(self.aus)) != len(self.aus):
            raise ValueError(f"model card: AUs repeated in {self.aus}")
        if not 0.0 < float(self.au_threshold) < 1.0:
            raise ValueError(f"model card: au_threshold must be in (0, 1), got {self.au_threshold}")

    @property
    def num_outputs(self) -> int:
        """Logits of the network: classes then AUs."""
        return len(self.classes) + len(self.aus)

    def build(self) -> nn.Module:
        """A fresh network of this card (weights not loaded)."""
        return create_model(self.model, num_classes=self.num_outputs, **self.model_kwargs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"], d["size"], d["aus"] = list(self.classes), list(self.size), list(self.aus)
        return d


def write_model_card(path: str | Path, card: ModelCard) -> Path:
    """Write ``card`` as JSON to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(card.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_model_card(path: str | Path) -> ModelCard:
    """Read a model card written by :func:`write_model_card`."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"model card {str(path)!r} does not exist") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"model card {str(path)!r} is not valid JSON: {err}") from err
    missing = [k for k in ("model", "classes") if k not in raw]
    if missing:
        raise ValueError(f"model card {str(path)!r} lacks {missing}")
    known = set(ModelCard.__dataclass_fields__)
    return ModelCard(**{k: v for k, v in raw.items() if k in known})


def find_model_card(weights: str | Path) -> Path | None:
    """``W.json`` beside ``W.pth``, else ``model.json`` in its folder or the one above."""
    weights = Path(weights)
    for cand in (weights.with_suffix(".json"), weights.parent / CARD_NAME,
                 weights.parent.parent / CARD_NAME):  # fmt: skip
        if cand.is_file():
            return cand
    return None


def load_predictor(
    weights: str | Path,
    *,
    model_name: str | None = None,
    classes: tuple[str, ...] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, ModelCard]:
    """The network of ``weights`` in eval mode on ``device``, with its card.

    Weights saved on any device load on any other (they are read onto the CPU, then the
    network moves to ``device``).

    Parameters
    ----------
    weights : path
        A state_dict file.
    model_name, classes : optional
        Used when no card is found (a released state_dict); override nothing otherwise
        except that a ``model_name`` disagreeing with the card is an error.

    Raises
    ------
    FileNotFoundError
        No weights file, or no card and no ``model_name``.
    IsADirectoryError
        ``weights`` is a folder (the message names a ``.pth`` inside).
    ValueError
        The file is empty, truncated, carries pickled objects or is no state_dict
        (:class:`merkit.nets.train.WeightsFileError`), or the weights do not fit the card;
        or ``device`` cannot be used here.
    """
    dev = resolve_device(device)
    weights = Path(weights)
    if weights.is_dir():
        found = sorted(weights.rglob("*.pth"))
        finals = [f for f in found if f.name == "final.pth"]
        hint = (
            f"; it holds {len(found)} .pth file(s), e.g. {str((finals or found)[0])!r}"
            if found
            else "; it holds no .pth file"
        )
        raise IsADirectoryError(f"weights {str(weights)!r} is a folder, not a weights file{hint}")
    state = read_state_dict(weights)  # one-line errors: missing, empty, truncated, pickled
    card_path = find_model_card(weights)
    if card_path is not None:
        card = read_model_card(card_path)
        if model_name is not None and model_name != card.model:
            raise ValueError(
                f"--model-name {model_name!r} disagrees with the model card {str(card_path)!r} "
                f"({card.model!r})"
            )
    elif model_name is not None:
        card = ModelCard(model=model_name, classes=tuple(classes or ("negative", "positive",
                                                                     "surprise")))  # fmt: skip
        log.warning("no model card beside %s: assuming %s with classes %s, channels uvs",
                    weights, card.model, card.classes)  # fmt: skip
    else:
        raise FileNotFoundError(
            f"no model card for {str(weights)!r} (looked for {weights.with_suffix('.json').name} "
            f"and {CARD_NAME}); give the model name"
        )
    model = card.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(
            f"weights {str(weights)!r} do not fit a {card.model!r} network with "
            f"{card.num_outputs} outputs: {str(err).splitlines()[0]}"
        ) from err
    model.to(dev).eval()
    return model, card


def predict_outputs(
    model: nn.Module, card: ModelCard, x: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Class and AU probabilities of network inputs.

    Parameters
    ----------
    x : ndarray of float32
        Inputs as the network takes them (``[n, C, H, W]`` or ``[n, C, T, H, W]``).

    The network runs where its parameters are; the probabilities are computed on the CPU
    in float64.

    Returns
    -------
    classes : ndarray of float64, shape (n, K), or None
        Softmax over the card's classes (None without classes).
    aus : ndarray of float64, shape (n, A), or None
        Sigmoid of each AU logit (None without AUs).
    """
    dev = model_device(model)
    with torch.no_grad():
        inputs = torch.as_tensor(x, dtype=torch.float32).to(dev)
        logits = logits_of(model(inputs)).float().cpu().double()
    if logits.shape[1] != card.num_outputs:
        raise ValueError(
            f"the network gives {logits.shape[1]} outputs, the card {card.num_outputs}"
        )
    k = len(card.classes)
    classes = torch.softmax(logits[:, :k], dim=1).numpy() if k else None
    aus = torch.sigmoid(logits[:, k:]).numpy() if card.aus else None
    return classes, aus


def predict_images(model: nn.Module, card: ModelCard, images: np.ndarray) -> np.ndarray:
    """Class probabilities of flow images (AU probabilities for a card without classes).

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W, 3)
        (u, v, strain) images as :func:`merkit.video.flow.flow_image` returns them.

    Returns
    -------
    ndarray of float64, shape (n, K) (or (n, A))
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"flow images must be (n, H, W, 3) = (u, v, strain), got {images.shape}")
    if tuple(images.shape[1:3]) != card.size:
        raise ValueError(f"flow images are {images.shape[1:3]}, the model takes {card.size}")
    x = images[..., ::-1] if card.channels == "svu" else images
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(card.scale)
    classes, aus = predict_outputs(model, card, x)
    return classes if classes is not None else aus


@dataclass
class ClipPrediction:
    """Result of :func:`predict_clip`.

    Attributes
    ----------
    label : str
        The most probable class (``""`` for a card without classes).
    probabilities : dict
        Class name -> probability (sums to 1), in the card's class order.
    onset, apex, offset : int
        Frame numbers (native numbers of a frame folder, 1-based positions in a video);
        ``apex`` is None for clip networks, which see every frame.
    apex_spotted : bool
        The apex was spotted, not given.
    face : str
        Alignment used (``"landmarks"``, ``"box"`` or ``"none"``).
    image : ndarray
        The input fed to the network: the (u, v, strain) flow image (H, W, 3) uint8, the
        clip volume (1, T, H, W) float32, or the flow sequence (3, T, H, W) float32.
    aus : dict
        AU name -> probability (independent sigmoids), for cards with AUs.
    aus_present : list of str
        The AUs whose probability exceeds the card's ``au_threshold``.
    """

    clip: str
    model: str
    label: str
    probabilities: dict[str, float]
    onset: int
    apex: int | None
    offset: int
    apex_spotted: bool
    face: str
    image: np.ndarray = field(repr=False)
    aus: dict[str, float] = field(default_factory=dict)
    aus_present: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the image left out)."""
        d = asdict(self)
        d.pop("image")
        return d


def _read_clip(clip: Path, offset: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Frames and frame numbers of a frame folder or a video (up to ``offset`` in a video:
    a truncated video is refused unless every frame asked for decodes)."""
    if clip.is_dir():
        numbers = [frame_number(f) for f in list_frames(clip)]
        return read_frames(clip, grey=True), numbers
    if not clip.exists():
        raise FileNotFoundError(f"clip {str(clip)!r} does not exist (a video file or frame folder)")
    end = int(offset) if offset is not None and int(offset) >= 1 else None
    frames = read_video(clip, None, end, grey=True)
    return frames, list(range(1, len(frames) + 1))


def _position(numbers: list[int], value: int, what: str, clip: Path) -> int:
    if value not in numbers:
        raise ValueError(
            f"clip {str(clip)!r}: {what} frame {value} is not in the clip (frames "
            f"{numbers[0]}..{numbers[-1]})"
        )
    return numbers.index(value)


def predict_clip(
    clip: str | Path,
    weights: str | Path,
    *,
    model_name: str | None = None,
    onset: int | None = None,
    apex: int | None = None,
    offset: int | None = None,
    align: bool | None = None,
    detector: str | None = None,
    device: str | torch.device = "cpu",
    fps: float | None = None,
) -> ClipPrediction:
    """The emotion of one clip (module docstring for the chain).

    Parameters
    ----------
    clip : path
        Video file or folder of numbered frames.
    weights : path
        State_dict with a model card (:func:`find_model_card`).
    model_name : str, optional
        Needed only when there is no card.
    onset, apex, offset : int, optional
        Frame numbers (native numbers in a folder, 1-based in a video); default: first
        frame, spotted, last frame.
    align, detector : optional
        Override the card's face alignment (default: align, ``"auto"`` detector).
    device : str or torch.device
        Where the network runs (:func:`merkit.nets.device.resolve_device`).
    fps : float, optional
        The clip's frame rate. Used only when the card records a magnification (the model
        was trained with ``--magnify``: the clip is magnified the same way); default: the
        rate a video declares. A frame folder needs it.
    """
    clip = Path(clip)
    model, card = load_predictor(weights, model_name=model_name, device=device)
    opts = {"align": True, "face_size": [112, 112], "margin": 0.1, "detector": "auto",
            "landmarks": "auto", "preset": "default", "strain": True, "length": 16,
            **(card.clip if card.input_kind == "clip" else card.flow)}  # fmt: skip
    if card.input_kind == "clip":
        opts["face_size"] = list(card.size)
    if align is not None:
        opts["align"] = bool(align)
    if detector is not None:
        opts["detector"] = detector
    magnification = opts.get("magnify")
    if magnification is not None:
        magnification = Magnification(**magnification)
        if fps is None and clip.is_dir():
            raise ValueError(
                f"the model {str(weights)!r} was trained on magnified clips: give the frame "
                f"rate of {str(clip)!r} (a frame folder) with --fps"
            )
        if fps is None and clip.exists():
            fps = video_fps(clip)
    frames, numbers = _read_clip(clip, offset)
    lo = 0 if onset is None else _position(numbers, int(onset), "onset", clip)
    hi = len(numbers) - 1 if offset is None else _position(numbers, int(offset), "offset", clip)
    if hi <= lo:
        raise ValueError(
            f"clip {str(clip)!r}: offset {numbers[hi]} must come after onset {numbers[lo]}"
        )
    frames = frames[lo : hi + 1]
    size = tuple(int(s) for s in opts["face_size"])
    if opts["align"]:
        frames, info = align_clip(frames, size=size, margin=float(opts["margin"]),
                                  landmarks=opts["landmarks"], detector=opts["detector"],
                                  name=str(clip))  # fmt: skip
        face = str(info["method"])
    else:
        frames = np.stack([cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                           for f in frames])  # fmt: skip
        face = "none"
    if magnification is not None:  # as the training clips were (flow or clip models)
        frames = magnification.apply_to_row(frames, {"fps": fps})
    if card.input_kind == "flowseq" and opts.get("keyframes", "motion") != "apex":
        keys = keyframe_positions(frames, int(opts.get("length", 10)),
                                  opts.get("keyframes", "motion"))  # fmt: skip
        seq = _flow_sequence(frames, keys, opts["preset"], card.size)
        probs, au_probs = predict_outputs(model, card, seq[None] * np.float32(card.scale))
        return _prediction(card, clip, probs, au_probs, numbers[lo], None, numbers[hi], False,
                           face, seq)  # fmt: skip
    if card.input_kind == "clip":
        volume = clip_volume(frames, length=int(opts["length"]), scale=card.scale)
        probs, au_probs = predict_outputs(model, card, volume[None])
        return _prediction(card, clip, probs, au_probs, numbers[lo], None, numbers[hi], False,
                           face, volume)  # fmt: skip
    if apex is None:
        k, spotted = spot_apex(frames), True
    else:
        k, spotted = _position(numbers, int(apex), "apex", clip) - lo, False
        if not 0 <= k < len(frames):
            raise ValueError(
                f"clip {str(clip)!r}: apex {apex} lies outside onset..offset "
                f"{numbers[lo]}..{numbers[hi]}"
            )
    if k == 0:
        log.warning("%s: the apex is the onset frame; the flow is (near) zero", clip)
    if card.input_kind == "flowseq":  # one onset -> apex flow, a sequence of length 1
        seq = _flow_sequence(frames, np.array([k]), opts["preset"], card.size)
        probs, au_probs = predict_outputs(model, card, seq[None] * np.float32(card.scale))
        return _prediction(card, clip, probs, au_probs, numbers[lo], numbers[lo + k],
                           numbers[hi], spotted, face, seq)  # fmt: skip
    flow = tvl1_flow(frames[0], frames[k], preset=opts["preset"])
    image = flow_image(flow, size=card.size, strain=True)
    x = image[..., ::-1] if card.channels == "svu" else image
    x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(card.scale)
    probs, au_probs = predict_outputs(model, card, x)
    return _prediction(card, clip, probs, au_probs, numbers[lo], numbers[lo + k], numbers[hi],
                       spotted, face, image)  # fmt: skip


def _flow_sequence(
    frames: np.ndarray, keys: np.ndarray, preset, size: tuple[int, int]
) -> np.ndarray:
    """float32 ``(3, T, H, W)`` flow sequence onset -> each key frame (0..255)."""
    solver = get_tvl1(preset)
    flows = {int(k): solver(frames[0], frames[int(k)]) for k in set(keys.tolist())}
    seq = flow_sequence(np.stack([flows[int(k)] for k in keys]), size=size)
    return seq.astype(np.float32)


def _prediction(
    card: ModelCard, clip: Path, probs, au_probs, onset: int, apex: int | None, offset: int,
    spotted: bool, face: str, image: np.ndarray,
) -> ClipPrediction:  # fmt: skip
    label, classes = "", {}
    if probs is not None:
        label = card.classes[int(np.argmax(probs[0]))]
        classes = {c: float(p) for c, p in zip(card.classes, probs[0], strict=True)}
    aus = {} if au_probs is None else {a: float(p) for a, p in zip(card.aus, au_probs[0],
                                                                     strict=True)}  # fmt: skip
    return ClipPrediction(
        clip=str(clip), model=card.model, label=label, probabilities=classes, onset=onset,
        apex=apex, offset=offset, apex_spotted=spotted, face=face, image=image, aus=aus,
        aus_present=[a for a, p in aus.items() if p > card.au_threshold],
    )  # fmt: skip
