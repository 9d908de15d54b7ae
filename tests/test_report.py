"""omar report: the results page and figures from committed summaries alone, deterministic."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from omar_lightning.reproduce.report import Results
from omar_lightning.reproduce.report.agents import agents_rows
from omar_lightning.reproduce.report.provenance import datasets
from omar_lightning.reproduce.studies import MPE_TASKS

DATA = Path(__file__).resolve().parent / "data" / "report"


def _report(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "omar_lightning", "report", "--results", str(DATA / "results"), "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300)


def test_report_reproduces_the_committed_page_and_deterministic_figures(tmp_path):
    first = _report(tmp_path / "a" / "results.md")
    assert first.returncode == 0, first.stderr
    page = (tmp_path / "a" / "results.md").read_text()
    assert page == (DATA / "expected.md").read_text()
    figures = sorted(p.name for p in (tmp_path / "a" / "figures").glob("*.png"))
    assert figures == ["agents.png", "landscape.png", "official_reuse_curves.png", "table3_curves.png", "table4_curves.png", "tau.png"]
    for name in figures:
        assert f"(figures/{name})" in page
    _report(tmp_path / "b" / "results.md")
    for name in figures:  # same summaries, same bytes
        assert (tmp_path / "a" / "figures" / name).read_bytes() == (tmp_path / "b" / "figures" / name).read_bytes(), name


def test_report_cells_scores_and_winners():
    page = (DATA / "expected.md").read_text()
    # OMAR medium, seeds 0 and 1: last-ten means 30 and 40 -> 35 +- 5 over 2 seeds; MA-CQL 15 over 1 seed.
    row = next(line for line in page.splitlines() if line.startswith("| Cooperative navigation | Medium |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[6] == "15.0 ± 0.0 (1)" and cells[8] == "35.0 ± 5.0 (2)" and cells[-2:] == ["OMAR", "OMAR"]
    assert "| 2 | 80.00 | 95.00 ± 0.00 (1) | 115.00 ± 0.00 (1) | +18.8 ± 0.0% | +21.1 ± 0.0% |" in page  # (95-80)/80, (115-95)/95
    assert "Hand-written discussion, included verbatim." in page  # results/notes.md


def test_agent_count_improvements_carry_the_spread_over_seeds():
    base = json.loads((DATA / "results" / "macql" / "cooperative_navigation_n2" / "medium_replay" / "default" / "seed_0.json").read_text())
    summaries = []
    for algorithm, returns in (("macql", (90.0, 110.0)), ("omar", (140.0, 160.0))):
        for seed, ret in enumerate(returns):
            s = copy.deepcopy(base)
            s["key"] = s["key"].replace("macql", algorithm).replace("seed_0", f"seed_{seed}")
            s["cell"].update(algorithm=algorithm, seed=seed)
            s["score"]["return"] = ret
            summaries.append(s)
    row = next(r for r in agents_rows(Results(summaries)) if r["n"] == 2)
    behaviour = base["dataset"]["behaviour_return"]
    # MA-CQL 100 +- 10 over a fixed behaviour return; OMAR 150 +- 10 over MA-CQL 100 +- 10.
    assert row["macql_vs_behaviour"] == pytest.approx(100 * (100 - behaviour) / abs(behaviour))
    assert row["macql_vs_behaviour_std"] == pytest.approx(100 * 10 / abs(behaviour))
    assert row["omar_vs_macql"] == pytest.approx(50.0)
    assert row["omar_vs_macql_std"] == pytest.approx(100 * 1.5 * math.hypot(10 / 150, 10 / 100))


def test_report_without_results_directory_fails_with_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "omar_lightning", "report", "--results", str(tmp_path / "none")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip() == f"omar: error: --results {tmp_path / 'none'}: no such directory"


def test_report_never_averages_update_versions_and_marks_old_ones():
    """OMAR medium has seeds 0 and 1 of the current update version and a seed 2 of version 1
    (score 100): the cell shows 35 +- 5 over the two current seeds, and the note counts the one
    left out. World expert tau 0.5 exists only in version 1: shown, marked †."""
    page = (DATA / "expected.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| Cooperative navigation | Medium |"))
    assert [c.strip() for c in row.strip("|").split("|")][8] == "35.0 ± 5.0 (2)"
    assert "Left out for that reason: 1 older run(s) of cells that have newer ones." in page
    assert "the runs shown here are 1 of version 1, 11 of version 2" in page
    assert "| Expert | not run | not run | 80.0 (1) † | not run | not run |" in page
    results = Results([json.loads(p.read_text()) for p in sorted((DATA / "results").rglob("seed_*.json"))])
    assert [s["cell"]["seed"] for s in results.runs("omar/cooperative_navigation/medium/default")] == [0, 1]
    assert results.stale("omar/world/expert/tau=0.5") and not results.stale("omar/cooperative_navigation/medium/default")


def test_dataset_table_has_a_row_per_file_runs_trained_on():
    """Runs of one path on two regenerations of it: two rows with their counts and the rule; one
    file per path: one row each and no note."""
    summaries = [json.loads(p.read_text()) for p in sorted((DATA / "results").rglob("seed_*.json"))]
    assert not any(line.startswith("A path with more than one row") for line in datasets(Results(summaries)))
    medium = [s for s in summaries if s["dataset"]["path"] == "data/cooperative_navigation/medium.npz"]
    regenerated = copy.deepcopy(medium[0])
    regenerated["cell"]["seed"] = 7
    regenerated["key"] = regenerated["key"].replace("seed_0", "seed_7")
    regenerated["dataset"].update(checksum="fedcba987654" + "0" * 52, behaviour_return=200.00321)
    lines = datasets(Results(summaries + [regenerated]))
    rows = [line for line in lines if line.startswith("| `data/cooperative_navigation/medium.npz`")]
    assert rows == ["| `data/cooperative_navigation/medium.npz` | 1,000 | 200.00000 | 100.00000 | 300.00000 | `0123456789ab` | 6 |",
                    "| `data/cooperative_navigation/medium.npz` | 1,000 | 200.00321 | 100.00000 | 300.00000 | `fedcba987654` | 1 |"]
    assert lines[-1].startswith("A path with more than one row: its runs trained on regenerations of one recipe") and "0.0001 relative" in lines[-1]


def test_official_reuse_section_compares_fresh_and_reused_minibatches():
    """Medium: OMAR fresh 35 (seeds 0, 1), reused 36.7 (mean of 20, 44, 46: the evaluation at
    update 0 is left out of the score); MA-CQL fresh 15, reused 24.7 (10, 30, 34)."""
    page = (DATA / "expected.md").read_text()
    section = page[page.index("## Fresh minibatches against the official loop's reuse"):]
    assert "`omar reproduce official-reuse`" in section and "np.random.seed(seed + 100)" in section
    row = next(line for line in section.splitlines() if line.startswith("| Medium |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:7] == ["35.0 ± 5.0 (2)", "36.7 ± 0.0 (1)", "15.0 ± 0.0 (1)", "24.7 ± 0.0 (1)", "+20.0", "+12.0"]
    summary = json.loads((DATA / "results" / "omar" / "cooperative_navigation" / "medium" / "minibatches=official_reuse" / "seed_0.json").read_text())
    assert summary["curve"]["updates"][0] == 0 and summary["score"]["normalized_score"] == pytest.approx((20 + 44 + 46) / 3)


def test_official_reuse_section_has_a_table_per_task_with_reuse_runs():
    """A predator-prey reuse run adds a predator-prey table after cooperative navigation's."""
    from omar_lightning.reproduce.report.official_reuse import official_reuse_section

    path = DATA / "results" / "omar" / "cooperative_navigation" / "medium" / "minibatches=official_reuse" / "seed_0.json"
    navigation = json.loads(path.read_text())
    prey = copy.deepcopy(navigation)
    prey["key"] = prey["key"].replace("cooperative_navigation", "predator_prey")
    prey["cell"]["task"] = "predator_prey"
    prey["score"]["normalized_score"] = 61.25
    lines = official_reuse_section(Results([navigation, prey]))
    assert lines.index("Cooperative navigation:") < lines.index("Predator-prey:")
    rows = [line for line in lines[lines.index("Predator-prey:"):] if line.startswith("| Medium |")]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1:3] == ["not run", "61.2 ± 0.0 (1)"] and cells[-2:] == ["66.7 ± 23.2", "61.7 ± 23.1"]  # the paper's predator-prey medium
    assert [line for line in lines if line in ("Cooperative navigation:", "Predator-prey:", "World:")] == ["Cooperative navigation:", "Predator-prey:"]


def test_official_reuse_section_says_not_run_without_its_summaries():
    from omar_lightning.reproduce.report.official_reuse import official_reuse_section

    assert official_reuse_section(Results([]))[-2:] == ["not run", ""]


def _fake_results(root: Path) -> dict[tuple[str, str], dict[int, float]]:
    """Table 3 summaries on the medium tier, written under ``root``: OMAR seeds 0, 1 on the three
    tasks; MA-CQL seeds 0, 1, 2 on cooperative navigation and predator-prey but 0, 1 on world; MA-ICQ
    on cooperative navigation only; an OMAR world seed 4 of update version 1 (never aggregated).
    Returns (algorithm, task) -> seed -> score of the current runs."""
    base = json.loads((DATA / "results" / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0.json").read_text())
    rng = np.random.default_rng(0)
    plan = {("omar", t): (0, 1) for t in MPE_TASKS} | {("macql", t): (0, 1, 2) for t in MPE_TASKS[:2]} | {("macql", "world"): (0, 1), ("maicq", "cooperative_navigation"): (0,)}
    scores: dict[tuple[str, str], dict[int, float]] = {}
    for (algorithm, task), seeds in plan.items():
        for seed in seeds:
            score = float(np.round(rng.uniform(60, 110) if algorithm == "omar" else rng.uniform(20, 70), 1))
            scores.setdefault((algorithm, task), {})[seed] = score
            _write_summary(root, base, algorithm, task, seed, score, 2)
    _write_summary(root, base, "omar", "world", 4, 0.0, 1)
    return scores


def _write_summary(root: Path, base: dict, algorithm: str, task: str, seed: int, score: float, version: int, tier: str = "medium") -> None:
    s = copy.deepcopy(base)
    s["key"] = f"{algorithm}/{task}/{tier}/default/seed_{seed}"
    s["cell"].update(algorithm=algorithm, task=task, tier=tier, seed=seed)
    s["score"]["normalized_score"] = score
    s["update_version"] = version
    path = root / f"{s['key']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(s))


def _row(section: str, scope: str, method: str) -> list[str]:
    line = next(line for line in section.splitlines() if line.startswith(f"| {scope} | {method} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def _estimate(cell: str) -> tuple[float, float, float]:
    value, interval = cell.split(" [")
    low, high = interval.rstrip("]").split(", ")
    return float(value), float(low), float(high)


def test_aggregate_section_from_a_fake_results_directory(tmp_path):
    from omar_lightning.reproduce.report import write_report

    scores = _fake_results(tmp_path / "results")
    write_report(tmp_path / "results", tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures")
    page = (tmp_path / "docs" / "results.md").read_text()
    assert "**Optimality gap**: the mean of max(0, 100 − score)" in page and "2,000 resamples per estimate" in page
    table3 = page[page.index("## Table 3"):page.index("## Table 4")]
    section = table3[table3.index("### Aggregate statistics"):]
    assert "A tier's tasks are the 3 above on that tier; a task's row (\"<task>, all tiers\") takes its 4 tiers; \"All tiers\" takes all 12." in section

    # OMAR: seeds 0, 1 on all three tasks; the version-1 seed 4 on world does not enter.
    omar = np.array([[scores[("omar", t)][s] for t in MPE_TASKS] for s in (0, 1)])
    row = _row(section, "Medium", "OMAR")
    assert row[2] == "2 × 3" and row[5] == "–" and row[6] == "none"
    iqm, low, high = _estimate(row[3])
    assert iqm == pytest.approx(np.sort(omar.ravel())[1:5].mean(), abs=0.051) and low <= iqm <= high
    gap, low, high = _estimate(row[4])
    assert gap == pytest.approx(np.maximum(0.0, 100.0 - omar).mean(), abs=0.051) and low <= gap <= high

    # MA-CQL: seed 2 misses world, so the matrix is seeds 0, 1 and the page names the two left out.
    macql = np.array([[scores[("macql", t)][s] for t in MPE_TASKS] for s in (0, 1)])
    row = _row(section, "Medium", "MA-CQL")
    assert row[2] == "2 × 3" and row[6] == "not on every task: seed 2 on Cooperative navigation; seed 2 on Predator-prey"
    poi, low, high = _estimate(row[5])
    by_hand = np.mean([np.mean([(a > b) + 0.5 * (a == b) for a in omar[:, t] for b in macql[:, t]]) for t in range(3)])
    assert poi == pytest.approx(by_hand, abs=0.0051) and low <= poi <= high

    assert _row(section, "Medium", "MA-ICQ")[2:] == ["–"] * 4 + ["no current run on 2 of 3 tasks: Predator-prey, World"]
    assert _row(section, "Medium", "MA-TD3+BC")[6] == "no current run on any of its tasks"
    for scope in ("Random", "Medium-replay", "Expert"):
        assert [_row(section, scope, m)[6] for m in ("MA-ICQ", "MA-TD3+BC", "MA-CQL", "OMAR")] == ["no current run on any of its tasks"] * 4
    assert _row(section, "All tiers", "OMAR")[6] == "no current run on 9 of 12 tasks: random (every task), medium-replay (every task), expert (every task)"
    # a task's scope is its four tiers, named by tier
    assert _row(section, "World, all tiers", "OMAR")[6] == "no current run on 3 of 4 tasks: Random, Medium-replay, Expert"
    assert _row(section, "All tiers", "MA-ICQ")[6] == ("no current run on 11 of 12 tasks: random (every task), medium-replay (every task), "
                                                      "Predator-prey medium, World medium, expert (every task)")
    assert "![Table 3 performance profiles](figures/table3_profiles.png)" in section
    for study in ("## Table 5", "## Table 6"):
        rest = page[page.index(study):]
        assert rest[:rest.index("\n## ", 4)].count("No run of update version 2 yet: nothing to aggregate.") == 1
    assert sorted(p.name for p in (tmp_path / "docs" / "figures").glob("*profiles.png")) == ["table3_profiles.png"]

    figure = (tmp_path / "docs" / "figures" / "table3_profiles.png").read_bytes()
    write_report(tmp_path / "results", tmp_path / "docs" / "again.md", tmp_path / "docs" / "figures")
    assert (tmp_path / "docs" / "again.md").read_text() == page
    assert (tmp_path / "docs" / "figures" / "table3_profiles.png").read_bytes() == figure


def test_a_tasks_aggregate_takes_its_four_tiers(tmp_path):
    """OMAR and MA-CQL, seeds 0-2, on every cooperative-navigation tier (MA-CQL's seed 2 missing on
    expert): the task's row aggregates the 3 x 4 and 2 x 4 matrices, the tier rows stay incomplete."""
    from omar_lightning.reproduce.report import write_report

    base = json.loads((DATA / "results" / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0.json").read_text())
    rng = np.random.default_rng(1)
    tiers = ("random", "medium_replay", "medium", "expert")
    scores = {a: np.round(rng.uniform(*span, (3, 4)), 1) for a, span in (("omar", (40, 100)), ("macql", (10, 80)))}
    for a, grid in scores.items():
        for seed in range(3):
            for t, tier in enumerate(tiers):
                if not (a == "macql" and seed == 2 and tier == "expert"):
                    _write_summary(tmp_path / "results", base, a, "cooperative_navigation", seed, float(grid[seed, t]), 2, tier)
    write_report(tmp_path / "results", tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures")
    page = (tmp_path / "docs" / "results.md").read_text()
    section = page[page.index("## Table 3"):page.index("## Table 4")]
    section = section[section.index("### Aggregate statistics"):]
    omar, macql = scores["omar"], scores["macql"][:2]
    row = _row(section, "Cooperative navigation, all tiers", "OMAR")
    assert row[2] == "3 × 4" and row[6] == "none"
    iqm, low, high = _estimate(row[3])
    assert iqm == pytest.approx(np.sort(omar.ravel())[3:9].mean(), abs=0.051) and low <= iqm <= high
    row = _row(section, "Cooperative navigation, all tiers", "MA-CQL")
    assert row[2] == "2 × 4" and row[6] == "not on every task: seed 2 on Random; seed 2 on Medium-replay; seed 2 on Medium"
    gap, _, _ = _estimate(row[4])
    assert gap == pytest.approx(np.maximum(0.0, 100.0 - macql).mean(), abs=0.051)
    poi, low, high = _estimate(row[5])
    by_hand = np.mean([np.mean([(a > b) + 0.5 * (a == b) for a in omar[:, t] for b in macql[:, t]]) for t in range(4)])
    assert poi == pytest.approx(by_hand, abs=0.0051) and low <= poi <= high
    assert _row(section, "Predator-prey, all tiers", "OMAR")[6] == "no current run on any of its tasks"
    assert _row(section, "Medium", "OMAR")[6] == "no current run on 2 of 3 tasks: Predator-prey, World"


def _line_summary(root: Path, algorithm: str, task: str, seed: int, ret: float, score: float, variant: str = "default",
                  analysis: dict | None = None) -> None:
    """A summary of a line cell under ``root``: the 2-D N = 2 summary with this cell's key, task,
    returns and score (its curve: returns 0, ret, ret; behaviour return 80)."""
    s = copy.deepcopy(json.loads((DATA / "results" / "macql" / "cooperative_navigation_n2" / "medium_replay" / "default" / "seed_0.json").read_text()))
    post = "+landscape_1d" if analysis else ""
    s["key"] = f"{algorithm}/{task}/medium_replay/{variant}{post}/seed_{seed}"
    s["cell"].update(algorithm=algorithm, task=task, seed=seed, variant={} if variant == "default" else dict([variant.split("=")]))
    s["dataset"]["path"] = f"data/{task}/medium_replay.npz"
    s["curve"] = {"updates": [0, 10, 20], "return": [0.0, ret, ret], "normalized_score": [-50.0, score, score]}
    s["score"].update(normalized_score=score, **{"return": ret})
    if analysis:
        s["cell"]["post"] = "landscape_1d"
        s["landscape_1d"] = analysis
    path = root / f"{s['key']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(s))


def _landscape_1d(gap: float, updates: int) -> dict:
    xs = [round(-1 + 2 * k / 200, 6) for k in range(201)]
    return {"agent": 1, "checkpoint": f"updates={updates}.ckpt", "updates": updates, "minibatch_row": 17, "dataset_row": 4321, "actions": xs,
            "q1": [round(10 - (x - 0.5) ** 2, 5) for x in xs], "argmax": 0.5, "q1_argmax": 10.0, "before": -0.3, "after_macql": -0.31,
            "after_omar": -0.3 + gap, "q1_before": 9.36, "q1_after_macql": 9.3439, "q1_after_omar": 9.5, "gap": gap + 0.01, "omar_tau": 1.0,
            "search": [{"updates": u, "largest_gap": (gap + 0.01) if u == updates else 0.01, "mean_gap": 0.001} for u in (200, 400, 600)]}


def test_line_sections_from_a_fake_results_directory(tmp_path):
    """Section 3.1 on the line: Figure 1b's three methods with the paper's words and Table 1's
    MA-CQL, the agent-count table (N = 1, 2 run, the rest not), Figure 1d from the seed with the
    largest gap, Tables 1 and 2 on the line; every section and figure rebuilt bit for bit."""
    from omar_lightning.reproduce.report import write_report

    root = tmp_path / "results"
    line2 = "cooperative_navigation_line_n2"
    for algorithm, returns in (("matd3bc", (200.0, 220.0)), ("macql", (250.0, 270.0)), ("omar", (300.0, 310.0))):
        for seed, ret in enumerate(returns):
            _line_summary(root, algorithm, line2, seed, ret, ret / 10)
    _line_summary(root, "macql", "cooperative_navigation_line_n1", 0, 100.0, 10.0)
    _line_summary(root, "omar", "cooperative_navigation_line_n1", 0, 120.0, 12.0)
    _line_summary(root, "macql", line2, 0, 150.0, 15.0, variant="actor_lr=0.05")
    _line_summary(root, "macql", line2, 0, 260.0, 26.0, analysis=_landscape_1d(0.2, 400))
    _line_summary(root, "macql", line2, 1, 260.0, 26.0, analysis=_landscape_1d(0.5, 600))
    write_report(root, tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures")
    page = (tmp_path / "docs" / "results.md").read_text()
    part = lambda title: page[page.index(f"## {title}"):page.index("\n## ", page.index(f"## {title}") + 4)]  # noqa: E731

    curves = part("Figure 1b on the line")
    assert "`omar reproduce line-curves`" in curves and "\"Figure 1(b) further validates that OMAR significantly improves MA-CQL" in curves
    assert "| MA-TD3+BC | 210.00 ± 10.00 (2) | 21.0 ± 1.0 (2) | – |" in curves
    assert "| MA-CQL | 260.00 ± 10.00 (2) | 26.0 ± 1.0 (2) | 267.9 ± 19.0 (Table 1) |" in curves
    assert "| OMAR | 305.00 ± 5.00 (2) | 30.5 ± 0.5 (2) | – |" in curves and "![Figure 1b on the line](figures/line_curves.png)" in curves

    agents = part("Figures 1c and 2 on the line")
    assert "\"From Figure 1(c), we observe that its performance degrades dramatically as there are more agents.\"" in agents
    # (100 - 80) / 80 and (120 - 100) / 100; N = 2: (260 - 80) / 80, (305 - 260) / 260
    assert "| 1 | 80.00 | 100.00 ± 0.00 (1) | 120.00 ± 0.00 (1) | +25.0 ± 0.0% | +20.0 ± 0.0% |" in agents
    row2 = next(line for line in agents.splitlines() if line.startswith("| 2 |"))
    assert row2.startswith("| 2 | 80.00 | 260.00 ± 10.00 (2) | 305.00 ± 5.00 (2) | +225.0 ± 12.5% | +17.3 ±")
    assert "| 3 | – | not run | not run | – | – |" in agents and "| 5 | – | not run | not run | – | – |" in agents
    assert "267.9 ± 19.0 (Table 1)" in agents and "![Figures 1c and 2 on the line](figures/line_agents.png)" in agents

    landscape = part("Figure 1d on the line")
    assert "`most_different`" in landscape and "every periodic checkpoint" in landscape
    assert "Seed 1 (of seeds 0, 1), checkpoint `updates=600.ckpt`, agent 1, row 17 of that update's minibatch (dataset row 4,321)" in landscape
    assert "pi(o) = -0.3000 (Q1 9.360) moves to -0.3100 (Q1 9.344) with an MA-CQL actor update and to 0.2000 (Q1 9.500)" in landscape
    assert "the two lie 0.5100 apart" in landscape and "| checkpoint (updates) | 200 | 400 | 600 |" in landscape
    assert "| largest | 0.0100 | 0.0100 | 0.5100 |" in landscape and "![Figure 1d on the line](figures/line_landscape.png)" in landscape

    tables = part("Tables 1 and 2 on the line")
    assert "| 0.01 | 260.00 ± 10.00 (2) | 267.9 ± 19.0 |" in tables and "| 0.05 | 150.00 ± 0.00 (1) | 202.0 ± 38.9 |" in tables
    assert "| 0.1 | not run | 100.1 ± 36.4 |" in tables and "| 5 | not run | 278.6 ± 14.8 |" in tables
    # the 2-D studies stay where they were, second, with nothing of the line's in them
    assert page.index("## Tables 1 and 2 on the line") < page.index("## Figures 1c and 2: spread with N = 1..5 agents")
    assert "| 2 | – | not run | not run | – | – |" in part("Figures 1c and 2: spread") and part("Figure 1d: Q-landscape").count("not run") == 1

    figures = {p.name: p.read_bytes() for p in (tmp_path / "docs" / "figures").glob("line_*.png")}
    assert sorted(figures) == ["line_agents.png", "line_curves.png", "line_landscape.png"]
    write_report(root, tmp_path / "docs" / "again.md", tmp_path / "docs" / "figures")
    assert (tmp_path / "docs" / "again.md").read_text() == page
    assert {name: (tmp_path / "docs" / "figures" / name).read_bytes() for name in figures} == figures


def test_line_sections_say_not_run_yet_with_their_commands():
    page = (DATA / "expected.md").read_text()
    for study in ("line-curves", "line-agents", "line-landscape", "line-actor-lr-updates"):
        assert f"Not run yet: `omar reproduce {study}` (it needs the line's medium-replay datasets" in page


def test_agreement_section_compares_complete_cells_with_the_paper(tmp_path):
    from omar_lightning.reproduce import agreement, paper
    from omar_lightning.reproduce.report import build_page

    base = json.loads((DATA / "results" / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0.json").read_text())
    ours = {"maicq": [91.0, 92.5], "matd3bc": [95.0, 93.0], "macql": [70.0, 66.0], "omar": [99.0, 103.0]}
    for algorithm, scores in ours.items():
        for seed, score in enumerate(scores):
            _write_summary(tmp_path, base, algorithm, "cooperative_navigation", seed, score, 2, tier="expert")
    _write_summary(tmp_path, base, "omar", "world", 0, 50.0, 2, tier="expert")  # one seed, one method: not compared
    page = build_page(tmp_path, None, tmp_path)
    section = page[page.index("### Agreement with the paper, per cell"):page.index("## Table 4")]
    row = _row(section, "Cooperative navigation", "Expert")
    want = agreement.compare(ours, paper.TABLE3[("cooperative_navigation", "expert")])
    assert row[2] == "OMAR / OMAR" and row[3] == f"{want.concordant} of 6" and row[4] == "MA-TD3+BC"
    assert _estimate(row[5]) == pytest.approx((want.margin_ours.value, want.margin_ours.low, want.margin_ours.high), abs=0.051)
    assert _estimate(row[6]) == pytest.approx((want.margin_paper.value, want.margin_paper.low, want.margin_paper.high), abs=0.051)
    assert row[7] == ("yes" if want.margins_agree else "no")
    assert _row(section, "World", "Expert")[8] == "needs 2 current seeds of every method (has MA-ICQ 0, MA-TD3+BC 0, MA-CQL 0, OMAR 1)"
    assert _row(section, "Predator-prey", "Expert")[8] == "not run"
    # without a complete cell anywhere the page has no such section
    assert "### Agreement" not in build_page(DATA / "results", None, tmp_path)


def test_the_committed_page_is_the_report_of_the_committed_summaries(tmp_path):
    """docs/results.md is exactly what `omar report` makes of results/ (a summary committed without
    the regenerated page, or a page edited by hand, fails here), and it links the figures it writes."""
    root = Path(__file__).resolve().parents[1]
    from omar_lightning.reproduce.report import write_report

    write_report(root / "results", tmp_path / "docs" / "results.md", tmp_path / "docs" / "figures")
    page = (tmp_path / "docs" / "results.md").read_text()
    assert page == (root / "docs" / "results.md").read_text()
    written = sorted(p.name for p in (tmp_path / "docs" / "figures").iterdir())
    assert written and all(f"(figures/{name})" in page for name in written)
    assert set(written) <= {p.name for p in (root / "docs" / "figures").iterdir()}
