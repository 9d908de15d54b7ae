"""omar-lightning: offline multi-agent RL with actor rectification (OMAR) on PyTorch Lightning.

The algorithms are imported on first use (``omar_lightning.OMAR``), so that commands which do
not train (``omar --help``, ``omar datasets``) start without loading PyTorch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module defining it.
_EXPORTS = {
    "ActorCritic": "omar_lightning.base",
    "BC": "omar_lightning.baselines",
    "ConservativeActorCritic": "omar_lightning.cql",
    "MACQL": "omar_lightning.baselines",
    "MAICQ": "omar_lightning.baselines",
    "MATD3BC": "omar_lightning.baselines",
    "OMAR": "omar_lightning.module",
    "OfflineAlgorithm": "omar_lightning.base",
    "Refinement": "omar_lightning.refinement",
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'omar_lightning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
