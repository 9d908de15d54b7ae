"""Write generated datasets in the file format of :mod:`omar_lightning.data.format`.

A data module with ``generate: true`` writes a missing dataset file here on first use: the
random tier from uniform random actions, the medium and expert tiers by rolling out the
behaviour snapshots shipped in ``omar_lightning/policies/`` (whichever are there for the task and
its ``env_kwargs``; ``omar collect`` makes them for other tasks).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from omar_lightning.data.format import FIELDS, DatasetError, OfflineDataset, save_dataset

#: The shipped behaviour snapshots: one folder per task variant with ``snapshots.json``,
#: ``medium.pt`` and ``expert.pt``.
POLICIES = Path(__file__).resolve().parents[1] / "policies"
SNAPSHOT_TIERS = ("medium", "expert")


def write_random_dataset(
    path: str | Path, task: str, num_transitions: int, seed: int = 0, reference_episodes: int = 200, workers: int = 1, **env_kwargs: Any
) -> Path:
    """Collect the random tier of ``task`` and write it with measured S_random and S_expert."""
    from omar_lightning.collect import collect_random_tier, reference_returns
    from omar_lightning.data.episodes import return_stats

    start = time.perf_counter()
    print(f"Generating the random dataset of {task}: {num_transitions:,} transitions -> {path}")
    data = collect_random_tier(task, num_transitions, seed=seed, progress=True, workers=workers, **env_kwargs)
    s_random, s_expert = reference_returns(task, episodes=reference_episodes, workers=workers, **env_kwargs)
    meta = {
        "task": task,
        "tier": "random",
        "agent_names": list(data["agent_names"]),
        "s_random": float(s_random),
        "s_expert": float(s_expert),
        "reference": "S_random: uniform random actions; S_expert: scripted landmark-assignment controller",
        "env_kwargs": dict(env_kwargs),
        "seed": seed,
        # statistics of the behaviour episodes wholly inside the dataset (none when it is shorter than one)
        "episode_returns": return_stats(data["episode_returns"]),
        "generation_seconds": round(time.perf_counter() - start, 1),
    }
    return _write(path, data, meta)


def shipped_snapshots(task: str, env_kwargs: dict[str, Any]) -> Path | None:
    """The folder of :data:`POLICIES` whose ``snapshots.json`` is for ``task`` with ``env_kwargs``, or None."""
    for index in sorted(POLICIES.glob("*/snapshots.json")):
        info = json.loads(index.read_text())
        if info.get("task") == task and dict(info.get("env_kwargs") or {}) == dict(env_kwargs):
            return index.parent
    return None


def write_snapshot_dataset(
    path: str | Path, task: str, tier: str, num_transitions: int, seed: int = 0, reference_episodes: int = 200, workers: int = 1,
    **env_kwargs: Any,
) -> Path:
    """Write the ``tier`` (medium or expert) of ``task`` from the shipped snapshots, as
    ``omar collect dataset --tier TIER --policy <folder>/TIER.pt --expert <folder>/expert.pt`` would.

    ``num_transitions`` rows of the ``TIER.pt`` policy with its own exploration noise (whole
    episodes seeded ``(seed + 1) * 1,000,000 + k``); S_random is uniform random actions and
    S_expert ``expert.pt`` without noise, each over ``reference_episodes`` episodes seeded from
    10,000. Nothing here depends on the snapshots' scores: the file records what they play.
    """
    from omar_lightning.collect import expert_score, random_score, rollout_tier
    from omar_lightning.data.episodes import return_stats
    from omar_lightning.envs import task_spec
    from omar_lightning.online.matd3 import load_snapshot

    if tier not in SNAPSHOT_TIERS:
        raise DatasetError(
            f"dataset file not found: {path} (data.path); tier {tier!r} is a training run's replay buffer: "
            "create it with 'omar collect' first (docs/datasets.md)"
        )
    folder = shipped_snapshots(task, env_kwargs)
    if folder is None or not (folder / f"{tier}.pt").is_file():
        raise DatasetError(
            f"dataset file not found: {path} (data.path); no shipped {tier} snapshot of task {task!r} with env_kwargs {dict(env_kwargs)} "
            f"in {POLICIES}: create the tier with 'omar collect' first (docs/datasets.md)"
        )
    policy, expert = folder / f"{tier}.pt", folder / "expert.pt"
    name = {p: p.relative_to(POLICIES.parents[1]) for p in (policy, expert)}  # omar_lightning/policies/<folder>/<file>
    noise = float(load_snapshot(policy)["exploration_noise"])
    start = time.perf_counter()
    print(f"Generating the {tier} dataset of {task} from {name[policy]} (noise {noise}): {num_transitions:,} transitions -> {path}")
    data = rollout_tier(task, policy, num_transitions, seed, noise, dict(env_kwargs), progress=True, workers=workers)
    ref_seed = 10_000
    print(f"Reference returns: {reference_episodes} episodes each of uniform random actions and of {expert.name} without noise")
    s_random = random_score(task, reference_episodes, ref_seed, workers, progress=True, **env_kwargs)
    s_expert = expert_score(task, reference_episodes, ref_seed, workers, snapshot=expert, progress=True, **env_kwargs)
    meta = {
        "task": task,
        "tier": tier,
        "agent_names": list(task_spec(task, **env_kwargs).agent_names),
        "s_random": s_random,
        "s_expert": s_expert,
        "reference": f"S_random: uniform random actions; S_expert: {name[expert]} without noise ({reference_episodes} episodes each)",
        "behaviour": f"MATD3 snapshot {name[policy]} with Gaussian noise {noise}",
        "env_kwargs": dict(env_kwargs),
        "seed": seed,
        "episode_returns": return_stats(data["episode_returns"]),
        "generation_seconds": round(time.perf_counter() - start, 1),
    }
    return _write(path, data, meta)


def _write(path: str | Path, data: dict[str, Any], meta: dict[str, Any]) -> Path:
    out = save_dataset(path, OfflineDataset(**{f: data[f] for f in FIELDS}, meta=meta))
    stats = meta["episode_returns"]
    behaviour = f"{stats['mean']:.2f}" if stats["mean"] is not None else "n/a (no whole episode)"
    print(f"Wrote {out}: S_random={meta['s_random']:.2f}, S_expert={meta['s_expert']:.2f}, behaviour return {behaviour}, "
          f"{meta['generation_seconds']} s")
    return out
