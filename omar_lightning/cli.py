"""The ``omar`` command: LightningCLI for fit / validate / test; ``omar evaluate`` for checkpoints."""

from __future__ import annotations

import re
import sys
from argparse import ArgumentError
from typing import Any

from lightning_fabric.utilities.exceptions import MisconfigurationException
from pytorch_lightning import Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.plugins.io import CheckpointIO

from omar_lightning.callbacks import DivergenceGuard
from omar_lightning.checkpoint_io import AtomicCheckpointIO
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.errors import CheckpointError, DivergenceError
from omar_lightning.module import OMAR


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class OMARCLI(LightningCLI):
    """LightningCLI whose model takes its agent sizes from the data module's task.

    The trainer always gets an :class:`~omar_lightning.checkpoint_io.AtomicCheckpointIO` (unless
    the config gives another ``CheckpointIO`` plugin) and a
    :class:`~omar_lightning.callbacks.DivergenceGuard` (unless the config lists one).
    """

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.obs_dims", "model.init_args.obs_dims", apply_on="instantiate")
        parser.link_arguments("data.act_dims", "model.init_args.act_dims", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        plugins = _as_list(kwargs.get("plugins", config.get("plugins")))
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        callbacks = _as_list(kwargs.get("callbacks", config.get("callbacks")))
        if not any(isinstance(c, DivergenceGuard) for c in callbacks):
            callbacks.append(DivergenceGuard())
        return super().instantiate_trainer(**{**kwargs, "plugins": plugins, "callbacks": callbacks})

    def _require_last_checkpoint(self) -> None:
        """``validate``/``test --ckpt_path last`` with no last checkpoint is an error, not an untrained model.

        (Lightning only warns and evaluates the freshly initialized networks; ``fit`` keeps that
        behaviour: it starts from scratch when nothing was saved yet.)
        """
        if self._get(self.config_init, "ckpt_path") != "last":
            return
        found = [p for cb in self.trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) for p in cb._find_last_checkpoints(self.trainer)]
        if not found:
            where = [str(cb.dirpath) for cb in self.trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
            raise CheckpointError(
                f"--ckpt_path last: no last checkpoint{' in ' + ', '.join(where) if where else ''}; "
                "give the checkpoint's path (the checkpoint callback's dirpath decides where 'last' is looked for)"
            )

    before_validate = before_test = _require_last_checkpoint

    def _parse_ckpt_path(self) -> None:
        """Keep the given config when resuming with ``--ckpt_path``.

        LightningCLI would overwrite the model's settings with those saved in the checkpoint,
        silently ignoring the config and command line (for example a larger ``max_updates``
        to continue a run). Here the config is the truth; the checkpoint provides the state.
        """


# Lines of jsonargparse's error reports that only describe its own type machinery.
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "Problem with given class_path",
    "Not a valid subclass of",
    "Subclass types expect one of",
    "a class path (str)",
    "a dict with",
    "a dict without",
    "Unable to instantiate",
)


def _tidy(text: str) -> str:
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
    text = re.sub(r"Expected a typing\.Literal\[(.*)\]", r"Expected one of [\1]", text)
    text = re.sub(r"\. Got value: (.*)$", r", got \1", text)
    return text


def one_line(error: BaseException) -> str:
    """The error itself in one line: the setting's full key and what is wrong with it.

    jsonargparse reports a bad value as a tree (``Parser key "model":`` ... ``Parser key "tau":``
    ... the union alternatives it tried); this keeps the keys and the first line that says what
    is wrong, with the given value when the line does not show it.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    keys: list[str] = []
    detail = ""
    for line in lines:
        line = re.sub(r"^- ", "", line)
        m = re.match(r'^Parser key "([^"]+)":\s*(.*)$', line)
        if m:
            keys.append(m[1])
            if m[2]:
                detail = m[2]
                break
            continue
        if not line.startswith(_NOISE):
            detail = line
            break
    if not detail:
        return lines[0] if lines else type(error).__name__
    given = next((line for line in lines if line.startswith("Given value:")), None)
    if given and "Got value" not in detail and detail.startswith("Expected"):
        value = given[len("Given value:") :].strip()
        nested = re.match(r"^NestedArg\(key='[^']*', val=(.*)\)$", value)
        detail += f", got {nested[1] if nested else value}"
    detail = _tidy(detail)
    key = ".".join(keys)
    if not key or detail.startswith(key):
        return detail
    return f"{key}: {detail[0].lower() + detail[1:] if detail[:1].isupper() and not detail[1:2].isupper() else detail}"


def _fail(message: str, status: int) -> None:
    print(f"omar: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``omar`` console script.

    ``omar fit|validate|test ...`` run LightningCLI; ``omar evaluate ...`` evaluates a checkpoint
    (:mod:`omar_lightning.evaluate_cli`); ``omar collect train|dataset`` trains behaviour policies
    and writes dataset tiers (:mod:`omar_lightning.collect_cli`); ``omar datasets list|info|verify|compare|import``
    inspects dataset files (:mod:`omar_lightning.datasets_cli`); ``omar reproduce STUDY`` and
    ``omar report`` rerun the paper's studies and rebuild docs/results.md (:mod:`omar_lightning.reproduce`). Bad settings, dataset files and
    checkpoints exit with one line naming the setting or file (status 2); a diverged run exits with
    one line naming the update and the loss (status 1), as does a failure to read or write a file
    (a full disk, a permission).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] == "evaluate":
        from omar_lightning.evaluate_cli import main as evaluate_main

        evaluate_main(args[1:])
        return
    if args and args[0] == "collect":
        from omar_lightning.collect_cli import main as collect_main

        collect_main(args[1:])
        return
    if args and args[0] in ("reproduce", "report"):
        from omar_lightning.reproduce.cli import report_main, reproduce_main

        (reproduce_main if args[0] == "reproduce" else report_main)(args[1:])
        return
    if args and args[0] == "datasets":
        from omar_lightning.datasets_cli import main as datasets_main

        datasets_main(args[1:])
        return
    try:
        _run(argv)
    except DivergenceError as error:
        _fail(one_line(error), 1)
    except (ArgumentError, ValueError, FileNotFoundError) as error:
        _fail(one_line(error), 2)
    except MisconfigurationException as error:
        _fail(f"trainer: {one_line(error)}", 2)
    except OSError as error:
        _fail(one_line(error), 1)


def _run(argv: list[str] | None) -> None:
    OMARCLI(
        OMAR,
        OfflineDataModule,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0},
        parser_kwargs={"exit_on_error": False},  # errors reach main() and are reported in one line
        args=argv,  # None: the command line
    )


if __name__ == "__main__":
    main()
