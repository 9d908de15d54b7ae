from omar_lightning.data.format import DatasetError, OfflineDataset, load_dataset, save_dataset

__all__ = ["DatasetError", "OfflineDataset", "load_dataset", "save_dataset"]
