"""Figures: matplotlib on its file-only backend, written atomically, and a run's learning curve."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Sequence

from omar_lightning.atomic import atomic_write


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend (imported when a figure is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` (atomically: the old file or the new one, never a part) and close it."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buffer.getvalue()))


def learning_curve(
    path: str | Path, updates: Sequence[int], scores: Sequence[float], behaviour: float | None, title: str
) -> Path:
    """Normalized score against updates, with the dataset's behaviour level and the reference
    levels 0 (S_random) and 100 (S_expert) as horizontal lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(list(updates), list(scores), color="C0", linewidth=1.4, marker="o", markersize=2.5, label="evaluation (normalized score)")
    if behaviour is not None:
        ax.axhline(behaviour, color="C1", linestyle="--", linewidth=1.2, label=f"dataset's behaviour ({behaviour:.1f})")
    for level, name in ((0.0, "S_random"), (100.0, "S_expert")):
        ax.axhline(level, color="0.6", linewidth=0.8, linestyle=":")
        ax.annotate(name, (1.0, level), xycoords=("axes fraction", "data"), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7, color="0.4")
    ax.set_xlabel("updates")
    ax.set_ylabel("normalized score")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)
