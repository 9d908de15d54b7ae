"""Datasets of other layouts into this project's format (:mod:`omar_lightning.data.format`).

Three sources, each read into per-agent arrays (:class:`Source`), then fitted to a task
(:func:`build_dataset`: the task's learning agents, shapes checked against its environment
with the given ``env_kwargs``, reference returns given or measured):

``official``: the files the official OMAR code reads (ling-pan/OMAR, ``utils/buffer.py``
``ReplayBuffer.load_batch_data`` and ``main.py``). ``main.py`` sets the folder to
``<dataset_dir>/<env_id>/<data_type>/seed_<seed>_data`` (``env_id`` ``simple_spread``,
``simple_tag``, ``simple_world`` or ``HalfCheetah-v2``; ``data_type`` ``random``,
``medium-replay``, ``medium`` or ``expert``). For every agent ``i`` of the environment, in the
environment's agent order (``range(num_agents)``, the fixed prey of ``simple_tag`` and the
fixed good agent of ``simple_world`` included, after the adversaries), the loader reads with
``np.load`` ``obs_<i>.npy`` ``[N, obs_dim]``, ``acs_<i>.npy`` ``[N, act_dim]``, ``rews_<i>.npy``
``[N]``, ``next_obs_<i>.npy`` ``[N, obs_dim]`` and ``dones_<i>.npy`` ``[N]``, and for
``HalfCheetah-v2`` also ``states_<i>.npy`` and ``next_states_<i>.npy`` ``[N, state_dim]``
(``state_dim`` 17, the full HalfCheetah observation). It copies them into float64 buffers of
``[max_steps, dim]`` and ``[max_steps]`` (so ``rews`` and ``dones`` are 1-D, and any numeric or
boolean dtype loads), ``N`` taken from ``obs_<i>``. Learning uses ``(1 - dones)`` in the TD
target as stored; the HalfCheetah update unpacks the states but never uses them, so they are
checked here (present, ``N`` rows) and not imported. The fixed agents' files are checked
present and left out: the learners are the first agents.

``vault``: OG-MARL's conversions of those files to flashbax Vaults (``prior_work/omar``:
``omar/mpe/simple_spread.vlt``, ``simple_tag.vlt``, ``simple_world.vlt``,
``omar/mamujoco/2halfcheetah.vlt``, uids ``Random``, ``Medium-Replay``, ``Medium``, ``Expert``),
read by :mod:`omar_lightning.data.vault`. Their experience (OG-MARL's ``replay_buffers.py``) is
``observations [B, T, A, obs_dim]``, ``actions [B, T, A, act_dim]``, ``rewards [B, T, A]``,
``terminals [B, T, A]``, ``truncations [B, T, A]`` and ``infos.state`` (all agents, in the
environment's order; the OMAR vaults have ``B = 5`` batch rows; OG-MARL's statistics read row
0). A vault keeps ``o_t`` only: the next observation of a row is the next row's observation
within the episode. An episode ends where any agent's ``terminals`` or ``truncations`` is set
(OG-MARL's OMAR vaults set ``terminals`` at the end of every episode, time limits included);
such a row, and the vault's last row, have no stored next observation: they are kept with
``done = 1`` (no bootstrap from the unknown next state, as OG-MARL's learners read these
vaults) and ``next_obs = obs``.

``arrays``: an ``.npz`` of a user's per-agent arrays, ``obs_<i> [N, obs_dim]``,
``actions_<i> [N, act_dim]`` (in [-1, 1]), ``rewards_<i> [N]`` (or ``[N, 1]``),
``next_obs_<i> [N, obs_dim]`` and ``dones_<i> [N]`` (0 or 1: 1 only at a true termination), for
``i = 0, 1, ...`` in the task's agent order; float32 or float64 (``dones`` may be boolean or
integer); no other keys.

Every problem raises :class:`~omar_lightning.data.format.DatasetError` in one line naming the
file (or the vault leaf or npz key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.data.episodes import return_stats, whole_episode_returns
from omar_lightning.data.format import FIELDS, FLOAT32_MAX, DatasetError, OfflineDataset, _reason
from omar_lightning.data.official import (
    OFFICIAL_AGENTS,
    OFFICIAL_ENV_IDS,
    OFFICIAL_LEARNERS,
    OFFICIAL_TIERS,
    TASKS_WITH_STATES,
    VAULT_NAMES,
    VAULT_UIDS,
)

FORMATS = ("official", "vault", "arrays")

#: Our field -> the prefix of the official file ``<prefix>_<i>.npy``.
OFFICIAL_FILES = {"obs": "obs", "actions": "acs", "rewards": "rews", "next_obs": "next_obs", "dones": "dones"}
STATE_FILES = ("states", "next_states")
SEED_FOLDER = re.compile(r"^seed_(\d+)_data$")


@dataclass
class Source:
    """Per-agent arrays read from a source (``arrays[field][i]``, all agents of the source) and,
    for each, the name that an error about it gives (``names[field][i]``)."""

    arrays: dict[str, list[np.ndarray]]
    names: dict[str, list[str]]
    where: str
    task: str | None = None
    tier: str | None = None
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    rewards_column_ok: bool = False  # whether rewards may be [N, 1]

    @property
    def num_agents(self) -> int:
        return len(self.arrays["obs"])


def _agree(kind: str, given: str | None, found: str | None, where: str, what: str) -> str | None:
    """The given name, checked against the one the source's names say (``what`` names that)."""
    if given is not None and found is not None and given != found:
        raise DatasetError(f"{where}: {what} holds {kind} {found!r}, not {given!r}")
    return given if given is not None else found


def _inverse(mapping: dict[str, str], value: str) -> str | None:
    return next((k for k, v in mapping.items() if v == value), None)


# ---------------------------------------------------------------------------- official files
def resolve_official(path: str | Path, task: str | None, tier: str | None, seed: int | None) -> tuple[Path, str | None, str | None, int | None]:
    """The ``seed_<s>_data`` folder and the task, tier and seed that its path names.

    ``path`` is that folder, or the dataset root ``<dataset_dir>`` when ``task`` and ``tier`` are
    given (then ``<dataset_dir>/<env_id>/<data_type>/seed_<seed>_data``, seed 0 by default)."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (the official layout is <env_id>/<tier>/seed_<s>_data/obs_<i>.npy ...)")
    if not (folder / "obs_0.npy").exists():
        if task is None or tier is None or task not in OFFICIAL_ENV_IDS or tier not in OFFICIAL_TIERS:
            raise DatasetError(f"{folder}: no obs_0.npy; give the seed_<s>_data folder of the official layout "
                               "<env_id>/<tier>/seed_<s>_data/{obs,acs,rews,next_obs,dones}_<i>.npy, or its root with --task and --tier")
        folder = folder / OFFICIAL_ENV_IDS[task] / OFFICIAL_TIERS[tier] / f"seed_{0 if seed is None else seed}_data"
        if not (folder / "obs_0.npy").exists():
            raise DatasetError(f"{folder / 'obs_0.npy'}: missing (the official layout is <env_id>/<tier>/seed_<s>_data/obs_<i>.npy ...)")
    m = SEED_FOLDER.match(folder.name)
    if seed is not None and m and int(m[1]) != seed:
        raise DatasetError(f"{folder}: the folder holds seed {int(m[1])}, not {seed}")
    seed = seed if seed is not None else (int(m[1]) if m else None)
    tier = _agree("tier", tier, _inverse(OFFICIAL_TIERS, folder.parent.name), str(folder), "the folder")
    found = _inverse(OFFICIAL_ENV_IDS, folder.parent.parent.name)
    if task is not None and found is not None and task != found:
        raise DatasetError(f"{folder}: the folder holds {folder.parent.parent.name} data (task {found!r}), not task {task!r}")
    return folder, task or found, tier, seed


def _load_npy(file: Path) -> np.ndarray:
    if not file.is_file():
        raise DatasetError(f"{file}: missing (the official loader reads {file.name.rsplit('_', 1)[0]}_<i>.npy for every agent)")
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line naming it
        raise DatasetError(f"{file}: not a readable .npy file: {_reason(e)}") from None


def read_official(path: str | Path, task: str | None = None, tier: str | None = None, seed: int | None = None) -> Source:
    """The official files of one seed folder (module docstring); agents ``0, 1, ...`` while ``obs_<i>.npy`` exists."""
    folder, task, tier, seed = resolve_official(path, task, tier, seed)
    count = 0
    while (folder / f"obs_{count}.npy").exists():
        count += 1
    arrays: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    names: dict[str, list[str]] = {f: [] for f in FIELDS}
    for i in range(count):
        for f, prefix in OFFICIAL_FILES.items():
            file = folder / f"{prefix}_{i}.npy"
            arrays[f].append(_load_npy(file))
            names[f].append(str(file))
        if task in TASKS_WITH_STATES:
            rows = arrays["obs"][i].shape[0] if arrays["obs"][i].ndim else -1
            for prefix in STATE_FILES:
                file = folder / f"{prefix}_{i}.npy"
                states = _load_npy(file)
                if states.ndim != 2 or states.shape[0] != rows:
                    raise DatasetError(f"{file}: shape {states.shape}, expected [{rows}, state_dim] like obs_{i}.npy")
    info = {"format": "official", "path": str(folder), "seed": seed}
    return Source(arrays, names, str(folder), task=task, tier=tier, seed=seed, info=info)


# ---------------------------------------------------------------------------- vaults
VAULT_KEYS = ("observations", "actions", "rewards", "terminals")


def resolve_vault(path: str | Path, task: str | None, tier: str | None) -> tuple[Path, str | None, str | None]:
    """The vault folder ``<name>.vlt/<uid>`` and the task and tier its names say; ``path`` is
    that folder or the ``<name>.vlt`` folder above it (then the uid is the tier's)."""
    from omar_lightning.data.vault import is_vault

    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder (a vault is <name>.vlt/<uid>/ with metadata.json)")
    if not is_vault(folder):
        uids = sorted(p.name for p in folder.iterdir() if is_vault(p))
        if not uids:
            raise DatasetError(f"{folder}: not a flashbax Vault (no metadata.json here or in its sub-folders)")
        if tier is None or tier not in VAULT_UIDS:
            raise DatasetError(f"{folder}: holds the vaults {uids}; give --tier (uids {VAULT_UIDS}) or the uid folder")
        if VAULT_UIDS[tier] not in uids:
            raise DatasetError(f"{folder}: no vault uid {VAULT_UIDS[tier]!r} for tier {tier!r}; it holds {uids}")
        folder = folder / VAULT_UIDS[tier]
    tier = _agree("tier", tier, _inverse(VAULT_UIDS, folder.name), str(folder), "the vault uid")
    parent = folder.resolve().parent.name
    found = _inverse(VAULT_NAMES, parent[: -len(".vlt")]) if parent.endswith(".vlt") else None
    if task is not None and found is not None and task != found:
        raise DatasetError(f"{folder}: the vault {parent} holds task {found!r}, not {task!r}")
    return folder, task or found, tier


def read_vault_source(path: str | Path, task: str | None = None, tier: str | None = None, row: int = 0) -> Source:
    """Batch row ``row`` of a vault (module docstring): next observations from the next rows,
    ``done = 1`` and ``next_obs = obs`` where an episode ends."""
    from omar_lightning.data.vault import read_vault, vault_leaves

    folder, task, tier = resolve_vault(path, task, tier)
    where = str(folder)
    leaves = vault_leaves(folder)
    keys = list(VAULT_KEYS) + (["truncations"] if "truncations" in leaves else [])
    data = read_vault(folder, keys=keys, row=row)
    obs = data["observations"]
    if obs.ndim != 3 or obs.shape[0] == 0:
        raise DatasetError(f"{where}: leaf 'observations' has shape {obs.shape} in row {row}, expected [T, agents, obs_dim] with T >= 1")
    steps, count = obs.shape[:2]
    expect = {"actions": 3, "rewards": 2, "terminals": 2, "truncations": 2}
    for key in keys[1:]:
        x = data[key]
        if x.ndim != expect[key] or x.shape[:2] != (steps, count):
            dims = "[T, agents, act_dim]" if expect[key] == 3 else "[T, agents]"
            raise DatasetError(f"{where}: leaf {key!r} has shape {x.shape} in row {row}, expected {dims} with T={steps}, agents={count}")
    ends = np.zeros(steps, bool)
    for key in keys[3:]:
        ends |= (np.asarray(data[key]) != 0).any(axis=1)
    ends[-1] = True
    nxt = np.concatenate([obs[1:], obs[-1:]], axis=0)
    nxt[ends] = obs[ends]
    dones = ends.astype(np.float32)
    arrays = {"obs": [obs[:, i] for i in range(count)], "actions": [data["actions"][:, i] for i in range(count)],
              "rewards": [data["rewards"][:, i] for i in range(count)], "next_obs": [nxt[:, i] for i in range(count)],
              "dones": [dones for _ in range(count)]}
    leaf = {"obs": "observations", "actions": "actions", "rewards": "rewards", "next_obs": "observations", "dones": "terminals"}
    names = {f: [f"{where}: leaf {leaf[f]!r} (row {row}, agent {i})" for i in range(count)] for f in FIELDS}
    info = {"format": "vault", "path": where, "row": row, "episode_ends": int(ends.sum()),
            "note": "rows at an episode end have no stored next observation: done = 1, next_obs = obs"}
    return Source(arrays, names, where, task=task, tier=tier, info=info)


# ---------------------------------------------------------------------------- user arrays
ARRAY_KEY = re.compile(r"^(obs|actions|rewards|next_obs|dones)_(\d+)$")


def read_arrays(path: str | Path) -> Source:
    """A user's ``.npz`` of per-agent arrays ``<field>_<i>`` (module docstring)."""
    file = Path(path)
    if not file.is_file():
        raise DatasetError(f"{file}: no such file")
    try:
        with np.load(file, allow_pickle=False) as z:
            stored = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"{file}: not a readable .npz file: {_reason(e)}") from None
    bad = sorted(k for k in stored if not ARRAY_KEY.match(k))
    if bad:
        raise DatasetError(f"{file}: unexpected arrays {bad[:5]}; expected obs_<i>, actions_<i>, rewards_<i>, next_obs_<i>, dones_<i>")
    count = 0
    while f"obs_{count}" in stored:
        count += 1
    if count == 0:
        raise DatasetError(f"{file}: no 'obs_0'; expected obs_<i>, actions_<i>, rewards_<i>, next_obs_<i>, dones_<i> for i = 0, 1, ...")
    expected = {f"{f}_{i}" for f in FIELDS for i in range(count)}
    missing = sorted(expected - set(stored), key=lambda k: (int(k.rsplit("_", 1)[1]), k))
    if missing:
        raise DatasetError(f"{file}: missing {missing[:5]} (every agent 0..{count - 1} needs all five arrays)")
    extra = sorted(set(stored) - expected)
    if extra:
        raise DatasetError(f"{file}: arrays {extra[:5]} belong to no agent (agents 0..{count - 1} have obs_<i>)")
    arrays = {f: [stored[f"{f}_{i}"] for i in range(count)] for f in FIELDS}
    names = {f: [f"{file}: '{f}_{i}'" for i in range(count)] for f in FIELDS}
    return Source(arrays, names, str(file), info={"format": "arrays", "path": str(file)}, rewards_column_ok=True)


# ---------------------------------------------------------------------------- fitting to a task
def _floats(x: np.ndarray, name: str, boolean: bool = False) -> np.ndarray:
    """``x`` as float32: numbers (booleans too where ``boolean``), finite, within float32's range."""
    kinds = "fiub" if boolean else "fiu"
    if x.dtype.kind not in kinds:
        raise DatasetError(f"{name}: dtype {x.dtype}, expected {'numbers or booleans' if boolean else 'numbers'}")
    x = np.asarray(x)
    if x.dtype.kind == "f":
        ok = np.isfinite(x)
        if not ok.all():
            raise DatasetError(f"{name}: NaN or inf (first at row {int(np.flatnonzero(~ok.reshape(len(x), -1).all(1))[0])})")
        big = np.abs(x) > FLOAT32_MAX
        if big.any():
            raise DatasetError(f"{name}: values beyond the float32 range (first at row {int(np.flatnonzero(big.reshape(len(x), -1).any(1))[0])})")
    return np.ascontiguousarray(x, dtype=np.float32)


def _describe(spec: Any) -> str:
    return f"task {spec.task!r}" + (f" with env_kwargs {spec.kwargs}" if spec.kwargs else "")


_HINT = " (another task or variant? see --task and --env-kwarg)"


def expected_agents(source: Source, spec: Any) -> int:
    """How many agents the source must hold for ``spec``: the official environment's (learners,
    then fixed agents) for official files and vaults, the task's learners for a user's arrays."""
    if source.info.get("format") not in ("official", "vault"):
        return spec.num_agents
    if spec.task not in OFFICIAL_AGENTS:
        raise DatasetError(f"{source.where}: the official datasets have no task {spec.task!r} (tasks: {sorted(OFFICIAL_AGENTS)})")
    if spec.num_agents != OFFICIAL_LEARNERS[spec.task]:
        raise DatasetError(f"{source.where}: the official {spec.task} data have {OFFICIAL_LEARNERS[spec.task]} learning agents; "
                           f"{_describe(spec)} has {spec.num_agents}{_HINT}")
    return OFFICIAL_AGENTS[spec.task]


def fit_to_task(source: Source, spec: Any) -> dict[str, list[np.ndarray]]:
    """The learning agents' arrays (the source's first ``spec.num_agents``) as float32, checked
    against ``spec`` (:class:`omar_lightning.envs.TaskSpec`); DatasetError naming the file."""
    task, hint = _describe(spec), _HINT
    want = expected_agents(source, spec)
    if source.num_agents != want:
        fixed = f" ({spec.num_agents} learning, {want - spec.num_agents} fixed)" if want != spec.num_agents else ""
        raise DatasetError(f"{source.where}: holds {source.num_agents} agents; {task} needs {want}{fixed}{hint}")
    out: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    rows = None
    for i in range(spec.num_agents):
        for f in FIELDS:
            x, name = source.arrays[f][i], source.names[f][i]
            if f in ("obs", "next_obs", "actions"):
                dim = spec.act_dims[i] if f == "actions" else spec.obs_dims[i]
                if x.ndim != 2 or x.shape[1] != dim:
                    raise DatasetError(f"{name}: shape {x.shape}; {task} needs [N, {dim}] for agent {i}{hint}")
            elif not (x.ndim == 1 or (f == "rewards" and source.rewards_column_ok and x.ndim == 2 and x.shape[1] == 1)):
                raise DatasetError(f"{name}: shape {x.shape}, expected [N]" + (" or [N, 1]" if f == "rewards" and source.rewards_column_ok else ""))
            if rows is None:
                rows = x.shape[0]
                if rows == 0:
                    raise DatasetError(f"{name}: no rows")
            if x.shape[0] != rows:
                raise DatasetError(f"{name}: {x.shape[0]} rows, but {source.names['obs'][0]} has {rows}")
            y = _floats(x, name, boolean=f == "dones").reshape(rows, -1) if f in ("obs", "next_obs", "actions") else \
                _floats(x, name, boolean=f == "dones").reshape(rows)
            if f == "actions":
                outside = (np.abs(y) > 1.0 + 1e-5).any(1)
                if outside.any():
                    raise DatasetError(f"{name}: actions leave the box [-1, 1] (first at row {int(np.flatnonzero(outside)[0])})")
            if f == "dones":
                other = (y != 0) & (y != 1)
                if other.any():
                    raise DatasetError(f"{name}: dones must be 0 or 1 (first other value at row {int(np.flatnonzero(other)[0])})")
            out[f].append(y)
    return out


def import_references(task: str, env_kwargs: dict[str, Any], s_random: float | None = None, s_expert: float | None = None,
                      expert: str | Path | None = None, episodes: int = 200, workers: int = 1) -> tuple[float, float, str]:
    """``(S_random, S_expert, description)`` of an imported dataset: the given values, or measured
    in the task's environment (:func:`omar_lightning.data.collect.references.random_return` and
    :func:`~omar_lightning.data.collect.references.expert_return`: uniform random actions; the
    ``expert`` snapshot without noise, else the task's scripted expert), over ``episodes``
    reference episodes as for the collected tiers."""
    from omar_lightning.data.collect.references import EXPERT_POLICIES, REFERENCE_SEED, expert_return, random_return

    if s_expert is not None and expert is not None:
        raise ValueError("give S_expert (--s-expert) or an expert snapshot to measure it (--expert), not both")
    if s_expert is None and expert is None and task not in EXPERT_POLICIES:
        raise ValueError(f"task {task!r} has no scripted expert: give --s-expert VALUE or --expert SNAPSHOT")
    parts = []
    if s_random is None:
        s_random = random_return(task, episodes, REFERENCE_SEED, workers, **env_kwargs)
        parts.append(f"S_random: uniform random actions ({episodes} episodes)")
    else:
        parts.append("S_random: given")
    if s_expert is None:
        s_expert = expert_return(task, episodes, REFERENCE_SEED, workers, snapshot=None if expert is None else str(expert), **env_kwargs)
        who = "the scripted reference expert" if expert is None else f"{expert} without noise"
        parts.append(f"S_expert: {who} ({episodes} episodes)")
    else:
        parts.append("S_expert: given")
    return float(s_random), float(s_expert), "; ".join(parts)


_BEHAVIOUR = {
    "official": "imported from the official OMAR files in {path}",
    "vault": "imported from the flashbax Vault {path} (batch row {row})",
    "arrays": "imported from the arrays in {path}",
}


def build_dataset(source: Source, task: str | None = None, tier: str | None = None, env_kwargs: dict[str, Any] | None = None,
                  s_random: float | None = None, s_expert: float | None = None, expert: str | Path | None = None,
                  reference_episodes: int = 200, workers: int = 1) -> OfflineDataset:
    """The source as a dataset of ``task`` (default: the one the source's names say) and
    ``tier``, checked against the task's environment built with ``env_kwargs``; reference
    returns given or measured (:func:`import_references`). Write it with
    :func:`~omar_lightning.data.format.save_dataset`."""
    from omar_lightning.envs import task_spec

    env_kwargs = dict(env_kwargs or {})
    task = _agree("task", task, source.task, source.where, "the source")
    tier = _agree("tier", tier, source.tier, source.where, "the source")
    if task is None:
        raise ValueError(f"{source.where}: give --task (the source's names do not say it)")
    if tier is None:
        raise ValueError(f"{source.where}: give --tier (the source's names do not say it)")
    spec = task_spec(task, **env_kwargs)
    data = fit_to_task(source, spec)
    left_out = source.num_agents - spec.num_agents
    s_random, s_expert, reference = import_references(task, env_kwargs, s_random, s_expert, expert, reference_episodes, workers)
    agent = 0 if spec.return_mode == "first" else None
    returns = whole_episode_returns(data["obs"], data["next_obs"], data["dones"], data["rewards"], spec.episode_length, agent)
    info = dict(source.info)
    if left_out:
        info["agents_left_out"] = left_out
    meta = {
        "task": task, "tier": tier, "agent_names": list(spec.agent_names), "s_random": s_random, "s_expert": s_expert,
        "reference": reference, "behaviour": _BEHAVIOUR[info["format"]].format(**info), "env_kwargs": env_kwargs,
        "seed": source.seed, "episode_returns": return_stats(returns), "source": info,
    }
    return OfflineDataset(**data, meta=meta)


def read_source(fmt: str, path: str | Path, task: str | None = None, tier: str | None = None, seed: int | None = None,
                row: int = 0) -> Source:
    """The source of format ``fmt`` (one of :data:`FORMATS`) at ``path``."""
    if fmt == "official":
        return read_official(path, task, tier, seed)
    if fmt == "vault":
        return read_vault_source(path, task, tier, row)
    if fmt == "arrays":
        return read_arrays(path)
    raise ValueError(f"unknown import format {fmt!r}; one of {FORMATS}")
