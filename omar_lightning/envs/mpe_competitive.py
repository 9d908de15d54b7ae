"""Predator-prey (mpe2 ``simple_tag``) and world (mpe2 ``simple_world_comm``) as OMAR ran them.

Only the adversaries learn; the other side (the prey of predator-prey, the good agents of
world) is driven inside the environment by a *fixed policy*, as in the paper where those agents
run a pretrained policy shipped with the datasets. The fixed policy is pluggable: it is looked
up by name in :data:`FIXED_POLICIES` (``register_fixed_policy`` adds one, for example a
pretrained network); the name is an environment keyword argument, so it is stored in a
dataset's ``env_kwargs`` and checked when training on it.

In the default variant the real mpe2 worlds are used unchanged (scenario, physics,
observations, rewards; mpe2's ``SimpleEnv._set_action`` handles the actions in both). What this
module adds:

* learning agents act with 2-D forces in ``[-1, 1]^2`` mapped by
  :func:`~omar_lightning.envs.cooperative_navigation.force_to_mpe_action`; the world's leader
  adds 4 communication numbers in ``[-1, 1]`` mapped to mpe2's ``[0, 1]`` by ``(c + 1) / 2``,
  so its action has 6 entries and the others' 2 (heterogeneous action sizes);
* the built-in fixed policies, documented below: :func:`flee_policy` and
  :func:`forage_flee_policy` (the mpe2 variant's defaults), :func:`uniform_random_fixed_policy`
  and its slow form :func:`random_walk_policy` (the official variants' default),
  :func:`evade_policy` (a look-ahead evader) and
  :func:`stand_still_policy`; and scripted chasers (:func:`chase_policy`) used as reference
  experts for ``S_expert`` until trained ones exist;
* ``dynamic_rescaling`` is off (it only changes drawing); episodes last ``max_cycles`` (25)
  steps and never terminate early.

Two variants, chosen with ``variant`` (an environment keyword argument, kept in a dataset's
``env_kwargs``): ``"mpe2"`` (default) is mpe2's scenario and physics unchanged;
``"official"`` is the environment of the official OMAR code's MPE fork, built on mpe2's
scenario classes with these overrides (each read from the fork's ``core.py``,
``simple_tag.py`` and ``simple_world.py``):

* physics: :func:`~omar_lightning.envs.official_physics.use_official_physics` (force before
  position; the action multiplied by the acceleration twice, so predators / adversaries are
  pushed with 9 and the prey / good agent with 16 per unit of action, against 3 and 4);
* the adversaries' reward: the fork's ``adversary_reward`` runs with ``shape = True`` and
  subtracts :data:`CHASE_SHAPING` (0.1) times the *summed* distance from every adversary to its
  nearest good agent, the same number for every adversary (:func:`chase_distances`);
* world only: the fork's reduced scenario (:class:`OfficialWorldScenario`).

Everything else the fork has is what mpe2 has (checked entry by entry): entity sizes, ``accel``
(3 / 4), ``max_speed`` (1.0 / 1.3), counts of obstacles, food and forests, the spawn boxes, the
collision tests and bonuses (+10 per predator-prey contact, +5 per contact in world) and the
observation layouts of predator-prey. The fixed agents' own rewards are never read (the fork
shapes them too; mpe2's are left as they are).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np
from gymnasium import spaces
from mpe2 import simple_tag_v3, simple_world_comm_v3
from mpe2._mpe_utils.simple_env import SimpleEnv
from mpe2.simple_tag import simple_tag as mpe2_tag
from mpe2.simple_world_comm import simple_world_comm as mpe2_world

from omar_lightning.envs.base import OFFICIAL, MPETaskEnv, check_variant
from omar_lightning.envs.cooperative_navigation import force_to_mpe_action
from omar_lightning.envs.official_physics import use_official_physics, uses_official_physics

__all__ = [
    "CHASE_SHAPING",
    "FIXED_POLICIES",
    "FIXED_POLICY_SETTINGS",
    "FixedPolicy",
    "OfficialTagScenario",
    "OfficialWorldScenario",
    "PredatorPrey",
    "VARIANTS",
    "WORLD_CATCH_REWARD",
    "World",
    "chase_distances",
    "chase_policy",
    "evade_policy",
    "flee_policy",
    "forage_flee_policy",
    "register_fixed_policy",
    "stand_still_policy",
    "random_walk_policy",
    "fixed_policy",
    "scaled_random_walk",
    "uniform_random_fixed_policy",
]

#: ``policy(obs [n_fixed, obs_dim] float32, env) -> forces [n_fixed, 2]`` in [-1, 1].
#: ``obs`` are the fixed agents' own mpe2 observations (one row per fixed agent).
FixedPolicy = Callable[[np.ndarray, "MPECompetitive"], np.ndarray]

#: Scripted flight: adversaries closer than this push the agent away.
FLEE_RADIUS = 1.0
#: Beyond this distance from the centre the agent is pulled back (mpe2 penalises leaving
#: the unit square from 0.9 on).
BOUND_RADIUS = 0.7
_RENDER_MODES = (None, "human", "rgb_array")
#: :func:`evade_policy`: look-ahead steps, candidate force directions, weight of the mean
#: distance beside the nearest, the box it keeps to, the penalty gain, the clearance it keeps
#: from obstacles.
EVADE_STEPS = 3
EVADE_DIRECTIONS = 16
EVADE_SPREAD_WEIGHT = 0.2
EVADE_BOUND = 0.8
EVADE_BOUND_GAIN = 10.0
EVADE_OBSTACLE_MARGIN = 0.05
_angles = 2 * np.pi * np.arange(EVADE_DIRECTIONS) / EVADE_DIRECTIONS
# No force first: it wins ties (nothing to flee from inside the box).
_EVADE_CANDIDATES = np.concatenate([np.zeros((1, 2)), np.stack([np.cos(_angles), np.sin(_angles)], -1)])
#: Variants of predator-prey and world (module docstring).
VARIANTS = ("mpe2", OFFICIAL)
#: The official fork's adversary shaping: every adversary's reward subtracts this times the
#: summed distance from each adversary to its nearest good agent.
CHASE_SHAPING = 0.1
#: World's reward to every adversary per (good agent, adversary) contact (mpe2 and the fork).
WORLD_CATCH_REWARD = 5.0


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(n > 1e-9, v / np.maximum(n, 1e-9), 0.0)


def _flee(pos: np.ndarray, vel: np.ndarray, adv_rel: np.ndarray, goal: np.ndarray | None = None) -> np.ndarray:
    """Away from adversaries (weight 1/d within FLEE_RADIUS), back towards the centre when
    outside BOUND_RADIUS, towards ``goal`` (relative) when no adversary is near; damped."""
    d = np.linalg.norm(adv_rel, axis=-1)  # [n_adv]; unseen adversaries have rel (0, 0)
    seen = (d > 1e-9) & (d < FLEE_RADIUS)
    away = np.zeros(2)
    if seen.any():
        away = -(adv_rel[seen] / d[seen, None] ** 2).sum(0)
    force = _unit(away) if seen.any() else np.zeros(2)
    if goal is not None and not seen.any():
        force = _unit(goal)
    r = np.linalg.norm(pos)
    if r > BOUND_RADIUS:
        force = force - (r - BOUND_RADIUS) * 10.0 * pos / r
    force = force - 0.3 * vel
    return np.clip(force, -1.0, 1.0)


def stand_still_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """No force (only contacts move the agent): the still target that a fixed policy should
    be no easier to catch than."""
    return np.zeros((np.asarray(obs).shape[0], 2), dtype=np.float32)


def uniform_random_fixed_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """Forces drawn uniformly in ``[-1, 1]^2`` at every step from the episode's generator
    (mpe2's ``np_random``, seeded by ``reset(seed=...)``), so an episode is the same for the
    same seed. Default of the official variants: uniform random adversaries score against it
    close to the official random tiers (docs/datasets.md, "Environment variants")."""
    return env.mpe_env.np_random.uniform(-1.0, 1.0, (np.asarray(obs).shape[0], 2)).astype(np.float32)


#: Largest force of :func:`random_walk_policy`: of 0, 0.1, 0.15, 0.2, 0.25, 0.5, 0.75 and 1, the
#: largest at which trained MATD3 predators come near the official expert tier's level against it
#: (docs/datasets.md, "Environment variants").
RANDOM_WALK_FORCE = 0.1


def random_walk_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """A slow random walk: :func:`uniform_random_fixed_policy` scaled by
    :data:`RANDOM_WALK_FORCE`, forces uniform in ``[-0.1, 0.1]^2`` from the episode's
    generator. Default of the official variants, whose pretrained prey and good agent are not
    public: no easier to catch than a still target, and hard enough at full force
    (``uniform_random``) that neither the scripted chasers nor trained MATD3 predators reach the
    official expert tiers' level against it."""
    return RANDOM_WALK_FORCE * uniform_random_fixed_policy(obs, env)


def scaled_random_walk(force: float, obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """:func:`uniform_random_fixed_policy` scaled by ``force``: the fixed policy
    ``random_walk:<force>`` (:func:`fixed_policy`)."""
    return force * uniform_random_fixed_policy(obs, env)


def flee_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """Scripted prey of predator-prey: run directly away from the predators.

    The prey's observation (both variants) is ``[vel(2), pos(2), obstacles_rel(2 *
    n_obstacles), others_rel(2 * (n_agents - 1)), good_others_vel]``, predators first among
    the others.
    The force is the unit vector of ``-sum_j rel_j / |rel_j|^2`` over predators within
    :data:`FLEE_RADIUS`, plus a pull back towards the centre beyond :data:`BOUND_RADIUS`
    (gain 10 per unit of distance) and velocity damping 0.3, clipped to [-1, 1].
    """
    base, n_adv = env.others_offset[0], env.num_learners
    out = np.zeros((obs.shape[0], 2), dtype=np.float32)
    for k, o in enumerate(obs):
        rel = o[base : base + 2 * n_adv].reshape(n_adv, 2)
        out[k] = _flee(o[2:4], o[0:2], rel)
    return out


def forage_flee_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """Scripted good agents of world: flee visible adversaries, otherwise go to the nearest food.

    A good agent's mpe2 observation is ``[vel(2), pos(2), landmarks_rel(2 * (1 + food +
    forests)), others_rel(2 * 5), in_forest(2), good_others_vel(2)]`` with the obstacle first,
    then the food, then the forests, and adversaries (leader first) first among the others;
    hidden agents appear at (0, 0); in the official variant the others are the 3 adversaries,
    followed by ``in_forest(2)`` (:class:`OfficialWorldScenario`). Flight as in
    :func:`flee_policy`; with no adversary within :data:`FLEE_RADIUS` the agent heads for the
    nearest food.
    """
    n_adv = env.num_learners
    out = np.zeros((obs.shape[0], 2), dtype=np.float32)
    lm = env.others_offset[0]
    for k, o in enumerate(obs):
        food = o[6 : 6 + 2 * env.num_food].reshape(-1, 2)
        goal = food[np.argmin(np.linalg.norm(food, axis=-1))]
        rel = o[lm : lm + 2 * n_adv].reshape(n_adv, 2)
        out[k] = _flee(o[2:4], o[0:2], rel, goal)
    return out


def _evade_one(o: np.ndarray, env: "MPECompetitive", agent: Any) -> np.ndarray:
    """:func:`evade_policy` for one observation row ``o`` of the fixed ``agent``."""
    n_adv, base = env.num_learners, env.others_offset[0]
    vel, pos = o[0:2].astype(np.float64), o[2:4].astype(np.float64)
    obstacles = pos + o[4 : 4 + 2 * env.num_obstacles].reshape(-1, 2)  # obstacles lead the landmarks
    rel = o[base : base + 2 * n_adv].reshape(n_adv, 2).astype(np.float64)
    seen = np.linalg.norm(rel, axis=-1) > 1e-9  # hidden adversaries read (0, 0)
    chasers = pos + rel[seen]
    world = env.world
    obstacle_size = np.array([lm.size for lm in world.landmarks[: env.num_obstacles]])
    # The agent's own dynamics: the world's gain per unit of action, damping, speed cap.
    gain = agent.accel * (agent.mass * agent.accel if uses_official_physics(world) else 1.0) / agent.mass
    u = _EVADE_CANDIDATES  # [K, 2]
    v = np.repeat(vel[None], len(u), axis=0)
    q = np.repeat(pos[None], len(u), axis=0)
    for _ in range(EVADE_STEPS):
        v = v * (1 - world.damping) + gain * u * world.dt
        speed = np.linalg.norm(v, axis=-1, keepdims=True)
        v = np.where(speed > agent.max_speed, v / np.maximum(speed, 1e-9) * agent.max_speed, v)
        q = q + v * world.dt
    value = np.zeros(len(u))
    if len(chasers):
        # Chasers are assumed to run straight at the agent's new position at full speed.
        reach = max(a.max_speed for a in env._learners) * EVADE_STEPS * world.dt
        d = np.linalg.norm(q[:, None, :] - chasers[None], axis=-1) - reach  # [K, n_seen]
        value += d.min(axis=1) + EVADE_SPREAD_WEIGHT * d.mean(axis=1)
    value -= EVADE_BOUND_GAIN * np.clip(np.abs(q) - EVADE_BOUND, 0.0, None).sum(-1)
    if len(obstacles):
        clearance = np.linalg.norm(q[:, None, :] - obstacles[None], axis=-1) - obstacle_size - agent.size
        value -= EVADE_BOUND_GAIN * np.clip(EVADE_OBSTACLE_MARGIN - clearance, 0.0, None).sum(-1)
    return u[int(np.argmax(value))]


def evade_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """Scripted evader (prey of predator-prey, good agent of world), from its own observation.

    Looks :data:`EVADE_STEPS` steps ahead: for each of :data:`EVADE_DIRECTIONS` unit forces
    (and no force) it rolls its own dynamics forward (the world's gain per unit of action,
    damping and speed cap), assumes every visible adversary runs straight at the new position at
    its top speed, and takes the force whose end point is farthest from the nearest adversary
    (plus :data:`EVADE_SPREAD_WEIGHT` times the mean distance), less a penalty of
    :data:`EVADE_BOUND_GAIN` per unit beyond :data:`EVADE_BOUND` on either axis and per unit of
    clearance below :data:`EVADE_OBSTACLE_MARGIN` from an obstacle. It stays in the arena, as
    an agent trained on MPE's boundary penalty does, so it can be cornered.
    """
    return np.stack([_evade_one(o, env, agent) for o, agent in zip(np.asarray(obs), env._fixed)]).astype(np.float32)


def chase_policy(obs: np.ndarray, env: "MPECompetitive") -> np.ndarray:
    """Scripted predators (reference expert for ``S_expert``), batched over env copies.

    ``obs [A, E, obs_dim]`` -> ``[A, E, act_dim]``: every adversary drives at the nearest
    visible good agent, aiming a little ahead of it along its velocity, with damping (forces in
    [-1, 1]); the leader's communication stays at -1 (mpe2's 0). Good agents hidden from an
    adversary (rel (0, 0)) are ignored; with none visible it heads for the centre.
    """
    obs = np.asarray(obs, dtype=np.float64)
    a, e = obs.shape[0], obs.shape[1]
    out = np.zeros((a, e, max(env.act_dims)), dtype=np.float32)
    out[:, :, 2:] = -1.0
    ng = env.num_good
    for i in range(a):
        base = env.others_offset[i]
        goods = obs[i, :, base + 2 * (env.num_agents_total - 1 - ng) : base + 2 * (env.num_agents_total - 1)]
        goods = goods.reshape(e, ng, 2)
        vel_base = base + 2 * (env.num_agents_total - 1)
        gvel = obs[i, :, vel_base : vel_base + 2 * ng].reshape(e, ng, 2)
        d = np.linalg.norm(goods, axis=-1)
        d = np.where(d > 1e-9, d, np.inf)
        j = np.argmin(d, axis=1)
        target = goods[np.arange(e), j] + 0.3 * gvel[np.arange(e), j]
        target = np.where(np.isfinite(d[np.arange(e), j])[:, None], target, -obs[i, :, 2:4])
        force = 5.0 * target - 0.5 * obs[i, :, 0:2]
        out[i, :, :2] = np.clip(force, -1.0, 1.0)
    out[:, :, 2:] *= np.asarray(env.act_dims)[:, None, None] > 2  # only the leader speaks
    return out


#: Fixed (non-learning) policies by name; environment keyword arguments refer to these names.
FIXED_POLICIES: dict[str, FixedPolicy] = {
    "evade": evade_policy,
    "flee": flee_policy,
    "forage_flee": forage_flee_policy,
    "stand_still": stand_still_policy,
    "random_walk": random_walk_policy,
    "uniform_random": uniform_random_fixed_policy,
}


#: Environment settings that name a fixed policy. They shape what the learners meet, not what
#: they see or do: a behaviour snapshot trained with one of them plays an environment that differs
#: from its own only in these (``omar_lightning.data.collect.snapshots.matching_snapshot``).
FIXED_POLICY_SETTINGS = ("prey_policy", "good_policy")


def fixed_policy(name: str, setting: str = "fixed policy") -> FixedPolicy:
    """The fixed policy called ``name``: a key of :data:`FIXED_POLICIES`, or ``random_walk:F`` for
    a random walk of largest force ``F`` in ``(0, 1]`` (:func:`scaled_random_walk`;
    ``random_walk`` is ``random_walk:0.1``). ValueError naming ``setting`` otherwise."""
    if isinstance(name, str) and name in FIXED_POLICIES:
        return FIXED_POLICIES[name]
    if isinstance(name, str) and name.startswith("random_walk:"):
        try:
            force = float(name.split(":", 1)[1])
        except ValueError:
            force = math.nan
        if 0.0 < force <= 1.0:
            return functools.partial(scaled_random_walk, force)
    raise ValueError(f"{setting} must be one of {sorted(FIXED_POLICIES)} or random_walk:F with 0 < F <= 1, got {name!r}")


def register_fixed_policy(name: str, policy: FixedPolicy) -> None:
    """Make ``policy`` usable as ``prey_policy`` / ``good_policy`` under ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a fixed policy needs a non-empty name, got {name!r}")
    if not callable(policy):
        raise ValueError(f"fixed policy {name!r} must be callable")
    FIXED_POLICIES[name] = policy


def chase_distances(world: Any) -> np.ndarray:
    """Distance from every adversary to its nearest good agent, ``[num_adversaries]`` float64."""
    goods = np.stack([a.state.p_pos for a in world.agents if not a.adversary])
    return np.array(
        [np.sqrt(np.square(goods - a.state.p_pos).sum(-1)).min() for a in world.agents if a.adversary],
        dtype=np.float64,
    )


class OfficialTagScenario(mpe2_tag.Scenario):
    """mpe2's ``simple_tag`` scenario with the official fork's adversary reward.

    mpe2 gives every predator +10 per predator-prey contact (any predator, so the reward is
    shared) and leaves its shaping off; the fork turns it on: each predator's reward also
    subtracts :data:`CHASE_SHAPING` times the sum over predators of their distance to the
    nearest prey, still one number for all predators.
    """

    def adversary_reward(self, agent: Any, world: Any) -> float:
        return float(super().adversary_reward(agent, world)) - CHASE_SHAPING * float(chase_distances(world).sum())


class OfficialWorldScenario(mpe2_world.Scenario):
    """mpe2's ``simple_world_comm`` scenario reduced as in the official fork's ``simple_world.py``.

    Overrides, each the fork's: 3 adversaries and 1 good agent (mpe2: 4 and 2), 1 obstacle,
    2 food, 2 forests (as mpe2); every agent is silent (mpe2's leader speaks) and has
    ``leader = True``, so everyone sees everyone through the forests; the adversaries are
    named ``adversary_0..2`` (none leads). The observation is the fork's: mpe2's observation
    of a leader without its last ``dim_c`` (4) numbers, the leader's communication, which the
    fork does not observe:

    ``[vel(2), pos(2), obstacle(2), food(2 x 2), forests(2 x 2), others_rel(2 x 3),
    good_vel(2 per good agent among the others), in_forest(2)]``, relative positions to the
    observer, others in agent order (adversaries first): 24 numbers for an adversary, 22 for
    the good agent. Adversary reward (:meth:`adversary_reward`): shared, the fork's.
    """

    def make_world(
        self,
        num_good_agents: int = 1,
        num_adversaries: int = 3,
        num_landmarks: int = 1,
        num_food: int = 2,
        num_forests: int = 2,
    ) -> Any:
        world = super().make_world(num_good_agents, num_adversaries, num_landmarks, num_food, num_forests)
        for i, agent in enumerate(world.agents):
            agent.leader = True
            agent.silent = True
            if agent.adversary:
                agent.name = f"adversary_{i}"
        return world

    def observation(self, agent: Any, world: Any) -> np.ndarray:
        obs = super().observation(agent, world)
        return obs[: obs.shape[0] - world.dim_c]

    def adversary_reward(self, agent: Any, world: Any) -> float:
        """:data:`WORLD_CATCH_REWARD` per (good agent, adversary) contact minus
        :data:`CHASE_SHAPING` times the summed adversary-to-nearest-good distance (mpe2
        shapes each adversary by its own distance only)."""
        contacts = sum(self.is_collision(g, a) for g in self.good_agents(world) for a in self.adversaries(world))
        return WORLD_CATCH_REWARD * contacts - CHASE_SHAPING * float(chase_distances(world).sum())


def _official_env(scenario: Any, world: Any, max_cycles: int, render_mode: str | None) -> SimpleEnv:
    """mpe2's ``SimpleEnv`` over ``scenario``'s ``world`` with the official fork's physics."""
    return SimpleEnv(
        scenario=scenario,
        world=use_official_physics(world),
        max_cycles=max_cycles,
        render_mode=render_mode,
        continuous_actions=True,
        dynamic_rescaling=False,
    )


class MPECompetitive(MPETaskEnv):
    """An mpe2 world whose adversaries learn and whose good agents follow a fixed policy."""

    metadata = {"render_modes": ["human", "rgb_array"], "is_parallelizable": True, "render_fps": 10}
    #: How the task return of an episode is read from the per-agent returns ("mean" or "first");
    #: set by each task.
    return_mode: str
    #: Landmark entries (obstacles first) before the other agents in every observation.
    num_landmarks_observed: int
    num_obstacles: int
    variant: str

    def __init__(self, mpe_env: Any, fixed_policy: str, max_cycles: int, render_mode: str | None, setting: str) -> None:
        self._fixed_policy = globals()["fixed_policy"](fixed_policy, setting)  # the module's function; the argument is its name
        self.fixed_policy_name = fixed_policy
        self.mpe_env = mpe_env
        self.max_cycles = int(max_cycles)
        self.render_mode = render_mode
        self._world = mpe_env.world
        self._scenario = mpe_env.scenario
        agents = list(self._world.agents)
        self._learners = [a for a in agents if a.adversary]
        self._fixed = [a for a in agents if not a.adversary]
        self._index = {a.name: i for i, a in enumerate(agents)}
        self.num_learners = len(self._learners)
        self.num_good = len(self._fixed)
        self.num_agents_total = len(agents)
        self.possible_agents = [a.name for a in self._learners]
        self.agents: list[str] = []
        self.act_dims = [2 if a.silent else 2 + self._world.dim_c for a in self._learners]
        self.action_spaces = {
            a.name: spaces.Box(-1.0, 1.0, shape=(d,), dtype=np.float32) for a, d in zip(self._learners, self.act_dims)
        }
        self.observation_spaces = {a.name: mpe_env.observation_space(a.name) for a in self._learners}
        self._mpe_spaces = {a.name: mpe_env.action_space(a.name) for a in agents}
        # Where the other agents' relative positions begin in every agent's observation.
        self.others_offset = [4 + 2 * self.num_landmarks_observed] * self.num_learners
        self._steps = 0

    # spaces and properties
    @property
    def world(self) -> Any:
        return self._world

    @property
    def episode_length(self) -> int:
        return self.max_cycles

    def _obs(self, agents: list[Any]) -> list[np.ndarray]:
        fn, world = self._scenario.observation, self._world
        return [fn(a, world).astype(np.float32) for a in agents]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self.mpe_env.reset(seed=seed, options=options)
        self._steps = 0
        self.agents = self.possible_agents[:]
        return dict(zip(self.possible_agents, self._obs(self._learners))), {n: {} for n in self.possible_agents}

    def mpe_action(self, index: int, action: np.ndarray) -> np.ndarray:
        """mpe2's continuous action of learning agent ``index`` for our action in [-1, 1]."""
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        move = force_to_mpe_action(a[:2])
        if self.act_dims[index] == 2:
            return move
        return np.concatenate([move, (a[2 : self.act_dims[index]] + 1.0) / 2.0]).astype(np.float32)

    def step_actions(self, actions: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, bool, bool]:
        """Array form of :meth:`step`: per learning agent actions in ``possible_agents`` order.

        Returns ``(observations, rewards [A] float64, terminated, truncated)``.
        """
        if not self.agents:
            raise RuntimeError("the episode is over (or never began): call reset() first")
        if len(actions) != self.num_learners:
            raise ValueError(f"expected actions for {self.num_learners} agents, got {len(actions)}")
        env = self.mpe_env
        for i, (agent, act) in enumerate(zip(self._learners, actions)):
            act = np.asarray(act, dtype=np.float32).reshape(-1)
            if act.shape[0] != self.act_dims[i] or not np.isfinite(act).all():
                raise ValueError(f"action of {agent.name} must be {self.act_dims[i]} finite numbers, got {act}")
            env.current_actions[self._index[agent.name]] = self.mpe_action(i, act)
        if self._fixed:
            forces = np.asarray(self._fixed_policy(np.stack(self._obs(self._fixed)), self), dtype=np.float32)
            mpe = force_to_mpe_action(forces.reshape(len(self._fixed), 2))
            for agent, act in zip(self._fixed, mpe):
                env.current_actions[self._index[agent.name]] = act
        env._execute_world_step()
        rewards = np.array([env.rewards[a.name] for a in self._learners], dtype=np.float64)
        self._steps += 1
        env.steps = self._steps
        truncated = self._steps >= self.max_cycles
        terminated = (not truncated) and bool(self._scenario.is_terminal(self._world))
        if truncated or terminated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return self._obs(self._learners), rewards, terminated, truncated

    def chase_distances(self) -> np.ndarray:
        """Distance from each learning agent to its nearest good agent, [num_learners] (the
        distance term that shapes the behaviour policy's training reward, ``MATD3Config.shaping``)."""
        return chase_distances(self._world).astype(np.float32)

    def step_forces(self, forces: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, bool, bool]:
        """``forces [A, act_dim]`` for all learning agents (equal action sizes only)."""
        forces = np.asarray(forces, dtype=np.float32)
        return self.step_actions([forces[i, : self.act_dims[i]] for i in range(self.num_learners)])

    def step(self, actions: dict[str, np.ndarray]):
        return self.parallel_result(*self.step_actions(self.ordered_actions(actions)))


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class PredatorPrey(MPECompetitive):
    """mpe2 ``simple_tag_v3``: 3 slower predators (``adversary_*``, learning) chase 1 faster prey
    (``agent_0``, fixed policy ``prey_policy``) around 2 obstacles; +10 to every predator for each
    predator-prey collision. The episode's task return is the first predator's (``return_mode``
    "first"), as the paper reports and the official evaluation reads it (``rewards[0][0]``).

    ``variant="official"`` (module docstring) adds the fork's physics and its shaped, shared
    predator reward :class:`OfficialTagScenario`; observations (16 numbers per predator:
    ``[vel, pos, obstacles_rel(2 x 2), others_rel(2 x 3), prey_vel]``), sizes, speeds and
    counts are mpe2's, which are the fork's.

    Args:
        num_adversaries: predators (the official code: 3).
        num_obstacles: obstacles (the official code: 2).
        max_cycles: episode length in steps.
        prey_policy: name in :data:`FIXED_POLICIES`; ``None`` takes the variant's default,
            ``"flee"`` for mpe2 and ``"random_walk"`` for the official variant.
        render_mode: ``None``, ``"human"`` or ``"rgb_array"``.
        variant: ``"mpe2"`` or ``"official"``.
    """

    def __init__(
        self,
        num_adversaries: int = 3,
        num_obstacles: int = 2,
        max_cycles: int = 25,
        prey_policy: str | None = None,
        render_mode: str | None = None,
        variant: str = "mpe2",
    ) -> None:
        num_adversaries = _check_int("num_adversaries", num_adversaries, 1)
        self.num_obstacles = _check_int("num_obstacles", num_obstacles, 0)
        max_cycles = _check_int("max_cycles", max_cycles, 1)
        self.variant = check_variant(variant, VARIANTS)
        if render_mode not in _RENDER_MODES:
            raise ValueError(f"render_mode must be one of {_RENDER_MODES}, got {render_mode!r}")
        if variant == OFFICIAL:
            scenario = OfficialTagScenario()
            world = scenario.make_world(num_good=1, num_adversaries=num_adversaries, num_obstacles=self.num_obstacles)
            raw = _official_env(scenario, world, max_cycles, render_mode)
        else:
            raw = simple_tag_v3.raw_env(
                num_good=1,
                num_adversaries=num_adversaries,
                num_obstacles=self.num_obstacles,
                max_cycles=max_cycles,
                continuous_actions=True,
                render_mode=render_mode,
                dynamic_rescaling=False,
            )
        if prey_policy is None:
            prey_policy = "random_walk" if variant == OFFICIAL else "flee"
        self.return_mode = "first"
        # Every agent's observation: [vel, pos, obstacles, others_rel(n-1), good_vel, ...].
        self.num_landmarks_observed = self.num_obstacles
        super().__init__(raw, prey_policy, max_cycles, render_mode, "prey_policy")


class World(MPECompetitive):
    """World: slower adversaries learn to catch faster good agents that eat food and hide in
    forests; the good agents follow the fixed policy ``good_policy``; 1 obstacle, 2 food,
    2 forests.

    ``variant="mpe2"`` (default) is mpe2's ``simple_world_comm_v3`` with its defaults: 4
    adversaries (the leader ``leadadversary_0``, whose action adds 4 communication numbers, and
    ``adversary_0..2``), 2 good agents, hidden agents in forests, 34 numbers per adversary;
    task return: the mean over the adversaries' returns. ``variant="official"`` is the official
    fork's reduced world (:class:`OfficialWorldScenario`: 3 silent adversaries, 1 good agent,
    everyone sees through forests, 24 numbers per adversary, a fully shared reward) with its
    physics; task return: the first adversary's return, as the official evaluation reads it.

    Args:
        max_cycles: episode length in steps.
        good_policy: name in :data:`FIXED_POLICIES`; ``None`` takes the variant's default,
            ``"forage_flee"`` for mpe2 and ``"random_walk"`` for the official variant.
        render_mode: ``None``, ``"human"`` or ``"rgb_array"``.
        variant: ``"mpe2"`` or ``"official"``.
    """

    def __init__(
        self,
        max_cycles: int = 25,
        good_policy: str | None = None,
        render_mode: str | None = None,
        variant: str = "mpe2",
    ) -> None:
        max_cycles = _check_int("max_cycles", max_cycles, 1)
        self.variant = check_variant(variant, VARIANTS)
        if render_mode not in _RENDER_MODES:
            raise ValueError(f"render_mode must be one of {_RENDER_MODES}, got {render_mode!r}")
        self.num_obstacles, self.num_food, self.num_forests = 1, 2, 2
        if variant == OFFICIAL:
            scenario = OfficialWorldScenario()
            world = scenario.make_world(1, 3, self.num_obstacles, self.num_food, self.num_forests)
            raw = _official_env(scenario, world, max_cycles, render_mode)
        else:
            raw = simple_world_comm_v3.raw_env(
                num_good=2,
                num_adversaries=4,
                num_obstacles=self.num_obstacles,
                num_food=self.num_food,
                num_forests=self.num_forests,
                max_cycles=max_cycles,
                continuous_actions=True,
                render_mode=render_mode,
                dynamic_rescaling=False,
            )
        if good_policy is None:
            good_policy = "random_walk" if variant == OFFICIAL else "forage_flee"
        self.return_mode = "first" if variant == OFFICIAL else "mean"
        # Every agent's observation: [vel, pos, obstacle, food, forests, others_rel(n-1), ...].
        self.num_landmarks_observed = self.num_obstacles + self.num_food + self.num_forests
        super().__init__(raw, good_policy, max_cycles, render_mode, "good_policy")
