"""Lightning callbacks (imported as ``omar_lightning.callbacks``)."""

from omar_lightning.callbacks.checkpoint import UpdateCheckpoint
from omar_lightning.callbacks.divergence import DivergenceGuard
from omar_lightning.callbacks.evaluation import EnvEvaluation
from omar_lightning.callbacks.progress import UpdateProgressBar
from omar_lightning.callbacks.report import RunReport
from omar_lightning.callbacks.run_record import RunRecord
from omar_lightning.callbacks.target_update import SoftTargetUpdate

__all__ = ["DivergenceGuard", "EnvEvaluation", "RunRecord", "RunReport", "SoftTargetUpdate", "UpdateCheckpoint", "UpdateProgressBar"]
