"""The OMAR LightningModule: its actor objective and settings; the math lives in losses/refinement,
the update loop in :mod:`omar_lightning.base`, the conservative critics in :mod:`omar_lightning.cql`."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import torch
from torch import Tensor

from omar_lightning.base import check_setting
from omar_lightning.cql import ConservativeActorCritic
from omar_lightning.losses import actor_loss
from omar_lightning.refinement import QFunction, Refinement


class OMAR(ConservativeActorCritic):
    """Offline MARL with actor rectification over decentralized twin critics (ITD3 backbone).

    Every update: the twin critics minimise TD error plus ``cql_alpha`` times the CQL penalty
    (Eq. 1, :class:`omar_lightning.cql.ConservativeActorCritic`); then the actor minimises
    ``tau * mean((pi - a_hat)^2) - (1 - tau) * mean(Q1(o, pi))`` (Eq. 2) with ``a_hat`` from
    zeroth-order refinement of Q1 (Eq. 3). ``tau = 0`` is MA-CQL.

    Args:
        tau: weight of the rectification term in Eq. (2), in [0, 1].
        refinement: sampler and its settings.
        action_l2: weight of mean(pi(o)^2) in the actor loss.
        **kwargs: the critics' settings (``cql_*``, ``target_noise*``: ConservativeActorCritic;
            ``critic_lr``, ``gamma``, ``centralized``: ActorCritic) and the actors'
            (``hidden_dim``, ``actor_lr``, ``grad_clip``, ``input_norm``, ``max_updates``,
            ``actor_updates``: OfflineAlgorithm), all in :mod:`omar_lightning.base`.
    """

    def __init__(
        self,
        obs_dims: list[int],
        act_dims: list[int],
        tau: float = 1.0,
        refinement: Refinement = Refinement(),
        action_l2: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        check_setting("tau", 0.0 <= tau <= 1.0, tau, "in [0, 1]")
        check_setting("action_l2", 0 <= action_l2 < math.inf, action_l2, "finite and >= 0")
        if isinstance(refinement, dict):
            refinement = Refinement(**refinement)
        super().__init__(obs_dims, act_dims, **kwargs)
        self.hparams["refinement"] = asdict(refinement)  # plain types: checkpoints load with weights_only
        self.refinement = refinement

    def q1_function(self, obs: Tensor) -> QFunction:
        """The refinement's Q function: actions [A, K, B, D] -> Q1(o, a) [A, K, B]
        (``obs``: each agent's critic input besides its action, see ``critic_input``)."""

        def q1(actions: Tensor) -> Tensor:
            return self.critic.sample_q(obs, actions, twins=1)[0]

        return q1

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
            a_hat = self.refinement(self.q1_function(ctx), pi.detach(), q_pi.detach(), self.actor.act_mask)
        return actor_loss(pi, q_pi, a_hat, hp.tau, hp.action_l2, self.act_dims_t)
