"""Lightning data modules (imported as ``omar_lightning.datamodules``)."""

from omar_lightning.datamodules.offline import MinibatchStream, OfflineDataModule

__all__ = ["MinibatchStream", "OfflineDataModule"]
