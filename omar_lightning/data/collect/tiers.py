"""The dataset tiers: collected transitions and the files they are written to.

* :func:`random_tier`: uniform random actions in ``[-1, 1]`` (the paper's random tier rolls out a
  randomly initialised policy, whose official last layer, initialised in +-3e-3, outputs forces
  of about 1e-3 and barely moves; uniform random actions are used instead).
* :func:`rollout_tier`: a behaviour snapshot with Gaussian noise (medium, expert).
* :func:`replay_tier`: the replay buffer rows a training run collected up to a snapshot, put back
  into episodes (medium-replay).
* :func:`write_tier`: one tier with its reference returns, written with
  :func:`~omar_lightning.data.format.save_dataset` (atomic, checksummed): ``omar collect dataset``.
* :func:`write_random_dataset`, :func:`write_snapshot_dataset`: the data module's first-use
  writers (``generate: true``), from the shipped snapshots in ``omar_lightning/policies/``.

Seeds: a tier's episodes start at ``(seed + 1) * 1,000,000`` (:data:`TIER_SEED_STRIDE`), so its
initial states never coincide with those of the reference episodes (from 10,000) or of evaluation
episodes seeded below 1,000,000.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.data.collect.references import (
    REFERENCE_SEED,
    check_task,
    env_maker,
    expert_policy,
    expert_return,
    random_return,
    reference_returns,
)
from omar_lightning.data.episodes import return_stats, whole_episode_returns
from omar_lightning.data.format import FIELDS, DatasetError, OfflineDataset, save_dataset
from omar_lightning.envs import task_spec
from omar_lightning.envs.rollout import run_episodes, run_episodes_parallel, seeded_uniform_random_policy, task_returns

__all__ = [
    "SCRIPTED", "SNAPSHOT_TIERS", "TIER_SEED_STRIDE", "random_tier", "replay_tier", "rollout_tier", "write_random_dataset",
    "write_snapshot_dataset", "write_tier",
]

#: Episode seeds of a tier start at ``(seed + 1) * TIER_SEED_STRIDE``.
TIER_SEED_STRIDE = 1_000_000
#: The tiers rolled out from a behaviour snapshot.
SNAPSHOT_TIERS = ("medium", "expert")


def random_tier(task: str, num_transitions: int, seed: int = 0, progress: bool = True, workers: int = 1, **env_kwargs: Any) -> dict[str, Any]:
    """Collect the "random" dataset tier: uniform random actions in ``[-1, 1]^d``.

    Whole episodes are played (episode ``k`` seeded ``(seed + 1) * 1_000_000 + k``, actions
    from ``np.random.default_rng(seed)``, 10 env copies in lockstep) until at least
    ``num_transitions`` steps exist; the arrays are then cut to exactly that many rows.
    The result is the same for the same arguments, whatever the number of ``workers``
    (processes sharing the episodes, :func:`~omar_lightning.envs.rollout.run_episodes_parallel`).

    Returns:
        dict with ``obs``, ``actions``, ``rewards``, ``next_obs``, ``dones`` (lists over
        agents of float32 arrays with ``num_transitions`` rows; ``dones`` is 1.0 only at a
        true termination, never at the time limit), ``episode_returns`` (float64 returns
        of the episodes lying wholly inside the cut) and ``agent_names``.
    """
    check_task(task)
    if isinstance(num_transitions, bool) or int(num_transitions) != num_transitions:
        raise ValueError(f"num_transitions must be an int, got {num_transitions!r}")
    if num_transitions < 1:
        raise ValueError(f"num_transitions must be >= 1, got {num_transitions}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    num_transitions = int(num_transitions)
    seed = int(seed)

    spec = task_spec(task, **env_kwargs)
    make = env_maker(task, env_kwargs)
    make_policy = functools.partial(seeded_uniform_random_policy, seed, max(spec.act_dims))
    policy = make_policy()  # one generator across top-ups
    base = (seed + 1) * TIER_SEED_STRIDE

    parts = []
    collected = 0
    played = 0
    while collected < num_transitions:
        # Episodes may end early on termination: top up until enough steps exist.
        missing = num_transitions - collected
        n_episodes = max(1, math.ceil(missing / spec.episode_length))
        if workers > 1:  # fixed-length episodes (the workers check it), so no top-up follows
            res = run_episodes_parallel(make, make_policy, n_episodes, base + played, spec.episode_length,
                                        record=True, workers=workers, progress=progress)
        else:
            res = run_episodes(make, policy, n_episodes, base + played, record=True, progress=progress)
        parts.append(res)
        collected += res.num_transitions
        played += n_episodes

    def cut(key: str, i: int) -> np.ndarray:
        chunks = [getattr(p, key)[i] for p in parts]
        arr = chunks[0] if len(chunks) == 1 else np.concatenate(chunks, axis=0)
        return np.ascontiguousarray(arr[:num_transitions])

    n_agents = spec.num_agents
    lengths = np.concatenate([p.episode_lengths for p in parts])
    returns = np.concatenate([task_returns(p) for p in parts])
    complete = np.cumsum(lengths) <= num_transitions
    return {
        "obs": [cut("obs", i) for i in range(n_agents)],
        "actions": [cut("actions", i) for i in range(n_agents)],
        "rewards": [cut("rewards", i) for i in range(n_agents)],
        "next_obs": [cut("next_obs", i) for i in range(n_agents)],
        "dones": [cut("dones", i) for i in range(n_agents)],
        "episode_returns": returns[complete],
        "agent_names": list(spec.agent_names),
    }


def rollout_tier(task: str, policy: Any, size: int, seed: int, noise: float, env_kwargs: dict[str, Any], progress: bool,
                 workers: int = 1) -> dict[str, Any]:
    """``size`` transitions of the snapshot ``policy`` with Gaussian noise ``noise`` (whole episodes
    seeded ``(seed + 1) * 1,000,000 + k``, cut to ``size`` rows), played by ``workers`` processes
    with the same result: per-agent ``obs``, ``actions``, ``rewards``, ``next_obs``, ``dones`` and
    the returns of the whole episodes (``episode_returns``)."""
    from omar_lightning.data.collect.snapshots import snapshot_policy_from_file

    spec = task_spec(task, **env_kwargs)
    n_episodes = -(-size // spec.episode_length)
    res = run_episodes_parallel(env_maker(task, env_kwargs), functools.partial(snapshot_policy_from_file, policy, noise, seed),
                                n_episodes, (seed + 1) * TIER_SEED_STRIDE, spec.episode_length, record=True, workers=workers, progress=progress)
    if res.num_transitions < size:
        raise RuntimeError(f"episodes ended early: {res.num_transitions} < {size} transitions")
    returns = task_returns(res)
    complete = np.cumsum(res.episode_lengths) <= size
    return {f: [np.ascontiguousarray(x[:size]) for x in getattr(res, f)] for f in FIELDS} | {"episode_returns": returns[complete]}


def training_state_of(policy: Path) -> Path:
    """The ``state.pt`` of the training run that wrote the snapshot ``policy`` (beside its
    ``snapshots/`` folder, or beside a level copy such as ``medium.pt``)."""
    return policy.parent.parent / "state.pt" if policy.parent.name == "snapshots" else policy.parent / "state.pt"


def replay_tier(task: str, policy: Path, snapshot: dict[str, Any], size: int | None, env_kwargs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The replay buffer rows of the run that wrote ``policy`` (``snapshot``, loaded), up to the
    snapshot's ``replay_rows`` and the last ``size`` of them (all without ``size``), put back into
    whole episodes one after another: the per-agent arrays with ``episode_returns``, and a line
    describing them."""
    import torch

    from omar_lightning.data.collect.replay import check_continuity, episode_order

    spec = task_spec(task, **env_kwargs)
    state = training_state_of(policy)
    if not state.is_file():
        raise FileNotFoundError(f"training state not found: {state} (medium_replay reads the replay buffer of the run that produced {policy})")
    st = torch.load(state, weights_only=False)
    rows = int(snapshot["replay_rows"])
    if int(st["size"]) < rows:
        raise ValueError(f"{state}: holds {st['size']:,} replay rows, fewer than the snapshot's {rows:,}")
    order = episode_order(rows, int(st["config"]["num_envs"]), spec.episode_length, state)
    first = max(0, rows - size) if size else 0
    buf = {k: v[:rows].numpy()[order][first:] for k, v in st["buffer"].items()}
    check_continuity(buf, state)
    data = {f: [np.ascontiguousarray(buf[f][:, i, : (spec.act_dims[i] if f == "actions" else spec.obs_dims[i])] if buf[f].ndim == 3 else buf[f][:, i])
                for i in range(spec.num_agents)] for f in FIELDS}
    data["episode_returns"] = whole_episode_returns(data["obs"], data["next_obs"], data["dones"], data["rewards"], spec.episode_length,
                                                    agent=0 if spec.return_mode == "first" else None)
    return data, f"MATD3 replay buffer rows {first:,}..{rows:,} (up to {policy.name})"


def _snapshot_references(task: str, env_kwargs: dict[str, Any], expert: Path, shown: Any, episodes: int, workers: int,
                         progress: bool) -> tuple[float, float]:
    """S_random (uniform random actions) and S_expert (``expert`` without noise) over the same
    ``episodes`` reference episodes; ``shown`` names the expert in the progress line."""
    if progress:
        print(f"Reference returns: {episodes} episodes each of uniform random actions and of {shown} without noise")
    s_random = random_return(task, episodes, REFERENCE_SEED, workers, progress=progress, **env_kwargs)
    s_expert = expert_return(task, episodes, REFERENCE_SEED, workers, snapshot=expert, progress=progress, **env_kwargs)
    return s_random, s_expert


def _meta(task: str, tier: str, agent_names: list[str], s_random: float, s_expert: float, reference: str, behaviour: str | None,
          env_kwargs: dict[str, Any], seed: int, returns: np.ndarray, start: float) -> dict[str, Any]:
    meta = {"task": task, "tier": tier, "agent_names": list(agent_names), "s_random": s_random, "s_expert": s_expert, "reference": reference}
    if behaviour is not None:
        meta["behaviour"] = behaviour
    # statistics of the behaviour episodes wholly inside the dataset (none when it is shorter than one)
    return meta | {"env_kwargs": dict(env_kwargs), "seed": seed, "episode_returns": return_stats(returns),
                   "generation_seconds": round(time.perf_counter() - start, 1)}


#: ``--expert`` value naming the task's scripted reference expert instead of a snapshot.
SCRIPTED = "scripted"


def _expert_beside(policy: Path | None) -> Path | None:
    if policy is not None:
        cand = policy.parent / "expert.pt"
        return cand if cand.exists() else None
    return None


def write_tier(out: Path, task: str, tier: str, env_kwargs: dict[str, Any], policy: Path | None = None, expert: Path | str | None = None,
               size: int | None = None, seed: int = 0, noise: float | None = None, reference_episodes: int = 200, workers: int = 1,
               progress: bool = True) -> tuple[Path, dict[str, Any], int]:
    """Write the ``tier`` of ``task`` to ``out``: what ``omar collect dataset`` does.

    ``random``: uniform random actions; ``medium_replay``: the replay buffer rows collected up to
    the ``policy`` snapshot (:func:`replay_tier`); ``medium`` / ``expert``: rollouts of ``policy``
    with its Gaussian exploration noise (or ``noise``). ``size`` transitions (default 1,000,000;
    medium-replay: all rows up to the snapshot). ``S_random`` is the uniform random policy's mean
    return and ``S_expert`` the ``expert`` snapshot's (default: ``expert.pt`` beside ``policy``)
    without noise, over ``reference_episodes`` episodes; ``expert="scripted"`` (:data:`SCRIPTED`),
    and the random tier without an expert snapshot, use the task's scripted reference expert
    (the Spread on a line's references). Returns the file, its metadata and its row count.
    """
    from omar_lightning.data.collect.snapshots import matching_snapshot, trained_apart

    spec = task_spec(task, **env_kwargs)
    start = time.perf_counter()
    scripted = expert is not None and str(expert) == SCRIPTED
    if scripted:
        expert_policy(task, **env_kwargs)  # a task without a scripted expert is named before any rollout
    snap = None
    if tier != "random":
        if policy is None:
            raise ValueError(f"--policy is required for tier {tier!r} (a snapshot from 'omar collect train')")
        snap = matching_snapshot(policy, task, env_kwargs)
    noise = noise if noise is not None else (snap["exploration_noise"] if snap else 0.0)
    if tier == "random":
        data = random_tier(task, size or 1_000_000, seed=seed, progress=progress, workers=workers, **env_kwargs)
        behaviour = "uniform random actions in [-1, 1]"
    elif tier == "medium_replay":
        if trained_apart(snap, env_kwargs):
            raise ValueError(f"{policy}: its run was trained with {trained_apart(snap, env_kwargs)}, so its replay buffer holds transitions "
                             f"of another environment than {env_kwargs}; a medium_replay tier needs a run in the tier's own environment")
        data, behaviour = replay_tier(task, policy, snap, size, env_kwargs)
    else:
        data = rollout_tier(task, policy, size or 1_000_000, seed, noise, env_kwargs, progress, workers)
        behaviour = f"MATD3 snapshot {policy} with Gaussian noise {noise}"
        apart = trained_apart(snap, env_kwargs)
        if apart:
            behaviour += " (trained with " + ", ".join(f"{k}={v if v is not None else 'the default'}" for k, v in apart.items()) + ")"
    # Reference returns: the same episodes for both policies; the expert plays without noise.
    expert = expert if expert is not None else _expert_beside(policy)
    if expert is not None and not scripted:
        matching_snapshot(expert, task, env_kwargs)  # a bad file is named here, before any worker starts
        s_random, s_expert = _snapshot_references(task, env_kwargs, expert, expert, reference_episodes, workers, progress)
        ref = f"S_random: uniform random actions; S_expert: {expert} without noise ({reference_episodes} episodes each)"
    elif scripted or tier == "random":
        s_random, s_expert = reference_returns(task, episodes=reference_episodes, seed=REFERENCE_SEED, workers=workers, **env_kwargs)
        ref = f"S_random: uniform random actions; S_expert: the scripted reference expert ({reference_episodes} episodes each)"
    else:
        raise ValueError(f"no expert snapshot: give --expert (no expert.pt beside {policy})")
    meta = _meta(task, tier, spec.agent_names, s_random, s_expert, ref, behaviour, env_kwargs, seed, data["episode_returns"], start)
    if task == "halfcheetah_2x3":
        from omar_lightning.envs.halfcheetah import simulator_versions

        meta["simulator"] = simulator_versions()
    path = save_dataset(out, OfflineDataset(**{f: data[f] for f in FIELDS}, meta=meta))
    return path, meta, len(data["obs"][0])


# ---------------------------------------------------------------------------- first use


def write_random_dataset(
    path: str | Path, task: str, num_transitions: int, seed: int = 0, reference_episodes: int = 200, workers: int = 1, **env_kwargs: Any
) -> Path:
    """Collect the random tier of ``task`` and write it with measured S_random and S_expert."""
    start = time.perf_counter()
    print(f"Generating the random dataset of {task}: {num_transitions:,} transitions -> {path}")
    data = random_tier(task, num_transitions, seed=seed, progress=True, workers=workers, **env_kwargs)
    s_random, s_expert = reference_returns(task, episodes=reference_episodes, workers=workers, **env_kwargs)
    meta = _meta(task, "random", data["agent_names"], float(s_random), float(s_expert),
                 f"S_random: uniform random actions; S_expert: the scripted reference expert ({reference_episodes} episodes each)",
                 None, env_kwargs, seed,
                 data["episode_returns"], start)
    return _write_first_use(path, data, meta)


def write_snapshot_dataset(
    path: str | Path, task: str, tier: str, num_transitions: int, seed: int = 0, reference_episodes: int = 200, workers: int = 1,
    **env_kwargs: Any,
) -> Path:
    """Write the ``tier`` (medium or expert) of ``task`` from the shipped snapshots, as
    ``omar collect dataset --tier TIER --policy <folder>/TIER.pt --expert <folder>/expert.pt`` would.

    ``num_transitions`` rows of the ``TIER.pt`` policy with its own exploration noise (whole
    episodes seeded ``(seed + 1) * 1,000,000 + k``); S_random is uniform random actions and
    S_expert ``expert.pt`` without noise, each over ``reference_episodes`` episodes seeded from
    10,000. Nothing here depends on the snapshots' recorded returns: the file records what they play.
    """
    from omar_lightning.data.collect.snapshots import POLICIES, load_snapshot, shipped_snapshots

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
    s_random, s_expert = _snapshot_references(task, env_kwargs, expert, expert.name, reference_episodes, workers, progress=True)
    meta = _meta(task, tier, task_spec(task, **env_kwargs).agent_names, s_random, s_expert,
                 f"S_random: uniform random actions; S_expert: {name[expert]} without noise ({reference_episodes} episodes each)",
                 f"MATD3 snapshot {name[policy]} with Gaussian noise {noise}", env_kwargs, seed, data["episode_returns"], start)
    return _write_first_use(path, data, meta)


def _write_first_use(path: str | Path, data: dict[str, Any], meta: dict[str, Any]) -> Path:
    out = save_dataset(path, OfflineDataset(**{f: data[f] for f in FIELDS}, meta=meta))
    stats = meta["episode_returns"]
    behaviour = f"{stats['mean']:.2f}" if stats["mean"] is not None else "n/a (no whole episode)"
    print(f"Wrote {out}: S_random={meta['s_random']:.2f}, S_expert={meta['s_expert']:.2f}, behaviour return {behaviour}, "
          f"{meta['generation_seconds']} s")
    return out
