"""Return scale of cooperative navigation in the plane and on the line (``layout: line``).

Prints, for N = 1..5 agents and both physics variants, the reference returns ``(S_random,
S_expert)`` of :func:`omar_lightning.data.collect.references.reference_returns` (200 episodes seeded 10,000..10,199:
uniform random actions, and the layout's scripted controller), and for the plane with one action
axis (agents moving along x only, landmarks anywhere) an upper bound on any policy's return over
the same episodes: each landmark's coverage term at most ``min(1 / dy, 10)`` for every one of the 25
steps, ``dy`` the y gap to the nearest agent (which no x force changes).

    python benchmarks/line_spread_scale.py
"""

from __future__ import annotations

import numpy as np

from omar_lightning.data.collect.references import reference_returns
from omar_lightning.envs import make_env
from omar_lightning.envs.cooperative_navigation import PAPER_MAX_LANDMARK_REWARD

TASK = "cooperative_navigation"
EPISODES, SEED = 200, 10_000


def x_axis_only_bound(n: int, variant: str) -> float:
    env = make_env(TASK, num_agents=n, variant=variant)
    bounds = []
    for k in range(EPISODES):
        env.reset(seed=SEED + k)
        ay = np.array([a.state.p_pos[1] for a in env.world.agents])
        per_step = sum(min(PAPER_MAX_LANDMARK_REWARD, 1.0 / np.min(np.abs(ay - lm.state.p_pos[1]))) for lm in env.world.landmarks)
        bounds.append(env.episode_length * per_step)
    return float(np.mean(bounds))


def main() -> None:
    print("| N | variant | plane S_random | plane S_expert | x-axis-only bound | line S_random | line S_expert |")
    print("|---|---|---|---|---|---|---|")
    for n in range(1, 6):
        for variant in ("mpe2", "official"):
            plane = reference_returns(TASK, episodes=EPISODES, seed=SEED, num_agents=n, variant=variant)
            line = reference_returns(TASK, episodes=EPISODES, seed=SEED, num_agents=n, variant=variant, layout="line")
            bound = x_axis_only_bound(n, variant)
            print(f"| {n} | {variant} | {plane[0]:.1f} | {plane[1]:.1f} | {bound:.1f} | {line[0]:.1f} | {line[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
