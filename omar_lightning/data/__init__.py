from omar_lightning.data.format import DatasetError, OfflineDataset, default_path, load_dataset, read_metadata, save_dataset

__all__ = ["DatasetError", "OfflineDataset", "default_path", "load_dataset", "read_metadata", "save_dataset"]
