"""Stop training at the first non-finite loss or gradient, before it reaches the weights."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import Tensor

from omar_lightning.errors import DivergenceError


class DivergenceGuard(Callback):
    """Raise :class:`omar_lightning.errors.DivergenceError` before an optimizer step with a
    non-finite loss or gradient.

    ``on_before_backward`` keeps the loss given to ``manual_backward``; ``on_before_optimizer_step``
    runs inside ``optimizer.step()`` after the gradients are final (clipped) but before Adam
    changes any weight or moment. If the loss or the largest absolute gradient is NaN or inf, it
    raises ``update <k>: <network> loss is nan`` (``k`` counts updates from 1; ``<network>`` is the
    module's child that owns the optimizer's parameters, ``critic`` or ``actor``). Q-values enter
    both losses, so non-finite Q-values stop training here too. Nothing after the last checkpoint
    is written: ``last.ckpt`` stays the last good state and the message names it.

    Costs one device-to-host synchronisation per optimizer step.
    """

    def __init__(self) -> None:
        self._loss: Optional[Tensor] = None
        self._names: dict[int, str] = {}

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: Tensor) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        loss, self._loss = self._loss, None
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        checks = [loss.float().reshape(-1)] if loss is not None else []
        if grads:
            checks.append(torch.stack(torch._foreach_norm(grads, ord=math.inf)).float())
        if not checks or bool(torch.isfinite(torch.cat(checks)).all()):
            return
        raise DivergenceError(self._message(trainer, pl_module, optimizer, loss))

    def _network(self, pl_module: LightningModule, optimizer: Any) -> str:
        key = id(optimizer)
        if key not in self._names:
            params = {id(p) for group in optimizer.param_groups for p in group["params"]}
            owners = [name for name, child in pl_module.named_children() if any(id(p) in params for p in child.parameters())]
            self._names[key] = "+".join(owners) or "model"
        return self._names[key]

    def _message(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any, loss: Optional[Tensor]) -> str:
        update = int(getattr(pl_module, "updates", trainer.global_step)) + 1
        name = self._network(pl_module, optimizer)
        value = float(loss.float().sum()) if loss is not None else None
        if value is None:
            what = f"{name} gradients are not finite"
        elif not math.isfinite(value):
            what = f"{name} loss is {value}"
        else:
            what = f"{name} gradients are not finite (loss {value:.4g})"
        last = getattr(trainer.checkpoint_callback, "last_model_path", "") if trainer.checkpoint_callback else ""
        kept = f"last checkpoint {last} is kept" if last and Path(last).is_file() else "no checkpoint had been written"
        return f"update {update}: {what}; training stopped before the {name} step was applied, {kept}"
