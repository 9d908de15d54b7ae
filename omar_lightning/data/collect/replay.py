"""The replay buffer of behaviour training and its row layout.

Rows are joint transitions ``[A, ...]`` (all agents, padded to the largest observation and action
sizes), written in the order the trainer steps its environment copies and never overwritten (the
buffer grows instead of wrapping), so the medium-replay tier can read back every row collected up
to a snapshot, episode by episode (:func:`episode_order`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

#: The buffer's arrays besides the optional ``distances`` (reward shaping) and ``STATE_FIELDS``.
FIELDS = ("obs", "actions", "rewards", "next_obs", "dones")
#: The optional global states before and after each joint transition (critics on the state); one
#: per row, not per agent. The dataset tiers keep only :data:`FIELDS`.
STATE_FIELDS = ("state", "next_state")


class ReplayBuffer:
    """``capacity`` rows of ``obs [A, Do]``, ``actions [A, Da]``, ``rewards [A]``, ``next_obs [A, Do]``,
    ``dones [A]`` (float32), with ``distances`` each agent's distance to the nearest good agent
    after the step ``[A]``, and with ``state_dim`` the environment's global state before and after
    the step, ``state`` and ``next_state`` ``[state_dim]``. ``state_dict`` holds only the arrays
    the buffer was built with, so a buffer without states reads and writes what it always did."""

    def __init__(self, capacity: int, num_agents: int, obs_dim: int, act_dim: int, distances: bool = False, state_dim: int = 0) -> None:
        n, a = capacity, num_agents
        self.arrays: dict[str, np.ndarray] = {
            "obs": np.zeros((n, a, obs_dim), np.float32), "actions": np.zeros((n, a, act_dim), np.float32),
            "rewards": np.zeros((n, a), np.float32), "next_obs": np.zeros((n, a, obs_dim), np.float32),
            "dones": np.zeros((n, a), np.float32),
        }
        if distances:
            self.arrays["distances"] = np.zeros((n, a), np.float32)
        for name in STATE_FIELDS if state_dim > 0 else ():
            self.arrays[name] = np.zeros((n, state_dim), np.float32)
        self.size = 0  # rows written

    @property
    def capacity(self) -> int:
        return int(self.arrays["obs"].shape[0])

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, dones: np.ndarray,
            distances: np.ndarray | None = None, state: np.ndarray | None = None, next_state: np.ndarray | None = None) -> None:
        """Append one joint transition: ``obs``, ``next_obs`` ``[A, Do]``, ``actions`` ``[A, Da]``,
        ``rewards``, ``dones``, ``distances`` ``[A]``, ``state``, ``next_state`` ``[state_dim]``
        (cast to float32)."""
        r, buf = self.size, self.arrays
        buf["obs"][r], buf["actions"][r], buf["rewards"][r] = obs, actions, rewards
        buf["next_obs"][r], buf["dones"][r] = next_obs, dones
        if distances is not None:
            buf["distances"][r] = distances
        if state is not None:
            buf["state"][r], buf["next_state"][r] = state, next_state
        self.size += 1

    @property
    def has_state(self) -> bool:
        """Whether the buffer keeps the global states."""
        return "state" in self.arrays

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, Tensor]:
        """``batch_size`` rows drawn uniformly with replacement from the rows written (one
        ``torch.randint`` on ``generator``), agent-major: ``{field: [A, B, ...]}``; the states
        ``state``, ``next_state`` are ``[B, state_dim]``."""
        idx = torch.randint(self.size, (batch_size,), generator=generator).numpy()
        return {k: torch.from_numpy(v[idx]) if k in STATE_FIELDS else torch.from_numpy(v[idx]).transpose(0, 1).contiguous()
                for k, v in self.arrays.items()}

    def grow(self, rows: int) -> None:
        """Hold ``rows`` rows, keeping what is written (a run continued past its first ``--steps``)."""
        if rows <= self.capacity:
            return
        for k, v in self.arrays.items():
            grown = np.zeros((rows,) + v.shape[1:], v.dtype)
            grown[: self.size] = v[: self.size]
            self.arrays[k] = grown

    def state_dict(self) -> dict[str, Tensor]:
        """The written rows as tensors (a copy), keyed by field."""
        return {k: torch.from_numpy(v[: self.size].copy()) for k, v in self.arrays.items()}

    def load_state_dict(self, rows: dict[str, Any], size: int) -> None:
        """Take :meth:`state_dict`'s rows; ValueError naming the arrays unless they are the ones
        this buffer was built with."""
        if set(rows) != set(self.arrays):
            raise ValueError(f"replay buffer holds {sorted(rows)}, not the {sorted(self.arrays)} of these settings")
        self.size = int(size)
        for k, v in rows.items():
            self.arrays[k][: self.size] = v.numpy()


def episode_order(rows: int, num_envs: int, length: int, where: Any) -> np.ndarray:
    """Row order that puts the replay buffer's interleaved episodes one after another.

    The trainer steps ``num_envs`` copies in lockstep, so round ``k`` (``num_envs * length`` rows)
    holds step ``t`` of copy ``e`` at row ``k * num_envs * length + t * num_envs + e`` (episodes of
    the MPE tasks and HalfCheetah have a fixed length). ``where`` names the file in errors."""
    per_round = num_envs * length
    if rows % per_round:
        raise ValueError(f"{where}: {rows:,} replay rows are not whole rounds of {num_envs} x {length} steps")
    idx = np.arange(rows)
    rnd, within = idx // per_round, idx % per_round
    return np.lexsort((within // num_envs, within % num_envs, rnd))


def check_continuity(rows: dict[str, np.ndarray], where: Any) -> None:
    """ValueError naming ``where`` unless most reordered rows continue the row before them."""
    obs, nxt = rows["obs"], rows["next_obs"]
    same = (obs[1:] == nxt[:-1]).all(axis=(1, 2))
    if same.size and same.mean() < 0.5:
        raise ValueError(f"{where}: replay rows do not form episodes after reordering (not a fixed-length run?)")
