"""Speed of merkit's LBP-TOP against a scikit-image per-slice reference.

The reference computes the codes of every XY, XT and YT slice with
``skimage.feature.local_binary_pattern`` (the planes seen as images with time along the
rows, merkit's convention), maps them with the same u2 table and histograms each of the
85 blocks with ``np.bincount``. Both run single-threaded on a 112 x 112 x 16 clip, R3P8;
the script checks that the two vectors agree, then prints the median time per clip.

Usage: ``python benchmarks/lbp_top.py [--repeats 15] [--size 112] [--frames 16]``
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from merkit.features.layout import BlockLayout  # noqa: E402
from merkit.features.lbp import lbp_top, map_codes  # noqa: E402


def skimage_reference(clip: np.ndarray, radius: int = 3, points: int = 8, layout=None):
    """LBP-TOP from per-slice ``skimage.feature.local_binary_pattern`` calls."""
    from skimage.feature import local_binary_pattern

    layout = BlockLayout() if layout is None else layout
    t, h, w = clip.shape
    r = radius
    xy = np.stack([local_binary_pattern(clip[i], points, r, "default") for i in range(t)])
    xt = np.stack([local_binary_pattern(clip[:, y, :], points, r, "default") for y in range(h)])
    yt = np.stack([local_binary_pattern(clip[:, :, x], points, r, "default") for x in range(w)])
    planes = [
        xy[r : t - r, r : h - r, r : w - r],
        xt.transpose(1, 0, 2)[r : t - r, r : h - r, r : w - r],
        yt.transpose(1, 2, 0)[r : t - r, r : h - r, r : w - r],
    ]
    nb = points * (points - 1) + 3
    bounds = layout.block_bounds(h - 2 * r, w - 2 * r)
    out = np.empty((layout.n_blocks, 3, nb))
    for k, codes in enumerate(planes):
        bins = map_codes(codes.astype(np.int64), points, "u2")
        for b, (y0, y1, x0, x1) in enumerate(bounds):
            hist = np.bincount(bins[:, y0:y1, x0:x1].ravel(), minlength=nb)
            out[b, k] = hist / hist.sum()
    return out.astype(np.float32).ravel()


def _median_ms(fn, clip, repeats: int) -> float:
    fn(clip)  # warm-up (caches, lookup tables)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(clip)
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    # a smooth-ish random clip in uint8 (ties occur, as in real faces)
    clip = rng.integers(0, 256, (args.frames, args.size, args.size)).astype(np.uint8)

    with threadpool_limits(limits=1):
        ours = lbp_top(clip)
        ref = skimage_reference(clip)
        max_diff = float(np.abs(ours - ref).max())
        if max_diff > 1e-6:
            raise SystemExit(f"merkit and the skimage reference disagree (max |diff| {max_diff})")
        ms_ours = _median_ms(lbp_top, clip, args.repeats)
        ms_ref = _median_ms(skimage_reference, clip, max(3, args.repeats // 3))

    print(
        f"LBP-TOP R3P8, {args.frames}x{args.size}x{args.size} clip, 85 blocks, 1 thread "
        f"(outputs equal, max |diff| {max_diff:.1e})"
    )
    print(f"  merkit lbp_top          : {ms_ours:8.1f} ms/clip")
    print(f"  skimage per-slice (ref) : {ms_ref:8.1f} ms/clip")
    print(f"  speed-up                : {ms_ref / ms_ours:8.1f}x")


if __name__ == "__main__":
    main()
