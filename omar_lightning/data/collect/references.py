"""The reference returns ``S_random`` and ``S_expert`` of the normalized score.

The normalized score ``100 * (S - S_random) / (S_expert - S_random)`` (D4RL's formula, as in the
paper; :func:`omar_lightning.data.format.normalized_score`) needs two reference returns per task
and environment: ``S_random``, the mean return of uniform random actions in ``[-1, 1]``
(:func:`random_return`), and ``S_expert``, the mean return of the task's scripted expert
(:data:`EXPERT_POLICIES`) or of a behaviour snapshot without noise (:func:`expert_return`). Both
play the same episodes, seeded ``REFERENCE_SEED, REFERENCE_SEED + 1, ...`` (10,000 on; the tiers'
own episodes start at 1,000,000 and evaluation episodes use their own seeds). An episode's return
is the task's (:func:`omar_lightning.envs.rollout.task_returns`: the mean over agents, or the
first agent's where the task says so). ``workers`` processes share the episodes, with the same
result.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from omar_lightning.envs import TASKS, make_env, task_spec
from omar_lightning.envs.mpe_competitive import chase_policy
from omar_lightning.envs.rollout import Policy, run_episodes_parallel, seeded_uniform_random_policy, task_returns
from omar_lightning.envs.scripted import spread_controller

__all__ = ["EXPERT_POLICIES", "REFERENCE_SEED", "expert_policy", "expert_return", "random_return", "reference_returns"]

#: Seed of the first reference episode.
REFERENCE_SEED = 10_000


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


def check_task(task: str) -> None:
    """ValueError listing the known tasks unless ``task`` is one."""
    if task not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise ValueError(f"unknown task {task!r}; known tasks: {known}")


def expert_policy(task: str, **env_kwargs: Any) -> Policy:
    """The scripted reference expert policy of ``task``."""
    check_task(task)
    try:
        build = EXPERT_POLICIES[task]
    except KeyError:
        raise ValueError(
            f"no scripted reference expert for task {task!r}: S_expert comes from a trained behaviour policy "
            "('omar collect train', then 'omar collect dataset --policy SNAPSHOT')"
        ) from None
    return build(dict(env_kwargs))


def _check_args(task: str, episodes: int) -> None:
    check_task(task)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")


def env_maker(task: str, env_kwargs: dict[str, Any]) -> Callable[[], Any]:
    """A picklable env factory (worker processes of :func:`run_episodes_parallel` build their own)."""
    return functools.partial(make_env, task, **env_kwargs)


def _mean_return(task: str, env_kwargs: dict[str, Any], make_policy: Callable[[], Policy], episodes: int, seed: int, workers: int,
                 progress: bool = False) -> float:
    spec = task_spec(task, **env_kwargs)
    result = run_episodes_parallel(env_maker(task, env_kwargs), make_policy, num_episodes=episodes, seed=seed,
                                   episode_length=spec.episode_length, workers=workers, progress=progress)
    return float(task_returns(result).mean())


def random_return(task: str, episodes: int = 200, seed: int = REFERENCE_SEED, workers: int = 1, progress: bool = False,
                  **env_kwargs: Any) -> float:
    """``S_random``: mean return of uniform random actions in ``[-1, 1]`` (generator seeded
    ``seed``) over episodes seeded ``seed, seed + 1, ...`` (``progress``: a bar over them)."""
    _check_args(task, episodes)
    act_dim = max(task_spec(task, **env_kwargs).act_dims)
    return _mean_return(task, env_kwargs, functools.partial(seeded_uniform_random_policy, seed, act_dim), episodes, seed, workers, progress)


def expert_return(task: str, episodes: int = 200, seed: int = REFERENCE_SEED, workers: int = 1, snapshot: str | None = None,
                  progress: bool = False, **env_kwargs: Any) -> float:
    """``S_expert``: mean return of the task's scripted expert (:data:`EXPERT_POLICIES`), or of the
    MATD3 policy ``snapshot`` without noise, over episodes seeded ``seed, seed + 1, ...``."""
    _check_args(task, episodes)
    if snapshot is not None:
        from omar_lightning.data.collect.snapshots import load_snapshot, snapshot_policy_from_file

        load_snapshot(snapshot)  # a bad file is named here, before any worker starts
        make_policy = functools.partial(snapshot_policy_from_file, snapshot, 0.0, seed)
    else:
        make_policy = functools.partial(expert_policy, task, **env_kwargs)
    return _mean_return(task, env_kwargs, make_policy, episodes, seed, workers, progress)


def reference_returns(
    task: str, episodes: int = 200, seed: int = REFERENCE_SEED, workers: int = 1, **env_kwargs: Any
) -> tuple[float, float]:
    """``(S_random, S_expert)`` with the task's scripted expert: :func:`random_return` and
    :func:`expert_return` over the same ``episodes`` episodes, seeded ``seed, seed + 1, ...``."""
    _check_args(task, episodes)
    if task not in EXPERT_POLICIES:
        expert_policy(task, **env_kwargs)  # names the missing scripted expert before any episode
    return (random_return(task, episodes, seed, workers, **env_kwargs),
            expert_return(task, episodes, seed, workers, **env_kwargs))
