"""Each loss against an independent computation: scalar loops over agents, twins and samples."""

import math

import pytest
import torch

from omar_lightning.losses import (
    actor_loss,
    cql_penalty,
    critic_loss,
    matd3_actor_loss,
    smoothed_target_action,
    td_target,
    uniform_log_density,
)


def test_td_target_by_hand():
    r = torch.tensor([[1.0, 2.0]])
    done = torch.tensor([[0.0, 1.0]])
    next_q = torch.tensor([[[5.0, 7.0]], [[4.0, 9.0]]])  # [2, A=1, B=2]
    torch.testing.assert_close(td_target(r, done, next_q, 0.9), torch.tensor([[1.0 + 0.9 * 4.0, 2.0]]))


def test_uniform_log_density():
    torch.testing.assert_close(uniform_log_density(torch.tensor([2, 3])).flatten(), torch.tensor([2 * math.log(0.5), 3 * math.log(0.5)]))


def test_critic_loss_against_scalar_loops():
    torch.manual_seed(0)
    A, B, K = 3, 5, 4
    q_data, target = torch.randn(2, A, B), torch.randn(A, B)
    q_samples, log_density = torch.randn(2, A, K, B) * 3, uniform_log_density(torch.tensor([2, 2, 1])).expand(A, K, B)
    alpha = 0.7
    loss, metrics = critic_loss(q_data, target, q_samples, log_density, alpha)
    expected, penalties = 0.0, []
    for i in range(A):
        for t in range(2):
            mse = sum((q_data[t, i, b] - target[i, b]) ** 2 for b in range(B)) / B
            pen = 0.0
            for b in range(B):
                lse = math.log(sum(math.exp(q_samples[t, i, k, b] - log_density[i, k, b]) for k in range(K)))
                pen += lse - q_data[t, i, b]
            penalties.append(pen / B)
            expected += mse + alpha * pen / B
    torch.testing.assert_close(loss, torch.tensor(float(expected)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(metrics["critic/cql_penalty"], torch.tensor(float(sum(penalties)) / len(penalties)))
    torch.testing.assert_close(cql_penalty(q_samples, q_data, log_density).flatten(), torch.tensor([float(p) for p in penalties]).view(A, 2).T.flatten())


def test_critic_loss_without_cql_is_twin_mse():
    q_data, target = torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]]), torch.tensor([[0.0, 1.0]])
    loss, _ = critic_loss(q_data, target, None, None, 0.0)
    torch.testing.assert_close(loss, torch.tensor((1 + 4) / 2 + (4 + 1) / 2))


def test_cql_penalty_gradient_lowers_sampled_and_raises_data_q():
    q_samples = torch.zeros(2, 1, 3, 4, requires_grad=True)
    q_data = torch.zeros(2, 1, 4, requires_grad=True)
    cql_penalty(q_samples, q_data, torch.zeros(1, 3, 4)).sum().backward()
    assert (q_samples.grad > 0).all() and (q_data.grad < 0).all()


@pytest.mark.parametrize("tau", [0.0, 0.3, 1.0])
def test_actor_loss_against_scalar_loops(tau):
    torch.manual_seed(1)
    A, B, D = 2, 6, 3
    act_dims = torch.tensor([3.0, 2.0])
    pi = torch.randn(A, B, D).tanh()
    pi[1, :, 2] = 0.0
    a_hat = torch.randn(A, B, D).tanh()
    a_hat[1, :, 2] = 0.0
    q_pi = torch.randn(A, B)
    loss, _ = actor_loss(pi, q_pi, a_hat, tau, 1e-3, act_dims)
    expected = 0.0
    for i in range(A):
        d = int(act_dims[i])
        reg = sum((pi[i, b, j] - a_hat[i, b, j]) ** 2 for b in range(B) for j in range(d)) / (B * d)
        l2 = sum(pi[i, b, j] ** 2 for b in range(B) for j in range(d)) / (B * d)
        expected += tau * reg - (1 - tau) * q_pi[i].mean() + 1e-3 * l2
    torch.testing.assert_close(loss, torch.as_tensor(expected, dtype=torch.float32), rtol=1e-5, atol=1e-6)


def test_actor_loss_tau_zero_ignores_the_target_action():
    pi, q = torch.rand(1, 4, 2), torch.rand(1, 4)
    a, _ = actor_loss(pi, q, torch.zeros(1, 4, 2), 0.0, 0.0, torch.tensor([2.0]))
    b, _ = actor_loss(pi, q, None, 0.0, 0.0, torch.tensor([2.0]))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, -q.mean())


def test_smoothed_target_action_against_scalar_loops():
    """TD3's target smoothing: noise clipped at +-clip, the sum clipped to [-1, 1], padded features 0."""
    torch.manual_seed(5)
    A, B, D = 2, 7, 3
    action, eps = torch.rand(A, B, D) * 2 - 1, torch.randn(A, B, D) * 2
    mask = torch.tensor([[[1.0, 1.0, 1.0]], [[1.0, 1.0, 0.0]]])
    out = smoothed_target_action(action, eps, 0.4, 0.5, mask)
    assert out.shape == (A, B, D)
    for i in range(A):
        for b in range(B):
            for d in range(D):
                noise = min(max(0.4 * float(eps[i, b, d]), -0.5), 0.5)
                want = min(max(float(action[i, b, d]) + noise, -1.0), 1.0) if mask[i, 0, d] else 0.0
                assert float(out[i, b, d]) == pytest.approx(want, abs=1e-6)
    assert (out[1, :, 2] == 0).all() and out.abs().max() <= 1


def test_matd3_actor_loss_against_scalar_loops_and_its_gradient():
    """Per agent: -mean_b Q1 + action_l2 * sum_d z^2 / D (D the padded width), summed over agents;
    the gradient of Q reaches every agent's own values only, that of z only the real features."""
    torch.manual_seed(6)
    A, B, D = 3, 5, 2
    q_pi = torch.randn(A, B, requires_grad=True)
    pre = (torch.randn(A, B, D) * 2).requires_grad_(True)
    mask = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]], [[1.0, 1.0]]])
    loss, metrics = matd3_actor_loss(q_pi, pre, mask, 0.1)
    q, z = q_pi.detach(), pre.detach()
    expected = 0.0
    for i in range(A):
        expected += -sum(float(q[i, b]) for b in range(B)) / B
        expected += 0.1 * sum(float(z[i, b, d]) ** 2 * float(mask[i, 0, d]) for b in range(B) for d in range(D)) / (B * D)
    torch.testing.assert_close(loss, torch.tensor(expected), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["actor/loss"], torch.tensor(expected / A), rtol=1e-5, atol=1e-6)
    loss.backward()
    torch.testing.assert_close(q_pi.grad, torch.full((A, B), -1.0 / B))
    torch.testing.assert_close(pre.grad, 0.1 * 2 * pre.detach() * mask / (B * D))
    assert (pre.grad[1, :, 1] == 0).all()
