"""Section 3.1 on its own Spread (1-D actions on a line, ``cooperative_navigation_line_n*``): Figure
1b's final scores, Figure 1d's action search, and what the page says where a study has not run.
The line's agent-count and actor-learning-rate tables are ``agents.py``'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.plots import pyplot
from omar_lightning.reproduce import paper
from omar_lightning.reproduce.report.common import NAMES, OLD, Results, cell_of, fmt, group_key
from omar_lightning.reproduce.report.plotting import finish, style_panel
from omar_lightning.reproduce.studies import STUDIES, line_spread
from omar_lightning.reproduce.summary import update_version
from omar_lightning.update_version import UPDATE_VERSION

LINE_DATA = "the line's medium-replay datasets, docs/datasets.md, \"Spread on a line\""


def not_run_yet(study: str) -> list[str]:
    return [f"Not run yet: `omar reproduce {study}` (it needs {LINE_DATA}).", ""]


def has_run(results: Results, study: str) -> bool:
    """Whether any cell of ``study`` has a summary."""
    return any(results.runs(cell.key.rsplit("/seed_", 1)[0]) for cell in STUDIES[study].cells([0]))


def paper_says(quotes: tuple[str, ...], what: str) -> list[str]:
    """The paper's words on a figure it gives without numbers (``what``: "Figure 1(b) is a plot")."""
    return [f"Paper ({what} without printed numbers; its text): " + " ".join(f"\"{q}\"" for q in quotes), ""]


def line_curves_section(results: Results) -> list[str]:
    """Figure 1b on the line: the three methods' final scores (the curves are the figure)."""
    task = line_spread(2)
    out = paper_says(paper.FIGURE1B, "Figure 1(b) is a plot")
    if not has_run(results, "line-curves"):
        return out + not_run_yet("line-curves")
    out += ["The score of each run (its last 10 evaluations), mean ± std over seeds; the paper's MA-CQL return on its dataset "
            "is Table 1's default.", "", "| method | return (ours) | normalized score (ours) | return (paper) |", "|---|---|---|---|"]
    for a in STUDIES["line-curves"].algorithms:
        key = group_key(a, task, "medium_replay")
        ref = fmt(paper.TABLE1_ACTOR_LR[0.01]) + " (Table 1)" if a == "macql" else "–"
        out.append(f"| {NAMES[a]} | {fmt(results.score(key, 'return'), 2)} | {fmt(results.score(key))} | {ref} |")
    return out + [""]


def line_landscape_run(results: Results) -> dict[str, Any] | None:
    """The line's Figure 1d run: of the study's finished seeds, the one whose chosen step has the
    largest gap between the MA-CQL-updated and the OMAR-updated action (the lowest seed among equal ones)."""
    runs = results.runs(group_key("macql", line_spread(2), "medium_replay", analysis="landscape_1d"))
    return max(runs, key=lambda s: s["landscape_1d"]["gap"]) if runs else None  # runs are in seed order; max keeps the first


LINE_LANDSCAPE_RULE = (
    "How the step and the observation are chosen (`omar_lightning/reproduce/landscape.py`, `most_different`): the MA-CQL "
    "run keeps every periodic checkpoint (every 200 updates). From each, one MA-CQL actor update and one OMAR actor update "
    "(tau and sampler of OMAR's cell for this dataset; MA-CQL's weights and actor optimizer state; the same refinement draws) "
    "are made on the minibatch that the run's next update draws there, and both updated actors act on that minibatch's "
    "observations. The figure shows the checkpoint, agent and minibatch row where the two updated actions lie furthest apart "
    "(the earliest checkpoint, then the lowest agent and row, among equal ones) and, of the study's seeds, the run whose "
    "largest gap is largest. Q1 is the checkpoint's critic in evaluation mode, over 201 actions evenly spaced in [-1, 1]."
)


def line_landscape_section(results: Results) -> list[str]:
    out = paper_says(paper.FIGURE1D, "Figure 1(d) is a plot") + [LINE_LANDSCAPE_RULE, ""]
    run = line_landscape_run(results)
    if run is None:
        return out + not_run_yet("line-landscape")
    d = run["landscape_1d"]
    seeds = [s["cell"]["seed"] for s in results.runs(cell_of(run))]
    out += [f"Seed {run['cell']['seed']} (of seeds {', '.join(map(str, seeds))}), checkpoint `{d['checkpoint']}`, agent {d['agent']}, row "
            f"{d['minibatch_row']} of that update's minibatch (dataset row {d['dataset_row']:,}): pi(o) = {d['before']:.4f} "
            f"(Q1 {d['q1_before']:.3f}) moves to {d['after_macql']:.4f} (Q1 {d['q1_after_macql']:.3f}) with an MA-CQL actor update "
            f"and to {d['after_omar']:.4f} (Q1 {d['q1_after_omar']:.3f}) with an OMAR update (tau {d['omar_tau']}); the two lie "
            f"{d['gap']:.4f} apart. Q1's maximum on the grid is {d['q1_argmax']:.3f} at {d['argmax']:.2f}."
            + (OLD if update_version(run) != UPDATE_VERSION else ""), "",
            "Largest and mean distance between the two updated actions over the minibatch, per checkpoint of that run:", "",
            "| checkpoint (updates) | " + " | ".join(f"{c['updates']:,}" for c in d["search"]) + " |", "|---" * (len(d["search"]) + 1) + "|",
            "| largest | " + " | ".join(f"{c['largest_gap']:.4f}" for c in d["search"]) + " |",
            "| mean | " + " | ".join(f"{c['mean_gap']:.4f}" for c in d["search"]) + " |", ""]
    return out


def line_landscape_figure(run: dict[str, Any], path: Path) -> None:
    """Q1 over the agent's action at the chosen observation, the three actions on it (the
    paper's red circle, green triangle and blue square), a zoom around them, and the search."""
    d = run["landscape_1d"]
    plt = pyplot()
    xs, q = np.array(d["actions"]), np.array(d["q1"])
    marks = [(d["before"], d["q1_before"], "o", "red", "pi(o) before the update"),
             (d["after_macql"], d["q1_after_macql"], "^", "green", "after an MA-CQL update"),
             (d["after_omar"], d["q1_after_omar"], "s", "blue", "after an OMAR update")]
    fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.4), gridspec_kw={"width_ratios": [3, 2, 2]})
    ax, zoom, search = axes
    for panel in (ax, zoom):
        panel.plot(xs, q, color="black", linewidth=1.0, label="Q1(o, a)")
        for x, y, style, colour, label in marks:
            panel.plot(x, y, style, color=colour, markersize=8, label=label, linestyle="none")
    ax.plot(d["argmax"], d["q1_argmax"], "*", color="gold", markeredgecolor="black", markersize=11, label="argmax of Q1 on the grid", linestyle="none")
    at = np.array([m[0] for m in marks])
    half = max(0.01, 1.5 * float(np.abs(at - at[0]).max()))
    inside = np.abs(xs - at[0]) <= half
    zoom.set_xlim(at[0] - half, at[0] + half)
    if inside.any():
        values = np.concatenate([q[inside], [m[1] for m in marks]])
        pad = max(1e-3, 0.1 * float(values.max() - values.min()))
        zoom.set_ylim(values.min() - pad, values.max() + pad)
    style_panel(ax, f"Q1 of agent {d['agent']}, update {d['updates']:,} (seed {run['cell']['seed']})", "action", "Q1")
    style_panel(zoom, "around pi(o)", "action", "Q1")
    updates = [c["updates"] for c in d["search"]]
    search.bar(range(len(updates)), [c["largest_gap"] for c in d["search"]], color=["tab:orange" if u == d["updates"] else "tab:gray" for u in updates],
               label="largest over the minibatch")
    search.plot(range(len(updates)), [c["mean_gap"] for c in d["search"]], "k.", label="mean over the minibatch")
    search.set_xticks(range(len(updates)), [f"{u:,}" for u in updates], rotation=60)
    style_panel(search, "|MA-CQL-updated - OMAR-updated action|", "checkpoint (updates)", "distance")
    finish(fig, "Figure 1d on the line: 2-agent Spread with 1-D actions, medium-replay", path)
