"""What every section of the page shares: display names, the summaries grouped by cell, and how a
score is printed."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from omar_lightning.reproduce.studies import AGENT_COUNTS, line_spread
from omar_lightning.reproduce.summary import aggregate, update_version
from omar_lightning.update_version import UPDATE_VERSION

NAMES = {"maicq": "MA-ICQ", "matd3bc": "MA-TD3+BC", "macql": "MA-CQL", "omar": "OMAR", "bc": "BC"}
TASK_NAMES = {"cooperative_navigation": "Cooperative navigation", "predator_prey": "Predator-prey", "world": "World", "halfcheetah_2x3": "HalfCheetah 2x3",
              **{line_spread(n): f"Spread on a line, {n} agent{'s' if n > 1 else ''}" for n in AGENT_COUNTS}}
TIER_NAMES = {"random": "Random", "medium_replay": "Medium-replay", "medium": "Medium", "expert": "Expert"}
ALGS = ("maicq", "matd3bc", "macql", "omar")
OLD = " †"  # marks a number made by an older version of the training update


def cell_of(summary: dict[str, Any]) -> str:
    """The group key of a summary's cell (its key without the seed)."""
    return summary["key"].rsplit("/seed_", 1)[0]


def group_key(algorithm: str, task: str, tier: str, variant: str = "default", centralized: bool = False, analysis: str | None = None) -> str:
    return f"{algorithm}/{task}/{tier}{'_centralized' if centralized else ''}/{variant}{'+' + analysis if analysis else ''}"


class Results:
    """Summaries grouped by cell (all seeds of one config and overrides), each cell holding only
    the seeds of the newest update version among its summaries."""

    def __init__(self, summaries: list[dict[str, Any]]) -> None:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in summaries:
            grouped[cell_of(s)].append(s)
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.left_out: list[dict[str, Any]] = []  # seeds of an older version than their cell's newest
        self.versions: dict[int, int] = defaultdict(int)  # summaries shown, by update version
        for key, runs in grouped.items():
            newest = max(update_version(s) for s in runs)
            self.groups[key] = sorted((s for s in runs if update_version(s) == newest), key=lambda s: s["cell"]["seed"])
            self.left_out += [s for s in runs if update_version(s) != newest]
            self.versions[newest] += len(self.groups[key])

    def runs(self, key: str) -> list[dict[str, Any]]:
        return self.groups.get(key, [])

    def stale(self, key: str) -> bool:
        """Whether the cell's runs were made by an older version of the training update."""
        runs = self.runs(key)
        return bool(runs) and update_version(runs[0]) != UPDATE_VERSION

    def score(self, key: str, field: str = "normalized_score") -> dict[str, float]:
        return {**aggregate(s["score"][field] for s in self.runs(key)), "stale": self.stale(key)}

    def version_note(self) -> list[str]:
        """The page's lines on update versions (none when every summary is current)."""
        old = sum(n for v, n in self.versions.items() if v != UPDATE_VERSION)
        if not old and not self.left_out:
            return []
        shown = ", ".join(f"{n} of version {v}" for v, n in sorted(self.versions.items()))
        lines = [f"- **Update versions.** The training update is at version {UPDATE_VERSION} (`omar_lightning/update_version.py`, "
                 f"which lists what each version changed); the runs shown here are {shown}. Numbers made by an older version are "
                 "marked †: `omar reproduce` reruns those cells. Runs of different versions are never averaged: a cell shows "
                 "only the seeds of its newest version."]
        if self.left_out:
            lines[-1] += f" Left out for that reason: {len(self.left_out)} older run(s) of cells that have newer ones."
        return lines


def fmt(agg: dict[str, float] | tuple[float, float] | None, digits: int = 1) -> str:
    """``mean ± std (seeds)`` of an aggregate (``†`` when stale), ``mean ± std`` of a paper pair."""
    if agg is None:
        return "–"
    if isinstance(agg, tuple):
        return f"{agg[0]:.{digits}f} ± {agg[1]:.{digits}f}"
    if agg["n"] == 0:
        return "not run"
    return f"{agg['mean']:.{digits}f} ± {agg['std']:.{digits}f} ({agg['n']})" + (OLD if agg.get("stale") else "")


def winner(values: dict[str, float]) -> str:
    """The display name of the method with the highest finite value ("–" when none)."""
    finite = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not finite:
        return "–"
    best = max(finite, key=finite.get)
    return NAMES.get(best, best)
