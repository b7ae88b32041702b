"""CDE on the real MEGC 2019 flows: honest epoch choice, parallel folds, the result table.

The composite database evaluation (LOSO over the 68 subjects of SMIC-HS, CASME II and
SAMM; UF1 / UAR from the pooled predictions) of merkit's flow networks, on the STSTNet
authors' flow images (``../shared/data/megc2019_flow``). Three steps:

``select``
    Chooses the number of epochs without ever looking at a test subject. The 68
    subjects are dealt into ``--groups`` (4) groups, round robin within each database.
    For the test subjects of group g, the epoch count is chosen on the other groups
    only: a network is trained on every pair of groups and its predictions on each
    remaining group are recorded every ``--every`` epochs (:func:`merkit.nets.train.fit`
    ``epoch_end``); for g, the three pairs without g, each scored on the one remaining
    group without g, give pooled validation predictions of all non-g subjects, hence a
    pooled validation UF1 per epoch. Smoothed over three grid points, the chosen
    count is the fewest epochs within ``--tolerance`` (0.01) of the best (the curves
    are flat and noisy after the first tens of epochs; parsimony, as the 1-SE rule).
    Writes ``selection.json`` and ``curves.csv``.
``run``
    One ``merkit train`` run (:func:`merkit.workflows.train.run_train`) of the LOSO folds
    over ``--workers`` processes (1 torch thread each; batched networks: one process,
    ``--workers`` threads), with the leak audit. With ``--selection`` each fold trains its
    group's chosen epochs (``--fold-epochs``), so the run is one run: ``merkit ensemble``
    and ``merkit report`` read it like any other.
``table``
    Pools the fold files of one or more ``run`` folders and prints UF1 / UAR per seed and
    database, mean +- std over seeds, next to the published numbers, plus training time.

Usage::

    python benchmarks/cde.py select --model fr --max-epochs 100 --out /work/runs/cde/fr/select
    python benchmarks/cde.py run --model fr --seeds 0,1,2 --selection .../selection.json \\
        --workers 2 --out /work/runs/cde/fr
    python benchmarks/cde.py table /work/runs/cde/*/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from merkit.metrics import uar, uf1
from merkit.nets import create_model
from merkit.nets.data import make_loader, read_megc2019_flow
from merkit.nets.fold_batched import BATCHED
from merkit.nets.train import TrainConfig, fit, fold_seed, predict, torch_session
from merkit.protocols.composite import CDE
from merkit.protocols.splits import nested_group_rows, round_robin_groups
from merkit.workflows.train import preset_for, run_train

FLOW_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "megc2019_flow"

#: published CDE results (UF1, UAR): composite, SMIC-HS, CASME II, SAMM (MEGC 2019
#: summary and the FR paper, Tables 1, 6 and 13); STSTNet's published UAR 0.7605 is not
#: reproducible from its authors' log (see ../shared/data/README.md; true UAR 0.7186)
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "fr": {"composite": (0.7838, 0.7832), "SMIC_HS": (0.7011, 0.7083),
           "CASME2": (0.8915, 0.8873), "SAMM": (0.7372, 0.7155)},
    "ststnet": {"composite": (0.7353, 0.7605), "SMIC_HS": (0.6801, 0.7013),
                "CASME2": (0.8382, 0.8686), "SAMM": (0.6588, 0.6810)},
    "dual_inception": {"composite": (0.7322, 0.7278), "SMIC_HS": (0.6645, 0.6726),
                       "CASME2": (0.8621, 0.8560), "SAMM": (0.5868, 0.5663)},
    # FR paper Tables 1(a) and 6: composite only (interframe-Diff apex on SMIC-HS)
    "basic_inception": {"composite": (0.7360, 0.7391)},
    "off_apexnet": {"composite": (0.7196, 0.7096), "SMIC_HS": (0.6817, 0.6695),
                    "CASME2": (0.8764, 0.8681), "SAMM": (0.5409, 0.5392)},
}  # fmt: skip
TASKS = ("composite", "SMIC_HS", "CASME2", "SAMM")

log = logging.getLogger("cde")


# --------------------------------------------------------------------------- groups
def subject_groups(table: pd.DataFrame, k: int) -> dict[str, int]:
    """Subject -> group in 0..k-1: the subjects of each database, in CDE fold order,
    dealt round robin (:func:`merkit.protocols.splits.round_robin_groups`)."""
    return round_robin_groups(CDE.folds(table), k)


def _preset(
    model: str,
    epochs: int | None = None,
    preset: str | None = None,
    lr: float | None = None,
    class_weight: str | None = None,
):
    name = preset or preset_for(model, "cde")
    cfg = TrainConfig.preset(name, num_classes=CDE.num_classes)
    cfg = cfg if lr is None else replace(cfg, lr=float(lr))
    if class_weight is not None:
        cfg = replace(cfg, class_weight=None if class_weight == "none" else class_weight)
    return cfg if epochs is None else replace(cfg, epochs=int(epochs))


# --------------------------------------------------------------------------- select
def _pair_curve(model: str, pair: tuple[int, int], k: int, max_epochs: int, every: int,
                seed: int, flows: str, scale: float = 1.0, init: str = "torch",
                preset: str | None = None, lr: float | None = None,
                class_weight: str | None = None) -> pd.DataFrame:  # fmt: skip
    """Train on the subjects of two groups; predict the others every ``every`` epochs."""
    data = read_megc2019_flow(flows, channels="uvs", scale=scale)  # merkit train: scale 1
    groups = subject_groups(data.table, k)
    g = data.table["subject"].map(groups).to_numpy()
    tr = np.flatnonzero(np.isin(g, pair))
    va = np.flatnonzero(~np.isin(g, pair))
    cfg = replace(_preset(model, max_epochs, preset, lr, class_weight), seed=seed)
    fs = fold_seed(seed, 1000 + 10 * pair[0] + pair[1])
    with torch_session(fs, cfg.threads, cfg.deterministic):
        net = create_model(model, num_classes=cfg.num_classes)
        if init == "glorot":  # Keras' defaults (a diagnostic): Glorot-uniform weights, zero bias
            for m in net.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                    torch.nn.init.xavier_uniform_(m.weight)
                    torch.nn.init.zeros_(m.bias)
    val_loader = make_loader(data.X[va], batch_size=256)
    rows = []

    def record(epoch: int, m: torch.nn.Module) -> None:
        if epoch % every == 0:
            y_pred, _ = predict(m, val_loader)
            rows.append(pd.DataFrame({"epoch": epoch, "sample": va, "group": g[va],
                                      "y_true": data.y[va], "y_pred": y_pred}))  # fmt: skip

    t0 = time.perf_counter()
    loader = make_loader(data.X[tr], data.y[tr], batch_size=cfg.batch_size, shuffle=True,
                         seed=fs)  # fmt: skip
    fit(net, loader, cfg, epoch_end=record)
    log.info("%s pair %s: %d train, %.0f s", model, pair, len(tr), time.perf_counter() - t0)
    out = pd.concat(rows, ignore_index=True)
    return out.assign(pair=f"{pair[0]}{pair[1]}", n_train=len(tr))


def select(args: argparse.Namespace) -> dict:
    """Per group: the epoch count maximising the pooled validation UF1 on the other groups."""
    k = int(args.groups)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    pairs = list(combinations(range(k), 2))
    if args.only_group is not None:  # a diagnostic: the pairs that choose for one group
        pairs = [p for p in pairs if args.only_group not in p]
    if args.reuse and (out / "curves.csv").is_file():  # re-derive the choice only
        curves = pd.read_csv(out / "curves.csv", dtype={"pair": str})
    else:
        curves = Parallel(n_jobs=args.workers)(
            delayed(_pair_curve)(args.model, p, k, args.max_epochs, args.every, args.seed,
                                 str(args.flows), args.scale, args.init, args.preset, args.lr,
                                 args.class_weight)
            for p in pairs)  # fmt: skip
        curves = pd.concat(curves, ignore_index=True)
        curves.to_csv(out / "curves.csv", index=False)
    epochs = sorted(curves["epoch"].unique())
    chosen, table = {}, []
    for test_group in range(k) if args.only_group is None else [args.only_group]:
        # pairs without the test group, each scored on the remaining non-test group
        names = ["pair/" + "-".join(str(p)) for p in curves["pair"]]  # "01" -> "pair/0-1"
        sel = curves[nested_group_rows(names, curves["group"], test_group)]
        scores = np.array([uf1(d["y_true"], d["y_pred"], labels=[0, 1, 2])
                           for _, d in sel.groupby("epoch", sort=True)])  # fmt: skip
        smooth = np.convolve(np.pad(scores, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        # parsimony: the fewest epochs within `tolerance` of the best smoothed score
        best = int(np.flatnonzero(smooth >= smooth.max() - args.tolerance)[0])
        chosen[str(test_group)] = int(epochs[best])
        table.append(
            {
                "group": test_group,
                **{f"e{e}": round(float(s), 4) for e, s in zip(epochs, scores, strict=True)},
            }
        )
    groups = subject_groups(_read(args.flows).table, k)
    sel_info = {
        "model": args.model, "groups": k, "max_epochs": args.max_epochs, "every": args.every,
        "seed": args.seed, "tolerance": args.tolerance, "scale": args.scale,
        "init": args.init, "preset": args.preset, "lr": args.lr,
        "class_weight": args.class_weight,
        "chosen_epochs": chosen,
        "subject_group": groups,
        # what `merkit train --fold-epochs selection.json` reads: each fold's epochs (with
        # --only-group the other groups' folds have none, and merkit train says so)
        "fold_epochs": {subj: chosen[str(g)] for subj, g in groups.items() if str(g) in chosen},
        "seconds": round(time.perf_counter() - t0, 1),
        "n_train_per_pair": sorted(set(curves["n_train"].tolist())),
    }  # fmt: skip
    (out / "selection.json").write_text(json.dumps(sel_info, indent=1) + "\n")
    print(pd.DataFrame(table).set_index("group").to_string())
    print(f"chosen epochs per test group: {chosen}  ({sel_info['seconds']:.0f} s)")
    return sel_info


def _read(flows):
    return read_megc2019_flow(flows, channels="uvs")


# --------------------------------------------------------------------------- run
def fold_epochs_of(selection: str | Path, model: str, chosen_for: tuple) -> dict[str, int]:
    """Each CDE fold's epochs from a ``selection.json`` of :func:`select` (its test
    subject's group's choice), refusing a selection made for another model or setting."""
    sel = json.loads(Path(selection).read_text())
    if sel["model"] != model:
        raise SystemExit(f"{selection} selected epochs for {sel['model']}")
    made_for = (sel.get("preset"), sel.get("lr"), sel.get("class_weight"))
    if made_for != chosen_for:
        raise SystemExit(f"{selection} selected epochs for preset, lr, class weight "
                         f"{made_for}, not {chosen_for}")  # fmt: skip
    return {s: int(sel["chosen_epochs"][str(g)]) for s, g in sel["subject_group"].items()}


def run(args: argparse.Namespace) -> None:
    """One ``merkit train`` run: folds in ``--workers`` processes (or batched with
    ``--workers`` threads), each fold with its group's chosen epochs (``--fold-epochs``),
    the leak audit recorded every epoch; resumes from the folds already stored."""
    seeds = [int(s) for s in str(args.seeds).split(",")]
    fold_epochs = None
    if args.selection:
        fold_epochs = fold_epochs_of(args.selection, args.model,
                                     (args.preset, args.lr, args.class_weight))  # fmt: skip
    batched = args.fold_batching != "off" and args.model in BATCHED
    t0 = time.perf_counter()
    res = run_train(args.out, protocol="cde", model=args.model, flows_dir=args.flows,
                    epochs=None if fold_epochs else args.epochs, fold_epochs=fold_epochs,
                    seeds=seeds, folds=args.folds, preset=args.preset, lr=args.lr,
                    class_weight=args.class_weight, fold_batching=args.fold_batching,
                    threads=args.workers if batched else None,
                    n_jobs=1 if batched else args.workers, progress=True)  # fmt: skip
    wall = time.perf_counter() - t0
    print(f"{args.model}: run {res.run_dir}, {res.folds_done} folds trained, "
          f"{res.folds_cached} from cache, {args.workers} workers, wall {wall:.0f} s")  # fmt: skip


# --------------------------------------------------------------------------- table
def pooled_folds(folder: Path) -> pd.DataFrame:
    """Every fold file under ``folder/folds/<run>/seed<s>/`` with its run, one row per test
    sample and seed (a sample twice for one seed is an error)."""
    parts = []
    for f in sorted(Path(folder).glob("folds/*/seed*/*.csv")):
        if f.name.endswith(".history.csv"):
            continue
        d = pd.read_csv(f, dtype={"fold": str, "subject": str, "clip": str},
                        keep_default_na=False)  # fmt: skip
        parts.append(d.assign(run=f.parent.parent.name))
    if not parts:
        return pd.DataFrame()
    df = pd.concat(parts, ignore_index=True)
    dup = df.duplicated(["seed", "sample"])
    if dup.any():
        raise ValueError(f"{folder}: {int(dup.sum())} samples predicted twice for a seed "
                         "(several runs hold the same folds; keep one)")  # fmt: skip
    return df


def score_folder(folder: Path, table: pd.DataFrame) -> pd.DataFrame:
    """UF1 / UAR per (seed, task) from the pooled fold files (complete seeds only)."""
    df = pooled_folds(folder)
    rows = []
    if df.empty:
        return pd.DataFrame()
    dataset = table["dataset"].astype(str).to_numpy()
    for seed, d in df.groupby("seed"):
        n_folds = d["fold"].nunique()
        db = dataset[d["sample"].to_numpy()]
        for task in TASKS:
            m = np.ones(len(d), bool) if task == "composite" else db == task
            if not m.any():  # a partial seed without this database's folds yet
                continue
            yt, yp = d["y_true"].to_numpy()[m], d["y_pred"].to_numpy()[m]
            rows.append({
                "seed": int(seed), "task": task, "folds": n_folds, "n": int(m.sum()),
                "uf1": uf1(yt, yp, labels=[0, 1, 2]), "uar": uar(yt, yp, labels=[0, 1, 2]),
                "fold_seconds": float(d.groupby("fold")["seconds"].first().mean()),
                "runs": ",".join(sorted(d["run"].unique())),
            })  # fmt: skip
    return pd.DataFrame(rows)


def table_cmd(args: argparse.Namespace) -> None:
    data = _read(args.flows)
    lines = []
    for folder in args.folders:
        folder = Path(folder)
        model = json.loads((folder / "run.json").read_text())["model"]
        sc = score_folder(folder, data.table)
        if sc.empty:
            continue
        complete = sc[sc["folds"] == 68]
        for task in TASKS:
            s = complete[complete["task"] == task]
            pub = PUBLISHED.get(model, {}).get(task)
            per_seed = " ".join(f"{r.uf1:.4f}/{r.uar:.4f}" for r in s.itertuples())
            lines.append({
                "model": model, "task": task, "seeds": len(s),
                "uf1": s["uf1"].mean(), "uf1_std": s["uf1"].std(ddof=1) if len(s) > 1 else 0.0,
                "uar": s["uar"].mean(), "uar_std": s["uar"].std(ddof=1) if len(s) > 1 else 0.0,
                "published": "" if pub is None else f"{pub[0]:.4f}/{pub[1]:.4f}",
                "per_seed": per_seed,
            })  # fmt: skip
        part = sc[sc["folds"] < 68]
        if not part.empty:
            print(f"{folder}: incomplete seeds {sorted(part['seed'].unique())} "
                  f"({part.groupby('seed')['folds'].first().to_dict()} folds)")  # fmt: skip
        t = sc[sc["task"] == "composite"]
        print(f"{folder}: mean seconds per fold {t['fold_seconds'].mean():.1f}")
    out = pd.DataFrame(lines)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(out.round(4).to_string(index=False))


def _training_options(parser: argparse.ArgumentParser) -> None:
    """The training settings shared by ``select`` and ``run`` (a selection is only valid for
    the settings it was made with)."""
    parser.add_argument("--preset", default=None, help="training preset (default: the model's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: preset's)")
    parser.add_argument(
        "--class-weight",
        choices=("none", "balanced"),
        default=None,
        help="loss weights per class (default: the preset's)",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=Path, default=FLOW_ROOT)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("select", help="choose epochs on training subjects only")
    s.add_argument("--model", required=True)
    s.add_argument("--max-epochs", type=int, default=100)
    s.add_argument("--every", type=int, default=5)
    s.add_argument("--groups", type=int, default=4)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument(
        "--tolerance",
        type=float,
        default=0.01,
        help="fewest epochs whose smoothed validation UF1 is this close to the best",
    )
    s.add_argument("--scale", type=float, default=1.0, help="input multiplier (merkit train: 1)")
    s.add_argument(
        "--init",
        choices=("torch", "glorot"),
        default="torch",
        help="diagnostic: Keras' Glorot-uniform initialisation",
    )
    _training_options(s)
    s.add_argument("--only-group", type=int, default=None, help="diagnostic: one group's curve")
    s.add_argument("--reuse", action="store_true", help="re-derive from an existing curves.csv")
    s.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run", help="LOSO folds in parallel processes (merkit train cache)")
    r.add_argument("--model", required=True)
    r.add_argument("--seeds", default="0")
    r.add_argument("--epochs", type=int, default=None, help="default: the model's preset")
    r.add_argument("--selection", type=Path, default=None, help="selection.json of `select`")
    r.add_argument("--workers", type=int, default=2)
    r.add_argument("--folds", type=int, default=None, help="only k folds (a quick check)")
    r.add_argument(
        "--fold-batching",
        default="auto",
        choices=("auto", "on", "off"),
        help="auto/on: the folds of a seed as one computation where the network has that "
        "path (STSTNet), with --workers torch threads; off: folds in --workers processes",
    )
    _training_options(r)
    r.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table", help="UF1 / UAR per seed and database vs published")
    t.add_argument("folders", nargs="+", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not args.flows.is_dir():
        raise SystemExit(f"{args.flows} does not exist (the MEGC 2019 flow folder)")
    {"select": select, "run": run, "table": table_cmd}[args.cmd](args)


if __name__ == "__main__":
    main()
