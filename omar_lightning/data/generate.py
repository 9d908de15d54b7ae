"""Write generated datasets in the file format of :mod:`omar_lightning.data.format`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.data.format import FIELDS, OfflineDataset, save_dataset


def write_random_dataset(
    path: str | Path, task: str, num_transitions: int, seed: int = 0, reference_episodes: int = 200, **env_kwargs: Any
) -> Path:
    """Collect the random tier of ``task`` and write it with measured S_random and S_expert."""
    from omar_lightning.collect import collect_random_tier, reference_returns

    start = time.perf_counter()
    print(f"Generating the random dataset of {task}: {num_transitions:,} transitions -> {path}")
    data = collect_random_tier(task, num_transitions, seed=seed, progress=True, **env_kwargs)
    s_random, s_expert = reference_returns(task, episodes=reference_episodes, **env_kwargs)
    returns = np.asarray(data["episode_returns"], dtype=np.float64)
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
        "episode_returns": {
            "mean": float(returns.mean()) if returns.size else None,
            "std": float(returns.std()) if returns.size else None,
            "min": float(returns.min()) if returns.size else None,
            "max": float(returns.max()) if returns.size else None,
            "count": int(returns.size),
        },
        "generation_seconds": round(time.perf_counter() - start, 1),
    }
    ds = OfflineDataset(**{f: data[f] for f in FIELDS}, meta=meta)
    out = save_dataset(path, ds)
    behaviour = f"{returns.mean():.2f}" if returns.size else "n/a (no whole episode)"
    print(f"Wrote {out}: S_random={s_random:.2f}, S_expert={s_expert:.2f}, behaviour return {behaviour}")
    return out
