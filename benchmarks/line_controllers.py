"""What the matching is worth on the line: three fixed controllers and the shipped policies.

For N = 1..5 agents on the line (``layout: line``, official physics), the mean return over the
200 reference episodes (seeded 10,000..10,199, those of ``S_random`` and ``S_expert``) of:

* ``idle``: every agent applies no force;
* ``nearest``: every agent drives to its nearest landmark, with the scripted controller's PD law,
  landmark offset and repulsion (:mod:`omar_lightning.envs.scripted`); agents may share a
  landmark and cross;
* ``scripted``: the task's scripted controller, the same law with agents matched to landmarks in
  order along the axis (``S_expert``);
* the shipped MATD3 snapshots ``medium.pt`` and ``expert.pt`` of
  ``omar_lightning/policies/cooperative_navigation_line_n<N>/``, played without noise, where they exist.

    python benchmarks/line_controllers.py
"""

from __future__ import annotations

import numpy as np

from omar_lightning.data.collect.snapshots import POLICIES, load_snapshot, snapshot_policy
from omar_lightning.envs import make_env
from omar_lightning.envs import scripted
from omar_lightning.envs.rollout import run_episodes, task_returns

EPISODES, SEED = 200, 10_000


def idle(obs: np.ndarray) -> np.ndarray:
    return np.zeros((*obs.shape[:2], 1), np.float32)


def nearest(obs: np.ndarray) -> np.ndarray:
    """The scripted controller's drive with another matching: each agent to its nearest landmark."""
    return scripted.scripted_line_actions(obs, matching="nearest")


def main() -> None:
    print("| N | idle | nearest | scripted | medium.pt | expert.pt |")
    print("|---|---|---|---|---|---|")
    for n in range(1, 6):
        kwargs = {"num_agents": n, "layout": "line", "variant": "official"}
        policies = {"idle": idle, "nearest": nearest, "scripted": scripted.scripted_line_actions}
        folder = POLICIES / f"cooperative_navigation_line_n{n}"
        for level in ("medium", "expert"):
            if (folder / f"{level}.pt").is_file():
                policies[f"{level}.pt"] = snapshot_policy(load_snapshot(folder / f"{level}.pt"), 0.0, np.random.default_rng(0))
        row = []
        for name in ("idle", "nearest", "scripted", "medium.pt", "expert.pt"):
            if name not in policies:
                row.append("-")
                continue
            res = run_episodes(lambda: make_env("cooperative_navigation", **kwargs), policies[name], EPISODES, SEED, num_envs=20)
            row.append(f"{float(task_returns(res).mean()):.1f}")
        print(f"| {n} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
