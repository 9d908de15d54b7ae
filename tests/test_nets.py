"""The agent-batched networks equal separate per-agent networks on the same weights."""

import copy

import pytest
import torch
from torch import nn

from omar_lightning.nets import Actor, EnsembleMLP, TwinCritic, clip_grad_norm_per_member_, parameter_members

from reference_nets import DoubleMLP


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
    with torch.no_grad():  # non-trivial affine and running statistics
        critic.net.norm.weight.uniform_(0.5, 2.0)
        critic.net.norm.bias.uniform_(-1, 1)
        critic.net.norm.running_mean.uniform_(-1, 1)
        critic.net.norm.running_var.uniform_(0.5, 2)
    obs, act = torch.randn(3, 8, 6), torch.randn(3, 8, 2)
    q = critic(obs, act)
    assert q.shape == (2, 3, 8)
    torch.testing.assert_close(critic.q1(obs, act), q[0])
    # twin t of agent i is tower t of the official DoubleMLPNetwork of agent i, fed with agent i's own input
    x = torch.cat([obs, act], -1)
    for i in range(3):
        ref = DoubleMLP(critic.net, i, 3).eval()
        for t, q_ref in enumerate(ref(x[i])):
            torch.testing.assert_close(q[t, i], q_ref.squeeze(-1), rtol=1e-5, atol=1e-5)


def test_per_twin_norms_keep_one_norm_per_member():
    """shared_norm=False (the MATD3 behaviour trainer): member t * A + i is a plain network of its own."""
    torch.manual_seed(2)
    critic = TwinCritic(6, 2, 16, num_agents=3, shared_norm=False).eval()
    assert critic.net.norm.weight.shape == (6 * 8,)
    obs, act = torch.randn(3, 8, 6), torch.randn(3, 8, 2)
    q = critic(obs, act)
    torch.testing.assert_close(critic.q1(obs, act), q[0])
    x = torch.cat([obs, act], -1)
    for t in range(2):
        for i in range(3):
            ref = member_net(critic.net, t * 3 + i).eval()
            torch.testing.assert_close(q[t, i], ref(x[i]).squeeze(-1), rtol=1e-5, atol=1e-5)


def test_padded_input_features_get_no_gradient_and_leave_the_forward_pass_alone():
    """Agent 1 observes 4 of 6 features: the norm's affine terms of its padded features get
    exactly zero gradient (and, their bias staying 0, the first layer's padded rows too), while
    every output equals that of the same network without the padding mask (a padded bias left
    non-zero by an older version evaluates as before)."""
    torch.manual_seed(7)
    actor = Actor([6, 4], [2, 2], hidden_dim=8)
    plain = copy.deepcopy(actor)
    plain.net.norm.feature_mask = None
    with torch.no_grad():
        for net in (actor, plain):  # a padded bias left non-zero by an older version
            net.net.norm.bias[6 + 4:] = 0.3
    obs = torch.randn(2, 32, 6)
    obs[1, :, 4:] = 0.0
    for train in (True, False):
        actor.train(train), plain.train(train)
        assert torch.equal(actor(obs), plain(obs))
    fresh = Actor([6, 4], [2, 2], hidden_dim=8)  # padded bias at its initial 0
    fresh(obs).pow(2).sum().backward()
    padded = fresh.net.norm.feature_mask.logical_not()
    assert padded.nonzero().flatten().tolist() == [10, 11]
    assert (fresh.net.norm.bias.grad[padded] == 0).all() and (fresh.net.norm.weight.grad[padded] == 0).all()
    assert (fresh.net.norm.bias.grad[~padded] != 0).all()
    assert (fresh.net.fc1.weight.grad[1, 4:] == 0).all() and (fresh.net.fc1.weight.grad[1, :4] != 0).any()
    plain.train()
    plain(obs).pow(2).sum().backward()
    assert (plain.net.norm.bias.grad[padded] != 0).all()  # without the mask the padded bias trains


def grads_as_ensemble(ens: EnsembleMLP) -> EnsembleMLP:
    """A copy of ``ens`` whose parameters hold ``ens``'s gradients (to read them through the reference layout)."""
    out = copy.deepcopy(ens)
    with torch.no_grad():
        for p, q in zip(out.parameters(), ens.parameters()):
            p.copy_(q.grad)
    return out


def test_twins_share_one_input_norm_as_the_official_double_network():
    """One BatchNorm per agent over its input, shared by Q1 and Q2 (official DoubleMLPNetwork):
    the same values, running statistics updated once per call (Q1-only calls too) and gradients
    of the norm's affine parameters summed over both twins, in training mode."""
    torch.manual_seed(6)
    A, B = 3, 32
    critic = TwinCritic(5, 2, 16, num_agents=A)
    assert critic.net.norm.weight.shape == (A * 7,)
    refs = [DoubleMLP(critic.net, i, A) for i in range(A)]
    obs, act = torch.randn(A, B, 5) * 2 + 1, torch.rand(A, B, 2) * 2 - 1
    x = torch.cat([obs, act], -1)
    w = torch.randn(2, A, B)
    (critic(obs, act) * w).sum().backward()
    q1 = critic.q1(obs * 0.5, act)  # a second call, Q1 only
    for i, ref in enumerate(refs):
        q_ref = ref(x[i])
        (sum((q.squeeze(-1) * w[t, i]).sum() for t, q in enumerate(q_ref))).backward()
        torch.testing.assert_close(q1[i], ref.Q1(x[i] * torch.tensor([0.5] * 5 + [1.0] * 2)).squeeze(-1), rtol=1e-5, atol=1e-5)
        for name in ("running_mean", "running_var"):
            torch.testing.assert_close(getattr(critic.net.norm, name)[i * 7:(i + 1) * 7], getattr(ref.in_fn, name), msg=name)
        got = DoubleMLP(grads_as_ensemble(critic.net), i, A)
        for (name, g), p in zip(got.named_parameters(), ref.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6, msg=name)
    assert int(critic.net.norm.num_batches_tracked) == 2


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
    """Against one official DoubleMLPNetwork per agent (shared norm and both towers) and torch's
    clip_grad_norm_ over its parameters."""
    torch.manual_seed(4)
    critic = TwinCritic(5, 2, 8, num_agents=3)
    refs = [DoubleMLP(critic.net, i, 3) for i in range(3)]
    obs, act = torch.randn(3, 16, 5), torch.randn(3, 16, 2)
    scale = torch.tensor([100.0, 0.001, 10.0])  # agent 1 stays under the limit
    (critic(obs, act) * scale.view(1, 3, 1)).sum().backward()
    params = list(critic.parameters())
    norms = clip_grad_norm_per_member_(params, parameter_members(critic), 3, max_norm=0.5)
    x = torch.cat([obs, act], -1)
    for i, ref in enumerate(refs):
        (sum(q.sum() for q in ref(x[i])) * scale[i]).backward()
        norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
        torch.testing.assert_close(norms[i], norm)
        got = DoubleMLP(grads_as_ensemble(critic.net), i, 3)
        for (name, g), p in zip(got.named_parameters(), ref.parameters()):
            torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-7, msg=name)
    clipped = [torch.sqrt(sum(g.pow(2).sum() for g in DoubleMLP(grads_as_ensemble(critic.net), i, 3).parameters())) for i in range(3)]
    assert clipped[0] <= 0.5 + 1e-4 and clipped[2] <= 0.5 + 1e-4
    torch.testing.assert_close(clipped[1], norms[1])
    assert parameter_members(critic) == [3, 3] + [6] * 6  # the shared norm has A members, the layers 2 * A
    with pytest.raises(ValueError, match="members: 2 counts for 8 parameters"):
        clip_grad_norm_per_member_(params, [6, 6], 3, 0.5)


@pytest.mark.parametrize("shared_norm", [True, False])
@pytest.mark.parametrize("per_sample", [True, False])
def test_sample_q_equals_the_critic_on_repeated_observations(per_sample, shared_norm):
    """The shared-observation path, one sample at a time or all at once: values, twin selection,
    BatchNorm running statistics and the gradients of every parameter."""
    torch.manual_seed(5)
    A, K, B = 3, 4, 16
    obs, act = torch.randn(A, B, 6) * 2 + 1, torch.rand(A, K, B, 2) * 2 - 1
    for train in (True, False):
        fast = TwinCritic(6, 2, 16, num_agents=A, shared_norm=shared_norm).train(train)
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
