"""Which run wrote a checkpoint: algorithm, task, environment variant, dataset and log folders."""

from __future__ import annotations

from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer

from omar_lightning.loggers import log_records
from omar_lightning.resume import RECORD_KEY, run_identity


class RunRecord(Callback):
    """Store the run's identity in every checkpoint (``checkpoint["omar_run"]``).

    It holds :func:`omar_lightning.resume.run_identity` (algorithm, task, ``env_kwargs``,
    dataset path and checksum, reference returns) and ``logs`` (the CSV and TensorBoard
    folders and versions, :func:`omar_lightning.loggers.log_records`). ``omar fit --ckpt_path``
    refuses a checkpoint of another run with it and continues the run's own logs. The ``omar``
    command adds this callback to every trainer.
    """

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[RECORD_KEY] = {**run_identity(pl_module, trainer.datamodule), "logs": log_records(trainer)}
