"""Scripted near-expert controllers for cooperative navigation, in the plane and on the line.

Every agent acts from its own observation only (mpe2 layout)::

    [self_vel(2), self_pos(2), landmark_rel_pos(2N), other_agents_rel_pos(2(N-1)),
     comm(2(N-1))]

It places all agents and landmarks relative to itself, solves the agent -> landmark
assignment that minimises the summed distance (brute force over the ``N!`` permutations,
N <= 5), and drives to its landmark with a PD law plus a short-range push away from
agents it is about to touch; when two landmarks are closer than a collision distance, their
agents park on the far sides of them. Distances do not depend on the observer's frame, and near-ties
(within :data:`TIE_TOLERANCE`) go to the first permutation in lexicographic order, so all
agents pick the same assignment from their own views. A min-sum matching has no crossing
paths, which keeps collisions rare.

On the line (``layout="line"``, observations ``[vel_x, pos_x, landmark_rel_x(N),
other_rel_x(N-1), comm(2(N-1))]``), :func:`scripted_line_actions` matches agents to landmarks
in order along the axis (the k-th agent from the left takes the k-th landmark from the left:
a min-sum matching on a line that never asks two agents to pass each other) and drives with
the same PD law, landmark offset and repulsion. :func:`spread_controller` picks the one of a
layout.

It stands in for the expert policy ``S_expert`` of the normalised score until trained
behaviour policies exist.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import Callable

import numpy as np

__all__ = [
    "KD",
    "KP",
    "LANDMARK_OFFSET",
    "OFFSET_RADIUS",
    "REPULSION_GAIN",
    "REPULSION_RADIUS",
    "TIE_TOLERANCE",
    "decode_line_obs",
    "decode_spread_obs",
    "line_assignment",
    "scripted_line_actions",
    "scripted_spread_actions",
    "spread_assignment",
    "spread_controller",
]

#: Proportional gain on the vector to the assigned landmark.
KP = 12.0
#: Derivative gain on the agent's own velocity.
KD = 2.5
#: Other agents closer than this (centre to centre) push the agent away; agents of size
#: 0.15 collide below 0.3.
REPULSION_RADIUS = 0.35
#: Strength of that push at contact.
REPULSION_GAIN = 2.0
#: When another landmark lies within :data:`OFFSET_RADIUS` of the own one, the agent parks
#: this far from its landmark's centre, on the far side (the coverage reward saturates
#: within 0.1), so two agents on close landmarks do not touch.
LANDMARK_OFFSET = 0.09
OFFSET_RADIUS = 0.35
#: Assignment costs this close to the best count as ties.
TIE_TOLERANCE = 1e-6


@lru_cache(maxsize=None)
def _permutations(n: int) -> np.ndarray:
    return np.array(list(itertools.permutations(range(n))), dtype=np.int64).reshape(-1, n)


def _num_agents(obs: np.ndarray, per_agent: int = 4, extra: int = 2) -> int:
    """Agents in ``obs [A, E, obs_dim]``, which must hold ``per_agent * A + extra`` numbers."""
    if obs.ndim != 3:
        raise ValueError(f"obs must be shaped [A, E, obs_dim], got {obs.shape}")
    n = obs.shape[0]
    if not 1 <= n <= 5:
        raise ValueError(f"the scripted controller handles 1 to 5 agents, got {n}")
    need = per_agent * n + extra
    if obs.shape[2] < need:
        raise ValueError(f"obs_dim {obs.shape[2]} too small for {n} agents (need {need})")
    return n


def _all_agents(others: np.ndarray) -> np.ndarray:
    """``others [A, E, N-1, D]`` (each observer's view of the others) -> ``[A, E, N, D]`` in
    global agent order, the observer's own row zero."""
    a, e, _, d = others.shape
    agents = np.zeros((a, e, a, d))
    for i in range(a):
        idx = [j for j in range(a) if j != i]
        agents[i][:, idx] = others[i]
    return agents


def decode_spread_obs(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Split stacked observations ``[A, E, obs_dim]`` into observer-relative geometry.

    Returns float64 arrays: ``vel [A, E, 2]``, ``pos [A, E, 2]``,
    ``landmarks [A, E, N, 2]`` (relative to the observer) and ``agents [A, E, N, 2]``
    (every agent relative to the observer, in global agent order; the observer's own row
    is zero).
    """
    obs = np.asarray(obs)
    n = _num_agents(obs)
    o = obs.astype(np.float64)
    a, e = o.shape[0], o.shape[1]
    landmarks = o[:, :, 4 : 4 + 2 * n].reshape(a, e, n, 2)
    others = o[:, :, 4 + 2 * n : 4 + 2 * n + 2 * (n - 1)].reshape(a, e, n - 1, 2)
    agents = _all_agents(others)
    return {"vel": o[:, :, 0:2], "pos": o[:, :, 2:4], "landmarks": landmarks, "agents": agents}


def decode_line_obs(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Split stacked line observations ``[A, E, obs_dim]`` into observer-relative geometry.

    The same keys as :func:`decode_spread_obs`, with one coordinate: ``vel [A, E, 1]``,
    ``pos [A, E, 1]``, ``landmarks [A, E, N, 1]``, ``agents [A, E, N, 1]``.
    """
    obs = np.asarray(obs)
    n = _num_agents(obs, per_agent=2, extra=1)
    o = obs.astype(np.float64)
    landmarks = o[:, :, 2 : 2 + n, None]
    agents = _all_agents(o[:, :, 2 + n : 1 + 2 * n, None])
    return {"vel": o[:, :, 0:1], "pos": o[:, :, 1:2], "landmarks": landmarks, "agents": agents}


def _assignment(agents: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Min-sum assignment, ``[..., N]``: entry ``k`` is the landmark of agent ``k``."""
    n = agents.shape[-2]
    perms = _permutations(n)  # [P, N]
    dist = np.sqrt(
        np.sum(np.square(agents[..., :, None, :] - landmarks[..., None, :, :]), axis=-1)
    )  # [..., N agents, N landmarks]
    cost = dist[..., np.arange(n), perms].sum(axis=-1)  # [..., P]
    best = cost.min(axis=-1, keepdims=True)
    first = np.argmax(cost <= best + TIE_TOLERANCE, axis=-1)  # lexicographically first
    return perms[first]


def spread_assignment(obs: np.ndarray) -> np.ndarray:
    """Assignment each agent computes from its own observation.

    Args:
        obs: ``[A, E, obs_dim]`` stacked observations (agents first).

    Returns:
        int64 ``[A, E, N]``: row ``[i, e]`` is the permutation observer ``i`` chose in env
        ``e`` (agent ``k`` goes to landmark ``perm[k]``). All observers agree in practice.
    """
    geo = decode_spread_obs(obs)
    return _assignment(geo["agents"], geo["landmarks"])


def _order_assignment(agents: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Order-preserving matching on a line, ``[..., N]``: the k-th agent from the left takes
    the k-th landmark from the left (equal coordinates: the lower index first)."""
    a_order = np.argsort(agents[..., 0], axis=-1, kind="stable")
    l_order = np.argsort(landmarks[..., 0], axis=-1, kind="stable")
    perm = np.empty_like(a_order)
    np.put_along_axis(perm, a_order, l_order, axis=-1)
    return perm


def _nearest_assignment(agents: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Every agent takes the landmark nearest to itself, ``[..., N]`` (shared and crossed
    landmarks allowed): not a matching, a reference for how much the matching is worth."""
    dist = np.sqrt(np.sum(np.square(landmarks[..., None, :, :] - agents[..., :, None, :]), axis=-1))  # [..., N agents, N landmarks]
    return dist.argmin(-1)


LINE_MATCHINGS = {"order": _order_assignment, "nearest": _nearest_assignment}


def line_assignment(obs: np.ndarray) -> np.ndarray:
    """Assignment each agent computes from its own line observation.

    Args:
        obs: ``[A, E, obs_dim]`` stacked line observations (agents first).

    Returns:
        int64 ``[A, E, N]``: row ``[i, e]`` is the permutation observer ``i`` chose in env
        ``e`` (agent ``k`` goes to landmark ``perm[k]``).
    """
    geo = decode_line_obs(obs)
    return _order_assignment(geo["agents"], geo["landmarks"])


def scripted_line_actions(
    obs: np.ndarray,
    kp: float = KP,
    kd: float = KD,
    repulsion_radius: float = REPULSION_RADIUS,
    repulsion_gain: float = REPULSION_GAIN,
    landmark_offset: float = LANDMARK_OFFSET,
    offset_radius: float = OFFSET_RADIUS,
    matching: str = "order",
) -> np.ndarray:
    """Forces of the scripted controller on the line (``layout="line"``).

    Args:
        obs: ``[A, E, obs_dim]`` stacked line observations (agents first, extra zero
            padding on the last axis allowed).
        matching: ``"order"`` (the controller: the k-th agent from the left to the k-th
            landmark) or ``"nearest"`` (every agent to its nearest landmark, shared and
            crossed ones allowed; a reference controller, ``benchmarks/line_controllers.py``).

    Returns:
        float32 ``[A, E, 1]`` forces in ``[-1, 1]``.
    """
    if matching not in LINE_MATCHINGS:
        raise ValueError(f"matching must be one of {tuple(LINE_MATCHINGS)}, got {matching!r}")
    geo = decode_line_obs(obs)
    perm = LINE_MATCHINGS[matching](geo["agents"], geo["landmarks"])
    return _drive(geo, perm, kp, kd, repulsion_radius, repulsion_gain, landmark_offset, offset_radius)


def spread_controller(layout: str) -> Callable[[np.ndarray], np.ndarray]:
    """The scripted controller of a cooperative-navigation ``layout`` (``"plane"`` or ``"line"``)."""
    controllers = {"plane": scripted_spread_actions, "line": scripted_line_actions}
    try:
        return controllers[layout]
    except (KeyError, TypeError):
        raise ValueError(f"layout must be one of {tuple(controllers)}, got {layout!r}") from None


def scripted_spread_actions(
    obs: np.ndarray,
    kp: float = KP,
    kd: float = KD,
    repulsion_radius: float = REPULSION_RADIUS,
    repulsion_gain: float = REPULSION_GAIN,
    landmark_offset: float = LANDMARK_OFFSET,
    offset_radius: float = OFFSET_RADIUS,
) -> np.ndarray:
    """Forces of the scripted controller.

    Args:
        obs: ``[A, E, obs_dim]`` stacked cooperative-navigation observations (agents first,
            extra zero padding on the last axis allowed).

    Returns:
        float32 ``[A, E, 2]`` forces in ``[-1, 1]``.
    """
    geo = decode_spread_obs(obs)
    perm = _assignment(geo["agents"], geo["landmarks"])  # [A, E, N]
    return _drive(geo, perm, kp, kd, repulsion_radius, repulsion_gain, landmark_offset, offset_radius)


def _drive(
    geo: dict[str, np.ndarray],
    perm: np.ndarray,
    kp: float,
    kd: float,
    repulsion_radius: float,
    repulsion_gain: float,
    landmark_offset: float,
    offset_radius: float,
) -> np.ndarray:
    """PD law to each observer's assigned landmark, with the landmark offset and the repulsion.

    ``geo`` holds ``vel [A, E, D]``, ``landmarks [A, E, N, D]`` and ``agents [A, E, N, D]``
    (observer-relative, ``D`` = 2 in the plane, 1 on the line); ``perm [A, E, N]`` is each
    observer's assignment. Returns float32 forces ``[A, E, D]`` in ``[-1, 1]``.
    """
    n = geo["agents"].shape[-2]
    own = perm[np.arange(n), :, np.arange(n)]  # [A, E]: observer i's own landmark
    target = np.take_along_axis(geo["landmarks"], own[:, :, None, None], axis=2)[:, :, 0]
    if n > 1 and landmark_offset > 0.0:
        # Landmarks closer than a collision distance: park on the far side of the own
        # landmark (still within the 0.1 at which its reward saturates).
        lm = geo["landmarks"]  # [A, E, N, D]
        away = target[:, :, None, :] - lm  # [A, E, N, D]
        dist = np.sqrt(np.sum(np.square(away), axis=-1))  # [A, E, N]
        near = (dist < offset_radius) & (dist > 1e-9)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(near[..., None], away / np.maximum(dist, 1e-9)[..., None], 0.0)
        shift = unit.sum(axis=2)
        norm = np.sqrt(np.sum(np.square(shift), axis=-1, keepdims=True))
        unit_shift = shift / np.maximum(norm, 1e-9)
        target = target + np.where(norm > 1e-9, landmark_offset * unit_shift, 0.0)
    force = kp * target - kd * geo["vel"]
    if n > 1 and repulsion_gain > 0.0:
        rel = geo["agents"]  # [A, E, N, D], others relative to the observer
        d = np.sqrt(np.sum(np.square(rel), axis=-1))  # [A, E, N]; own row is 0
        d[np.arange(n), :, np.arange(n)] = np.inf
        close = d < repulsion_radius
        push = np.where(close, repulsion_gain * (repulsion_radius - d) / repulsion_radius, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = np.where(close[..., None], -rel / np.maximum(d, 1e-9)[..., None], 0.0)
        force = force + np.sum(push[..., None] * unit, axis=2)
    return np.clip(force, -1.0, 1.0).astype(np.float32)
