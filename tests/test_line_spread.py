"""The 1-D Spread of the paper's Section 3.1 (``layout="line"``): spaces, the action mapping against
mpe2's own env, the observation layout and the reward on hand-placed worlds, hand-computed steps,
seeds, the scripted controller and collection end to end."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from mpe2 import simple_spread_v3
from pytorch_lightning import Trainer

from omar_lightning import OMAR
from omar_lightning.cli import main
from omar_lightning.data.collect.references import expert_policy, reference_returns
from omar_lightning.data.collect.tiers import random_tier
from omar_lightning.data import load_dataset
from omar_lightning.datamodules import OfflineDataModule
from omar_lightning.envs import make_env, task_spec
from omar_lightning.envs.cooperative_navigation import (
    line_force_to_mpe_action,
    line_observation_index,
    paper_reward,
)
from omar_lightning.envs.rollout import run_episodes, task_returns, uniform_random_policy
from omar_lightning.envs.scripted import (
    decode_line_obs,
    line_assignment,
    scripted_line_actions,
    scripted_spread_actions,
    spread_controller,
)
from omar_lightning.evaluation import policy_returns
from omar_lightning.data.collect.snapshots import load_snapshot

TASK = "cooperative_navigation"
DT, DAMPING, ACCEL = 0.1, 0.25, 5.0


def line(n=3, **kwargs):
    return make_env(TASK, num_agents=n, layout="line", **kwargs)


def place(env, agents, landmarks, vel=None):
    """Put agents (with velocities) and landmarks at the given x, y = 0."""
    vel = [0.0] * len(agents) if vel is None else vel
    for a, x, v in zip(env.world.agents, agents, vel):
        a.state.p_pos, a.state.p_vel = np.array([x, 0.0]), np.array([v, 0.0])
    for lm, x in zip(env.world.landmarks, landmarks):
        lm.state.p_pos = np.array([x, 0.0])


# --------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("variant", ["mpe2", "official"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_spaces_and_task_spec(n, variant):
    spec = task_spec(TASK, num_agents=n, layout="line", variant=variant)
    assert spec.agent_names == [f"agent_{i}" for i in range(n)]
    assert spec.obs_dims == [4 * n - 1] * n and spec.act_dims == [1] * n and spec.episode_length == 25
    env = line(n, variant=variant)
    for a in env.possible_agents:
        space = env.action_space(a)
        assert space.shape == (1,) and space.dtype == np.float32 and space.low[0] == -1 and space.high[0] == 1
    obs, _ = env.reset(seed=0)
    assert all(o.shape == (4 * n - 1,) and o.dtype == np.float32 for o in obs.values())
    state = env.state()
    assert state.shape == env.state_space.shape == (n * (4 * n - 1),)
    np.testing.assert_array_equal(state, np.concatenate([obs[a] for a in env.possible_agents]))


def test_the_plane_is_the_default_and_a_bad_layout_is_refused():
    env = make_env(TASK)
    assert env.layout == "plane" and env.action_space("agent_0").shape == (2,)
    with pytest.raises(ValueError, match=r"layout must be one of \('plane', 'line'\), got 'circle'"):
        make_env(TASK, layout="circle")
    env = line()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"forces must have shape \(3, 1\), got \(3, 2\)"):
        env.step_forces(np.zeros((3, 2), np.float32))


def test_pettingzoo_parallel_api():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(line(), num_cycles=30)


def test_render_rgb_array():
    env = line(render_mode="rgb_array")
    env.reset(seed=0)
    env.step({a: np.ones(1, np.float32) for a in env.agents})
    frame = env.render()
    assert frame.shape == (700, 700, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


# --------------------------------------------------------------------------- action mapping
def test_line_force_to_mpe_action_hand_values():
    np.testing.assert_array_equal(line_force_to_mpe_action(np.array([0.5])), np.array([0, 0, 0.5, 0, 0], np.float32))
    np.testing.assert_array_equal(line_force_to_mpe_action(np.array([-0.25])), [0, 0.25, 0, 0, 0])
    got = line_force_to_mpe_action(np.array([[[3.0], [-7.0]], [[0.0], [1.0]]]))  # [2, 2, 1], clipped
    assert got.shape == (2, 2, 5) and got.dtype == np.float32
    np.testing.assert_array_equal(got.reshape(4, 5), [[0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 0, 0]])
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 1\]"):
        line_force_to_mpe_action(np.zeros((4, 2)))


@pytest.mark.parametrize("reward", ["paper", "mpe2"])
def test_equals_mpe2s_own_env_on_the_axis_fed_the_mapped_actions(reward):
    """mpe2's parallel simple_spread, its entities put on the x axis after the same seeded reset and fed
    [0, max(-x,0), max(x,0), 0, 0], gives our observations (its x entries and comm) and rewards."""
    ours = line(3, reward=reward, local_ratio=0.25, max_cycles=12)
    ref = simple_spread_v3.parallel_env(N=3, local_ratio=0.25, max_cycles=12, continuous_actions=True, dynamic_rescaling=False)
    o1, _ = ours.reset(seed=42)
    ref.reset(seed=42)
    world = ref.unwrapped.world
    for e in world.entities:
        e.state.p_pos = np.array([e.state.p_pos[0], 0.0])
    idx = line_observation_index(3)
    first = [world.agents[i].state.p_pos.copy() for i in range(3)]
    np.testing.assert_array_equal([a.state.p_pos for a in ours.world.agents], first)
    rng = np.random.default_rng(1)
    for _ in range(12):
        f = rng.uniform(-1.3, 1.3, size=(3, 1)).astype(np.float32)
        o1, r1, te1, tr1, _ = ours.step({a: f[i] for i, a in enumerate(ours.possible_agents)})
        o2, r2, te2, tr2, _ = ref.step({a: line_force_to_mpe_action(f[i]) for i, a in enumerate(ref.possible_agents)})
        for a in ours.possible_agents:
            np.testing.assert_array_equal(o1[a], o2[a][idx])
        assert te1 == te2 and tr1 == tr2
        expected = r2 if reward == "mpe2" else dict(zip(ref.possible_agents, paper_reward(world)))
        assert r1 == pytest.approx(expected, abs=0)
        assert all(e.state.p_pos[1] == 0.0 for e in world.entities)


@pytest.mark.parametrize("variant", ["mpe2", "official"])
def test_everything_stays_on_the_axis_through_contacts(variant):
    env = line(5, variant=variant)
    rng = np.random.default_rng(0)
    contacts = 0
    for seed in range(4):
        env.reset(seed=seed)
        for _ in range(25):
            env.step_forces(rng.uniform(-1, 1, (5, 1)).astype(np.float32))
            xs = np.array([a.state.p_pos[0] for a in env.world.agents])
            contacts += int((np.abs(xs[:, None] - xs[None]) + np.eye(5) < 0.3).any())
            for e in env.world.entities:
                assert e.state.p_pos[1] == 0.0 and e.state.p_vel[1] == 0.0
    assert contacts > 0  # the contact forces acted, along the axis


def test_reset_is_mpe2s_draw_put_on_the_axis():
    for n, variant, scale in [(3, "mpe2", 1.0), (4, "mpe2", 1.0), (4, "official", 2.0)]:
        plane = make_env(TASK, num_agents=n)
        ours = line(n, variant=variant)
        plane.reset(seed=7)
        ours.reset(seed=7)
        for ep, eo in zip(plane.world.entities, ours.world.entities):
            np.testing.assert_array_equal(eo.state.p_pos, [scale * ep.state.p_pos[0], 0.0])


# --------------------------------------------------------------------------- observations, reward, physics
def test_observation_layout_entry_by_entry_on_a_hand_placed_world():
    env = line(3)
    env.reset(seed=0)
    place(env, agents=[-0.5, 0.2, 0.9], landmarks=[0.0, -1.0, 0.5], vel=[0.1, -0.3, 0.0])
    got = env.observations()
    #            vel    pos   landmark rel x        other agents rel x   comm of the 2 others
    expected = [[0.1, -0.5, 0.5, -0.5, 1.0, 0.7, 1.4, 0, 0, 0, 0],
                [-0.3, 0.2, -0.2, -1.2, 0.3, -0.7, 0.7, 0, 0, 0, 0],
                [0.0, 0.9, -0.9, -1.9, -0.4, -1.4, -0.7, 0, 0, 0, 0]]
    for o, e in zip(got, expected):
        assert o.dtype == np.float32
        np.testing.assert_allclose(o, e, atol=1e-7)
    assert list(line_observation_index(3)) == [0, 2, 4, 6, 8, 10, 12, 14, 15, 16, 17]
    assert list(line_observation_index(1)) == [0, 2, 4]


def test_paper_reward_on_hand_placed_agents():
    env = line(3)
    env.reset(seed=0)
    # Landmark 0 (x 0.0) nearest agent 1 at 0.2: 5; landmark 1 (-1.0) nearest agent 0 at 0.5: 2;
    # landmark 2 (0.5) nearest agent 1 at 0.3: 10/3. No two agents within 0.3.
    place(env, agents=[-0.5, 0.2, 0.9], landmarks=[0.0, -1.0, 0.5])
    np.testing.assert_allclose(paper_reward(env.world), [5 + 2 + 10 / 3] * 3, rtol=1e-12)
    # Agent 0 on landmark 0 (10), agent 1 0.05 from landmark 1 (1 / 0.05 capped at 10), landmark 2
    # 1.0 from agent 0 (1); agents 0 and 1 are 0.25 apart (< 0.15 + 0.15): 5 off each.
    place(env, agents=[0.0, 0.25, 2.0], landmarks=[0.0, 0.3, -1.0])
    np.testing.assert_allclose(paper_reward(env.world), [16.0, 16.0, 21.0], rtol=1e-12)
    # And through a step at rest far apart with zero force: nothing moves, the env reports it.
    place(env, agents=[-3.0, 0.0, 3.0], landmarks=[-2.0, 0.5, 3.0])
    _, rew, *_ = env.step({a: np.zeros(1, np.float32) for a in env.possible_agents})
    np.testing.assert_allclose(list(rew.values()), [1 + 2 + 10] * 3, rtol=1e-12)


@pytest.mark.parametrize("variant", ["mpe2", "official"])
def test_one_step_by_hand(variant):
    env = line(3, variant=variant)
    env.reset(seed=3)
    v0 = np.array([0.2, 0.0, -0.1])
    place(env, agents=[-3.0, 0.0, 3.0], landmarks=[0.0, 0.0, 0.0], vel=list(v0))
    f = np.array([[1.0], [-0.4], [0.0]], np.float32)
    obs, *_ = env.step_forces(f)
    v1 = v0 * (1 - DAMPING) + ACCEL * f[:, 0].astype(np.float64) * DT
    moved_with = v0 if variant == "mpe2" else v1  # mpe2 moves first; the official fork pushes first
    p1 = np.array([-3.0, 0.0, 3.0]) + moved_with * DT
    np.testing.assert_allclose([a.state.p_vel[0] for a in env.world.agents], v1, rtol=1e-6)
    np.testing.assert_allclose([a.state.p_pos[0] for a in env.world.agents], p1, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose([o[:2] for o in obs], np.stack([v1, p1], 1), rtol=1e-6, atol=1e-7)


def _play(seed, steps=10, **kw):
    env = line(**kw)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [np.concatenate(list(obs.values()))]
    for _ in range(steps):
        obs, rew, *_ = env.step({a: rng.uniform(-1, 1, 1).astype(np.float32) for a in env.possible_agents})
        out.append(np.concatenate(list(obs.values()) + [np.array(list(rew.values()))]))
    return out


def test_deterministic_by_seed():
    a, b, c = _play(5), _play(5), _play(6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_rollout_records_one_dimensional_actions():
    res = run_episodes(lambda: line(2, max_cycles=6), uniform_random_policy(np.random.default_rng(3), 1), 4, seed=0,
                       num_envs=2, record=True)
    for i in range(2):
        assert res.obs[i].shape == (24, 7) and res.actions[i].shape == (24, 1)
        assert np.abs(res.actions[i]).max() <= 1 and res.actions[i].std() > 0.4
        np.testing.assert_array_equal(res.next_obs[i].reshape(4, 6, 7)[:, :-1], res.obs[i].reshape(4, 6, 7)[:, 1:])


# --------------------------------------------------------------------------- scripted controller
def test_decode_line_obs_reconstructs_geometry():
    env = line(4)
    obs, _ = env.reset(seed=2)
    geo = decode_line_obs(np.stack([obs[a] for a in env.possible_agents])[:, None])
    pos = np.array([a.state.p_pos[0] for a in env.world.agents])
    lms = np.array([lm.state.p_pos[0] for lm in env.world.landmarks])
    for i in range(4):
        np.testing.assert_allclose(geo["pos"][i, 0, 0], pos[i], atol=1e-6)
        np.testing.assert_allclose(geo["agents"][i, 0, :, 0], pos - pos[i], atol=1e-6)
        np.testing.assert_allclose(geo["landmarks"][i, 0, :, 0], lms - pos[i], atol=1e-6)
    with pytest.raises(ValueError, match=r"obs_dim 8 too small for 4 agents \(need 9\)"):
        decode_line_obs(np.zeros((4, 1, 8), np.float32))


def test_assignment_keeps_the_order_agrees_across_agents_and_is_min_sum():
    res = run_episodes(lambda: line(4), scripted_line_actions, 6, seed=50, record=True)
    obs = np.stack(res.obs)  # [A, steps, 15]
    perm = line_assignment(obs)
    assert (perm == perm[0:1]).all()
    geo = decode_line_obs(obs)
    ax, lx = geo["agents"][0][..., 0], geo["landmarks"][0][..., 0]  # [steps, 4]
    # the k-th agent from the left has the k-th landmark from the left
    rows = np.arange(len(ax))[:, None]
    np.testing.assert_array_equal(np.argsort(lx[rows, perm[0]], axis=1), np.argsort(ax, axis=1))
    cost = np.abs(ax[:, :, None] - lx[:, None])
    brute = np.min([cost[:, np.arange(4), list(p)].sum(1) for p in itertools.permutations(range(4))], axis=0)
    np.testing.assert_allclose(cost[rows, np.arange(4), perm[0]].sum(1), brute, atol=1e-9)


@pytest.mark.parametrize("variant", ["mpe2", "official"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_scripted_controller_beats_random(n, variant):
    make = lambda: line(n, variant=variant)  # noqa: E731
    expert = task_returns(run_episodes(make, scripted_line_actions, 20, seed=1000)).mean()
    rand = task_returns(run_episodes(make, uniform_random_policy(np.random.default_rng(0), 1), 20, seed=1000)).mean()
    assert expert > rand + 100.0
    # The most an episode can score is 25 steps x 10 per landmark = 250 N.
    assert expert > (0.7 if variant == "official" else 0.55) * 250 * n
    out = scripted_line_actions(np.zeros((n, 3, 4 * n - 1), np.float32))
    assert out.shape == (n, 3, 1) and out.dtype == np.float32


def test_the_controller_of_each_layout():
    assert spread_controller("plane") is scripted_spread_actions
    assert spread_controller("line") is scripted_line_actions
    assert expert_policy(TASK, num_agents=2, layout="line") is scripted_line_actions
    assert expert_policy(TASK, num_agents=2) is scripted_spread_actions
    with pytest.raises(ValueError, match="layout must be one of"):
        spread_controller("circle")


# --------------------------------------------------------------------------- collection
def test_scripted_expert_of_a_task_without_one_is_one_line_before_any_rollout(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["collect", "dataset", "--task", "halfcheetah_2x3", "--tier", "random", "--expert", "scripted", "--size", "100",
              "--out", str(tmp_path / "x.npz"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (MuJoCo may warn above it while the task is built)
    assert e.value.code == 2 and err.startswith("omar collect: error: no scripted reference expert for task 'halfcheetah_2x3'")
    assert not (tmp_path / "x.npz").exists()


def test_random_tier_and_reference_returns_on_the_line():
    data = random_tier(TASK, 60, seed=0, progress=False, num_agents=2, layout="line")
    assert [o.shape for o in data["obs"]] == [(60, 7)] * 2 and [a.shape for a in data["actions"]] == [(60, 1)] * 2
    obs, _ = line(2).reset(seed=1_000_000)
    np.testing.assert_array_equal(data["obs"][0][0], obs["agent_0"])
    s_random, s_expert = reference_returns(TASK, episodes=10, num_agents=2, layout="line")
    assert 0 < s_random < s_expert


def test_collect_train_and_datasets_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    kw = ["--task", TASK, "--env-kwarg", "num_agents=2", "--env-kwarg", "layout=line"]
    main(["collect", "train", *kw, "--set", "input_norm=false", "--set", "start_steps=100", "--set", "batch_size=64", "--steps", "500",
          "--eval-every", "200", "--out", str(out), "--no-progress"])
    snap = load_snapshot(out / "expert.pt")
    assert snap["env_kwargs"] == {"num_agents": 2, "layout": "line"}
    assert snap["obs_dims"] == [7, 7] and snap["act_dims"] == [1, 1] and snap["input_norm"] is False
    index = json.loads((out / "snapshots.json").read_text())
    assert index["env_kwargs"] == {"num_agents": 2, "layout": "line"}
    assert max(s["updates"] for s in index["snapshots"]) > 0  # MATD3 updated networks of these sizes
    for tier, extra in [("random", ["--size", "200"]), ("medium_replay", ["--policy", str(out / "medium.pt")]),
                        ("medium", ["--policy", str(out / "medium.pt"), "--size", "100"])]:
        path = tmp_path / f"{tier}.npz"
        main(["collect", "dataset", *kw, "--tier", tier, *extra, "--out", str(path), "--reference-episodes", "4", "--no-progress"])
        ds = load_dataset(path)
        assert ds.meta["env_kwargs"] == {"num_agents": 2, "layout": "line"}
        assert [a.shape[1] for a in ds.actions] == [1, 1] and [o.shape[1] for o in ds.obs] == [7, 7]
        assert np.abs(np.concatenate(ds.actions)).max() <= 1
    # --expert scripted: the line's references (the scripted controller), for a snapshot with no expert.pt beside it
    step = sorted((out / "snapshots").glob("step_*.pt"))[0]
    path = tmp_path / "medium_replay_scripted.npz"
    main(["collect", "dataset", *kw, "--tier", "medium_replay", "--policy", str(step), "--expert", "scripted", "--out", str(path),
          "--reference-episodes", "4", "--no-progress"])
    ds = load_dataset(path)
    assert (ds.meta["s_random"], ds.meta["s_expert"]) == pytest.approx(reference_returns(TASK, episodes=4, num_agents=2, layout="line"), rel=1e-12)
    assert "scripted reference expert" in ds.meta["reference"] and ds.num_transitions == json.loads(
        (out / "snapshots.json").read_text())["snapshots"][0]["replay_rows"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # without it, a snapshot with no expert.pt beside is refused in one line
        main(["collect", "dataset", *kw, "--tier", "medium_replay", "--policy", str(step), "--out", str(tmp_path / "x.npz"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0 and "no expert snapshot: give --expert" in err
    assert not (tmp_path / "x.npz").exists()
    # OMAR trains on the line's random tier and its actor acts in the line env.
    env_kwargs = {"num_agents": 2, "layout": "line"}
    dm = OfflineDataModule(task=TASK, path=str(tmp_path / "random.npz"), generate=False, env_kwargs=env_kwargs, batch_size=32)
    model = OMAR(dm.obs_dims, dm.act_dims, hidden_dim=16, max_updates=2, tau=0.5, cql_alpha=1.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0).fit(model, datamodule=dm)
    assert model.updates == 2 and dm.act_dims == [1, 1]
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith("actor.net.fc"))
    scores = policy_returns(model.actor, TASK, env_kwargs, num_episodes=3, seed=0)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_nearest_matching_sends_every_agent_to_its_nearest_landmark():
    # agents at -1.0, 0.2 and 1.0; landmarks at 0.0, 0.5 and 3.0: the nearest are 0.0, 0.0 and 0.5
    # (shared by the first two, and the third agent crosses none but leaves 3.0 uncovered).
    pos, lms = np.array([-1.0, 0.2, 1.0]), np.array([0.0, 0.5, 3.0])
    n = 3
    obs = np.zeros((n, 1, 4 * n - 1), np.float32)
    for i in range(n):
        obs[i, 0, 1] = pos[i]
        obs[i, 0, 2:2 + n] = lms - pos[i]
        obs[i, 0, 2 + n:1 + 2 * n] = np.delete(pos - pos[i], i)
    geo = decode_line_obs(obs)
    from omar_lightning.envs.scripted import LINE_MATCHINGS

    perm = LINE_MATCHINGS["nearest"](geo["agents"], geo["landmarks"])
    assert [perm[i, 0, i] for i in range(n)] == [0, 0, 1]
    assert [line_assignment(obs)[i, 0, i] for i in range(n)] == [0, 1, 2]
    near = scripted_line_actions(obs, matching="nearest")[:, 0, 0]
    order = scripted_line_actions(obs, matching="order")[:, 0, 0]
    assert near[2] < 0 < order[2]  # the third agent turns back to 0.5 instead of heading for 3.0
    with pytest.raises(ValueError, match="matching must be one of"):
        scripted_line_actions(obs, matching="greedy")
