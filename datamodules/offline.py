"""Offline transitions streamed as per-agent minibatches."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from pytorch_lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from omar_lightning.data import MINIBATCHES, TIERS, DatasetError, OfflineDataset, dataset_path, load_dataset
from omar_lightning.envs import TASKS, task_spec


def stack_padded(arrays: list[np.ndarray]) -> Tensor:
    """Per-agent arrays [N, d_i] (or [N]) -> one float32 tensor [A, N, max d_i] (or [A, N]), zero-padded."""
    if arrays[0].ndim == 1:
        return torch.from_numpy(np.stack(arrays).astype(np.float32, copy=False))
    n, width = arrays[0].shape[0], max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), n, width), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, :, : a.shape[1]] = a
    return torch.from_numpy(out)


def in_sample_next(store: dict[str, Tensor]) -> dict[str, Tensor]:
    """``next_actions`` [A, N, D] and ``has_next`` [A, N] from consecutive rows of an episode-ordered store."""
    obs, nxt, act = store["obs"], store["next_obs"], store["actions"]
    cont = (nxt[:, :-1] == obs[:, 1:]).all(-1).all(0)  # [N - 1]: row t + 1 continues row t's episode
    has_next = torch.cat([cont, cont.new_zeros(1)]).float().expand(obs.shape[0], -1).contiguous()
    next_actions = torch.cat([act[:, 1:], torch.zeros_like(act[:, :1])], 1) * has_next.unsqueeze(-1)
    return {"next_actions": next_actions, "has_next": has_next}


def sample_without_replacement(n: int, rows: int, k: int, generator: torch.Generator) -> Tensor:
    """``rows`` independent uniform samples of ``k`` distinct indices in ``[0, n)``: [rows, k].

    Each row is the first ``k`` distinct values of its own stream of uniform draws, which is a
    uniform ordered sample without replacement (every new distinct value is uniform over the
    values not yet seen). The first ``k`` draws of every row come in one call and one sort of
    their values finds repeats (a row of 1,024 draws of 1M repeats a value with probability
    about 1 - exp(-k^2 / 2n) = 0.4); a row with repeats drops their later occurrences and
    continues its stream with new draws until it holds ``k`` distinct values. A draw costs
    O(k log k), not the O(n) of permuting the whole buffer; when ``k`` is more than half of
    ``n`` a permutation is cheaper and is used instead. Deterministic for a generator state.
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot draw {k} distinct indices from {n}")
    if 2 * k > n:
        return torch.stack([torch.randperm(n, generator=generator)[:k] for _ in range(rows)])
    out = torch.randint(n, (rows, k), generator=generator)
    draws = out.numpy()
    ordered = np.sort(draws, axis=1)  # numpy's sort of values: several times faster than torch's for these sizes
    for r in np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(1)):
        values = draws[r]
        while True:
            sorted_values = np.sort(values)
            repeated = np.unique(sorted_values[1:][sorted_values[1:] == sorted_values[:-1]])
            if repeated.size == 0 and values.size == k:
                break
            hits = values[:, None] == repeated[None, :]  # [draws, repeated values]
            values = values[~(hits & (hits.cumsum(0) > 1)).any(1)]  # keep each value's first occurrence
            values = np.concatenate([values, torch.randint(n, (k - values.size,), generator=generator).numpy()])
        out[r] = torch.from_numpy(values)
    return out


class MinibatchStream(IterableDataset):
    """Endless stream of minibatches ``{field: [A, B, ...]}``, every agent drawing its own indices.

    Each agent's batch holds ``B`` distinct transitions (drawn without replacement, as the
    official replay buffer). With ``joint``, all agents share the indices (centralized critics
    need joint transitions). Batch ``u`` is a pure function of ``(seed, rank, u)``, so the stream
    is identical however far ahead a loader prefetches, resumes exactly from ``start``, and
    differs between DDP ranks. With ``reuse_period`` P, batch ``u`` is batch ``u mod P``: the P
    batches of the first period repeat in every period, per agent (the official MPE loop).
    """

    def __init__(self, store: dict[str, Tensor], batch_size: int, seed: int, rank: int = 0, start: int = 0, joint: bool = False,
                 reuse_period: int | None = None):
        self.store, self.batch_size, self.seed, self.rank, self.start, self.joint = store, batch_size, seed, rank, start, joint
        self.reuse_period = reuse_period
        self.num_agents, self.size = store["obs"].shape[:2]
        self._offsets = torch.arange(self.num_agents)[:, None] * self.size

    def indices(self, update: int, generator: torch.Generator | None = None) -> Tensor:
        """Row indices of batch ``update`` per agent, [A, B] (all rows equal with ``joint``)."""
        if self.reuse_period is not None:
            update %= self.reuse_period
        g = generator or torch.Generator()
        g.manual_seed(int(np.random.SeedSequence([self.seed, self.rank, update]).generate_state(1)[0]))
        rows = 1 if self.joint else self.num_agents  # joint: every agent gets the same transitions
        return sample_without_replacement(self.size, rows, self.batch_size, g).expand(self.num_agents, -1)

    def batch(self, update: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        idx = self.indices(update, generator)
        flat = (idx + self._offsets).view(-1)  # row of agent i's transition in the [A * N, ...] view
        a, b = self.num_agents, self.batch_size
        return {k: v.view(a * self.size, -1).index_select(0, flat).view(a, b, *v.shape[2:]) for k, v in self.store.items()}

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        g = torch.Generator()
        update = self.start
        while True:
            yield self.batch(update, g)
            update += 1


class OfflineDataModule(LightningDataModule):
    """Reads one offline dataset file and streams per-agent minibatches.

    Args:
        task: environment task name (see ``omar_lightning.envs.TASKS``).
        tier: dataset tier: random, medium_replay, medium or expert.
        path: dataset file; defaults to ``data/<task>/<tier>.npz`` (``data/<task>_<variant>/...``
            when ``env_kwargs`` names a variant: :func:`omar_lightning.data.default_path`).
        batch_size: transitions per agent per update.
        seed: seed of the minibatch stream (and of generation).
        generate: generate a missing dataset in ``prepare_data``: the random tier from uniform
            random actions, the medium and expert tiers from the behaviour snapshots shipped in
            ``omar_lightning/policies/`` for the task (medium-replay, and tasks without shipped
            snapshots, need ``omar collect``).
        num_transitions: size of a generated dataset.
        workers: processes sharing the generation of a missing dataset, one core each (the file is
            the same for any number).
        env_kwargs: keyword arguments of the task's environment; must match the dataset's.
        eval_episodes: evaluation episodes (split over DDP ranks).
        eval_seed: seed of the first evaluation episode; episode k uses eval_seed + k.
        reference_episodes: episodes used to measure S_random and S_expert when generating.
        joint_sampling: draw one set of transitions for all agents (for centralized critics)
            instead of independent indices per agent (the official decentralized runs).
        in_sample_next: also stream ``next_actions`` (the dataset's action at the next row when
            that row continues the episode, i.e. its obs equals this row's next_obs for every
            agent) and ``has_next`` (1 there, 0 at episode ends), for in-sample methods (MAICQ).
        minibatches: ``fresh`` (default): new minibatches at every update, each agent's
            ``batch_size`` transitions distinct. ``official_reuse``: the official MPE loop's reuse,
            the ``reuse_period`` minibatches of the first period repeated in every period, per
            agent. (The official loop rebuilds the evaluation environment every evaluation,
            which calls ``np.random.seed(seed + 100)``; its replay buffer draws from that global
            RNG, so the batches of updates 0-9, 10-19, ... are the same: an official MPE run
            trains on about 10,200 distinct transitions per agent of the 1M. HalfCheetah was
            not affected.)
        reuse_period: the period of ``official_reuse`` in updates: the evaluation period of the
            official loop, 10 on MPE (``EnvEvaluation.every_n_updates`` of the MPE configs).
            Ignored with ``fresh``.
    """

    def __init__(
        self,
        task: str = "cooperative_navigation",
        tier: str = "random",
        path: str | None = None,
        batch_size: int = 1024,
        seed: int = 0,
        generate: bool = True,
        num_transitions: int = 1_000_000,
        workers: int = 1,
        env_kwargs: dict[str, Any] | None = None,
        eval_episodes: int = 10,
        eval_seed: int = 1_000_000,
        reference_episodes: int = 200,
        joint_sampling: bool = False,
        in_sample_next: bool = False,
        minibatches: str = "fresh",
        reuse_period: int = 10,
    ) -> None:
        super().__init__()
        if tier not in TIERS:
            raise ValueError(f"data.tier must be one of {list(TIERS)}, got {tier!r}")
        for name, value in (
            ("batch_size", batch_size),
            ("num_transitions", num_transitions),
            ("eval_episodes", eval_episodes),
            ("reference_episodes", reference_episodes),
            ("reuse_period", reuse_period),
            ("workers", workers),
        ):
            if value < 1:
                raise ValueError(f"data.{name} must be >= 1, got {value}")
        for name, value in (("seed", seed), ("eval_seed", eval_seed)):
            if value < 0:
                raise ValueError(f"data.{name} must be >= 0, got {value}")
        if minibatches not in MINIBATCHES:
            raise ValueError(f"data.minibatches must be one of {list(MINIBATCHES)}, got {minibatches!r}")
        if task not in TASKS:
            raise ValueError(f"data.task: unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}")
        self.save_hyperparameters()
        self.task, self.tier, self.batch_size, self.seed = task, tier, batch_size, seed
        self.path = dataset_path(path, task, tier, env_kwargs)
        self.generate, self.num_transitions, self.workers = generate, num_transitions, workers
        self.env_kwargs = dict(env_kwargs or {})
        self.eval_episodes, self.eval_seed, self.reference_episodes = eval_episodes, eval_seed, reference_episodes
        self.joint_sampling, self.in_sample_next = joint_sampling, in_sample_next
        self.minibatches, self.reuse_period = minibatches, reuse_period
        try:
            self.spec = task_spec(task, **self.env_kwargs)
        except (ValueError, TypeError) as e:
            raise ValueError(f"data.env_kwargs: {e}") from None
        self.dataset: OfflineDataset | None = None
        self.store: dict[str, Tensor] | None = None
        self._start = 0

    @property
    def obs_dims(self) -> list[int]:
        return list(self.spec.obs_dims)

    @property
    def act_dims(self) -> list[int]:
        return list(self.spec.act_dims)

    @property
    def meta(self) -> dict[str, Any]:
        if self.dataset is None:
            self.setup("fit")
        return self.dataset.meta

    def prepare_data(self) -> None:
        if self.path.exists():
            return
        if not self.generate:
            raise DatasetError(f"dataset file not found: {self.path} (data.path); set data.generate: true or run 'omar collect'")
        from omar_lightning.data.collect.tiers import write_random_dataset, write_snapshot_dataset

        try:
            if self.tier == "random":
                write_random_dataset(self.path, self.task, self.num_transitions, self.seed, self.reference_episodes, self.workers, **self.env_kwargs)
            else:  # from the shipped behaviour snapshots (medium, expert)
                write_snapshot_dataset(self.path, self.task, self.tier, self.num_transitions, self.seed, self.reference_episodes, self.workers,
                                       **self.env_kwargs)
        except OSError as e:
            raise DatasetError(f"cannot write the generated dataset to {self.path} (data.path): {e.strerror or e}") from None

    def setup(self, stage: str) -> None:
        if self.dataset is not None:
            return
        ds = load_dataset(self.path)
        meta = ds.meta
        if meta["task"] != self.task:
            raise DatasetError(f"{self.path}: dataset is for task {meta['task']!r} but data.task is {self.task!r}")
        if ds.agent_names != self.spec.agent_names:
            raise DatasetError(
                f"{self.path}: agents {ds.agent_names} differ from the task's {self.spec.agent_names} "
                f"(data.task {self.task!r}, data.env_kwargs {self.env_kwargs})"
            )
        dims = ([o.shape[1] for o in ds.obs], [a.shape[1] for a in ds.actions])
        if dims != (self.obs_dims, self.act_dims):
            raise DatasetError(
                f"{self.path}: observation/action sizes {dims} differ from the task's {(self.obs_dims, self.act_dims)}"
            )
        if dict(meta.get("env_kwargs") or {}) != self.env_kwargs:
            raise DatasetError(f"{self.path}: dataset env_kwargs {meta.get('env_kwargs')} differ from data.env_kwargs {self.env_kwargs}")
        if self.batch_size > ds.num_transitions:
            raise DatasetError(
                f"data.batch_size ({self.batch_size:,}) is larger than the dataset {self.path} ({ds.num_transitions:,} transitions): "
                "each agent's minibatch is drawn without replacement; give a smaller data.batch_size or a larger dataset"
            )
        self.dataset = ds
        self.store = {
            "obs": stack_padded(ds.obs),
            "actions": stack_padded(ds.actions),
            "rewards": stack_padded(ds.rewards),
            "next_obs": stack_padded(ds.next_obs),
            "dones": stack_padded(ds.dones),
        }
        if self.in_sample_next:
            self.store.update(in_sample_next(self.store))

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer is not None else 0
        period = self.reuse_period if self.minibatches == "official_reuse" else None
        stream = MinibatchStream(self.store, self.batch_size, self.seed, rank, self._start, joint=self.joint_sampling, reuse_period=period)
        # A private generator: creating the iterator must not draw from the global RNG (exact resume).
        return DataLoader(stream, batch_size=None, num_workers=0, generator=torch.Generator())

    def _episode_loader(self) -> DataLoader:
        # One item per rank; each rank evaluates its own contiguous share of the episodes.
        return DataLoader([0], batch_size=None, generator=torch.Generator())

    val_dataloader = test_dataloader = _episode_loader

    def state_dict(self) -> dict[str, Any]:
        module = self.trainer.lightning_module if self.trainer is not None else None
        state: dict[str, Any] = {"updates": int(module.updates) if module is not None else self._start}
        if self.dataset is not None:
            state["evaluation"] = self.evaluation_record()
        return state

    def evaluation_record(self) -> dict[str, Any]:
        """What evaluating a checkpoint needs without the dataset file (``omar evaluate``)."""
        meta = self.meta
        return {
            "task": self.task,
            "env_kwargs": dict(self.env_kwargs),
            "eval_episodes": self.eval_episodes,
            "eval_seed": self.eval_seed,
            "s_random": float(meta["s_random"]),
            "s_expert": float(meta["s_expert"]),
            "dataset": str(self.path),
            "tier": self.tier,
            "checksum": meta.get("checksum"),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._start = int(state_dict.get("updates", 0))
