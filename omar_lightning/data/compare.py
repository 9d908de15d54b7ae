"""A dataset's level against the official tier's (:data:`omar_lightning.data.official.LEVELS`).

The level is measured as OG-MARL's dataset card measures it: the undiscounted return of agent 0
(the first learning agent) over each whole episode of the dataset's rows
(:mod:`omar_lightning.data.episodes`: episodes end at a termination, at the task's time limit or
where the rows stop continuing each other), its mean and standard deviation, and the number of
transitions. The mean matches when it lies within :func:`~omar_lightning.data.official.tolerance`
of the official mean (5%, or 2 return points where that is wider); the size matches when the
transitions are as many as the official tier's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from omar_lightning.data.episodes import return_stats, whole_episode_returns
from omar_lightning.data.format import OfflineDataset
from omar_lightning.data.official import LEVELS, OFFICIAL_LEARNERS, Level, tolerance


@dataclass(frozen=True)
class LevelComparison:
    task: str
    tier: str
    transitions: int
    episodes: int
    mean: float | None  # agent 0's mean episode return (None without a whole episode)
    std: float | None
    official: Level
    tolerance: float

    @property
    def difference(self) -> float | None:
        return None if self.mean is None else self.mean - self.official.mean

    @property
    def within(self) -> bool | None:
        """Whether the mean matches the official level (None without a whole episode)."""
        return None if self.mean is None else abs(self.difference) <= self.tolerance

    @property
    def same_size(self) -> bool:
        return self.transitions == self.official.transitions

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(difference=self.difference, within=self.within, same_size=self.same_size)
        return out


def compare_to_official(ds: OfflineDataset, tier: str | None = None) -> LevelComparison:
    """Agent 0's episode returns and the size of ``ds`` against the official ``tier`` (default:
    the dataset's own) of its task. ValueError when there is no official level to compare with:
    another task, tier or number of learning agents."""
    from omar_lightning.envs import task_spec

    task = ds.meta["task"]
    tier = tier or ds.meta["tier"]
    if task not in LEVELS:
        raise ValueError(f"no official level for task {task!r}; official tasks: {sorted(LEVELS)}")
    if tier not in LEVELS[task]:
        raise ValueError(f"no official tier {tier!r} (official tiers: {sorted(LEVELS[task])}); give --tier")
    spec = task_spec(task, **ds.meta.get("env_kwargs", {}))
    if spec.num_agents != OFFICIAL_LEARNERS[task]:
        raise ValueError(f"the official {task} tiers have {OFFICIAL_LEARNERS[task]} learning agents, this dataset {spec.num_agents}")
    returns = whole_episode_returns(ds.obs, ds.next_obs, ds.dones, ds.rewards, spec.episode_length, agent=0)
    stats = return_stats(returns)
    official = LEVELS[task][tier]
    return LevelComparison(task=task, tier=tier, transitions=ds.num_transitions, episodes=stats["count"], mean=stats["mean"],
                           std=stats["std"], official=official, tolerance=tolerance(official.mean))
