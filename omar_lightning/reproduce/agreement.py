"""Where a cell of ours agrees with the paper's: winner, ordering and the reference method's margin.

A cell is one task and tier of a study. Ours are per-seed normalized scores of each method; the
paper's are a mean and a standard deviation over its 5 seeds. Compared per cell:

- **winner**: the method with the highest mean, ours against the paper's;
- **ordering**: of the pairs of methods both sides ran, how many both means order the same way
  (a tie on either side counts as discordant);
- **margin**: the reference method's (OMAR's) mean minus that of the paper's strongest other
  method in the cell (the same baseline on both sides, so the two margins measure one thing), with
  a 95% Welch confidence interval for a difference of two means:
  ``d ± t(0.975, df) * se``, ``se = sqrt(s1^2/n1 + s2^2/n2)``, Welch-Satterthwaite ``df``. ``s`` is
  the sample standard deviation (ddof 1) of our seeds; the paper's reported std is taken as its
  sample std over n = 5 (the paper does not say which it reports; the population std would make
  its intervals about 11% narrower). The margins agree when the two intervals overlap.
- **means**: per method, whether the 95% t-intervals of our mean and the paper's overlap.

Needs at least two seeds of ours for an interval; a method with fewer is left out of the margin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from omar_lightning.reproduce.aggregate import Estimate

PAPER_SEEDS = 5  # "Each algorithm is run for five random seeds" (Section 4)
CONFIDENCE = 0.95


Interval = Estimate  # a value and its confidence interval ``[low, high]`` (``aggregate.py``'s)


def overlaps(a: Interval, b: Interval) -> bool:
    """Whether two intervals share a point."""
    return bool(a.low <= b.high and b.low <= a.high)


@dataclass(frozen=True)
class CellAgreement:
    """The comparison of one cell; ``None`` where a side lacks what the comparison needs."""

    winner_ours: str | None
    winner_paper: str | None
    concordant: int  # pairs of methods ordered alike by both sides' means
    pairs: int  # pairs of methods both sides ran
    baseline: str | None  # the paper's strongest method other than the reference
    margin_ours: Interval | None
    margin_paper: Interval | None
    means_overlap: dict[str, bool]  # method -> do the 95% intervals of the two means overlap

    @property
    def same_winner(self) -> bool | None:
        return None if self.winner_ours is None or self.winner_paper is None else self.winner_ours == self.winner_paper

    @property
    def margins_agree(self) -> bool | None:
        return None if self.margin_ours is None or self.margin_paper is None else overlaps(self.margin_ours, self.margin_paper)


def _moments(scores: Sequence[float]) -> tuple[float, float, int]:
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError(f"scores must be a 1-D sequence of finite numbers, got {scores!r}")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else math.nan, int(x.size)


def mean_interval(mean: float, std: float, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The t-interval of a mean from its sample std over ``n`` >= 2 values."""
    if n < 2:
        raise ValueError(f"a confidence interval of a mean needs n >= 2 values, got n = {n}")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Interval(float(mean), float(mean - half), float(mean + half))


def welch_interval(a: tuple[float, float, int], b: tuple[float, float, int], confidence: float = CONFIDENCE) -> Interval:
    """The Welch interval of ``mean_a - mean_b`` from (mean, sample std, n) of each side (n >= 2)."""
    (ma, sa, na), (mb, sb, nb) = a, b
    if na < 2 or nb < 2:
        raise ValueError(f"a Welch interval needs n >= 2 on both sides, got {na} and {nb}")
    va, vb = sa * sa / na, sb * sb / nb
    d = ma - mb
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Interval(float(d), float(d), float(d))
    df = (va + vb) ** 2 / ((va * va / (na - 1) if va else 0.0) + (vb * vb / (nb - 1) if vb else 0.0))
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return Interval(float(d), float(d - half), float(d + half))


def _best(means: Mapping[str, float]) -> str | None:
    return max(means, key=means.get) if means else None


def compare(ours: Mapping[str, Sequence[float]], paper: Mapping[str, tuple[float, float]], reference: str = "omar",
            paper_seeds: int = PAPER_SEEDS) -> CellAgreement:
    """Compare one cell. ``ours``: method -> per-seed scores (a method without seeds is left out);
    ``paper``: method -> (mean, std over ``paper_seeds`` seeds)."""
    mine = {m: _moments(s) for m, s in ours.items() if len(s)}
    theirs = {m: (float(mean), float(std), paper_seeds) for m, (mean, std) in paper.items()}
    both = [m for m in theirs if m in mine]
    concordant = sum(np.sign(mine[a][0] - mine[b][0]) == np.sign(theirs[a][0] - theirs[b][0]) != 0
                     for i, a in enumerate(both) for b in both[i + 1:])
    baseline = _best({m: v[0] for m, v in theirs.items() if m != reference})
    margin_ours = margin_paper = None
    if reference in theirs and baseline is not None:
        margin_paper = welch_interval(theirs[reference], theirs[baseline])
        if reference in mine and baseline in mine and mine[reference][2] > 1 and mine[baseline][2] > 1:
            margin_ours = welch_interval(mine[reference], mine[baseline])
    overlap = {m: overlaps(mean_interval(*mine[m]), mean_interval(*theirs[m])) for m in both if mine[m][2] > 1}
    return CellAgreement(
        winner_ours=_best({m: v[0] for m, v in mine.items()}), winner_paper=_best({m: v[0] for m, v in theirs.items()}),
        concordant=int(concordant), pairs=len(both) * (len(both) - 1) // 2, baseline=baseline,
        margin_ours=margin_ours, margin_paper=margin_paper, means_overlap=overlap)


def _interval(i: Interval | None) -> str:
    return "–" if i is None else f"{i.value:+.1f} [{i.low:+.1f}, {i.high:+.1f}]"


def _yes(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "no")


def table(cells: Sequence[tuple[str, str, CellAgreement | None, str]], names: Mapping[str, str], reference: str = "omar") -> list[str]:
    """Markdown rows, one per cell: (task name, tier name, its comparison or ``None``, why none)."""
    ref = names.get(reference, reference)
    out = [f"| task | tier | best (ours / paper) | pairs ordered alike | {ref} − the paper's best baseline | ours [95% CI] | paper [95% CI] "
           "| margins overlap | means overlapping the paper's |",
           "|---|---|---|---|---|---|---|---|---|"]
    for task, tier, c, why in cells:
        if c is None:
            out.append(f"| {task} | {tier} | – | – | – | – | – | – | {why} |")
            continue
        overlapping = [names.get(m, m) for m, ok in c.means_overlap.items() if ok]
        out.append(f"| {task} | {tier} | {names.get(c.winner_ours, c.winner_ours)} / {names.get(c.winner_paper, c.winner_paper)} "
                   f"| {c.concordant} of {c.pairs} | {names.get(c.baseline, c.baseline)} | {_interval(c.margin_ours)} | "
                   f"{_interval(c.margin_paper)} | {_yes(c.margins_agree)} | {len(overlapping)} of {len(c.means_overlap)}"
                   + (f": {', '.join(overlapping)}" if overlapping else "") + " |")
    return out
