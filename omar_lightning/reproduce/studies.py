"""The paper's studies as lists of cells: one cell is one ``omar fit`` of a committed config with a seed.

A cell is identified by its config file, its overrides and its seed, not by the study that asks
for it: Table 3's OMAR runs on cooperative navigation are also Table 4's Gaussian-sampler row and
the N = 3 point of the agent-count study, and run once.

A cell's config ``<root>/<algorithm>/<task>/<tier>[_centralized].yaml`` holds what is its own;
``omar fit`` takes it after the bases it builds on (``config_chain``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omar_lightning.data.format import MINIBATCHES, TIERS

ALGORITHMS = ("maicq", "matd3bc", "macql", "omar")
MPE_TASKS = ("cooperative_navigation", "predator_prey", "world")
AGENT_COUNTS = (1, 2, 3, 4, 5)
TAUS = (0.1, 0.3, 0.5, 0.7, 0.9)
ACTOR_LRS = (0.01, 0.05, 0.1)
ACTOR_UPDATES = (1, 5, 20)
SAMPLERS = ("random", "cem", "gaussian")


def spread(n: int) -> str:
    """Cooperative navigation (spread) with ``n`` agents and ``n`` landmarks; 3 is the paper's default task."""
    return "cooperative_navigation" if n == 3 else f"cooperative_navigation_n{n}"


def line_spread(n: int) -> str:
    """The paper's Section 3.1 Spread: ``n`` agents and ``n`` landmarks on a line, 1-D actions
    (``env_kwargs: {num_agents: n, layout: line, variant: official}``, its base's)."""
    return f"cooperative_navigation_line_n{n}"


LINE_TASKS = tuple(line_spread(n) for n in AGENT_COUNTS)

# Task families: the tasks whose cells share a base (``<root>/base/<family>.yaml``: trainer,
# callbacks, data settings) and each algorithm's settings (``<root>/<algorithm>/<family>.yaml``).
FAMILIES = {
    "mpe": MPE_TASKS + tuple(spread(n) for n in AGENT_COUNTS if n != 3) + LINE_TASKS,
    "halfcheetah": ("halfcheetah_2x3",),
}
# Tasks with a base of their own (``<root>/base/<task>.yaml``, after the family's): the N-agent
# spreads, whose environment takes ``num_agents``, and the spreads on a line.
OWN_BASES = tuple(spread(n) for n in AGENT_COUNTS if n != 3) + LINE_TASKS


def family(task: str) -> str:
    """The family of ``task`` (a key of ``FAMILIES``)."""
    for name, tasks in FAMILIES.items():
        if task in tasks:
            return name
    raise ValueError(f"task {task!r} is in no task family; families: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in FAMILIES.items()))


def config_chain(config: str) -> tuple[str, ...]:
    """The files ``omar fit`` takes, as ``--config`` files in this order, for the cell config
    ``<root>/<algorithm>/<task>/<name>.yaml``: the task family's base, the task's own base (the
    N-agent spreads), the algorithm's settings on the family, the cell. Later files override
    earlier ones setting by setting (LightningCLI's merge of several ``--config``)."""
    path = Path(config)
    if len(path.parts) < 3:
        raise ValueError(f"{config}: a cell config is <root>/<algorithm>/<task>/<name>.yaml")
    root, algorithm, task = path.parents[2], path.parent.parent.name, path.parent.name
    name = family(task)
    own = (str(root / "base" / f"{task}.yaml"),) if task in OWN_BASES else ()
    return (str(root / "base" / f"{name}.yaml"), *own, str(root / algorithm / f"{name}.yaml"), config)


def cell_chain(config: str) -> tuple[str, ...] | None:
    """:func:`config_chain` of ``config`` when it is a committed cell whose base files exist
    (``<root>/base/<family>.yaml`` beside ``<root>/<algorithm>/``), else None (a config of one's
    own, a base, ``quickstart.yaml``)."""
    path = Path(config)
    if len(path.parts) < 3 or path.parent.parent.name == "base":
        return None
    try:
        chain = config_chain(config)
    except ValueError:  # a folder that is no task of a family
        return None
    return chain if all(Path(p).is_file() for p in chain) else None


def with_bases(args: list[str]) -> list[str]:
    """Command-line arguments of ``omar fit|validate|test`` with each committed cell config given
    alone (``--config configs/omar/world/expert.yaml``) preceded by its bases, so a cell runs by its
    own name; a cell whose bases are already given before it is left as it is."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("--config", "-c") and i + 1 < len(args):
            flag, value, i = arg, args[i + 1], i + 2
        elif arg.startswith("--config="):
            flag, value, i = "--config", arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        given = {out[k + 1] for k in range(len(out) - 1) if out[k] in ("--config", "-c")}
        chain = cell_chain(value) or (value,)
        for path in chain[:-1]:
            if path not in given:
                out += [flag, path]
        out += [flag, value]
    return out


# Overrides are dotted keys into the config; these are the ones the studies vary.
_KEYS = {
    "sampler": "model.init_args.refinement.sampler",
    "tau": "model.init_args.tau",
    "actor_lr": "model.init_args.actor_lr",
    "actor_updates": "model.init_args.actor_updates",
    "minibatches": "data.minibatches",
}


def variant_name(variant: Iterable[tuple[str, Any]]) -> str:
    """A cell's variant as it names results and runs: ``name=value`` pairs joined by ``-``, or ``default``."""
    return "-".join(f"{name}={value}" for name, value in variant) or "default"


# Analyses run on a finished cell's checkpoints (``Cell.analysis``, ``landscape.ANALYSES``):
# "landscape", Q1 over one agent's 2-D action box at the run's last checkpoint; "landscape_1d", Q1
# over one agent's 1-D action, searched over every periodic checkpoint of the run. Those named
# here make their run keep all its periodic checkpoints (``configs.resolved``).
EVERY_CHECKPOINT = ("landscape_1d",)


@dataclass(frozen=True)
class Cell:
    """One run: ``config`` (relative to the repository root) with ``overrides`` and ``seed``."""

    algorithm: str
    task: str
    tier: str
    seed: int
    centralized: bool = False
    variant: tuple[tuple[str, Any], ...] = ()  # (name, value) pairs from _KEYS
    analysis: str | None = None  # run after training, a key of landscape.ANALYSES; "post" in summaries
    config_root: str = field(default="configs", compare=False)

    @property
    def config(self) -> str:
        suffix = "_centralized" if self.centralized else ""
        return f"{self.config_root}/{self.algorithm}/{self.task}/{self.tier}{suffix}.yaml"

    @property
    def configs(self) -> tuple[str, ...]:
        """The files ``omar fit`` takes for this cell, in order (``config_chain``)."""
        return config_chain(self.config)

    @property
    def overrides(self) -> dict[str, Any]:
        return {_KEYS[name]: value for name, value in self.variant}

    @property
    def variant_name(self) -> str:
        return variant_name(self.variant)

    @property
    def key(self) -> str:
        """Path of the cell's results, relative to the results directory (without ``.json``)."""
        suffix = "_centralized" if self.centralized else ""
        analysis = f"+{self.analysis}" if self.analysis else ""
        return f"{self.algorithm}/{self.task}/{self.tier}{suffix}/{self.variant_name}{analysis}/seed_{self.seed}"

    def describe(self) -> str:
        extra = f" {self.variant_name}" if self.variant else ""
        return f"{self.algorithm} {self.task} {self.tier}{' centralized' if self.centralized else ''}{extra} seed {self.seed}"


def _grid(seeds, **axes) -> list[dict[str, Any]]:
    names = list(axes)
    return [dict(zip(names, values), seed=seed) for seed in seeds for values in itertools.product(*axes.values())]


def _table3(seeds, tasks, tiers, algorithms):
    return [Cell(g["algorithm"], g["task"], g["tier"], g["seed"]) for g in _grid(seeds, task=tasks, tier=tiers, algorithm=algorithms)]


def _table5(seeds, tasks, tiers, algorithms):
    return [Cell(g["algorithm"], g["task"], g["tier"], g["seed"], centralized=True) for g in _grid(seeds, task=tasks, tier=tiers, algorithm=algorithms)]


def _table4(seeds, tasks, tiers, algorithms):
    return [
        Cell("omar", g["task"], g["tier"], g["seed"], variant=() if g["sampler"] == "gaussian" else (("sampler", g["sampler"]),))
        for g in _grid(seeds, task=tasks, tier=tiers, sampler=SAMPLERS)
    ]


def _tau(seeds, tasks, tiers, algorithms):
    return [
        Cell("omar", g["task"], g["tier"], g["seed"], variant=(("tau", g["tau"]),))
        for g in _grid(seeds, task=tasks, tier=tiers, tau=TAUS)
    ]


def _landscape(seeds, tasks, tiers, algorithms):
    return [Cell("macql", g["task"], g["tier"], g["seed"], analysis="landscape") for g in _grid(seeds, task=tasks, tier=tiers)]


def _landscape_1d(seeds, tasks, tiers, algorithms):
    return [Cell("macql", g["task"], g["tier"], g["seed"], analysis="landscape_1d") for g in _grid(seeds, task=tasks, tier=tiers)]


def _actor_lr_updates(seeds, tasks, tiers, algorithms):
    lrs = [Cell("macql", g["task"], g["tier"], g["seed"], variant=() if g["lr"] == 0.01 else (("actor_lr", g["lr"]),)) for g in _grid(seeds, task=tasks, tier=tiers, lr=ACTOR_LRS)]
    ups = [Cell("macql", g["task"], g["tier"], g["seed"], variant=(("actor_updates", g["n"]),)) for g in _grid(seeds, task=tasks, tier=tiers, n=ACTOR_UPDATES) if g["n"] != 1]
    return lrs + ups


def _official_reuse(seeds, tasks, tiers, algorithms):
    """Fresh minibatches (the default cells, Table 3's) against the official MPE loop's reuse of
    one evaluation period's minibatches (``data.minibatches: official_reuse``, period 10)."""
    return [
        Cell(g["algorithm"], g["task"], g["tier"], g["seed"], variant=() if g["m"] == "fresh" else (("minibatches", g["m"]),))
        for g in _grid(seeds, task=tasks, tier=tiers, algorithm=algorithms, m=MINIBATCHES)
    ]


@dataclass(frozen=True)
class Study:
    """A study's cells and the axes a user may restrict. ``tasks`` are the tasks it may run;
    ``default_tasks`` (all of ``tasks`` when None) the ones it runs without ``--tasks``."""

    name: str
    title: str
    build: Any
    tasks: tuple[str, ...]
    tiers: tuple[str, ...] = TIERS
    algorithms: tuple[str, ...] = ALGORITHMS
    default_tasks: tuple[str, ...] | None = None

    def cells(self, seeds=range(5), tasks=None, tiers=None, algorithms=None) -> list[Cell]:
        for axis, given, allowed in (("--tasks", tasks, self.tasks), ("--tiers", tiers, self.tiers), ("--algorithms", algorithms, self.algorithms)):
            bad = [v for v in given or () if v not in allowed]
            if bad:
                raise ValueError(f"{axis}: {', '.join(bad)} not in study {self.name!r} (choose from {', '.join(allowed)})")
        seeds = list(seeds)
        if not seeds or any(s < 0 for s in seeds):
            raise ValueError(f"--seeds: need at least one seed, all >= 0, got {seeds}")
        pick = lambda given, allowed: [v for v in allowed if v in given] if given else list(allowed)  # noqa: E731
        chosen_tasks = pick(tasks, self.tasks) if tasks else list(self.default_tasks or self.tasks)
        return self.build(seeds, chosen_tasks, pick(tiers, self.tiers), pick(algorithms, self.algorithms))


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study("table3", "Table 3: decentralized critics, MPE", _table3, MPE_TASKS),
        Study("table4", "Table 4: samplers of OMAR, cooperative navigation", _table4, ("cooperative_navigation",), algorithms=("omar",)),
        Study("table5", "Table 5: centralized critics, MPE", _table5, MPE_TASKS),
        Study("table6", "Table 6: 2-agent HalfCheetah", _table3, ("halfcheetah_2x3",)),
        Study("agents", "Figures 1c and 2: spread with N = 1..5 agents", _table3, tuple(spread(n) for n in AGENT_COUNTS), ("medium_replay",), ("macql", "omar")),
        Study("tau", "Figure 3: OMAR's tau", _tau, MPE_TASKS, algorithms=("omar",)),
        Study("landscape", "Figure 1d: Q-landscape of MA-CQL, 2-agent spread", _landscape, (spread(2),), ("medium_replay",), ("macql",)),
        Study("actor-lr-updates", "Tables 1 and 2: MA-CQL with a larger actor learning rate or more actor updates", _actor_lr_updates, (spread(2),), ("medium_replay",), ("macql",)),
        # Cooperative navigation by default; the other MPE tasks with --tasks.
        Study("official-reuse", "Fresh minibatches against the official loop's reuse, MPE", _official_reuse, MPE_TASKS, algorithms=("macql", "omar"),
              default_tasks=("cooperative_navigation",)),
        # Section 3.1 on its own Spread: 1-D actions, agents and landmarks on a line (LINE_TASKS).
        Study("line-curves", "Figure 1b on the line: MA-TD3+BC, MA-CQL and OMAR, 2-agent Spread with 1-D actions", _table3, (line_spread(2),), ("medium_replay",), ("matd3bc", "macql", "omar")),
        Study("line-agents", "Figures 1c and 2 on the line: Spread with 1-D actions, N = 1..5 agents", _table3, LINE_TASKS, ("medium_replay",), ("macql", "omar")),
        Study("line-landscape", "Figure 1d on the line: Q1 over one agent's 1-D action, 2-agent Spread", _landscape_1d, (line_spread(2),), ("medium_replay",), ("macql",)),
        Study("line-actor-lr-updates", "Tables 1 and 2 on the line: MA-CQL with a larger actor learning rate or more actor updates, 2-agent Spread with 1-D actions",
              _actor_lr_updates, (line_spread(2),), ("medium_replay",), ("macql",)),
    )
}


def study(name: str) -> Study:
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}")
    return STUDIES[name]


def missing_config(cell: Cell, root: Path) -> str | None:
    """The first of the cell's config files (``Cell.configs``) that does not exist, or None."""
    return next((f for f in cell.configs if not (root / f).is_file()), None)
