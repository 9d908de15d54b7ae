from omar_lightning.data.format import (
    MINIBATCHES,
    TIERS,
    DatasetError,
    OfflineDataset,
    dataset_path,
    default_path,
    load_dataset,
    normalized_score,
    read_metadata,
    save_dataset,
)

__all__ = ["MINIBATCHES", "TIERS", "DatasetError", "OfflineDataset", "dataset_path", "default_path", "load_dataset", "normalized_score", "read_metadata", "save_dataset"]
