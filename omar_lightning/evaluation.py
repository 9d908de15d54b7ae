"""Rolling out the deterministic policies of a module and reducing their returns over ranks."""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np
import torch
from torchmetrics import MeanMetric
from tqdm import tqdm

from omar_lightning.data.format import normalized_score
from omar_lightning.envs import make_env
from omar_lightning.envs.rollout import RolloutResult, run_episodes, task_returns
from omar_lightning.errors import DivergenceError


def episode_share(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """Contiguous (first, count) of ``total`` episodes for ``rank`` of ``world_size``."""
    base, extra = divmod(total, world_size)
    return rank * base + min(rank, extra), base + int(rank < extra)


@torch.no_grad()
def policy_rollouts(actor: torch.nn.Module, make: Callable[[], Any], num_episodes: int, seed: int, num_envs: int = 10) -> RolloutResult:
    """``num_episodes`` episodes (seeds ``seed + k``) of the deterministic ``actor`` in eval mode,
    in environments built by ``make``."""
    device = next(actor.parameters()).device
    was_training = actor.training
    actor.eval()

    def policy(obs: np.ndarray) -> np.ndarray:
        return actor(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()

    try:
        return run_episodes(make, policy, num_episodes, seed, num_envs=max(1, min(num_envs, num_episodes)))
    finally:
        actor.train(was_training)


def policy_returns(actor: torch.nn.Module, task: str, env_kwargs: dict[str, Any], num_episodes: int, seed: int, num_envs: int = 10) -> np.ndarray:
    """Task returns of ``num_episodes`` episodes (seeds ``seed + k``) of ``actor`` in eval mode."""
    return task_returns(policy_rollouts(actor, lambda: make_env(task, **env_kwargs), num_episodes, seed, num_envs))


class _FrameRecorder:
    """An environment that keeps ``render()``'s frame after every reset and step, per episode."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.episodes: list[list[np.ndarray]] = []
        if callable(getattr(env, "step_forces", None)):
            self.step_forces = self._step_forces

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, *args: Any, **kwargs: Any):
        out = self.env.reset(*args, **kwargs)
        self.episodes.append([self.env.render()])
        return out

    def _step_forces(self, forces: np.ndarray):
        out = self.env.step_forces(forces)
        self.episodes[-1].append(self.env.render())
        return out

    def step(self, actions: dict[str, np.ndarray]):
        out = self.env.step(actions)
        self.episodes[-1].append(self.env.render())
        return out

    def close(self) -> None:
        self.env.close()


def render_episodes(actor: torch.nn.Module, task: str, env_kwargs: dict[str, Any], num_episodes: int, seed: int) -> tuple[list[list[np.ndarray]], RolloutResult]:
    """Play episodes ``seed .. seed + num_episodes - 1`` as :func:`policy_returns` does and keep
    their RGB frames: the initial state and the state after every step (``episode_length + 1``
    frames ``[H, W, 3] uint8`` per episode), with the rollout result."""
    recorders: list[_FrameRecorder] = []

    def make() -> _FrameRecorder:
        recorders.append(_FrameRecorder(make_env(task, render_mode="rgb_array", **env_kwargs)))
        return recorders[-1]

    result = policy_rollouts(actor, make, num_episodes, seed, num_envs=1)
    return recorders[0].episodes, result


def evaluate_and_log(pl_module: Any, prefix: str, verbose: bool = True) -> dict[str, float]:
    """Evaluate this rank's share of the data module's episodes; log (and print) means over all ranks."""
    trainer = pl_module.trainer
    dm = trainer.datamodule
    world, rank = trainer.world_size, trainer.global_rank
    if dm.eval_episodes < world:
        raise ValueError(f"data.eval_episodes ({dm.eval_episodes}) must be at least the number of processes ({world})")
    first, count = episode_share(dm.eval_episodes, rank, world)
    returns = torch.as_tensor(policy_returns(pl_module.actor, dm.task, dm.env_kwargs, count, dm.eval_seed + first), dtype=torch.float32)
    if not torch.isfinite(returns).all():
        raise DivergenceError(f"update {pl_module.updates}: evaluation returns are not finite (the actor's actions are not finite)")
    meta = dm.meta
    values = {"return": returns, "normalized_score": normalized_score(returns, meta["s_random"], meta["s_expert"])}
    out = {}
    for name, x in values.items():
        metric = MeanMetric().to(pl_module.device)
        metric.update(x.to(pl_module.device))
        out[name] = float(metric.compute())
        # Progress bar and callback_metrics; the loggers get one row per evaluation below. The value
        # is already the mean over all processes' episodes, the same on every process: "max" over
        # processes (and over the one validation batch) passes it on unchanged.
        pl_module.log(f"{prefix}/{name}", out[name], prog_bar=True, logger=False, reduce_fx="max", sync_dist=True)
    if trainer.is_global_zero:
        row = {f"{prefix}/{name}": value for name, value in out.items()}
        row["updates"] = pl_module.updates
        for logger in trainer.loggers:
            logger.log_metrics(row, step=pl_module.updates)  # logs are indexed by update, as the training rows
        if verbose:
            # above the progress bar, which stays whole
            tqdm.write(f"[{prefix}] update {pl_module.updates:>6}: return {out['return']:.2f}, normalized score {out['normalized_score']:.1f}",
                       file=sys.stderr)
    for callback in trainer.callbacks:  # e.g. RunReport keeps the curve
        hook = getattr(callback, "on_evaluation", None)
        if callable(hook):
            hook(trainer, pl_module, prefix, dict(out))
    return out
