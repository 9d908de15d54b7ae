"""Section 3's studies on medium-replay of a spread task: the agent count (Figures 1c and 2) and
MA-CQL's actor learning rate and updates (Tables 1 and 2), for mpe2's 2-D spread and the line."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from omar_lightning.plots import pyplot
from omar_lightning.plots import save_figure
from omar_lightning.reproduce import paper
from omar_lightning.reproduce.report.common import OLD, Results, fmt, group_key
from omar_lightning.reproduce.studies import ACTOR_LRS, ACTOR_UPDATES, AGENT_COUNTS, spread


def agents_rows(results: Results, task_of: Callable[[int], str] = spread) -> list[dict[str, Any]]:
    """Per agent count N: the returns of MA-CQL and OMAR on ``task_of(N)`` medium-replay, the
    dataset's behaviour return and the improvements of Figures 1c and 2."""
    rows = []
    for n in AGENT_COUNTS:
        task = task_of(n)
        cql = results.score(group_key("macql", task, "medium_replay"), "return")
        omar = results.score(group_key("omar", task, "medium_replay"), "return")
        runs = results.runs(group_key("macql", task, "medium_replay")) or results.runs(group_key("omar", task, "medium_replay"))
        behaviour = runs[0]["dataset"]["behaviour_return"] if runs else None
        pct = lambda a, b: None if a["n"] == 0 or b is None or b == 0 else 100.0 * (a["mean"] - b) / abs(b)  # noqa: E731
        row = {"n": n, "macql": cql, "omar": omar, "behaviour": behaviour, "stale": cql["stale"] or omar["stale"],
               "macql_vs_behaviour": pct(cql, behaviour), "omar_vs_macql": None if cql["n"] == 0 else pct(omar, cql["mean"])}
        # Spread over seeds, to first order: the behaviour return is one number (the dataset's
        # mean); OMAR over MA-CQL carries both methods' relative spreads.
        row["macql_vs_behaviour_std"] = None if row["macql_vs_behaviour"] is None else 100.0 * cql["std"] / abs(behaviour)
        row["omar_vs_macql_std"] = None if row["omar_vs_macql"] is None else (
            100.0 * math.hypot(omar["std"], omar["mean"] * cql["std"] / cql["mean"]) / abs(cql["mean"]))
        rows.append(row)
    return rows


def agents_table(results: Results, task_of: Callable[[int], str], name: str) -> list[str]:
    """The agent-count study's table (returns, Figures 1c and 2) on ``task_of(N)`` medium-replay."""
    out = [f"Returns (not normalized) on {name} medium-replay; improvement = 100 * (ours - reference) / |reference|, "
           "+- its spread over seeds to first order (the behaviour return is the dataset's mean; OMAR over MA-CQL "
           "carries the relative std of both methods).", "",
           "| agents | behaviour (dataset mean) | MA-CQL return | OMAR return | MA-CQL over behaviour (Fig. 1c) | OMAR over MA-CQL (Fig. 2) |", "|---|---|---|---|---|---|"]
    for r in agents_rows(results, task_of):
        pct = lambda v, sd: "–" if v is None else f"{v:+.1f} ± {sd:.1f}%"  # noqa: E731
        behaviour = "–" if r["behaviour"] is None else f"{r['behaviour']:.2f}"
        old = OLD if r["stale"] else ""
        out.append(f"| {r['n']} | {behaviour} | {fmt(r['macql'], 2)} | {fmt(r['omar'], 2)} | "
                   f"{pct(r['macql_vs_behaviour'], r['macql_vs_behaviour_std'])}{old if r['macql_vs_behaviour'] is not None else ''} | "
                   f"{pct(r['omar_vs_macql'], r['omar_vs_macql_std'])}{old if r['omar_vs_macql'] is not None else ''} |")
    return out


def agents_figure(results: Results, path: Path, task_of: Callable[[int], str] = spread, heading: str | None = None) -> bool:
    """Figures 1c and 2 as bars over the agent count (False, and no file, before any run)."""
    plt = pyplot()

    rows = agents_rows(results, task_of)
    if not any(r["macql_vs_behaviour"] is not None or r["omar_vs_macql"] is not None for r in rows):
        return False
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, field, title in ((axes[0], "macql_vs_behaviour", "Fig. 1c: MA-CQL over the behaviour policy"), (axes[1], "omar_vs_macql", "Fig. 2: OMAR over MA-CQL")):
        pts = [(r["n"], r[field], r[field + "_std"]) for r in rows if r[field] is not None]
        ax.bar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], capsize=3,
               color="tab:blue" if field == "macql_vs_behaviour" else "tab:green")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(list(AGENT_COUNTS))
        ax.set_xlabel("number of agents", fontsize=8)
        ax.set_ylabel("improvement of the return (%)", fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    if heading:
        fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def actor_lr_tables(results: Results, task: str) -> list[str]:
    """Tables 1 and 2: MA-CQL's return on ``task`` medium-replay per actor learning rate and per
    number of actor updates, beside the paper's."""
    out = ["| actor learning rate | ours | paper |", "|---|---|---|"]
    for lr in ACTOR_LRS:
        out.append(f"| {lr} | {fmt(results.score(group_key('macql', task, 'medium_replay', 'default' if lr == 0.01 else f'actor_lr={lr}'), 'return'), 2)} | {fmt(paper.TABLE1_ACTOR_LR[lr])} |")
    out += ["", "| actor updates per update | ours | paper |", "|---|---|---|"]
    for n in ACTOR_UPDATES:
        out.append(f"| {n} | {fmt(results.score(group_key('macql', task, 'medium_replay', 'default' if n == 1 else f'actor_updates={n}'), 'return'), 2)} | {fmt(paper.TABLE2_ACTOR_UPDATES[n])} |")
    return out
