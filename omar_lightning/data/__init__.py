from omar_lightning.data.format import (
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

__all__ = ["TIERS", "DatasetError", "OfflineDataset", "dataset_path", "default_path", "load_dataset", "normalized_score", "read_metadata", "save_dataset"]
