"""Two-agent HalfCheetah (MaMuJoCo ``HalfCheetah`` ``2x3``) on real MuJoCo.

A thin PettingZoo ``ParallelEnv`` over gymnasium-robotics' ``mamujoco_v1.parallel_env``
(``HalfCheetah-v5`` of gymnasium underneath): ``agent_0`` drives the back leg's 3 joints
(actions in the order thigh, shin, foot), ``agent_1`` the front leg's; both get the same team
reward (forward velocity minus 0.1 times the squared action). Episodes are truncated after
``max_episode_steps`` (1000) steps and never terminate. The simulator is today's mujoco (see
``simulator_versions``): returns are not comparable with the MuJoCo 2.0 numbers of the paper;
never mix datasets and reference returns from different simulator versions.

Observations, by ``variant``:

* ``"mamujoco"`` (default): gymnasium-robotics' defaults, ``agent_obsk=1`` with global
  observations, 12 numbers per agent: position and velocity of the own 3 joints, the position
  of the neighbouring joint of the other leg, then the torso's z, angle and 3 velocities.
* ``"official"``: the official OMAR code's ``MujocoMulti`` settings, ``agent_obsk=0`` and no
  global categories, 6 numbers per agent: for each own joint in the order of its name (foot,
  shin, thigh), its angle ``qpos`` then its angular velocity ``qvel`` (:data:`OFFICIAL_OBS`).
  The official partition, action order, reward and time limit are the ones above.

``state()`` is the global state in both variants: gymnasium-robotics' MaMuJoCo returns its
single-agent environment's observation, whatever ``agent_obsk`` and global categories are, so
it is ``HalfCheetah-v5``'s 17 numbers (``qpos`` without the torso's x position, 8 numbers, then
``qvel``, 9 numbers: the torso's x velocity, which the reward is made of, is ``state()[8]``).
The official OMAR datasets store this state beside the agents' observations (``states_<i>.npy``).
"""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Any

import numpy as np
from gymnasium import spaces

from omar_lightning.envs.base import OFFICIAL, TaskEnv, check_variant

__all__ = ["HalfCheetah2x3", "OFFICIAL_OBS", "VARIANTS", "simulator_versions"]

_RENDER_MODES = (None, "human", "rgb_array")
#: Observation variants (module docstring).
VARIANTS = ("mamujoco", OFFICIAL)
#: The official variant's observation of each agent: (joint, quantity) per entry, joints named
#: as in HalfCheetah's MuJoCo model.
OFFICIAL_OBS = {
    "agent_0": [("bfoot", "qpos"), ("bfoot", "qvel"), ("bshin", "qpos"), ("bshin", "qvel"), ("bthigh", "qpos"), ("bthigh", "qvel")],
    "agent_1": [("ffoot", "qpos"), ("ffoot", "qvel"), ("fshin", "qpos"), ("fshin", "qvel"), ("fthigh", "qpos"), ("fthigh", "qvel")],
}


def simulator_versions() -> dict[str, str]:
    """Versions of the packages that determine HalfCheetah's dynamics."""
    out = {}
    for pkg in ("mujoco", "gymnasium", "gymnasium-robotics"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "missing"
    return out


class HalfCheetah2x3(TaskEnv):
    """MaMuJoCo HalfCheetah 2x3: 2 agents, 3 joints each, shared team reward.

    Args:
        max_episode_steps: time limit (the official code: 1000).
        render_mode: ``None``, ``"human"`` or ``"rgb_array"``.
        variant: ``"mamujoco"`` (12 numbers per agent) or ``"official"`` (6; module docstring).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "is_parallelizable": True, "render_fps": 20}
    #: The team reward is shared: the mean over agents is every agent's return.
    return_mode = "mean"

    def __init__(self, max_episode_steps: int = 1000, render_mode: str | None = None, variant: str = "mamujoco") -> None:
        if isinstance(max_episode_steps, bool) or not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be an int >= 1, got {max_episode_steps!r}")
        if render_mode not in _RENDER_MODES:
            raise ValueError(f"render_mode must be one of {_RENDER_MODES}, got {render_mode!r}")
        self.variant = check_variant(variant, VARIANTS)
        # The official MujocoMulti: agent_obsk 0, no global categories (own joints' qpos, qvel).
        obs_kwargs = {"agent_obsk": 0, "global_categories": ()} if variant == OFFICIAL else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from gymnasium_robotics import mamujoco_v1

            self._env = mamujoco_v1.parallel_env("HalfCheetah", "2x3", render_mode=render_mode, **obs_kwargs)
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.possible_agents = list(self._env.possible_agents)
        self.agents: list[str] = []
        self.observation_spaces = {a: self._env.observation_space(a) for a in self.possible_agents}
        self.global_state_dim = int(self._env.single_agent_env.observation_space.shape[0])  # 17
        self.action_spaces = {a: spaces.Box(-1.0, 1.0, shape=self._env.action_space(a).shape, dtype=np.float32) for a in self.possible_agents}
        self._steps = 0

    @property
    def episode_length(self) -> int:
        return self.max_episode_steps

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self._env.reset(seed=seed, options=options)
        self._steps = 0
        self.agents = self.possible_agents[:]
        return {a: np.asarray(obs[a], dtype=np.float32) for a in self.possible_agents}, info

    def step_forces(self, actions: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, bool, bool]:
        """``actions [2, 3]`` in [-1, 1] -> ``(observations, rewards [2], terminated, truncated)``."""
        if not self.agents:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (2, 3) or not np.isfinite(actions).all():
            raise ValueError(f"actions must be 2 x 3 finite numbers, got shape {actions.shape}")
        acts = np.clip(actions, -1.0, 1.0)
        obs, rew, term, trunc, _ = self._env.step({a: acts[i] for i, a in enumerate(self.possible_agents)})
        self._steps += 1
        terminated = bool(term[self.possible_agents[0]])
        truncated = (not terminated) and (self._steps >= self.max_episode_steps or bool(trunc[self.possible_agents[0]]))
        if terminated or truncated:
            self.agents = []
        obs_list = [np.asarray(obs[a], dtype=np.float32) for a in self.possible_agents]
        return obs_list, np.array([float(rew[a]) for a in self.possible_agents]), terminated, truncated

    def step(self, actions: dict[str, np.ndarray]):
        forces = np.stack([np.asarray(a, dtype=np.float32).reshape(3) for a in self.ordered_actions(actions)])
        return self.parallel_result(*self.step_forces(forces))

    def state(self) -> np.ndarray:
        """The global state ``[17]`` float32: HalfCheetah-v5's observation (module docstring)."""
        return np.asarray(self._env.state(), dtype=np.float32)

    def render(self) -> np.ndarray | None:
        return self._env.render()

    def close(self) -> None:
        self._env.close()
