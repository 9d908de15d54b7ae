"""``omar collect``: train MATD3 behaviour policies and write the dataset tiers.

::

    omar collect train --task T --steps N --out DIR [--levels medium=RETURN ...] [--seed S]
    omar collect dataset --task T --tier {random,medium_replay,medium,expert} \\
        [--policy SNAPSHOT] [--expert SNAPSHOT] --size N --out FILE [--seed S]

``train`` runs :func:`~omar_lightning.data.collect.behaviour.train_behaviour`: MATD3 (resuming from
``DIR/state.pt`` when it exists; ``--steps`` is the total to reach, and may exceed the first
run's: the replay buffer grows), evaluates the policy every
``--eval-every`` steps and keeps every evaluated policy as ``DIR/snapshots/step_<steps>.pt``,
indexed with its mean return in ``DIR/snapshots.json``. Snapshots at return levels are copied to
``DIR/<level>.pt``: ``--levels NAME=RETURN`` keeps the first policy whose evaluation return
reaches RETURN; without a ``medium`` level, ``medium.pt`` is the first policy reaching half the
way from the uniform random policy's return (same evaluation episodes) to the best one;
``expert.pt`` is the best policy.

``dataset`` writes one tier with :func:`~omar_lightning.data.collect.tiers.write_tier` (atomic,
checksummed): ``random`` = uniform random actions; ``medium_replay`` =
the replay buffer rows collected up to the ``--policy`` snapshot (read from ``state.pt`` beside
the snapshot's ``snapshots/`` folder); ``medium`` / ``expert`` = rollouts of ``--policy`` with its
Gaussian exploration noise. ``S_random`` is the uniform random policy's mean return and
``S_expert`` the ``--expert`` snapshot's (default: ``expert.pt`` beside ``--policy``) mean return
without noise, over ``--reference-episodes`` episodes; ``--expert scripted``, and the random tier
without ``--expert``, use the task's scripted reference expert.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omar_lightning.arguments import key_values, positive_int
from omar_lightning.data.format import TIERS
from omar_lightning.envs import TASKS


def _level(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels are NAME=RETURN (e.g. medium=300), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omar collect", description="Train behaviour policies and write dataset tiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train MATD3 behaviour policies, keep snapshots at return levels")
    tr.add_argument("--task", required=True, choices=sorted(TASKS))
    tr.add_argument("--steps", required=True, type=positive_int, help="total environment steps to reach (resumes from DIR/state.pt)")
    tr.add_argument("--out", required=True, type=Path, help="output folder")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--levels", nargs="*", type=_level, default=[], help="NAME=RETURN: keep the first policy reaching RETURN as DIR/NAME.pt")
    tr.add_argument("--eval-every", type=positive_int, default=None, help="environment steps between evaluations")
    tr.add_argument("--save-every", type=positive_int, default=50_000, help="environment steps between saves of the training state")
    tr.add_argument("--updates-per-step", type=float, default=None, help="gradient updates per environment step")
    tr.add_argument("--shaping", type=float, default=None,
                    help="training-only reward: minus SHAPING x the distance to the nearest good agent (predator-prey default 0.1, else 0)")
    tr.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="settings",
                    help="any MATD3Config field of a new run, e.g. --set actor_lr=0.001 (see omar_lightning/data/collect/matd3.py)")
    tr.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    tr.add_argument("--no-progress", action="store_true")
    ds = sub.add_parser("dataset", help="write one dataset tier")
    ds.add_argument("--task", required=True, choices=sorted(TASKS))
    ds.add_argument("--tier", required=True, choices=TIERS)
    ds.add_argument("--policy", type=Path, help="behaviour snapshot (medium_replay, medium, expert)")
    ds.add_argument("--expert", type=Path, help="snapshot giving S_expert (default: expert.pt beside --policy), or 'scripted' for the task's scripted reference expert")
    ds.add_argument("--size", type=positive_int, default=None, help="transitions (default 1,000,000; medium_replay: all rows up to the snapshot)")
    ds.add_argument("--out", required=True, type=Path)
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--noise", type=float, default=None, help="exploration noise of the rollouts (default: the snapshot's)")
    ds.add_argument("--reference-episodes", type=positive_int, default=200)
    ds.add_argument("--env-kwarg", action="append", default=[], metavar="KEY=VALUE")
    ds.add_argument("--workers", type=positive_int, default=1,
                    help="processes sharing the rollouts, one core each (default 1); the file is the same for any number")
    ds.add_argument("--no-progress", action="store_true")
    return parser


def train(args: argparse.Namespace) -> None:
    from omar_lightning.data.collect.behaviour import config_overrides, train_behaviour

    env_kwargs = key_values(args.env_kwarg)
    settings = config_overrides(args.settings)
    if args.updates_per_step:
        settings["updates_per_step"] = args.updates_per_step
    if args.shaping is not None:
        settings["shaping"] = args.shaping
    index = train_behaviour(args.out, args.task, args.steps, args.seed, env_kwargs, settings, dict(args.levels),
                            args.eval_every, args.save_every, progress=not args.no_progress)
    for name, info in sorted(index.data["levels"].items()):
        print(f"{name}: {args.out / info['file']} (score {info['score']:.2f}, from {info['from']})")


def dataset(args: argparse.Namespace) -> None:
    from omar_lightning.data.collect.tiers import write_tier

    out, meta, rows = write_tier(args.out, args.task, args.tier, key_values(args.env_kwarg), args.policy, args.expert, args.size,
                                 args.seed, args.noise, args.reference_episodes, args.workers, progress=not args.no_progress)
    st = meta["episode_returns"]
    mean = "n/a" if st["mean"] is None else f"{st['mean']:.2f} +- {st['std']:.2f}"
    print(f"Wrote {out}: {rows:,} transitions, behaviour return {mean} over {st['count']} episodes, "
          f"S_random={meta['s_random']:.2f}, S_expert={meta['s_expert']:.2f}, {meta['generation_seconds']} s")


def main(argv: list[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        (train if args.command == "train" else dataset)(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"omar collect: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
