"""The algorithms' common LightningModule: actors, the update loop and its hooks; twin critics on top.

:class:`OfflineAlgorithm` owns what every algorithm does the same way: the agents' actors and their
Adam optimizer, manual optimization with a per-agent gradient clip, the update counter that ends
training at ``max_updates``, the RNG state and update counter in checkpoints, the checks before a
checkpoint is loaded, the DDP hooks (BatchNorm running statistics averaged over the processes) and
the evaluation steps. :class:`ActorCritic` adds decentralized (or centralized) twin critics, their
target networks and optimizer, and the critic step that runs before the actors' steps. Each
algorithm subclasses one of them and writes only its losses and its own settings:
:class:`omar_lightning.BC` the actor-only base; :class:`omar_lightning.OMAR`,
:class:`omar_lightning.MACQL`, :class:`omar_lightning.MATD3BC` (through
:class:`omar_lightning.cql.ConservativeActorCritic`) and :class:`omar_lightning.MAICQ` the other.
"""

from __future__ import annotations

import copy
import math
import random
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.strategies import DDPStrategy
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from omar_lightning.checkpoint_io import check_checkpoint
from omar_lightning.errors import CheckpointError
from omar_lightning.nets import Actor, JointContext, TwinCritic, clip_grad_norm_per_member_, parameter_members
from omar_lightning.update_version import UPDATE_VERSION


def _numpy_state() -> tuple:
    """NumPy's legacy RNG state with its key array as a tensor (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def check_setting(name: str, ok: bool, value: Any, need: str) -> None:
    """Raise ``ValueError("model.<name> must be <need>, got <value>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"model.{name} must be {need}, got {value!r}")


class OfflineAlgorithm(LightningModule):
    """Decentralized actors trained offline, one update per minibatch (manual optimization).

    All agents are computed together through the agent axis of the networks. An update calls
    :meth:`update` (here: ``actor_updates`` steps of :meth:`actor_objective`), then averages the
    BatchNorm running statistics over the processes and counts the update. Subclasses write
    :meth:`actor_objective` and, with more networks, :meth:`update` and ``configure_optimizers``.

    Args:
        obs_dims: observation size per agent (linked from the data module).
        act_dims: action size per agent (linked from the data module).
        hidden_dim: hidden units of every MLP.
        actor_lr: Adam learning rate of the actors.
        grad_clip: gradient-norm clip per agent and network (0 disables).
        input_norm: BatchNorm1d on network inputs.
        max_updates: gradient updates (of all agents) before training stops.
        actor_updates: actor gradient steps per update, each on the same minibatch (after the
            critic step where there are critics; the paper's Table 2 runs MA-CQL with 1, 5 and 20).
    """

    def __init__(
        self,
        obs_dims: list[int],
        act_dims: list[int],
        hidden_dim: int = 64,
        actor_lr: float = 0.01,
        grad_clip: float = 0.5,
        input_norm: bool = True,
        max_updates: int = 2000,
        actor_updates: int = 1,
    ) -> None:
        super().__init__()
        check_setting("obs_dims", len(obs_dims) > 0 and len(obs_dims) == len(act_dims), obs_dims, "one size per agent, as many as act_dims")
        check_setting("obs_dims", all(d >= 1 for d in obs_dims), obs_dims, "sizes >= 1")
        check_setting("act_dims", all(d >= 1 for d in act_dims), act_dims, "sizes >= 1")
        check_setting("actor_lr", 0 < actor_lr < math.inf, actor_lr, "finite and > 0")
        check_setting("hidden_dim", hidden_dim >= 1, hidden_dim, ">= 1")
        check_setting("max_updates", max_updates >= 1, max_updates, ">= 1")
        check_setting("actor_updates", actor_updates >= 1, actor_updates, ">= 1")
        check_setting("grad_clip", 0 <= grad_clip < math.inf, grad_clip, "finite and >= 0")
        # Collects the settings of every __init__ in the chain (subclasses' included); a setting that
        # is not plain data (OMAR's refinement) is stored by its class as plain types.
        self.save_hyperparameters(ignore=["refinement"])
        self.automatic_optimization = False
        self.num_agents = len(obs_dims)
        self.actor = Actor(obs_dims, act_dims, hidden_dim, input_norm)
        self.register_buffer("act_dims_t", torch.tensor(act_dims, dtype=torch.float32), persistent=False)
        self.updates = 0
        # Member count of every parameter, in optimizer order, for the per-agent gradient clip.
        self._members = {"actor": parameter_members(self.actor)}

    # ----------------------------------------------------------------- wiring
    def settings(self) -> dict[str, Any]:
        """The module's settings as plain data (its ``__init__`` arguments), to build a sibling from."""
        return {k: copy.deepcopy(v) for k, v in self.hparams.items() if not k.startswith("_")}

    def target_pairs(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """(online, target) module pairs for the soft-update callback: none without critics."""
        return []

    def configure_optimizers(self):
        return [torch.optim.Adam(self.actor.parameters(), lr=self.hparams.actor_lr)]

    def forward(self, obs: Tensor) -> Tensor:
        """Deterministic actions of all agents: obs [A, B, obs_dim] -> [A, B, act_dim]."""
        return self.actor(obs)

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The actors' loss (summed over agents) and metrics at ``obs``, ``act`` [A, B, *]."""
        raise NotImplementedError

    # ----------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        # Each update of an actor-critic runs two backward passes (critics, then actors), each
        # reaching only its own networks: DDP must mark the other networks' parameters unused.
        if type(strategy) is DDPStrategy and not getattr(strategy, "_ddp_kwargs", {}).get("find_unused_parameters", False):
            raise ValueError(
                "trainer.strategy: DDP needs find_unused_parameters (two backward passes per update, each over "
                "only the critics or only the actors): use --trainer.strategy ddp_find_unused_parameters_true"
            )
        # SyncBatchNorm would replace the per-agent BatchNorm (one statistics slice per agent and
        # twin) by a plain one over all members, breaking the networks' forward pass.
        if getattr(strategy, "_layer_sync", None) is not None:
            raise ValueError(
                "trainer.sync_batchnorm must be false: OMAR's per-agent BatchNorm normalises each process's "
                "own minibatch and its running statistics are averaged over processes after every update"
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> int | None:
        if self.updates >= self.hparams.max_updates:  # resumed from a finished run
            self.trainer.should_stop = True
            return -1
        return None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Ending the epoch here lets end-of-epoch hooks (final checkpoint) run after the last update.
        if self.updates >= self.hparams.max_updates:
            self.trainer.should_stop = True

    def optimizer_list(self) -> list[Any]:
        """The optimizers in ``configure_optimizers`` order (the actors' first)."""
        opts = self.optimizers()
        return list(opts) if isinstance(opts, (list, tuple)) else [opts]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        metrics = self.update(batch)
        self.sync_running_stats()
        self.updates += 1
        # Log only on the steps the loggers write (log_every_n_steps): self.log costs ~1 ms a call.
        if self._trainer is not None and self.updates % self._trainer.log_every_n_steps == 0:
            self.log_dict(metrics, on_step=True, on_epoch=False)
            self.log("updates", float(self.updates), on_step=True, on_epoch=False, prog_bar=True)
            self.log("step", float(self.updates), on_step=True, on_epoch=False)  # the loggers' step: logs are indexed by update

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One update's optimizer steps on ``batch``; returns its metrics. Here: the actors'."""
        return self.actor_update(batch, self.optimizer_list()[0])

    def actor_update(self, batch: dict[str, Tensor], actor_opt: Any) -> dict[str, Tensor]:
        """``actor_updates`` steps of :meth:`actor_objective` on the same minibatch.

        The optimizer is toggled so that only the actors require gradients: under DDP
        (find_unused_parameters) the other networks are then marked unused for that backward pass.
        """
        self.toggle_optimizer(actor_opt)
        for _ in range(self.hparams.actor_updates):
            loss_a, metrics = self.actor_objective(batch["obs"], batch["actions"])
            self.gradient_step(actor_opt, loss_a, "actor")
        self.untoggle_optimizer(actor_opt)
        return metrics

    def gradient_step(self, opt: Any, loss: Tensor, network: str) -> None:
        """Backward, per-agent gradient clip of ``network``'s parameters ("actor", "critic"), step.
        Outside a Trainer (an analysis of a loaded module) the backward pass is a plain one."""
        opt.zero_grad(set_to_none=True)
        if self._trainer is None:
            loss.backward()
        else:
            self.manual_backward(loss)
        if self.hparams.grad_clip > 0:
            params = [p for group in opt.param_groups for p in group["params"]]
            clip_grad_norm_per_member_(params, self._members[network], self.num_agents, self.hparams.grad_clip)
        opt.step()

    def running_stats(self) -> list[Tensor]:
        """BatchNorm running means and variances of all networks (online and target)."""
        return [
            t
            for m in self.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats
            for t in (m.running_mean, m.running_var)
        ]

    @torch.no_grad()
    def sync_running_stats(self) -> None:
        """Average the BatchNorm running statistics over all processes (no-op on one).

        Training normalises with each process's own batch statistics; the running statistics
        (used only by evaluation) are averaged after every update, so all processes keep
        identical networks, as the mean of the per-process exponential averages. One
        collective per update, over a few kilobytes.
        """
        trainer = self._trainer
        if trainer is None or trainer.world_size < 2:
            return
        stats = self.running_stats()
        if not stats:
            return
        flat = trainer.strategy.reduce(torch.cat([t.reshape(-1) for t in stats]), reduce_op="mean")
        offset = 0
        for t in stats:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    # ----------------------------------------------------------------- evaluation
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        from omar_lightning.evaluation import evaluate_and_log

        # During fit this is the evaluation after the last update: keep the eval/ curve's names.
        evaluate_and_log(self, prefix="eval" if self.trainer.state.fn == "fit" else "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        from omar_lightning.evaluation import evaluate_and_log

        evaluate_and_log(self, prefix="test")

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["omar"] = {
            "updates": self.updates,
            "update_version": UPDATE_VERSION,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": _numpy_state(),
                "python": random.getstate(),
            },
        }

    def upgrade_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Bring an older checkpoint's ``state_dict`` to this version's layout where that is
        possible, in place (or refuse with :class:`CheckpointError`). Here: nothing to do."""

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.upgrade_checkpoint(checkpoint)
        check_checkpoint(self, checkpoint)  # one clear error before Lightning loads mismatched or non-finite weights
        state = checkpoint.get("omar", {})
        self.updates = int(state.get("updates", 0))
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            if rng["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            np.random.set_state(rng["numpy"][:1] + (rng["numpy"][1].numpy().astype(np.uint32),) + tuple(rng["numpy"][2:]))
            random.setstate(rng["python"])


class ActorCritic(OfflineAlgorithm):
    """Actors over twin critics (ITD3 backbone): each update steps the critics on
    :meth:`critic_objective`, then the actors against the updated critics.

    Target networks are updated by :class:`omar_lightning.callbacks.SoftTargetUpdate`.

    Args:
        critic_lr: Adam learning rate of the critics.
        gamma: discount.
        centralized: centralized critics (MATD3 style, Table 5): agent i's critics see every
            agent's observation and action of the same joint transition (the other agents' actions
            from the data, next actions from their target policies); policies stay decentralized.
            Needs ``data.joint_sampling: true``.
        **kwargs: the actors' settings (:class:`OfflineAlgorithm`).
    """

    def __init__(self, obs_dims: list[int], act_dims: list[int], critic_lr: float = 0.01, gamma: float = 0.95,
                 centralized: bool = False, **kwargs: Any) -> None:
        super().__init__(obs_dims, act_dims, **kwargs)
        check_setting("gamma", 0.0 <= gamma <= 1.0, gamma, "in [0, 1]")
        check_setting("critic_lr", 0 < critic_lr < math.inf, critic_lr, "finite and > 0")
        hp = self.hparams
        self.context = JointContext(obs_dims, act_dims) if centralized else None
        critic_in = self.context.dim if centralized else max(obs_dims)
        real_in = self.context.dims if centralized else obs_dims
        self.critic = TwinCritic(critic_in, max(act_dims), hp.hidden_dim, self.num_agents, hp.input_norm, obs_dims=real_in, act_dims=act_dims)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._members["critic"] = parameter_members(self.critic)

    def target_pairs(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """(online, target) module pairs for the soft-update callback."""
        return [(self.actor, self.actor_target), (self.critic, self.critic_target)]

    def configure_optimizers(self):
        critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.hparams.critic_lr)
        return [*super().configure_optimizers(), critic_opt]

    def critic_input(self, obs: Tensor, act: Tensor) -> Tensor:
        """What agent i's critic sees besides its own action: o_i, or the joint context."""
        return obs if self.context is None else self.context(obs, act)

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if self.hparams.centralized and dm is not None and not getattr(dm, "joint_sampling", False):
            raise ValueError("model.centralized needs data.joint_sampling: true (critics see one joint transition)")

    def critic_objective(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The twin critics' loss (summed over agents and twins) and metrics on ``batch``."""
        raise NotImplementedError

    def update(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Critics first, then the actors against the updated critics (each optimizer toggled)."""
        actor_opt, critic_opt = self.optimizer_list()
        self.toggle_optimizer(critic_opt)
        loss_c, critic_metrics = self.critic_objective(batch)
        self.gradient_step(critic_opt, loss_c, "critic")
        self.untoggle_optimizer(critic_opt)
        metrics = {**critic_metrics, "critic/loss": loss_c.detach() / self.num_agents}
        metrics.update(self.actor_update(batch, actor_opt))
        return metrics

    def upgrade_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints of update version 1 hold one input norm per twin critic (2 * A members).
        Training cannot continue from them (the twins now share one norm per agent); evaluating
        their policies can: the critics, which evaluation never uses, keep Q1's norms."""
        state = checkpoint.get("state_dict")
        if not isinstance(state, dict):
            return
        for prefix in ("critic", "critic_target"):
            own = getattr(self, prefix).net.norm
            old = state.get(f"{prefix}.net.norm.weight")
            if own is None or not torch.is_tensor(old) or old.numel() != 2 * own.weight.numel():
                continue
            trainer = self._trainer
            if trainer is not None and trainer.state.fn == "fit":
                where = getattr(trainer, "ckpt_path", None) or "the checkpoint"
                raise CheckpointError(
                    f"{where} was written by update version 1 (one input BatchNorm per twin critic); version "
                    f"{UPDATE_VERSION} cannot continue it: start the run afresh (its policies can still be evaluated)"
                )
            for name in ("weight", "bias", "running_mean", "running_var"):
                key = f"{prefix}.net.norm.{name}"
                if torch.is_tensor(state.get(key)):
                    state[key] = state[key][: own.weight.numel()].clone()
