from omar_lightning.data.format import (
    MINIBATCHES,
    REGENERATION_TOLERANCE,
    TIERS,
    DatasetError,
    OfflineDataset,
    dataset_identity,
    dataset_path,
    default_path,
    load_dataset,
    normalized_score,
    read_metadata,
    same_dataset,
    save_dataset,
)

__all__ = ["MINIBATCHES", "REGENERATION_TOLERANCE", "TIERS", "DatasetError", "OfflineDataset", "dataset_identity", "dataset_path", "default_path", "load_dataset", "normalized_score", "read_metadata", "same_dataset", "save_dataset"]
