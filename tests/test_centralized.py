"""Centralized critics (Table 5): input layout, joint sampling, a short fit."""

import pytest
import torch

from omar_lightning import MATD3BC, OMAR
from omar_lightning.datamodules import MinibatchStream, OfflineDataModule
from omar_lightning.nets import JointContext

from test_module import fit


def test_joint_context_against_a_hand_built_joint_input():
    obs_dims, act_dims = [2, 3, 1], [2, 1, 1]
    ctx = JointContext(obs_dims, act_dims)
    B = 4
    obs = torch.zeros(3, B, 3)
    act = torch.zeros(3, B, 2)
    o = [torch.randn(B, d) for d in obs_dims]
    a = [torch.randn(B, d) for d in act_dims]
    for i in range(3):
        obs[i, :, : obs_dims[i]] = o[i]
        act[i, :, : act_dims[i]] = a[i]
    out = ctx(obs, act)
    width = 6 + max(sum(act_dims) - d for d in act_dims)  # 6 obs features + widest "others" block
    assert out.shape == (3, B, width) and ctx.dim == width
    joint_obs = torch.cat(o, 1)
    for i in range(3):
        others = torch.cat([a[j] for j in range(3) if j != i], 1)
        expected = torch.cat([joint_obs, others, torch.zeros(B, width - 6 - others.shape[1])], 1)
        torch.testing.assert_close(out[i], expected)


def test_joint_context_of_a_single_agent_is_its_observation():
    """One agent has no other agents' actions: the context is its observation alone (the
    N = 1 runs of the agent-count study and MATD3's behaviour training)."""
    ctx = JointContext([5], [2])
    obs, act = torch.randn(1, 4, 5), torch.randn(1, 4, 2)
    assert ctx.dim == 5
    torch.testing.assert_close(ctx(obs, act), obs)


def test_centralized_critic_sees_own_action_last_and_others_from_the_batch():
    torch.manual_seed(0)
    m = OMAR([4, 4], [2, 2], hidden_dim=8, centralized=True).eval()
    obs, act = torch.randn(2, 5, 4), torch.rand(2, 5, 2) * 2 - 1
    q = m.critic(m.critic_input(obs, act), act)
    # agent 0's critic input is [o_0, o_1, a_1, a_0]: changing a_1 changes agent 0's Q, not o-only parts
    act2 = act.clone()
    act2[1] += 0.5
    q2 = m.critic(m.critic_input(obs, act2), act2)
    assert not torch.allclose(q[:, 0], q2[:, 0]) and not torch.allclose(q[:, 1], q2[:, 1])
    x0 = torch.cat([obs[0], obs[1], act[1], act[0]], 1)
    net = m.critic.net
    h = torch.relu(torch.nn.functional.batch_norm(x0, net.norm.running_mean[:12], net.norm.running_var[:12], net.norm.weight[:12], net.norm.bias[:12], False) @ net.fc1.weight[0] + net.fc1.bias[0])
    h = torch.relu(h @ net.fc2.weight[0] + net.fc2.bias[0])
    torch.testing.assert_close(q[0, 0], (h @ net.fc3.weight[0] + net.fc3.bias[0]).squeeze(-1))


def test_joint_sampling_gives_every_agent_the_same_rows():
    store = {"obs": torch.arange(100.0).repeat(3, 1).unsqueeze(-1), "rewards": torch.arange(100.0).repeat(3, 1)}
    b = MinibatchStream(store, 16, seed=0, joint=True).batch(0)
    assert torch.equal(b["rewards"][0], b["rewards"][1]) and torch.equal(b["rewards"][1], b["rewards"][2])


@pytest.mark.parametrize("cls", [OMAR, MATD3BC])
def test_centralized_fit_runs_and_requires_joint_sampling(cls, dataset_file):
    dm = OfflineDataModule(path=str(dataset_file), batch_size=32, generate=False, joint_sampling=True)
    model = cls(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=2, centralized=True)
    fit(model, dm)
    assert model.updates == 2
    assert model.critic.net.fc1.in_features == 3 * 18 + 2 * 2 + 2
    dm = OfflineDataModule(path=str(dataset_file), batch_size=32, generate=False)
    with pytest.raises(ValueError, match="data.joint_sampling: true"):
        fit(cls(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=2, centralized=True), dm)


def test_joint_context_on_the_global_state_against_a_hand_built_input():
    """With ``state_dim`` the state replaces the observations: row i is [s, a_j for j != i, padding]."""
    obs_dims, act_dims, ds = [2, 3, 1], [2, 1, 1], 7
    ctx = JointContext(obs_dims, act_dims, state_dim=ds)
    B = 4
    act = torch.zeros(3, B, 2)
    a = [torch.randn(B, d) for d in act_dims]
    for i in range(3):
        act[i, :, : act_dims[i]] = a[i]
    state = torch.randn(B, ds)
    out = ctx(state, act)
    width = ds + max(sum(act_dims) - d for d in act_dims)
    assert out.shape == (3, B, width) and ctx.dim == width
    assert ctx.dims == [ds + sum(act_dims) - d for d in act_dims]
    for i in range(3):
        others = torch.cat([a[j] for j in range(3) if j != i], 1)
        torch.testing.assert_close(out[i], torch.cat([state, others, torch.zeros(B, width - ds - others.shape[1])], 1))
