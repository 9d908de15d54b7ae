"""Behaviour policy snapshots: the file format, a run's index of them, and which are its levels.

A snapshot (``DIR/snapshots/step_<steps>.pt``, kind ``omar-matd3-policy``) holds a trainer's
actor weights and what rolling it out needs: task, ``env_kwargs``, observation and action sizes,
network settings, the exploration noise, and where the run was (steps, updates, replay rows) with
the mean evaluation return (key ``score``). ``DIR/snapshots.json`` indexes them
(:class:`SnapshotIndex`), and the levels are copies: ``DIR/<level>.pt`` for the first snapshot
reaching a wanted return (``--levels NAME=RETURN``), ``expert.pt`` the best one and, without a
wanted ``medium``, ``medium.pt`` the first reaching half way from the uniform random policy's
return (on the same evaluation episodes) to the best one.

The snapshots shipped in ``omar_lightning/policies/`` (:data:`POLICIES`) are such folders.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from omar_lightning.atomic import atomic_write
from omar_lightning.data.collect.matd3 import MATD3Trainer, load_torch_file
from omar_lightning.nets import Actor

__all__ = [
    "POLICIES", "SNAPSHOT_KIND", "SnapshotIndex", "load_snapshot", "matching_snapshot", "save_snapshot", "shipped_snapshots", "trained_apart",
    "snapshot_policy", "snapshot_policy_from_file", "write_json",
]

SNAPSHOT_KIND = "omar-matd3-policy"

#: The shipped behaviour snapshots: one folder per task variant with ``snapshots.json``,
#: ``medium.pt`` and ``expert.pt``.
POLICIES = Path(__file__).resolve().parents[2] / "policies"


def save_snapshot(path: str | os.PathLike, trainer: MATD3Trainer, level: str, mean_return: float) -> Path:
    """Save ``trainer``'s current policy (actor weights and what rolling it out needs) to ``path``."""
    data = {
        "kind": SNAPSHOT_KIND, "task": trainer.task, "env_kwargs": trainer.env_kwargs, "level": level,
        "obs_dims": trainer.obs_dims, "act_dims": trainer.act_dims, "hidden_dim": trainer.cfg.hidden_dim,
        "input_norm": trainer.cfg.input_norm, "score": float(mean_return), "steps": trainer.steps, "updates": trainer.updates,
        "replay_rows": trainer.size, "exploration_noise": trainer.cfg.exploration_noise, "seed": trainer.seed,
        "actor": {k: v.clone() for k, v in trainer.actor.state_dict().items()},
    }
    return atomic_write(path, lambda f: torch.save(data, f))


def load_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """Read a policy snapshot written by :func:`save_snapshot`; the actor is rebuilt under
    ``"module"``. Errors name the file."""
    path = Path(path)
    data = load_torch_file(path, "policy snapshot", "policy snapshot", weights_only=True)
    if not isinstance(data, dict) or data.get("kind") != SNAPSHOT_KIND:
        raise ValueError(f"{path}: not an omar MATD3 policy snapshot (missing kind '{SNAPSHOT_KIND}')")
    actor = Actor(data["obs_dims"], data["act_dims"], data["hidden_dim"], input_norm=bool(data.get("input_norm", True)))
    actor.load_state_dict(data["actor"])
    actor.eval()
    data["module"] = actor
    return data


def matching_snapshot(path: Path, task: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The snapshot at ``path``; ValueError naming it when it was trained on another task or
    environment (``env_kwargs``, e.g. another ``variant``). Settings that only name a fixed
    opponent (:data:`~omar_lightning.envs.mpe_competitive.FIXED_POLICY_SETTINGS`, e.g. predators
    trained against a faster prey) may differ: :func:`trained_apart` names them."""
    snap = load_snapshot(path)
    if snap["task"] != task or _without_fixed(snap["env_kwargs"]) != _without_fixed(env_kwargs):
        raise ValueError(f"{path}: snapshot is for task {snap['task']!r} {snap['env_kwargs']}, not {task!r} {env_kwargs}")
    return snap


def trained_apart(snap: dict[str, Any], env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The fixed-policy settings of the environment ``snap`` was trained in that differ from
    ``env_kwargs`` (a setting left out is the variant's default, shown as None); ``{}`` when none."""
    from omar_lightning.envs.mpe_competitive import FIXED_POLICY_SETTINGS

    own = dict(snap["env_kwargs"])
    return {k: own.get(k) for k in FIXED_POLICY_SETTINGS if own.get(k) != env_kwargs.get(k)}


def _without_fixed(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    from omar_lightning.envs.mpe_competitive import FIXED_POLICY_SETTINGS

    return {k: v for k, v in dict(env_kwargs).items() if k not in FIXED_POLICY_SETTINGS}


def snapshot_policy(snap: dict[str, Any], noise: float, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Batched rollout policy of a loaded snapshot with Gaussian action noise ``noise``."""
    actor: nn.Module = snap["module"]
    mask = actor.act_mask[:, 0, :].numpy()

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        a = actor(torch.as_tensor(obs, dtype=torch.float32)).numpy()
        if noise > 0:
            a = a + noise * rng.standard_normal(a.shape).astype(np.float32)
        return (np.clip(a, -1.0, 1.0) * mask[:, None, :]).astype(np.float32)

    return policy


def snapshot_policy_from_file(path: str | os.PathLike, noise: float, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`snapshot_policy` of the snapshot at ``path`` with a fresh ``np.random.default_rng(seed)``:
    a picklable policy factory for :func:`~omar_lightning.envs.rollout.run_episodes_parallel`."""
    return snapshot_policy(load_snapshot(path), noise, np.random.default_rng(seed))


def shipped_snapshots(task: str, env_kwargs: dict[str, Any]) -> Path | None:
    """The folder of :data:`POLICIES` whose ``snapshots.json`` is for ``task`` with ``env_kwargs``, or None."""
    for index in sorted(POLICIES.glob("*/snapshots.json")):
        info = json.loads(index.read_text())
        if info.get("task") == task and dict(info.get("env_kwargs") or {}) == dict(env_kwargs):
            return index.parent
    return None


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as indented JSON, written atomically."""
    text = json.dumps(obj, indent=2)
    return atomic_write(path, lambda f: f.write(text.encode()))


class SnapshotIndex:
    """``DIR/snapshots.json`` of a training run: every evaluated snapshot and the levels picked.

    ``data`` is the JSON object: ``task``, ``env_kwargs``, ``seed``, ``snapshots`` (``file``,
    ``steps``, ``updates``, ``score`` (the mean evaluation return), ``replay_rows``),
    ``levels`` (``NAME: {file, from, score, target}``), ``wanted_levels`` (``NAME: RETURN``),
    ``train_seconds`` and, once a half-way medium was picked, ``random_score`` (S_random on the
    evaluation episodes).
    """

    def __init__(self, folder: Path, task: str, env_kwargs: dict[str, Any], seed: int) -> None:
        self.folder = folder
        self.path = folder / "snapshots.json"
        if self.path.exists():
            self.data = json.loads(self.path.read_text())
        else:
            self.data = {"task": task, "env_kwargs": env_kwargs, "seed": seed, "snapshots": [], "levels": {}}

    def want(self, levels: dict[str, float]) -> dict[str, float]:
        """Add ``levels`` (NAME: RETURN) to those the run keeps; all of them."""
        wanted = dict(self.data.get("wanted_levels", {}))
        wanted.update(levels)
        self.data["wanted_levels"] = wanted
        return wanted

    def add(self, trainer: MATD3Trainer, mean_return: float) -> Path:
        """Snapshot ``trainer`` as ``snapshots/step_<steps>.pt``, index it, and copy it to every wanted
        level it is the first to reach."""
        out = self.folder
        snap = save_snapshot(out / "snapshots" / f"step_{trainer.steps:09d}.pt", trainer, "snapshot", mean_return)
        entry = {"file": str(snap.relative_to(out)), "steps": trainer.steps, "updates": trainer.updates,
                 "score": mean_return, "replay_rows": trainer.size}
        # a run stopped after an evaluation but before its next save evaluates that step again on resume:
        # the entry is replaced, so each snapshot file is indexed once
        self.data["snapshots"] = [s for s in self.data["snapshots"] if s["file"] != entry["file"]] + [entry]
        for name, target in self.data.get("wanted_levels", {}).items():
            if name not in self.data["levels"] and mean_return >= target:
                shutil.copyfile(snap, out / f"{name}.pt")
                self.data["levels"][name] = {"file": f"{name}.pt", "from": str(snap.relative_to(out)), "score": mean_return, "target": target}
        return snap

    def pick_final_levels(self, random_return: Callable[[], float]) -> None:
        """``expert.pt`` = the best snapshot; without a wanted ``medium``, ``medium.pt`` = the first
        reaching half way from ``random_return()`` (S_random on the evaluation episodes) to the best."""
        out, snaps = self.folder, self.data["snapshots"]
        if not snaps:
            return
        best = max(snaps, key=lambda s: s["score"])
        shutil.copyfile(out / best["file"], out / "expert.pt")
        self.data["levels"]["expert"] = {"file": "expert.pt", "from": best["file"], "score": best["score"], "target": "best"}
        if "medium" not in self.data.get("wanted_levels", {}):
            s_random = random_return()
            self.data["random_score"] = s_random
            half = s_random + 0.5 * (best["score"] - s_random)
            med = next((s for s in snaps if s["score"] >= half), best)
            shutil.copyfile(out / med["file"], out / "medium.pt")
            self.data["levels"]["medium"] = {"file": "medium.pt", "from": med["file"], "score": med["score"], "target": f"half way ({half:.2f})"}

    def save(self) -> Path:
        return write_json(self.path, self.data)
