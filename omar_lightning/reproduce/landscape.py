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
from omar_lightning.nets import clip_grad_norm_per_member_
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


def actor_step(module: Any, batch: dict[str, torch.Tensor], optimizer_state: dict[str, Any], tau: float, refinement: Refinement) -> Any:
    """A copy of ``module`` after one actor update with ``tau`` (0: MA-CQL) from the saved optimizer state."""
    m = copy.deepcopy(module).train()
    m.hparams.tau = tau
    m.refinement = refinement
    opt = torch.optim.Adam(m.actor.parameters(), lr=m.hparams.actor_lr)
    opt.load_state_dict(optimizer_state)
    loss, _ = m.actor_objective(batch["obs"], batch["actions"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if m.hparams.grad_clip > 0:
        clip_grad_norm_per_member_(list(m.actor.parameters()), m.actor.net.members, m.num_agents, m.hparams.grad_clip)
    opt.step()
    return m.eval()


def landscape_of_run(run_dir: Path, config: dict[str, Any], root: Path, omar_config: Path, agent: int = 0, grid: int = 41, row: int = 0) -> dict[str, Any]:
    """The figure's data for a finished run in ``run_dir`` (its ``config`` as run); the OMAR update
    takes tau and the sampler from ``omar_config`` (OMAR's config for the same task and tier)."""
    from omar_lightning.evaluate_cli import load_checkpoint

    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    module, _ = load_checkpoint(ckpt_path)
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    data = config["data"]
    omar_config = compose(root, config_chain(str(omar_config)))["model"]["init_args"]
    from omar_lightning.reproduce.runner import dataset_path

    ds = load_dataset(root / dataset_path(config))
    store = {k: stack_padded(getattr(ds, k)) for k in ("obs", "actions", "rewards", "next_obs", "dones")}
    torch.manual_seed(int(data.get("seed", 0)))
    batch = MinibatchStream(store, int(data.get("batch_size", 1024)), seed=int(data.get("seed", 0))).batch(module.updates)
    obs = store["obs"][:, row : row + 1]
    module.eval()
    axis, q = q1_grid(module, obs, agent, grid)
    with torch.no_grad():
        before = module.actor(obs)[agent, 0, :2]
    state = checkpoint["optimizer_states"][0]  # configure_optimizers returns (actor, critic)
    after = {}
    for name, tau, refinement in (("macql", 0.0, module.refinement), ("omar", float(omar_config["tau"]), Refinement(**omar_config.get("refinement", {})))):
        torch.manual_seed(0)  # the refinement's samples
        updated = actor_step(module, batch, state, tau, refinement)
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
        "omar_tau": float(omar_config["tau"]),
    }
