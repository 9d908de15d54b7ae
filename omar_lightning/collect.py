"""Reference returns and the random dataset tier, collected from the environments.

* :func:`reference_returns` gives ``(S_random, S_expert)`` for the normalised score
  ``100 * (S - S_random) / (S_expert - S_random)`` (D4RL's formula, as in the paper).
* :func:`collect_random_tier` rolls out uniform random actions into per-agent transition
  arrays.

Seeds: reference returns play episodes ``seed, seed + 1, ...`` (default from 10,000);
:func:`collect_random_tier` plays its episodes from ``(seed + 1) * 1,000,000`` on, so a
dataset's initial states never coincide with those of the reference or evaluation episodes
seeded below 1,000,000.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

from omar_lightning.envs import TASKS, make_env, task_spec
from omar_lightning.envs.rollout import (
    Policy,
    run_episodes,
    run_episodes_parallel,
    score,
    seeded_uniform_random_policy,
)
from omar_lightning.envs.mpe_competitive import chase_policy
from omar_lightning.envs.scripted import spread_controller

__all__ = [
    "COLLECT_SEED_STRIDE",
    "EXPERT_POLICIES",
    "collect_random_tier",
    "expert_policy",
    "expert_score",
    "random_score",
    "reference_returns",
    "rollout_tier",
]

#: Episode seeds of :func:`collect_random_tier` start at ``(seed + 1) * COLLECT_SEED_STRIDE``.
COLLECT_SEED_STRIDE = 1_000_000

def _chaser(task: str, env_kwargs: dict[str, Any]) -> Policy:
    env = make_env(task, **env_kwargs)
    env.close()
    return lambda obs: chase_policy(obs, env)


def _spread(env_kwargs: dict[str, Any]) -> Policy:
    env = make_env("cooperative_navigation", **env_kwargs)
    env.close()
    return spread_controller(env.layout)


#: Task -> builder of the scripted reference expert policy
#: (``env_kwargs -> policy(obs [A, E, obs_dim]) -> actions [A, E, act_dim]``). HalfCheetah has
#: none: its S_expert comes from a trained behaviour policy (``omar collect``).
EXPERT_POLICIES: dict[str, Callable[[dict[str, Any]], Policy]] = {
    "cooperative_navigation": _spread,
    "predator_prey": lambda env_kwargs: _chaser("predator_prey", env_kwargs),
    "world": lambda env_kwargs: _chaser("world", env_kwargs),
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise ValueError(f"unknown task {task!r}; known tasks: {known}")


def expert_policy(task: str, **env_kwargs: Any) -> Policy:
    """The scripted reference expert policy of ``task``."""
    _check_task(task)
    try:
        build = EXPERT_POLICIES[task]
    except KeyError:
        raise ValueError(
            f"no scripted reference expert for task {task!r}: S_expert comes from a trained behaviour policy "
            "('omar collect train', then 'omar collect dataset --policy SNAPSHOT')"
        ) from None
    return build(dict(env_kwargs))


def _check_args(task: str, episodes: int) -> None:
    _check_task(task)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")


def _maker(task: str, env_kwargs: dict[str, Any]) -> Callable[[], Any]:
    """A picklable env factory (worker processes of :func:`run_episodes_parallel` build their own)."""
    return functools.partial(make_env, task, **env_kwargs)


def _play_score(task: str, env_kwargs: dict[str, Any], make_policy: Callable[[], Policy], episodes: int, seed: int, workers: int,
                progress: bool = False) -> float:
    spec = task_spec(task, **env_kwargs)
    result = run_episodes_parallel(_maker(task, env_kwargs), make_policy, num_episodes=episodes, seed=seed,
                                   episode_length=spec.episode_length, workers=workers, progress=progress)
    return float(score(result).mean())


def random_score(task: str, episodes: int = 200, seed: int = 10_000, workers: int = 1, progress: bool = False, **env_kwargs: Any) -> float:
    """``S_random``: mean score of uniform random actions in ``[-1, 1]`` (generator seeded
    ``seed``) over episodes seeded ``seed, seed + 1, ...`` (``progress``: a bar over them)."""
    _check_args(task, episodes)
    act_dim = max(task_spec(task, **env_kwargs).act_dims)
    return _play_score(task, env_kwargs, functools.partial(seeded_uniform_random_policy, seed, act_dim), episodes, seed, workers, progress)


def expert_score(task: str, episodes: int = 200, seed: int = 10_000, workers: int = 1, snapshot: str | None = None,
                 progress: bool = False, **env_kwargs: Any) -> float:
    """``S_expert``: mean score of the task's scripted expert (:data:`EXPERT_POLICIES`), or of the
    MATD3 policy ``snapshot`` without noise, over episodes seeded ``seed, seed + 1, ...``."""
    _check_args(task, episodes)
    if snapshot is not None:
        from omar_lightning.online.matd3 import load_snapshot, snapshot_policy_from_file

        load_snapshot(snapshot)  # a bad file is named here, before any worker starts
        make_policy = functools.partial(snapshot_policy_from_file, snapshot, 0.0, seed)
    else:
        make_policy = functools.partial(expert_policy, task, **env_kwargs)
    return _play_score(task, env_kwargs, make_policy, episodes, seed, workers, progress)


def reference_returns(
    task: str, episodes: int = 200, seed: int = 10_000, workers: int = 1, **env_kwargs: Any
) -> tuple[float, float]:
    """Mean episode scores ``(S_random, S_expert)`` of the reference policies.

    ``S_random``: uniform random actions in ``[-1, 1]`` (generator seeded with ``seed``,
    :func:`random_score`). ``S_expert``: the task's scripted expert (:data:`EXPERT_POLICIES`,
    :func:`expert_score`). Both play the same ``episodes`` episodes, seeded ``seed, seed + 1,
    ...``. A score is the mean over agents of their undiscounted returns
    (:func:`omar_lightning.envs.rollout.score`), or the first agent's where the task's
    ``score_mode`` says so. ``workers`` processes share the episodes, with the same result.
    """
    _check_args(task, episodes)
    if task not in EXPERT_POLICIES:
        expert_policy(task, **env_kwargs)  # names the missing scripted expert before any episode
    return (random_score(task, episodes, seed, workers, **env_kwargs),
            expert_score(task, episodes, seed, workers, **env_kwargs))


def collect_random_tier(
    task: str,
    num_transitions: int,
    seed: int = 0,
    progress: bool = True,
    workers: int = 1,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Collect the "random" dataset tier: uniform random actions in ``[-1, 1]^d``.

    The paper's random tier rolls out a randomly initialised policy. An untrained tanh
    actor whose last layer is initialised in +-3e-3 (the official networks) outputs forces
    of about 1e-3 and barely moves, so uniform random actions are used instead.

    Whole episodes are played (episode ``k`` seeded ``(seed + 1) * 1_000_000 + k``, actions
    from ``np.random.default_rng(seed)``, 10 env copies in lockstep) until at least
    ``num_transitions`` steps exist; the arrays are then cut to exactly that many rows.
    The result is the same for the same arguments, whatever the number of ``workers``
    (processes sharing the episodes, :func:`~omar_lightning.envs.rollout.run_episodes_parallel`).

    Returns:
        dict with ``obs``, ``actions``, ``rewards``, ``next_obs``, ``dones`` (lists over
        agents of float32 arrays with ``num_transitions`` rows; ``dones`` is 1.0 only at a
        true termination, never at the time limit), ``episode_returns`` (float64 scores
        of the episodes lying wholly inside the cut) and ``agent_names``.
    """
    _check_task(task)
    if isinstance(num_transitions, bool) or int(num_transitions) != num_transitions:
        raise ValueError(f"num_transitions must be an int, got {num_transitions!r}")
    if num_transitions < 1:
        raise ValueError(f"num_transitions must be >= 1, got {num_transitions}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    num_transitions = int(num_transitions)
    seed = int(seed)

    spec = task_spec(task, **env_kwargs)
    make = _maker(task, env_kwargs)
    make_policy = functools.partial(seeded_uniform_random_policy, seed, max(spec.act_dims))
    policy = make_policy()  # one generator across top-ups
    base = (seed + 1) * COLLECT_SEED_STRIDE

    parts = []
    collected = 0
    played = 0
    while collected < num_transitions:
        # Episodes may end early on termination: top up until enough steps exist.
        missing = num_transitions - collected
        n_episodes = max(1, math.ceil(missing / spec.episode_length))
        if workers > 1:  # fixed-length episodes (the workers check it), so no top-up follows
            res = run_episodes_parallel(make, make_policy, n_episodes, base + played, spec.episode_length,
                                        record=True, workers=workers, progress=progress)
        else:
            res = run_episodes(make, policy, n_episodes, base + played, record=True, progress=progress)
        parts.append(res)
        collected += res.num_transitions
        played += n_episodes

    def cut(key: str, i: int) -> np.ndarray:
        chunks = [getattr(p, key)[i] for p in parts]
        arr = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)
        return np.ascontiguousarray(arr[:num_transitions])

    n_agents = spec.num_agents
    lengths = np.concatenate([p.episode_lengths for p in parts])
    scores = np.concatenate([score(p) for p in parts])
    complete = np.cumsum(lengths) <= num_transitions
    return {
        "obs": [cut("obs", i) for i in range(n_agents)],
        "actions": [cut("actions", i) for i in range(n_agents)],
        "rewards": [cut("rewards", i) for i in range(n_agents)],
        "next_obs": [cut("next_obs", i) for i in range(n_agents)],
        "dones": [cut("dones", i) for i in range(n_agents)],
        "episode_returns": scores[complete],
        "agent_names": list(spec.agent_names),
    }


def rollout_tier(task: str, policy: Any, size: int, seed: int, noise: float, env_kwargs: dict[str, Any], progress: bool,
                 workers: int = 1) -> dict[str, Any]:
    """``size`` transitions of the snapshot ``policy`` with Gaussian noise ``noise`` (whole episodes
    seeded ``(seed + 1) * 1,000,000 + k``, cut to ``size`` rows), played by ``workers`` processes
    with the same result: per-agent ``obs``, ``actions``, ``rewards``, ``next_obs``, ``dones`` and
    the scores of the whole episodes (``episode_returns``)."""
    from omar_lightning.data.format import FIELDS
    from omar_lightning.online.matd3 import snapshot_policy_from_file

    spec = task_spec(task, **env_kwargs)
    n_episodes = -(-size // spec.episode_length)
    res = run_episodes_parallel(_maker(task, env_kwargs), functools.partial(snapshot_policy_from_file, policy, noise, seed),
                                n_episodes, (seed + 1) * COLLECT_SEED_STRIDE, spec.episode_length, record=True, workers=workers, progress=progress)
    if res.num_transitions < size:
        raise RuntimeError(f"episodes ended early: {res.num_transitions} < {size} transitions")
    scores = score(res)
    complete = np.cumsum(res.episode_lengths) <= size
    return {f: [np.ascontiguousarray(x[:size]) for x in getattr(res, f)] for f in FIELDS} | {"episode_returns": scores[complete]}
