"""A callback for the multi-process tests (importable by every process with tests/ on PYTHONPATH).

On every process it records the networks before training, the global RNG state and the
minibatch at the start of every update, the networks after every update (after the soft
target update), and the evaluation metrics at the end; ``<out_dir>/rank<r>.pt`` holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback


def _state(pl_module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}


class RankRecorder(Callback):
    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.record: dict[str, Any] = {}
        self._rng: torch.Tensor | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        self.record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "start_updates": pl_module.updates,
            "initial": _state(pl_module),
            "updates": [],
        }

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._rng = torch.get_rng_state()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.record["updates"].append(
            {
                "updates": pl_module.updates,
                "rng": self._rng,
                "batch": {k: v.detach().cpu().clone() for k, v in batch.items()},
                "state": _state(pl_module),
            }
        )

    def on_fit_end(self, trainer, pl_module) -> None:
        self.record["final"] = _state(pl_module)
        self.record["callback_metrics"] = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("eval/")}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(self.record, self.out_dir / f"rank{trainer.global_rank}.pt")
