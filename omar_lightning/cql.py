"""Conservative twin critics (Eq. 1): TD3 targets plus the CQL penalty; the critics of OMAR,
MA-CQL and MA-TD3+BC (which sets the penalty's weight to 0 by default)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from omar_lightning.base import ActorCritic, check_setting
from omar_lightning.losses import critic_loss, smoothed_target_action, td_target, uniform_log_density


class ConservativeActorCritic(ActorCritic):
    """Twin critics minimising TD error plus ``cql_alpha`` times the CQL penalty (Eq. 1); the
    actors' loss is the subclass's.

    Args:
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
        **kwargs: the critics' and actors' settings (:class:`omar_lightning.base.ActorCritic`).
    """

    def __init__(
        self,
        obs_dims: list[int],
        act_dims: list[int],
        cql_alpha: float = 1.0,
        cql_samples: int = 10,
        cql_policy_samples: bool = False,
        cql_policy_noise: float = 0.2,
        cql_policy_correction: str = "log_density",
        target_noise: float = 0.0,
        target_noise_clip: float = 0.5,
        **kwargs: Any,
    ) -> None:
        check_setting("cql_alpha", 0 <= cql_alpha < math.inf, cql_alpha, "finite and >= 0")
        check_setting("cql_samples", cql_samples >= 1, cql_samples, ">= 1")
        check_setting("cql_policy_correction", cql_policy_correction in ("log_density", "density"), cql_policy_correction, "'log_density' or 'density'")
        check_setting("cql_policy_noise", 0 < cql_policy_noise < math.inf, cql_policy_noise, "finite and > 0")
        check_setting("target_noise", 0 <= target_noise < math.inf, target_noise, "finite and >= 0")
        check_setting("target_noise_clip", 0 <= target_noise_clip < math.inf, target_noise_clip, "finite and >= 0")
        super().__init__(obs_dims, act_dims, **kwargs)

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
                next_act = smoothed_target_action(next_act, torch.randn_like(next_act), hp.target_noise, hp.target_noise_clip, self.actor.act_mask)
            target = td_target(rew, done, self.critic_target(self.critic_input(next_obs, next_act), next_act), hp.gamma)
            kinds = self.cql_actions(obs, next_obs) if hp.cql_alpha > 0 else []
        ctx = self.critic_input(obs, act)
        q_data = self.critic(ctx, act)
        q_samples = log_density = None
        if kinds:  # one critic call per kind of sample: BatchNorm statistics per kind, as the official code
            q_samples = torch.cat([self.critic.sample_q(ctx, samples) for samples, _ in kinds], 2)
            log_density = torch.cat([correction for _, correction in kinds], 1)
        return critic_loss(q_data, target, q_samples, log_density, hp.cql_alpha)
