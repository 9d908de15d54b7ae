"""The ``omar`` command: LightningCLI for fit / validate / test; ``omar evaluate`` for checkpoints."""

from __future__ import annotations

import re
import sys

from pytorch_lightning.cli import LightningCLI

from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.module import OMAR


class OMARCLI(LightningCLI):
    """LightningCLI whose model takes its agent sizes from the data module's task."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.obs_dims", "model.init_args.obs_dims", apply_on="instantiate")
        parser.link_arguments("data.act_dims", "model.init_args.act_dims", apply_on="instantiate")

    def _parse_ckpt_path(self) -> None:
        """Keep the given config when resuming with ``--ckpt_path``.

        LightningCLI would overwrite the model's settings with those saved in the checkpoint,
        silently ignoring the config and command line (for example a larger ``max_updates``
        to continue a run). Here the config is the truth; the checkpoint provides the state.
        """


def _root_message(error: BaseException) -> str:
    """The settings error itself, without jsonargparse's listing of union alternatives."""
    text = str(error)
    ours = re.findall(r"^\s*- ((?:model|data|refinement|trainer)\.\S+ .*|\S+\.npz.*|\S+: .*must be.*)$", text, re.M)
    return ours[0] if ours else text


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``omar`` console script; bad settings exit with one clear line (status 2).

    ``omar fit|validate|test ...`` run LightningCLI; ``omar evaluate ...`` evaluates a checkpoint
    (:mod:`omar_lightning.evaluate_cli`); ``omar collect train|dataset`` trains behaviour policies
    and writes dataset tiers (:mod:`omar_lightning.collect_cli`); ``omar datasets list|info|verify``
    inspects dataset files (:mod:`omar_lightning.datasets_cli`).
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
    if args and args[0] == "datasets":
        from omar_lightning.datasets_cli import main as datasets_main

        datasets_main(args[1:])
        return
    try:
        _run(argv)
    except (ValueError, FileNotFoundError) as error:
        print(f"omar: error: {_root_message(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def _run(argv: list[str] | None) -> None:
    OMARCLI(
        OMAR,
        OfflineDataModule,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        trainer_defaults={"max_epochs": -1, "num_sanity_val_steps": 0},
        args=argv,  # None: the command line
    )


if __name__ == "__main__":
    main()
