"""Cooperative navigation (MPE ``simple_spread``) as the official OMAR code ran it.

The environment wraps the real ``mpe2.simple_spread_v3`` world: mpe2's own scenario,
physics (``World.step``), action handling (``SimpleEnv._set_action``) and observation code
are used unchanged. What this module adds:

* a 2-D force action in ``[-1, 1]^2`` per agent (the tanh output of an actor), mapped onto
  mpe2's 5-number continuous action by :func:`force_to_mpe_action`;
* the reward of the official OMAR code (``reward="paper"``), see :func:`paper_reward`;
* a lean parallel step loop that drives mpe2's raw environment directly instead of going
  through PettingZoo's generic AEC -> parallel conversion (about 3x to 4x faster, same
  numbers);
* ``layout="line"``: the 1-D Spread of the paper's Section 3.1 (agents, landmarks and reward on
  mpe2's x axis, 1-D actions), see :class:`CooperativeNavigation`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from mpe2 import simple_spread_v3

from omar_lightning.envs.base import OFFICIAL, MPETaskEnv, check_variant
from omar_lightning.envs.official_physics import use_official_physics

__all__ = [
    "CooperativeNavigation",
    "LAYOUTS",
    "MAX_AGENTS",
    "PAPER_COLLISION_PENALTY",
    "PAPER_MAX_LANDMARK_REWARD",
    "REWARD_MODES",
    "VARIANTS",
    "force_to_mpe_action",
    "line_force_to_mpe_action",
    "line_observation_index",
    "paper_reward",
]

#: Largest supported number of agents (the scripted reference controller solves the
#: agent-to-landmark assignment by brute force over permutations).
MAX_AGENTS = 5
#: Reward modes understood by :class:`CooperativeNavigation`.
REWARD_MODES = ("paper", "mpe2")
#: Environment variants: mpe2's own dynamics, or the official OMAR code's MPE fork.
VARIANTS = ("mpe2", OFFICIAL)
#: World layouts: mpe2's plane with 2-D forces, or the x axis with 1-D forces (Section 3.1).
LAYOUTS = ("plane", "line")
#: Cap on each landmark's coverage term ``1 / distance`` in the paper reward.
PAPER_MAX_LANDMARK_REWARD = 10.0
#: Penalty per collision in the paper reward.
PAPER_COLLISION_PENALTY = 5.0
_RENDER_MODES = (None, "human", "rgb_array")


def force_to_mpe_action(force: np.ndarray) -> np.ndarray:
    """Map 2-D forces ``(x, y)`` in ``[-1, 1]`` to mpe2's 5-number continuous action.

    mpe2 (``SimpleEnv._set_action``) moves an agent by ``u_x = a[2] - a[1]`` and
    ``u_y = a[4] - a[3]``, each entry in ``[0, 1]``. A force is clipped to ``[-1, 1]`` and
    split into ``[0, max(-x, 0), max(x, 0), max(-y, 0), max(y, 0)]``.

    Args:
        force: array of shape ``[..., 2]`` (any leading batch shape).

    Returns:
        float32 array of shape ``[..., 5]``.
    """
    f = np.asarray(force, dtype=np.float32)
    if f.ndim == 0 or f.shape[-1] != 2:
        raise ValueError(f"force must have shape [..., 2], got shape {f.shape}")
    clipped = np.minimum(np.maximum(f, -1.0), 1.0)
    out = np.zeros(f.shape[:-1] + (5,), dtype=np.float32)
    np.maximum(-clipped, 0.0, out=out[..., 1::2])  # [1], [3]: max(-x, 0), max(-y, 0)
    np.maximum(clipped, 0.0, out=out[..., 2::2])  # [2], [4]: max(x, 0), max(y, 0)
    return out


def line_force_to_mpe_action(force: np.ndarray) -> np.ndarray:
    """Map 1-D forces ``x`` in ``[-1, 1]`` (along mpe2's x axis) to mpe2's 5-number action.

    The force ``(x, 0)`` through :func:`force_to_mpe_action`:
    ``[0, max(-x, 0), max(x, 0), 0, 0]``, so mpe2 moves the agent by ``u_x = clip(x)`` and
    ``u_y = 0``.

    Args:
        force: array of shape ``[..., 1]``.

    Returns:
        float32 array of shape ``[..., 5]``.
    """
    f = np.asarray(force, dtype=np.float32)
    if f.ndim == 0 or f.shape[-1] != 1:
        raise ValueError(f"force must have shape [..., 1], got shape {f.shape}")
    return force_to_mpe_action(np.concatenate([f, np.zeros_like(f)], axis=-1))


def line_observation_index(num_agents: int) -> np.ndarray:
    """Entries of mpe2's spread observation kept on the line (its x components and the comm).

    mpe2's observation of ``N`` agents is ``[vel(2), pos(2), landmark_rel(2N),
    other_rel(2(N-1)), comm(2(N-1))]`` with ``(x, y)`` pairs; the line keeps each pair's x
    (its y is always 0) and the communication slots as they are::

        [vel_x, pos_x, landmark_rel_x(N), other_rel_x(N-1), comm(2(N-1))]   # 4N - 1 numbers

    Returns:
        int64 array of ``4N - 1`` indices into the ``6N``-number observation.
    """
    n = int(num_agents)
    xs = np.arange(0, 4 * n + 2, 2)  # x of vel, pos, N landmarks, N - 1 others
    comm = np.arange(4 * n + 2, 6 * n)
    return np.concatenate([xs, comm]).astype(np.int64)


def paper_reward(world: Any) -> np.ndarray:
    """Per-agent reward of the official OMAR cooperative-navigation scenario.

    For agent ``i``::

        r_i = sum_l min(1 / d_l, 10) - 5 * #{j != i : agents i and j collide}

    where ``d_l`` is the distance from landmark ``l`` to its nearest agent and two agents
    collide when their distance is below the sum of their sizes (mpe2's ``is_collision``).
    The coverage term is shared by all agents; the collision term counts the collisions
    the agent itself is part of (the official scenario's ``reward(agent, world)``, with the
    environment's ``shared_reward = False``). So a colliding pair costs each of its two
    agents 5, and the mean over agents is ``coverage - 10 * pairs / N``.

    Args:
        world: an mpe2 ``World`` holding ``agents`` and ``landmarks``.

    Returns:
        float64 array ``[num_agents]``.
    """
    agents = world.agents
    # Plain Python floats: for a handful of entities this is several times faster than
    # numpy, and gives the same numbers as mpe2's sqrt(sum(square(delta))).
    apos = [a.state.p_pos.tolist() for a in agents]
    coverage = 0.0
    for lx, ly in (lm.state.p_pos.tolist() for lm in world.landmarks):
        nearest = min(math.sqrt((ax - lx) * (ax - lx) + (ay - ly) * (ay - ly)) for ax, ay in apos)
        coverage += (
            PAPER_MAX_LANDMARK_REWARD
            if nearest == 0.0
            else min(1.0 / nearest, PAPER_MAX_LANDMARK_REWARD)
        )
    n = len(agents)
    collisions = [0] * n
    for i in range(n):
        xi, yi = apos[i]
        for j in range(i + 1, n):
            xj, yj = apos[j]
            dist = math.sqrt((xi - xj) * (xi - xj) + (yi - yj) * (yi - yj))
            if dist < agents[i].size + agents[j].size:
                collisions[i] += 1
                collisions[j] += 1
    return np.array(
        [coverage - PAPER_COLLISION_PENALTY * c for c in collisions], dtype=np.float64
    )


class CooperativeNavigation(MPETaskEnv):
    """N agents must cover N landmarks without colliding (mpe2 ``simple_spread_v3``).

    Agents are named ``agent_0 .. agent_{N-1}``. In the default ``layout="plane"`` each takes
    a 2-D force in ``[-1, 1]^2``
    (``Box(-1, 1, (2,), float32)``; values outside are clipped), scaled by mpe2's
    acceleration of 5. Observations are mpe2's, as float32::

        [self_vel(2), self_pos(2), landmark_rel_pos(2N), other_agents_rel_pos(2(N-1)),
         comm(2(N-1))]                                   # 6N numbers

    Episodes end by truncation after ``max_cycles`` steps; mpe2's simple_spread never
    terminates (``terminate_on_success`` is off).

    Choices made against mpe2's defaults:

    * ``dynamic_rescaling=False``: in mpe2 1.1.1 this flag only changes how large entities
      are drawn by ``render()``; sizes used by the physics, the collision test and the
      rewards are the same either way. It is off so frames show true sizes.
    * ``reward="paper"`` (default) uses the official OMAR reward (:func:`paper_reward`),
      whose returns are positive (the paper's raw returns such as 267.9 are on this scale).
      ``reward="mpe2"`` returns mpe2's own reward unchanged,
      ``(1 - local_ratio) * global + local_ratio * local`` with global = minus the sum of
      nearest-agent distances and local = minus 1 per collision of the agent.
    * ``variant="mpe2"`` (default) keeps mpe2's physics and draws initial positions
      uniformly in ``[-1, 1]^2`` for every ``N``. ``variant="official"`` is the world of the
      official OMAR code's MPE fork: its physics (force applied before the position update,
      :mod:`omar_lightning.envs.official_physics`) and, for ``N > 3``, initial positions in
      ``[-2, 2]^2`` (mpe2's uniform draw in ``[-1, 1]^2`` scaled by 2). With 2-D forces and no
      ``accel`` the action force is 5 in both.

    ``layout="line"`` is the Spread of the paper's Section 3.1 ("n agents and n landmarks
    (n >= 1) with 1-dimensional action space"): every agent and landmark lies on mpe2's x
    axis, and each agent takes one force ``x`` in ``[-1, 1]`` (``Box(-1, 1, (1,), float32)``),
    mapped to mpe2's action ``[0, max(-x, 0), max(x, 0), 0, 0]``
    (:func:`line_force_to_mpe_action`). It is mpe2's own world, physics (either variant),
    collision test and rewards: a reset draws mpe2's positions (scaled as the variant says)
    and sets every y to 0; no y force ever acts (the action's y is 0 and contact forces point
    along the x axis), so y stays exactly 0 and every distance, the reward's included, is a
    distance along the line. Observations are mpe2's with the y components left out
    (:func:`line_observation_index`)::

        [self_vel_x, self_pos_x, landmark_rel_x(N), other_agents_rel_x(N-1),
         comm(2(N-1))]                                   # 4N - 1 numbers

    Why a line, and not the plane with one action axis: the official code has no 1-D Spread
    (its MPE fork fixes ``dim_p = 2`` in every scenario), so the setting is read from the
    paper's text and numbers. With agents that move along x but landmarks anywhere in the
    plane, a landmark's y gap to its nearest agent never closes, and no policy can return more
    than 224.3 with 2 agents (a bound over the 200 reference episodes,
    ``benchmarks/line_spread_scale.py``), below the paper's 2-agent MA-CQL return of 267.9
    (Tables 1 and 2, official reward). On the line every landmark is reachable and the reward
    is the official one unchanged: 2 agents score 186.1 with uniform random actions and 410.0
    with the scripted controller (``variant="official"``: 206.8 and 437.5), which brackets
    267.9; the 1-D action is the whole action, so a Q-function landscape over it (Figure
    1(d)) is a curve.

    Args:
        num_agents: number of agents and of landmarks, 1 to 5.
        max_cycles: episode length (steps before truncation), at least 1.
        reward: ``"paper"`` or ``"mpe2"``.
        local_ratio: weight of mpe2's local (collision) reward, in ``[0, 1]``; only used
            with ``reward="mpe2"``.
        variant: ``"mpe2"`` or ``"official"`` (above).
        layout: ``"plane"`` (mpe2's 2-D spread, the default) or ``"line"`` (above).
        render_mode: ``None``, ``"human"`` or ``"rgb_array"``.
    """

    metadata = {
        "name": "cooperative_navigation_v0",
        "render_modes": ["human", "rgb_array"],
        "is_parallelizable": True,
        "render_fps": 10,
    }

    def __init__(
        self,
        num_agents: int = 3,
        max_cycles: int = 25,
        reward: str = "paper",
        local_ratio: float = 0.5,
        render_mode: str | None = None,
        variant: str = "mpe2",
        layout: str = "plane",
    ) -> None:
        if isinstance(num_agents, bool) or not isinstance(num_agents, (int, np.integer)):
            raise ValueError(f"num_agents must be an int, got {num_agents!r}")
        if not 1 <= num_agents <= MAX_AGENTS:
            raise ValueError(f"num_agents must be in [1, {MAX_AGENTS}], got {num_agents}")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, (int, np.integer)):
            raise ValueError(f"max_cycles must be an int, got {max_cycles!r}")
        if max_cycles < 1:
            raise ValueError(f"max_cycles must be >= 1, got {max_cycles}")
        if reward not in REWARD_MODES:
            raise ValueError(f"reward must be one of {REWARD_MODES}, got {reward!r}")
        if isinstance(local_ratio, bool) or not isinstance(
            local_ratio, (int, float, np.floating, np.integer)
        ):
            raise ValueError(f"local_ratio must be a float, got {local_ratio!r}")
        if not 0.0 <= float(local_ratio) <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1], got {local_ratio}")
        check_variant(variant, VARIANTS)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if render_mode not in _RENDER_MODES:
            raise ValueError(
                f"render_mode must be one of {_RENDER_MODES}, got {render_mode!r}"
            )

        self.n_agents = int(num_agents)
        self.max_cycles = int(max_cycles)
        self.reward_mode = reward
        self.local_ratio = float(local_ratio)
        self.render_mode = render_mode
        self.variant = variant
        self.layout = layout
        self._line = layout == "line"

        # The raw mpe2 environment, without PettingZoo's AEC wrappers.
        self.mpe_env = simple_spread_v3.raw_env(
            N=self.n_agents,
            local_ratio=self.local_ratio,
            max_cycles=self.max_cycles,
            continuous_actions=True,
            render_mode=render_mode,
            dynamic_rescaling=False,
        )
        self._world = self.mpe_env.world
        if variant == OFFICIAL:
            use_official_physics(self._world)
        # The official fork spreads more than 3 agents and their landmarks over [-2, 2]^2.
        self._spawn_scale = 2.0 if variant == OFFICIAL and self.n_agents > 3 else 1.0
        self._scenario = self.mpe_env.scenario
        self._mpe_agents = list(self._world.agents)

        self.possible_agents = [a.name for a in self._mpe_agents]
        self.agents: list[str] = []
        self.act_dim = 1 if self._line else 2
        self._act_space = spaces.Box(-1.0, 1.0, shape=(self.act_dim,), dtype=np.float32)
        self.action_spaces = {name: self._act_space for name in self.possible_agents}
        if self._line:
            self._obs_index = line_observation_index(self.n_agents)
            obs_space = spaces.Box(-np.inf, np.inf, shape=(len(self._obs_index),), dtype=np.float32)
            self.observation_spaces = {name: obs_space for name in self.possible_agents}
            self.state_space = spaces.Box(
                -np.inf, np.inf, shape=(self.n_agents * len(self._obs_index),), dtype=np.float32
            )
        else:
            self.observation_spaces = {
                name: self.mpe_env.observation_space(name) for name in self.possible_agents
            }
            self.state_space = self.mpe_env.state_space
        self._mpe_action_spaces = [
            self.mpe_env.action_space(name) for name in self.possible_agents
        ]
        self._steps = 0

    # ------------------------------------------------------------------ spaces
    @property
    def world(self) -> Any:
        """mpe2's ``World`` (entities, physics state)."""
        return self._world

    @property
    def episode_length(self) -> int:
        return self.max_cycles

    @property
    def steps(self) -> int:
        """Steps taken in the current episode."""
        return self._steps

    # ------------------------------------------------------------------ API
    def observations(self) -> list[np.ndarray]:
        """Every agent's observation of the current world (float32, ``possible_agents`` order)."""
        obs_fn = self._scenario.observation
        world = self._world
        if self._line:
            idx = self._obs_index
            return [obs_fn(a, world)[idx].astype(np.float32) for a in self._mpe_agents]
        return [obs_fn(a, world).astype(np.float32) for a in self._mpe_agents]

    def state(self) -> np.ndarray:
        """Global state: all agents' observations concatenated."""
        if self._line:
            return np.concatenate(self.observations())
        return super().state()

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        self.mpe_env.reset(seed=seed, options=options)
        if self._spawn_scale != 1.0:
            for entity in self._world.entities:
                entity.state.p_pos = entity.state.p_pos * self._spawn_scale
        if self._line:
            for entity in self._world.entities:
                entity.state.p_pos = np.array([entity.state.p_pos[0], 0.0])
        self._steps = 0
        self.agents = self.possible_agents[:]
        obs = self.observations()
        return (
            dict(zip(self.possible_agents, obs)),
            {name: {} for name in self.possible_agents},
        )

    def step_forces(
        self, forces: np.ndarray
    ) -> tuple[list[np.ndarray], np.ndarray, bool, bool]:
        """Array form of :meth:`step`.

        Args:
            forces: ``[N, 2]`` forces for all agents (``[N, 1]`` on the line), in
                ``possible_agents`` order.

        Returns:
            ``(observations, rewards [N] float64, terminated, truncated)`` with the
            observations as a list of float32 arrays in ``possible_agents`` order.
        """
        if not self.agents:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        forces = np.asarray(forces, dtype=np.float32)
        if forces.shape != (self.n_agents, self.act_dim):
            raise ValueError(
                f"forces must have shape ({self.n_agents}, {self.act_dim}), got {forces.shape}"
            )
        if not np.isfinite(forces).all():
            raise ValueError("forces must be finite")
        mpe_actions = line_force_to_mpe_action(forces) if self._line else force_to_mpe_action(forces)
        env = self.mpe_env
        if self.reward_mode == "paper":
            set_action = env._set_action
            for i, agent in enumerate(self._mpe_agents):
                set_action([mpe_actions[i]], agent, self._mpe_action_spaces[i])
            self._world.step()
            rewards = paper_reward(self._world)
        else:
            for i in range(self.n_agents):
                env.current_actions[i] = mpe_actions[i]
            env._execute_world_step()
            rewards = np.array(
                [env.rewards[name] for name in self.possible_agents], dtype=np.float64
            )
        self._steps += 1
        env.steps = self._steps
        truncated = self._steps >= self.max_cycles
        terminated = (not truncated) and bool(self._scenario.is_terminal(self._world))
        if truncated or terminated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return self.observations(), rewards, terminated, truncated

    def step(
        self, actions: dict[str, np.ndarray]
    ) -> tuple[
        dict[str, np.ndarray],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, dict[str, Any]],
    ]:
        if not self.agents:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        forces = np.stack([np.asarray(a, dtype=np.float32).reshape(self.act_dim) for a in self.ordered_actions(actions)])
        return self.parallel_result(*self.step_forces(forces))
