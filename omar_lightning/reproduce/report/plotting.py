"""The figures' common parts: learning curves per (task, tier) panel and the panels' look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.data.format import TIERS
from omar_lightning.plots import pyplot
from omar_lightning.plots import save_figure
from omar_lightning.reproduce.report.common import OLD, TASK_NAMES, TIER_NAMES, Results


def curves_figure(results: Results, path: Path, panels: list[tuple[str, str]], lines: list[tuple[str, str]], title: str,
                  field: str = "normalized_score") -> bool:
    """One panel per (task, tier); per line (label, group key template with {task} and {tier}):
    the mean over seeds of the curve's ``field`` (normalized score or return) vs updates, shaded
    between the seeds' min and max. False (and no file) when no panel has a run."""
    plt = pyplot()

    present = [p for p in panels if any(results.runs(t.format(task=p[0], tier=p[1])) for _, t in lines)]
    if not present:
        return False
    tasks = sorted({t for t, _ in present}, key=[t for t, _ in panels].index)
    tiers = [t for t in TIERS if any(p[1] == t for p in present)]
    fig, axes = plt.subplots(len(tasks), len(tiers), figsize=(max(6.0, 3.4 * len(tiers)), 2.6 * len(tasks) + 0.4), squeeze=False)
    for r, task in enumerate(tasks):
        for c, tier in enumerate(tiers):
            ax = axes[r][c]
            for i, (label, template) in enumerate(lines):
                runs = results.runs(template.format(task=task, tier=tier))
                if not runs:
                    continue
                common = sorted(set.intersection(*(set(s["curve"]["updates"]) for s in runs)))
                ys = np.array([[dict(zip(s["curve"]["updates"], s["curve"][field]))[u] for u in common] for s in runs])
                old = OLD if results.stale(template.format(task=task, tier=tier)) else ""
                ax.plot(common, ys.mean(0), label=f"{label} ({len(runs)}){old}", linewidth=1.0, color=f"C{i}")  # one colour per method in every panel
                ax.fill_between(common, ys.min(0), ys.max(0), alpha=0.2, color=f"C{i}")
            style_panel(ax, f"{TASK_NAMES.get(task, task)}, {TIER_NAMES[tier]}", "updates", field.replace("_", " "))
    finish(fig, title, path)
    return True


def style_panel(ax: Any, title: str, xlabel: str, ylabel: str, ylabel_size: int = 8) -> None:
    """The panels' common look: title, axis labels, small ticks, a light grid and the legend."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=ylabel_size)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a panel without a run has no legend
        ax.legend(fontsize=6)


def finish(fig: Any, title: str, path: Path) -> None:
    """Title, tight layout, and the deterministic save (``omar_lightning/plots.py``)."""
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
