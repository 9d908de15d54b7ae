"""Figure 1d: Q1 over one agent's 2-D action box, and where one actor update moves its action.

From a trained MA-CQL run's final checkpoint: the critic's Q1 for agent ``agent`` and one
observation, on a ``grid x grid`` lattice of the action box [-1, 1]^2 (networks in eval mode, as
evaluation uses them); the actor's action there before the update, after one MA-CQL actor update
(tau = 0) and after one OMAR actor update (tau and sampler from OMAR's committed config for the same
task and tier), both from the same checkpoint, minibatch and optimizer state.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from omar_lightning.datamodules.offline import MinibatchStream, stack_padded
from omar_lightning.data import load_dataset
from omar_lightning.checkpoint_io import load_module
from omar_lightning.module import OMAR
from omar_lightning.refinement import Refinement
from omar_lightning.reproduce.configs import compose
from omar_lightning.reproduce.studies import config_chain


def q1_grid(module: Any, obs: torch.Tensor, agent: int, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Q1 of ``agent`` at ``obs`` [A, 1, D] on the lattice: (axis [grid], q [grid, grid] indexed [y, x])."""
    axis = torch.linspace(-1.0, 1.0, grid)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    box = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [grid^2, 2]
    acts = obs.new_zeros(obs.shape[0], box.shape[0], 1, int(module.act_dims_t.max()))
    acts[agent, :, 0, :2] = box
    with torch.no_grad():
        q = module.critic.sample_q(module.critic_input(obs, acts[:, 0]), acts, twins=1, per_sample=False)[0]  # [A, K, 1]
    return axis.numpy(), q[agent, :, 0].reshape(grid, grid).numpy()


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


def landscape_of_run(run_dir: Path, config: dict[str, Any], root: Path, omar_config: Path, dataset: Path, agent: int = 0, grid: int = 41,
                     row: int = 0) -> dict[str, Any]:
    """The figure's data for a finished run in ``run_dir`` (its ``config`` as run, trained on
    ``dataset``); the OMAR update takes tau and the sampler from ``omar_config`` (OMAR's config
    for the same task and tier)."""
    module, checkpoint = load_module(run_dir / "checkpoints" / "last.ckpt")
    data = config["data"]
    omar_config = compose(root, config_chain(str(omar_config)))["model"]["init_args"]
    ds = load_dataset(dataset)
    store = {k: stack_padded(getattr(ds, k)) for k in ("obs", "actions", "rewards", "next_obs", "dones")}
    torch.manual_seed(int(data.get("seed", 0)))
    batch = MinibatchStream(store, int(data.get("batch_size", 1024)), seed=int(data.get("seed", 0))).batch(module.updates)
    obs = store["obs"][:, row : row + 1]
    axis, q = q1_grid(module, obs, agent, grid)
    with torch.no_grad():
        before = module.actor(obs)[agent, 0, :2]
    state = checkpoint["optimizer_states"][0]  # configure_optimizers returns (actor, critic)
    omar_tau = float(omar_config["tau"])
    updates = {"macql": copy.deepcopy(module), "omar": as_omar(module, omar_tau, Refinement(**omar_config.get("refinement", {})))}
    after = {}
    for name, updated in updates.items():
        torch.manual_seed(0)  # the refinement's samples
        actor_step(updated, batch, state)
        with torch.no_grad():
            after[name] = updated.actor(obs)[agent, 0, :2].tolist()
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
