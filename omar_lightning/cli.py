"""The ``omar`` command: LightningCLI for fit / validate / test."""

from __future__ import annotations

import sys

from pytorch_lightning.cli import LightningCLI

from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.module import OMAR


class OMARCLI(LightningCLI):
    """LightningCLI whose model takes its agent sizes from the data module's task."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.obs_dims", "model.init_args.obs_dims", apply_on="instantiate")
        parser.link_arguments("data.act_dims", "model.init_args.act_dims", apply_on="instantiate")


def main(argv: list[str] | None = None) -> None:
    OMARCLI(
        OMAR,
        OfflineDataModule,
        subclass_mode_model=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"max_epochs": 1, "num_sanity_val_steps": 0},
        args=sys.argv[1:] if argv is None else argv,
    )


if __name__ == "__main__":
    main()
