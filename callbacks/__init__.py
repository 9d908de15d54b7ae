"""Lightning callbacks (imported as ``omar_lightning.callbacks``)."""

from omar_lightning.callbacks.checkpoint import UpdateCheckpoint
from omar_lightning.callbacks.divergence import DivergenceGuard
from omar_lightning.callbacks.evaluation import EnvEvaluation
from omar_lightning.callbacks.target_update import SoftTargetUpdate

__all__ = ["DivergenceGuard", "EnvEvaluation", "SoftTargetUpdate", "UpdateCheckpoint"]
