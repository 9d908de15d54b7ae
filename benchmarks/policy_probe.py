"""Return, mean force and chase distance of behaviour snapshots, played without noise.

    python benchmarks/policy_probe.py omar_lightning/policies/predator_prey/*.pt

Plays each snapshot on the training run's evaluation episodes (``MATD3Config.eval_seed`` onwards)
and prints the mean task return, the mean |action| of the learning agents and, on predator-prey and
world, the mean distance from a learning agent to its nearest good agent.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from omar_lightning.envs import make_env, task_spec
from omar_lightning.data.collect.matd3 import MATD3Config
from omar_lightning.data.collect.snapshots import load_snapshot


def probe(path: str, episodes: int) -> dict[str, float]:
    snap = load_snapshot(path)
    actor, spec = snap["module"], task_spec(snap["task"], **snap["env_kwargs"])
    env = make_env(snap["task"], **snap["env_kwargs"])
    names = env.possible_agents
    width = max(snap["obs_dims"])
    returns, forces, dists = [], [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=MATD3Config.eval_seed + k)
        total = np.zeros(len(names))
        for _ in range(spec.episode_length):
            o = np.zeros((len(names), 1, width), np.float32)
            for i, a in enumerate(names):
                o[i, 0, : len(obs[a])] = obs[a]
            with torch.no_grad():
                act = actor(torch.as_tensor(o)).numpy()[:, 0]
            forces.append(np.mean([np.abs(act[i, :2]).mean() for i in range(len(names))]))
            obs, rew, *_ = env.step({a: act[i, : snap["act_dims"][i]] for i, a in enumerate(names)})
            total += [rew[a] for a in names]
            if callable(getattr(env, "chase_distances", None)):
                dists.append(env.chase_distances().mean())
        returns.append(total[0] if spec.return_mode == "first" else total.mean())
    return {"return": float(np.mean(returns)), "mean_abs_force": float(np.mean(forces)),
            "chase_distance": float(np.mean(dists)) if dists else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snapshots", nargs="+")
    parser.add_argument("--episodes", type=int, default=MATD3Config.eval_episodes)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.snapshots:
        r = probe(path, args.episodes)
        print(f"{path}: return {r['return']:.2f}, mean |force| {r['mean_abs_force']:.3f}, chase distance {r['chase_distance']:.3f}")


if __name__ == "__main__":
    main()
