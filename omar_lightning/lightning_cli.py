"""``omar fit|validate|test``: LightningCLI with this project's checks, defaults and reports.

Imported only by those commands (``omar --help``, ``omar datasets`` ... do not load Lightning).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any

from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.plugins.io import CheckpointIO

from omar_lightning.callbacks import (
    DivergenceGuard,
    EnvEvaluation,
    RunRecord,
    RunReport,
    SoftTargetUpdate,
    UpdateCheckpoint,
    UpdateProgressBar,
)
from omar_lightning.checkpoint_io import AtomicCheckpointIO
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.errors import CheckpointError
from omar_lightning.loggers import TensorBoardBeside, continue_logs
from omar_lightning.base import OfflineAlgorithm
from omar_lightning.resume import RECORD_KEY, check_resume

#: What each required callback does, for the message that names a missing one.
REQUIRED = {
    SoftTargetUpdate: "the target networks follow the online ones",
    EnvEvaluation: "the evaluation curve",
    UpdateCheckpoint: "checkpoints that --ckpt_path last finds",
}


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def required_callbacks(model: Any) -> list[type]:
    """The callbacks that a fit of ``model`` cannot do without (SoftTargetUpdate only for
    algorithms that train critics against target networks)."""
    needed = [EnvEvaluation, UpdateCheckpoint]
    if callable(getattr(model, "target_pairs", None)) and model.target_pairs():
        needed.insert(0, SoftTargetUpdate)
    return needed


def missing_callbacks_message(missing: list[type]) -> str:
    names = ", ".join(f"{cls.__name__} ({REQUIRED[cls]})" for cls in missing)
    adds = " ".join(f"--trainer.callbacks+={cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}" for cls in missing)
    return (
        f"trainer.callbacks lacks {names}, which omar fit needs (a --trainer.callbacks list replaces the config's): "
        f"add to the list instead, {adds}, or start from a config in configs/"
    )


class _DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``prefixes``."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def _warning_line(message: Any, category: type, filename: str, lineno: int, line: str | None = None) -> str:
    return f"omar: warning: {message}\n"


def quiet_lightning() -> None:
    """Trim Lightning's start-up output to what helps here.

    Dropped: the LitLogger advertisement, "GPU available: False" / "TPU available: False" (a GPU
    that is present is still reported), "Seed set to N" (the start line of
    :class:`~omar_lightning.callbacks.RunReport` gives the seed) and the deprecation warning
    that Lightning's own code raises under this PyTorch. Other warnings keep their message in
    one line, ``omar: warning: ...``, without the source line of Lightning that raised it.
    """
    drop = _DropMessages("💡 Tip:", "GPU available: False", "TPU available: False", "Seed set to")
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero", "lightning_fabric.utilities.seed"):
        logging.getLogger(name).addFilter(drop)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended")
    warnings.formatwarning = _warning_line


class OMARCLI(LightningCLI):
    """LightningCLI whose model takes its agent sizes from the data module's task.

    The trainer always gets an :class:`~omar_lightning.checkpoint_io.AtomicCheckpointIO` (unless
    the config gives another ``CheckpointIO`` plugin), a
    :class:`~omar_lightning.callbacks.DivergenceGuard`, a :class:`~omar_lightning.callbacks.RunRecord`,
    a :class:`~omar_lightning.callbacks.RunReport`, the
    :class:`~omar_lightning.callbacks.UpdateProgressBar` (unless another progress bar is given or
    ``trainer.enable_progress_bar`` is false) and, with ``--tensorboard true`` (the default), a
    TensorBoard logger beside every CSV logger. A fit stops with one line when a required
    callback is missing, when ``trainer.max_steps`` is set, or when ``--ckpt_path`` names a
    checkpoint of another run (unless ``--allow_mismatched_resume true``).
    """

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # No predict: the modules have no predict_step (evaluate a checkpoint with `omar evaluate`).
        return {k: v for k, v in LightningCLI.subcommands().items() if k != "predict"}

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.obs_dims", "model.init_args.obs_dims", apply_on="instantiate")
        parser.link_arguments("data.act_dims", "model.init_args.act_dims", apply_on="instantiate")
        parser.add_argument(
            "--tensorboard", type=bool, default=True,
            help="also write TensorBoard event files, into the CSV logger's version folder (view with tensorboard --logdir <save_dir>/<name>)",
        )
        parser.add_argument(
            "--allow_mismatched_resume", type=bool, default=False,
            help="fit: continue from a --ckpt_path checkpoint of another algorithm, task, environment variant or dataset (refused otherwise)",
        )

    # ------------------------------------------------------------------ trainer
    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        fitting = self.subcommand in (None, "fit")
        max_steps = kwargs.get("max_steps", config.get("max_steps", -1))
        if fitting and max_steps not in (-1, None):
            raise ValueError(
                f"trainer.max_steps ({max_steps}) counts optimizer steps (one per trained network, two per update for OMAR), "
                "not updates: set the training length with model.max_updates instead"
            )
        plugins = _as_list(kwargs.get("plugins", config.get("plugins")))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        callbacks = _as_list(kwargs.get("callbacks", config.get("callbacks")))
        if fitting:
            missing = [cls for cls in required_callbacks(self.model) if not any(isinstance(c, cls) for c in callbacks)]
            if missing:
                raise ValueError(missing_callbacks_message(missing))
        for cls in (DivergenceGuard, RunRecord, RunReport):  # RunReport speaks in fits only; its state is in every checkpoint
            if not any(isinstance(c, cls) for c in callbacks):
                callbacks.append(cls())
        if kwargs.get("enable_progress_bar", config.get("enable_progress_bar")) is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(UpdateProgressBar())
        logger = kwargs.get("logger", config.get("logger"))
        if self._get(self.config_init, "tensorboard", False):
            logger = self._with_tensorboard(logger)
        return super().instantiate_trainer(**{**kwargs, "plugins": plugins, "callbacks": callbacks, "logger": logger})

    @staticmethod
    def _with_tensorboard(logger: Any) -> Any:
        loggers = _as_list(logger) if not isinstance(logger, bool) else None
        if not loggers or any(isinstance(lg, TensorBoardLogger) for lg in loggers):
            return logger  # none, Lightning's default (TensorBoard when installed) or TensorBoard already
        return loggers + [TensorBoardBeside(lg) for lg in loggers if isinstance(lg, CSVLogger)]

    # ------------------------------------------------------------------ checkpoints
    def _last_checkpoint(self) -> str | None:
        """The checkpoint ``--ckpt_path last`` loads (Lightning's rule: the newest ``last*.ckpt``)."""
        found = [p for cb in self.trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) for p in cb._find_last_checkpoints(self.trainer)]
        return max(found, key=os.path.getmtime) if found else None

    def _require_last_checkpoint(self) -> None:
        """``validate``/``test --ckpt_path last`` with no last checkpoint is an error, not an untrained model.

        (Lightning only warns and evaluates the freshly initialized networks; ``fit`` keeps that
        behaviour: it starts from scratch when nothing was saved yet.)
        """
        if self._get(self.config_init, "ckpt_path") != "last":
            return
        if self._last_checkpoint() is None:
            where = [str(cb.dirpath) for cb in self.trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
            raise CheckpointError(
                f"--ckpt_path last: no last checkpoint{' in ' + ', '.join(where) if where else ''}; "
                "give the checkpoint's path (the checkpoint callback's dirpath decides where 'last' is looked for)"
            )

    before_validate = before_test = _require_last_checkpoint

    def before_fit(self) -> None:
        """Resuming: refuse a checkpoint of another run and continue the run's own logs."""
        given = self._get(self.config_init, "ckpt_path")
        if given is None or given in ("best", "hpc", "registry"):
            return
        path = self._last_checkpoint() if given == "last" else given
        if path is None:
            return  # nothing saved yet: the fit starts from scratch
        checkpoint = AtomicCheckpointIO().load_checkpoint(path, weights_only=self._get(self.config_init, "weights_only"))
        problems = check_resume(path, checkpoint, self.model, self.datamodule, allow=bool(self._get(self.config_init, "allow_mismatched_resume")))
        if problems and self.trainer.is_global_zero:
            warnings.warn(f"--allow_mismatched_resume: continuing from {path}, a checkpoint of {'; '.join(problems)}", stacklevel=1)
        # Resuming into the run's own checkpoint folder: it is meant to hold the earlier checkpoints.
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        records = (checkpoint.get(RECORD_KEY) or {}).get("logs") or []
        continue_logs(self.trainer, records, int((checkpoint.get("omar") or {}).get("updates", 0)))
        self.config_init[self.subcommand]["ckpt_path"] = str(path)  # what was checked is what is loaded

    def _parse_ckpt_path(self) -> None:
        """Keep the given config when resuming with ``--ckpt_path``.

        LightningCLI would overwrite the model's settings with those saved in the checkpoint,
        silently ignoring the config and command line (for example a larger ``max_updates``
        to continue a run). Here the config is the truth; the checkpoint provides the state.
        """


def run(argv: list[str] | None) -> None:
    """``omar fit|validate|test ARGS`` (``argv`` None: the command line). A committed cell config
    given alone runs on its bases (:func:`omar_lightning.reproduce.studies.with_bases`)."""
    from omar_lightning.reproduce.studies import with_bases

    argv = with_bases(sys.argv[1:] if argv is None else list(argv))
    quiet_lightning()
    OMARCLI(
        OfflineAlgorithm,
        OfflineDataModule,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        # the model table is replaced by RunReport's start line (its FLOPs column reads 0 here)
        trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0, "enable_model_summary": False},
        parser_kwargs={"exit_on_error": False},  # errors reach omar_lightning.cli.main and are reported in one line
        args=argv,
    )


__all__ = ["OMARCLI", "OfflineDataModule", "missing_callbacks_message", "quiet_lightning", "required_callbacks", "run"]
