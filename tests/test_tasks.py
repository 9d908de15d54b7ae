"""Predator-prey, world, HalfCheetah 2x3 and N-agent cooperative navigation: spaces, mpe2 /
MaMuJoCo equivalence of the action mapping, determinism by seed, scores, one OMAR update."""

import numpy as np
import pytest
import torch
from pytorch_lightning import Trainer

from omar_lightning import OMAR
from omar_lightning.data import OfflineDataset, save_dataset
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.envs import make_env, task_spec
from omar_lightning.envs.cooperative_navigation import force_to_mpe_action
from omar_lightning.envs.mpe_competitive import FIXED_POLICIES, flee_policy, forage_flee_policy, register_fixed_policy
from omar_lightning.envs.rollout import run_episodes, task_returns, uniform_random_policy

SPECS = {
    "predator_prey": (["adversary_0", "adversary_1", "adversary_2"], [16, 16, 16], [2, 2, 2], 25, "first"),
    "world": (["leadadversary_0", "adversary_0", "adversary_1", "adversary_2"], [34] * 4, [6, 2, 2, 2], 25, "mean"),
    "halfcheetah_2x3": (["agent_0", "agent_1"], [12, 12], [3, 3], 1000, "mean"),
}


@pytest.mark.parametrize("task", sorted(SPECS))
def test_task_spec_and_spaces(task):
    names, obs_dims, act_dims, length, mode = SPECS[task]
    spec = task_spec(task)
    assert (spec.agent_names, spec.obs_dims, spec.act_dims, spec.episode_length, spec.return_mode) == (names, obs_dims, act_dims, length, mode)
    env = make_env(task)
    obs, _ = env.reset(seed=3)
    assert list(obs) == names
    for a, d, k in zip(names, obs_dims, act_dims):
        assert obs[a].shape == (d,) and obs[a].dtype == np.float32
        space = env.action_space(a)
        assert space.shape == (k,) and (space.low == -1).all() and (space.high == 1).all()
    env.close()


def _play(task, seed, steps, **kw):
    env = make_env(task, **kw)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [np.concatenate(list(obs.values()))]
    for _ in range(steps):
        act = {a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32) for a in env.possible_agents}
        obs, rew, term, trunc, _ = env.step(act)
        out.append(np.concatenate(list(obs.values()) + [np.array(list(rew.values()))]))
    env.close()
    return out


@pytest.mark.parametrize("task", sorted(SPECS))
def test_deterministic_by_seed(task):
    a, b, c = _play(task, 5, 10), _play(task, 5, 10), _play(task, 6, 10)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def _mpe_reference(task):
    from mpe2 import simple_tag_v3, simple_world_comm_v3

    if task == "predator_prey":
        return simple_tag_v3.parallel_env(continuous_actions=True, dynamic_rescaling=False)
    return simple_world_comm_v3.parallel_env(continuous_actions=True, dynamic_rescaling=False)


@pytest.mark.parametrize("task", ["predator_prey", "world"])
def test_matches_mpe2_with_mapped_actions_and_fixed_policy(task):
    """Our env equals mpe2's own parallel env fed the mapped forces (the leader's communication
    mapped (c + 1) / 2) and, for the good agents, the fixed policy's forces."""
    ours, ref = make_env(task), _mpe_reference(task)
    fixed = flee_policy if task == "predator_prey" else forage_flee_policy
    o1, _ = ours.reset(seed=11)
    o2, _ = ref.reset(seed=11)
    rng = np.random.default_rng(0)
    goods = [a for a in ref.possible_agents if a.startswith("agent_")]
    for _ in range(25):
        for a in ours.possible_agents:
            np.testing.assert_array_equal(o1[a], o2[a])
        acts = {a: rng.uniform(-1.2, 1.2, ours.action_space(a).shape).astype(np.float32) for a in ours.possible_agents}
        ref_acts = {}
        for a, x in acts.items():
            x = np.clip(x, -1, 1)
            ref_acts[a] = force_to_mpe_action(x[:2]) if x.shape[0] == 2 else np.concatenate([force_to_mpe_action(x[:2]), (x[2:] + 1) / 2])
        forces = fixed(np.stack([o2[g] for g in goods]), ours)
        assert forces.shape == (len(goods), 2) and np.abs(forces).max() <= 1
        for g, f in zip(goods, forces):
            ref_acts[g] = force_to_mpe_action(f)
        o1, r1, te1, tr1, _ = ours.step(acts)
        o2, r2, te2, tr2, _ = ref.step(ref_acts)
        for a in ours.possible_agents:
            assert r1[a] == pytest.approx(r2[a], abs=0)
            assert te1[a] == te2[a] and tr1[a] == tr2[a]
    assert ours.agents == [] and tr1[ours.possible_agents[0]]


def test_leader_communication_reaches_the_world():
    env = make_env("world")
    env.reset(seed=0)
    env.step({"leadadversary_0": np.array([0, 0, 1, -1, 0, 0.5], np.float32), **{f"adversary_{i}": np.zeros(2, np.float32) for i in range(3)}})
    np.testing.assert_allclose(env.world.agents[0].state.c, [1.0, 0.0, 0.5, 0.75])


def test_fixed_policy_is_pluggable_and_checked():
    register_fixed_policy("still", lambda obs, env: np.zeros((obs.shape[0], 2), np.float32))
    try:
        env = make_env("predator_prey", prey_policy="still")
        env.reset(seed=0)
        prey = env.world.agents[-1]
        start = prey.state.p_pos.copy()
        env.step({a: np.zeros(2, np.float32) for a in env.possible_agents})
        np.testing.assert_array_equal(prey.state.p_pos, start)
    finally:
        FIXED_POLICIES.pop("still")
    with pytest.raises(ValueError, match="prey_policy must be one of"):
        make_env("predator_prey", prey_policy="nope")
    with pytest.raises(ValueError, match="good_policy must be one of"):
        make_env("world", good_policy="nope")


def test_flee_policy_runs_away():
    env = make_env("predator_prey")
    obs = np.zeros((1, 14), np.float32)
    obs[0, 8:10] = [0.3, 0.0]  # first predator 0.3 to the right
    assert flee_policy(obs, env)[0, 0] < -0.5


def test_predator_prey_score_is_the_first_predator():
    res = run_episodes(lambda: make_env("predator_prey"), uniform_random_policy(np.random.default_rng(0), 2), 3, 0)
    res.episode_returns = np.array([[1.0, 5.0, 9.0]] * 3)
    np.testing.assert_array_equal(task_returns(res), [1.0, 1.0, 1.0])
    res.return_mode = "mean"
    np.testing.assert_array_equal(task_returns(res), [5.0, 5.0, 5.0])


def test_halfcheetah_matches_mamujoco_and_truncates():
    from gymnasium_robotics import mamujoco_v1

    ours = make_env("halfcheetah_2x3", max_episode_steps=5)
    ref = mamujoco_v1.parallel_env("HalfCheetah", "2x3")
    o1, _ = ours.reset(seed=2)
    o2, _ = ref.reset(seed=2)
    rng = np.random.default_rng(0)
    for t in range(5):
        for a in ours.possible_agents:
            np.testing.assert_array_equal(o1[a], o2[a].astype(np.float32))
        acts = {a: rng.uniform(-1, 1, 3).astype(np.float32) for a in ours.possible_agents}
        o1, r1, te1, tr1, _ = ours.step(acts)
        o2, r2, _, _, _ = ref.step(acts)
        assert r1["agent_0"] == r1["agent_1"] == pytest.approx(float(r2["agent_0"]), abs=0)
        assert tr1["agent_0"] == (t == 4) and not te1["agent_0"]
    ref.close()
    with pytest.raises(RuntimeError, match="reset"):
        ours.step(acts)


@pytest.mark.parametrize("n", [1, 2, 4, 5])
def test_cooperative_navigation_num_agents_through_the_datamodule(tmp_path, n):
    names = [f"agent_{i}" for i in range(n)]
    path = save_dataset(tmp_path / "d.npz", _synthetic("cooperative_navigation", names, [6 * n] * n, [2] * n, {"num_agents": n}))
    dm = OfflineDataModule(path=str(path), generate=False, env_kwargs={"num_agents": n}, batch_size=8)
    dm.setup("fit")
    assert dm.obs_dims == [6 * n] * n and dm.store["obs"].shape == (n, 64, 6 * n)
    assert dm.evaluation_record()["env_kwargs"] == {"num_agents": n}


def _synthetic(task, names, obs_dims, act_dims, env_kwargs, n=64):
    rng = np.random.default_rng(0)
    return OfflineDataset(
        obs=[rng.standard_normal((n, d)).astype(np.float32) for d in obs_dims],
        actions=[rng.uniform(-1, 1, (n, d)).astype(np.float32) for d in act_dims],
        rewards=[rng.standard_normal(n).astype(np.float32) for _ in names],
        next_obs=[rng.standard_normal((n, d)).astype(np.float32) for d in obs_dims],
        dones=[np.zeros(n, np.float32) for _ in names],
        meta={"task": task, "tier": "random", "agent_names": names, "s_random": 0.0, "s_expert": 10.0, "env_kwargs": env_kwargs},
    )


@pytest.mark.parametrize("task", ["predator_prey", "world", "halfcheetah_2x3"])
def test_one_omar_update_with_the_task_dims(tmp_path, task):
    names, obs_dims, act_dims, _, _ = SPECS[task]
    path = save_dataset(tmp_path / "d.npz", _synthetic(task, names, obs_dims, act_dims, {}))
    dm = OfflineDataModule(task=task, path=str(path), generate=False, batch_size=16)
    model = OMAR(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=2, tau=0.5, cql_alpha=1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0).fit(model, datamodule=dm)
    assert model.updates == 2
    moved = [k for k, v in model.state_dict().items() if k.startswith(("actor.net.fc", "critic.net.fc")) and not torch.equal(v, before[k])]
    assert moved
    with torch.no_grad():
        model.actor.eval()
        act = model.actor(dm.store["obs"][:, :8])
    for i, d in enumerate(act_dims):  # padded action features stay zero (world's silent adversaries)
        assert act.shape[-1] == max(act_dims)
        assert torch.all(act[i, :, d:] == 0)
