"""Under the paper's grids: aggregate statistics of a study (``aggregate.py``: IQM, optimality gap,
probability of improvement, performance profiles) and the per-cell agreement with the paper
(``agreement.py``), both from the current update version's runs only.

A study's scopes: per tier over the study's tasks on it, per task over its tiers (studies of
several tasks), and over all its (task, tier) datasets (always the last scope)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omar_lightning.data.format import TIERS
from omar_lightning.plots import pyplot
from omar_lightning.reproduce import aggregate as agg
from omar_lightning.reproduce import agreement
from omar_lightning.reproduce.report.common import ALGS, NAMES, TASK_NAMES, TIER_NAMES, Results, group_key
from omar_lightning.reproduce.report.plotting import finish, style_panel
from omar_lightning.reproduce.summary import is_current
from omar_lightning.update_version import UPDATE_VERSION

ALL_TIERS = "All tiers"
OF_TASK = ", all tiers"  # a task's scope: its name and this
REFERENCE = "omar"  # the method whose probability of improvement over each other method is shown
AGREEMENT_SEEDS = 2  # current seeds every method of a cell needs before it is compared with the paper


def scopes_of(tasks: tuple[str, ...]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(scope name, its (task, tier) datasets) for a study over ``tasks``."""
    per_tier = [(TIER_NAMES[tier], [(task, tier) for task in tasks]) for tier in TIERS]
    per_task = [(TASK_NAMES.get(task, task) + OF_TASK, [(task, tier) for tier in TIERS]) for task in tasks] if len(tasks) > 1 else []
    return per_tier + per_task + [(ALL_TIERS, [(task, tier) for tier in TIERS for task in tasks])]


def current_scores(results: Results, algorithm: str, task: str, tier: str, centralized: bool) -> dict[int, float]:
    """Seed -> normalized score of the cell's runs of the current update version."""
    return {s["cell"]["seed"]: float(s["score"]["normalized_score"]) for s in results.runs(group_key(algorithm, task, tier, centralized=centralized)) if is_current(s)}


def aggregates(results: Results, tasks: tuple[str, ...], centralized: bool) -> list[dict[str, Any]]:
    """Per scope: its name, datasets and each method's complete matrix (``agg.Matrix``)."""
    return [{"scope": name, "cells": cells,
             "matrices": {a: agg.complete_matrix([current_scores(results, a, t, r, centralized) for t, r in cells]) for a in ALGS}}
            for name, cells in scopes_of(tasks)]


def dataset_name(cell: tuple[str, str], scope: str) -> str:
    """A dataset as a scope's row names it: the task in a tier's scope, the tier in a task's, both under all tiers."""
    task, tier = cell
    if scope.endswith(OF_TASK):
        return TIER_NAMES[tier]
    return TASK_NAMES.get(task, task) + (f" {TIER_NAMES[tier].lower()}" if scope == ALL_TIERS else "")


def missing_names(missing: list[tuple[str, str]], cells: list[tuple[str, str]], scope: str) -> str:
    """The datasets without a run; under all tiers, a tier none of whose tasks has one by its name."""
    parts = []
    for tier in dict.fromkeys(r for _, r in cells):
        of_tier = [c for c in missing if c[1] == tier]
        whole = scope == ALL_TIERS and len(of_tier) == sum(r == tier for _, r in cells)
        parts += [f"{TIER_NAMES[tier].lower()} (every task)"] if whole else [dataset_name(c, scope) for c in of_tier]
    return ", ".join(parts)


def estimate(e: agg.Estimate, digits: int) -> str:
    return f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"


def aggregate_rows(scopes: list[dict[str, Any]]) -> list[str]:
    """The statistics table: one row per scope and method, with what it leaves out."""
    out = [f"| scope | method | runs × tasks | IQM [95% CI] | optimality gap [95% CI] | P({NAMES[REFERENCE]} > method) [95% CI] | not included |",
           "|---|---|---|---|---|---|---|"]
    for scope in scopes:
        name, cells, matrices = scope["scope"], scope["cells"], scope["matrices"]
        reference = matrices[REFERENCE].scores
        for a in ALGS:
            m = matrices[a]
            if m.missing:
                absent = "any of its tasks" if len(m.missing) == len(cells) else f"{len(m.missing)} of {len(cells)} tasks: " + missing_names([cells[t] for t in m.missing], cells, name)
                out.append(f"| {name} | {NAMES[a]} | – | – | – | – | no current run on {absent} |")
                continue
            left = "; ".join(f"seed {s} on {dataset_name(cells[t], name)}" for t, s in m.left_out)
            left = f"not on every task: {left}" if left else "none"
            if m.scores is None:
                out.append(f"| {name} | {NAMES[a]} | – | – | – | – | no seed on every task; {left} |")
                continue
            stats = agg.iqm_and_optimality_gap(m.scores)
            poi = "–" if a == REFERENCE or reference is None else estimate(agg.improvement(reference, m.scores), 2)
            out.append(f"| {name} | {NAMES[a]} | {m.scores.shape[0]} × {m.scores.shape[1]} | {estimate(stats['iqm'], 1)} | "
                       f"{estimate(stats['optimality_gap'], 1)} | {poi} | {left} |")
    return out


def profiles_figure(scopes: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Performance profiles, one panel per scope with a complete matrix of any method: the
    fraction of run x task normalized scores above tau, with its 95% bootstrap band."""
    present = [s for s in scopes if any(m.scores is not None for m in s["matrices"].values())]
    if not present:
        return False
    plt = pyplot()
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
        style_panel(ax, scope["scope"], "normalized score tau", "fraction of runs with score > tau", ylabel_size=7)
    finish(fig, title, path)
    return True


def aggregate_section(results: Results, tasks: tuple[str, ...], centralized: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """The markdown of a study's aggregate statistics and its scopes (for the profiles figure)."""
    out = ["### Aggregate statistics", ""]
    scopes = aggregates(results, tasks, centralized)
    if not any(current_scores(results, a, t, r, centralized) for s in scopes[:-1] for a in ALGS for t, r in s["cells"]):
        return out + [f"No run of update version {UPDATE_VERSION} yet: nothing to aggregate.", ""], scopes
    of_task = f"a task's row (\"<task>{OF_TASK}\") takes its {len(TIERS)} tiers; " if len(tasks) > 1 else ""
    out += [f"Normalized scores of the runs of update version {UPDATE_VERSION} (the protocol is under \"How a score is made\"). "
            f"A tier's tasks are the {len(tasks)} above on that tier; {of_task}\"{ALL_TIERS}\" takes all {len(scopes[-1]['cells'])}.", ""]
    return out + aggregate_rows(scopes) + [""], scopes


def agreement_section(results: Results, cells: list[tuple[str, str]], reference: dict, centralized: bool = False) -> list[str]:
    """Per cell, where ours and the paper's agree (``agreement.py``), from the current update version's runs."""
    rows = []
    for task, tier in cells:
        ours = {a: list(current_scores(results, a, task, tier, centralized).values()) for a in ALGS}
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


def protocol() -> list[str]:
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
