"""Training recipes for the CDE flow networks, compared on training subjects only.

Issue #20 item 4: a change of the training recipe (label smoothing, a weight average,
cosine decay, class-balanced loss, a longer schedule) is kept only if it helps on
validation subjects that are never a test subject of the fold it is used for.

The 68 CDE subjects are dealt into 4 groups (:func:`merkit.protocols.splits
.round_robin_groups`); each recipe trains on every pair of groups and predicts the two
other groups (:func:`merkit.protocols.splits.group_pair_splits`: 6 splits, 199-243
training clips each). For the test subjects of group g only the 3 pairs without g count,
each scored on its remaining non-g group (:func:`merkit.protocols.splits
.nested_group_rows`): so the recipe chosen for g's LOSO folds never saw g. The six splits
of a (recipe, seed) train as one fold-batched computation where the network has that
path (STSTNet), with the LOSO run's shared batch (``protocol_folds=68``), so a split
takes as many optimiser steps per epoch as a LOSO fold (2 for STSTNet; about 130 rows a
step instead of 256).

``run`` writes one prediction file per (recipe, seed) (resumable: done files are kept;
a killed batched run resumes from its checkpoint); ``table`` prints, per recipe, the
pooled validation UF1 / UAR over all splits (mean over seeds) and the nested UF1 for
each test group, and the recipe each group would choose.

Usage::

    python benchmarks/cde_recipes.py run --model ststnet --seeds 0,1,2 \\
        --out /work/runs/recipes/ststnet
    python benchmarks/cde_recipes.py table /work/runs/recipes/ststnet
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.metrics import uar, uf1
from merkit.nets.data import read_megc2019_flow
from merkit.nets.fold_batched import FoldSpec, train_folds
from merkit.nets.train import TrainConfig
from merkit.protocols.composite import CDE
from merkit.protocols.splits import group_pair_splits, nested_group_rows, round_robin_groups
from merkit.workflows.train import preset_for

FLOW_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019_flow"

#: recipe -> TrainConfig overrides of the network's CDE preset (STSTNet: Adam 5e-5, batch
#: 256, 800 epochs). Fixed before any run; the EMA decay is per step (2 steps per epoch:
#: 0.998 averages over about the last 250 epochs).
RECIPES: dict[str, dict] = {
    "base": {},
    "smooth": {"label_smoothing": 0.1},
    "ema": {"ema_decay": 0.998},
    "cosine": {"scheduler": "cosine", "lr": 1e-4},
    "balanced": {"class_weight": "balanced"},
    "long": {"scheduler": "cosine", "lr": 1e-4, "epochs": 1600},
    "combo": {"label_smoothing": 0.1, "ema_decay": 0.998, "scheduler": "cosine", "lr": 1e-4},
    # class-balanced sampling trains fold by fold (the folds cannot share one permutation)
    "sampled": {"sampler": "balanced"},
}
GROUPS = 4
LABELS = [0, 1, 2]

log = logging.getLogger("cde_recipes")


def recipe_config(model: str, recipe: str, seed: int) -> TrainConfig:
    """The network's CDE preset with the recipe's overrides."""
    if recipe not in RECIPES:
        raise SystemExit(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
    cfg = TrainConfig.preset(preset_for(model, "cde"), num_classes=CDE.num_classes, seed=seed)
    return replace(cfg, **RECIPES[recipe])


def run_one(model: str, recipe: str, seed: int, flows: Path, out: Path, threads: int) -> Path:
    """Train the 6 pair splits of one (recipe, seed); write their validation predictions."""
    target = out / f"{recipe}-seed{seed}.csv"
    if target.is_file():
        log.info("%s seed %d: done already (%s)", recipe, seed, target)
        return target
    data = read_megc2019_flow(flows, channels="uvs")
    groups = round_robin_groups(CDE.folds(data.table), GROUPS)
    splits = group_pair_splits(data.table, groups)
    folds = [FoldSpec(s.train_idx, s.test_idx, 1000 + i) for i, s in enumerate(splits)]
    cfg = replace(recipe_config(model, recipe, seed), threads=threads)
    t0 = time.perf_counter()
    results = train_folds(model, data.X, data.y, folds, cfg, seed=seed, protocol_folds=68,
                          checkpoint=out / "checkpoints" / f"{recipe}-seed{seed}.pt")  # fmt: skip
    seconds = time.perf_counter() - t0
    group_of = data.table["subject"].astype(str).map(groups).to_numpy()
    rows = []
    for split, res in zip(splits, results, strict=True):
        te = split.test_idx
        frame = pd.DataFrame({"recipe": recipe, "seed": seed, "split": split.name,
                              "sample": te, "group": group_of[te], "y_true": data.y[te],
                              "y_pred": res.y_pred})  # fmt: skip
        for c in range(res.probs.shape[1]):
            frame[f"p{c}"] = res.probs[:, c]
        rows.append(frame)
    table = pd.concat(rows, ignore_index=True).assign(seconds=round(seconds, 1))
    out.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    table.to_csv(tmp, index=False)
    os.replace(tmp, target)
    log.info("%s seed %d: %.0f s", recipe, seed, seconds)
    return target


def scores(pred: pd.DataFrame) -> pd.DataFrame:
    """Per (recipe, seed): pooled UF1 / UAR over all splits and the nested UF1 of each group."""
    out = []
    for (recipe, seed), d in pred.groupby(["recipe", "seed"], sort=False):
        row = {"recipe": recipe, "seed": seed,
               "uf1": uf1(d["y_true"], d["y_pred"], labels=LABELS),
               "uar": uar(d["y_true"], d["y_pred"], labels=LABELS),
               "minutes": d["seconds"].iloc[0] / 60}  # fmt: skip
        for g in range(GROUPS):
            keep = nested_group_rows(d["split"], d["group"], g)
            row[f"g{g}"] = uf1(d["y_true"][keep], d["y_pred"][keep], labels=LABELS)
        out.append(row)
    return pd.DataFrame(out)


def choose(per_seed: pd.DataFrame) -> dict[int, str]:
    """Per test group: the recipe with the largest mean nested UF1 (ties: the earlier in
    :data:`RECIPES`, so ``base`` wins a tie)."""
    order = [r for r in RECIPES if r in set(per_seed["recipe"])]
    means = per_seed.groupby("recipe")[[f"g{g}" for g in range(GROUPS)]].mean().loc[order]
    return {g: str(means[f"g{g}"].idxmax()) for g in range(GROUPS)}


def table_cmd(args: argparse.Namespace) -> None:
    files = sorted(Path(args.folder).glob("*-seed*.csv"))
    if not files:
        raise SystemExit(f"{args.folder}: no prediction files (run `run` first)")
    per_seed = scores(pd.concat([pd.read_csv(f) for f in files], ignore_index=True))
    cols = ["uf1", "uar", *(f"g{g}" for g in range(GROUPS)), "minutes"]
    agg = per_seed.groupby("recipe")[cols].agg(["mean", "std"])
    order = [r for r in RECIPES if r in agg.index]
    show = pd.DataFrame(index=order)
    show["seeds"] = per_seed.groupby("recipe")["seed"].nunique().loc[order]
    for c in cols:
        show[c] = [f"{m:.4f} +- {s:.4f}" if np.isfinite(s) else f"{m:.4f}"
                   for m, s in zip(agg[(c, "mean")].loc[order], agg[(c, "std")].loc[order],
                                   strict=True)]  # fmt: skip
    print(show.to_string())
    chosen = choose(per_seed)
    print("recipe chosen per test group (nested validation UF1, mean over seeds):", chosen)
    (Path(args.folder) / "choice.json").write_text(
        json.dumps({"chosen": {str(g): r for g, r in chosen.items()}, "recipes": RECIPES}, indent=1)
        + "\n"
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train the recipes on the pair splits")
    r.add_argument("--model", default="ststnet")
    r.add_argument("--recipes", default=",".join(RECIPES))
    r.add_argument("--seeds", default="0,1,2")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--flows", type=Path, default=FLOW_ROOT)
    r.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table", help="score the prediction files")
    t.add_argument("folder")
    args = ap.parse_args()
    if args.cmd == "table":
        table_cmd(args)
        return
    if not args.flows.is_dir():
        raise SystemExit(f"{args.flows}: the MEGC 2019 flow folder is not there")
    recipes = [s.strip() for s in args.recipes.split(",") if s.strip()]
    for name in recipes:
        recipe_config(args.model, name, 0)  # unknown names: one line before any work
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):  # a whole seed first: usable early
        for name in recipes:
            run_one(args.model, name, seed, args.flows, args.out, args.threads)


if __name__ == "__main__":
    main()
