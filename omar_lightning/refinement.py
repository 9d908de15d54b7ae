"""Zeroth-order action refinement (Algorithm 1, lines 7-12) and the samplers of Table 4.

Every sampler is a stateless ``torch.no_grad()`` function of a Q function
``q_fn(actions [A, K, B, D]) -> Q-values [A, K, B]`` (Q1 of each agent at its own
observations), the current policy actions ``pi [A, B, D]`` and their Q-values ``q_pi [A, B]``.
It returns the picked action ``a_hat [A, B, D]``: the best of the searched actions and pi(o).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

#: ``q_fn(actions [A, K, B, D]) -> Q-values [A, K, B]``
QFunction = Callable[[Tensor], Tensor]


@dataclass
class Refinement:
    """Sampler settings.

    Args:
        sampler: "gaussian" (Eq. 3, the default), "cem" (cross-entropy method with elites
            carried over), or "random" (random shooting: iterations * samples uniform actions).
        iterations: J, refinement iterations.
        samples: K, actions drawn per iteration.
        mu0: initial mean of the sampling distribution.
        sigma0: initial standard deviation.
        beta: softmax temperature of the Gaussian update (Eq. 3).
        elites: elite count of CEM, at least 2: sigma is refitted with the elites' unbiased
            standard deviation (``torch.std``, as the official code), undefined for one elite.
    """

    sampler: Literal["gaussian", "cem", "random"] = "gaussian"
    iterations: int = 3
    samples: int = 10
    mu0: float = 0.0
    sigma0: float = 2.0
    beta: float = 1.0
    elites: int = 5

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"refinement.sampler must be one of {sorted(SAMPLERS)}, got {self.sampler!r}")
        if self.iterations < 1:
            raise ValueError(f"refinement.iterations must be >= 1, got {self.iterations}")
        if self.samples < 1:
            raise ValueError(f"refinement.samples must be >= 1, got {self.samples}")
        if not 0 < self.sigma0 < math.inf:
            raise ValueError(f"refinement.sigma0 must be > 0 and finite, got {self.sigma0}")
        for name in ("mu0", "beta"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"refinement.{name} must be finite, got {getattr(self, name)}")
        if self.sampler == "cem" and not 2 <= self.elites <= self.samples:
            raise ValueError(f"refinement.elites must be in [2, samples={self.samples}] (the elites' unbiased std), got {self.elites}")

    def __call__(self, q_fn: QFunction, pi: Tensor, q_pi: Tensor, act_mask: Tensor) -> Tensor:
        """Refined actions [A, B, D]; act_mask [A, 1, D] zeroes padded action features."""
        return SAMPLERS[self.sampler](self, q_fn, pi, q_pi, act_mask)


def _pick(actions: Tensor, q: Tensor, pi: Tensor, q_pi: Tensor) -> Tensor:
    """Best of the population (actions [A, K, B, D], q [A, K, B]) and pi (Algorithm 1, line 12)."""
    q_best, k = q.max(dim=1)
    best = actions.gather(1, k[:, None, :, None].expand(-1, 1, -1, actions.shape[-1])).squeeze(1)
    return torch.where((q_best > q_pi).unsqueeze(-1), best, pi)


def _draw(mu: Tensor, sigma: Tensor, k: int, act_mask: Tensor) -> Tensor:
    """k actions ~ N(mu, sigma) clamped to [-1, 1]: mu, sigma [A, 1, B, D] -> [A, k, B, D]."""
    shape = (mu.shape[0], k) + mu.shape[2:]
    eps = torch.randn(shape, device=mu.device, dtype=mu.dtype)
    return (mu + sigma * eps).clamp(-1.0, 1.0) * act_mask.unsqueeze(1)


@torch.no_grad()
def gaussian_refinement(cfg: Refinement, q_fn: QFunction, pi: Tensor, q_pi: Tensor, act_mask: Tensor) -> Tensor:
    """Iteratively refined Gaussian (Eq. 3): softmax(beta * Q)-weighted mean, spread about the new mean."""
    mu = torch.full_like(pi, cfg.mu0).unsqueeze(1)
    sigma = torch.full_like(mu, cfg.sigma0)
    for _ in range(cfg.iterations):
        actions = _draw(mu, sigma, cfg.samples, act_mask)
        q = q_fn(actions)
        w = torch.softmax(cfg.beta * q, dim=1).unsqueeze(-1)  # softmax subtracts the max
        mu = (w * actions).sum(dim=1, keepdim=True)
        sigma = (actions - mu).pow(2).mean(dim=1, keepdim=True).sqrt()
    return _pick(actions, q, pi, q_pi)


@torch.no_grad()
def cem_refinement(cfg: Refinement, q_fn: QFunction, pi: Tensor, q_pi: Tensor, act_mask: Tensor) -> Tensor:
    """Cross-entropy method: refit N(mu, sigma) to the top ``elites`` (mean and unbiased standard
    deviation, as the official code), the elites carried into the next population."""
    mu = torch.full_like(pi, cfg.mu0).unsqueeze(1)
    sigma = torch.full_like(mu, cfg.sigma0)
    elites = elite_q = None
    for _ in range(cfg.iterations):
        actions = _draw(mu, sigma, cfg.samples, act_mask)
        q = q_fn(actions)
        if elites is not None:
            actions, q = torch.cat([actions, elites], 1), torch.cat([q, elite_q], 1)
        elite_q, idx = q.topk(cfg.elites, dim=1)
        elites = actions.gather(1, idx.unsqueeze(-1).expand(-1, -1, -1, actions.shape[-1]))
        mu = elites.mean(dim=1, keepdim=True)
        sigma = elites.std(dim=1, keepdim=True, correction=1)
    return _pick(elites, elite_q, pi, q_pi)


@torch.no_grad()
def random_shooting(cfg: Refinement, q_fn: QFunction, pi: Tensor, q_pi: Tensor, act_mask: Tensor) -> Tensor:
    """Random shooting: the best of iterations * samples uniform actions in [-1, 1]^d, and pi."""
    k = cfg.iterations * cfg.samples
    shape = (pi.shape[0], k) + pi.shape[1:]
    actions = (torch.rand(shape, device=pi.device, dtype=pi.dtype) * 2 - 1) * act_mask.unsqueeze(1)
    return _pick(actions, q_fn(actions), pi, q_pi)


SAMPLERS = {"gaussian": gaussian_refinement, "cem": cem_refinement, "random": random_shooting}
