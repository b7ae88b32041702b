"""Speed of TV-L1 (default and fast presets), HOOF and MDMO on 112 x 112 face clips.

* TV-L1: median milliseconds for one 112 x 112 pair at the ``default`` and ``fast`` presets,
  and the end-point error of ``fast`` against ``default``.
* HOOF (85 blocks x 8 bins) and MDMO (36 ROIs) on the 15 flows of a 16-frame clip, against a
  straightforward numpy reference (a loop over blocks / ROIs / frames with ``np.histogram``);
  the script checks that both give the same vector, then prints the speed ratio.
* End to end: ``hoof_clip`` and ``mdmo_clip`` (flows included) per clip.

The clip is CASME II sub01 EP02_01f (face-aligned, frames 0..15) when ``../shared/data`` is
present, else a smooth random texture under a growing local deformation. OpenCV runs on one
thread unless ``--threads`` says otherwise.

Usage: ``python benchmarks/flow.py [--repeats 7] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from merkit.features.flowhist import (
    MDMO_ROIS,
    hoof,
    hoof_clip,
    mdmo,
    mdmo_clip,
    mdmo_roi_masks,
)
from merkit.features.layout import BlockLayout
from merkit.video.face import reference_landmarks
from merkit.video.flow import clip_flows, tvl1_flow

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_clip(n: int = 16, size: int = 112) -> tuple[np.ndarray, str]:
    avi = SHARED / "clips" / "casme2_sub01_EP02_01f.avi"
    if avi.is_file():
        from merkit.video.face import align_clip
        from merkit.video.io import read_video

        frames = read_video(avi, 1, n, grey=True)
        aligned, _ = align_clip(frames, size=(size, size), name="casme2/sub01/EP02_01f")
        return aligned.astype(np.float32), "CASME II sub01/EP02_01f (aligned)"
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 2)
    base = np.clip((base - base.mean()) * 4 + 128, 0, 255)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bump = np.exp(-((xx - 0.3 * size) ** 2 + (yy - 0.7 * size) ** 2) / (0.02 * size**2))
    frames = [
        cv2.remap(base, xx - 1.5 * t / n * bump, yy + 0.5 * t / n * bump, cv2.INTER_LINEAR)
        for t in range(n)
    ]
    return np.stack(frames), "synthetic texture"


# ----------------------------------------------------------------------------- references
def hoof_reference(
    flows: np.ndarray, bins: int = 8, layout: BlockLayout | None = None
) -> np.ndarray:
    """HOOF with a loop over blocks and ``np.histogram`` on angles (magnitude-weighted)."""
    layout = BlockLayout((1, 2, 4, 8)) if layout is None else layout
    _, h, w, _ = flows.shape
    width = 2 * np.pi / bins
    out = []
    for y0, y1, x0, x1 in layout.block_bounds(h, w):
        block = flows[:, y0:y1, x0:x1].reshape(-1, 2).astype(np.float64)
        theta = np.mod(np.arctan2(-block[:, 1], block[:, 0]) + width / 2, 2 * np.pi)
        mag = np.hypot(block[:, 0], block[:, 1])
        hist, _ = np.histogram(theta, bins=bins, range=(0, 2 * np.pi), weights=mag)
        out.append(hist / hist.sum() if hist.sum() > 0 else hist)
    return np.concatenate(out).astype(np.float32)


def mdmo_reference(flows: np.ndarray, landmarks: np.ndarray, bins: int = 8) -> np.ndarray:
    """MDMO with a loop over frames and ROIs and ``np.histogram`` on angles."""
    masks = mdmo_roi_masks(landmarks, flows.shape[1:3])
    width = 2 * np.pi / bins
    total = np.zeros((len(MDMO_ROIS), 2))
    for flow in flows.astype(np.float64):
        for k, mask in enumerate(masks):
            vec = flow[mask]
            vec = vec[np.hypot(vec[:, 0], vec[:, 1]) > 0]
            if not len(vec):
                continue
            theta = np.mod(np.arctan2(-vec[:, 1], vec[:, 0]) + width / 2, 2 * np.pi)
            counts, edges = np.histogram(theta, bins=bins, range=(0, 2 * np.pi))
            main = np.argmax(counts)
            inside = (theta >= edges[main]) & (theta < edges[main + 1])
            total[k] += vec[inside].mean(axis=0)
    mean = total / len(flows)
    rho = np.hypot(mean[:, 0], mean[:, 1])
    theta = np.arctan2(-mean[:, 1], mean[:, 0])
    rho = rho / rho.max() if rho.max() > 0 else rho
    return np.stack([rho, theta], axis=1).ravel().astype(np.float32)


# ----------------------------------------------------------------------------- timing
def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)

    clip, source = load_clip()
    print(f"clip: {source}, {clip.shape[0]} frames of {clip.shape[1]}x{clip.shape[2]}")
    print(f"OpenCV threads: {args.threads}, repeats: {args.repeats}\n")

    onset, apex = clip[0], clip[9]
    ms_default = median_ms(lambda: tvl1_flow(onset, apex), args.repeats)
    ms_fast = median_ms(lambda: tvl1_flow(onset, apex, preset="fast"), args.repeats)
    ref = tvl1_flow(onset, apex)
    fast = tvl1_flow(onset, apex, preset="fast")
    epe = np.linalg.norm(fast - ref, axis=2).mean()
    mag = np.linalg.norm(ref, axis=2).mean()
    print("TV-L1, one 112x112 pair (frame 0 -> 9)")
    print(f"  default  {ms_default:8.1f} ms")
    print(f"  fast     {ms_fast:8.1f} ms   ({ms_default / ms_fast:.1f}x faster)")
    print(f"  fast vs default: EPE {epe:.3f} px, mean magnitude {mag:.3f} px\n")

    flows = clip_flows(clip, pairs="consecutive", preset="fast")
    onset_flows = clip_flows(clip, pairs="onset", preset="fast")
    pts = reference_landmarks(clip.shape[1:3])

    h_fast, h_ref = hoof(flows), hoof_reference(flows)
    assert np.allclose(h_fast, h_ref, atol=1e-5), "HOOF differs from the reference"
    m_fast, m_ref = mdmo(onset_flows, pts), mdmo_reference(onset_flows, pts)
    assert np.allclose(m_fast, m_ref, atol=1e-5), "MDMO differs from the reference"

    ms_hoof = median_ms(lambda: hoof(flows), args.repeats)
    ms_hoof_ref = median_ms(lambda: hoof_reference(flows), args.repeats)
    ms_mdmo = median_ms(lambda: mdmo(onset_flows, pts), args.repeats)
    ms_mdmo_ref = median_ms(lambda: mdmo_reference(onset_flows, pts), args.repeats)
    print(f"descriptors on {len(flows)} precomputed flows (vectors equal to the reference)")
    print(
        f"  HOOF 85x8   {ms_hoof:8.2f} ms   reference {ms_hoof_ref:8.2f} ms   "
        f"ratio {ms_hoof_ref / ms_hoof:.1f}x"
    )
    print(
        f"  MDMO 36x2   {ms_mdmo:8.2f} ms   reference {ms_mdmo_ref:8.2f} ms   "
        f"ratio {ms_mdmo_ref / ms_mdmo:.1f}x\n"
    )

    reps = max(1, args.repeats // 3)
    ms_hoof_clip = median_ms(lambda: hoof_clip(clip), reps)
    ms_mdmo_clip = median_ms(lambda: mdmo_clip(clip, landmarks=pts), reps)
    print("end to end per 16-frame clip (15 fast TV-L1 flows + descriptor)")
    print(f"  hoof_clip   {ms_hoof_clip:8.1f} ms")
    print(f"  mdmo_clip   {ms_mdmo_clip:8.1f} ms")


if __name__ == "__main__":
    main()
