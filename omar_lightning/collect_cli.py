"""``omar collect``: train MATD3 behaviour policies and write the dataset tiers.

::

    omar collect train --task T --steps N --out DIR [--levels medium=RETURN ...] [--seed S]
    omar collect dataset --task T --tier {random,medium_replay,medium,expert} \\
        [--policy SNAPSHOT] [--expert SNAPSHOT] --size N --out FILE [--seed S]

``train`` runs :class:`~omar_lightning.online.matd3.MATD3Trainer` (resuming from
``DIR/state.pt`` when it exists; ``--steps`` is the total to reach, and may exceed the first
run's: the replay buffer grows), evaluates the policy every
``--eval-every`` steps and keeps every evaluated policy as ``DIR/snapshots/step_<steps>.pt``,
indexed with its score in ``DIR/snapshots.json``. Snapshots at return levels are copied to
``DIR/<level>.pt``: ``--levels NAME=RETURN`` keeps the first policy whose evaluation score
reaches RETURN; without a ``medium`` level, ``medium.pt`` is the first policy reaching half the
way from the uniform random policy's score (same evaluation episodes) to the best one;
``expert.pt`` is the best policy.

``dataset`` writes one tier with :func:`~omar_lightning.data.format.save_dataset` (atomic,
checksummed): ``random`` = uniform random actions (the existing collection); ``medium_replay`` =
the replay buffer rows collected up to the ``--policy`` snapshot (read from ``state.pt`` beside
the snapshot's ``snapshots/`` folder); ``medium`` / ``expert`` = rollouts of ``--policy`` with its
Gaussian exploration noise. ``S_random`` is the uniform random policy's mean score and
``S_expert`` the ``--expert`` snapshot's (default: ``expert.pt`` beside ``--policy``) mean score
without noise, over ``--reference-episodes`` episodes; the random tier without ``--expert`` uses
the task's scripted reference expert.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.collect import collect_random_tier, expert_score, random_score, reference_returns, rollout_tier
from omar_lightning.data.episodes import return_stats, whole_episode_returns
from omar_lightning.data.format import FIELDS, OfflineDataset, save_dataset
from omar_lightning.envs import TASKS, task_spec

TIERS = ("random", "medium_replay", "medium", "expert")


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _level(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels are NAME=RETURN (e.g. medium=300), got {text!r}") from None


def _env_kwargs(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--env-kwarg takes KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out


def _settings(items: list[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as MATD3Config fields, typed like the field's default."""
    import dataclasses

    import yaml

    from omar_lightning.online.matd3 import MATD3Config

    fields = {f.name: type(f.default) for f in dataclasses.fields(MATD3Config)}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or key not in fields or key == "buffer_size":
            known = ", ".join(sorted(k for k in fields if k != "buffer_size"))
            raise ValueError(f"--set {item!r}: takes FIELD=VALUE with FIELD one of {known}")
        value = yaml.safe_load(text)
        kind = fields[key]
        if kind is float and not isinstance(value, bool):
            try:  # YAML reads 1e-3 as a string
                value = float(text)
            except ValueError:
                pass
        if type(value) is not kind:
            raise ValueError(f"--set {item!r}: {key} takes a {kind.__name__}, got {text!r}")
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omar collect", description="Train behaviour policies and write dataset tiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train MATD3 behaviour policies, keep snapshots at return levels")
    tr.add_argument("--task", required=True, choices=sorted(TASKS))
    tr.add_argument("--steps", required=True, type=_positive, help="total environment steps to reach (resumes from DIR/state.pt)")
    tr.add_argument("--out", required=True, type=Path, help="output folder")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--levels", nargs="*", type=_level, default=[], help="NAME=RETURN: keep the first policy reaching RETURN as DIR/NAME.pt")
    tr.add_argument("--eval-every", type=_positive, default=None, help="environment steps between evaluations")
    tr.add_argument("--save-every", type=_positive, default=50_000, help="environment steps between saves of the training state")
    tr.add_argument("--updates-per-step", type=float, default=None, help="gradient updates per environment step")
    tr.add_argument("--shaping", type=float, default=None,
                    help="training-only reward: minus SHAPING x the distance to the nearest good agent (predator-prey default 0.1, else 0)")
    tr.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="settings",
                    help="any MATD3Config field of a new run, e.g. --set actor_lr=0.001 (see omar_lightning/online/matd3.py)")
    tr.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    tr.add_argument("--no-progress", action="store_true")
    ds = sub.add_parser("dataset", help="write one dataset tier")
    ds.add_argument("--task", required=True, choices=sorted(TASKS))
    ds.add_argument("--tier", required=True, choices=TIERS)
    ds.add_argument("--policy", type=Path, help="behaviour snapshot (medium_replay, medium, expert)")
    ds.add_argument("--expert", type=Path, help="snapshot giving S_expert (default: expert.pt beside --policy)")
    ds.add_argument("--size", type=_positive, default=None, help="transitions (default 1,000,000; medium_replay: all rows up to the snapshot)")
    ds.add_argument("--out", required=True, type=Path)
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--noise", type=float, default=None, help="exploration noise of the rollouts (default: the snapshot's)")
    ds.add_argument("--reference-episodes", type=_positive, default=200)
    ds.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    ds.add_argument("--workers", type=_positive, default=1,
                    help="processes sharing the rollouts, one core each (default 1); the file is the same for any number")
    ds.add_argument("--no-progress", action="store_true")
    return parser


# ---------------------------------------------------------------------------- train
def train(args: argparse.Namespace) -> None:
    from omar_lightning.online.matd3 import TASK_DEFAULTS, MATD3Config, MATD3Trainer, write_json

    out: Path = args.out
    env_kwargs = _env_kwargs(args.env_kwarg)
    state = out / "state.pt"
    settings = _settings(args.settings)
    if args.updates_per_step:
        settings["updates_per_step"] = args.updates_per_step
    if args.shaping is not None:
        settings["shaping"] = args.shaping
    if state.exists():
        trainer = MATD3Trainer.load(state)
        if trainer.task != args.task or trainer.env_kwargs != env_kwargs or trainer.seed != args.seed:
            raise ValueError(
                f"{state}: holds a run of task {trainer.task!r} (env_kwargs {trainer.env_kwargs}, seed {trainer.seed}), "
                f"not {args.task!r} ({env_kwargs}, seed {args.seed}); use another --out"
            )
        for key, value in settings.items():
            if getattr(trainer.cfg, key) != value:
                raise ValueError(f"{key}={value}: {state} was trained with {key}={getattr(trainer.cfg, key)}; use another --out")
        trainer.reserve(trainer.rows_needed(args.steps))  # continued past its first --steps
        if args.eval_every and args.eval_every != trainer.cfg.eval_every:
            # Evaluations use their own environments and seeds and no noise, so their cadence
            # changes which snapshots are kept, never the training itself.
            print(f"Evaluating every {args.eval_every:,} steps from now on (was {trainer.cfg.eval_every:,})")
            trainer.cfg.eval_every = args.eval_every
        print(f"Resuming {state} at step {trainer.steps:,}")
    else:
        cfg = dict(TASK_DEFAULTS.get(args.task, {}))
        if args.eval_every:
            cfg["eval_every"] = args.eval_every
        cfg.update(settings)
        rounds = MATD3Config(**cfg).num_envs * task_spec(args.task, **env_kwargs).episode_length
        cfg["buffer_size"] = max(-(-args.steps // rounds) * rounds, cfg.get("batch_size", 1024))
        trainer = MATD3Trainer(args.task, args.seed, env_kwargs, MATD3Config(**cfg))
    index_path = out / "snapshots.json"
    index = _read_json(index_path, {"task": args.task, "env_kwargs": env_kwargs, "seed": args.seed, "snapshots": [], "levels": {}})
    levels = dict(index.get("wanted_levels", {}))
    levels.update(dict(args.levels))
    index["wanted_levels"] = levels

    def on_eval(t: MATD3Trainer, s: float) -> None:
        snap = t.snapshot(out / "snapshots" / f"step_{t.steps:09d}.pt", "snapshot", s)
        index["snapshots"].append({"file": str(snap.relative_to(out)), "steps": t.steps, "updates": t.updates, "score": s, "replay_rows": t.size})
        for name, target in levels.items():
            if name not in index["levels"] and s >= target:
                shutil.copyfile(snap, out / f"{name}.pt")
                index["levels"][name] = {"file": f"{name}.pt", "from": str(snap.relative_to(out)), "score": s, "target": target}
        index["train_seconds"] = round(spent + time.perf_counter() - start, 1)  # kept by a run stopped later
        write_json(index_path, index)

    start, spent = time.perf_counter(), float(index.get("train_seconds", 0.0))
    trainer.train(args.steps, on_eval=on_eval, save_path=state, save_every=args.save_every, progress=not args.no_progress)
    _final_levels(out, index, levels, trainer.cfg.eval_episodes, trainer.cfg.eval_seed)
    index["train_seconds"] = round(spent + time.perf_counter() - start, 1)
    write_json(index_path, index)
    for name, info in sorted(index["levels"].items()):
        print(f"{name}: {out / info['file']} (score {info['score']:.2f}, from {info['from']})")


def _final_levels(out: Path, index: dict[str, Any], wanted: dict[str, float], episodes: int, eval_seed: int) -> None:
    snaps = index["snapshots"]
    if not snaps:
        return
    best = max(snaps, key=lambda s: s["score"])
    shutil.copyfile(out / best["file"], out / "expert.pt")
    index["levels"]["expert"] = {"file": "expert.pt", "from": best["file"], "score": best["score"], "target": "best"}
    if "medium" not in wanted:
        s_random = random_score(index["task"], episodes, eval_seed, **index["env_kwargs"])
        index["random_score"] = s_random
        half = s_random + 0.5 * (best["score"] - s_random)
        med = next((s for s in snaps if s["score"] >= half), best)
        shutil.copyfile(out / med["file"], out / "medium.pt")
        index["levels"]["medium"] = {"file": "medium.pt", "from": med["file"], "score": med["score"], "target": f"half way ({half:.2f})"}


def _read_json(path: Path, default: Any) -> Any:
    import json

    if path.exists():
        return json.loads(path.read_text())
    return default


# ---------------------------------------------------------------------------- dataset


def _episode_order(rows: int, num_envs: int, length: int, where: Path) -> np.ndarray:
    """Row order that puts the replay buffer's interleaved episodes one after another.

    The trainer steps ``num_envs`` copies in lockstep, so round ``k`` (``num_envs * length`` rows)
    holds step ``t`` of copy ``e`` at row ``k * num_envs * length + t * num_envs + e`` (episodes of
    the MPE tasks and HalfCheetah have a fixed length)."""
    per_round = num_envs * length
    if rows % per_round:
        raise ValueError(f"{where}: {rows:,} replay rows are not whole rounds of {num_envs} x {length} steps")
    idx = np.arange(rows)
    rnd, within = idx // per_round, idx % per_round
    return np.lexsort((within // num_envs, within % num_envs, rnd))


def _check_continuity(buf: dict[str, np.ndarray], where: Path) -> None:
    obs, nxt = buf["obs"], buf["next_obs"]
    same = (obs[1:] == nxt[:-1]).all(axis=(1, 2))
    if same.size and same.mean() < 0.5:
        raise ValueError(f"{where}: replay rows do not form episodes after reordering (not a fixed-length run?)")


def _expert_path(args: argparse.Namespace) -> Path | None:
    if args.expert is not None:
        return args.expert
    if args.policy is not None:
        cand = args.policy.parent / "expert.pt"
        return cand if cand.exists() else None
    return None


def _matching_snapshot(path: Path, task: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The snapshot at ``path``; ValueError naming it when it was trained on another task or
    environment (``env_kwargs``, e.g. another ``variant``)."""
    from omar_lightning.online.matd3 import load_snapshot

    snap = load_snapshot(path)
    if snap["task"] != task or dict(snap["env_kwargs"]) != env_kwargs:
        raise ValueError(f"{path}: snapshot is for task {snap['task']!r} {snap['env_kwargs']}, not {task!r} {env_kwargs}")
    return snap


def dataset(args: argparse.Namespace) -> None:
    env_kwargs = _env_kwargs(args.env_kwarg)
    spec = task_spec(args.task, **env_kwargs)
    start = time.perf_counter()
    progress = not args.no_progress
    snap = None
    if args.tier != "random":
        if args.policy is None:
            raise ValueError(f"--policy is required for tier {args.tier!r} (a snapshot from 'omar collect train')")
        snap = _matching_snapshot(args.policy, args.task, env_kwargs)
    noise = args.noise if args.noise is not None else (snap["exploration_noise"] if snap else 0.0)
    if args.tier == "random":
        size = args.size or 1_000_000
        data = collect_random_tier(args.task, size, seed=args.seed, progress=progress, workers=args.workers, **env_kwargs)
        behaviour = "uniform random actions in [-1, 1]"
    elif args.tier == "medium_replay":
        import torch

        state = args.policy.parent.parent / "state.pt" if args.policy.parent.name == "snapshots" else args.policy.parent / "state.pt"
        if not state.is_file():
            raise FileNotFoundError(f"training state not found: {state} (medium_replay reads the replay buffer of the run that produced {args.policy})")
        st = torch.load(state, weights_only=False)
        rows = int(snap["replay_rows"])
        if int(st["size"]) < rows:
            raise ValueError(f"{state}: holds {st['size']:,} replay rows, fewer than the snapshot's {rows:,}")
        order = _episode_order(rows, int(st["config"]["num_envs"]), spec.episode_length, state)
        first = max(0, rows - args.size) if args.size else 0
        buf = {k: v[:rows].numpy()[order][first:] for k, v in st["buffer"].items()}
        _check_continuity(buf, state)
        data = {f: [np.ascontiguousarray(buf[f][:, i, : (spec.act_dims[i] if f == "actions" else spec.obs_dims[i])] if buf[f].ndim == 3 else buf[f][:, i])
                    for i in range(spec.num_agents)] for f in FIELDS}
        data["episode_returns"] = whole_episode_returns(data["obs"], data["next_obs"], data["dones"], data["rewards"], spec.episode_length,
                                                        agent=0 if spec.score_mode == "first" else None)
        behaviour = f"MATD3 replay buffer rows {first:,}..{rows:,} (up to {args.policy.name})"
    else:
        size = args.size or 1_000_000
        data = rollout_tier(args.task, args.policy, size, args.seed, noise, env_kwargs, progress, args.workers)
        behaviour = f"MATD3 snapshot {args.policy} with Gaussian noise {noise}"
    # Reference returns: the same episodes for both policies; the expert plays without noise.
    ref_seed = 10_000
    expert = _expert_path(args)
    if expert is not None:
        _matching_snapshot(expert, args.task, env_kwargs)  # a bad file is named here, before any worker starts
        if progress:
            print(f"Reference returns: {args.reference_episodes} episodes each of uniform random actions and of {expert} without noise")
        s_random = random_score(args.task, args.reference_episodes, ref_seed, args.workers, progress=progress, **env_kwargs)
        s_expert = expert_score(args.task, args.reference_episodes, ref_seed, args.workers, snapshot=expert, progress=progress, **env_kwargs)
        ref = f"S_random: uniform random actions; S_expert: {expert} without noise ({args.reference_episodes} episodes each)"
    elif args.tier == "random":
        s_random, s_expert = reference_returns(args.task, episodes=args.reference_episodes, seed=ref_seed, workers=args.workers, **env_kwargs)
        ref = f"S_random: uniform random actions; S_expert: the scripted reference expert ({args.reference_episodes} episodes each)"
    else:
        raise ValueError(f"no expert snapshot: give --expert (no expert.pt beside {args.policy})")
    meta = {
        "task": args.task, "tier": args.tier, "agent_names": list(spec.agent_names), "s_random": s_random, "s_expert": s_expert,
        "reference": ref, "behaviour": behaviour, "env_kwargs": env_kwargs, "seed": args.seed,
        "episode_returns": return_stats(data["episode_returns"]), "generation_seconds": round(time.perf_counter() - start, 1),
    }
    if args.task == "halfcheetah_2x3":
        from omar_lightning.envs.halfcheetah import simulator_versions

        meta["simulator"] = simulator_versions()
    out = save_dataset(args.out, OfflineDataset(**{f: data[f] for f in FIELDS}, meta=meta))
    st = meta["episode_returns"]
    mean = "n/a" if st["mean"] is None else f"{st['mean']:.2f} +- {st['std']:.2f}"
    print(f"Wrote {out}: {len(data['obs'][0]):,} transitions, behaviour return {mean} over {st['count']} episodes, "
          f"S_random={s_random:.2f}, S_expert={s_expert:.2f}, {meta['generation_seconds']} s")


def main(argv: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        (train if args.command == "train" else dataset)(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"omar collect: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
