"""Peak memory and training speed of ``merkit train`` on clip volumes (#18, data at scale).

* Peak memory: ``merkit train --protocol kfold --model r3d`` on synthetic DFME databases of
  two sizes (``--subjects 10,40`` people x ``--clips 6`` clips: 60 and 240 clips), each
  run in a fresh process whose peak resident set size (``ru_maxrss`` of the largest
  process, DataLoader workers included) is read with ``getrusage(RUSAGE_CHILDREN)``.
  Every size is run twice: ``cold`` (empty input cache: the clip volumes are computed,
  cached, then trained on) and ``warm`` (cache filled: read, then trained on). Clips are
  16 x 112 x 112 (the default ``CLIP_PARAMS``, no face alignment: the synthetic faces fill
  the frame); R3D at ``width=4`` with batch 16, one epoch of the first of 5 folds, so
  that the run's own memory (activations) stays small and what the inputs take shows.
* Speed: training samples per second of :func:`merkit.nets.train.fit` (one epoch after a
  warm-up epoch, wall clock, 1 torch thread): FR on 256 in-memory 28 x 28 flow images
  (its path is the same before and after), R3D on 48 cached clips of the small database
  held in memory, and (after) read from disk with 0 and 2 loader workers.

``--before REV`` measures the code of a git revision too (``git archive REV src`` into
the work folder, run with ``PYTHONPATH`` pointing at it), e.g. the commit before the
lazy inputs. The machine may be shared: the load average is printed with the numbers.

Usage: ``python benchmarks/lazy_memory.py [--work DIR] [--before REV] [--subjects 10,40]
[--clips 6] [--workers 0] [--skip-memory] [--skip-speed] [--result result.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: runs a command in a child and prints the child's peak RSS (kB), its exit code and seconds
_WRAP = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "with open(sys.argv[1], 'w') as log:\n"
    "    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc, "
    "time.perf_counter() - t)\n"
)


def peak_rss(cmd: list[str], src: Path, log: Path) -> tuple[float, float]:
    """Peak RSS (MB) and seconds of ``cmd`` run with ``merkit`` imported from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", _WRAP, str(log), *cmd], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    kb, rc, seconds = out.stdout.split()
    if int(rc) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {rc}); see {log}")
    return int(kb) / 1024, float(seconds)


def database(work: Path, subjects: int, clips: int) -> tuple[Path, int]:
    """A synthetic DFME database of ``subjects`` x ``clips`` (written once) and its clips."""
    from merkit.data.synthetic import synthesize

    root = work / f"dfme-{subjects}x{clips}"
    marker = root / "clips.json"
    if not marker.is_file():
        got = synthesize(root, seed=0, databases=("DFME",), overwrite=True,
                         size={"preset": "default", "DFME": {"subjects": subjects,
                                                             "clips": clips}})  # fmt: skip
        marker.write_text(json.dumps({"clips": got["databases"]["DFME"]["clips"]}))
    return root, int(json.loads(marker.read_text())["clips"])


def train_command(data: Path, cache: Path, out: Path, workers: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "merkit.cli", "train", "--protocol", "kfold", "--model", "r3d",
           "--task", "DFME-7", "--data", str(data), "--n-folds", "5", "--folds", "1",
           "--epochs", "1", "--batch-size", "16", "--model-arg", "width=4", "--no-align",
           "--no-fold-weights", "--cache", str(cache), "--out", str(out)]  # fmt: skip
    return cmd + (["--workers", str(workers)] if workers else [])


def memory(work: Path, sources: dict[str, Path], sizes: list[tuple[Path, int]], workers: int):
    rows = []
    for label, src in sources.items():
        for data, n in sizes:
            cache = work / f"cache-{label}-{n}"
            shutil.rmtree(cache, ignore_errors=True)
            for phase in ("cold", "warm"):
                out = work / f"out-{label}-{n}"
                shutil.rmtree(out, ignore_errors=True)  # no fold resumed from an earlier run
                cmd = train_command(data, cache, out, workers if label != "before" else None)
                mb, seconds = peak_rss(cmd, src, work / f"log-{label}-{n}-{phase}.txt")
                run = json.loads((out / "run.json").read_text())
                rows.append({"code": label, "clips": n, "phase": phase, "peak_mb": round(mb),
                             "seconds": round(seconds, 1), "data": run["data"]["DFME-7"],
                             "load": round(os.getloadavg()[0], 2)})  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
    return rows


# --------------------------------------------------------------------------- speed (child)
def _speed_child(cache: Path, n_clips: int) -> None:
    """Runs in a child with the code under test on PYTHONPATH; prints one JSON line."""
    import numpy as np
    import torch

    from merkit.nets import create_model
    from merkit.nets import data as nd
    from merkit.nets.train import TrainConfig, fit

    def rate(name: str, X, y, cfg: TrainConfig, kwargs: dict, **loader) -> float:
        torch.manual_seed(0)
        model = create_model(name, num_classes=7, **kwargs)
        for _ in range(2):  # a warm-up epoch, then the timed one (allocator, oneDNN kernels)
            batches = nd.make_loader(X, y, batch_size=cfg.batch_size, shuffle=True, seed=0,
                                     **loader)  # fmt: skip
            t = time.perf_counter()
            fit(model, batches, cfg)
        return len(y) * cfg.epochs / (time.perf_counter() - t)

    got: dict = {"load_start": round(os.getloadavg()[0], 2)}
    rng = np.random.default_rng(0)
    flows = rng.integers(0, 256, (256, 3, 28, 28)).astype(np.float32)
    fr_cfg = TrainConfig.preset("fr_cdmer", epochs=1, num_classes=7)
    got["fr"] = rate("fr", flows, rng.integers(0, 7, 256), fr_cfg, {})
    paths = sorted((cache / "clips").glob("*.npy"))[:n_clips]
    y = rng.integers(0, 7, len(paths))
    clips = np.stack([np.load(p) for p in paths])
    cfg = TrainConfig.preset("fr_cdmer", epochs=1, batch_size=16, num_classes=7)
    kwargs = {"in_channels": 1, "width": 4}
    got["r3d_memory"] = rate("r3d", clips, y, cfg, kwargs)
    if hasattr(nd, "ClipArray"):
        lazy = nd.ClipArray(paths, clips.shape[1:])
        del clips
        for w in (0, 2):
            got[f"r3d_disk_w{w}"] = rate("r3d", lazy, y, cfg, kwargs, workers=w)
    got["load_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps({k: round(v, 2) for k, v in got.items()}))


def speed(work: Path, sources: dict[str, Path], cache: Path, n_clips: int) -> list[dict]:
    rows = []
    for label, src in sources.items():
        env = {**os.environ, "PYTHONPATH": str(src)}
        out = subprocess.run([sys.executable, __file__, "--speed-child", str(cache),
                              "--clips-speed", str(n_clips)], env=env, capture_output=True,
                             text=True, check=True)  # fmt: skip
        rows.append({"code": label, **json.loads(out.stdout.strip().splitlines()[-1])})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/merkit-lazy-bench"))
    ap.add_argument("--before", help="git revision to measure as 'before' (optional)")
    ap.add_argument("--subjects", default="10,40", help="DFME people of the two databases")
    ap.add_argument("--clips", type=int, default=6, help="clips per person")
    ap.add_argument("--workers", type=int, default=0, help="--workers of the 'after' runs")
    ap.add_argument("--clips-speed", type=int, default=48, help="clips of the R3D speed runs")
    ap.add_argument("--speed-child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--result", default="result.json", help="file name in --work")
    args = ap.parse_args()
    if args.speed_child is not None:
        _speed_child(args.speed_child, args.clips_speed)
        return
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    sources: dict[str, Path] = {}
    if args.before:
        old = work / f"src-{args.before}"
        if not old.is_dir():
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(REPO), "archive", args.before, "src"],
                                     capture_output=True, check=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        sources["before"] = old / "src"
    sources["after"] = REPO / "src"
    sizes = [database(work, int(s), args.clips) for s in args.subjects.split(",")]
    print(f"databases: {[n for _, n in sizes]} clips; cores {os.cpu_count()}, load "
          f"{os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    result: dict = {"sizes": [n for _, n in sizes]}
    if not args.skip_memory:
        result["memory"] = memory(work, sources, sizes, args.workers)
    small = work / f"cache-after-{sizes[0][1]}"
    if not args.skip_speed and not (small / "clips").is_dir():  # the speed runs read it
        cmd = train_command(sizes[0][0], small, work / "out-speed", None)
        subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(sources["after"])},
                       capture_output=True, check=True)  # fmt: skip
    if not args.skip_speed:
        result["speed"] = speed(work, sources, small, args.clips_speed)
    (work / args.result).write_text(json.dumps(result, indent=1))
    print(f"written {work / args.result}")


if __name__ == "__main__":
    main()
