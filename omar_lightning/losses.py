"""Loss functions of OMAR and its baselines as pure functions of tensors.

Shapes: ``A`` agents, ``B`` batch, ``K`` sampled actions, ``D`` action features.
Each function returns ``(loss, metrics)``; ``loss`` is the sum over agents of every agent's own
mean loss, so each agent's parameters receive exactly the gradient of its own loss.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def td_target(reward: Tensor, done: Tensor, next_q: Tensor, gamma: float) -> Tensor:
    """y = r + gamma * (1 - done) * min_j Q'_j(o', pi'(o')).

    reward, done: [A, B]; next_q: [2, A, B] target twin values -> [A, B].
    """
    return reward + gamma * (1.0 - done) * next_q.min(dim=0).values


def smoothed_target_action(action: Tensor, standard_normal: Tensor, std: float, clip: float, act_mask: Tensor) -> Tensor:
    """TD3's target policy smoothing: the target policy's action plus clipped Gaussian noise.

    action, standard_normal: [A, B, D] (the noise drawn N(0, 1) by the caller, from its own
    generator); act_mask: [A, 1, D] zeroes padded action features -> [A, B, D]
    ``clamp(action + clamp(std * eps, -clip, clip), -1, 1) * act_mask``.
    """
    return (action + (standard_normal * std).clamp(-clip, clip)).clamp(-1.0, 1.0) * act_mask


def cql_penalty(q_samples: Tensor, q_data: Tensor, log_density: Tensor) -> Tensor:
    """CQL(H) penalty of Eq. (1) per twin and agent, averaged over the batch.

    q_samples: [2, A, K, B] Q-values of sampled actions at o;
    log_density: [A, K, B] (or broadcastable) importance correction subtracted before the
    logsumexp (log 0.5^d for uniform samples in [-1, 1]^d);
    q_data: [2, A, B] Q-values of the dataset actions.
    Returns [2, A]: mean_b logsumexp_k(Q_k - log_density_k) - Q(o, a_data).
    """
    lse = torch.logsumexp(q_samples - log_density, dim=2)
    return (lse - q_data).mean(dim=-1)


def critic_loss(q_data: Tensor, target: Tensor, q_samples: Tensor | None, log_density: Tensor | None, alpha: float) -> tuple[Tensor, dict[str, Tensor]]:
    """Twin-critic loss of Eq. (1): MSE to the TD target plus alpha times the CQL penalty.

    q_data: [2, A, B]; target: [A, B]; q_samples: [2, A, K, B]; log_density: [A, K, B]
    (both None when alpha = 0).
    Both twins regress onto the same target; alpha = 0 gives plain TD3 critics.
    """
    mse = (q_data - target.unsqueeze(0)).pow(2).mean(dim=-1)  # [2, A]
    penalty = cql_penalty(q_samples, q_data, log_density) if q_samples is not None else torch.zeros_like(mse)
    per_agent = (mse + alpha * penalty).sum(dim=0)  # [A]
    metrics = {
        "critic/mse": mse.mean().detach(),
        "critic/cql_penalty": penalty.mean().detach(),
        "critic/q_data": q_data.mean().detach(),
        "critic/target": target.mean().detach(),
    }
    return per_agent.sum(), metrics


def uniform_log_density(act_dims: Tensor) -> Tensor:
    """log density of the uniform distribution on [-1, 1]^d per agent: d * log(0.5). [A] -> [A, 1, 1]
    (in ``act_dims``' floating dtype; float32 for integer sizes)."""
    return ((act_dims if act_dims.is_floating_point() else act_dims.float()) * math.log(0.5)).view(-1, 1, 1)


def actor_loss(
    pi: Tensor, q_pi: Tensor, target_action: Tensor | None, tau: float, action_l2: float, act_dims: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """tau-weighted actor loss of Eq. (2), minimised.

    pi: [A, B, D] policy actions (zero beyond each agent's act_dims[i]); q_pi: [A, B] Q1(o, pi(o));
    target_action: [A, B, D] the action pulled towards (the refined action for OMAR, the dataset
    action for TD3+BC) or None when tau = 0; act_dims: [A] each agent's action size.
    Per agent: tau * mean((pi - a_hat)^2) - (1 - tau) * mean(Q1) + action_l2 * mean(pi^2),
    the means taken over the batch and the agent's own action features.
    """
    q_term = -q_pi.mean(dim=-1)  # [A]
    if target_action is not None and tau > 0:
        reg = (pi - target_action).pow(2).sum(-1).mean(-1) / act_dims
    else:
        reg = torch.zeros_like(q_term)
    l2 = pi.pow(2).sum(-1).mean(-1) / act_dims
    per_agent = tau * reg + (1.0 - tau) * q_term + action_l2 * l2
    metrics = {
        "actor/q_pi": q_pi.mean().detach(),
        "actor/rectification": reg.mean().detach(),
        "actor/loss": per_agent.mean().detach(),
    }
    return per_agent.sum(), metrics


def matd3_actor_loss(q_pi: Tensor, pre_tanh: Tensor, act_mask: Tensor, action_l2: float) -> tuple[Tensor, dict[str, Tensor]]:
    """MATD3's actor loss (maddpg-pytorch's policy regulariser), minimised.

    q_pi: [A, B] Q1(o, pi(o)); pre_tanh: [A, B, D] the actor's outputs before the tanh;
    act_mask: [A, 1, D]. ``A * (-mean(Q1) + action_l2 * mean(z^2 * mask))``, the means over all
    agents, rows and (padded) action features: the sum over agents of each agent's
    ``-mean_b Q1 + action_l2 * sum_d z^2 / D``. Penalising the pre-tanh output ``z`` keeps the
    actor from saturating at the box corners (penalising tanh(z) does not).
    """
    agents = q_pi.shape[0]
    loss = -q_pi.mean() * agents + action_l2 * (pre_tanh.pow(2) * act_mask).mean() * agents
    return loss, {"actor/q_pi": q_pi.mean().detach(), "actor/loss": loss.detach() / agents}


def td3bc_actor_loss(pi: Tensor, q_pi: Tensor, data_action: Tensor, alpha: float, act_dims: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """TD3+BC's actor (Fujimoto & Gu, 2021) per agent, minimised.

    pi, data_action: [A, B, D]; q_pi: [A, B]; act_dims: [A].
    -lambda_i * mean(Q1(o, pi)) + mean((pi - a)^2) with lambda_i = alpha / mean|Q1(o, pi)| taken
    without gradient (the Q normalisation of TD3+BC), for each agent separately.
    """
    lam = alpha / q_pi.detach().abs().mean(-1).clamp_min(1e-6)  # [A]
    bc = (pi - data_action).pow(2).sum(-1).mean(-1) / act_dims
    per_agent = -lam * q_pi.mean(-1) + bc
    metrics = {"actor/q_pi": q_pi.mean().detach(), "actor/bc": bc.mean().detach(), "actor/lambda": lam.mean(), "actor/loss": per_agent.mean().detach()}
    return per_agent.sum(), metrics


def bc_loss(pi: Tensor, data_action: Tensor, act_dims: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """Behaviour cloning per agent: mean((pi - a)^2) over the batch and the agent's action features.

    pi, data_action: [A, B, D]; act_dims: [A].
    """
    per_agent = (pi - data_action).pow(2).sum(-1).mean(-1) / act_dims
    return per_agent.sum(), {"actor/bc": per_agent.mean().detach(), "actor/loss": per_agent.mean().detach()}


def batch_softmax_weights(x: Tensor, valid: Tensor, temperature: float) -> Tensor:
    """Self-normalised weights n * softmax_b(x / temperature) over each agent's valid rows; [A, B] -> [A, B].

    The weights average to 1 over the valid rows and are 0 elsewhere (no gradient flows).
    """
    x = (x.detach() / temperature).masked_fill(valid <= 0, float("-inf"))
    return torch.softmax(x, dim=-1).nan_to_num(0.0) * valid.sum(-1, keepdim=True)


def icq_critic_loss(q_data: Tensor, reward: Tensor, done: Tensor, next_q: Tensor, has_next: Tensor, gamma: float, temperature: float) -> tuple[Tensor, dict[str, Tensor]]:
    """ICQ's in-sample critic loss, per agent and twin.

    q_data: [2, A, B] Q(o, a_data); next_q: [A, B] min of the target twins at (o', a'_data), the
    dataset's next action; has_next: [A, B] 1 where the dataset holds that next action.
    y = r + gamma * (1 - done) * w * next_q with w = min(1, n * softmax_b(next_q / temperature)) over
    the valid rows; rows without an in-sample next action are left out of the mean squared error.
    The clip at 1 is ICQ's reference implementation's: without it the largest next_q of a batch is
    backed up n times over and the critic diverges.
    """
    w = batch_softmax_weights(next_q, has_next, temperature).clamp(max=1.0)
    target = (reward + gamma * (1.0 - done) * w * next_q).detach()
    count = has_next.sum(-1).clamp_min(1.0)  # [A]
    mse = ((q_data - target).pow(2) * has_next).sum(-1) / count  # [2, A]
    metrics = {"critic/mse": mse.mean().detach(), "critic/q_data": q_data.mean().detach(), "critic/target": target.mean(), "critic/weight_max": w.max()}
    return mse.sum(), metrics


def icq_actor_loss(pi: Tensor, data_action: Tensor, advantage: Tensor, temperature: float, act_dims: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """ICQ's actor for a deterministic policy: advantage-weighted regression onto dataset actions.

    pi, data_action: [A, B, D]; advantage: [A, B] Q1(o, a_data) - Q1(o, pi(o)) (no gradient).
    Per agent: mean_b w_b * ||pi(o_b) - a_b||^2 / d with w = B * softmax_b(advantage / temperature).
    """
    w = batch_softmax_weights(advantage, torch.ones_like(advantage), temperature)
    per_agent = (w * (pi - data_action).pow(2).sum(-1)).mean(-1) / act_dims
    return per_agent.sum(), {"actor/loss": per_agent.mean().detach(), "actor/advantage": advantage.mean().detach(), "actor/weight_max": w.max()}
