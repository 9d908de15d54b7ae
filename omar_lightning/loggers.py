"""Loggers of a run: TensorBoard beside the CSV log in one folder, and logs that a resumed run continues.

Every row that ``omar fit`` logs has the update count as its step (training rows and
evaluation rows alike), so ``metrics.csv``'s ``step`` column and TensorBoard's x axis are updates.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning import Trainer
from pytorch_lightning.loggers import CSVLogger, Logger, TensorBoardLogger

from omar_lightning.atomic import atomic_write

__all__ = ["TensorBoardBeside", "continue_logs", "log_records"]


class TensorBoardBeside(TensorBoardLogger):
    """A TensorBoard logger writing into the version folder of a CSV logger
    (``<save_dir>/<name>/version_N/`` holds ``metrics.csv`` and the event file), so that
    ``tensorboard --logdir <save_dir>/<name>`` shows every run of that log folder.

    The ``omar`` command adds one beside every CSV logger (``--tensorboard false`` does not).
    """

    def __init__(self, csv_logger: CSVLogger) -> None:
        super().__init__(save_dir=csv_logger.save_dir, name=csv_logger.name, default_hp_metric=False)
        self.csv_logger = csv_logger

    @property
    def version(self) -> int | str:
        return self.csv_logger.version


def _resumable(logger: Logger) -> bool:
    return isinstance(logger, (CSVLogger, TensorBoardLogger)) and not isinstance(logger, TensorBoardBeside)


def log_records(trainer: Trainer) -> list[dict[str, Any]]:
    """Where the run's versioned loggers write: ``{"logger", "root_dir", "version"}`` each (kept in checkpoints)."""
    return [
        {"logger": type(lg).__name__, "root_dir": os.path.abspath(lg.root_dir), "version": lg.version}
        for lg in trainer.loggers
        if _resumable(lg)
    ]


def _trim_csv(path: Path, updates: int) -> None:
    """Drop the rows of ``metrics.csv`` logged after update ``updates`` (a resumed run logs them again)."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [r for r in rows if not r.get("step") or int(float(r["step"])) <= updates]
    if len(kept) == len(rows):
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(kept)
    atomic_write(path, lambda f: f.write(text.getvalue().encode()))


def _keep_csv(logger: CSVLogger, updates: int) -> None:
    """Let ``logger`` append to its existing ``metrics.csv`` (Lightning's writer would delete it).

    Rows after ``updates`` are dropped first. The file is moved aside while Lightning's writer is
    created and then put back, so no row is lost at any moment (a kill in between leaves
    ``.metrics.csv.resumed`` beside it).
    """
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    _trim_csv(path, updates)
    with path.open(newline="") as f:
        header = next(csv.reader(f), [])
    aside = path.with_name(".metrics.csv.resumed")
    os.replace(path, aside)
    with warnings.catch_warnings():  # "... exists and is not empty. Previous log files ... will be deleted": not this one
        warnings.filterwarnings("ignore", message="Experiment logs directory")
        writer = logger.experiment  # creates the writer, which finds no metrics.csv to delete
    os.replace(aside, path)
    writer.metrics_keys = list(header)  # its next save appends under the same header (or rewrites it with new keys)


def continue_logs(trainer: Trainer, records: list[dict[str, Any]], updates: int) -> list[str]:
    """Point the trainer's CSV and TensorBoard loggers at the version folders a checkpoint's run
    used (``records`` from :func:`log_records`), so that a resumed run continues its own logs.

    Only loggers without an explicit ``version`` whose folder (``save_dir/name``) is the one the
    checkpoint's run logged to, and whose version folder still exists, are continued; rows and
    events after update ``updates`` (logged after that checkpoint was written) are dropped.
    Returns the folders continued. Rank 0 only writes.
    """
    continued = []
    for logger in trainer.loggers:
        if not _resumable(logger) or logger._version is not None:
            continue
        root = os.path.abspath(logger.root_dir)
        match = next((r for r in records if r.get("logger") == type(logger).__name__ and r.get("root_dir") == root), None)
        if match is None or not (Path(root) / (match["version"] if isinstance(match["version"], str) else f"version_{match['version']}")).is_dir():
            continue
        logger._version = match["version"]
        continued.append(logger.log_dir)
        if isinstance(logger, TensorBoardLogger):
            logger._kwargs["purge_step"] = updates + 1
        elif trainer.is_global_zero:
            _keep_csv(logger, updates)
    for logger in trainer.loggers:  # TensorBoard beside a continued CSV log drops the later events too
        if isinstance(logger, TensorBoardBeside) and logger.csv_logger.log_dir in continued:
            logger._kwargs["purge_step"] = updates + 1
    return continued
