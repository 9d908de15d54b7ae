"""How hard each fixed policy (prey, good agents) is to catch: adversaries' task returns against it.

    python benchmarks/fixed_policy_difficulty.py predator_prey --variant official
    python benchmarks/fixed_policy_difficulty.py world --variant official --episodes 200
    python benchmarks/fixed_policy_difficulty.py predator_prey --variant mpe2 \\
        --snapshot omar_lightning/policies/predator_prey/expert.pt
    python benchmarks/fixed_policy_difficulty.py world --policies uniform_random --gaussian 0 0.1
    python benchmarks/fixed_policy_difficulty.py predator_prey --walk-forces 0 0.1 0.15 0.2 0.25 0.5 0.75 1

For every fixed policy named (default: all of ``FIXED_POLICIES`` that fit the task) it plays the
same episodes (seeds 10,000 onwards) with three kinds of adversaries and prints the mean and
standard deviation of the task return: the scripted chasers (the reference expert), uniform
random actions (the random tier's behaviour), with ``--snapshot`` a trained MATD3 snapshot
without noise, and with ``--gaussian STD ...`` adversaries acting ``N(0, STD^2)`` clipped to
[-1, 1] (0: at rest). ``--walk-forces F ...`` adds random walks of largest force F (uniform
forces in ``[-F, F]^2``, as ``random_walk`` with its force set to F), the measurement that fixed
``RANDOM_WALK_FORCE``. A fixed policy is no easier than a still target when the adversaries'
return against it is no higher than against ``stand_still``.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np

from omar_lightning.data.collect.references import expert_policy
from omar_lightning.envs import make_env, task_spec
from omar_lightning.envs.mpe_competitive import FIXED_POLICIES, register_fixed_policy, uniform_random_fixed_policy
from omar_lightning.envs.rollout import run_episodes, task_returns, uniform_random_policy

SETTING = {"predator_prey": "prey_policy", "world": "good_policy"}
FITS = {
    "predator_prey": ("evade", "flee", "random_walk", "stand_still", "uniform_random"),
    "world": ("evade", "forage_flee", "random_walk", "stand_still", "uniform_random"),
}


def _gaussian(std: float, act_dim: int):
    rng = np.random.default_rng(0)

    def policy(obs: np.ndarray) -> np.ndarray:
        shape = (obs.shape[0], obs.shape[1], act_dim)
        return np.clip(rng.normal(0.0, std, shape), -1, 1).astype(np.float32) if std else np.zeros(shape, np.float32)

    return policy


def task_returns_against(task: str, env_kwargs: dict, episodes: int, snapshot: str | None, gaussian: list[float]) -> dict[str, tuple[float, float]]:
    spec = task_spec(task, **env_kwargs)
    make = functools.partial(make_env, task, **env_kwargs)
    players = {
        "scripted chasers": expert_policy(task, **env_kwargs),
        "uniform random": uniform_random_policy(np.random.default_rng(0), max(spec.act_dims)),
    }
    if snapshot:
        from omar_lightning.data.collect.snapshots import snapshot_policy_from_file

        players["snapshot"] = snapshot_policy_from_file(snapshot, 0.0, 0)
    for std in gaussian:
        players[f"gaussian {std}"] = _gaussian(std, max(spec.act_dims))
    out = {}
    for name, policy in players.items():
        s = task_returns(run_episodes(make, policy, episodes, 10_000))
        out[name] = (float(s.mean()), float(s.std()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(SETTING))
    parser.add_argument("--variant", default="official")
    parser.add_argument("--policies", nargs="*", default=None, help="fixed policies (default: all that fit the task)")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--snapshot", default=None, help="a behaviour snapshot of the same task and variant")
    parser.add_argument("--gaussian", nargs="*", type=float, default=[], help="also adversaries with Gaussian actions of these stds")
    parser.add_argument("--walk-forces", nargs="*", type=float, default=[], help="also random walks of these largest forces")
    args = parser.parse_args()
    names = args.policies or ([] if args.walk_forces else [p for p in FITS[args.task] if p in FIXED_POLICIES])
    for force in args.walk_forces:
        names.append(f"random walk {force:g}")
        register_fixed_policy(names[-1], lambda obs, env, f=force: f * uniform_random_fixed_policy(obs, env))
    for name in names:
        result = task_returns_against(args.task, {"variant": args.variant, SETTING[args.task]: name}, args.episodes, args.snapshot, args.gaussian)
        cells = ", ".join(f"{who} {m:.2f} +- {s:.2f}" for who, (m, s) in result.items())
        print(f"{args.task} ({args.variant}) vs {name}: {cells}", flush=True)


if __name__ == "__main__":
    main()
