"""Loaders for published feature files: the CDMER benchmark's LBP-TOP features.

The benchmark (Zong et al., IEEE TKDE 2022, doi:10.1109/TKDE.2020.3018470) released
``CrossCorpus_LBPTOP_R3P8_<DB>_112by112.mat`` per database, holding
``<DB>_micro_feature`` (LBP-TOP, R = 3, P = 8, 59 uniform bins, block levels 1x1, 2x2,
4x4 and 8x8 of a 16-frame 112x112 clip: 85 blocks x 3 planes x 59 = 15045 columns) and
``<DB>_micro_label`` (1 = negative, 2 = positive, 3 = surprise). Both MATLAB v7.3
(HDF5, read with h5py) and v5 (scipy.io.loadmat) files are accepted.

Column layout (measured on the released CASME2 and SMIC_VIS files, see
:func:`cdmer_lbptop_layout`): levels in the order 1, 2, 4, 8; inside a level the XY
histograms of all its blocks come first, then all XT, then all YT (each 59 bins);
blocks inside a plane are in MATLAB column-major order. ``FeatureSet.blocks`` maps
each column to a row-major block id (the :class:`~merkit.data.schema.FeatureSet`
convention), so block 1 is the top-right block of level 2 (2x2).

TGSR groups (``FeatureSet.column_groups``, :data:`TGSR_GROUPINGS`): ``"authors"`` (the
default) are the TGSR authors' 85 runs of 177 *contiguous* columns (columns 0-176 =
group 0, ...), which is how their code grouped these files whatever the columns' true
layout: with them merkit reproduces the authors' grid records point by point.
``"spatial"`` are the true facial blocks (``FeatureSet.blocks``). Both agree at
kappa = 85 (every group kept), the published best points.
"""

from __future__ import annotations

import logging
import re
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from merkit.data.schema import FeatureSet

log = logging.getLogger(__name__)

__all__ = [
    "CDMER_CLASSES",
    "CDMER_LEVELS",
    "TGSR_GROUPINGS",
    "canonical_dataset",
    "cdmer_lbptop_layout",
    "check_features",
    "load_cdmer_dir",
    "load_cdmer_features",
    "read_feature_npz",
    "tgsr_authors_groups",
]

#: class names of the CDMER benchmark, indexed by y = file label - 1
CDMER_CLASSES: tuple[str, ...] = ("negative", "positive", "surprise")
#: block levels of the released features
CDMER_LEVELS: tuple[int, ...] = (1, 2, 4, 8)
_BINS = 59
_PLANES = 3
#: TGSR groupings of the benchmark files: the authors' contiguous runs, the true blocks
TGSR_GROUPINGS: tuple[str, ...] = ("authors", "spatial")

_FILE_RE = re.compile(r"^CrossCorpus_.+?_R\d+P\d+_(?P<db>.+?)_\d+by\d+$", re.IGNORECASE)
_CANONICAL = {
    "CASME2": "CASME2",
    "CASMEII": "CASME2",
    "CASME_II": "CASME2",
    "SMIC_HS": "SMIC_HS",
    "SMICHS": "SMIC_HS",
    "HS": "SMIC_HS",
    "SMIC_VIS": "SMIC_VIS",
    "SMICVIS": "SMIC_VIS",
    "VIS": "SMIC_VIS",
    "SMIC_NIR": "SMIC_NIR",
    "SMICNIR": "SMIC_NIR",
    "NIR": "SMIC_NIR",
}


def cdmer_lbptop_layout(
    levels: tuple[int, ...] = CDMER_LEVELS, n_bins: int = _BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Block and plane of every column of the benchmark's multi-scale LBP-TOP vector.

    Layout: for each level ``L`` (``L x L`` blocks) in order, ``[XY of every block,
    XT of every block, YT of every block]``, each ``n_bins`` long, blocks in
    column-major order. Measured on the released files: within every level the
    first ``L*L`` histograms have the XY signature (mean of bin 4 2.8-4.7 times
    lower than in the XT/YT histograms), and the third plane's histograms are nearly
    equal for left/right mirror blocks when those are ``L`` apart in storage order
    (a YT histogram does not change under a left-right flip, so the slow storage
    index is the horizontal one: column-major).

    Returns
    -------
    blocks : int64 ndarray of shape (D,)
        Block id 0..sum(L*L)-1: levels in order, row-major inside a level.
    planes : int64 ndarray of shape (D,)
        0 = XY, 1 = XT, 2 = YT.
    """
    blocks, planes = [], []
    first = 0
    for L in levels:
        nb = L * L
        k = np.arange(nb)
        row, col = k % L, k // L  # storage index k is column-major
        rowmajor = row * L + col
        for p in range(_PLANES):
            blocks.append(np.repeat(first + rowmajor, n_bins))
            planes.append(np.full(nb * n_bins, p))
        first += nb
    return np.concatenate(blocks).astype(np.int64), np.concatenate(planes).astype(np.int64)


def tgsr_authors_groups(levels: tuple[int, ...] = CDMER_LEVELS, n_bins: int = _BINS) -> np.ndarray:
    """The TGSR authors' groups of the benchmark vector: one run of ``3 * n_bins``
    contiguous columns per block (85 runs of 177 for the released files), int64 (D,).

    Their code cut the stored vector into equal contiguous runs; because the file stores
    a level's XY histograms of every block, then XT, then YT, a run is three consecutive
    histograms (one block's three planes only at level 1), not one facial block.
    """
    n_groups = sum(L * L for L in levels)
    return np.repeat(np.arange(n_groups, dtype=np.int64), _PLANES * n_bins)


def _db_from_filename(path: Path) -> str | None:
    m = _FILE_RE.match(path.stem)
    return m["db"] if m else None


def canonical_dataset(db: str) -> str:
    """merkit dataset name of a database token from a file name (``"SMIC_VIS"``...)."""
    key = db.strip().upper().replace("-", "_")
    name = _CANONICAL.get(key)
    if name is None:
        log.info("database %r is not one of the CDMER databases; using it verbatim", db)
        return db
    return name


def _read_variables(path: Path) -> dict[str, np.ndarray]:
    """All numeric top-level variables of a MATLAB file, in MATLAB orientation.

    h5py shows a v7.3 array with its dimensions reversed (MATLAB is column-major);
    they are reversed back here so that both formats give MATLAB's ``size()``.
    """
    damaged = "re-copy it from the benchmark's release (it may be cut short or damaged)"
    if h5py.is_hdf5(path):
        out = {}
        try:
            with h5py.File(path, "r") as f:
                for k, v in f.items():
                    if isinstance(v, h5py.Dataset) and not k.startswith("#"):
                        out[k] = np.asarray(v[()]).T
        except (OSError, KeyError, ValueError) as err:  # h5py: truncated file, bad blocks
            raise ValueError(
                f"{path}: cannot read this MATLAB v7.3 (HDF5) file ({_first_line(err)}); {damaged}"
            ) from err
        return out

    try:
        raw = loadmat(path)
    except (MatReadError, ValueError, OSError, EOFError, zlib.error) as err:
        raise ValueError(
            f"{path}: not a readable MATLAB .mat file ({_first_line(err)}); {damaged}"
        ) from err
    return {k: v for k, v in raw.items() if not k.startswith("__")}


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _find_var(variables: dict[str, np.ndarray], suffix: str, db: str | None, path: Path) -> str:
    if db is not None and f"{db}{suffix}" in variables:
        return f"{db}{suffix}"
    cands = [k for k in variables if k.endswith(suffix)]
    if db is None and len(cands) == 1:
        return cands[0]
    want = f"'{db}{suffix}'" if db else f"one variable '*{suffix}'"
    raise ValueError(f"{path}: expected {want}; variables present: {sorted(variables)}")


def _check_grouping(tgsr_groups: str) -> str:
    key = str(tgsr_groups).strip().lower()
    if key not in TGSR_GROUPINGS:
        raise ValueError(
            f"unknown TGSR grouping {tgsr_groups!r}; expected one of {', '.join(TGSR_GROUPINGS)}"
        )
    return key


def load_cdmer_features(
    path: str | Path, *, name: str | None = None, tgsr_groups: str = "authors"
) -> FeatureSet:
    """Load one released CDMER feature file.

    Parameters
    ----------
    path : str or Path
        ``CrossCorpus_LBPTOP_R3P8_<DB>_112by112.mat`` (MATLAB v7.3 or v5).
    name : str, optional
        Dataset name to use (default: from ``<DB>`` in the file name, mapped to
        merkit's names: ``CASME2``, ``SMIC_HS``, ``SMIC_VIS``, ``SMIC_NIR``).
    tgsr_groups : {"authors", "spatial"}
        TGSR's column groups when D = 15045 (see the module docstring): ``"authors"``
        sets ``column_groups`` to :func:`tgsr_authors_groups` (``grouping`` "authors"),
        ``"spatial"`` leaves the groups to ``blocks``.

    Returns
    -------
    FeatureSet
        ``X`` (n, D) float32 in the file's sample order; ``table`` with columns
        ``dataset, subject ("<dataset>/unknown": the files carry no subject ids),
        clip ("0001".. in file order), emotion, label, y``; ``classes`` =
        ``("negative", "positive", "surprise")``; ``blocks``/``levels`` (and, for
        ``"authors"``, ``column_groups``) when D = 15045.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Variables missing (those present are listed), labels outside 1..3 or not
        integers, feature/label sizes that do not match, non-finite features.
    """
    path = Path(path)
    grouping = _check_grouping(tgsr_groups)
    if not path.is_file():
        raise FileNotFoundError(f"CDMER feature file not found: {path}")
    db = _db_from_filename(path)
    variables = _read_variables(path)
    fkey = _find_var(variables, "_micro_feature", db, path)
    lkey = _find_var(variables, "_micro_label", db, path)
    if db is None:
        db = fkey[: -len("_micro_feature")]
    dataset = name or canonical_dataset(db)

    labels = np.asarray(variables[lkey], dtype=np.float64)
    if labels.ndim > 2 or (labels.ndim == 2 and min(labels.shape) != 1):
        raise ValueError(f"{path}: {lkey} must be a vector, got shape {labels.shape}")
    labels = labels.ravel()
    n = labels.size
    if not np.isfinite(labels).all() or not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{path}: {lkey} must hold integer labels 1..3")
    bad = ~np.isin(labels, (1, 2, 3))
    if bad.any():
        raise ValueError(
            f"{path}: {lkey} has labels outside 1..3 (1 negative, 2 positive, 3 surprise): "
            f"values {np.unique(labels[bad]).astype(int).tolist()} at samples "
            f"{(np.flatnonzero(bad)[:10] + 1).tolist()}"
        )

    feats = np.asarray(variables[fkey])
    if feats.ndim != 2:
        raise ValueError(f"{path}: {fkey} must be a 2-D matrix, got shape {feats.shape}")
    # MATLAB orientation: samples are the rows; detect from the label count
    if feats.shape[0] == n:
        X = feats
    elif feats.shape[1] == n:
        log.debug("%s: %s stored as (D, n) = %s, transposing", path.name, fkey, feats.shape)
        X = feats.T
    else:
        raise ValueError(
            f"{path}: {fkey} has shape {feats.shape} but {lkey} has {n} labels; "
            "one dimension of the features must equal the number of labels"
        )
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        rows = np.flatnonzero(~np.isfinite(X).all(axis=1))
        raise ValueError(
            f"{path}: {fkey} has non-finite values in samples {(rows[:10] + 1).tolist()}"
        )

    y = labels.astype(np.int64) - 1
    table = pd.DataFrame(
        {
            "dataset": dataset,
            "subject": f"{dataset}/unknown",
            "clip": [f"{i + 1:04d}" for i in range(n)],
            "emotion": [CDMER_CLASSES[v] for v in y],
            "label": [CDMER_CLASSES[v] for v in y],
            "y": y,
        }
    )
    blocks, levels, groups = None, None, None
    expected_d = sum(L * L for L in CDMER_LEVELS) * _PLANES * _BINS
    if X.shape[1] == expected_d:
        blocks, _ = cdmer_lbptop_layout()
        levels = CDMER_LEVELS
        if grouping == "authors":
            groups = tgsr_authors_groups()
    else:
        log.info(
            "%s: %d columns, not the benchmark's %d; no block layout recorded",
            path.name,
            X.shape[1],
            expected_d,
        )
    fs = FeatureSet(
        X,
        table,
        name=dataset,
        classes=CDMER_CLASSES,
        blocks=blocks,
        levels=levels,
        column_groups=groups,
        grouping=grouping if blocks is not None else None,
    )
    log.info(
        "loaded %s: %s, classes %s",
        path.name,
        fs,
        dict(zip(CDMER_CLASSES, np.bincount(y, minlength=3).tolist(), strict=True)),
    )
    return fs


def load_cdmer_dir(
    folder: str | Path, pattern: str = "CrossCorpus_*.mat", *, tgsr_groups: str = "authors"
) -> dict[str, FeatureSet]:
    """Load every released CDMER feature file of a folder (``tgsr_groups``: see
    :func:`load_cdmer_features`).

    Returns
    -------
    dict
        Dataset name -> FeatureSet, in sorted file-name order.

    Raises
    ------
    FileNotFoundError
        The folder is missing or holds no file matching ``pattern``.
    ValueError
        Two files give the same dataset name.
    """
    folder = Path(folder)
    _check_grouping(tgsr_groups)
    if not folder.is_dir():
        raise FileNotFoundError(f"CDMER feature folder not found: {folder}")
    files = sorted(folder.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"no CDMER feature files matching {pattern!r} in {folder} "
            "(expected e.g. CrossCorpus_LBPTOP_R3P8_CASME2_112by112.mat)"
        )
    out: dict[str, FeatureSet] = {}
    origin: dict[str, Path] = {}
    for f in files:
        fs = load_cdmer_features(f, tgsr_groups=tgsr_groups)
        if fs.name in out:
            raise ValueError(f"{f} and {origin[fs.name]} both hold dataset {fs.name!r}")
        out[fs.name] = fs
        origin[fs.name] = f
    return out


# ----------------------------------------------------------------- merkit feature files
#: arrays of a merkit feature file (``merkit extract``), beside ``format``
_NPZ_ARRAYS = ("X", "y", "dataset", "subject", "clip", "blocks", "levels", "classes",
               "descriptor", "params", "preprocess", "scheme")  # fmt: skip
_REEXTRACT = "re-extract it with 'merkit extract' (or copy the file again)"


def read_feature_npz(path: str | Path, *, expected_format: str) -> dict[str, np.ndarray]:
    """The arrays of a merkit feature file ``F.npz``, checked for completeness.

    Parameters
    ----------
    path : str or Path
        The ``.npz`` written by :func:`merkit.features.extract.save_feature_file`.
    expected_format : str
        The ``format`` tag such files carry.

    Returns
    -------
    dict
        Array name -> array (``X``, ``y``, ``dataset``, ``subject``, ``clip``...).

    Raises
    ------
    ValueError
        One line naming the file: unreadable (cut short, damaged: not a zip archive),
        not a merkit feature file, an array missing, or arrays whose lengths disagree
        with the rows of ``X``.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(
            f"{path}: cannot read it as a merkit feature file, it is cut short or damaged "
            f"({_first_line(err)}); {_REEXTRACT}"
        ) from err
    fmt = str(data.get("format", ""))
    if fmt != expected_format:
        raise ValueError(
            f"{path} is not a merkit feature file (format {fmt or 'missing'!r}, expected "
            f"{expected_format!r}; write one with 'merkit extract')"
        )
    absent = [k for k in _NPZ_ARRAYS if k not in data]
    if absent:
        raise ValueError(
            f"{path}: incomplete merkit feature file, array(s) {', '.join(absent)} missing "
            f"(present: {', '.join(sorted(data))}); {_REEXTRACT}"
        )
    X = data["X"]
    if X.ndim != 2:
        raise ValueError(f"{path}: X must be a 2-D (clips x features) array, got shape "
                         f"{X.shape}; {_REEXTRACT}")  # fmt: skip
    n = X.shape[0]
    sizes = {k: data[k].shape[0] if data[k].ndim else 1 for k in ("y", "dataset", "subject",
                                                                    "clip")}  # fmt: skip
    wrong = {k: v for k, v in sizes.items() if v != n}
    if wrong:
        got = ", ".join(f"{k} has {v}" for k, v in wrong.items())
        raise ValueError(f"{path}: X has {n} rows but {got} entries; the arrays do not belong "
                         f"together, {_REEXTRACT}")  # fmt: skip
    if data["blocks"].size not in (0, X.shape[1]):
        raise ValueError(
            f"{path}: the block layout has {data['blocks'].size} entries but X has "
            f"{X.shape[1]} columns; {_REEXTRACT}"
        )
    return data


def _rows_text(rows: np.ndarray, table: pd.DataFrame, limit: int = 5) -> str:
    """``rows 3, 7 (clips a, b)``: the first ``limit`` of ``rows`` with their clip ids."""
    first = rows[:limit].tolist()
    more = f" and {rows.size - limit} more" if rows.size > limit else ""
    text = f"row{'s' if rows.size > 1 else ''} {', '.join(map(str, first))}{more}"
    if "clip" in table.columns:
        clips = table["clip"].astype(str).to_numpy()[rows[:limit]]
        text += f" (clip{'s' if rows.size > 1 else ''} {', '.join(clips)})"
    return text


def check_features(
    features: Mapping[str, FeatureSet],
    sources: Mapping[str, str | Path] | None = None,
    *,
    labels: bool = True,
) -> None:
    """Refuse features a method cannot use, before any unit of work runs.

    Checks every database: all values finite, a label ``y`` in ``0..K-1`` on every row
    (``labels``), and the same number of columns in all of them.

    Parameters
    ----------
    features : mapping
        Database name -> FeatureSet.
    sources : mapping, optional
        Database name -> the file it was read from (named in the messages).
    labels : bool
        Require labels.

    Raises
    ------
    ValueError
        One line naming the file and the database, what is wrong (the first bad rows
        with their clip ids, or columns) and what to do.
    """
    sources = sources or {}

    def where(name: str) -> str:
        src = sources.get(name)
        return f"{src}: database {name}" if src is not None else f"database {name}"

    for name, fs in features.items():
        finite = np.isfinite(fs.X)
        if not finite.all():
            rows = np.flatnonzero(~finite.all(axis=1))
            cols = np.flatnonzero(~finite.all(axis=0))
            raise ValueError(
                f"{where(name)}: {int((~finite).sum())} non-finite value(s) (NaN or infinity) "
                f"in {_rows_text(rows, fs.table)}, columns {cols[:5].tolist()}"
                f"{' ...' if cols.size > 5 else ''}; re-extract the features with "
                "'merkit extract' (or copy the file again)"
            )
        if not labels:
            continue
        if "y" not in fs.table.columns:
            raise ValueError(f"{where(name)}: no labels (y); extract with a label scheme, e.g. "
                             "'merkit extract --scheme cdmer3'")  # fmt: skip
        y = pd.to_numeric(fs.table["y"], errors="coerce").to_numpy(dtype=float)
        k = len(fs.classes)
        bad = ~np.isfinite(y) | (y < 0) | ((y >= k) if k else False)
        if bad.any():
            rows = np.flatnonzero(bad)
            expect = f"0..{k - 1} ({', '.join(fs.classes)})" if k else "class indices from 0"
            raise ValueError(
                f"{where(name)}: {rows.size} clip(s) without a valid label y in "
                f"{_rows_text(rows, fs.table)}; y must be {expect}: extract with a label "
                "scheme, e.g. 'merkit extract --scheme cdmer3'"
            )
    widths = {name: fs.X.shape[1] for name, fs in features.items()}
    if len(set(widths.values())) > 1:
        listed = ", ".join(f"{where(n)} {d}" for n, d in widths.items())
        raise ValueError(
            f"the databases have different numbers of feature columns ({listed}); describe "
            "every database with the same descriptor and block levels ('merkit extract')"
        )
