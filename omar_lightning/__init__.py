"""omar-lightning: offline multi-agent RL with actor rectification (OMAR) on PyTorch Lightning."""

from omar_lightning.module import OMAR
from omar_lightning.refinement import Refinement

__version__ = "0.1.0"
__all__ = ["OMAR", "Refinement", "__version__"]
