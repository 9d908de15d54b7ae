"""Figure 1d: Q1 over one agent's actions, and where one actor update moves its action.

``landscape`` (2-D actions, mpe2's spread): from a trained MA-CQL run's final checkpoint, the
critic's Q1 for agent ``agent`` and one observation, on a ``grid x grid`` lattice of the action box
[-1, 1]^2 (networks in eval mode, as evaluation uses them); the actor's action there before the
update, after one MA-CQL actor update (tau = 0) and after one OMAR actor update (tau and sampler
from OMAR's committed config for the same task and tier), both from the same checkpoint, minibatch
and optimizer state.

``landscape_1d`` (1-D actions, the Spread on a line of the paper's Section 3.1): the same two
updates from every periodic checkpoint of the run, each on the minibatch that the run's next
update draws there; the figure shows the checkpoint, agent and observation of that minibatch where
the two updated actions differ most (:func:`most_different`), with Q1 over the agent's action in
[-1, 1] at that observation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.datamodules.offline import MinibatchStream, stack_padded
from omar_lightning.data import load_dataset
from omar_lightning.checkpoint_io import load_module
from omar_lightning.module import OMAR
from omar_lightning.refinement import Refinement
from omar_lightning.reproduce.configs import compose
from omar_lightning.reproduce.studies import config_chain


def q1_of_actions(module: Any, obs: torch.Tensor, agent: int, actions: torch.Tensor) -> np.ndarray:
    """Q1 of ``agent`` at ``obs`` [A, 1, D] for each of ``actions`` [K, d] (the agent's first d
    action entries, the others 0), in the module's current mode: [K]."""
    acts = obs.new_zeros(obs.shape[0], actions.shape[0], 1, int(module.act_dims_t.max()))
    acts[agent, :, 0, : actions.shape[1]] = actions
    with torch.no_grad():
        q = module.critic.sample_q(module.critic_input(obs, acts[:, 0]), acts, twins=1, per_sample=False)[0]  # [A, K, 1]
    return q[agent, :, 0].numpy()


def q1_grid(module: Any, obs: torch.Tensor, agent: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Q1 of ``agent`` at ``obs`` [A, 1, D] on the lattice: (axis [grid], q [grid, grid] indexed [y, x])."""
    axis = torch.linspace(-1.0, 1.0, grid)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    box = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [grid^2, 2]
    return axis.numpy(), q1_of_actions(module, obs, agent, box).reshape(grid, grid)


def actor_step(module: Any, batch: dict[str, torch.Tensor], optimizer_state: dict[str, Any]) -> Any:
    """``module`` (changed in place, returned in eval mode) after one actor update on ``batch``
    from the saved actor optimizer state, through its own objective and gradient step."""
    module.train()
    opt = module.configure_optimizers()[0]  # the actors' optimizer comes first
    opt.load_state_dict(optimizer_state)
    loss, _ = module.actor_objective(batch["obs"], batch["actions"])
    module.gradient_step(opt, loss, "actor")
    return module.eval()


def as_omar(module: Any, tau: float, refinement: Refinement) -> OMAR:
    """An OMAR module with ``module``'s settings and weights (MA-CQL's: the same networks) and
    the given ``tau`` and sampler."""
    omar = OMAR(**{**module.settings(), "tau": tau, "refinement": refinement})
    omar.load_state_dict(module.state_dict())
    return omar


def _omar_update(root: Path, omar_config: Path) -> tuple[float, Refinement]:
    """tau and the sampler of OMAR's committed config (the same task and tier)."""
    settings = compose(root, config_chain(str(omar_config)))["model"]["init_args"]
    return float(settings["tau"]), Refinement(**settings.get("refinement", {}))


def landscape_of_run(run_dir: Path, config: dict[str, Any], root: Path, omar_config: Path, dataset: Path, agent: int = 0, grid: int = 41,
                     row: int = 0) -> dict[str, Any]:
    """The figure's data for a finished run in ``run_dir`` (its ``config`` as run, trained on
    ``dataset``); the OMAR update takes tau and the sampler from ``omar_config`` (OMAR's config
    for the same task and tier)."""
    module, checkpoint = load_module(run_dir / "checkpoints" / "last.ckpt")
    data = config["data"]
    omar_tau, refinement = _omar_update(root, omar_config)
    ds = load_dataset(dataset)
    store = {k: stack_padded(getattr(ds, k)) for k in ("obs", "actions", "rewards", "next_obs", "dones")}
    torch.manual_seed(int(data.get("seed", 0)))
    batch = MinibatchStream(store, int(data.get("batch_size", 1024)), seed=int(data.get("seed", 0))).batch(module.updates)
    obs = store["obs"][:, row : row + 1]
    axis, q = q1_grid(module, obs, agent, grid)
    acts = updated_actions(module, batch, checkpoint["optimizer_states"][0], omar_tau, refinement, at=obs)
    before, after = acts["before"][agent, 0, :2], {k: acts[k][agent, 0, :2].tolist() for k in ("macql", "omar")}
    best = np.unravel_index(int(np.argmax(q)), q.shape)
    return {
        "agent": agent,
        "dataset_row": row,
        "updates": int(module.updates),
        "axis": [round(float(v), 6) for v in axis],
        "q1": [[round(float(v), 5) for v in r] for r in q],
        "argmax": [float(axis[best[1]]), float(axis[best[0]])],
        "before": before.tolist(),
        "after_macql": after["macql"],
        "after_omar": after["omar"],
        "omar_tau": omar_tau,
    }


def updated_actions(module: Any, batch: dict[str, torch.Tensor], optimizer_state: dict[str, Any], tau: float,
                    refinement: Refinement, at: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """pi(o) of every agent at the observations ``at`` [A, B', D] (default: the minibatch's),
    [A, B', act_dim] in eval mode (as evaluation): ``before`` any update, after one MA-CQL actor
    update (``macql``: ``module``'s own objective) and after one OMAR actor update (``omar``: OMAR
    with ``module``'s weights, ``tau`` and ``refinement``), both on ``batch`` from the same weights
    and actor optimizer state (:func:`actor_step`); the refinement's draws come from
    ``torch.manual_seed(0)``. ``module`` (in eval mode) is left as it is."""
    at = batch["obs"] if at is None else at
    with torch.no_grad():
        out = {"before": module.actor(at)}
    for name, updated in (("macql", copy.deepcopy(module)), ("omar", as_omar(module, tau, refinement))):
        torch.manual_seed(0)  # the refinement's samples
        actor_step(updated, batch, optimizer_state)
        with torch.no_grad():
            out[name] = updated.actor(at)
    return out


def action_gap(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Euclidean distance between two agents' actions, [A, B, d] each -> [A, B]."""
    return torch.linalg.vector_norm(a - b, dim=-1).numpy()


def most_different(gaps: list[np.ndarray]) -> tuple[int, int, int]:
    """The rule that picks Figure 1d's step and observation on the line: (checkpoint, agent, row)
    of the largest entry of ``gaps`` (one [A, B] array per checkpoint, in update order: the
    distance between the MA-CQL-updated and the OMAR-updated action of agent a at row b of that
    checkpoint's minibatch); among equal ones, the earliest checkpoint, then agent, then row."""
    if not gaps:
        raise ValueError("no checkpoints to choose from")
    best: tuple[float, int, int, int] | None = None
    for c, gap in enumerate(gaps):
        agent, row = np.unravel_index(int(np.argmax(gap)), gap.shape)
        if best is None or gap[agent, row] > best[0]:
            best = (float(gap[agent, row]), c, int(agent), int(row))
    return best[1], best[2], best[3]


def periodic_checkpoints(directory: Path) -> list[Path]:
    """A run's periodic checkpoints (``updates=U.ckpt``, ``UpdateCheckpoint``'s names) in update order."""
    found = []
    for path in directory.glob("updates=*.ckpt"):
        try:
            found.append((int(path.stem.split("=", 1)[1]), path))
        except ValueError:
            continue  # another file
    if not found:
        raise ValueError(f"{directory}: no periodic checkpoints (updates=U.ckpt); the run must keep them (UpdateCheckpoint save_top_k: -1)")
    return [path for _, path in sorted(found)]


def landscape_1d_of_run(run_dir: Path, config: dict[str, Any], root: Path, omar_config: Path, dataset: Path, grid: int = 201) -> dict[str, Any]:
    """Figure 1d on the line for a finished MA-CQL run in ``run_dir`` (its ``config`` as run,
    trained on ``dataset``; OMAR's tau and sampler from ``omar_config``): from each periodic
    checkpoint, the MA-CQL and OMAR updated actions on the minibatch its next update draws (the
    data module's own stream, :func:`updated_actions`); at the (checkpoint, agent, row) that
    :func:`most_different` picks, Q1 of that agent over ``grid`` actions in [-1, 1] at that
    observation and at the three actions."""
    tau, refinement = _omar_update(root, omar_config)
    data = OfflineDataModule(**{**config["data"], "path": str(dataset)})
    data.setup("fit")
    stream = data.train_dataloader().dataset
    paths, search, gaps, updated = periodic_checkpoints(run_dir / "checkpoints"), [], [], []
    for path in paths:
        module, checkpoint = load_module(path)
        if getattr(module.hparams, "centralized", False) or not bool((module.act_dims_t == 1).all()):
            raise ValueError(f"{path}: the 1-D landscape needs decentralized critics and 1-D actions")
        acts = updated_actions(module, stream.batch(module.updates), checkpoint["optimizer_states"][0], tau, refinement)
        gaps.append(action_gap(acts["macql"], acts["omar"]))
        updated.append(acts)
        search.append({"updates": int(module.updates), "largest_gap": round(float(gaps[-1].max()), 6), "mean_gap": round(float(gaps[-1].mean()), 6)})
    index, agent, row = most_different(gaps)
    path, acts = paths[index], updated[index]
    module, _ = load_module(path)
    batch = stream.batch(module.updates)
    obs = batch["obs"][:, row : row + 1]
    axis = torch.linspace(-1.0, 1.0, grid)
    marks = torch.stack([acts[k][agent, row, :1] for k in ("before", "macql", "omar")])  # [3, 1]
    q, q_marks = q1_of_actions(module, obs, agent, axis[:, None]), q1_of_actions(module, obs, agent, marks)
    best = int(np.argmax(q))
    return {
        "agent": agent,
        "checkpoint": path.name,
        "updates": int(module.updates),
        "minibatch_row": row,
        "dataset_row": int(stream.indices(module.updates)[agent, row]),
        "actions": [round(float(v), 6) for v in axis],
        "q1": [round(float(v), 5) for v in q],
        "argmax": round(float(axis[best]), 6),
        "q1_argmax": float(q[best]),
        "before": float(marks[0, 0]),
        "after_macql": float(marks[1, 0]),
        "after_omar": float(marks[2, 0]),
        "q1_before": float(q_marks[0]),
        "q1_after_macql": float(q_marks[1]),
        "q1_after_omar": float(q_marks[2]),
        "gap": float(gaps[index][agent, row]),
        "omar_tau": tau,
        "search": search,
    }


# Cell.analysis -> what runs on the finished cell: (run_dir, config, root, omar_config, dataset) -> summary field.
ANALYSES = {"landscape": landscape_of_run, "landscape_1d": landscape_1d_of_run}
