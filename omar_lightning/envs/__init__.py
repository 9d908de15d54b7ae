"""Environments used by OMAR, behind one registry.

``make_env("cooperative_navigation", num_agents=3)`` builds a PettingZoo ``ParallelEnv``;
``task_spec(task, **kwargs)`` gives the shapes a learner needs without keeping an env.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from pettingzoo import ParallelEnv

from omar_lightning.envs.cooperative_navigation import CooperativeNavigation
from omar_lightning.envs.halfcheetah import HalfCheetah2x3
from omar_lightning.envs.mpe_competitive import PredatorPrey, World

__all__ = ["TASKS", "TaskSpec", "make_env", "task_spec", "CooperativeNavigation", "HalfCheetah2x3", "PredatorPrey", "World"]

#: Task name -> constructor taking the task's keyword arguments. Cooperative navigation with
#: N agents (N = 1..5) is ``cooperative_navigation`` with ``num_agents: N``.
TASKS: dict[str, Callable[..., ParallelEnv]] = {
    "cooperative_navigation": CooperativeNavigation,
    "predator_prey": PredatorPrey,
    "world": World,
    "halfcheetah_2x3": HalfCheetah2x3,
}


def _check_task(task: str) -> Callable[..., ParallelEnv]:
    try:
        return TASKS[task]
    except (KeyError, TypeError):
        known = ", ".join(sorted(TASKS))
        raise ValueError(f"unknown task {task!r}; known tasks: {known}") from None


def make_env(task: str, **kwargs: Any) -> ParallelEnv:
    """Build the environment of ``task`` with the task's keyword arguments.

    Raises:
        ValueError: unknown task (the message lists the known ones), unknown argument
            (the message lists the accepted ones) or bad argument value.
    """
    ctor = _check_task(task)
    params = inspect.signature(ctor).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(
                f"unknown argument(s) {unknown} for task {task!r}; accepted: {sorted(params)}"
            )
    return ctor(**kwargs)


@dataclass(frozen=True)
class TaskSpec:
    """Shapes of a task, agents in ``possible_agents`` order."""

    task: str
    agent_names: list[str]
    obs_dims: list[int]
    act_dims: list[int]
    episode_length: int
    return_mode: str = "mean"
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: Size of the environment's global state (``TaskEnv.global_state_dim``); None without one.
    state_dim: int | None = None

    @property
    def num_agents(self) -> int:
        return len(self.agent_names)


def task_spec(task: str, **kwargs: Any) -> TaskSpec:
    """Describe ``task`` (built once with ``kwargs`` and closed again)."""
    env = make_env(task, **kwargs)
    try:
        names = list(env.possible_agents)
        obs_dims = [int(env.observation_space(a).shape[0]) for a in names]
        act_dims = [int(env.action_space(a).shape[0]) for a in names]
        episode_length = int(env.episode_length if hasattr(env, "episode_length") else env.max_cycles)
        return_mode = str(getattr(env, "return_mode", "mean"))
        state_dim = getattr(env, "global_state_dim", None)
    finally:
        env.close()
    return TaskSpec(
        task=task,
        agent_names=names,
        obs_dims=obs_dims,
        act_dims=act_dims,
        episode_length=episode_length,
        return_mode=return_mode,
        kwargs=dict(kwargs),
        state_dim=state_dim,
    )
