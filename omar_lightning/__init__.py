"""omar-lightning: offline multi-agent RL with actor rectification (OMAR) on PyTorch Lightning."""

from omar_lightning.baselines import BC, MACQL, MAICQ, MATD3BC
from omar_lightning.module import OMAR
from omar_lightning.refinement import Refinement

__version__ = "0.1.0"
__all__ = ["BC", "MACQL", "MAICQ", "MATD3BC", "OMAR", "Refinement", "__version__"]
