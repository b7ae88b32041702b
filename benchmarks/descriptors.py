"""Speed of merkit's appearance descriptors against straightforward references.

For LBP-TOP, LBP-SIP, LPQ-TOP, HOG-TOP and HIGO-TOP (the registry variants of the CDMER
benchmark), on one 16 x 112 x 112 clip over the 85-block layout, single-threaded (BLAS and
OpenMP limited to one thread with threadpoolctl): the median wall time and CPU time per
clip of merkit's vectorised code, of a reference written the obvious way — per-slice
library calls and a loop over blocks — and their ratio. Each reference is checked to give
the same vector first:

* LBP-TOP: ``skimage.feature.local_binary_pattern`` on every XY / XT / YT slice
  (``benchmarks/lbp_top.py``);
* LBP-SIP: ``local_binary_pattern(frame, 4, R)`` per frame for the spatial code, numpy
  comparisons with the previous / next frame, ``np.bincount`` per block;
* LPQ-TOP: a line-by-line port of the authors' ``LPQ_TOP.m`` (``scipy.signal.convolve2d``
  of every slice with the complex STFT filters, whitening, sign bits), ``np.bincount`` per
  block;
* HOG-TOP / HIGO-TOP: ``np.gradient`` of the clip, ``np.arctan2`` orientations and
  ``np.histogram`` per block and plane.

LBP-TOP and LBP-SIP run on a random uint8 clip (ties occur and must agree); LPQ-TOP and
HOG/HIGO-TOP on a dithered float copy of it, where no STFT part is exactly zero (merkit
gives such parts an exact 0, ``LPQ_TOP.m`` rounding noise of either sign) and no gradient
lies exactly on a bin boundary (where an arctangent may round either way).

Usage: ``python benchmarks/descriptors.py [--repeats 15] [--size 112] [--frames 16]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from scipy.signal import convolve2d  # noqa: E402
from skimage.feature import local_binary_pattern  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from merkit.features.layout import BlockLayout  # noqa: E402
from merkit.features.registry import get_descriptor  # noqa: E402


def _lbp_top_reference():
    spec = importlib.util.spec_from_file_location(
        "lbp_top_benchmark", Path(__file__).with_name("lbp_top.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.skimage_reference


# --------------------------------------------------------------------------- references
def lbp_sip_reference(clip: np.ndarray, radius: int, layout: BlockLayout) -> np.ndarray:
    """LBP-SIP with per-frame scikit-image codes and a loop over blocks."""
    r = radius
    t, h, w = clip.shape
    data = clip.astype(float)
    spatial = np.stack(
        [local_binary_pattern(clip[i], 4, r, "default")[r:-r, r:-r] for i in range(r, t - r)]
    ).astype(np.int64)
    centre = data[r : t - r, r : h - r, r : w - r]
    temporal = (data[: t - 2 * r, r : h - r, r : w - r] >= centre).astype(np.int64)
    temporal += 2 * (data[2 * r :, r : h - r, r : w - r] >= centre)
    out = []
    for y0, y1, x0, x1 in layout.block_bounds(h - 2 * r, w - 2 * r):
        for codes, nb in ((spatial, 16), (temporal, 4)):
            hist = np.bincount(codes[:, y0:y1, x0:x1].ravel(), minlength=nb)
            out.append(hist / hist.sum())
    return np.concatenate(out).astype(np.float32)


def _lpq_slice(img: np.ndarray, v: np.ndarray | None, w: int = 5) -> np.ndarray:
    x = np.arange(w) - (w - 1) / 2
    w0, w1 = np.ones(w), np.exp(-2j * np.pi * x / w)
    parts = []
    for a, b in ((w0, w1), (w1, w0), (w1, w1), (w1, np.conj(w1))):
        resp = convolve2d(convolve2d(img, a[:, None], "valid"), b[None, :], "valid")
        parts += [resp.real, resp.imag]
    f = np.stack(parts, axis=-1)
    if v is not None:
        f = f @ v
    return ((f >= 0) * (1 << np.arange(8))).sum(-1)


def lpq_top_reference(clip: np.ndarray, rho: float, layout: BlockLayout) -> np.ndarray:
    """LPQ-TOP as LPQ_TOP.m computes it, slice by slice, then a loop over blocks."""
    from merkit.features.lpq import whitening_matrix

    data = clip.astype(float)
    t, h, w = data.shape
    v_xy = whitening_matrix(5, 5, rho, rho, True) if rho else None
    v_t = whitening_matrix(5, 5, rho, rho, False) if rho else None
    xy = np.stack([_lpq_slice(data[i], v_xy) for i in range(2, t - 2)])
    xt = np.stack([_lpq_slice(data[:, y, :].T, v_t) for y in range(2, h - 2)]).transpose(2, 0, 1)
    yt = np.stack([_lpq_slice(data[:, :, x].T, v_t) for x in range(2, w - 2)]).transpose(2, 1, 0)
    out = []
    for y0, y1, x0, x1 in layout.block_bounds(h - 4, w - 4):
        for codes in (xy, xt, yt):
            hist = np.bincount(codes[:, y0:y1, x0:x1].ravel(), minlength=256)
            out.append(hist / hist.sum())
    return np.concatenate(out).astype(np.float32)


def gradient_reference(
    clip: np.ndarray, bins: int, weighted: bool, layout: BlockLayout
) -> np.ndarray:
    """HOG-TOP / HIGO-TOP with np.gradient, arctan2 and np.histogram per block and plane."""
    g_t, g_y, g_x = (g[1:-1, 1:-1, 1:-1] for g in np.gradient(clip.astype(float)))
    out = []
    for y0, y1, x0, x1 in layout.block_bounds(clip.shape[1] - 2, clip.shape[2] - 2):
        for h, v in ((g_x, g_y), (g_x, g_t), (g_y, g_t)):
            hb, vb = h[:, y0:y1, x0:x1].ravel(), v[:, y0:y1, x0:x1].ravel()
            theta = np.mod(np.arctan2(vb, hb) + np.pi / 2, np.pi) - np.pi / 2
            mag = np.hypot(hb, vb)
            weights = mag if weighted else (mag > 0).astype(float)
            hist, _ = np.histogram(theta, bins, range=(-np.pi / 2, np.pi / 2), weights=weights)
            out.append(hist / hist.sum())
    return np.concatenate(out).astype(np.float32)


# --------------------------------------------------------------------------- timing
def _median_ms(fn, clip, repeats: int) -> tuple[float, float]:
    """Median wall-clock and CPU milliseconds of ``fn(clip)`` after one warm-up call."""
    fn(clip)
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(clip)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return 1000.0 * float(np.median(wall)), 1000.0 * float(np.median(cpu))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    clip = rng.integers(0, 256, (args.frames, args.size, args.size)).astype(np.uint8)
    dithered = clip + rng.random(clip.shape)
    layout = BlockLayout((1, 2, 4, 8))
    lbp_ref = _lbp_top_reference()

    cases = [
        ("lbp_top:r3p8", clip, lambda c: lbp_ref(c, 3, 8, layout)),
        ("lbp_sip:r1", clip, lambda c: lbp_sip_reference(c, 1, layout)),
        ("lbp_sip:r3", clip, lambda c: lbp_sip_reference(c, 3, layout)),
        ("lpq_top:w5", dithered, lambda c: lpq_top_reference(c, 0.1, layout)),
        ("lpq_top:w5:rho0", dithered, lambda c: lpq_top_reference(c, 0.0, layout)),
        ("hog_top:p4", dithered, lambda c: gradient_reference(c, 4, True, layout)),
        ("hog_top:p8", dithered, lambda c: gradient_reference(c, 8, True, layout)),
        ("higo_top:p4", dithered, lambda c: gradient_reference(c, 4, False, layout)),
        ("higo_top:p8", dithered, lambda c: gradient_reference(c, 8, False, layout)),
    ]
    print(
        f"{args.frames}x{args.size}x{args.size} clip, {layout.n_blocks} blocks, 1 thread; "
        f"median of {args.repeats} runs (reference: {max(3, args.repeats // 3)})"
    )
    print(
        f"{'descriptor':18s} {'dim':>6s} {'max|diff|':>9s} {'merkit ms':>10s} {'(cpu)':>7s} "
        f"{'reference ms':>13s} {'(cpu)':>7s} {'speed-up':>9s}"
    )
    with threadpool_limits(limits=1):
        for spec, data, reference in cases:
            desc = get_descriptor(spec)
            ours, ref = desc(data), reference(data)
            if ours.shape != (desc.dim,) or ref.shape != ours.shape:
                raise SystemExit(f"{spec}: shapes {ours.shape} / {ref.shape}, expected {desc.dim}")
            diff = float(np.abs(ours - ref).max())
            if diff > 1e-5:
                raise SystemExit(f"{spec}: merkit and the reference disagree (max |diff| {diff})")
            wall, cpu = _median_ms(desc, data, args.repeats)
            ref_wall, ref_cpu = _median_ms(reference, data, max(3, args.repeats // 3))
            print(
                f"{spec:18s} {desc.dim:6d} {diff:9.1e} {wall:10.1f} {cpu:7.1f} "
                f"{ref_wall:13.1f} {ref_cpu:7.1f} {ref_cpu / cpu:8.1f}x"
            )


if __name__ == "__main__":
    main()
