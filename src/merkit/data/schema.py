"""The Sample table: one row per clip, the contract between pipeline stages.

Columns
-------
dataset : str
    Database name, e.g. ``"CASME2"``, ``"SMIC_HS"``, ``"SMIC_VIS"``, ``"SMIC_NIR"``.
subject : str
    Always ``"<dataset>/<id>"`` (e.g. ``"CASME2/01"``, ``"SMIC_HS/s3"``) so that
    subjects never collide across databases. (SMIC-VIS/NIR record a subset of the
    SMIC-HS people: ``"SMIC_VIS/s3"`` is the same person as ``"SMIC_HS/s3"``, as in
    the published cross-camera CDMER tasks.)
clip : str
    Clip name inside its subject (``"EP02_01f"``, ``"s3_po_05"``).
frames_dir, video_path : str or None
    Where the frames are: a folder of numbered images, or a video file (one of the two).
n_frames : int
    Frames of the clip on disk.
fps : float
    Recording frame rate.
onset, apex, offset : int
    Native frame numbers (as in the annotation sheet / file names). ``apex`` may be
    missing (``pd.NA``) when the database does not annotate it.
emotion : str
    Native emotion label, lower case (``"happiness"``, ``"negative"``...).
aus : tuple of int
    Action units, sorted, without side/intensity prefixes.
au_sides, au_intensities : tuple of str
    Side (``"L"``, ``"R"``, ``""``) and intensity (``"A"``..``"E"``, ``""``) per AU in ``aus``.
camera : str
    Recording device / domain (``"hs"``, ``"vis"``, ``"nir"``, ``"colour"``...).

A label scheme (:mod:`merkit.data.labels`) adds ``label`` (class name) and ``y`` (int).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "dataset",
    "subject",
    "clip",
    "frames_dir",
    "video_path",
    "n_frames",
    "fps",
    "onset",
    "apex",
    "offset",
    "emotion",
    "aus",
    "au_sides",
    "au_intensities",
    "camera",
)

#: columns that must be present and non-null in every row
REQUIRED: tuple[str, ...] = (
    "dataset",
    "subject",
    "clip",
    "n_frames",
    "fps",
    "onset",
    "offset",
    "emotion",
    "camera",
)

FRAME_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class SchemaError(ValueError):
    """A Sample table breaks the contract; the message names the offending rows."""


def empty_table() -> pd.DataFrame:
    """An empty Sample table with the standard columns."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def _row_name(row: pd.Series) -> str:
    subject = str(row.get("subject"))
    if "/" not in subject:
        subject = f"{row.get('dataset')}/{subject}"
    return f"{subject}/{row.get('clip')}"


def _describe(table: pd.DataFrame, mask: pd.Series, why: str, limit: int = 10) -> str:
    rows = table[mask]
    names = [_row_name(r) for _, r in rows.head(limit).iterrows()]
    more = f" (+{len(rows) - limit} more)" if len(rows) > limit else ""
    return f"{why}: {', '.join(names)}{more}"


def validate(
    table: pd.DataFrame,
    *,
    check_frames: bool = True,
    classes: tuple[str, ...] | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """Check a Sample table and return it with canonical dtypes.

    Parameters
    ----------
    table : DataFrame
        The Sample table.
    check_frames : bool
        Also check that each clip's frames (or video) exist on disk.
    classes : tuple of str, optional
        Allowed values of the ``label`` column (when a scheme was applied).
    source : str, optional
        File the table was read from, quoted in error messages.

    Raises
    ------
    SchemaError
        Listing every problem with the offending rows (dataset/subject/clip).
    """
    where = f" in {source}" if source else ""
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise SchemaError(f"Sample table{where} lacks columns {missing}")
    table = table.copy()
    for c in COLUMNS:
        if c not in table.columns:
            table[c] = None
    extra = [c for c in table.columns if c not in COLUMNS]
    table = table[list(COLUMNS) + extra]
    for c in ("aus", "au_sides", "au_intensities"):
        table[c] = [tuple(v) if isinstance(v, (tuple, list)) else () for v in table[c]]

    problems: list[str] = []
    nulls = table[list(REQUIRED)].isna().any(axis=1)
    if nulls.any():
        problems.append(_describe(table, nulls, "missing required values"))
    bad_subject = ~table["subject"].astype(str).str.contains("/", regex=False)
    if bad_subject.any():
        problems.append(_describe(table, bad_subject, "subject is not '<dataset>/<id>'"))

    num = {c: pd.to_numeric(table[c], errors="coerce") for c in ("onset", "apex", "offset")}
    nonint = (num["onset"].isna() | num["offset"].isna()) & ~nulls
    if nonint.any():
        problems.append(_describe(table, nonint, "onset/offset are not numbers"))
    order = num["onset"] > num["offset"]
    if order.any():
        problems.append(_describe(table, order, "onset after offset"))
    zero_off = num["offset"] <= 0
    if zero_off.any():
        problems.append(_describe(table, zero_off, "offset is 0 or negative"))
    has_apex = num["apex"].notna()
    apex_out = has_apex & ((num["apex"] < num["onset"]) | (num["apex"] > num["offset"]))
    if apex_out.any():
        problems.append(_describe(table, apex_out, "apex outside [onset, offset]"))
    dup = table.duplicated(["dataset", "subject", "clip"], keep=False)
    if dup.any():
        problems.append(_describe(table, dup, "duplicate (dataset, subject, clip)"))
    if classes is not None and "label" in table.columns:
        unknown = ~table["label"].isin(classes)
        if unknown.any():
            problems.append(_describe(table, unknown, f"label not in {list(classes)}"))
    if check_frames:
        absent = []
        for i, row in table.iterrows():
            if not _frames_present(row):
                absent.append(i)
        if absent:
            mask = table.index.isin(absent)
            absent_rows = pd.Series(mask, index=table.index)
            problems.append(_describe(table, absent_rows, "frames missing on disk"))
    if problems:
        raise SchemaError(f"invalid Sample table{where}:\n  " + "\n  ".join(problems))

    for c in ("onset", "offset", "n_frames"):
        table[c] = num.get(c, pd.to_numeric(table[c])).astype("int64")
    table["apex"] = num["apex"].astype("Int64")
    table["fps"] = pd.to_numeric(table["fps"]).astype(float)
    for c in ("dataset", "subject", "clip", "emotion", "camera"):
        table[c] = table[c].astype(str)
    return table.reset_index(drop=True)


def _frames_present(row: pd.Series) -> bool:
    video = row.get("video_path")
    if isinstance(video, str) and video:
        return Path(video).is_file()
    folder = row.get("frames_dir")
    if not isinstance(folder, str) or not folder:
        return False
    p = Path(folder)
    return p.is_dir() and any(f.suffix.lower() in FRAME_SUFFIXES for f in p.iterdir())


def _per_column(values, n_columns: int, what: str):
    """``values`` as an int64 array of one entry per column (None stays None)."""
    if values is None:
        return None
    values = np.asarray(values, dtype=np.int64)
    if values.shape != (n_columns,):
        raise SchemaError(f"{what} {values.shape[0]} entries, X has {n_columns} columns")
    return values


class FeatureSet:
    """Features of one database: ``X`` (n, D) float32 with the Sample ``table``.

    Parameters
    ----------
    X : ndarray of shape (n, D)
        One feature row per table row (same order).
    table : DataFrame
        The Sample table (with ``label`` and ``y`` when a scheme was applied).
    blocks : ndarray of shape (D,), optional
        Facial block index of each column (0..n_blocks-1), from the multi-scale block layout;
        used by group-sparse methods (TGSR) and salient-region maps.
    levels : tuple of int, optional
        Block levels behind ``blocks`` (e.g. ``(1, 2, 4, 8)`` -> 85 blocks, row-major
        inside a level, levels in this order).
    column_groups : ndarray of shape (D,), optional
        Group id of each column for group-sparse methods (TGSR) when the groups are not
        the spatial ``blocks``: e.g. the TGSR authors' 85 runs of 177 contiguous columns
        of the benchmark's ``.mat`` files. ``None``: the groups are ``blocks``.
    grouping : str, optional
        Name of ``column_groups`` (``"authors"``...); ``"spatial"`` when they are ``blocks``.
    name : str
        Domain name (``"CASME2"``, ``"SMIC_VIS"``...).
    classes : tuple of str
        Class names indexed by ``y``.
    """

    def __init__(
        self,
        X,
        table: pd.DataFrame,
        *,
        name: str,
        classes: tuple[str, ...] = (),
        blocks=None,
        levels: tuple[int, ...] | None = None,
        column_groups=None,
        grouping: str | None = None,
    ) -> None:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise SchemaError(f"features of {name}: X must be 2-D (n, D), got shape {X.shape}")
        if len(table) != X.shape[0]:
            raise SchemaError(
                f"features of {name}: {X.shape[0]} feature rows but {len(table)} table rows"
            )
        blocks = _per_column(blocks, X.shape[1], f"features of {name}: block layout has")
        column_groups = _per_column(
            column_groups, X.shape[1], f"features of {name}: column groups have"
        )
        self.X = X
        self.table = table.reset_index(drop=True)
        self.name = name
        self.classes = tuple(classes)
        self.blocks = blocks
        self.levels = tuple(levels) if levels is not None else None
        self.column_groups = column_groups
        self.grouping = grouping or ("spatial" if column_groups is None else "custom")

    @property
    def tgsr_groups(self):
        """Group id per column (D,) for group-sparse methods: ``column_groups``, else
        ``blocks`` (None when the features have neither)."""
        return self.column_groups if self.column_groups is not None else self.blocks

    @property
    def y(self):
        """Integer labels (``table['y']``)."""
        if "y" not in self.table.columns:
            raise SchemaError(f"features of {self.name}: no label column 'y' (apply a scheme)")
        return np.asarray(self.table["y"], dtype=np.int64)

    def __len__(self) -> int:
        return self.X.shape[0]

    def fingerprint(self) -> str:
        """Short content hash of ``X``, the labels and the clip ids (12 hex digits).

        Results stores key on it, so results computed from other features are never
        reused for these.
        """
        h = hashlib.sha1(usedforsecurity=False)
        h.update(self.name.encode())
        h.update(str(self.X.shape).encode())
        h.update(np.ascontiguousarray(self.X).tobytes())
        for col in ("y", "clip", "subject"):
            if col in self.table.columns:
                h.update("\x1f".join(map(str, self.table[col].tolist())).encode())
        if self.column_groups is not None:  # TGSR results depend on the grouping
            h.update(self.grouping.encode())
            h.update(np.ascontiguousarray(self.column_groups).tobytes())
        return h.hexdigest()[:12]

    def __repr__(self) -> str:
        return f"FeatureSet({self.name!r}, n={self.X.shape[0]}, D={self.X.shape[1]})"
