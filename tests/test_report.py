"""omar report: the results page and figures from committed summaries alone, deterministic."""

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from omar_lightning.reproduce.report import Results, _agents_rows

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
