"""Multi-scale block layouts over a face (or over a map of codes computed on a face).

A :class:`BlockLayout` with ``levels=(1, 2, 4, 8)`` cuts an image into 1x1, 2x2, 4x4 and 8x8
blocks: 1 + 4 + 16 + 64 = 85 blocks, the layout of the CDMER benchmark features
(Zong et al., "Cross-database micro-expression recognition: a benchmark", 2018/2022,
doi:10.1145/3323873.3326590) and of the block-sparse methods built on them (TGSR).

Blocks are numbered level by level (in the given order) and, inside a level, row-major
(``order="row"``, the merkit convention) or column-major (``order="column"``, the order
of the benchmark's MATLAB code, see :mod:`merkit.features.lbp`).

Two partitions of an extent of ``n`` pixels into ``k`` blocks are offered:

``"even"``
    Near-equal: block ``i`` covers ``[i*n//k, (i+1)*n//k)`` (sizes differ by at most one).
``"cdmer"``
    As in the benchmark features: every block but the last has ``round(n/k)`` pixels
    (halves rounded up), the last block takes the rest (106 -> 7 x 13 + 15).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

ORDERS = ("row", "column")
PARTITIONS = ("even", "cdmer")
COLUMN_ORDERS = ("block", "level_plane")


def _parse_levels(levels: str | int | Iterable[int]) -> tuple[int, ...]:
    if isinstance(levels, str):
        parts = [p.strip() for p in levels.replace(";", ",").split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError as err:
            raise ValueError(
                f"block levels {levels!r}: expected comma-separated positive integers "
                "like '1,2,4,8'"
            ) from err
    elif isinstance(levels, (int, np.integer)):
        values = [int(levels)]
    else:
        values = list(levels)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(
                    f"block levels {levels!r}: every level must be an integer, got {v!r}"
                )
        values = [int(v) for v in values]
    if not values:
        raise ValueError(f"block levels {levels!r}: at least one level is required")
    bad = [v for v in values if v < 1]
    if bad:
        raise ValueError(f"block levels {levels!r}: levels must be positive integers, got {bad}")
    if len(set(values)) != len(values):
        raise ValueError(f"block levels {levels!r}: a level appears twice")
    return tuple(values)


def partition(n: int, k: int, method: str = "even") -> np.ndarray:
    """Boundaries of ``k`` consecutive blocks covering ``range(n)``.

    Parameters
    ----------
    n : int
        Number of pixels along the axis.
    k : int
        Number of blocks.
    method : {"even", "cdmer"}
        See the module docstring.

    Returns
    -------
    ndarray of shape (k + 1,)
        ``b[i]:b[i+1]`` is block ``i``; ``b[0] == 0``, ``b[k] == n``.

    Raises
    ------
    ValueError
        If a block would be empty.
    """
    if method not in PARTITIONS:
        raise ValueError(f"unknown partition {method!r}; expected one of {PARTITIONS}")
    if k < 1 or n < k:
        raise ValueError(f"cannot cut {n} pixels into {k} non-empty blocks")
    if method == "even":
        return (np.arange(k + 1) * n) // k
    size = int(np.floor(n / k + 0.5))
    bounds = np.append(np.arange(k) * size, n)
    if np.any(np.diff(bounds) < 1):
        raise ValueError(
            f"'cdmer' partition of {n} pixels into {k} blocks of {size} leaves the last block "
            f"empty; use partition='even'"
        )
    return bounds


@dataclass(frozen=True)
class BlockLayout:
    """Multi-scale layout of blocks.

    Parameters
    ----------
    levels : tuple of int or str
        Blocks per side at each level, e.g. ``(1, 2, 4, 8)`` or ``"1,2,4,8"``.
    order : {"row", "column"}
        Block order inside a level: row-major (default) or column-major.
    partition : {"even", "cdmer"}
        How an extent is cut into blocks (module docstring).

    Examples
    --------
    >>> g = BlockLayout("1,2,4,8")
    >>> g.n_blocks
    85
    >>> g.blocks[1:3]
    [(2, 0, 0), (2, 0, 1)]
    """

    levels: tuple[int, ...] = (1, 2, 4, 8)
    order: str = "row"
    partition: str = "even"
    _blocks: tuple[tuple[int, int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", _parse_levels(self.levels))
        if self.order not in ORDERS:
            raise ValueError(f"block order {self.order!r}: expected one of {ORDERS}")
        if self.partition not in PARTITIONS:
            raise ValueError(f"block partition {self.partition!r}: expected one of {PARTITIONS}")
        blocks = []
        for n in self.levels:
            if self.order == "row":
                blocks.extend((n, r, c) for r in range(n) for c in range(n))
            else:
                blocks.extend((n, r, c) for c in range(n) for r in range(n))
        object.__setattr__(self, "_blocks", tuple(blocks))

    @classmethod
    def parse(cls, spec: str, **kwargs) -> BlockLayout:
        """Block layout from a string such as ``"1,2,4,8"``."""
        return cls(levels=_parse_levels(spec), **kwargs)

    @property
    def blocks(self) -> list[tuple[int, int, int]]:
        """``(level, row, col)`` of every block, in feature order."""
        return list(self._blocks)

    @property
    def n_blocks(self) -> int:
        """Total number of blocks (85 for levels 1, 2, 4, 8)."""
        return len(self._blocks)

    @property
    def level_slices(self) -> list[slice]:
        """Block-index range of each level, in level order."""
        out, start = [], 0
        for n in self.levels:
            out.append(slice(start, start + n * n))
            start += n * n
        return out

    def check_size(self, height: int, width: int) -> None:
        """Raise ValueError if an image of this size cannot hold the finest level."""
        self.block_bounds(height, width)

    def block_bounds(self, height: int, width: int) -> list[tuple[int, int, int, int]]:
        """``(y0, y1, x0, x1)`` of every block (half-open), in feature order.

        Every pixel lies in exactly one block of each level.
        """
        if height < 1 or width < 1:
            raise ValueError(f"block layout over a {height}x{width} image: size must be positive")
        out = []
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n, r, c in self._blocks:
            if n not in cache:
                try:
                    cache[n] = (
                        partition(height, n, self.partition),
                        partition(width, n, self.partition),
                    )
                except ValueError as err:
                    raise ValueError(
                        f"block level {n} does not fit a {height}x{width} image: {err}"
                    ) from err
            ys, xs = cache[n]
            out.append((int(ys[r]), int(ys[r + 1]), int(xs[c]), int(xs[c + 1])))
        return out

    def block_index_map(self, height: int, width: int) -> np.ndarray:
        """Global block index of every pixel at every level.

        Returns
        -------
        ndarray of int64, shape (n_levels, height, width)
            ``m[l, y, x]`` is the index (0..n_blocks-1) of the level-``l`` block holding
            pixel ``(y, x)``.
        """
        out = np.empty((len(self.levels), height, width), dtype=np.int64)
        bounds = self.block_bounds(height, width)
        for b, ((n, _, _), (y0, y1, x0, x1)) in enumerate(zip(self._blocks, bounds, strict=True)):
            out[self.levels.index(n), y0:y1, x0:x1] = b
        return out

    def column_blocks(
        self, dim_per_block: int, *, column_order: str = "block", n_planes: int = 1
    ) -> np.ndarray:
        """Block index of each feature column.

        Parameters
        ----------
        dim_per_block : int
            Feature values per block (e.g. 177 = 3 planes x 59 bins for LBP-TOP R3P8).
        column_order : {"block", "level_plane"}
            ``"block"``: columns ordered (block, value) — merkit's order.
            ``"level_plane"``: ordered (level, plane, block-in-level, bin) — the order of
            the CDMER benchmark files; needs ``n_planes``.
        n_planes : int
            Planes per block for ``"level_plane"`` (``dim_per_block`` must divide by it).

        Returns
        -------
        ndarray of int64, shape (n_blocks * dim_per_block,)
        """
        if int(dim_per_block) != dim_per_block or dim_per_block < 1:
            raise ValueError(f"dim_per_block must be a positive integer, got {dim_per_block!r}")
        if column_order == "block":
            return np.repeat(np.arange(self.n_blocks, dtype=np.int64), int(dim_per_block))
        if column_order != "level_plane":
            raise ValueError(
                f"unknown column order {column_order!r}; expected one of {COLUMN_ORDERS}"
            )
        if n_planes < 1 or dim_per_block % n_planes:
            raise ValueError(
                f"dim_per_block {dim_per_block} is not a multiple of n_planes {n_planes}"
            )
        bins = dim_per_block // n_planes
        parts = []
        for sl in self.level_slices:
            ids = np.arange(sl.start, sl.stop, dtype=np.int64)
            parts.append(np.tile(np.repeat(ids, bins), n_planes))
        return np.concatenate(parts)

    def level_plane_order(self, n_planes: int, n_bins: int) -> np.ndarray:
        """Column permutation from the ``"block"`` column order to the ``"level_plane"`` one.

        ``X_level_plane = X_block[:, perm]`` and ``X_block = X_level_plane[:, argsort(perm)]``.
        """
        if n_planes < 1 or n_bins < 1:
            raise ValueError(f"n_planes and n_bins must be positive, got {n_planes}, {n_bins}")
        idx = np.arange(self.n_blocks * n_planes * n_bins).reshape(self.n_blocks, n_planes, n_bins)
        return np.concatenate([idx[sl].transpose(1, 0, 2).ravel() for sl in self.level_slices])

    def __str__(self) -> str:
        return ",".join(str(n) for n in self.levels)


@lru_cache(maxsize=32)
def block_cells(layout: BlockLayout, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells (intersections of the blocks of all levels) of a ``height x width`` code map.

    Returns the cell index of every pixel (int32 [H, W]) and the 0/1 matrix
    (n_blocks, n_cells) that sums cell histograms into block histograms, so that one
    ``bincount`` per plane serves every level.
    """
    maps = layout.block_index_map(height, width).reshape(len(layout.levels), -1)
    combos, cell = np.unique(maps.T, axis=0, return_inverse=True)
    agg = np.zeros((layout.n_blocks, len(combos)))
    for level in range(len(layout.levels)):
        agg[combos[:, level], np.arange(len(combos))] = 1.0
    cell = cell.reshape(height, width).astype(np.int32)
    cell.flags.writeable = False
    agg.flags.writeable = False
    return cell, agg
