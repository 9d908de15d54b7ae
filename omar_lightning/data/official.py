"""Facts of the official OMAR datasets: their names on disk and their levels.

The official code (ling-pan/OMAR, ``main.py``) reads a dataset from
``<dataset_dir>/<env_id>/<data_type>/seed_<seed>_data`` with ``env_id`` one of ``simple_spread``,
``simple_tag``, ``simple_world``, ``HalfCheetah-v2`` and ``data_type`` one of ``random``,
``medium-replay``, ``medium``, ``expert``. OG-MARL (instadeepai/og-marl) converted these files to
flashbax Vaults, ``omar/mpe/<scenario>.vlt`` and ``omar/mamujoco/2halfcheetah.vlt``, one vault uid
per tier (``Random``, ``Medium-Replay``, ``Medium``, ``Expert``), and lists each tier's level in
its dataset card (``docs/dataset_cards/omar.md``, from ``datacard_info.json``): the mean and
standard deviation of the episode return of agent 0 (the first predator in predator-prey, the
first adversary in world) over the episodes of the vault's first batch row, and the number of
transitions. :data:`LEVELS` holds that table.
"""

from __future__ import annotations

from dataclasses import dataclass

from omar_lightning.data.format import TIERS

#: Our tier name -> the official ``data_type`` folder name (our names with a hyphen).
OFFICIAL_TIERS: dict[str, str] = {tier: tier.replace("_", "-") for tier in TIERS}

#: Our tier name -> the uid of the tier in OG-MARL's OMAR vaults.
VAULT_UIDS: dict[str, str] = {"random": "Random", "medium_replay": "Medium-Replay", "medium": "Medium", "expert": "Expert"}

#: Our task name -> the official ``env_id`` (the folder name of the official files).
OFFICIAL_ENV_IDS: dict[str, str] = {
    "cooperative_navigation": "simple_spread",
    "predator_prey": "simple_tag",
    "world": "simple_world",
    "halfcheetah_2x3": "HalfCheetah-v2",
}

#: Our task name -> the vault name in OG-MARL's ``prior_work/omar`` collection (``<name>.vlt``).
VAULT_NAMES: dict[str, str] = {
    "cooperative_navigation": "simple_spread",
    "predator_prey": "simple_tag",
    "world": "simple_world",
    "halfcheetah_2x3": "2halfcheetah",
}

#: Tasks whose official files hold per-agent ``states_<i>.npy`` and ``next_states_<i>.npy``
#: (the official loader reads them when the environment is MaMuJoCo).
TASKS_WITH_STATES = ("halfcheetah_2x3",)


@dataclass(frozen=True)
class Level:
    """One official tier: agent 0's episode return (mean, std) and the number of transitions."""

    mean: float
    std: float
    transitions: int


#: The official tiers' levels (OG-MARL's OMAR dataset card), by our task and tier names.
#: Agent counts: the learning agents of each task (the official files also hold the fixed prey
#: of predator-prey and the fixed good agent of world, after the learners).
LEVELS: dict[str, dict[str, Level]] = {
    "cooperative_navigation": {
        "random": Level(159.57, 60.46, 1_000_000),
        "medium_replay": Level(203.74, 80.49, 97_500),
        "medium": Level(273.39, 92.06, 1_000_000),
        "expert": Level(530.95, 71.41, 1_000_000),
    },
    "predator_prey": {
        "random": Level(-4.13, 10.81, 1_000_000),
        "medium_replay": Level(3.90, 20.28, 62_500),
        "medium": Level(116.36, 58.86, 1_000_000),
        "expert": Level(207.90, 77.51, 1_000_000),
    },
    "world": {
        "random": Level(-6.83, 5.74, 1_000_000),
        "medium_replay": Level(1.23, 13.49, 80_000),
        "medium": Level(65.86, 29.55, 1_000_000),
        "expert": Level(85.21, 31.11, 1_000_000),
    },
    "halfcheetah_2x3": {  # MuJoCo 2.0
        "random": Level(-282.89, 77.50, 1_000_000),
        "medium_replay": Level(423.49, 655.68, 460_000),
        "medium": Level(1568.87, 273.38, 1_000_000),
        "expert": Level(3338.69, 252.58, 1_000_000),
    },
}

#: Learning agents of the official runs, by task (cooperative navigation: 3 agents; predator-prey
#: and world: 3 predators / adversaries; HalfCheetah 2x3: 2 agents).
OFFICIAL_LEARNERS: dict[str, int] = {"cooperative_navigation": 3, "predator_prey": 3, "world": 3, "halfcheetah_2x3": 2}

#: All agents of the official environments, whose files the official loader reads: the learners
#: first, then the fixed prey of ``simple_tag`` and the fixed good agent of ``simple_world``
#: (the official scenarios make ``agent.adversary = i < num_adversaries``).
OFFICIAL_AGENTS: dict[str, int] = {"cooperative_navigation": 3, "predator_prey": 4, "world": 4, "halfcheetah_2x3": 2}

#: A level is matched when its mean lies within this fraction of the official mean ...
RELATIVE_TOLERANCE = 0.05
#: ... or within this many return points of it, whichever is wider (the negative random tiers of
#: predator-prey and world lie near zero, where a ratio means nothing).
ABSOLUTE_TOLERANCE = 2.0


def tolerance(official_mean: float) -> float:
    """Largest distance of a mean return from ``official_mean`` that still matches the level."""
    return max(RELATIVE_TOLERANCE * abs(official_mean), ABSOLUTE_TOLERANCE)
