"""Multi-scale block layouts."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.features.layout import BlockLayout, partition


def test_default_layout_blocks() -> None:
    g = BlockLayout()
    assert g.levels == (1, 2, 4, 8)
    assert g.n_blocks == 85
    assert g.blocks[:6] == [(1, 0, 0), (2, 0, 0), (2, 0, 1), (2, 1, 0), (2, 1, 1), (4, 0, 0)]
    assert g.blocks[-1] == (8, 7, 7)
    assert g.blocks[21 + 8 + 3] == (8, 1, 3)  # row-major inside a level
    assert [s.start for s in g.level_slices] == [0, 1, 5, 21]


def test_column_major_order() -> None:
    g = BlockLayout("1,2", order="column")
    assert g.blocks == [(1, 0, 0), (2, 0, 0), (2, 1, 0), (2, 0, 1), (2, 1, 1)]


def test_parse_and_validation() -> None:
    assert BlockLayout("1,2,4,8") == BlockLayout((1, 2, 4, 8)) == BlockLayout.parse(" 1, 2 ,4,8 ")
    assert BlockLayout("8,4").blocks[0] == (8, 0, 0)  # levels kept in the given order
    assert BlockLayout(3).n_blocks == 9
    assert str(BlockLayout()) == "1,2,4,8"
    with pytest.raises(ValueError, match="positive"):
        BlockLayout((1, 0))
    with pytest.raises(ValueError, match="positive"):
        BlockLayout("1,-2")
    with pytest.raises(ValueError, match="comma-separated"):
        BlockLayout("1,two")
    with pytest.raises(ValueError, match="integer"):
        BlockLayout((1, 2.5))
    with pytest.raises(ValueError, match="twice"):
        BlockLayout((2, 2))
    with pytest.raises(ValueError, match="at least one"):
        BlockLayout(())
    with pytest.raises(ValueError, match="order"):
        BlockLayout(order="diagonal")
    with pytest.raises(ValueError, match="partition"):
        BlockLayout(partition="random")


@pytest.mark.parametrize("h, w", [(112, 112), (106, 106), (37, 53), (8, 9)])
def test_block_bounds_cover_every_pixel_once_per_level(h, w) -> None:
    g = BlockLayout()
    bounds = g.block_bounds(h, w)
    assert len(bounds) == 85
    for sl in g.level_slices:
        cover = np.zeros((h, w), int)
        for y0, y1, x0, x1 in bounds[sl]:
            assert y1 > y0 and x1 > x0
            cover[y0:y1, x0:x1] += 1
        assert (cover == 1).all()
    sizes = {y1 - y0 for (y0, y1, _, _) in bounds[21:]}
    assert max(sizes) - min(sizes) <= 1  # near-equal


def test_known_partitions() -> None:
    assert partition(112, 8).tolist() == [0, 14, 28, 42, 56, 70, 84, 98, 112]
    assert partition(106, 4).tolist() == [0, 26, 53, 79, 106]
    # the CDMER benchmark: round(n/k) per block, remainder in the last one
    assert partition(106, 8, "cdmer").tolist() == [0, 13, 26, 39, 52, 65, 78, 91, 106]
    assert partition(106, 4, "cdmer").tolist() == [0, 27, 54, 81, 106]
    assert partition(106, 2, "cdmer").tolist() == [0, 53, 106]
    with pytest.raises(ValueError, match="non-empty"):
        partition(5, 8)
    with pytest.raises(ValueError, match="last block empty"):
        partition(21, 8, "cdmer")  # round(2.625) = 3 -> 7 x 3 = 21


def test_block_index_map() -> None:
    g = BlockLayout((1, 2))
    m = g.block_index_map(4, 6)
    assert m.shape == (2, 4, 6)
    assert (m[0] == 0).all()
    np.testing.assert_array_equal(m[1], [[1] * 3 + [2] * 3] * 2 + [[3] * 3 + [4] * 3] * 2)
    mc = BlockLayout((1, 2), order="column").block_index_map(4, 6)
    np.testing.assert_array_equal(mc[1], [[1] * 3 + [3] * 3] * 2 + [[2] * 3 + [4] * 3] * 2)
    # consistent with block_bounds for the default layout
    g = BlockLayout()
    m = g.block_index_map(50, 61)
    pairs = zip(g.blocks, g.block_bounds(50, 61), strict=True)
    for b, ((n, _, _), (y0, y1, x0, x1)) in enumerate(pairs):
        assert (m[g.levels.index(n), y0:y1, x0:x1] == b).all()
    with pytest.raises(ValueError, match="does not fit a 5x40"):
        g.block_index_map(5, 40)


def test_column_blocks() -> None:
    g = BlockLayout()
    cols = g.column_blocks(177)
    assert cols.shape == (15045,)
    assert cols[0] == 0 and cols[176] == 0 and cols[177] == 1 and cols[-1] == 84
    np.testing.assert_array_equal(np.bincount(cols), np.full(85, 177))
    lp = g.column_blocks(177, column_order="level_plane", n_planes=3)
    # level 1: XY, XT, YT of block 0; level 2: XY of blocks 1..4, then XT, then YT
    assert lp[:177].tolist() == [0] * 177
    assert lp[177 : 177 + 59 * 4 : 59].tolist() == [1, 2, 3, 4]
    assert lp[177 + 59 * 4] == 1  # XT of block 1 follows the four XY histograms
    np.testing.assert_array_equal(np.bincount(lp), np.full(85, 177))
    with pytest.raises(ValueError, match="multiple"):
        g.column_blocks(10, column_order="level_plane", n_planes=3)
    with pytest.raises(ValueError, match="positive integer"):
        g.column_blocks(0)


def test_level_plane_order_is_a_permutation_matching_column_blocks() -> None:
    g = BlockLayout((1, 2, 4))
    perm = g.level_plane_order(3, 5)
    assert sorted(perm.tolist()) == list(range(g.n_blocks * 15))
    np.testing.assert_array_equal(
        g.column_blocks(15)[perm], g.column_blocks(15, column_order="level_plane", n_planes=3)
    )
