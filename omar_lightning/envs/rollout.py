"""Batched rollouts: E copies of a PettingZoo ``ParallelEnv`` stepped in lockstep.

A policy sees one stacked batch per step and acts for all agents of all live copies at
once, so a neural or vectorised policy is called once per step, not once per env.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from pettingzoo import ParallelEnv

__all__ = [
    "EnvCopies",
    "Policy",
    "RolloutResult",
    "run_episodes",
    "run_episodes_parallel",
    "seeded_uniform_random_policy",
    "task_returns",
    "uniform_random_policy",
]

#: ``policy(obs [A, E, max_obs_dim] float32) -> actions [A, E, max_act_dim]``
Policy = Callable[[np.ndarray], np.ndarray]


@dataclass
class RolloutResult:
    """Outcome of :func:`run_episodes`.

    Attributes:
        episode_returns: ``[num_episodes, A]`` undiscounted return of every agent.
        episode_lengths: ``[num_episodes]`` steps per episode.
        agent_names: agent ids, in ``possible_agents`` order (the ``A`` axis).
        obs, actions, rewards, next_obs, dones: with ``record=True``, one array per agent
            holding all transitions ordered by episode then time: ``obs [N, obs_dim_i]``,
            ``actions [N, act_dim_i]`` (the actions as stepped, float32), ``rewards [N]``,
            ``next_obs [N, obs_dim_i]``, ``dones [N]`` (1.0 only for a true termination,
            0.0 at a time-limit truncation). All float32. ``None`` without recording.
    """

    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    agent_names: list[str]
    obs: list[np.ndarray] | None = None
    actions: list[np.ndarray] | None = None
    rewards: list[np.ndarray] | None = None
    next_obs: list[np.ndarray] | None = None
    dones: list[np.ndarray] | None = None
    seeds: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    return_mode: str = "mean"

    @property
    def num_episodes(self) -> int:
        return int(self.episode_returns.shape[0])

    @property
    def num_transitions(self) -> int:
        return int(self.episode_lengths.sum())


#: How the task's return of an episode is read from its per-agent returns ``[num_episodes, A]``.
RETURN_MODES = ("mean", "first")


def task_returns(result: RolloutResult) -> np.ndarray:
    """The task's return of every episode, ``[num_episodes]`` (``return_mode``, taken from the
    environment's ``return_mode`` attribute by :func:`run_episodes`):

    * ``"mean"``: the mean over agents of their returns. With a reward shared by all agents
      this is each agent's return; with the official cooperative-navigation reward (per-agent
      collision penalty) it is what the official code reports (the mean of the agents'
      rewards, summed over the episode).
    * ``"first"``: the first agent's return (predator-prey: the first predator, as the paper
      reports).
    """
    returns = np.asarray(result.episode_returns, dtype=np.float64)
    if result.return_mode == "first":
        return returns[:, 0].copy()
    if result.return_mode != "mean":
        raise ValueError(f"return_mode must be one of {RETURN_MODES}, got {result.return_mode!r}")
    return returns.mean(axis=1)


def uniform_random_policy(rng: np.random.Generator, act_dim: int) -> Policy:
    """Policy drawing every action uniformly in ``[-1, 1]^act_dim`` from ``rng``.

    The draws follow the batch layout, so a rollout with this policy is reproducible for a
    given ``rng`` state *and* ``num_envs``.
    """
    if act_dim < 1:
        raise ValueError(f"act_dim must be >= 1, got {act_dim}")

    def policy(obs: np.ndarray) -> np.ndarray:
        a, e = obs.shape[0], obs.shape[1]
        return rng.uniform(-1.0, 1.0, size=(a, e, act_dim)).astype(np.float32)

    return policy


def seeded_uniform_random_policy(seed: int, act_dim: int) -> Policy:
    """:func:`uniform_random_policy` with a fresh ``np.random.default_rng(seed)``: a picklable
    policy factory for :func:`run_episodes_parallel` (through ``functools.partial``)."""
    return uniform_random_policy(np.random.default_rng(seed), act_dim)


def _check_count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


class _Episode:
    """Per-episode accumulators of one env slot."""

    __slots__ = ("index", "returns", "steps", "obs", "act", "rew", "next_obs", "done")

    def __init__(self, index: int, num_agents: int, record: bool) -> None:
        self.index = index
        self.returns = np.zeros(num_agents, dtype=np.float64)
        self.steps = 0
        self.obs: list[np.ndarray] | None = [] if record else None
        self.act: list[np.ndarray] | None = [] if record else None
        self.rew: list[np.ndarray] | None = [] if record else None
        self.next_obs: list[np.ndarray] | None = [] if record else None
        self.done: list[np.ndarray] | None = [] if record else None


def run_episodes(
    make: Callable[[], ParallelEnv],
    policy: Policy,
    num_episodes: int,
    seed: int,
    num_envs: int = 10,
    record: bool = False,
    progress: bool = False,
) -> RolloutResult:
    """Run ``num_episodes`` episodes over ``num_envs`` env copies stepped in lockstep.

    Episode ``k`` is reset with seed ``seed + k``; a copy whose episode ends starts the
    next unplayed one at once. With a policy that maps each observation row to an action
    on its own (no state, no randomness shared across rows) the result therefore does not
    depend on ``num_envs``, except that a neural policy's matrix products may round differently
    for different batch sizes (returns then agree to about 1e-7 relative, not bit for bit).

    Args:
        make: builds one environment copy.
        policy: ``obs [A, E, max_obs_dim] float32 -> actions [A, E, max_act_dim]``;
            observations are zero-padded per agent to the largest observation size, actions
            are cut per agent to its action size before stepping. ``E`` is the number of
            live copies and shrinks during the last episodes.
        num_episodes: episodes to play (>= 0).
        seed: seed of episode 0.
        num_envs: copies stepped together (>= 1).
        record: keep every transition (see :class:`RolloutResult`).
        progress: show a tqdm progress bar over episodes.

    All agents must act at every step and finish together (true of the MPE tasks); an
    environment whose agents leave one by one raises ``RuntimeError``. The copies are stepped
    by :class:`EnvCopies` (through ``step_forces`` where an environment has it).
    """
    num_episodes = _check_count("num_episodes", num_episodes, 0)
    num_envs = _check_count("num_envs", num_envs, 1)
    seed = int(seed)

    n_slots = max(1, min(int(num_envs), num_episodes))
    envs = [make() for _ in range(n_slots)]
    try:
        return _run(envs, policy, num_episodes, seed, record, progress)
    finally:
        for env in envs:
            env.close()


def run_episodes_parallel(
    make: Callable[[], ParallelEnv],
    make_policy: Callable[[], Policy],
    num_episodes: int,
    seed: int,
    episode_length: int,
    num_envs: int = 10,
    record: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> RolloutResult:
    """:func:`run_episodes` with ``policy = make_policy()``, spread over ``workers`` processes,
    with the same result bit for bit.

    The episodes are played in rounds of ``num_envs`` (every copy plays one episode per round);
    each worker plays a contiguous block of rounds. Before its block it calls a fresh
    ``make_policy()`` on zero observations for every step of the earlier rounds, so a policy's
    random draws (uniform actions, Gaussian noise) line up with a single-process run. This needs:

    * episodes of a fixed length ``episode_length`` (the MPE tasks and HalfCheetah): a worker
      whose episode ends early raises ``RuntimeError``;
    * a policy whose random draws depend only on the batch shapes, not on the observations;
    * ``make`` and ``make_policy`` picklable (module-level functions or ``functools.partial``
      of them): workers are spawned processes, each with one torch thread.

    ``workers=1`` (or a single round) runs in this process.
    """
    num_episodes = _check_count("num_episodes", num_episodes, 0)
    num_envs = _check_count("num_envs", num_envs, 1)
    workers = _check_count("workers", workers, 1)
    episode_length = _check_count("episode_length", episode_length, 1)
    rounds = math.ceil(num_episodes / num_envs)
    workers = min(workers, rounds)
    if workers <= 1:
        return run_episodes(make, make_policy(), num_episodes, seed, num_envs, record, progress)
    blocks = np.array_split(np.arange(rounds), workers)
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_episodes, desc=f"episodes ({workers} workers)", unit="ep")
    # Leaving the pool terminates its workers: an error in one block, or an interrupt, stops all.
    with ctx.Pool(workers, initializer=_init_worker, initargs=(counter,)) as pool:
        jobs = []
        for block in blocks:
            first = int(block[0]) * num_envs
            count = min(int(block[-1] + 1) * num_envs, num_episodes) - first
            jobs.append(pool.apply_async(_play_block, (make, make_policy, first, count, int(seed), episode_length, num_envs, record)))
        try:
            while not all(job.ready() for job in jobs):
                for job in jobs:
                    if job.ready() and not job.successful():
                        job.get()  # raises the worker's error
                if bar is not None:
                    bar.update(counter.value - bar.n)
                time.sleep(0.2)
            parts = [job.get() for job in jobs]
        finally:
            if bar is not None:
                bar.update(counter.value - bar.n)
                bar.close()
    return _concat(parts)


_EPISODES_DONE: Any = None  # a shared counter in worker processes, for the progress bar


def _init_worker(counter: Any) -> None:
    global _EPISODES_DONE
    _EPISODES_DONE = counter
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency of the package
        pass


def _play_block(
    make: Callable[[], ParallelEnv], make_policy: Callable[[], Policy], first: int, count: int, seed: int,
    episode_length: int, num_envs: int, record: bool,
) -> RolloutResult:
    """Episodes ``first .. first + count - 1`` of a :func:`run_episodes_parallel` call."""
    policy = make_policy()
    envs = [make() for _ in range(max(1, min(num_envs, count)))]
    try:
        names = list(envs[0].possible_agents)
        max_obs = max(int(envs[0].observation_space(a).shape[0]) for a in names)
        # The earlier rounds are all full: num_envs copies for episode_length steps each.
        zeros = np.zeros((len(names), num_envs, max_obs), dtype=np.float32)
        for _ in range((first // num_envs) * episode_length):
            policy(zeros)
        res = _run(envs, policy, count, seed + first, record, False, on_episode=_count_episode)
    finally:
        for env in envs:
            env.close()
    short = np.flatnonzero(res.episode_lengths != episode_length)
    if short.size:
        k = int(short[0])
        raise RuntimeError(
            f"episode {first + k} lasted {int(res.episode_lengths[k])} steps, not {episode_length}: "
            "parallel collection needs fixed-length episodes (use one worker)"
        )
    return res


def _count_episode() -> None:
    if _EPISODES_DONE is not None:
        with _EPISODES_DONE.get_lock():
            _EPISODES_DONE.value += 1


def _concat(parts: list[RolloutResult]) -> RolloutResult:
    """Blocks of consecutive episodes as one :class:`RolloutResult`."""
    head = parts[0]
    out = RolloutResult(
        episode_returns=np.concatenate([p.episode_returns for p in parts]),
        episode_lengths=np.concatenate([p.episode_lengths for p in parts]),
        agent_names=head.agent_names,
        seeds=np.concatenate([p.seeds for p in parts]),
        return_mode=head.return_mode,
    )
    if head.obs is not None:
        for key in ("obs", "actions", "rewards", "next_obs", "dones"):
            per_agent = zip(*(getattr(p, key) for p in parts))
            setattr(out, key, [np.ascontiguousarray(np.concatenate(chunks)) for chunks in per_agent])
    return out


class EnvCopies:
    """Copies of one task's ``ParallelEnv``, reset and stepped one copy at a time with stacked
    per-agent arrays: observations zero-padded to the largest observation size, actions given as
    ``[A, max_act_dim]`` and cut per agent to its action size.

    Environments with a ``step_forces(actions [A, act_dim]) -> (obs list, rewards, terminated,
    truncated)`` method (such as :class:`~omar_lightning.envs.cooperative_navigation.CooperativeNavigation`)
    are stepped through it when all agents have the same action size, skipping the per-step
    dictionaries. All agents must finish together (true of the MPE tasks and HalfCheetah); an
    environment whose agents leave one by one raises ``RuntimeError``.
    """

    def __init__(self, envs: list[ParallelEnv]) -> None:
        self.envs = envs
        env0 = envs[0]
        self.names = list(env0.possible_agents)
        self.num_agents = len(self.names)
        self.obs_dims = [int(env0.observation_space(a).shape[0]) for a in self.names]
        self.act_dims = [int(env0.action_space(a).shape[0]) for a in self.names]
        self.max_obs, self.max_act = max(self.obs_dims), max(self.act_dims)
        # Each agent's Box, [A, 1, max_act] (no bound on the padded features).
        self.low = np.full((self.num_agents, 1, self.max_act), -np.inf, dtype=np.float32)
        self.high = np.full((self.num_agents, 1, self.max_act), np.inf, dtype=np.float32)
        for i, name in enumerate(self.names):
            space = env0.action_space(name)
            self.low[i, 0, : self.act_dims[i]] = np.broadcast_to(space.low, (self.act_dims[i],))
            self.high[i, 0, : self.act_dims[i]] = np.broadcast_to(space.high, (self.act_dims[i],))
        same_act = len(set(self.act_dims)) == 1
        self.fast = [same_act and callable(getattr(env, "step_forces", None)) for env in envs]

    def __len__(self) -> int:
        return len(self.envs)

    def clip(self, actions: np.ndarray) -> np.ndarray:
        """``actions [A, E, >= max_act]`` cut to ``max_act`` features and clipped into each agent's Box."""
        return np.clip(actions[:, :, : self.max_act], self.low, self.high)

    def pad(self, obs_list: Sequence[np.ndarray]) -> np.ndarray:
        """Per-agent observations as one ``[A, max_obs]`` float32 array, zero-padded."""
        out = np.zeros((self.num_agents, self.max_obs), dtype=np.float32)
        for i, o in enumerate(obs_list):
            out[i, : self.obs_dims[i]] = o
        return out

    def reset(self, slot: int, seed: int) -> np.ndarray:
        """Reset copy ``slot`` with ``seed``: its padded observations ``[A, max_obs]``."""
        obs, _ = self.envs[slot].reset(seed=seed)
        return self.pad([obs[a] for a in self.names])

    def step(self, slot: int, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Step copy ``slot`` with ``actions [A, max_act]``: next observations ``[A, max_obs]``
        float32, rewards ``[A]`` float64, dones ``[A]`` float32 (1.0 at a true termination, 0.0
        at a time limit) and whether the episode ended."""
        env = self.envs[slot]
        if self.fast[slot]:
            next_list, rew, terminated, truncated = env.step_forces(actions)
            rew = np.asarray(rew, dtype=np.float64)
            ended = terminated or truncated
            done = np.full(self.num_agents, float(terminated), dtype=np.float32)
        else:
            names = self.names
            obs_d, rew_d, term_d, trunc_d, _ = env.step({name: actions[i, : self.act_dims[i]] for i, name in enumerate(names)})
            next_list = [obs_d[name] for name in names]
            rew = np.array([rew_d[name] for name in names], dtype=np.float64)
            done = np.array([float(term_d[n]) for n in names], dtype=np.float32)
            ended_flags = [bool(term_d[n]) or bool(trunc_d[n]) for n in names]
            ended = all(ended_flags)
            if any(ended_flags) and not ended:
                raise RuntimeError(
                    "the rollouts need all agents to finish together; "
                    f"got terminations {term_d} and truncations {trunc_d}"
                )
        return self.pad(next_list), rew, done, bool(ended)

    def state(self, slot: int) -> np.ndarray:
        """The global state of copy ``slot`` now (its ``state()``), float32."""
        return np.asarray(self.envs[slot].state(), dtype=np.float32)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _run(
    envs: list[ParallelEnv],
    policy: Policy,
    num_episodes: int,
    seed: int,
    record: bool,
    progress: bool,
    on_episode: Callable[[], None] | None = None,
) -> RolloutResult:
    copies = EnvCopies(envs)
    n_agents, max_act = copies.num_agents, copies.max_act
    obs_dims, act_dims = copies.obs_dims, copies.act_dims

    returns = np.zeros((num_episodes, n_agents), dtype=np.float64)
    lengths = np.zeros(num_episodes, dtype=np.int64)
    finished: dict[int, tuple[np.ndarray, ...]] = {}

    slot_obs: list[np.ndarray | None] = [None] * len(envs)
    slot_ep: list[_Episode | None] = [None] * len(envs)
    next_episode = 0

    def start(slot: int) -> bool:
        nonlocal next_episode
        if next_episode >= num_episodes:
            slot_ep[slot] = None
            return False
        k = next_episode
        next_episode += 1
        slot_obs[slot] = copies.reset(slot, seed + k)
        slot_ep[slot] = _Episode(k, n_agents, record)
        return True

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_episodes, desc="episodes", unit="ep")

    active = [s for s in range(len(envs)) if start(s)]
    try:
        while active:
            batch = np.stack([slot_obs[s] for s in active], axis=1)  # [A, E, max_obs]
            acts = np.asarray(policy(batch), dtype=np.float32)
            if (
                acts.ndim != 3
                or acts.shape[:2] != (n_agents, len(active))
                or acts.shape[2] < max_act
            ):
                raise ValueError(
                    f"policy must return actions shaped [{n_agents}, {len(active)}, >={max_act}],"
                    f" got {acts.shape}"
                )
            acts = copies.clip(acts)  # into each agent's Box before stepping and recording
            still_active = []
            for j, s in enumerate(active):
                ep = slot_ep[s]
                assert ep is not None
                a = acts[:, j]
                next_padded, rew, done, ended = copies.step(s, a)
                ep.returns += rew
                ep.steps += 1
                if record:
                    ep.obs.append(slot_obs[s])
                    ep.act.append(a)
                    ep.rew.append(rew)
                    ep.next_obs.append(next_padded)
                    ep.done.append(done)
                slot_obs[s] = next_padded
                if ended:
                    returns[ep.index] = ep.returns
                    lengths[ep.index] = ep.steps
                    if record:
                        finished[ep.index] = (
                            np.stack(ep.obs),
                            np.stack(ep.act),
                            np.stack(ep.rew).astype(np.float32),
                            np.stack(ep.next_obs),
                            np.stack(ep.done),
                        )
                    if bar is not None:
                        bar.update(1)
                    if on_episode is not None:
                        on_episode()
                    if start(s):
                        still_active.append(s)
                else:
                    still_active.append(s)
            active = still_active
    finally:
        if bar is not None:
            bar.close()

    result = RolloutResult(
        episode_returns=returns,
        episode_lengths=lengths,
        agent_names=copies.names,
        seeds=seed + np.arange(num_episodes, dtype=np.int64),
        return_mode=str(getattr(envs[0], "return_mode", "mean")),
    )
    if record:
        order = [finished[k] for k in range(num_episodes)]

        def cat(part: int, i: int, dim: int | None) -> np.ndarray:
            chunks = [ep[part][:, i, :dim] if dim is not None else ep[part][:, i] for ep in order]
            if not chunks:
                shape = (0, dim) if dim is not None else (0,)
                return np.zeros(shape, dtype=np.float32)
            return np.ascontiguousarray(np.concatenate(chunks, axis=0), dtype=np.float32)

        result.obs = [cat(0, i, obs_dims[i]) for i in range(n_agents)]
        result.actions = [cat(1, i, act_dims[i]) for i in range(n_agents)]
        result.rewards = [cat(2, i, None) for i in range(n_agents)]
        result.next_obs = [cat(3, i, obs_dims[i]) for i in range(n_agents)]
        result.dones = [cat(4, i, None) for i in range(n_agents)]
    return result
