"""The paper's baselines on OMAR's networks, data path and callbacks (select with ``model.class_path``)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from omar_lightning.losses import bc_loss, td3bc_actor_loss
from omar_lightning.module import OMAR


class MACQL(OMAR):
    """MA-CQL: OMAR's conservative twin critics with the plain policy-gradient actor (tau = 0).

    Takes every setting of :class:`OMAR`; ``tau`` must be 0 (no refinement runs).
    """

    def __init__(self, obs_dims: list[int], act_dims: list[int], tau: float = 0.0, **kwargs: Any) -> None:
        if tau != 0.0:
            raise ValueError(f"model.tau is fixed at 0 for MACQL, got {tau!r}; use OMAR for tau > 0")
        super().__init__(obs_dims, act_dims, tau=0.0, **kwargs)


class MATD3BC(OMAR):
    """MA-TD3+BC: TD3 critics (no CQL penalty by default) and TD3+BC's actor on the dataset action.

    Args:
        bc_alpha: TD3+BC's alpha; each agent's Q term is scaled by bc_alpha / mean|Q1(o, pi)|.
        cql_alpha: CQL weight of the critics (0: plain TD3+BC).
        Other settings as :class:`OMAR` (``tau`` and ``refinement`` are unused).
    """

    def __init__(self, obs_dims: list[int], act_dims: list[int], bc_alpha: float = 2.5, cql_alpha: float = 0.0, **kwargs: Any) -> None:
        if bc_alpha <= 0:
            raise ValueError(f"model.bc_alpha must be > 0, got {bc_alpha!r}")
        super().__init__(obs_dims, act_dims, cql_alpha=cql_alpha, **kwargs)

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        pi = self.actor(obs)
        q_pi = self.critic.q1(self.critic_input(obs, act), pi)
        return td3bc_actor_loss(pi, q_pi, act, self.hparams.bc_alpha, self.act_dims_t)


class BC(OMAR):
    """Behaviour cloning of every agent's dataset actions: the floor of the comparisons.

    Only the actors are trained (the critics are kept for a uniform checkpoint layout but never
    stepped). Settings as :class:`OMAR`; only the actor's (``actor_lr``, ``hidden_dim``,
    ``grad_clip``, ``input_norm``, ``max_updates``) matter.
    """

    trains_critic = False

    def actor_objective(self, obs: Tensor, act: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return bc_loss(self.actor(obs), act, self.act_dims_t)
