"""Figure 3: OMAR's normalized score over tau (the weight of the refinement target in the actor
loss), per tier, averaged over the MPE tasks that ran."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from omar_lightning.data.format import TIERS
from omar_lightning.plots import pyplot
from omar_lightning.plots import save_figure
from omar_lightning.reproduce.report.common import OLD, TIER_NAMES, Results, group_key
from omar_lightning.reproduce.studies import MPE_TASKS, TAUS

def tau_figure(results: Results, path: Path) -> bool:
    plt = pyplot()

    table = tau_table(results)
    if not any(v["n"] for row in table.values() for v in row.values()):
        return False
    fig, axes = plt.subplots(1, len(TIERS), figsize=(13, 2.8), squeeze=False)
    for ax, tier in zip(axes[0], TIERS):
        xs = [t for t in TAUS if table[tier][t]["n"]]
        ax.errorbar(xs, [table[tier][t]["mean"] for t in xs], yerr=[table[tier][t]["std"] for t in xs], marker="o", capsize=3)
        ax.set_title(TIER_NAMES[tier], fontsize=9)
        ax.set_xlabel("tau", fontsize=8)
        ax.set_ylabel("normalized score (mean over tasks)", fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def tau_table(results: Results) -> dict[str, dict[float, dict[str, float]]]:
    """Per tier and tau: the per-task means averaged over the tasks that ran (std: over seeds of that mean)."""
    out: dict[str, dict[float, dict[str, float]]] = {}
    for tier in TIERS:
        out[tier] = {}
        for tau in TAUS:
            per_task = [results.score(group_key("omar", task, tier, f"tau={tau}")) for task in MPE_TASKS]
            per_task = [a for a in per_task if a["n"]]
            out[tier][tau] = {"mean": float(np.mean([a["mean"] for a in per_task])) if per_task else math.nan,
                              "std": float(np.mean([a["std"] for a in per_task])) if per_task else math.nan, "n": len(per_task),
                              "stale": any(a["stale"] for a in per_task)}
    return out


def tau_rows(results: Results) -> list[str]:
    """The figure's numbers as a table: per tier and tau, the mean and the number of tasks."""
    tau = tau_table(results)
    out = ["Mean normalized score over the MPE tasks that ran (number of tasks in brackets).", "",
           "| tier | " + " | ".join(f"tau {t}" for t in TAUS) + " |", "|---" * (len(TAUS) + 1) + "|"]
    for tier in TIERS:
        out.append(f"| {TIER_NAMES[tier]} | " + " | ".join("not run" if not tau[tier][t]["n"] else f"{tau[tier][t]['mean']:.1f} ({tau[tier][t]['n']})" + (OLD if tau[tier][t]["stale"] else "") for t in TAUS) + " |")
    return out
