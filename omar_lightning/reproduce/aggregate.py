"""Aggregate statistics over runs and tasks (Agarwal et al., 2021), computed with ``rliable``.

The protocol marl-eval and OG-MARL use: a method's scores on a benchmark are a matrix of shape
``(runs, tasks)`` (here runs are seeds and tasks are (task, tier) datasets of a study), summarised
by the interquartile mean (IQM), the optimality gap, the probability of improvement over another
method and the performance profile, each with a 95% confidence interval from the stratified
bootstrap: every resample draws, within each task independently, as many runs as the method has
there, with replacement; the tasks themselves are not resampled (rliable's
``task_bootstrap=False``). Intervals are percentile intervals.

Scores are normalized scores on this project's 0..100 scale (0: S_random, 100: S_expert, as
``omar_lightning/reproduce/summary.py`` makes them), so the optimality gap's threshold is 100, the
expert's score, where rliable's default (1) is for scores on a 0..1 scale.

Deterministic: rliable's bootstrap draws its indices from NumPy's global generator (its
``random_state`` argument does not reach them), so every estimate seeds that generator with
``seed`` first and puts the caller's state back afterwards; an estimate depends only on its own
scores, the seed and the number of resamples.

Two statistics are computed here in one array operation instead of rliable's per-task or
per-threshold Python loops (scipy's Mann-Whitney U per task and resample dominated the report's
time): :func:`probability_of_improvement` equals ``rliable.metrics.probability_of_improvement``
and :func:`score_distribution` equals ``rliable.library.score_distributions`` (the tests check
both); the bootstrap and the intervals are rliable's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from rliable import library as rly
from rliable import metrics

RESAMPLES = 2000  # bootstrap resamples of every estimate (rliable's default for profiles and PoI, marl-eval's for PoI)
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
EXPERT = 100.0  # optimality gap threshold: the expert's normalized score on the 0..100 scale
PROFILE_THRESHOLDS = np.linspace(0.0, 150.0, 61)  # tau of the performance profiles, normalized score


@dataclass(frozen=True)
class Estimate:
    """A point estimate and its confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float


def _matrix(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name}: need a (runs, tasks) matrix with at least one run and one task, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name}: scores must be finite")
    return x


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """NumPy's global generator seeded with ``seed`` inside the block, the caller's state restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of a ``(runs, tasks)`` matrix: the mean of all run x task scores with
    the lowest and highest 25% left out (``rliable.metrics.aggregate_iqm``)."""
    return float(metrics.aggregate_iqm(_matrix(scores)))


def optimality_gap(scores: np.ndarray, threshold: float = EXPERT) -> float:
    """Mean of ``max(0, threshold - score)`` over all run x task scores of a ``(runs, tasks)``
    matrix (``rliable.metrics.aggregate_optimality_gap`` with ``gamma = threshold``)."""
    return float(metrics.aggregate_optimality_gap(_matrix(scores), threshold))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(X > Y): for each task, the probability that a run of X scores above a run of Y, ties
    counting half (the Mann-Whitney U statistic over ``n_x * n_y``), averaged over tasks.

    x: ``(runs_x, tasks)``, y: ``(runs_y, tasks)``; the same tasks in the same order.
    """
    x, y = _matrix(x, "x"), _matrix(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability of improvement: x has {x.shape[1]} tasks and y {y.shape[1]}; need the same tasks")
    diff = x[:, None, :] - y[None, :, :]  # (runs_x, runs_y, tasks)
    per_task = (diff > 0).mean(axis=(0, 1)) + 0.5 * (diff == 0).mean(axis=(0, 1))
    return float(per_task.mean())


def score_distribution(scores: np.ndarray, thresholds: Sequence[float] = PROFILE_THRESHOLDS) -> np.ndarray:
    """Performance profile: for each threshold tau, the fraction of run x task scores above tau.

    scores: ``(runs, tasks)``; returns ``(len(thresholds),)``.
    """
    x = _matrix(scores)
    return (x.reshape(-1, 1) > np.asarray(thresholds, dtype=np.float64)[None, :]).mean(axis=0)


def _interval(data: np.ndarray | list[np.ndarray], func: Callable[..., np.ndarray], resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rliable's point estimate and stratified-bootstrap percentile interval of ``func`` (``(k,)``
    and ``(2, k)``)."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    with _seeded(seed):
        points, intervals = rly.get_interval_estimates({"m": data}, func, method="percentile", reps=resamples,
                                                       confidence_interval_size=CONFIDENCE)
    return np.atleast_1d(np.asarray(points["m"], dtype=np.float64)), np.asarray(intervals["m"], dtype=np.float64).reshape(2, -1)


def iqm_and_optimality_gap(scores: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                           threshold: float = EXPERT) -> dict[str, Estimate]:
    """IQM and optimality gap of a ``(runs, tasks)`` matrix with 95% stratified-bootstrap intervals
    (one bootstrap for both): ``{"iqm": Estimate, "optimality_gap": Estimate}``."""
    x = _matrix(scores)
    point, ci = _interval(x, lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_optimality_gap(s, threshold)]), resamples, seed)
    return {name: Estimate(float(point[i]), float(ci[0, i]), float(ci[1, i])) for i, name in enumerate(("iqm", "optimality_gap"))}


def improvement(x: np.ndarray, y: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """P(X > Y) (:func:`probability_of_improvement`) with a 95% interval of the stratified bootstrap
    that resamples the runs of X and of Y independently, within each task. x: ``(runs_x, tasks)``,
    y: ``(runs_y, tasks)``."""
    x, y = _matrix(x, "x"), _matrix(y, "y")
    probability_of_improvement(x, y)  # checks the shapes before the bootstrap
    point, ci = _interval([x, y], lambda a, b: np.array([probability_of_improvement(a, b)]), resamples, seed)
    return Estimate(float(point[0]), float(ci[0, 0]), float(ci[1, 0]))


def performance_profile(scores: np.ndarray, thresholds: Sequence[float] = PROFILE_THRESHOLDS, resamples: int = RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray]:
    """The performance profile (:func:`score_distribution`) of a ``(runs, tasks)`` matrix at
    ``thresholds`` and its 95% band, with rliable's ``create_performance_profile``: ``(T,)`` and ``(2, T)``."""
    x = _matrix(scores)
    taus = np.asarray(thresholds, dtype=np.float64)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    with _seeded(seed):
        profiles, bands = rly.create_performance_profile({"m": x}, taus, custom_profile_func=score_distribution, method="percentile",
                                                         reps=resamples, confidence_interval_size=CONFIDENCE)
    return np.asarray(profiles["m"], dtype=np.float64), np.asarray(bands["m"], dtype=np.float64).reshape(2, -1)


@dataclass(frozen=True)
class Matrix:
    """A method's scores on the tasks of one scope: ``scores`` of shape ``(len(seeds), tasks)``
    (None when a task has no run), the seeds used, the tasks without a run and the (task, seed)
    runs left out because that seed did not finish on every task."""

    scores: np.ndarray | None
    seeds: tuple[int, ...]
    missing: tuple[int, ...]
    left_out: tuple[tuple[int, int], ...]


def complete_matrix(runs: Sequence[Mapping[int, float]]) -> Matrix:
    """The complete runs x tasks matrix of one method: ``runs[t]`` maps seed -> score on task ``t``.

    Uses the seeds finished on every task (rows in increasing seed order); the others are listed
    in ``left_out`` as (task index, seed), never dropped unsaid. A task without any run gives no
    matrix (``scores`` None, the task in ``missing``).
    """
    if not runs:
        raise ValueError("complete_matrix: need at least one task")
    missing = tuple(t for t, r in enumerate(runs) if not r)
    if missing:
        return Matrix(None, (), missing, ())
    seeds = tuple(sorted(set.intersection(*(set(r) for r in runs))))
    left_out = tuple((t, s) for t, r in enumerate(runs) for s in sorted(r) if s not in seeds)
    if not seeds:
        return Matrix(None, (), (), left_out)
    return Matrix(np.array([[r[s] for r in runs] for s in seeds], dtype=np.float64), seeds, (), left_out)
