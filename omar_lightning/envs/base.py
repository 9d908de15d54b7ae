"""What the task environments share: PettingZoo's dict API on top of list-based stepping."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv


class TaskEnv(ParallelEnv):
    """The base of every task's environment: a ParallelEnv whose spaces live in
    ``observation_spaces`` / ``action_spaces`` dicts, with helpers that turn PettingZoo's dicts
    into the per-agent lists the tasks step on and back."""

    observation_spaces: dict[str, spaces.Space]
    action_spaces: dict[str, spaces.Space]
    #: Size of ``state()`` where it is a global state holding more than the agents' observations
    #: (HalfCheetah: the single-agent observation, torso velocities included); None where
    #: ``state()`` is the agents' observations concatenated (the MPE tasks), which centralized
    #: critics see already.
    global_state_dim: int | None = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def ordered_actions(self, actions: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The actions of ``possible_agents`` in order; KeyError naming any agent left out."""
        missing = [n for n in self.possible_agents if n not in actions]
        if missing:
            raise KeyError(f"no action given for agents {missing}")
        return [actions[n] for n in self.possible_agents]

    def parallel_result(self, obs: Sequence[np.ndarray], rewards: Sequence[float], terminated: bool, truncated: bool) -> tuple[dict, dict, dict, dict, dict[str, dict[str, Any]]]:
        """PettingZoo's (obs, rewards, terminations, truncations, infos) dicts of one joint step."""
        names = self.possible_agents
        return (
            dict(zip(names, obs)),
            {n: float(r) for n, r in zip(names, rewards)},
            {n: terminated for n in names},
            {n: truncated for n in names},
            {n: {} for n in names},
        )


class MPETaskEnv(TaskEnv):
    """The base of the MPE tasks: a TaskEnv driving an mpe2 env held in ``mpe_env``."""

    mpe_env: Any
    render_mode: str | None

    def state(self) -> np.ndarray:
        """Global state: all agents' observations concatenated (mpe2's ``state()``)."""
        return self.mpe_env.state()

    def render(self) -> np.ndarray | None:
        return self.mpe_env.render()

    def close(self) -> None:
        # mpe2's close() calls pygame.quit(), which would also tear down the display of any
        # other environment that is rendering; only do it when this one rendered.
        if self.render_mode is not None:
            self.mpe_env.close()
        else:
            self.mpe_env.screen = None


#: The variant of every task that is the environment the official OMAR code ran (its MPE fork,
#: its MaMuJoCo settings); each task's other variant is its simulator package's own.
OFFICIAL = "official"


def check_variant(variant: object, choices: tuple[str, ...]) -> str:
    """``variant`` if it is one of ``choices``; ValueError listing them otherwise."""
    if not isinstance(variant, str) or variant not in choices:
        raise ValueError(f"variant must be one of {choices}, got {variant!r}")
    return variant
