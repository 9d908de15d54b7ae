"""What the numbers stand on: the dataset files the runs trained on, and what a run cost."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from omar_lightning.data.format import REGENERATION_TOLERANCE
from omar_lightning.reproduce.report.common import NAMES, Results
from omar_lightning.reproduce.studies import variant_name
from omar_lightning.reproduce.summary import update_version

def costs(results: Results) -> list[str]:
    """Wall seconds per run, by algorithm, variant, task, length, threads and update version."""
    rows = defaultdict(list)
    for runs in results.groups.values():
        for s in runs:
            c = s["cell"]
            rows[(c["algorithm"], variant_name(c.get("variant", {}).items()), c["task"], s["max_updates"], s.get("threads", 0), update_version(s))].append(s["wall_seconds"])
    lines = ["| algorithm | variant | task | updates | threads per run | update version | runs | wall seconds per run (mean) |", "|---|---|---|---|---|---|---|---|"]
    for (alg, variant, task, updates, threads, version), secs in sorted(rows.items()):
        lines.append(f"| {NAMES.get(alg, alg)} | {variant} | {task} | {updates:,} | {threads or 'all'} | {version} | {len(secs)} | {np.mean(secs):.0f} |")
    return lines


def datasets(results: Results) -> list[str]:
    """One row per dataset file the runs trained on (path and checksum), with how many runs did."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    count: dict[tuple[str, str], int] = defaultdict(int)
    for runs in results.groups.values():
        for s in runs:
            key = (s["dataset"]["path"], s["dataset"]["checksum"])
            seen.setdefault(key, s["dataset"])
            count[key] += 1
    lines = ["| dataset | transitions | behaviour return | S_random | S_expert | checksum (first 12) | runs |", "|---|---|---|---|---|---|---|"]
    for (path, _), d in sorted(seen.items()):
        b = d.get("behaviour_return")
        lines.append(f"| `{path}` | {d['num_transitions']:,} | {'–' if b is None else f'{b:.5f}'} | {d['s_random']:.5f} | {d['s_expert']:.5f} | "
                     f"`{d['checksum'][:12]}` | {count[(path, d['checksum'])]} |")
    if len({path for path, _ in seen}) < len(seen):
        lines += ["", "A path with more than one row: its runs trained on regenerations of one recipe on different machines (float rounding "
                  f"in the behaviour policy's forward pass changes bits; the same size and behaviour return, S_random and S_expert within "
                  f"{REGENERATION_TOLERANCE:g} relative, `omar_lightning/data/format.py`, `same_dataset`); a file that differs by more makes its runs stale."]
    return lines
