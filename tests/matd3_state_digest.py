"""Digests of short default ``omar collect train`` runs, to check that new MATD3 settings leave
the default training bit for bit as it was.

:func:`default_runs` trains three short runs with the task defaults (cooperative navigation with
its input BatchNorm, predator-prey with its reward shaping, HalfCheetah on the official variant)
through :func:`~omar_lightning.data.collect.behaviour.train_behaviour` and digests every tensor,
array and number of each run's ``state.pt`` and ``expert.pt`` (SHA-256 of a tensor's dtype, shape
and bytes; numbers as written), its ``config`` kept as written.
``tests/data/matd3_default_state.json`` holds the digests the code gave before MATD3Config had a
``critic_input`` setting (commit dc589e1, written with ``python tests/matd3_state_digest.py OUT.json``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omar_lightning.data.collect.behaviour import train_behaviour

#: (task, env_kwargs, seed, steps, settings over the task defaults)
RUNS = {
    "cooperative_navigation": ("cooperative_navigation", {}, 3, 300, dict(num_envs=2)),
    "predator_prey": ("predator_prey", {}, 1, 250, dict(num_envs=1)),
    "halfcheetah_official": ("halfcheetah_2x3", {"variant": "official", "max_episode_steps": 50}, 2, 200, dict(num_envs=1)),
}
#: The short-run settings every run takes (updates from step 100 on).
TINY = dict(hidden_dim=16, batch_size=32, start_steps=100, update_every=10, updates_per_step=0.5, eval_every=100, eval_episodes=2)


def _digest(value: Any) -> str:
    a = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def flat_digests(tree: Any, prefix: str = "") -> dict[str, str]:
    """Every leaf of a nested dict / list of tensors, arrays and numbers, keyed by its path."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for k, v in tree.items():
            out.update(flat_digests(v, f"{prefix}{k}/"))
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for i, v in enumerate(tree):
            out.update(flat_digests(v, f"{prefix}{i}/"))
        return out
    if isinstance(tree, (torch.Tensor, np.ndarray)):
        return {prefix.rstrip("/"): _digest(tree)}
    return {prefix.rstrip("/"): repr(tree)}  # numbers exactly (Python's float repr round-trips)


def run_digests(name: str, folder: Path) -> dict[str, Any]:
    """Train run ``name`` of :data:`RUNS` in ``folder``: its config and the digests of its files."""
    task, env_kwargs, seed, steps, settings = RUNS[name]
    train_behaviour(folder, task, steps, seed, env_kwargs, {**TINY, **settings}, progress=False)
    state = torch.load(folder / "state.pt", weights_only=False)
    config = state.pop("config")
    return {"config": config, "state.pt": flat_digests(state),
            "expert.pt": flat_digests(torch.load(folder / "expert.pt", weights_only=False))}


def default_runs() -> dict[str, Any]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return {name: run_digests(name, Path(tmp) / name) for name in RUNS}
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(default_runs(), indent=1, sort_keys=True) + "\n")
