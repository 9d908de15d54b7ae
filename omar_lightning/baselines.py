"""The paper's baselines, siblings of OMAR on the same networks, data path and callbacks (select
with ``model.class_path``). Each writes its own losses and settings over :mod:`omar_lightning.base`."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from omar_lightning.base import ActorCritic, OfflineAlgorithm, check_setting
from omar_lightning.cql import ConservativeActorCritic
from omar_lightning.losses import actor_loss, bc_loss, icq_actor_loss, icq_critic_loss, td3bc_actor_loss


class MACQL(ConservativeActorCritic):
    """MA-CQL: OMAR's conservative twin critics with the plain policy-gradient actor (OMAR at tau = 0).

    Args:
        tau: fixed at 0 (taken so that a config written for OMAR's settings says so; no refinement runs).
        action_l2: weight of mean(pi(o)^2) in the actor loss.
        **kwargs: the critics' and actors' settings, as :class:`omar_lightning.OMAR`.
    """

    def __init__(self, obs_dims: list[int], act_dims: list[int], tau: float = 0.0, action_l2: float = 1e-3, **kwargs: Any) -> None:
        if tau != 0.0:
            raise ValueError(f"model.tau is fixed at 0 for MACQL, got {tau!r}; use OMAR for tau > 0")
        check_setting("action_l2", 0 <= action_l2 < math.inf, action_l2, "finite and >= 0")
        super().__init__(obs_dims, act_dims, **kwargs)

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """-mean(Q1(o, pi)) plus the action penalty (Eq. 2 at tau = 0)."""
        pi = self.actor(obs)
        q_pi = self.critic.q1(self.critic_input(obs, act), pi)
        return actor_loss(pi, q_pi, None, 0.0, self.hparams.action_l2, self.act_dims_t)


class MATD3BC(ConservativeActorCritic):
    """MA-TD3+BC: TD3 critics (no CQL penalty by default) and TD3+BC's actor on the dataset action.

    Args:
        bc_alpha: TD3+BC's alpha; each agent's Q term is scaled by bc_alpha / mean|Q1(o, pi)|.
        cql_alpha: CQL weight of the critics (0: plain TD3+BC).
        **kwargs: the other critics' and actors' settings, as :class:`omar_lightning.OMAR`
            (``target_noise`` is TD3's target policy smoothing).
    """

    def __init__(self, obs_dims: list[int], act_dims: list[int], bc_alpha: float = 2.5, cql_alpha: float = 0.0, **kwargs: Any) -> None:
        if bc_alpha <= 0:
            raise ValueError(f"model.bc_alpha must be > 0, got {bc_alpha!r}")
        super().__init__(obs_dims, act_dims, cql_alpha=cql_alpha, **kwargs)

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        pi = self.actor(obs)
        q_pi = self.critic.q1(self.critic_input(obs, act), pi)
        return td3bc_actor_loss(pi, q_pi, act, self.hparams.bc_alpha, self.act_dims_t)


class BC(OfflineAlgorithm):
    """Behaviour cloning of every agent's dataset actions: the floor of the comparisons.

    Actors only (no critics, no target networks). Settings: the actors' (``hidden_dim``,
    ``actor_lr``, ``grad_clip``, ``input_norm``, ``max_updates``, ``actor_updates``) of
    :class:`omar_lightning.base.OfflineAlgorithm`.
    """

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return bc_loss(self.actor(obs), act, self.act_dims_t)

    def upgrade_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before BC lost its critics also hold never-stepped critics and
        target networks: dropped, the actors load as they were trained."""
        state = checkpoint.get("state_dict")
        if isinstance(state, dict):
            for key in [k for k in state if k.startswith(("critic.", "critic_target.", "actor_target.", "context."))]:
                del state[key]


class MAICQ(ActorCritic):
    """MA-ICQ (Yang et al., 2021, "Believe what you see"), decentralized, on OMAR's networks.

    Our reading of ICQ for continuous actions and a deterministic policy: everything stays in the
    dataset's support.

    - Critic: y = r + gamma (1 - done) * w * Q'(o', a'), a' the dataset's next action and
      w = min(1, n * softmax over the minibatch of Q'(o', a') / critic_temperature) (ICQ's implicit
      importance weights, normalised over the batch and clipped at 1 as ICQ's reference code does). Rows whose next action is not in the data
      (episode ends) are left out of the loss. No CQL penalty.
    - Actor: advantage-weighted regression onto the dataset action,
      w = B * softmax_b((Q1(o, a) - Q1(o, pi(o))) / actor_temperature), loss mean(w ||pi - a||^2).

    Needs ``data.in_sample_next: true`` (the data module derives a' from consecutive rows).

    Args:
        critic_temperature: ICQ's temperature in the critic weights (large: plain SARSA targets).
            100, as ICQ's reference code: MPE returns reach hundreds, so a temperature of 1 makes
            the weights one-hot.
        actor_temperature: ICQ's temperature in the actor weights (large: plain behaviour cloning); 100.
        **kwargs: the critics' (``critic_lr``, ``gamma``, ``centralized``) and actors' settings
            of :class:`omar_lightning.base.ActorCritic`.
    """

    def __init__(self, obs_dims: list[int], act_dims: list[int], critic_temperature: float = 100.0, actor_temperature: float = 100.0,
                 **kwargs: Any) -> None:
        for name, value in (("critic_temperature", critic_temperature), ("actor_temperature", actor_temperature)):
            if not value > 0:
                raise ValueError(f"model.{name} must be > 0, got {value!r}")
        super().__init__(obs_dims, act_dims, **kwargs)

    def on_fit_start(self) -> None:
        super().on_fit_start()
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and not getattr(dm, "in_sample_next", False):
            raise ValueError("MAICQ needs data.in_sample_next: true (in-sample next actions for its critic targets)")

    def critic_objective(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        hp = self.hparams
        obs, act, next_obs, next_act = batch["obs"], batch["actions"], batch["next_obs"], batch["next_actions"]
        with torch.no_grad():
            next_q = self.critic_target(self.critic_input(next_obs, next_act), next_act).min(0).values
        q_data = self.critic(self.critic_input(obs, act), act)
        return icq_critic_loss(q_data, batch["rewards"], batch["dones"], next_q, batch["has_next"], hp.gamma, hp.critic_temperature)

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        ctx = self.critic_input(obs, act)
        pi = self.actor(obs)
        with torch.no_grad():
            advantage = self.critic.q1(ctx, act) - self.critic.q1(ctx, pi)
        return icq_actor_loss(pi, act, advantage, self.hparams.actor_temperature, self.act_dims_t)
