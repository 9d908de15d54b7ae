"""Aggregate statistics (IQM, optimality gap, probability of improvement, profiles) against
values computed by hand and by an independent stratified bootstrap."""

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics
from scipy.stats import mannwhitneyu

from omar_lightning.reproduce import aggregate as agg

# 4 runs x 3 tasks, all twelve scores distinct.
HAND = np.array([[10.0, 50.0, 90.0], [20.0, 60.0, 100.0], [30.0, 70.0, 110.0], [40.0, 80.0, 120.0]])


def _middle_half_mean(x: np.ndarray) -> float:
    values = np.sort(x.ravel())
    cut = values.size // 4
    return float(values[cut:values.size - cut].mean())


def _pairs_probability(x: np.ndarray, y: np.ndarray) -> float:
    """Per task, wins + half the ties over all (run of x, run of y) pairs; mean over tasks."""
    per_task = []
    for t in range(x.shape[1]):
        wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x[:, t] for b in y[:, t])
        per_task.append(wins / (x.shape[0] * y.shape[0]))
    return float(np.mean(per_task))


def test_iqm_is_the_mean_of_the_middle_half_of_all_run_task_scores():
    assert agg.iqm(HAND) == pytest.approx((40 + 50 + 60 + 70 + 80 + 90) / 6)  # 65: sorted 10..120, 3 cut from each end
    assert agg.iqm(HAND) == pytest.approx(_middle_half_mean(HAND))
    odd = np.random.default_rng(3).normal(50, 30, size=(5, 2))  # 10 scores: 2 cut from each end
    assert agg.iqm(odd) == pytest.approx(_middle_half_mean(odd))


def test_optimality_gap_is_the_mean_shortfall_below_the_expert_score():
    # 100 - x where below 100: 90 50 10 80 40 0 70 30 0 60 20 0 -> 450 / 12
    assert agg.optimality_gap(HAND) == pytest.approx(37.5)
    assert agg.optimality_gap(HAND) == pytest.approx(float(np.maximum(0.0, 100.0 - HAND).mean()))
    assert agg.optimality_gap(HAND, threshold=50.0) == pytest.approx(float(np.maximum(0.0, 50.0 - HAND).mean()))
    assert agg.EXPERT == 100.0  # normalized scores are on 0..100, not rliable's default 0..1


def test_probability_of_improvement_is_the_mann_whitney_statistic_per_task_averaged():
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [0.0, 6.0]])
    # task 0: 4 wins and 1 tie of 6 pairs -> 0.75; task 1: 3 ties, 3 losses -> 0.25
    assert agg.probability_of_improvement(x, y) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    a, b = np.round(rng.normal(50, 20, (5, 4))), np.round(rng.normal(45, 20, (3, 4)))  # rounded: ties happen
    u = np.mean([mannwhitneyu(a[:, t], b[:, t], alternative="greater").statistic / (5 * 3) for t in range(4)])
    assert agg.probability_of_improvement(a, b) == pytest.approx(_pairs_probability(a, b))
    assert agg.probability_of_improvement(a, b) == pytest.approx(u)
    assert agg.probability_of_improvement(a, b) == pytest.approx(metrics.probability_of_improvement(a, b))
    assert agg.probability_of_improvement(a, a) == pytest.approx(0.5)
    assert agg.probability_of_improvement(a, b) + agg.probability_of_improvement(b, a) == pytest.approx(1.0)


def test_score_distribution_counts_runs_above_each_threshold_as_rliable():
    taus = np.array([0.0, 45.0, 100.0, 200.0])
    assert agg.score_distribution(HAND, taus) == pytest.approx([1.0, 8 / 12, 2 / 12, 0.0])  # > 100: 110 and 120
    rng = np.random.default_rng(1)
    x = rng.normal(60, 30, (5, 3))
    assert agg.score_distribution(x) == pytest.approx(rly.score_distributions(x, agg.PROFILE_THRESHOLDS))


def _bootstrap_iqm(x: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[float, float]:
    """Independent stratified bootstrap: within each task, draw its runs again with replacement."""
    runs, tasks = x.shape
    stats = [agg.iqm(x[rng.integers(0, runs, size=(runs, tasks)), np.arange(tasks)[None, :]]) for _ in range(resamples)]
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def test_intervals_bracket_the_estimates_and_match_an_independent_stratified_bootstrap():
    rng = np.random.default_rng(2)
    # Three tasks at very different levels: resampling the tasks too would widen the interval many times.
    x = rng.normal(0.0, 10.0, (6, 3)) + np.array([0.0, 50.0, 100.0])
    est = agg.iqm_and_optimality_gap(x)
    assert est["iqm"].value == pytest.approx(agg.iqm(x)) and est["optimality_gap"].value == pytest.approx(agg.optimality_gap(x))
    for e in est.values():
        assert e.low <= e.value <= e.high and e.low < e.high
    low, high = _bootstrap_iqm(x, 4000, np.random.default_rng(7))
    width = high - low
    assert est["iqm"].low == pytest.approx(low, abs=0.1 * width) and est["iqm"].high == pytest.approx(high, abs=0.1 * width)
    assert width < 25.0  # the tasks' levels (0, 50, 100) stay fixed


def test_intervals_are_reproducible_with_the_seed_and_shrink_with_more_runs():
    rng = np.random.default_rng(4)
    x, y = rng.normal(60, 20, (5, 3)), rng.normal(45, 20, (5, 3))
    np.random.seed(11)
    expected_next = np.random.random_sample(3)
    np.random.seed(11)
    first = agg.iqm_and_optimality_gap(x), agg.improvement(x, y), agg.performance_profile(x)
    assert np.random.random_sample(3) == pytest.approx(expected_next)  # the caller's global generator is left as it was
    again = agg.iqm_and_optimality_gap(x), agg.improvement(x, y), agg.performance_profile(x)
    assert first[0] == again[0] and first[1] == again[1]
    assert np.array_equal(first[2][1], again[2][1])
    other = agg.iqm_and_optimality_gap(x, seed=1)
    assert other["iqm"].value == first[0]["iqm"].value and (other["iqm"].low, other["iqm"].high) != (first[0]["iqm"].low, first[0]["iqm"].high)

    more_x, more_y = np.tile(x, (4, 1)), np.tile(y, (4, 1))  # the same scores, four times as many runs
    wide, narrow = agg.iqm_and_optimality_gap(x), agg.iqm_and_optimality_gap(more_x)
    for name in ("iqm", "optimality_gap"):
        assert narrow[name].high - narrow[name].low < 0.75 * (wide[name].high - wide[name].low)
    p, q = agg.improvement(x, y), agg.improvement(more_x, more_y)
    assert q.value == pytest.approx(p.value) and q.low <= q.value <= q.high
    assert q.high - q.low < 0.75 * (p.high - p.low)


def test_performance_profile_and_its_band():
    x = np.random.default_rng(5).normal(60, 25, (5, 3))
    profile, band = agg.performance_profile(x)
    assert profile.shape == agg.PROFILE_THRESHOLDS.shape and band.shape == (2,) + agg.PROFILE_THRESHOLDS.shape
    assert profile == pytest.approx(agg.score_distribution(x))
    assert np.all(np.diff(profile) <= 0) and np.all(band[0] <= profile + 1e-12) and np.all(profile <= band[1] + 1e-12)


def test_complete_matrix_uses_the_seeds_finished_on_every_task_and_names_the_rest():
    m = agg.complete_matrix([{0: 1.0, 1: 2.0, 2: 3.0}, {2: 6.0, 0: 4.0}, {0: 7.0, 1: 8.0, 2: 9.0, 3: 10.0}])
    assert m.seeds == (0, 2) and m.missing == ()
    assert np.array_equal(m.scores, [[1.0, 4.0, 7.0], [3.0, 6.0, 9.0]])
    assert m.left_out == ((0, 1), (2, 1), (2, 3))
    missing = agg.complete_matrix([{0: 1.0}, {}, {}])
    assert missing.scores is None and missing.missing == (1, 2)
    disjoint = agg.complete_matrix([{0: 1.0}, {1: 2.0}])
    assert disjoint.scores is None and disjoint.missing == () and disjoint.left_out == ((0, 0), (1, 1))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"x has 3 tasks and y 2"):
        agg.probability_of_improvement(HAND, HAND[:, :2])
    with pytest.raises(ValueError, match=r"scores: need a \(runs, tasks\) matrix"):
        agg.iqm(np.arange(4.0))
    with pytest.raises(ValueError, match="scores must be finite"):
        agg.optimality_gap(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="resamples must be >= 1"):
        agg.iqm_and_optimality_gap(HAND, resamples=0)
    with pytest.raises(ValueError, match="at least one task"):
        agg.complete_matrix([])
