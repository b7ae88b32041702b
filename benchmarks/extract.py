"""Extraction speed end to end: ~200 synthetic clips -> LBP-TOP R3P8 feature file.

Synthesises CASME II (8 subjects x 10 clips), SMIC-HS (8 x 8) and SMIC-VIS/NIR (4 subjects
each): 208 clips in their native layouts. Then runs ``merkit.workflows.extract.run_extract``
(read the databases, every clip -> 112x112 -> TIM 16 -> LBP-TOP R3P8 on 85 blocks, write
F.npz + F.csv), label scheme ``none`` so that every clip is described:

* serial, cold cache      * serial, warm cache
* ``--jobs`` workers, cold cache (a fresh cache folder)   * the same, warm

and prints clips per second and the ratios (parallel / serial, warm / cold). It also
checks that the parallel run gives byte-identical features.

    python benchmarks/extract.py [--jobs 2] [--descriptor lbp_top:r3p8] [--keep DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from merkit.data.synthetic import synthesize
from merkit.workflows.extract import run_extract

SIZE = {
    "preset": "default",
    "CASME2": {"subjects": 8, "clips": 10},
    "SMIC_HS": {"subjects": 8, "clips": 8},
    "SMIC_VIS": {"subjects": 4},
    "SMIC_NIR": {"subjects": 4},
}


def _run(data: Path, out: Path, cache: Path, descriptor: str, jobs: int) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    res = run_extract(
        data, out, descriptor=descriptor, scheme="none", n_jobs=jobs, cache=cache, progress=False
    )
    seconds = time.perf_counter() - t0
    n = sum(len(fs) for fs in res.features.values())
    return seconds, n, res.computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--descriptor", default="lbp_top:r3p8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = args.keep or Path(tempfile.mkdtemp(prefix="merkit-bench-extract-"))
    data = work / "data"
    try:
        t0 = time.perf_counter()
        if not data.is_dir():
            synthesize(data, seed=args.seed, size=SIZE)
        print(f"synthesised databases in {time.perf_counter() - t0:.1f} s: {data}")
        rows = []
        for label, jobs, cache in [
            ("serial, cold", 1, work / "cache-serial"),
            ("serial, warm", 1, work / "cache-serial"),
            (f"{args.jobs} jobs, cold", args.jobs, work / "cache-parallel"),
            (f"{args.jobs} jobs, warm", args.jobs, work / "cache-parallel"),
        ]:
            if label.endswith("cold"):
                shutil.rmtree(cache, ignore_errors=True)
            out = work / ("F-serial" if jobs == 1 else "F-parallel")
            seconds, n, computed = _run(data, out, cache, args.descriptor, jobs)
            rows.append((label, seconds, n, computed))
            print(f"{label:>16}: {n} clips ({computed} computed) in {seconds:6.2f} s = "
                  f"{n / seconds:7.1f} clips/s")  # fmt: skip
        with np.load(work / "F-serial.npz") as a, np.load(work / "F-parallel.npz") as b:
            same = a["X"].tobytes() == b["X"].tobytes()
        t = {label: s for label, s, _, _ in rows}
        cold_s, warm_s = t["serial, cold"], t["serial, warm"]
        cold_p, warm_p = t[f"{args.jobs} jobs, cold"], t[f"{args.jobs} jobs, warm"]
        print(f"parallel speed-up, cold cache ({args.jobs} jobs / serial): {cold_s / cold_p:.2f}x")
        print(f"warm / cold cache speed-up, serial: {cold_s / warm_s:.1f}x; "
              f"{args.jobs} jobs: {cold_p / warm_p:.1f}x")  # fmt: skip
        print(f"parallel features byte-identical to serial: {same}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
