"""Measured cost per cell of a study, without its datasets: the real CLI on synthetic data.

    python benchmarks/cell_cost.py --study table5 --threads 1
    python benchmarks/cell_cost.py --study agents --threads 1 --check   # against finished cells

A cell's cost depends on its algorithm, task, critic (decentralized or centralized) and the
settings that change the work of an update (tau < 1, actor updates, sampler, sizes); its tier
and seed change only how many updates it runs. For each such kind of cell of the study, the
cell's committed config (with the cell's overrides) is built through the real ``omar``
LightningCLI and trained for ``--updates`` updates under the Trainer with the config's own
callbacks, on a synthetic dataset with the task's shapes and the config's size (the values of
the data do not change the cost). Timed: setup (loading the dataset, building the model and the
Trainer) up to the first update; the mean update; the mean evaluation (``data.eval_episodes``
episodes in the real environment) and checkpoint, each from the updates followed by one; the
final validation. The cell's cost is then

    startup + setup + U * update + floor((U - 1) / P) * evaluation + floor((U - 1) / C) * checkpoint + final

with U the config's ``max_updates``, P its evaluation period and C its checkpoint period, and
startup the interpreter's import time (measured once). ``--check`` prints the same projection
beside the recorded ``wall_seconds`` of finished cells under ``results/`` that ran with the same
``--threads``. Prints a table and one JSON line per kind ({"study", "kind", "update_ms", ...,
"cells": [{"cell", "projected_s"}]}).
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from pytorch_lightning import Callback

from train_step import synthetic_file  # benchmarks/ is the script's directory

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omar_lightning.cli import OMARCLI  # noqa: E402
from omar_lightning.datamodules import OfflineDataModule  # noqa: E402
from omar_lightning.base import OfflineAlgorithm  # noqa: E402
from omar_lightning.reproduce.runner import cell_config  # noqa: E402
from omar_lightning.reproduce.studies import STUDIES, Cell  # noqa: E402
from omar_lightning.reproduce.summary import read_summary  # noqa: E402


def _callback(config: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((cb for cb in config["trainer"].get("callbacks") or [] if cb.get("class_path", "").endswith(name)), None)


def kind(config: dict[str, Any]) -> tuple:
    """What decides the cost of one update and one evaluation of a config."""
    model = config["model"]["init_args"]
    data = config["data"]
    refinement = model.get("refinement") or {}
    return (
        config["model"]["class_path"].rsplit(".", 1)[-1],
        data["task"],
        "centralized" if model.get("centralized") else "decentralized",
        "tau<1" if float(model.get("tau", 1.0)) < 1.0 else "tau=1",
        f"actor_updates={model.get('actor_updates', 1)}",
        f"sampler={refinement.get('sampler', '-')}",
        f"hidden={model.get('hidden_dim')}",
        f"batch={data.get('batch_size')}",
        f"transitions={data.get('num_transitions')}",
        f"eval_episodes={data.get('eval_episodes')}",
        json.dumps(data.get("env_kwargs") or {}, sort_keys=True),
    )


class PhaseTimer(Callback):
    """Time stamps at the start of every update: interval k holds update k and what followed it."""

    def __init__(self) -> None:
        self.starts: list[tuple[int, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.starts.append((int(pl_module.updates), time.perf_counter()))

    def on_train_end(self, trainer, pl_module) -> None:
        self.starts.append((int(pl_module.updates), time.perf_counter()))


def measure(config: dict[str, Any], synthetic: Path, args, work: Path) -> dict[str, float]:
    """Train the config for ``args.updates`` updates on ``synthetic``; the phases' mean costs."""
    torch.set_num_threads(args.threads)  # runs in a spawned process: the parent's setting is not inherited
    config = copy.deepcopy(config)
    model, data = config["model"]["init_args"], config["data"]
    model["max_updates"] = args.updates
    data["path"], data["generate"] = str(synthetic), False
    evaluation, checkpoint = _callback(config, "EnvEvaluation"), _callback(config, "UpdateCheckpoint")
    period = min(int(evaluation["init_args"].get("every_n_updates", 10)), args.eval_every)
    evaluation["init_args"]["every_n_updates"] = period
    evaluation["init_args"]["verbose"] = False
    checkpoint["init_args"]["every_n_updates"] = args.checkpoint_every
    checkpoint["init_args"]["dirpath"] = str(work / "checkpoints")
    config["trainer"]["default_root_dir"] = str(work)
    config["trainer"]["enable_model_summary"] = False
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(work)
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config))

    t0 = time.perf_counter()
    cli = OMARCLI(
        OfflineAlgorithm, OfflineDataModule, subclass_mode_model=True, auto_configure_optimizers=False, run=False,
        trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0}, save_config_callback=None, args=["--config", str(path)],
    )
    timer = PhaseTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    t_end = time.perf_counter()

    plain, evals, ckpts = [], [], []
    for (k0, a), (_, b) in zip(timer.starts, timer.starts[1:-1]):
        k = k0 + 1  # the update this interval holds
        if k <= args.warmup:
            continue
        e, c = k % period == 0, k % args.checkpoint_every == 0
        (plain if not (e or c) else evals if e and not c else ckpts if c and not e else []).append(b - a)
    update = sum(plain) / len(plain)
    mean = lambda xs: max(sum(xs) / len(xs) - update, 0.0) if xs else float("nan")  # noqa: E731
    return {
        "setup_s": timer.starts[0][1] - t0,
        "update_ms": update * 1000,
        "evaluation_s": mean(evals),
        "checkpoint_s": mean(ckpts),
        "final_s": t_end - timer.starts[-2][1] - update,  # last update's interval less the update
        "evaluations_timed": len(evals),
    }


def projected(cost: dict[str, float], config: dict[str, Any], startup: float) -> float:
    updates = int(config["model"]["init_args"]["max_updates"])
    period = int(_callback(config, "EnvEvaluation")["init_args"].get("every_n_updates", 10))
    every = int(_callback(config, "UpdateCheckpoint")["init_args"].get("every_n_updates", 100))
    return (
        startup + cost["setup_s"] + updates * cost["update_ms"] / 1000
        + (updates - 1) // period * cost["evaluation_s"] + (updates - 1) // every * cost["checkpoint_s"] + cost["final_s"]
    )


def import_seconds() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import omar_lightning.cli, omar_lightning.reproduce.runner"], check=True, cwd=ROOT)
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", nargs="+", required=True, choices=list(STUDIES))
    p.add_argument("--tasks", nargs="*", help="restrict the study's tasks")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: two cells at once on 2 cores)")
    p.add_argument("--updates", type=int, default=80, help="updates timed per kind of cell")
    p.add_argument("--warmup", type=int, default=5, help="first updates left out of the means")
    p.add_argument("--eval-every", type=int, default=10, help="evaluation period while timing (at most the config's)")
    p.add_argument("--checkpoint-every", type=int, default=13, help="checkpoint period while timing")
    p.add_argument("--check", action="store_true", help="also print finished cells' recorded wall time")
    p.add_argument("--results", type=Path, default=ROOT / "results")
    args = p.parse_args()
    if args.updates < args.warmup + 2 * max(args.eval_every, args.checkpoint_every):
        p.error("--updates must leave room for two evaluations and two checkpoints after --warmup")
    torch.set_num_threads(args.threads)

    startup = import_seconds()
    print(f"startup (interpreter and imports): {startup:.1f} s; threads {args.threads}")
    costs: dict[tuple, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthetic: dict[tuple, Path] = {}
        for name in args.study:
            cells = STUDIES[name].cells(seeds=[0], tasks=args.tasks)
            groups: dict[tuple, list[tuple[Cell, dict]]] = {}
            for cell in cells:
                config = cell_config(cell, ROOT, tmp / "unused")
                groups.setdefault(kind(config), []).append((cell, config))
            print(f"\n{STUDIES[name].title}: {len(cells)} cells per seed, {len(groups)} kinds")
            print(f"{'kind':<58} {'setup s':>7} {'update ms':>9} {'eval s':>7} {'final s':>7}  cells: projected s")
            per_seed = 0.0
            for key, members in groups.items():
                config = members[0][1]
                if key not in costs:
                    data = config["data"]
                    skey = (data["task"], data.get("num_transitions"), json.dumps(data.get("env_kwargs") or {}, sort_keys=True))
                    if skey not in synthetic:
                        (tmp / str(len(synthetic))).mkdir()
                        synthetic[skey] = synthetic_file(
                            data["task"], int(data.get("num_transitions") or 1_000_000), tmp / str(len(synthetic)), data.get("env_kwargs")
                        )[0]
                    work = tmp / f"run{len(costs)}"
                    work.mkdir()
                    # each kind in a fresh process: no memory or caches carried over from the last
                    with multiprocessing.get_context("spawn").Pool(1) as pool:
                        costs[key] = pool.apply(measure, (config, synthetic[skey], args, work))
                cost = costs[key]
                rows = []
                for cell, cfg in members:
                    row = {"cell": cell.describe().removesuffix(" seed 0"), "projected_s": round(projected(cost, cfg, startup), 1)}
                    if args.check:
                        recorded = [
                            s["wall_seconds"] for seed in range(10)
                            if (s := read_summary(args.results / f"{cell.key.removesuffix('seed_0')}seed_{seed}.json")) and s.get("threads") == args.threads
                        ]
                        row["recorded_s"] = recorded
                    rows.append(row)
                shown: dict[str, list] = {}  # tier -> [projected s, cells, recorded s]
                for (cell, _), row in zip(members, rows):
                    entry = shown.setdefault(cell.tier + (" centralized" if cell.centralized else ""), [row["projected_s"], 0, []])
                    entry[1] += 1
                    entry[2] += row.get("recorded_s", [])
                label = " ".join((key[0], members[0][0].task, *key[2:6]))
                print(f"{label:<58} {cost['setup_s']:7.1f} {cost['update_ms']:9.1f} {cost['evaluation_s']:7.2f} {cost['final_s']:7.1f}  " + "; ".join(
                    f"{tier} {p:.0f}" + (f" (x{n})" if n > 1 else "") + (f" (ran {', '.join(f'{w:.0f}' for w in ran)})" if ran else "")
                    for tier, (p, n, ran) in shown.items()
                ))
                print(json.dumps({"study": name, "kind": list(key), **{k: round(v, 4) for k, v in cost.items()}, "startup_s": round(startup, 2), "threads": args.threads, "cells": rows}))
                per_seed += sum(r["projected_s"] for r in rows)
            print(f"{STUDIES[name].title}: {per_seed / 3600:.2f} h of one core per seed, {5 * per_seed / 3600:.1f} h for 5 seeds")
            print(json.dumps({"study": name, "tasks": args.tasks, "seconds_per_seed": round(per_seed, 1), "threads": args.threads}))


if __name__ == "__main__":
    main()
