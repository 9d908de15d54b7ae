"""What a fit says at its start and at its end, and its learning-curve figure."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from tqdm import tqdm

from omar_lightning.data.format import normalized_score

CURVE_FILE = "learning_curve.png"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    return f"{minutes} min {s} s" if minutes else f"{s} s"


def _shown(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def behaviour_level(meta: dict[str, Any]) -> tuple[float | None, float | None]:
    """(return, normalized score) of the dataset's own behaviour episodes, or (None, None) when
    the file holds no whole episode."""
    mean = (meta.get("episode_returns") or {}).get("mean")
    if mean is None:
        return None, None
    return float(mean), float(normalized_score(float(mean), float(meta["s_random"]), float(meta["s_expert"])))


class RunReport(Callback):
    """Two lines when a fit starts, a summary when it ends, and the learning curve as a PNG.

    At the start (on stderr): the algorithm, task, tier, dataset file with its size and its
    behaviour level (the normalized score of the dataset's own episodes), the updates to run,
    trained parameters, device, and where logs and checkpoints go. At the end (on stdout): the
    final and best normalized score and return of the evaluations against that behaviour level,
    and the paths of the last checkpoint, the log folders and ``learning_curve.png`` (written
    into the first logger's folder, else ``trainer.default_root_dir``). The curve is kept in the
    checkpoints, so a resumed run draws it whole. The ``omar`` command adds this callback to
    every fit unless the trainer's callbacks list one.

    Args:
        plot: write the learning-curve PNG.
    """

    def __init__(self, plot: bool = True) -> None:
        self.plot = plot
        self.curve: dict[str, list[float]] = {"updates": [], "return": [], "normalized_score": []}
        self._start: tuple[float, int] | None = None

    # ------------------------------------------------------------------ the curve
    def on_evaluation(self, trainer: Trainer, pl_module: LightningModule, prefix: str, values: dict[str, float]) -> None:
        """Called by :func:`omar_lightning.evaluation.evaluate_and_log` after every evaluation."""
        if prefix != "eval" or trainer.state.fn != "fit":
            return
        updates = int(pl_module.updates)
        while self.curve["updates"] and self.curve["updates"][-1] >= updates:  # an update evaluated again
            for column in self.curve.values():
                column.pop()
        self.curve["updates"].append(updates)
        self.curve["return"].append(float(values["return"]))
        self.curve["normalized_score"].append(float(values["normalized_score"]))

    def state_dict(self) -> dict[str, Any]:
        return {"curve": {k: list(v) for k, v in self.curve.items()}}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.curve = {k: list(state_dict["curve"].get(k, [])) for k in self.curve}

    # ------------------------------------------------------------------ start and end
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start = (time.perf_counter(), int(getattr(pl_module, "updates", 0)))
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        lines = []
        if dm is not None and getattr(dm, "dataset", None) is not None:
            meta = dm.meta
            _, level = behaviour_level(meta)
            behaviour = f"the dataset's behaviour: normalized score {level:.1f}" if level is not None else "no whole episode in it"
            variant = f" {meta.get('env_kwargs')}" if meta.get("env_kwargs") else ""
            lines.append(f"{type(pl_module).__name__} on {dm.task}{variant}, {meta.get('tier')} tier: {dm.path} "
                         f"({dm.dataset.num_transitions:,} transitions; {behaviour})")
        params = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        max_updates = int(pl_module.hparams.get("max_updates", 0))
        start = f" from update {self._start[1]:,}" if self._start[1] else ""
        seed = os.environ.get("PL_GLOBAL_SEED")  # set by seed_everything
        start += f", seed {seed}" if seed is not None else ""
        lines.append(f"{max_updates:,} updates{start}, {params / 1000:.1f} K trained parameters, {trainer.strategy.root_device.type}"
                     f" x {trainer.world_size}; logs {self._log_dirs(trainer) or 'none'}; checkpoints {self._checkpoint_dirs(trainer) or 'none'}")
        for line in lines:
            tqdm.write(f"omar fit: {line}", file=sys.stderr)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        started, first = self._start or (time.perf_counter(), 0)
        done = int(getattr(pl_module, "updates", 0))
        lines = [f"omar fit: finished at update {done:,} ({done - first:,} updates in {_duration(time.perf_counter() - started)})"]
        dm = trainer.datamodule
        meta = dm.meta if dm is not None and getattr(dm, "dataset", None) is not None else None
        ret_level, level = behaviour_level(meta) if meta else (None, None)
        scores, returns, updates = self.curve["normalized_score"], self.curve["return"], self.curve["updates"]
        if scores:
            best = max(range(len(scores)), key=scores.__getitem__)
            against = f"; dataset's behaviour {level:.1f}" if level is not None else ""
            lines.append(f"  normalized score  final {scores[-1]:.1f}, best {scores[best]:.1f} (update {updates[best]:,}){against}")
            against = f"; behaviour {ret_level:.2f}" if ret_level is not None else ""
            refs = f" (S_random {float(meta['s_random']):.2f}, S_expert {float(meta['s_expert']):.2f})" if meta else ""
            lines.append(f"  return            final {returns[-1]:.2f}, best {returns[best]:.2f}{against}{refs}")
        for path in self._last_checkpoints(trainer):
            lines.append(f"  checkpoint        {path}")
        logs = self._log_dirs(trainer)
        if logs:
            tensorboard = [_shown(lg.root_dir) for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
            hint = f" (TensorBoard: tensorboard --logdir {tensorboard[0]})" if tensorboard else ""
            lines.append(f"  logs              {logs}{hint}")
        if self.plot and len(scores) > 0:
            where = Path(trainer.loggers[0].log_dir) if trainer.loggers and trainer.loggers[0].log_dir else Path(trainer.default_root_dir)
            from omar_lightning.plots import learning_curve

            title = type(pl_module).__name__
            if meta:
                title += f" on {dm.task}, {meta.get('tier')} tier ({dm.dataset.num_transitions:,} transitions)"
            path = learning_curve(where / CURVE_FILE, updates, scores, level, title)
            lines.append(f"  learning curve    {_shown(path)}")
        print("\n".join(lines), flush=True)

    # ------------------------------------------------------------------ where things are
    @staticmethod
    def _log_dirs(trainer: Trainer) -> str:
        dirs = []
        for logger in trainer.loggers:
            d = getattr(logger, "log_dir", None)
            if d and _shown(d) not in dirs:
                dirs.append(_shown(d))
        return ", ".join(dirs)

    @staticmethod
    def _checkpoint_dirs(trainer: Trainer) -> str:
        return ", ".join(dict.fromkeys(_shown(cb.dirpath) for cb in trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)))

    @staticmethod
    def _last_checkpoints(trainer: Trainer) -> list[str]:
        out = []
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint):
                path = cb.last_model_path or cb.best_model_path
                if path and Path(path).is_file() and _shown(path) not in out:
                    out.append(_shown(path))
        return out
