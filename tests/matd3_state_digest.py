"""Fingerprints of short default ``omar collect train`` runs, to check that new MATD3 settings
leave the default training as it was.

:func:`default_runs` trains three short runs with the task defaults (cooperative navigation with
its input BatchNorm, predator-prey with its reward shaping, HalfCheetah on the official variant)
through :func:`~omar_lightning.data.collect.behaviour.train_behaviour` and fingerprints every
tensor, array and number of each run's ``state.pt`` and ``expert.pt``, its ``config`` kept as
written. Integer, boolean and byte leaves (RNG states, counters, sizes, dones) get the SHA-256 of
their dtype, shape and bytes and must be equal; floating-point leaves (weights, optimizer moments,
replay rows, scores) get dtype, shape, sum and Euclidean norm (in float64) and are compared with
:data:`FLOAT_RTOL` (:data:`RUN_RTOL` where a run needs more): the CPU's SIMD kernels round matrix
products differently from one CPU kind to another (an AMD EPYC gives other bits than the machine
the first digests came from), while a change of the training moves these sums by far more. ``tests/data/matd3_default_state.json``
holds the fingerprints of the current code (``python tests/matd3_state_digest.py OUT.json``); the
exact digests they replace were equal before and after MATD3Config gained ``critic_input``.
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
    "cooperative_navigation": ("cooperative_navigation", {}, 3, 140, dict(num_envs=2)),  # 26 updates
    "predator_prey": ("predator_prey", {}, 1, 250, dict(num_envs=1)),
    "halfcheetah_official": ("halfcheetah_2x3", {"variant": "official", "max_episode_steps": 50}, 2, 200, dict(num_envs=1)),
}
#: The short-run settings every run takes (updates from step 100 on).
TINY = dict(hidden_dim=16, batch_size=32, start_steps=100, update_every=10, updates_per_step=0.5, eval_every=100, eval_episodes=2)


#: Relative tolerance of a floating-point leaf's sum and norm (:func:`same_fingerprint`), and the
#: looser one of the cooperative-navigation run: its input BatchNorm amplifies rounding, so that
#: with PyTorch's non-vectorised kernels (``ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE``, a
#: stand-in for another CPU) its 26 updates end up to 1.1% apart, the other runs' at most 6e-6.
FLOAT_RTOL = 1e-3
RUN_RTOL = {"cooperative_navigation": 0.1}


def fingerprint(value: Any) -> str | dict[str, Any]:
    """A leaf's fingerprint: SHA-256 of dtype, shape and bytes, or for floating point dtype, shape, sum and norm."""
    a = value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    if np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float64)
        return {"dtype": str(a.dtype), "shape": list(a.shape), "sum": float(x.sum()), "norm": float(np.sqrt((x * x).sum()))}
    h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def same_fingerprint(a: Any, b: Any, rtol: float = FLOAT_RTOL) -> bool:
    """Two leaves of :func:`flat_digests`: exact for digests and exact numbers, within ``rtol`` (of the
    norm, for the sum) for floating-point arrays and float numbers."""
    if isinstance(a, dict) and isinstance(b, dict):
        scale = max(abs(a["norm"]), abs(b["norm"]), 1e-12)
        return (a["dtype"], a["shape"]) == (b["dtype"], b["shape"]) and abs(a["norm"] - b["norm"]) <= rtol * scale \
            and abs(a["sum"] - b["sum"]) <= rtol * scale * max(1.0, float(np.sqrt(np.prod(a["shape"]) or 1)))
    if isinstance(a, str) and isinstance(b, str) and a.startswith("float:") and b.startswith("float:"):
        x, y = float(a[6:]), float(b[6:])
        return abs(x - y) <= rtol * max(abs(x), abs(y), 1e-12)
    return a == b


def flat_digests(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested dict / list of tensors, arrays and numbers, keyed by its path."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flat_digests(v, f"{prefix}{k}/"))
        return out
    if isinstance(tree, (list, tuple)):
        out = {}
        for i, v in enumerate(tree):
            out.update(flat_digests(v, f"{prefix}{i}/"))
        return out
    if isinstance(tree, (torch.Tensor, np.ndarray)):
        return {prefix.rstrip("/"): fingerprint(tree)}
    if isinstance(tree, float):
        return {prefix.rstrip("/"): f"float:{tree!r}"}  # compared within FLOAT_RTOL
    return {prefix.rstrip("/"): repr(tree)}  # other numbers and values exactly


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
