"""Online training of behaviour policies (MATD3) for dataset generation."""

from omar_lightning.online.matd3 import MATD3Config, MATD3Trainer, load_snapshot, snapshot_policy

__all__ = ["MATD3Config", "MATD3Trainer", "load_snapshot", "snapshot_policy"]
