"""Per-cell agreement with the paper (omar_lightning/reproduce/agreement.py) against independent computations."""

import math

import numpy as np
import pytest
from scipy import stats

from omar_lightning.reproduce import agreement as ag


def test_welch_interval_matches_scipy_on_raw_scores():
    a = [31.2, 36.9, 27.4, 40.1, 33.0]
    b = [18.5, 20.9, 16.7]
    want = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    got = ag.welch_interval((np.mean(a), np.std(a, ddof=1), len(a)), (np.mean(b), np.std(b, ddof=1), len(b)))
    assert got.value == pytest.approx(np.mean(a) - np.mean(b))
    assert (got.low, got.high) == (pytest.approx(want.low), pytest.approx(want.high))


def test_welch_interval_from_paper_statistics_by_hand():
    # Table 3, cooperative navigation medium: OMAR 47.9 +- 18.9, MA-CQL 34.1 +- 7.2, 5 seeds each.
    va, vb = 18.9**2 / 5, 7.2**2 / 5
    df = (va + vb) ** 2 / (va**2 / 4 + vb**2 / 4)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    got = ag.welch_interval((47.9, 18.9, 5), (34.1, 7.2, 5))
    assert got.value == pytest.approx(13.8)
    assert got.low == pytest.approx(13.8 - half) and got.high == pytest.approx(13.8 + half)
    assert 5.0 < df < 6.0  # unequal variances: well under the pooled 8 degrees of freedom


def test_mean_interval_is_the_t_interval():
    x = [1.0, 2.0, 4.0, 7.0]
    want = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    got = ag.mean_interval(np.mean(x), np.std(x, ddof=1), len(x))
    assert (got.low, got.high) == (pytest.approx(want[0]), pytest.approx(want[1]))


def test_zero_spread_gives_a_point_interval():
    got = ag.welch_interval((3.0, 0.0, 3), (1.0, 0.0, 2))
    assert (got.value, got.low, got.high) == (2.0, 2.0, 2.0)


def test_compare_on_a_hand_made_cell():
    ours = {"maicq": [10.0, 12.0, 11.0], "matd3bc": [30.0, 34.0], "macql": [20.0, 22.0, 21.0], "omar": [40.0, 44.0, 42.0]}
    # Paper order by mean: OMAR > MA-CQL > MA-TD3+BC > MA-ICQ; ours: OMAR > MA-TD3+BC > MA-CQL > MA-ICQ.
    paper = {"maicq": (5.0, 1.0), "matd3bc": (15.0, 2.0), "macql": (25.0, 3.0), "omar": (35.0, 4.0)}
    c = ag.compare(ours, paper)
    assert (c.winner_ours, c.winner_paper, c.same_winner) == ("omar", "omar", True)
    assert (c.concordant, c.pairs) == (5, 6)  # only MA-TD3+BC vs MA-CQL is ordered the other way
    assert c.baseline == "macql"
    assert c.margin_ours.value == pytest.approx(42.0 - 21.0)
    assert c.margin_paper.value == pytest.approx(10.0)
    # ours: both sides' sample std 2 and 1 over 3 seeds
    va, vb = 4.0 / 3, 1.0 / 3
    half = stats.t.ppf(0.975, (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)) * math.sqrt(va + vb)
    assert c.margin_ours.low == pytest.approx(21.0 - half)
    # paper margin 10 +- about 5.7, ours 21 +- about 5.6: the intervals do not overlap
    assert c.margins_agree is False
    # means: MA-ICQ ours 11 [8.5, 13.5] vs paper 5 [3.8, 6.2] -> apart; OMAR 42 [37.0, 47.0] vs 35 [30.0, 40.0] -> overlap
    assert c.means_overlap["maicq"] is False and c.means_overlap["omar"] is True


def test_compare_with_one_seed_has_no_margin_or_mean_interval():
    c = ag.compare({"macql": [20.0], "omar": [30.0, 31.0]}, {"macql": (25.0, 3.0), "omar": (35.0, 4.0)})
    assert c.margin_ours is None and c.margin_paper is not None and c.margins_agree is None
    assert set(c.means_overlap) == {"omar"}
    assert (c.concordant, c.pairs) == (1, 1)


def test_ties_count_as_discordant():
    c = ag.compare({"macql": [20.0, 20.0], "omar": [20.0, 20.0]}, {"macql": (25.0, 3.0), "omar": (35.0, 4.0)})
    assert (c.concordant, c.pairs) == (0, 1)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="n >= 2"):
        ag.welch_interval((1.0, 0.5, 1), (0.0, 0.5, 5))
    with pytest.raises(ValueError, match="finite"):
        ag.compare({"omar": [1.0, float("nan")]}, {"omar": (1.0, 1.0)})


def test_table_renders_each_cell():
    c = ag.compare({"macql": [20.0, 22.0], "omar": [40.0, 44.0]}, {"macql": (25.0, 3.0), "omar": (35.0, 4.0)})
    rows = ag.table([("Task", "Medium", c, ""), ("Task", "Expert", None, "not run")], {"macql": "MA-CQL", "omar": "OMAR"})
    assert rows[2].startswith("| Task | Medium | OMAR / OMAR | 1 of 1 | MA-CQL | +21.0 [")
    assert rows[3] == "| Task | Expert | – | – | – | – | – | – | not run |"
