from omar_lightning.data.format import DatasetError, OfflineDataset, load_dataset, read_metadata, save_dataset

__all__ = ["DatasetError", "OfflineDataset", "load_dataset", "read_metadata", "save_dataset"]
