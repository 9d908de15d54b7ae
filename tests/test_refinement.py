"""Refinement moves toward the maximiser of a known Q, where gradient ascent gets stuck."""

import pytest
import torch

from omar_lightning.refinement import Refinement

A, B, D = 2, 256, 2
MASK = torch.ones(A, 1, D)


def bumps(centres, heights, width):
    centres, heights = torch.tensor(centres), torch.tensor(heights)

    def q(a: torch.Tensor) -> torch.Tensor:  # a [..., D] -> [...]
        d2 = (a.unsqueeze(-2) - centres).pow(2).sum(-1)
        return (heights * torch.exp(-d2 / (2 * width**2))).sum(-1)

    return q


def as_q_fn(q):
    return lambda actions: q(actions)  # [A, K, B, D] -> [A, K, B]


def test_gaussian_refinement_finds_a_single_concave_bump():
    torch.manual_seed(0)
    c = torch.tensor([0.6, -0.3])
    q = lambda a: -10 * (a - c).pow(2).sum(-1)  # noqa: E731
    pi = torch.full((A, B, D), -0.9)
    a_hat = Refinement()(as_q_fn(q), pi, q(pi), MASK)
    assert a_hat.shape == (A, B, D) and not a_hat.requires_grad
    dist = (a_hat - c).norm(dim=-1)
    assert dist.median() < 0.35  # from 1.6 away, with K=10 samples per iteration
    assert (q(a_hat) >= q(pi)).all()  # never worse than the policy's action
    # J=3 iterations beat a single population of the same size
    one = Refinement(iterations=1)(as_q_fn(q), pi, q(pi), MASK)
    assert q(a_hat).mean() > q(one).mean()


@pytest.mark.parametrize("sampler", ["gaussian", "cem", "random"])
def test_refinement_finds_the_higher_of_two_bumps_where_gradient_ascent_stays_low(sampler):
    torch.manual_seed(1)
    q = bumps([[-0.6, -0.6], [0.6, 0.6]], [10.0, 20.0], 0.35)
    pi = torch.full((A, B, D), -0.5)
    # first-order ascent from the policy's action converges to the lower bump
    a = pi[0, :1].clone().requires_grad_(True)
    for _ in range(500):
        (g,) = torch.autograd.grad(q(a).sum(), a)
        a = (a + 0.01 * g).clamp(-1, 1).detach().requires_grad_(True)
    assert (a - torch.tensor([-0.6, -0.6])).norm() < 0.05
    cfg = Refinement(sampler=sampler, samples=20 if sampler == "cem" else 10, iterations=3 if sampler != "cem" else 2)
    a_hat = cfg(as_q_fn(q), pi, q(pi), MASK)
    higher = ((a_hat - torch.tensor([0.6, 0.6])).norm(dim=-1) < 0.5).float().mean()
    assert higher > 0.8, f"{sampler}: only {higher:.2f} of refined actions in the higher bump"
    assert q(a_hat).mean() > q(a).item()


def test_policy_action_is_kept_when_no_sample_beats_it():
    torch.manual_seed(2)
    c = torch.tensor([0.2, 0.1])
    q = lambda a: -(a - c).pow(2).sum(-1)  # noqa: E731
    pi = c.expand(A, B, D).clone()
    torch.testing.assert_close(Refinement()(as_q_fn(q), pi, q(pi), MASK), pi)


def test_samples_stay_in_the_action_box_and_padded_dims_stay_zero():
    torch.manual_seed(3)
    seen = []

    def q_fn(actions):
        seen.append(actions)
        return actions.sum(-1)

    mask = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]]])
    for sampler in ("gaussian", "cem", "random"):
        seen.clear()
        Refinement(sampler=sampler, sigma0=5.0)(q_fn, torch.zeros(A, B, D), torch.zeros(A, B), mask)
        allx = torch.cat([s.flatten(1, 2) for s in seen], 1)
        assert allx.abs().max() <= 1.0
        assert (allx[1, :, 1] == 0).all()


def test_cem_refits_sigma_with_the_elites_unbiased_std():
    """CEM's second population is drawn from N(mean, std) of the first population's elites, std
    with Bessel's correction (torch.std, as the official code), recomputed here with numpy."""
    import numpy as np

    torch.manual_seed(4)
    seen = []

    def q_fn(actions):
        seen.append(actions.clone())
        return -(actions - 0.3).pow(2).sum(-1)

    cfg = Refinement(sampler="cem", iterations=2, samples=8, elites=3, sigma0=0.3)
    pi = torch.zeros(A, B, D)
    torch.manual_seed(5)
    cfg(q_fn, pi, q_fn(pi), MASK)
    first, second = seen[1], seen[2]  # seen[0] is the Q-value of pi
    q = q_fn(first).numpy()
    top = np.argsort(-q, axis=1, kind="stable")[:, :3]  # [A, 3, B]
    elites = np.take_along_axis(first.numpy(), top[..., None], axis=1)
    mu, sigma = elites.mean(1, keepdims=True), elites.std(1, ddof=1, keepdims=True)
    torch.manual_seed(5)
    torch.randn(A, 8, B, D)  # the first population's draw
    eps = torch.randn(A, 8, B, D).numpy()
    np.testing.assert_allclose(second.numpy(), np.clip(mu + sigma * eps, -1, 1), rtol=1e-5, atol=1e-6)
    biased = np.clip(mu + elites.std(1, ddof=0, keepdims=True) * eps, -1, 1)
    assert np.abs(second.numpy() - biased).max() > 1e-2


@pytest.mark.parametrize(
    "kwargs, name",
    [({"sigma0": 0.0}, "sigma0"), ({"sigma0": -1.0}, "sigma0"), ({"iterations": 0}, "iterations"), ({"samples": 0}, "samples"),
     ({"sampler": "adam"}, "sampler"), ({"sampler": "cem", "elites": 11}, "elites"), ({"sampler": "cem", "elites": 1}, "elites")],
)
def test_bad_settings_are_named(kwargs, name):
    with pytest.raises(ValueError, match=f"refinement.{name}"):
        Refinement(**kwargs)
