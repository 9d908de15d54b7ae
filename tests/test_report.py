"""omar report: the results page and figures from committed summaries alone, deterministic."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from omar_lightning.reproduce.report import Results, _agents_rows
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
    row = next(r for r in _agents_rows(Results(summaries)) if r["n"] == 2)
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


def test_official_reuse_section_says_not_run_without_its_summaries():
    from omar_lightning.reproduce.report import _official_reuse_section

    assert _official_reuse_section(Results([]))[-2:] == ["not run", ""]


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


def _write_summary(root: Path, base: dict, algorithm: str, task: str, seed: int, score: float, version: int) -> None:
    s = copy.deepcopy(base)
    s["key"] = f"{algorithm}/{task}/medium/default/seed_{seed}"
    s["cell"].update(algorithm=algorithm, task=task, seed=seed)
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
    assert "A tier's tasks are the 3 above on that tier; \"All tiers\" takes all 12." in section

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
