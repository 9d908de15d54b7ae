"""The paper's task x tier tables beside ours: Tables 3 and 6 (methods), 4 (samplers), 5
(centralized critics)."""

from __future__ import annotations

from omar_lightning.data.format import TIERS
from omar_lightning.reproduce import paper
from omar_lightning.reproduce.report.common import ALGS, NAMES, TASK_NAMES, TIER_NAMES, Results, fmt, group_key, winner
from omar_lightning.reproduce.studies import MPE_TASKS

SAMPLERS = {"random": "random", "cem": "CEM", "gaussian": "Gaussian"}  # Table 4's columns and their names; gaussian is OMAR's default


def sampler_variant(sampler: str) -> str:
    """The variant name of OMAR's cell with ``sampler`` (the default cell for the Gaussian)."""
    return "default" if sampler == "gaussian" else f"sampler={sampler}"


def methods_table(results: Results, cells: list[tuple[str, str]], reference: dict, centralized: bool = False) -> list[str]:
    """One row per (task, tier): each method's score, ours beside the paper's, and each side's best."""
    head = "| task | tier | " + " | ".join(f"{NAMES[a]} (ours) | {NAMES[a]} (paper)" for a in ALGS) + " | best (ours) | best (paper) |"
    lines = [head, "|" + "---|" * (4 + 2 * len(ALGS)) ]
    for task, tier in cells:
        ours = {a: results.score(group_key(a, task, tier, centralized=centralized)) for a in ALGS}
        ref = reference.get((task, tier), {})
        row = [TASK_NAMES.get(task, task), TIER_NAMES[tier]]
        for a in ALGS:
            row += [fmt(ours[a]), fmt(ref.get(a))]
        row += [winner({a: ours[a]["mean"] for a in ALGS}), winner({a: ref[a][0] for a in ref}) if ref else "–"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def samplers_table(results: Results) -> list[str]:
    """Table 4: OMAR with each sampler on cooperative navigation, per tier."""
    lines = ["| tier | " + " | ".join(f"OMAR ({name}) ours | paper" for name in SAMPLERS.values()) + " |",
             "|---" * (1 + 2 * len(SAMPLERS)) + "|"]
    for tier in TIERS:
        ref = paper.TABLE4[("cooperative_navigation", tier)]
        row = [TIER_NAMES[tier]]
        for variant in map(sampler_variant, SAMPLERS):
            row += [fmt(results.score(group_key("omar", "cooperative_navigation", tier, variant))), fmt(ref[variant])]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def centralized_table(results: Results) -> list[str]:
    """Table 5: each method with centralized critics, one row per tier and method, ours per task."""
    lines = ["The paper gives one row per method and tier without naming the task; ours are per task.", "",
             "| tier | method | " + " | ".join(f"{TASK_NAMES[t]} (ours)" for t in MPE_TASKS) + " | paper |", "|---" * (3 + len(MPE_TASKS)) + "|"]
    for tier in TIERS:
        for a in ALGS:
            ours = [fmt(results.score(group_key(a, t, tier, centralized=True))) for t in MPE_TASKS]
            lines.append(f"| {TIER_NAMES[tier]} | {NAMES[a]} | " + " | ".join(ours) + f" | {fmt(paper.TABLE5[tier][a])} |")
    return lines
