"""Periodic evaluation of the deterministic policies in the real environment."""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities import rank_zero_info


class EnvEvaluation(Callback):
    """Every ``every_n_updates`` updates and after the last one, roll out the policies.

    The data module's ``eval_episodes`` episodes (seeds ``eval_seed + k``) are split over the
    ranks; ``eval/return`` and ``eval/normalized_score`` are means over all of them, reduced
    with torchmetrics, logged and shown in the progress bar.

    Args:
        every_n_updates: evaluation period in updates (0: only after the last update).
        verbose: print one line per evaluation.
    """

    def __init__(self, every_n_updates: int = 10, verbose: bool = True) -> None:
        if every_n_updates < 0:
            raise ValueError(f"EnvEvaluation.every_n_updates must be >= 0, got {every_n_updates}")
        self.every_n_updates, self.verbose = every_n_updates, verbose

    def _run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from omar_lightning.evaluation import evaluate_and_log

        result = evaluate_and_log(pl_module, prefix="eval")
        if self.verbose:
            rank_zero_info(
                f"update {pl_module.updates:>6}: return {result['return']:.2f}, "
                f"normalized score {result['normalized_score']:.1f}"
            )

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = self.every_n_updates
        if (n and pl_module.updates % n == 0) or pl_module.updates == pl_module.hparams.max_updates:
            self._run(trainer, pl_module)
