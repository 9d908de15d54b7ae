"""Episodes of a dataset's rows, and their returns, from the arrays alone.

Rows of a dataset lie in the order they were played, episode after episode. The format marks no
boundary itself (``dones`` is 1 only at a true termination, and MPE and HalfCheetah episodes end
at their time limit), so an episode ends at a row where

* ``dones`` is 1 for any agent (a termination), or
* the episode has reached the task's ``episode_length`` rows (the time limit), or
* the next row does not continue it: some agent's ``obs`` differs from this row's ``next_obs``.

An episode is whole when it ends with a termination or has exactly ``episode_length`` rows;
the pieces that a cut leaves at the start or the end of a file are not whole and are left out
of the returns.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def episode_bounds(obs: Sequence[np.ndarray], next_obs: Sequence[np.ndarray], dones: Sequence[np.ndarray],
                   episode_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, whole)`` of the episodes in the rows: episode ``k`` is rows
    ``starts[k]:ends[k]``; ``whole[k]`` says whether it is whole (module docstring).

    Args: per-agent ``obs`` and ``next_obs`` ``[N, obs_dim]`` and ``dones`` ``[N]``;
    ``episode_length`` the task's time limit (>= 1).
    """
    if episode_length < 1:
        raise ValueError(f"episode_length must be >= 1, got {episode_length}")
    n = int(obs[0].shape[0])
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, bool)
    done = np.zeros(n, bool)
    for d in dones:
        done |= np.asarray(d) != 0
    breaks = done.copy()  # an episode ends after row t
    for o, no in zip(obs, next_obs):
        breaks[:-1] |= (o[1:] != no[:-1]).any(axis=1)
    breaks[-1] = True
    # The time limit: cut every run of rows without a break into pieces of episode_length.
    ends = []
    start = 0
    for b in np.flatnonzero(breaks):
        stop = int(b) + 1
        ends.extend(range(start + episode_length, stop, episode_length))
        ends.append(stop)
        start = stop
    ends_arr = np.asarray(ends, np.int64)
    starts_arr = np.concatenate([[0], ends_arr[:-1]]).astype(np.int64)
    lengths = ends_arr - starts_arr
    whole = done[ends_arr - 1] | (lengths == episode_length)
    return starts_arr, ends_arr, whole


def episode_returns(rewards: Sequence[np.ndarray], starts: np.ndarray, agent: int | None = 0) -> np.ndarray:
    """Undiscounted return of each episode (float64), episode ``k`` running from row ``starts[k]``
    to the next start (the last to the end of the rows): of agent ``agent``, or the mean over
    agents when ``agent`` is None."""
    if len(starts) == 0:
        return np.zeros(0)
    r = np.stack([np.asarray(x, np.float64) for x in rewards], 1)  # [N, A]
    per = np.add.reduceat(r, starts, axis=0)  # [E, A]; starts are increasing and below N
    return per.mean(1) if agent is None else per[:, agent]


def whole_episode_returns(obs: Sequence[np.ndarray], next_obs: Sequence[np.ndarray], dones: Sequence[np.ndarray],
                          rewards: Sequence[np.ndarray], episode_length: int, agent: int | None = 0) -> np.ndarray:
    """Returns of the whole episodes (:func:`episode_bounds`), of agent ``agent`` or the mean over agents."""
    starts, _, whole = episode_bounds(obs, next_obs, dones, episode_length)
    return episode_returns(rewards, starts, agent)[whole]


def return_stats(returns: np.ndarray) -> dict:
    """``mean``, ``std``, ``min``, ``max`` (None without episodes) and ``count`` of ``returns``."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "count": 0}
    return {"mean": float(r.mean()), "std": float(r.std()), "min": float(r.min()), "max": float(r.max()), "count": int(r.size)}
