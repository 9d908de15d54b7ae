"""Behaviour training in a run folder: what ``omar collect train`` does.

:func:`train_behaviour` starts a :class:`~omar_lightning.data.collect.matd3.MATD3Trainer` in
``DIR`` or resumes it from ``DIR/state.pt`` (``steps`` is the total to reach and may exceed the
first run's: the replay buffer grows), snapshots the policy at every evaluation and picks the
levels (:class:`~omar_lightning.data.collect.snapshots.SnapshotIndex`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from omar_lightning.data.collect.matd3 import TASK_DEFAULTS, MATD3Config, MATD3Trainer
from omar_lightning.data.collect.references import random_return
from omar_lightning.data.collect.snapshots import SnapshotIndex
from omar_lightning.envs import task_spec

__all__ = ["config_overrides", "train_behaviour"]


def config_overrides(items: list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` items (``--set``) as :class:`MATD3Config` fields, typed like the field's
    default; ``buffer_size`` is not one (the run sizes its buffer to its steps)."""
    import yaml

    fields = {f.name: type(f.default) for f in dataclasses.fields(MATD3Config)}
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or key not in fields or key == "buffer_size":
            known = ", ".join(sorted(k for k in fields if k != "buffer_size"))
            raise ValueError(f"--set {item!r}: takes FIELD=VALUE with FIELD one of {known}")
        value = yaml.safe_load(text)
        kind = fields[key]
        if kind is float and not isinstance(value, bool):
            try:  # YAML reads 1e-3 as a string
                value = float(text)
            except ValueError:
                pass
        if type(value) is not kind:
            raise ValueError(f"--set {item!r}: {key} takes a {kind.__name__}, got {text!r}")
        out[key] = value
    return out


def _resume(state: Path, task: str, seed: int, env_kwargs: dict[str, Any], settings: dict[str, Any], steps: int,
            eval_every: int | None) -> MATD3Trainer:
    trainer = MATD3Trainer.load(state)
    if trainer.task != task or trainer.env_kwargs != env_kwargs or trainer.seed != seed:
        raise ValueError(
            f"{state}: holds a run of task {trainer.task!r} (env_kwargs {trainer.env_kwargs}, seed {trainer.seed}), "
            f"not {task!r} ({env_kwargs}, seed {seed}); use another --out"
        )
    for key, value in settings.items():
        if getattr(trainer.cfg, key) != value:
            raise ValueError(f"{key}={value}: {state} was trained with {key}={getattr(trainer.cfg, key)}; use another --out")
    trainer.reserve(trainer.rows_needed(steps))  # continued past its first --steps
    if eval_every and eval_every != trainer.cfg.eval_every:
        # Evaluations use their own environments and seeds and no noise, so their cadence
        # changes which snapshots are kept, never the training itself.
        print(f"Evaluating every {eval_every:,} steps from now on (was {trainer.cfg.eval_every:,})")
        trainer.cfg.eval_every = eval_every
    print(f"Resuming {state} at step {trainer.steps:,}")
    return trainer


def _start(task: str, seed: int, env_kwargs: dict[str, Any], settings: dict[str, Any], steps: int, eval_every: int | None) -> MATD3Trainer:
    cfg = dict(TASK_DEFAULTS.get(task, {}))
    if eval_every:
        cfg["eval_every"] = eval_every
    cfg.update(settings)
    rounds = MATD3Config(**cfg).num_envs * task_spec(task, **env_kwargs).episode_length
    cfg["buffer_size"] = max(-(-steps // rounds) * rounds, cfg.get("batch_size", 1024))  # the buffer holds the whole run
    return MATD3Trainer(task, seed, env_kwargs, MATD3Config(**cfg))


def train_behaviour(out: Path, task: str, steps: int, seed: int = 0, env_kwargs: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None, levels: dict[str, float] | None = None, eval_every: int | None = None,
                    save_every: int = 50_000, progress: bool = True) -> SnapshotIndex:
    """Train MATD3 behaviour policies of ``task`` in ``out`` up to ``steps`` environment steps.

    A new run takes the task's :data:`~omar_lightning.data.collect.matd3.TASK_DEFAULTS` with
    ``settings`` (:class:`MATD3Config` fields) over them and a buffer for all its steps; a run
    found in ``out/state.pt`` continues with its own settings (``settings`` must agree with them)
    and takes a new ``eval_every``. Every evaluation writes ``out/snapshots/step_<steps>.pt`` and
    ``out/snapshots.json`` (with the time trained so far); at the end ``expert.pt``, ``medium.pt``
    and the first snapshot reaching each of ``levels`` (``NAME: RETURN``, kept over resumes) are
    copied to ``out/<level>.pt``. The training state is saved every ``save_every`` steps and at the
    end. Returns the run's snapshot index.
    """
    env_kwargs, settings = dict(env_kwargs or {}), dict(settings or {})
    state = out / "state.pt"
    if state.exists():
        trainer = _resume(state, task, seed, env_kwargs, settings, steps, eval_every)
    else:
        trainer = _start(task, seed, env_kwargs, settings, steps, eval_every)
    index = SnapshotIndex(out, task, env_kwargs, seed)
    index.want(dict(levels or {}))
    start, spent = time.perf_counter(), float(index.data.get("train_seconds", 0.0))

    def on_eval(t: MATD3Trainer, mean_return: float) -> None:
        index.add(t, mean_return)
        index.data["train_seconds"] = round(spent + time.perf_counter() - start, 1)  # kept by a run stopped later
        index.save()

    trainer.train(steps, on_eval=on_eval, save_path=state, save_every=save_every, progress=progress)
    cfg = trainer.cfg
    index.pick_final_levels(lambda: random_return(index.data["task"], cfg.eval_episodes, cfg.eval_seed, **index.data["env_kwargs"]))
    index.data["train_seconds"] = round(spent + time.perf_counter() - start, 1)
    index.save()
    return index
