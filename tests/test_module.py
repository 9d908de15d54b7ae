"""The LightningModule's updates: which parameters move, agent isolation, targets, settings."""

import copy
import math

import pytest
import torch
from pytorch_lightning import Trainer

from omar_lightning import OMAR, Refinement
from omar_lightning.callbacks import EnvEvaluation, SoftTargetUpdate
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.nets import TwinCritic


def batch_for(seed=0, A=3, B=64, obs_dim=18, act_dim=2):
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(A, B, obs_dim, generator=g),
        "actions": torch.rand(A, B, act_dim, generator=g) * 2 - 1,
        "rewards": torch.randn(A, B, generator=g),
        "next_obs": torch.randn(A, B, obs_dim, generator=g),
        "dones": (torch.rand(A, B, generator=g) < 0.1).float(),
    }


class Moves:
    """Mixed into an algorithm: records which parameters each optimizer step changed."""

    def gradient_step(self, opt, loss, network):
        before = {n: p.detach().clone() for n, p in self.named_parameters()}
        super().gradient_step(opt, loss, network)
        self.moved = getattr(self, "moved", [])
        self.moved.append({n for n, p in self.named_parameters() if not torch.equal(p, before[n])})


class Spy(Moves, OMAR):
    pass


def fit(model, dm, callbacks=(), **kw):
    trainer = Trainer(
        max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=1, callbacks=list(callbacks), **kw,
    )
    trainer.fit(model, datamodule=dm)
    return trainer


def test_critic_step_moves_only_critics_and_actor_step_only_actors(dataset_file):
    dm = OfflineDataModule(path=str(dataset_file), batch_size=32, generate=False)
    model = Spy(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=1, cql_alpha=1.0, tau=0.5)
    start = copy.deepcopy(model.state_dict())
    fit(model, dm)
    critic_moved, actor_moved = model.moved
    assert critic_moved and all(n.startswith("critic.") for n in critic_moved)
    assert actor_moved and all(n.startswith("actor.") for n in actor_moved)
    assert {n.split(".")[0] for n in critic_moved} == {"critic"}
    assert model.updates == 1
    # targets do not move without the soft-update callback
    for k, v in model.state_dict().items():
        if k.startswith(("actor_target.", "critic_target.")) and "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(v, start[k])


def _one_update(model, batch, seed):
    torch.manual_seed(seed)
    actor_opt, critic_opt = [torch.optim.Adam(m.parameters(), lr=lr) for m, lr in ((model.actor, 0.01), (model.critic, 0.01))]

    class T:  # the pieces of a trainer that training_step touches
        pass

    model.optimizers = lambda: (actor_opt, critic_opt)
    model.manual_backward = lambda loss: loss.backward()
    model.toggle_optimizer = model.untoggle_optimizer = lambda opt: None
    model.log = model.log_dict = lambda *a, **k: None
    model.training_step(batch, 0)
    return model


def test_agents_are_isolated_changing_one_agents_data_leaves_the_others_update_alone():
    torch.manual_seed(0)
    base = OMAR([18] * 3, [2] * 3, hidden_dim=16, tau=0.7, cql_alpha=2.0)
    b1 = batch_for(1)
    b2 = {k: v.clone() for k, v in b1.items()}
    for k in b2:  # agent 1 sees different data
        b2[k][1] = batch_for(99)[k][1]
    m1 = _one_update(copy.deepcopy(base), b1, seed=5)
    m2 = _one_update(copy.deepcopy(base), b2, seed=5)
    differs = False
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        # every parameter is member-major: [twin, agent, ...] for the critics' layers ([2 * A, in, out]),
        # [agent, ...] for the actors' and for the input norms ([A * features], shared by the twins)
        twins = p1.shape[0] // 3 if p1.dim() == 3 else 1
        v1, v2 = p1.detach().reshape(twins, 3, -1), p2.detach().reshape(twins, 3, -1)
        torch.testing.assert_close(v1[:, 0], v2[:, 0], msg=name)
        torch.testing.assert_close(v1[:, 2], v2[:, 2], msg=name)
        differs |= not torch.equal(v1[:, 1], v2[:, 1])
    assert differs


def test_tau_one_skips_the_zero_weight_q_backward_and_updates_exactly_as_with_it(monkeypatch):
    """With tau = 1 the actor's Q1 term has weight 0: Q1(o, pi) is computed without a graph, and
    one update leaves every parameter exactly where the update through Q1 leaves it."""
    torch.manual_seed(0)
    base = OMAR([18] * 3, [2] * 3, hidden_dim=16, tau=1.0, cql_alpha=1.0)
    batch = batch_for(3)
    fast = _one_update(copy.deepcopy(base), batch, seed=7)
    seen = []
    q1 = TwinCritic.q1

    def q1_with_graph(self, obs, act):
        seen.append(torch.is_grad_enabled())
        with torch.enable_grad():
            return q1(self, obs, act)

    monkeypatch.setattr(TwinCritic, "q1", q1_with_graph)
    slow = _one_update(copy.deepcopy(base), batch, seed=7)
    assert seen and not any(seen)  # the actor's Q1 call ran without recording a graph
    for (name, p_fast), p_slow in zip(fast.named_parameters(), slow.parameters()):
        assert torch.equal(p_fast, p_slow), name


def test_actor_gradient_below_tau_one_is_the_tau_weighted_sum_of_rectification_and_q1():
    """tau < 1: the actor's gradient is that of tau * mean((pi - a_hat)^2) / D - (1 - tau) * mean Q1(o, pi)
    per agent, recomputed here from the networks with the same refined actions."""
    torch.manual_seed(0)
    model = OMAR([18] * 3, [2] * 3, hidden_dim=16, tau=0.4, cql_alpha=1.0, action_l2=0.0)
    batch = batch_for(4)
    obs, act = batch["obs"], batch["actions"]
    params = list(model.actor.parameters())
    torch.manual_seed(11)
    loss, _ = model.actor_objective(obs, act)
    got = torch.autograd.grad(loss, params)
    torch.manual_seed(11)
    ctx = model.critic_input(obs, act)
    pi = model.actor(obs)
    q = model.critic.q1(ctx, pi)
    a_hat = model.refinement(model.q1_function(ctx), pi.detach(), q.detach(), model.actor.act_mask)
    ref = (0.4 * (pi - a_hat).pow(2).mean((1, 2)) - 0.6 * q.mean(1)).sum()
    for g, r in zip(got, torch.autograd.grad(ref, params)):
        torch.testing.assert_close(g, r)


def test_soft_update_arithmetic():
    torch.manual_seed(0)
    model = OMAR([4, 4], [2, 2], hidden_dim=8)
    with torch.no_grad():
        for p in model.actor.parameters():
            p.add_(1.0)
    old = [p.clone() for p in model.actor_target.parameters()]
    cb = SoftTargetUpdate(rho=0.25)
    cb.on_fit_start(None, model)
    cb.on_train_batch_end(None, model, None, None, 0)
    for o, t, online in zip(old, model.actor_target.parameters(), model.actor.parameters()):
        torch.testing.assert_close(t, 0.25 * online + 0.75 * o)
    with pytest.raises(ValueError, match="rho"):
        SoftTargetUpdate(rho=0.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"tau": 1.5}, "model.tau"), ({"tau": -0.1}, "model.tau"), ({"gamma": 2.0}, "model.gamma"), ({"cql_alpha": -1.0}, "model.cql_alpha"),
     ({"actor_lr": 0.0}, "model.actor_lr"), ({"max_updates": 0}, "model.max_updates")],
)
def test_bad_settings_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OMAR([18] * 3, [2] * 3, **kwargs)


def test_sigma0_must_be_positive():
    with pytest.raises(ValueError, match="refinement.sigma0 must be > 0"):
        OMAR([18] * 3, [2] * 3, refinement=Refinement(sigma0=0.0))
    with pytest.raises(ValueError, match="refinement.sigma0"):
        OMAR([18] * 3, [2] * 3, refinement={"sigma0": -2.0})


def test_tau_zero_is_ma_cql_and_skips_refinement(monkeypatch):
    model = OMAR([18] * 3, [2] * 3, hidden_dim=16, tau=0.0)
    monkeypatch.setattr(Refinement, "__call__", lambda *a, **k: pytest.fail("refinement ran with tau = 0"))
    _one_update(model, batch_for(0), seed=0)


def test_fit_with_evaluation_logs_return_and_normalized_score(dataset_file):
    dm = OfflineDataModule(path=str(dataset_file), batch_size=32, generate=False, eval_episodes=2)
    model = OMAR(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=4)
    trainer = fit(model, dm, [SoftTargetUpdate(0.01), EnvEvaluation(every_n_updates=2, verbose=False)])
    assert model.updates == 4
    m = trainer.callback_metrics
    assert {"eval/return", "eval/normalized_score", "critic/cql_penalty", "actor/q_pi"} <= set(m)
    expected = 100 * (m["eval/return"] - (-10.0)) / (30.0 - (-10.0))
    torch.testing.assert_close(m["eval/normalized_score"], expected)


def test_cql_mixture_scores_each_kind_in_its_own_critic_call_with_clamped_policy_samples():
    """HalfCheetah's CQL(H) mixture as the official code: uniform, pi(o) + noise and pi(o') + noise,
    the policy samples clamped to [-1, 1] (their correction from the unclamped noise), each kind
    scored by its own critic call on the repeated observations (BatchNorm statistics per kind)."""
    torch.manual_seed(0)
    A, K, B, D, sigma = 2, 3, 16, 3, 0.5
    model = OMAR([6] * A, [D] * A, hidden_dim=16, cql_samples=K, cql_policy_samples=True, cql_policy_noise=sigma,
                 cql_policy_correction="density").double()
    with torch.no_grad():
        model.actor.net.fc3.weight.mul_(300.0)  # saturated policies: pi + noise leaves the box often
    batch = {k: v.double() for k, v in batch_for(5, A=A, B=B, obs_dim=6, act_dim=D).items()}
    obs, next_obs = batch["obs"], batch["next_obs"]

    torch.manual_seed(1)
    kinds = model.cql_actions(obs, next_obs)
    torch.manual_seed(1)
    uniform = torch.rand(A, K, B, D, dtype=torch.float64) * 2 - 1
    expected = [uniform]
    densities = [torch.full((A, K, B), D * math.log(0.5), dtype=torch.float64)]
    for o in (obs, next_obs):
        noise = torch.randn(A, K, B, D, dtype=torch.float64) * sigma
        with torch.no_grad():
            expected.append((model.actor(o).unsqueeze(1) + noise).clamp(-1, 1))
        densities.append((torch.exp(-noise.pow(2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))).prod(-1))
    assert len(kinds) == 3
    for (samples, correction), want, density in zip(kinds, expected, densities):
        torch.testing.assert_close(samples, want)
        torch.testing.assert_close(correction, density)
    assert all(s.abs().max() <= 1 for s, _ in kinds) and (kinds[1][0].abs() == 1).float().mean() > 0.1

    # the critic loss: Q of every kind from its own forward call on the observations repeated K times
    params = list(model.critic.parameters())
    ref_model = copy.deepcopy(model)
    torch.manual_seed(2)
    loss, _ = model.critic_objective(batch)
    grads = torch.autograd.grad(loss, params)
    torch.manual_seed(2)
    m = ref_model
    with torch.no_grad():
        target = batch["rewards"] + 0.95 * (1 - batch["dones"]) * m.critic_target(next_obs, m.actor_target(next_obs)).min(0).values
        ref_kinds = m.cql_actions(obs, next_obs)
    q_data = m.critic(obs, batch["actions"])
    repeated = obs.unsqueeze(1).expand(A, K, B, 6).reshape(A, K * B, 6)
    q_samples = torch.cat([m.critic(repeated, s.reshape(A, K * B, D)).view(2, A, K, B) for s, _ in ref_kinds], 2)
    correction = torch.cat([c for _, c in ref_kinds], 1)
    lse = torch.logsumexp(q_samples - correction, 2)
    ref = ((q_data - target).pow(2).mean(-1) + (lse - q_data).mean(-1)).sum()
    torch.testing.assert_close(loss, ref)
    for g, r in zip(grads, torch.autograd.grad(ref, list(m.critic.parameters()))):
        torch.testing.assert_close(g, r)
    # pooling the three kinds in one call (one set of BatchNorm statistics) gives another gradient
    pooled = m.critic(repeated.repeat(1, 3, 1), torch.cat([s for s, _ in ref_kinds], 1).reshape(A, 3 * K * B, D)).view(2, A, 3 * K, B)
    q_again = m.critic(obs, batch["actions"])
    pooled_ref = ((q_again - target).pow(2).mean(-1) + (torch.logsumexp(pooled - correction, 2) - q_again).mean(-1)).sum()
    g_pooled = torch.autograd.grad(pooled_ref, list(m.critic.parameters()))
    assert not torch.allclose(g_pooled[2], grads[2], rtol=1e-3)


def test_the_policies_are_evaluated_before_the_first_update_without_changing_training(dataset_file, tmp_path):
    """As the official loop: an evaluation at update 0, the first point of the learning curve. It
    draws nothing from the training's random streams: the run's weights are those of a run without it."""
    from pytorch_lightning.loggers import CSVLogger

    from omar_lightning.reproduce.summary import read_curve

    states = {}
    for at_start in (True, False):
        torch.manual_seed(0)
        dm = OfflineDataModule(path=str(dataset_file), batch_size=32, generate=False, eval_episodes=2)
        model = OMAR(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=4)
        trainer = Trainer(max_epochs=-1, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                          num_sanity_val_steps=0, log_every_n_steps=1, logger=CSVLogger(tmp_path / str(at_start), name="logs"),
                          callbacks=[SoftTargetUpdate(0.01), EnvEvaluation(every_n_updates=2, verbose=False, at_start=at_start)])
        trainer.fit(model, datamodule=dm)
        states[at_start] = model.state_dict()
        curve = read_curve(tmp_path / str(at_start) / "logs")
        assert curve["updates"] == ([0, 2, 4] if at_start else [2, 4])
    for k, v in states[True].items():
        assert torch.equal(v, states[False][k]), k
