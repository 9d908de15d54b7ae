"""Soft target-network updates: theta' <- rho * theta + (1 - rho) * theta'."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from omar_lightning.nets import soft_update_


class SoftTargetUpdate(Callback):
    """After every update, lerp all target parameters towards their online twins in one fused call.

    Args:
        rho: soft-update rate in (0, 1]; 1 copies the online networks.
    Needs ``pl_module.target_pairs()`` returning (online, target) module pairs. Buffers (BatchNorm
    statistics) are left alone, as in the official code.
    """

    def __init__(self, rho: float = 0.01) -> None:
        if not 0.0 < rho <= 1.0:
            raise ValueError(f"SoftTargetUpdate.rho must be in (0, 1], got {rho}")
        self.rho = rho
        self._online: list[torch.Tensor] = []
        self._target: list[torch.Tensor] = []

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._online, self._target = [], []
        for online, target in pl_module.target_pairs():
            self._online += [p.data for p in online.parameters()]
            self._target += [p.data for p in target.parameters()]

    @torch.no_grad()
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._target:  # an actor-only algorithm (BC) has no target networks
            soft_update_(self._target, self._online, self.rho)
