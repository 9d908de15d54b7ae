"""``omar report``: docs/results.md and its figures, rebuilt from the run summaries alone.

Deterministic: the same summaries give the same page (cells, seeds and rows in a fixed order,
numbers rounded, no dates). A hand-written ``notes.md`` in the results directory, where our
results depart from the paper and why, is included verbatim.

Versions of the training update (``omar_lightning/update_version.py``) are never mixed: a cell
(all seeds of one config and overrides) shows only the seeds of the newest version among its
summaries, the older ones are left out and counted at the top of the page, and every number
made by an older version than the current one is marked ``†`` (``omar reproduce`` reruns
those cells).

Under Tables 3, 5 and 6 the page adds aggregate statistics (IQM, optimality gap, probability of
improvement, performance profiles with stratified-bootstrap intervals) of the current update
version's runs, per tier and over all tiers; the statistics are ``aggregate.py``'s. Under Tables 3
and 6, each cell where every method has two current seeds is compared with the paper's (winner,
ordering, OMAR's margin with Welch intervals; ``agreement.py``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.plots import pyplot as _pyplot
from omar_lightning.plots import save_figure as _save
from omar_lightning.reproduce import aggregate as agg
from omar_lightning.reproduce import agreement
from omar_lightning.reproduce import paper
from omar_lightning.data.format import REGENERATION_TOLERANCE, TIERS
from omar_lightning.reproduce.studies import ACTOR_LRS, ACTOR_UPDATES, AGENT_COUNTS, MPE_TASKS, STUDIES, TAUS, line_spread, spread, variant_name
from omar_lightning.reproduce.summary import LAST_EVALUATIONS, aggregate, is_current, load_summaries, update_version
from omar_lightning.update_version import UPDATE_VERSION

NAMES = {"maicq": "MA-ICQ", "matd3bc": "MA-TD3+BC", "macql": "MA-CQL", "omar": "OMAR", "bc": "BC"}
TASK_NAMES = {"cooperative_navigation": "Cooperative navigation", "predator_prey": "Predator-prey", "world": "World", "halfcheetah_2x3": "HalfCheetah 2x3",
              **{line_spread(n): f"Spread on a line, {n} agent{'s' if n > 1 else ''}" for n in AGENT_COUNTS}}
TIER_NAMES = {"random": "Random", "medium_replay": "Medium-replay", "medium": "Medium", "expert": "Expert"}
ALGS = ("maicq", "matd3bc", "macql", "omar")
OLD = " †"  # marks a number made by an older version of the training update


def _group(summary: dict[str, Any]) -> str:
    return summary["key"].rsplit("/seed_", 1)[0]


def group_key(algorithm: str, task: str, tier: str, variant: str = "default", centralized: bool = False, analysis: str | None = None) -> str:
    return f"{algorithm}/{task}/{tier}{'_centralized' if centralized else ''}/{variant}{'+' + analysis if analysis else ''}"


class Results:
    """Summaries grouped by cell (all seeds of one config and overrides), each cell holding only
    the seeds of the newest update version among its summaries."""

    def __init__(self, summaries: list[dict[str, Any]]) -> None:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for s in summaries:
            grouped[_group(s)].append(s)
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
    if agg is None:
        return "–"
    if isinstance(agg, tuple):
        return f"{agg[0]:.{digits}f} ± {agg[1]:.{digits}f}"
    if agg["n"] == 0:
        return "not run"
    return f"{agg['mean']:.{digits}f} ± {agg['std']:.{digits}f} ({agg['n']})" + (OLD if agg.get("stale") else "")


def _winner(values: dict[str, float]) -> str:
    finite = {k: v for k, v in values.items() if v is not None and not math.isnan(v)}
    if not finite:
        return "–"
    best = max(finite, key=finite.get)
    return NAMES.get(best, best)


def _table_rows(results: Results, cells: list[tuple[str, str]], reference: dict, centralized: bool = False) -> list[str]:
    head = "| task | tier | " + " | ".join(f"{NAMES[a]} (ours) | {NAMES[a]} (paper)" for a in ALGS) + " | best (ours) | best (paper) |"
    lines = [head, "|" + "---|" * (4 + 2 * len(ALGS)) ]
    for task, tier in cells:
        ours = {a: results.score(group_key(a, task, tier, centralized=centralized)) for a in ALGS}
        ref = reference.get((task, tier), {})
        row = [TASK_NAMES.get(task, task), TIER_NAMES[tier]]
        for a in ALGS:
            row += [fmt(ours[a]), fmt(ref.get(a))]
        row += [_winner({a: ours[a]["mean"] for a in ALGS}), _winner({a: ref[a][0] for a in ref}) if ref else "–"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _curves_figure(results: Results, path: Path, panels: list[tuple[str, str]], lines: list[tuple[str, str]], title: str,
                   field: str = "normalized_score") -> bool:
    """One panel per (task, tier); per line (label, group key template with {task} and {tier}):
    the mean over seeds of the curve's ``field`` (normalized score or return) vs updates, shaded
    between the seeds' min and max."""
    plt = _pyplot()

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
            _style_panel(ax, f"{TASK_NAMES.get(task, task)}, {TIER_NAMES[tier]}", "updates", field.replace("_", " "))
    _finish(fig, title, path)
    return True


def _style_panel(ax: Any, title: str, xlabel: str, ylabel: str, ylabel_size: int = 8) -> None:
    """The panels' common look: title, axis labels, small ticks, a light grid and the legend."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=ylabel_size)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a panel without a run has no legend
        ax.legend(fontsize=6)


def _finish(fig: Any, title: str, path: Path) -> None:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _agents_figure(results: Results, path: Path, task_of: Any = spread, heading: str | None = None) -> bool:
    plt = _pyplot()

    rows = _agents_rows(results, task_of)
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
    _save(fig, path)
    return True


def _agents_rows(results: Results, task_of: Any = spread) -> list[dict[str, Any]]:
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


def _tau_figure(results: Results, path: Path) -> bool:
    plt = _pyplot()

    table = _tau_table(results)
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
    _save(fig, path)
    return True


def _tau_table(results: Results) -> dict[str, dict[float, dict[str, float]]]:
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


def _landscape_run(results: Results) -> dict[str, Any] | None:
    """The first seed's run of the landscape study, if it ran."""
    runs = results.runs(group_key("macql", spread(2), "medium_replay", analysis="landscape"))
    return runs[0] if runs else None


def _landscape_figure(run: dict[str, Any], path: Path) -> None:
    data = run["landscape"]
    plt = _pyplot()

    axis, q = np.array(data["axis"]), np.array(data["q1"])
    fig, ax = plt.subplots(figsize=(5.0, 4.8))
    mesh = ax.pcolormesh(axis, axis, q, shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="Q1")
    ax.plot(*data["before"], "o", color="red", markersize=9, label="pi(o) before the update")
    ax.plot(*data["after_macql"], "^", color="lime", markersize=9, label="after an MA-CQL update")
    ax.plot(*data["after_omar"], "s", color="blue", markersize=8, label="after an OMAR update")
    ax.plot(*data["argmax"], "*", color="white", markeredgecolor="black", markersize=11, label="argmax of Q1 on the grid")
    # One actor step moves the action little: a zoomed inset around the three markers shows where.
    pts = np.array([data["before"], data["after_macql"], data["after_omar"]])
    half = max(0.02, 1.5 * float(np.abs(pts - pts[0]).max()))
    inset = ax.inset_axes([0.58, 0.06, 0.38, 0.38])
    inset.pcolormesh(axis, axis, q, shading="gouraud", cmap="viridis")
    for (x, y), style, colour in zip(pts, ("o", "^", "s"), ("red", "lime", "blue")):
        inset.plot(x, y, style, color=colour, markersize=6)
    inset.set_xlim(pts[0][0] - half, pts[0][0] + half)
    inset.set_ylim(pts[0][1] - half, pts[0][1] + half)
    inset.tick_params(labelsize=5)
    ax.indicate_inset_zoom(inset, edgecolor="white")
    ax.set_xlabel("action x", fontsize=8)
    ax.set_ylabel("action y", fontsize=8)
    ax.set_title(f"Q1 of agent {data['agent']}, 2-agent spread medium-replay (seed {run['cell']['seed']})", fontsize=8)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2)
    fig.tight_layout()
    _save(fig, path)



def _agents_table(results: Results, task_of: Any, name: str) -> list[str]:
    """The agent-count study's table (returns, Figures 1c and 2) on ``task_of(N)`` medium-replay."""
    out = [f"Returns (not normalized) on {name} medium-replay; improvement = 100 * (ours - reference) / |reference|, "
           "+- its spread over seeds to first order (the behaviour return is the dataset's mean; OMAR over MA-CQL "
           "carries the relative std of both methods).", "",
           "| agents | behaviour (dataset mean) | MA-CQL return | OMAR return | MA-CQL over behaviour (Fig. 1c) | OMAR over MA-CQL (Fig. 2) |", "|---|---|---|---|---|---|"]
    for r in _agents_rows(results, task_of):
        pct = lambda v, sd: "–" if v is None else f"{v:+.1f} ± {sd:.1f}%"  # noqa: E731
        behaviour = "–" if r["behaviour"] is None else f"{r['behaviour']:.2f}"
        old = OLD if r["stale"] else ""
        out.append(f"| {r['n']} | {behaviour} | {fmt(r['macql'], 2)} | {fmt(r['omar'], 2)} | "
                   f"{pct(r['macql_vs_behaviour'], r['macql_vs_behaviour_std'])}{old if r['macql_vs_behaviour'] is not None else ''} | "
                   f"{pct(r['omar_vs_macql'], r['omar_vs_macql_std'])}{old if r['omar_vs_macql'] is not None else ''} |")
    return out


def _actor_lr_tables(results: Results, task: str) -> list[str]:
    """Tables 1 and 2: MA-CQL's return on ``task`` medium-replay per actor learning rate and per
    number of actor updates, beside the paper's."""
    out = ["| actor learning rate | ours | paper |", "|---|---|---|"]
    for lr in ACTOR_LRS:
        out.append(f"| {lr} | {fmt(results.score(group_key('macql', task, 'medium_replay', 'default' if lr == 0.01 else f'actor_lr={lr}'), 'return'), 2)} | {fmt(paper.TABLE1_ACTOR_LR[lr])} |")
    out += ["", "| actor updates per update | ours | paper |", "|---|---|---|"]
    for n in ACTOR_UPDATES:
        out.append(f"| {n} | {fmt(results.score(group_key('macql', task, 'medium_replay', 'default' if n == 1 else f'actor_updates={n}'), 'return'), 2)} | {fmt(paper.TABLE2_ACTOR_UPDATES[n])} |")
    return out


# Section 3.1 on its own Spread (1-D actions on a line): what the page says where a study has not run.
LINE_DATA = "the line's medium-replay datasets, docs/datasets.md, \"Spread on a line\""


def _not_run_yet(study: str) -> list[str]:
    return [f"Not run yet: `omar reproduce {study}` (it needs {LINE_DATA}).", ""]


def _has_run(results: Results, study: str) -> bool:
    """Whether any cell of ``study`` has a summary."""
    return any(results.runs(cell.key.rsplit("/seed_", 1)[0]) for cell in STUDIES[study].cells([0]))


def _paper_says(quotes: tuple[str, ...], what: str) -> list[str]:
    """The paper's words on a figure it gives without numbers (``what``: "Figure 1(b) is a plot")."""
    return [f"Paper ({what} without printed numbers; its text): " + " ".join(f"\"{q}\"" for q in quotes), ""]


def _line_curves_section(results: Results) -> list[str]:
    """Figure 1b on the line: the three methods' final scores (the curves are the figure)."""
    task = line_spread(2)
    out = _paper_says(paper.FIGURE1B, "Figure 1(b) is a plot")
    if not _has_run(results, "line-curves"):
        return out + _not_run_yet("line-curves")
    out += ["The score of each run (its last 10 evaluations), mean ± std over seeds; the paper's MA-CQL return on its dataset "
            "is Table 1's default.", "", "| method | return (ours) | normalized score (ours) | return (paper) |", "|---|---|---|---|"]
    for a in STUDIES["line-curves"].algorithms:
        key = group_key(a, task, "medium_replay")
        ref = fmt(paper.TABLE1_ACTOR_LR[0.01]) + " (Table 1)" if a == "macql" else "–"
        out.append(f"| {NAMES[a]} | {fmt(results.score(key, 'return'), 2)} | {fmt(results.score(key))} | {ref} |")
    return out + [""]


def _line_landscape_run(results: Results) -> dict[str, Any] | None:
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


def _line_landscape_section(results: Results) -> list[str]:
    out = _paper_says(paper.FIGURE1D, "Figure 1(d) is a plot") + [LINE_LANDSCAPE_RULE, ""]
    run = _line_landscape_run(results)
    if run is None:
        return out + _not_run_yet("line-landscape")
    d = run["landscape_1d"]
    seeds = [s["cell"]["seed"] for s in results.runs(_group(run))]
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


def _line_landscape_figure(run: dict[str, Any], path: Path) -> None:
    """Q1 over the agent's action at the chosen observation, the three actions on it (the
    paper's red circle, green triangle and blue square), a zoom around them, and the search."""
    d = run["landscape_1d"]
    plt = _pyplot()
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
    _style_panel(ax, f"Q1 of agent {d['agent']}, update {d['updates']:,} (seed {run['cell']['seed']})", "action", "Q1")
    _style_panel(zoom, "around pi(o)", "action", "Q1")
    updates = [c["updates"] for c in d["search"]]
    search.bar(range(len(updates)), [c["largest_gap"] for c in d["search"]], color=["tab:orange" if u == d["updates"] else "tab:gray" for u in updates],
               label="largest over the minibatch")
    search.plot(range(len(updates)), [c["mean_gap"] for c in d["search"]], "k.", label="mean over the minibatch")
    search.set_xticks(range(len(updates)), [f"{u:,}" for u in updates], rotation=60)
    _style_panel(search, "|MA-CQL-updated - OMAR-updated action|", "checkpoint (updates)", "distance")
    _finish(fig, "Figure 1d on the line: 2-agent Spread with 1-D actions, medium-replay", path)

def _costs(results: Results) -> list[str]:
    rows = defaultdict(list)
    for runs in results.groups.values():
        for s in runs:
            c = s["cell"]
            rows[(c["algorithm"], variant_name(c.get("variant", {}).items()), c["task"], s["max_updates"], s.get("threads", 0), update_version(s))].append(s["wall_seconds"])
    lines = ["| algorithm | variant | task | updates | threads per run | update version | runs | wall seconds per run (mean) |", "|---|---|---|---|---|---|---|---|"]
    for (alg, variant, task, updates, threads, version), secs in sorted(rows.items()):
        lines.append(f"| {NAMES.get(alg, alg)} | {variant} | {task} | {updates:,} | {threads or 'all'} | {version} | {len(secs)} | {np.mean(secs):.0f} |")
    return lines


def _datasets(results: Results) -> list[str]:
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


REUSE = "minibatches=official_reuse"


def _official_reuse_section(results: Results) -> list[str]:
    """Fresh minibatches against the official MPE loop's reuse (``data.minibatches: official_reuse``)."""
    out = ["The official MPE loop rebuilds the evaluation environment at every evaluation (every 10 updates), which "
           "calls `np.random.seed(seed + 100)`, and its replay buffer draws the minibatches from that global RNG: updates "
           "0-9, 10-19, 20-29, ... train on the same ten minibatches per agent, about 10,200 distinct transitions of the 1M "
           "(HalfCheetah was not affected). The paper's MPE numbers were made this way. `data.minibatches: official_reuse` "
           "reproduces it in our stream (the `data.reuse_period` = 10 minibatches of the first period repeated in every "
           "period, per agent); the default, `fresh`, draws new minibatches at every update. Normalized scores:", ""]
    task = "cooperative_navigation"
    if not any(results.runs(group_key(a, task, t, REUSE)) for a in ("omar", "macql") for t in TIERS):
        return out + ["not run", ""]
    out += ["| tier | OMAR fresh | OMAR official reuse | MA-CQL fresh | MA-CQL official reuse | OMAR − MA-CQL, fresh | OMAR − MA-CQL, official reuse | paper: OMAR | paper: MA-CQL |",
            "|---|---|---|---|---|---|---|---|---|"]
    for tier in TIERS:
        scores = {(a, v): results.score(group_key(a, task, tier, v)) for a in ("omar", "macql") for v in ("default", REUSE)}
        margins = []
        for v in ("default", REUSE):
            o, c = scores[("omar", v)], scores[("macql", v)]
            margins.append("–" if not (o["n"] and c["n"]) else f"{o['mean'] - c['mean']:+.1f}" + (OLD if o["stale"] or c["stale"] else ""))
        ref = paper.TABLE3[(task, tier)]
        row = [TIER_NAMES[tier]] + [fmt(scores[k]) for k in (("omar", "default"), ("omar", REUSE), ("macql", "default"), ("macql", REUSE))]
        out.append("| " + " | ".join(row + margins + [fmt(ref["omar"]), fmt(ref["macql"])]) + " |")
    out.append("")
    return out


def _official_reuse_figure(results: Results, path: Path) -> bool:
    lines = [(f"{NAMES[a]} ({label})", group_key(a, "{task}", "{tier}", v)) for a in ("omar", "macql") for v, label in (("default", "fresh"), (REUSE, "official reuse"))]
    if not any(results.runs(group_key(a, "cooperative_navigation", t, REUSE)) for a in ("omar", "macql") for t in TIERS):
        return False
    return _curves_figure(results, path, [("cooperative_navigation", t) for t in TIERS], lines, "Fresh minibatches against the official loop's reuse")


# Aggregate statistics (omar_lightning/reproduce/aggregate.py) of a study's grid: per tier over
# the study's tasks on it, per task over its tiers (studies of several tasks), and over all its
# (task, tier) datasets (always the last scope).
ALL_TIERS = "All tiers"
OF_TASK = ", all tiers"  # a task's scope: its name and this
REFERENCE = "omar"  # the method whose probability of improvement over each other method is shown


def _aggregate_scopes(tasks: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    per_tier = [(TIER_NAMES[tier], [(task, tier) for task in tasks]) for tier in TIERS]
    per_task = [(TASK_NAMES.get(task, task) + OF_TASK, [(task, tier) for tier in TIERS]) for task in tasks] if len(tasks) > 1 else []
    return per_tier + per_task + [(ALL_TIERS, [(task, tier) for tier in TIERS for task in tasks])]


def _current_scores(results: Results, algorithm: str, task: str, tier: str, centralized: bool) -> dict[int, float]:
    """Seed -> normalized score of the cell's runs of the current update version."""
    return {s["cell"]["seed"]: float(s["score"]["normalized_score"]) for s in results.runs(group_key(algorithm, task, tier, centralized=centralized)) if is_current(s)}


def _aggregates(results: Results, tasks: tuple[str, ...], centralized: bool) -> list[dict[str, Any]]:
    """Per scope: its name, datasets and each method's complete matrix (``agg.Matrix``)."""
    return [{"scope": name, "cells": cells,
             "matrices": {a: agg.complete_matrix([_current_scores(results, a, t, r, centralized) for t, r in cells]) for a in ALGS}}
            for name, cells in _aggregate_scopes(tasks)]


def _dataset_name(cell: tuple[str, str], scope: str) -> str:
    """A dataset as a scope's row names it: the task in a tier's scope, the tier in a task's, both under all tiers."""
    task, tier = cell
    if scope.endswith(OF_TASK):
        return TIER_NAMES[tier]
    return TASK_NAMES.get(task, task) + (f" {TIER_NAMES[tier].lower()}" if scope == ALL_TIERS else "")


def _missing_names(missing: list[tuple[str, str]], cells: list[tuple[str, str]], scope: str) -> str:
    """The datasets without a run; under all tiers, a tier none of whose tasks has one by its name."""
    parts = []
    for tier in dict.fromkeys(r for _, r in cells):
        of_tier = [c for c in missing if c[1] == tier]
        whole = scope == ALL_TIERS and len(of_tier) == sum(r == tier for _, r in cells)
        parts += [f"{TIER_NAMES[tier].lower()} (every task)"] if whole else [_dataset_name(c, scope) for c in of_tier]
    return ", ".join(parts)


def _estimate(e: agg.Estimate, digits: int) -> str:
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def _aggregate_rows(scopes: list[dict[str, Any]]) -> list[str]:
    out = [f"| scope | method | runs × tasks | IQM [95% CI] | optimality gap [95% CI] | P({NAMES[REFERENCE]} > method) [95% CI] | not included |",
           "|---|---|---|---|---|---|---|"]
    for scope in scopes:
        name, cells, matrices = scope["scope"], scope["cells"], scope["matrices"]
        reference = matrices[REFERENCE].scores
        for a in ALGS:
            m = matrices[a]
            if m.missing:
                absent = "any of its tasks" if len(m.missing) == len(cells) else f"{len(m.missing)} of {len(cells)} tasks: " + _missing_names([cells[t] for t in m.missing], cells, name)
                out.append(f"| {name} | {NAMES[a]} | – | – | – | – | no current run on {absent} |")
                continue
            left = "; ".join(f"seed {s} on {_dataset_name(cells[t], name)}" for t, s in m.left_out)
            left = f"not on every task: {left}" if left else "none"
            if m.scores is None:
                out.append(f"| {name} | {NAMES[a]} | – | – | – | – | no seed on every task; {left} |")
                continue
            stats = agg.iqm_and_optimality_gap(m.scores)
            poi = "–" if a == REFERENCE or reference is None else _estimate(agg.improvement(reference, m.scores), 2)
            out.append(f"| {name} | {NAMES[a]} | {m.scores.shape[0]} × {m.scores.shape[1]} | {_estimate(stats['iqm'], 1)} | "
                       f"{_estimate(stats['optimality_gap'], 1)} | {poi} | {left} |")
    return out


def _profiles_figure(scopes: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Performance profiles, one panel per scope with a complete matrix of any method: the
    fraction of run x task normalized scores above tau, with its 95% bootstrap band."""
    present = [s for s in scopes if any(m.scores is not None for m in s["matrices"].values())]
    if not present:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(present), figsize=(max(6.0, 3.2 * len(present)), 3.0), squeeze=False)
    taus = agg.PROFILE_THRESHOLDS
    for ax, scope in zip(axes[0], present):
        for i, a in enumerate(ALGS):
            m = scope["matrices"][a]
            if m.scores is None:
                continue
            profile, band = agg.performance_profile(m.scores)
            ax.plot(taus, profile, color=f"C{i}", linewidth=1.2, label=f"{NAMES[a]} ({m.scores.shape[0]} × {m.scores.shape[1]})")
            ax.fill_between(taus, band[0], band[1], color=f"C{i}", alpha=0.2)
        ax.set_ylim(-0.02, 1.02)
        _style_panel(ax, scope["scope"], "normalized score tau", "fraction of runs with score > tau", ylabel_size=7)
    _finish(fig, title, path)
    return True


def _aggregate_section(results: Results, tasks: tuple[str, ...], centralized: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """The markdown of a study's aggregate statistics and its scopes (for the profiles figure)."""
    out = ["### Aggregate statistics", ""]
    scopes = _aggregates(results, tasks, centralized)
    if not any(_current_scores(results, a, t, r, centralized) for s in scopes[:-1] for a in ALGS for t, r in s["cells"]):
        return out + [f"No run of update version {UPDATE_VERSION} yet: nothing to aggregate.", ""], scopes
    of_task = f"a task's row (\"<task>{OF_TASK}\") takes its {len(TIERS)} tiers; " if len(tasks) > 1 else ""
    out += [f"Normalized scores of the runs of update version {UPDATE_VERSION} (the protocol is under \"How a score is made\"). "
            f"A tier's tasks are the {len(tasks)} above on that tier; {of_task}\"{ALL_TIERS}\" takes all {len(scopes[-1]['cells'])}.", ""]
    return out + _aggregate_rows(scopes) + [""], scopes


AGREEMENT_SEEDS = 2  # current seeds every method of a cell needs before it is compared with the paper


def _agreement_section(results: Results, cells: list[tuple[str, str]], reference: dict, centralized: bool = False) -> list[str]:
    """Per cell, where ours and the paper's agree (``agreement.py``), from the current update version's runs."""
    rows = []
    for task, tier in cells:
        ours = {a: list(_current_scores(results, a, task, tier, centralized).values()) for a in ALGS}
        short = [f"{NAMES[a]} {len(s)}" for a, s in ours.items() if len(s) < AGREEMENT_SEEDS]
        ref = reference.get((task, tier))
        if not ref:
            why = "no paper numbers"
        elif not any(ours.values()):
            why = "not run"
        elif short:
            why = f"needs {AGREEMENT_SEEDS} current seeds of every method (has {', '.join(short)})"
        else:
            why = ""
        rows.append((TASK_NAMES.get(task, task), TIER_NAMES[tier], None if why else agreement.compare(ours, ref, REFERENCE), why))
    if all(c is None for _, _, c, _ in rows):
        return []
    return ["### Agreement with the paper, per cell", "",
            f"Runs of update version {UPDATE_VERSION}, cells where every method has at least {AGREEMENT_SEEDS} seeds "
            "(`omar_lightning/reproduce/agreement.py`): the best method by mean on each side; of the pairs of methods, "
            f"how many both sides' means order alike; {NAMES[REFERENCE]}'s margin over the paper's strongest other method in the "
            "cell (the same baseline on both sides) with 95% Welch intervals, the paper's std taken as a sample std over its 5 seeds; "
            "whether the two margins' intervals overlap; and the methods whose mean's 95% t-interval overlaps the paper's.", ""] + \
        agreement.table(rows, NAMES, REFERENCE) + [""]


def _aggregate_protocol() -> list[str]:
    """The page's lines on how the aggregate statistics are made."""
    taus = agg.PROFILE_THRESHOLDS
    return [
        "- **Aggregate statistics** (under Tables 3, 5 and 6) follow Agarwal et al. (2021), \"Deep RL at the edge of",
        "  the statistical precipice\", computed with the `rliable` package (pinned in constraints.txt), as marl-eval",
        "  and OG-MARL report: *runs* are the seeds, *tasks* are the study's datasets, per tier the study's tasks on",
        f"  that tier, per task (studies of several tasks) its tiers, and under \"{ALL_TIERS}\" every (task, tier) of",
        "  the study. A run's score on a task is its normalized score above (0 = S_random, 100 = S_expert; it can",
        "  fall outside 0..100).",
        "  **IQM**: the mean of the middle 50% of all run × task scores (25% cut from each end).",
        f"  **Optimality gap**: the mean of max(0, {agg.EXPERT:g} − score) over all run × task scores; the threshold is",
        f"  {agg.EXPERT:g}, the expert's normalized score on this 0..100 scale (rliable's default threshold 1 is for 0..1 scores).",
        f"  **P({NAMES[REFERENCE]} > X)**: per task, the probability that a run of {NAMES[REFERENCE]} scores above a run of X, ties",
        "  counting half (Mann-Whitney U / (n_OMAR · n_X)), averaged over the tasks.",
        f"  **Performance profiles** (figures): the fraction of run × task scores above tau, tau = {taus[0]:g}..{taus[-1]:g} in steps",
        f"  of {taus[1] - taus[0]:g}. **95% confidence intervals**: percentile intervals of rliable's stratified bootstrap,",
        f"  {agg.RESAMPLES:,} resamples per estimate; a resample draws the runs again with replacement within each",
        "  task (as many as the method has), the tasks stay fixed; for P(OMAR > X) the runs of both methods are",
        f"  drawn independently. NumPy's global generator (which rliable draws from) is seeded with {agg.BOOTSTRAP_SEED}",
        "  before each estimate, so the same summaries give the same intervals.",
        f"  **Included**: only runs of update version {UPDATE_VERSION}; a method enters a scope only with a run on",
        "  every task of it, and then with the seeds finished on every task (a complete runs × tasks matrix);",
        "  each row names the seeds left out for that reason, or the tasks without a run.",
    ]


def build_page(results_dir: Path, figures: Path | None, page_dir: Path) -> str:
    """The markdown page; figures (when ``figures`` is given) are written and linked relative to ``page_dir``."""
    results = Results(load_summaries(results_dir))
    link = lambda p: p.relative_to(page_dir).as_posix() if p.is_relative_to(page_dir) else p.as_posix()  # noqa: E731
    out = [
        "# Results",
        "",
        "Generated by `omar report` from the run summaries in `results/`; do not edit by hand (edit",
        "`results/notes.md` for the discussion). Every number below comes from `omar reproduce` runs of",
        "the committed configs on datasets made by this project (docs/datasets.md), never from the",
        "paper's datasets, so the paper's numbers are a reference, not a target.",
        "",
        "## How a score is made",
        "",
        f"- **A run's score** is the mean normalized score of its last {LAST_EVALUATIONS} evaluations",
        "  (`omar_lightning/reproduce/summary.py`, `curve_score`). Each evaluation is the mean over the",
        "  data module's evaluation episodes (10 on MPE, seeds 1,000,000..1,000,009, deterministic policies).",
        "  On MPE that covers the last 100 of the run's updates.",
        "- **Normalized score** = 100 * (S - S_random) / (S_expert - S_random), with S_random and S_expert",
        "  taken from the dataset's metadata (listed below).",
        "- **Seeds** are aggregated as mean ± standard deviation over seeds (population std), shown as",
        "  `mean ± std (number of seeds)`. No seed is ever dropped (only runs of an older update version",
        "  than their cell's newest are left out, see below).",
        "- **Best** names the method with the highest mean in that row.",
        "- **Learning curves** start with the evaluation before the first update (update 0), as the",
        "  official loop; it is not part of the score.",
        *results.version_note(),
        *_aggregate_protocol(),
        "",
    ]

    def section(name: str) -> None:
        out.extend([f"## {STUDIES[name].title}", "", f"`omar reproduce {name}`", ""])

    def figure(made: bool, path: Path, caption: str) -> None:
        if made:
            out.extend([f"![{caption}]({link(path)})", ""])

    def aggregates(name: str, tasks: tuple[str, ...], centralized: bool) -> None:
        lines, scopes = _aggregate_section(results, tasks, centralized)
        out.extend(lines)
        if figures:
            path = figures / f"{name}_profiles.png"
            figure(_profiles_figure(scopes, path, f"{STUDIES[name].title.split(':')[0]}: performance profiles (95% bootstrap bands)"), path,
                   f"{STUDIES[name].title.split(':')[0]} performance profiles")

    section("table3")
    cells = [(task, tier) for tier in TIERS for task in MPE_TASKS]
    out += _table_rows(results, cells, paper.TABLE3) + [""]
    if figures:
        figure(_curves_figure(results, figures / "table3_curves.png", [(t, r) for t, r in cells], [(NAMES[a], group_key(a, "{task}", "{tier}")) for a in ALGS], "Table 3: learning curves (mean over seeds, min..max shaded)"),
               figures / "table3_curves.png", "Table 3 learning curves")
    aggregates("table3", MPE_TASKS, centralized=False)
    out += _agreement_section(results, cells, paper.TABLE3)

    section("table4")
    out += ["| tier | OMAR (random) ours | paper | OMAR (CEM) ours | paper | OMAR (Gaussian) ours | paper |", "|---|---|---|---|---|---|---|"]
    for tier in TIERS:
        ref = paper.TABLE4[("cooperative_navigation", tier)]
        row = [TIER_NAMES[tier]]
        for variant in ("sampler=random", "sampler=cem", "default"):
            row += [fmt(results.score(group_key("omar", "cooperative_navigation", tier, variant))), fmt(ref[variant])]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    if figures:
        figure(_curves_figure(results, figures / "table4_curves.png", [("cooperative_navigation", t) for t in TIERS],
                              [(f"OMAR ({s})", group_key("omar", "{task}", "{tier}", "default" if s == "gaussian" else f"sampler={s}")) for s in ("random", "cem", "gaussian")],
                              "Table 4: samplers"), figures / "table4_curves.png", "Table 4 learning curves")

    section("table5")
    out += ["The paper gives one row per method and tier without naming the task; ours are per task.", "",
            "| tier | method | " + " | ".join(f"{TASK_NAMES[t]} (ours)" for t in MPE_TASKS) + " | paper |", "|---" * (3 + len(MPE_TASKS)) + "|"]
    for tier in TIERS:
        for a in ALGS:
            ours = [fmt(results.score(group_key(a, t, tier, centralized=True))) for t in MPE_TASKS]
            out.append(f"| {TIER_NAMES[tier]} | {NAMES[a]} | " + " | ".join(ours) + f" | {fmt(paper.TABLE5[tier][a])} |")
    out.append("")
    aggregates("table5", MPE_TASKS, centralized=True)

    section("table6")
    out += _table_rows(results, [("halfcheetah_2x3", t) for t in TIERS], paper.TABLE6) + [""]
    aggregates("table6", STUDIES["table6"].tasks, centralized=False)
    out += _agreement_section(results, [("halfcheetah_2x3", t) for t in TIERS], paper.TABLE6)

    # Section 3.1 on its own Spread (1-D actions on a line), then the same studies on mpe2's 2-D spread.
    section("line-curves")
    out += _line_curves_section(results)
    if figures:
        figure(_curves_figure(results, figures / "line_curves.png", [(line_spread(2), "medium_replay")],
                              [(NAMES[a], group_key(a, "{task}", "{tier}")) for a in STUDIES["line-curves"].algorithms],
                              "Figure 1b on the line: returns (mean over seeds, min..max shaded)", field="return"),
               figures / "line_curves.png", "Figure 1b on the line")

    section("line-agents")
    out += _paper_says(paper.FIGURE1C + paper.FIGURE2, "Figures 1(c) and 2 are plots")
    if not _has_run(results, "line-agents"):
        out += _not_run_yet("line-agents")
    else:
        out += _agents_table(results, line_spread, "the line's") + [
            "", f"The paper's MA-CQL return with 2 agents is {fmt(paper.TABLE1_ACTOR_LR[0.01])} (Table 1). The same study on "
            "mpe2's 2-D spread: `omar reproduce agents`, below.", ""]
        if figures:
            figure(_agents_figure(results, figures / "line_agents.png", line_spread, "Figures 1c and 2 on the line"), figures / "line_agents.png",
                   "Figures 1c and 2 on the line")

    section("line-landscape")
    out += _line_landscape_section(results)
    if figures and _line_landscape_run(results) is not None:
        _line_landscape_figure(_line_landscape_run(results), figures / "line_landscape.png")
        figure(True, figures / "line_landscape.png", "Figure 1d on the line")

    section("line-actor-lr-updates")
    if not _has_run(results, "line-actor-lr-updates"):
        out += _not_run_yet("line-actor-lr-updates")
    else:
        out += ["Returns (not normalized), MA-CQL on the 2-agent line medium-replay. The same on mpe2's 2-D spread: "
                "`omar reproduce actor-lr-updates`, below.", ""] + _actor_lr_tables(results, line_spread(2)) + [""]

    section("agents")
    out += _agents_table(results, spread, "spread") + [""]
    if figures:
        figure(_agents_figure(results, figures / "agents.png"), figures / "agents.png", "Figures 1c and 2")

    section("tau")
    tau = _tau_table(results)
    out += ["Mean normalized score over the MPE tasks that ran (number of tasks in brackets).", "",
            "| tier | " + " | ".join(f"tau {t}" for t in TAUS) + " |", "|---" * (len(TAUS) + 1) + "|"]
    for tier in TIERS:
        out.append(f"| {TIER_NAMES[tier]} | " + " | ".join("not run" if not tau[tier][t]["n"] else f"{tau[tier][t]['mean']:.1f} ({tau[tier][t]['n']})" + (OLD if tau[tier][t]["stale"] else "") for t in TAUS) + " |")
    out.append("")
    if figures:
        figure(_tau_figure(results, figures / "tau.png"), figures / "tau.png", "Figure 3")

    section("landscape")
    run = _landscape_run(results)
    if run is None:
        out += ["not run", ""]
    else:
        data = run["landscape"]
        out += [f"Agent {data['agent']}, dataset row {data['dataset_row']}, after {data['updates']:,} MA-CQL updates: pi(o) moves from "
                f"({data['before'][0]:.3f}, {data['before'][1]:.3f}) to ({data['after_macql'][0]:.3f}, {data['after_macql'][1]:.3f}) with an MA-CQL "
                f"actor update and to ({data['after_omar'][0]:.3f}, {data['after_omar'][1]:.3f}) with an OMAR update (tau {data['omar_tau']}); "
                f"Q1's maximum on the grid is at ({data['argmax'][0]:.2f}, {data['argmax'][1]:.2f})."
                + (OLD if update_version(run) != UPDATE_VERSION else ""), ""]
        if figures:
            _landscape_figure(run, figures / "landscape.png")
            figure(True, figures / "landscape.png", "Figure 1d")

    section("actor-lr-updates")
    out += ["Returns (not normalized), MA-CQL on 2-agent spread medium-replay.", ""] + _actor_lr_tables(results, spread(2)) + [""]

    section("official-reuse")
    out += _official_reuse_section(results)
    if figures:
        figure(_official_reuse_figure(results, figures / "official_reuse_curves.png"), figures / "official_reuse_curves.png", "Official reuse learning curves")

    out += ["## Datasets behind these numbers", ""] + _datasets(results) + [""]
    out += ["## Measured cost per run", "", "Wall time of one `omar fit` as run by `omar reproduce` on this project's CPU machine (2 cores; "
            "with `--workers 2` two runs share them, one thread each).", ""] + _costs(results) + [""]
    notes = results_dir / "notes.md"
    if notes.is_file():
        out += [notes.read_text().rstrip(), ""]
    return "\n".join(out)


def write_report(results_dir: Path, page: Path, figures: Path | None) -> None:
    from omar_lightning.atomic import atomic_write

    text = build_page(results_dir, figures, page.parent) + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(page, lambda f: f.write(text.encode()))
