"""Flow-image datasets for the networks: the MEGC 2019 composite flow folder and tensors.

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
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from merkit.data.adapters.smic import smic_clip_name, smic_subject_id
from merkit.video.flow import load_flow_image
from merkit.video.tim import tim

log = logging.getLogger(__name__)

__all__ = [
    "FLOW_CSV",
    "FLOW_IMAGE_DIR",
    "MEGC3_CLASSES",
    "FlowSet",
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


def make_loader(
    X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor | None = None, *,
    batch_size: int = 32, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
) -> DataLoader:  # fmt: skip
    """In-memory DataLoader of ``(x, y)`` batches (``y = -1`` when not given).

    Shuffling uses its own ``torch.Generator`` seeded with ``seed``: the order is
    reproducible and independent of the global RNG.
    """
    xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if y is None:
        yt = torch.full((xt.shape[0],), -1, dtype=torch.int64)
    else:
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    if yt.shape[0] != xt.shape[0]:
        raise ValueError(f"make_loader: X has {xt.shape[0]} samples, y {yt.shape[0]}")
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(TensorDataset(xt, yt), batch_size=batch_size, shuffle=shuffle,
                      generator=gen, drop_last=drop_last)  # fmt: skip
