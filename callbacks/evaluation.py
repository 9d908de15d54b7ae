"""Periodic evaluation of the deterministic policies in the real environment."""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from omar_lightning.evaluation import evaluate_and_log


class EnvEvaluation(Callback):
    """Every ``every_n_updates`` updates, roll out the policies in the real environment.

    The data module's ``eval_episodes`` episodes (seeds ``eval_seed + k``) are split over the
    ranks; ``eval/return`` and ``eval/normalized_score`` are means over all of them, reduced
    with torchmetrics, logged and shown in the progress bar. The evaluation after the last
    update is the validation loop that Lightning runs when training ends (same episodes, same
    ``eval/`` names), so it is not repeated here. As the official loop, the policies are also
    evaluated before the first update (logged as update 0, the first point of every learning
    curve; a run's score leaves it out, see ``omar_lightning.reproduce.summary``). A resumed run
    does not repeat it. The evaluation draws nothing from the training's random streams.

    Args:
        every_n_updates: evaluation period in updates.
        verbose: print one line per evaluation.
        at_start: evaluate before the first update.
    """

    def __init__(self, every_n_updates: int = 10, verbose: bool = True, at_start: bool = True) -> None:
        if every_n_updates < 1:
            raise ValueError(f"EnvEvaluation.every_n_updates must be >= 1, got {every_n_updates}")
        self.every_n_updates, self.verbose, self.at_start = every_n_updates, verbose, at_start

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int) -> None:
        if self.at_start and pl_module.updates == 0:
            evaluate_and_log(pl_module, prefix="eval", verbose=self.verbose)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        updates = pl_module.updates
        if updates % self.every_n_updates == 0 and updates < pl_module.hparams.max_updates:
            evaluate_and_log(pl_module, prefix="eval", verbose=self.verbose)
