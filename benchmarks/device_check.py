"""A GPU check anyone can run (issue #18): STSTNet on the MEGC 2019 composite flows, a few
CDE folds, trained on the CPU and on the requested device in one run.

Prints both runs' composite UF1 / UAR over the folds trained, their wall times and the
speed ratio. Both runs train fold by fold (``--fold-batching off``: the CPU's fold-batched
kernel has no GPU counterpart, so the per-fold path is what the two devices share) with
the same seed, so their predictions differ only by the devices' arithmetic (on CUDA,
mostly the order of floating-point sums; docs/devices.md). Usage::

    python benchmarks/device_check.py [--device auto] [--folds 4] [--epochs 100]
        [--flows ../shared/data/megc2019_flow] [--seed 0] [--threads 2]
        [--precision 32|16-mixed|bf16-mixed]

Without the flow folder it says where it looked and exits (status 0).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from merkit.nets.device import resolve_device
from merkit.workflows.train import run_train

FLOW_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019_flow"


def _run(out: Path, args: argparse.Namespace, device: str, precision: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    res = run_train(out, protocol="cde", model="ststnet", flows_dir=args.flows,
                    epochs=args.epochs, seeds=[args.seed], folds=args.folds, threads=args.threads,
                    fold_batching="off", fold_weights=False, device=device, precision=precision,
                    progress=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    composite = res.results[res.results["task"] == "composite"]
    row = (composite if len(composite) else res.results).iloc[0]
    return {"uf1": float(row["mean_f1"]), "uar": float(row["uar"])}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or mps")
    parser.add_argument("--precision", default="32", help="on the device: 32, 16-mixed, "
                        "bf16-mixed (the CPU run is float32)")  # fmt: skip
    parser.add_argument("--folds", type=int, default=4, help="CDE folds (round robin)")
    parser.add_argument("--epochs", type=int, default=100, help="STSTNet epochs (preset: 800)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the CPU run")
    parser.add_argument("--flows", type=Path, default=FLOW_ROOT, help="MEGC 2019 flow folder")
    args = parser.parse_args()
    if not args.flows.is_dir():
        print(f"no MEGC 2019 flow folder at {args.flows}: give --flows (skipped)")
        return
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"torch threads {args.threads}, {args.folds} CDE folds, {args.epochs} epochs, "
          f"seed {args.seed}; device {device} ({args.precision})")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cpu, cpu_s = _run(Path(tmp) / "cpu", args, "cpu", "32")
        print(f"cpu      UF1 {cpu['uf1']:.4f}  UAR {cpu['uar']:.4f}  {cpu_s:8.1f} s")
        if device.type == "cpu":
            print("the requested device is the CPU: nothing to compare (use --device cuda)")
            return
        dev, dev_s = _run(Path(tmp) / "dev", args, str(device), args.precision)
        print(f"{device.type:<8s} UF1 {dev['uf1']:.4f}  UAR {dev['uar']:.4f}  {dev_s:8.1f} s")
    print(f"UF1 difference {dev['uf1'] - cpu['uf1']:+.4f}; {device} is "
          f"{cpu_s / dev_s:.2f}x the CPU's speed")  # fmt: skip


if __name__ == "__main__":
    main()
