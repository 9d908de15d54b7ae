"""The OMAR LightningModule: wiring and optimizer steps; the math lives in losses/refinement."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from pytorch_lightning import LightningModule
from pytorch_lightning.strategies import DDPStrategy
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from omar_lightning.checkpoint_io import check_checkpoint
from omar_lightning.errors import CheckpointError
from omar_lightning.losses import actor_loss, critic_loss, td_target, uniform_log_density
from omar_lightning.nets import Actor, JointContext, TwinCritic, clip_grad_norm_per_member_, parameter_members
from omar_lightning.refinement import Refinement
from omar_lightning.update_version import UPDATE_VERSION


def _numpy_state() -> tuple:
    """NumPy's legacy RNG state with its key array as a tensor (loadable with weights_only)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))


def _check(name: str, ok: bool, value: Any, need: str) -> None:
    if not ok:
        raise ValueError(f"model.{name} must be {need}, got {value!r}")


class OMAR(LightningModule):
    """Offline MARL with actor rectification over decentralized twin critics (ITD3 backbone).

    All agents (and both twins) are computed together through the agent axis of the networks.
    Every update: the twin critics minimise TD error plus ``cql_alpha`` times the CQL penalty
    (Eq. 1); then the actor minimises ``tau * mean((pi - a_hat)^2) - (1 - tau) * mean(Q1(o, pi))``
    (Eq. 2) with ``a_hat`` from zeroth-order refinement of Q1 (Eq. 3). ``tau = 0`` is MA-CQL.
    Target networks are updated by :class:`omar_lightning.callbacks.SoftTargetUpdate`.

    Args:
        obs_dims: observation size per agent (linked from the data module).
        act_dims: action size per agent (linked from the data module).
        hidden_dim: hidden units of every MLP.
        actor_lr: Adam learning rate of the actors.
        critic_lr: Adam learning rate of the critics.
        gamma: discount.
        tau: weight of the rectification term in Eq. (2), in [0, 1].
        cql_alpha: weight of the CQL penalty (0 disables it).
        cql_samples: uniform actions per observation in the CQL logsumexp (K).
        cql_policy_samples: also score ``cql_samples`` actions pi(o) + noise and pi(o') + noise
            at o, clamped to [-1, 1] (the CQL(H) mixture of the official HalfCheetah runs). As the
            official code, each kind of sample (uniform, pi(o) + noise, pi(o') + noise) is scored
            in its own critic call, so the input BatchNorm takes its batch statistics per kind.
        cql_policy_noise: standard deviation of that noise.
        cql_policy_correction: subtract the Gaussian's "log_density" (CQL(H)) or its "density"
            (as the official HalfCheetah code does) from the policy samples' Q-values.
        target_noise: std of the noise on the target policy's action (0: the official behaviour).
        target_noise_clip: clip of that noise.
        refinement: sampler and its settings.
        grad_clip: gradient-norm clip per agent and network (0 disables).
        action_l2: weight of mean(pi(o)^2) in the actor loss.
        input_norm: BatchNorm1d on network inputs.
        max_updates: gradient updates (of all agents) before training stops.
        actor_updates: actor gradient steps per update, each on the same minibatch against the
            updated critics (the paper's Table 2 runs MA-CQL with 1, 5 and 20).
        centralized: centralized critics (MATD3 style, Table 5): agent i's critics see every
            agent's observation and action of the same joint transition (the other agents' actions
            from the data, next actions from their target policies); policies stay decentralized.
            Needs ``data.joint_sampling: true``.
    """

    def __init__(
        self,
        obs_dims: list[int],
        act_dims: list[int],
        hidden_dim: int = 64,
        actor_lr: float = 0.01,
        critic_lr: float = 0.01,
        gamma: float = 0.95,
        tau: float = 1.0,
        cql_alpha: float = 1.0,
        cql_samples: int = 10,
        cql_policy_samples: bool = False,
        cql_policy_noise: float = 0.2,
        cql_policy_correction: str = "log_density",
        target_noise: float = 0.0,
        target_noise_clip: float = 0.5,
        refinement: Refinement = Refinement(),
        grad_clip: float = 0.5,
        action_l2: float = 1e-3,
        input_norm: bool = True,
        max_updates: int = 2000,
        actor_updates: int = 1,
        centralized: bool = False,
    ) -> None:
        super().__init__()
        _check("obs_dims", len(obs_dims) > 0 and len(obs_dims) == len(act_dims), obs_dims, "one size per agent, as many as act_dims")
        _check("tau", 0.0 <= tau <= 1.0, tau, "in [0, 1]")
        _check("gamma", 0.0 <= gamma <= 1.0, gamma, "in [0, 1]")
        _check("cql_alpha", 0 <= cql_alpha < math.inf, cql_alpha, "finite and >= 0")
        _check("cql_samples", cql_samples >= 1, cql_samples, ">= 1")
        _check("cql_policy_correction", cql_policy_correction in ("log_density", "density"), cql_policy_correction, "'log_density' or 'density'")
        _check("obs_dims", all(d >= 1 for d in obs_dims), obs_dims, "sizes >= 1")
        _check("act_dims", all(d >= 1 for d in act_dims), act_dims, "sizes >= 1")
        _check("actor_lr", 0 < actor_lr < math.inf, actor_lr, "finite and > 0")
        _check("critic_lr", 0 < critic_lr < math.inf, critic_lr, "finite and > 0")
        _check("cql_policy_noise", 0 < cql_policy_noise < math.inf, cql_policy_noise, "finite and > 0")
        _check("target_noise", 0 <= target_noise < math.inf, target_noise, "finite and >= 0")
        _check("target_noise_clip", 0 <= target_noise_clip < math.inf, target_noise_clip, "finite and >= 0")
        _check("action_l2", 0 <= action_l2 < math.inf, action_l2, "finite and >= 0")
        _check("hidden_dim", hidden_dim >= 1, hidden_dim, ">= 1")
        _check("max_updates", max_updates >= 1, max_updates, ">= 1")
        _check("actor_updates", actor_updates >= 1, actor_updates, ">= 1")
        _check("grad_clip", 0 <= grad_clip < math.inf, grad_clip, "finite and >= 0")
        if isinstance(refinement, dict):
            refinement = Refinement(**refinement)
        self.save_hyperparameters(ignore=["refinement"])
        self.hparams["refinement"] = asdict(refinement)  # plain types: checkpoints load with weights_only
        self.automatic_optimization = False
        self.num_agents = len(obs_dims)
        self.refinement = refinement
        self.actor = Actor(obs_dims, act_dims, hidden_dim, input_norm)
        self.context = JointContext(obs_dims, act_dims) if centralized else None
        critic_in = self.context.dim if centralized else max(obs_dims)
        real_in = self.context.dims if centralized else obs_dims
        self.critic = TwinCritic(critic_in, max(act_dims), hidden_dim, self.num_agents, input_norm, obs_dims=real_in, act_dims=act_dims)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("act_dims_t", torch.tensor(act_dims, dtype=torch.float32), persistent=False)
        self.updates = 0
        # Member count of every parameter, in optimizer order, for the per-agent gradient clip.
        self._members = {"actor": parameter_members(self.actor), "critic": parameter_members(self.critic)}

    # ----------------------------------------------------------------- wiring
    def target_pairs(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        """(online, target) module pairs for the soft-update callback."""
        return [(self.actor, self.actor_target), (self.critic, self.critic_target)]

    def configure_optimizers(self):
        actor_opt = torch.optim.Adam(self.actor.parameters(), lr=self.hparams.actor_lr)
        critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.hparams.critic_lr)
        return [actor_opt, critic_opt]

    def critic_input(self, obs: Tensor, act: Tensor) -> Tensor:
        """What agent i's critic sees besides its own action: o_i, or the joint context."""
        return obs if self.context is None else self.context(obs, act)

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if self.hparams.centralized and dm is not None and not getattr(dm, "joint_sampling", False):
            raise ValueError("model.centralized needs data.joint_sampling: true (critics see one joint transition)")

    def forward(self, obs: Tensor) -> Tensor:
        """Deterministic actions of all agents: obs [A, B, obs_dim] -> [A, B, act_dim]."""
        return self.actor(obs)

    def score_q1(self, obs: Tensor):
        """Score function of the refinement: actions [A, K, B, D] -> Q1(o, a) [A, K, B]
        (``obs``: each agent's critic input besides its action, see ``critic_input``)."""

        def score(actions: Tensor) -> Tensor:
            return self.critic.sample_q(obs, actions, twins=1)[0]

        return score

    @torch.no_grad()
    def cql_actions(self, obs: Tensor, next_obs: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Actions scored by the CQL logsumexp with their log-density corrections, one pair per
        kind of sample (uniform; with ``cql_policy_samples`` also pi(o) + noise and pi(o') + noise,
        clamped to [-1, 1], the correction taken from the unclamped noise as the official code):
        [(actions [A, K, B, D], correction [A, K, B]), ...]."""
        hp = self.hparams
        a, b, _ = obs.shape
        mask = self.actor.act_mask.unsqueeze(1)
        d = int(self.actor.act_mask.shape[-1])
        uniform = (torch.rand(a, hp.cql_samples, b, d, device=obs.device, dtype=obs.dtype) * 2 - 1) * mask
        kinds = [(uniform, uniform_log_density(self.act_dims_t).expand(a, hp.cql_samples, b))]
        if hp.cql_policy_samples:
            sigma = hp.cql_policy_noise
            for o in (obs, next_obs):
                noise = torch.randn(a, hp.cql_samples, b, d, device=obs.device, dtype=obs.dtype) * sigma * mask
                log_p = -0.5 * (noise / sigma).pow(2).sum(-1) - self.act_dims_t.view(-1, 1, 1) * math.log(sigma * math.sqrt(2 * math.pi))
                kinds.append(((self.actor(o).unsqueeze(1) + noise).clamp(-1.0, 1.0), log_p if hp.cql_policy_correction == "log_density" else log_p.exp()))
        return kinds

    # ----------------------------------------------------------------- training
    def setup(self, stage: str) -> None:
        strategy = self.trainer.strategy
        # Each update runs two backward passes (critics, then actors), each reaching only its own
        # networks: DDP must mark the other networks' parameters unused instead of waiting for them.
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

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        actor_opt, critic_opt = self.optimizers()
        metrics: dict[str, Tensor] = {}
        # Critics first, then the actors against the updated critics. Each optimizer is toggled so
        # that only its networks require gradients: under DDP (find_unused_parameters) the other
        # networks are then marked unused for that backward pass instead of awaited.
        if self.trains_critic:
            self.toggle_optimizer(critic_opt)
            loss_c, critic_metrics = self.critic_objective(batch)
            self._step(critic_opt, loss_c, self._members["critic"])
            self.untoggle_optimizer(critic_opt)
            metrics.update(critic_metrics, **{"critic/loss": loss_c.detach() / self.num_agents})
        self.toggle_optimizer(actor_opt)
        for _ in range(self.hparams.actor_updates):
            loss_a, actor_metrics = self.actor_objective(batch["obs"], batch["actions"])
            self._step(actor_opt, loss_a, self._members["actor"])
        self.untoggle_optimizer(actor_opt)
        metrics.update(actor_metrics)

        self.sync_running_stats()
        self.updates += 1
        # Log only on the steps the loggers write (log_every_n_steps): self.log costs ~1 ms a call.
        if self._trainer is not None and self.updates % self._trainer.log_every_n_steps == 0:
            self.log_dict(metrics, on_step=True, on_epoch=False)
            self.log("updates", float(self.updates), on_step=True, on_epoch=False, prog_bar=True)
            self.log("step", float(self.updates), on_step=True, on_epoch=False)  # the loggers' step: logs are indexed by update

    trains_critic = True

    def critic_objective(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Twin critics: TD target from the target networks plus the CQL penalty (Eq. 1).

        Sampled actions come from the global torch RNG. Under DDP every process calls this on its
        own minibatch and the backward pass averages the gradients over the processes.
        """
        hp = self.hparams
        obs, act, rew, next_obs, done = (batch[k] for k in ("obs", "actions", "rewards", "next_obs", "dones"))
        with torch.no_grad():
            next_act = self.actor_target(next_obs)
            if hp.target_noise > 0:
                noise = (torch.randn_like(next_act) * hp.target_noise).clamp(-hp.target_noise_clip, hp.target_noise_clip)
                next_act = (next_act + noise).clamp(-1, 1) * self.actor.act_mask
            target = td_target(rew, done, self.critic_target(self.critic_input(next_obs, next_act), next_act), hp.gamma)
            kinds = self.cql_actions(obs, next_obs) if hp.cql_alpha > 0 else []
        ctx = self.critic_input(obs, act)
        q_data = self.critic(ctx, act)
        q_samples = log_density = None
        if kinds:  # one critic call per kind of sample: BatchNorm statistics per kind, as the official code
            q_samples = torch.cat([self.critic.sample_q(ctx, samples) for samples, _ in kinds], 2)
            log_density = torch.cat([correction for _, correction in kinds], 1)
        return critic_loss(q_data, target, q_samples, log_density, hp.cql_alpha)

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """OMAR's actor (Eq. 2): tau-weighted pull towards the refined action, policy gradient through Q1."""
        hp = self.hparams
        ctx = self.critic_input(obs, act)
        pi = self.actor(obs)
        # With tau = 1 the policy-gradient term has weight 0: no backward pass through Q1 for it.
        with torch.set_grad_enabled(torch.is_grad_enabled() and hp.tau < 1):
            q_pi = self.critic.q1(ctx, pi)
        a_hat = None
        if hp.tau > 0:
            a_hat = self.refinement(self.score_q1(ctx), pi.detach(), q_pi.detach(), self.actor.act_mask)
        return actor_loss(pi, q_pi, a_hat, hp.tau, hp.action_l2, self.act_dims_t)

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

    def _step(self, opt, loss: Tensor, members: list[int]) -> None:
        """Backward, per-agent gradient clip (``members``: each parameter's member count), step."""
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.hparams.grad_clip > 0:
            params = [p for group in opt.param_groups for p in group["params"]]
            clip_grad_norm_per_member_(params, members, self.num_agents, self.hparams.grad_clip)
        opt.step()

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

    def _per_twin_norms(self, checkpoint: dict[str, Any]) -> None:
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

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._per_twin_norms(checkpoint)
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
