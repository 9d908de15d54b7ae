"""Checkpoints counted in updates of all agents, and always after the last update."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor


class UpdateCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that saves every ``every_n_updates`` updates and after the last one.

    Under manual optimization the trainer's ``global_step`` counts optimizer steps (two per
    update: critics and actors), so periods are given in ``pl_module.updates`` instead. All other
    arguments are ``ModelCheckpoint``'s (``dirpath``, ``filename``, ``save_last``, ``save_top_k``...).
    Files are named by the updates they hold (``updates=200.ckpt``); ``{updates}`` is available to
    a custom ``filename`` as an integer. ``save_top_k: -1`` keeps every periodic checkpoint (any
    of them resumes the run exactly); the default keeps the newest one and ``last.ckpt``.
    """

    def __init__(self, every_n_updates: int = 100, **kwargs: Any) -> None:
        if every_n_updates < 1:
            raise ValueError(f"UpdateCheckpoint.every_n_updates must be >= 1, got {every_n_updates}")
        kwargs.setdefault("save_last", True)
        if kwargs.get("filename") is None:
            kwargs["filename"] = "{updates}"
        super().__init__(every_n_epochs=0, **kwargs)
        self.every_n_updates = every_n_updates

    def _monitor_candidates(self, trainer: Trainer) -> dict[str, Tensor]:
        candidates = super()._monitor_candidates(trainer)
        candidates["updates"] = torch.tensor(int(trainer.lightning_module.updates))
        return candidates

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        updates = pl_module.updates
        if updates % self.every_n_updates and updates < pl_module.hparams.max_updates:
            return
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)
