"""A progress bar counted in updates, with its total, the time left and the latest evaluation."""

from __future__ import annotations

import sys
from typing import Any

from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm

#: Progress-bar metrics shown under a shorter name (the rest are shown as logged).
SHORT_NAMES = {"eval/return": "return", "eval/normalized_score": "score"}
#: Metrics the bar itself shows already (the count of updates) or that say nothing here.
HIDDEN = ("updates", "v_num")


class UpdateProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar over ``model.max_updates`` updates instead of "Epoch 0: 200/?".

    One training batch is one update of all agents, so the bar's position is the module's
    ``updates`` (also after a resume: a run resumed at update 600 of 2,000 starts at 600 and
    estimates the time left from the updates made since). Its postfix shows the latest
    evaluation (``return``, ``score`` = normalized score) and any other metric logged with
    ``prog_bar=True``. The single-batch validation loop at the end of training (the final
    evaluation) shows no bar of its own. The ``omar`` command uses it unless the trainer is given
    another progress bar or ``enable_progress_bar: false``.

    Args:
        refresh_rate: redraw every this many updates (the last update is always drawn).
    """

    def __init__(self, refresh_rate: int = 1) -> None:
        super().__init__(refresh_rate=refresh_rate)

    def init_train_tqdm(self) -> Tqdm:
        module = self.trainer.lightning_module
        return Tqdm(
            desc="updates",
            total=int(module.hparams.max_updates),
            initial=int(getattr(module, "updates", 0)),  # the rate and the time left count this run's updates only
            unit="update",
            position=2 * self.process_position,
            disable=self.is_disabled,
            leave=True,
            dynamic_ncols=True,
            file=sys.stdout,
            smoothing=0,
            bar_format=self.BAR_FORMAT,
        )

    def init_validation_tqdm(self) -> Tqdm:
        if self.trainer.state.fn == "fit":
            return Tqdm(disable=True)
        return super().init_validation_tqdm()

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        pass  # one epoch: the bar made in on_train_start counts all updates

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        bar = self._train_progress_bar
        n = int(getattr(pl_module, "updates", batch_idx + 1))
        if bar is not None and not bar.disable and self._should_update(n, bar.total):
            bar.n = n
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # redraws

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        return {SHORT_NAMES.get(k, k): v for k, v in items.items() if k not in HIDDEN}
