"""The official MPE loop's minibatch reuse against fresh minibatches (``omar reproduce official-reuse``)."""

from __future__ import annotations

from pathlib import Path

from omar_lightning.data.format import TIERS
from omar_lightning.reproduce import paper
from omar_lightning.reproduce.report.common import NAMES, OLD, TASK_NAMES, TIER_NAMES, Results, fmt, group_key
from omar_lightning.reproduce.report.plotting import curves_figure
from omar_lightning.reproduce.studies import STUDIES

REUSE = "minibatches=official_reuse"
METHODS = ("omar", "macql")  # the study's methods, OMAR first as in the tables' columns


def reuse_tasks(results: Results) -> list[str]:
    """The MPE tasks with a run of the official reuse, in the page's task order."""
    return [task for task in STUDIES["official-reuse"].tasks if any(results.runs(group_key(a, task, t, REUSE)) for a in METHODS for t in TIERS)]


def official_reuse_section(results: Results) -> list[str]:
    """Fresh minibatches against the official MPE loop's reuse (``data.minibatches: official_reuse``),
    one table per task that has a reuse run."""
    out = ["The official MPE loop rebuilds the evaluation environment at every evaluation (every 10 updates), which "
           "calls `np.random.seed(seed + 100)`, and its replay buffer draws the minibatches from that global RNG: updates "
           "0-9, 10-19, 20-29, ... train on the same ten minibatches per agent, about 10,200 distinct transitions of the 1M "
           "(HalfCheetah was not affected). The paper's MPE numbers were made this way. `data.minibatches: official_reuse` "
           "reproduces it in our stream (the `data.reuse_period` = 10 minibatches of the first period repeated in every "
           "period, per agent); the default, `fresh`, draws new minibatches at every update. The study runs cooperative "
           "navigation; `--tasks predator_prey world` the others. Normalized scores:", ""]
    tasks = reuse_tasks(results)
    if not tasks:
        return out + ["not run", ""]
    for task in tasks:
        out += [f"{TASK_NAMES[task]}:", "",
                "| tier | OMAR fresh | OMAR official reuse | MA-CQL fresh | MA-CQL official reuse | OMAR − MA-CQL, fresh | OMAR − MA-CQL, official reuse | paper: OMAR | paper: MA-CQL |",
                "|---|---|---|---|---|---|---|---|---|"]
        for tier in TIERS:
            scores = {(a, v): results.score(group_key(a, task, tier, v)) for a in METHODS for v in ("default", REUSE)}
            margins = []
            for v in ("default", REUSE):
                o, c = scores[("omar", v)], scores[("macql", v)]
                margins.append("–" if not (o["n"] and c["n"]) else f"{o['mean'] - c['mean']:+.1f}" + (OLD if o["stale"] or c["stale"] else ""))
            ref = paper.TABLE3[(task, tier)]
            row = [TIER_NAMES[tier]] + [fmt(scores[k]) for k in (("omar", "default"), ("omar", REUSE), ("macql", "default"), ("macql", REUSE))]
            out.append("| " + " | ".join(row + margins + [fmt(ref["omar"]), fmt(ref["macql"])]) + " |")
        out.append("")
    return out


def official_reuse_figure(results: Results, path: Path) -> bool:
    """Learning curves of both methods with fresh and reused minibatches, on every tier of the tasks with a reuse run."""
    lines = [(f"{NAMES[a]} ({label})", group_key(a, "{task}", "{tier}", v)) for a in METHODS for v, label in (("default", "fresh"), (REUSE, "official reuse"))]
    tasks = reuse_tasks(results)
    if not tasks:
        return False
    return curves_figure(results, path, [(task, t) for task in tasks for t in TIERS], lines, "Fresh minibatches against the official loop's reuse")
