"""The agent-batched networks equal separate per-agent networks on the same weights."""

import copy

import pytest
import torch
from torch import nn

from omar_lightning.nets import Actor, EnsembleMLP, TwinCritic, clip_grad_norm_per_member_


def member_net(ens: EnsembleMLP, m: int) -> nn.Sequential:
    """A plain torch network holding member m's weights."""
    d_in = ens.fc1.in_features
    bn = nn.BatchNorm1d(d_in)
    with torch.no_grad():
        bn.weight.copy_(ens.norm.weight[m * d_in:(m + 1) * d_in])
        bn.bias.copy_(ens.norm.bias[m * d_in:(m + 1) * d_in])
        bn.running_mean.copy_(ens.norm.running_mean[m * d_in:(m + 1) * d_in])
        bn.running_var.copy_(ens.norm.running_var[m * d_in:(m + 1) * d_in])
    layers = [bn]
    for i, fc in enumerate((ens.fc1, ens.fc2, ens.fc3)):
        lin = nn.Linear(fc.in_features, fc.out_features)
        with torch.no_grad():
            lin.weight.copy_(fc.weight[m].T)
            lin.bias.copy_(fc.bias[m, 0])
        layers += [lin] + ([nn.ReLU()] if i < 2 else [])
    return nn.Sequential(*layers)


def test_ensemble_equals_per_member_networks_in_train_and_eval_mode():
    torch.manual_seed(0)
    ens = EnsembleMLP(5, 3, 16, members=4)
    x = torch.randn(4, 32, 5) * 3 + 1
    refs = [member_net(ens, m) for m in range(4)]
    for train in (True, False):
        ens.train(train)
        for r in refs:
            r.train(train)
        out = ens(x)
        for m in range(4):
            torch.testing.assert_close(out[m], refs[m](x[m]), rtol=1e-5, atol=1e-5)
    # running statistics were updated per member exactly like BatchNorm1d
    for m in range(4):
        torch.testing.assert_close(ens.norm.running_mean[m * 5:(m + 1) * 5], refs[m][0].running_mean)


def test_member_slice_evaluates_a_subset():
    torch.manual_seed(1)
    ens = EnsembleMLP(4, 1, 8, members=6).eval()
    x = torch.randn(6, 10, 4)
    torch.testing.assert_close(ens(x[:3], slice(0, 3)), ens(x)[:3])


def test_twin_critic_layout_and_q1():
    torch.manual_seed(2)
    critic = TwinCritic(6, 2, 16, num_agents=3).eval()
    obs, act = torch.randn(3, 8, 6), torch.randn(3, 8, 2)
    q = critic(obs, act)
    assert q.shape == (2, 3, 8)
    torch.testing.assert_close(critic.q1(obs, act), q[0])
    # member t * A + i is twin t of agent i, fed with agent i's own input
    x = torch.cat([obs, act], -1)
    for t in range(2):
        for i in range(3):
            ref = member_net(critic.net, t * 3 + i).eval()
            torch.testing.assert_close(q[t, i], ref(x[i]).squeeze(-1), rtol=1e-5, atol=1e-5)


def test_actor_is_tanh_bounded_and_masks_padded_actions():
    torch.manual_seed(3)
    actor = Actor([4, 6], [3, 1], hidden_dim=8)
    with torch.no_grad():
        actor.net.fc3.weight.mul_(1e4)  # saturate
    a = actor(torch.randn(2, 50, 6))
    assert a.shape == (2, 50, 3)
    assert a.abs().max() <= 1.0
    assert (a[1, :, 1:] == 0).all() and (a[0].abs() > 0.5).any()


def test_last_actor_layer_initialised_small():
    actor = Actor([18] * 3, [2] * 3, hidden_dim=64)
    assert actor.net.fc3.weight.abs().max() <= 3e-3
    assert actor.net.fc1.weight.abs().max() > 3e-3


def test_per_agent_gradient_clipping_equals_clip_grad_norm_per_agent():
    torch.manual_seed(4)
    critic = TwinCritic(5, 2, 8, num_agents=3)
    obs, act = torch.randn(3, 16, 5), torch.randn(3, 16, 2)
    scale = torch.tensor([100.0, 0.001, 10.0]).view(1, 3, 1)  # agent 1 stays under the limit
    (critic(obs, act) * scale).sum().backward()
    params = list(critic.parameters())
    grads = [p.grad.clone() for p in params]
    norms = clip_grad_norm_per_member_(params, 6, 3, max_norm=0.5)
    for i in range(3):
        # the group of agent i: members i and 3 + i of every parameter
        own = [g.view(2, 3, -1)[:, i] for g in grads]
        norm = torch.sqrt(sum(o.pow(2).sum() for o in own))
        torch.testing.assert_close(norms[i], norm)
        coef = min(1.0, 0.5 / (norm.item() + 1e-6))
        for g, p in zip(grads, params):
            torch.testing.assert_close(p.grad.view(2, 3, -1)[:, i], g.view(2, 3, -1)[:, i] * coef)
    clipped = [torch.sqrt(sum(p.grad.view(2, 3, -1)[:, i].pow(2).sum() for p in params)) for i in range(3)]
    assert clipped[0] <= 0.5 + 1e-4 and clipped[2] <= 0.5 + 1e-4
    torch.testing.assert_close(clipped[1], norms[1])


@pytest.mark.parametrize("per_sample", [True, False])
def test_sample_q_equals_the_critic_on_repeated_observations(per_sample):
    """The shared-observation path, one sample at a time or all at once: values, twin selection,
    BatchNorm running statistics and the gradients of every parameter."""
    torch.manual_seed(5)
    A, K, B = 3, 4, 16
    obs, act = torch.randn(A, B, 6) * 2 + 1, torch.rand(A, K, B, 2) * 2 - 1
    for train in (True, False):
        fast = TwinCritic(6, 2, 16, num_agents=A).train(train)
        with torch.no_grad():  # non-trivial affine and running statistics
            fast.net.norm.weight.uniform_(0.5, 2.0)
            fast.net.norm.bias.uniform_(-1, 1)
            fast.net.norm.running_mean.uniform_(-1, 1)
            fast.net.norm.running_var.uniform_(0.5, 2)
        slow = copy.deepcopy(fast)
        repeated = obs.unsqueeze(1).expand(A, K, B, 6).reshape(A, K * B, 6)
        expected = slow(repeated, act.reshape(A, K * B, 2)).view(2, A, K, B)
        got = fast.sample_q(obs, act, per_sample=per_sample)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fast.net.norm.running_mean, slow.net.norm.running_mean)
        torch.testing.assert_close(fast.net.norm.running_var, slow.net.norm.running_var)
        q1 = fast.sample_q(obs, act, twins=1, per_sample=per_sample)[0]
        torch.testing.assert_close(q1, got[0] if not train else fast.sample_q(obs, act, per_sample=per_sample)[0], rtol=1e-4, atol=1e-5)
        # gradients of every parameter agree too, through a non-linear function of the samples
        weights = torch.randn(2, A, K, B)
        g_fast = torch.autograd.grad((fast.sample_q(obs, act, per_sample=per_sample) * weights).logsumexp(2).sum(), list(fast.parameters()))
        slow_q = slow(repeated, act.reshape(A, K * B, 2)).view(2, A, K, B)
        g_slow = torch.autograd.grad((slow_q * weights).logsumexp(2).sum(), list(slow.parameters()))
        for gf, gs in zip(g_fast, g_slow):
            torch.testing.assert_close(gf, gs, rtol=1e-4, atol=1e-4)
