"""``variant="official"`` of predator-prey, world and HalfCheetah 2x3: the official OMAR code's
environments on mpe2's and gymnasium-robotics' classes, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from omar_lightning.data.collect.references import expert_policy
from omar_lightning.data.collect.tiers import random_tier
from omar_lightning.envs import make_env, task_spec
from omar_lightning.envs.mpe_competitive import FIXED_POLICIES, chase_policy, evade_policy
from omar_lightning.envs.official_physics import uses_official_physics
from omar_lightning.envs.rollout import run_episodes, task_returns, uniform_random_policy

DT = 0.1
FAR = [(-4.0, -4.0), (4.0, -4.0), (-4.0, 4.0), (4.0, 4.0), (0.0, 4.0), (0.0, -4.0)]


def _place(entities, positions, velocities=None):
    for k, (e, p) in enumerate(zip(entities, positions)):
        e.state.p_pos = np.asarray(p, dtype=np.float64)
        e.state.p_vel = np.zeros(2) if velocities is None else np.asarray(velocities[k], dtype=np.float64)


def _push_policy(force):
    return lambda obs, env: np.tile(np.asarray(force, np.float32), (obs.shape[0], 1))


# ------------------------------------------------------------------ counts, shapes, defaults
@pytest.mark.parametrize(
    "task, names, obs_dims, n_good",
    [
        ("predator_prey", ["adversary_0", "adversary_1", "adversary_2"], [16, 16, 16], 1),
        ("world", ["adversary_0", "adversary_1", "adversary_2"], [24, 24, 24], 1),
    ],
)
def test_official_agents_and_spaces(task, names, obs_dims, n_good):
    spec = task_spec(task, variant="official")
    assert (spec.agent_names, spec.obs_dims, spec.act_dims, spec.episode_length, spec.return_mode) == (names, obs_dims, [2, 2, 2], 25, "first")
    env = make_env(task, variant="official")
    agents = env.world.agents
    assert [a.adversary for a in agents] == [True] * 3 + [False] * n_good
    assert all(a.silent for a in agents) and uses_official_physics(env.world)
    assert env.fixed_policy_name == "random_walk"
    assert env.mpe_env.observation_space("agent_0").shape == ((14,) if task == "predator_prey" else (22,))


def test_official_entity_properties_are_the_forks():
    # simple_tag.py and simple_world.py of the official fork: sizes, accel, max_speed, landmarks.
    tag = make_env("predator_prey", variant="official").world
    assert [(a.size, a.accel, a.max_speed) for a in tag.agents] == [(0.075, 3.0, 1.0)] * 3 + [(0.05, 4.0, 1.3)]
    assert [(lm.size, lm.collide, lm.movable) for lm in tag.landmarks] == [(0.2, True, False)] * 2
    world = make_env("world", variant="official").world
    assert [(a.size, a.accel, a.max_speed, a.leader) for a in world.agents] == [(0.075, 3.0, 1.0, True)] * 3 + [(0.045, 4.0, 1.3, True)]
    assert [(lm.size, lm.collide) for lm in world.landmarks] == [(0.2, True)] + [(0.03, False)] * 2 + [(0.3, False)] * 2
    assert len(world.food) == 2 and len(world.forests) == 2


def test_variant_defaults_and_bad_variant():
    assert make_env("predator_prey").fixed_policy_name == "flee"
    assert make_env("world").fixed_policy_name == "forage_flee"
    assert task_spec("world").return_mode == "mean"
    assert make_env("predator_prey", variant="official", prey_policy="flee").fixed_policy_name == "flee"
    for task in ("predator_prey", "world"):
        with pytest.raises(ValueError, match=r"variant must be one of \('mpe2', 'official'\), got 'fork'"):
            make_env(task, variant="fork")
    with pytest.raises(ValueError, match=r"variant must be one of \('mamujoco', 'official'\), got 'mpe2'"):
        make_env("halfcheetah_2x3", variant="mpe2")


def test_official_predator_prey_spawns_like_mpe2():
    a, b = make_env("predator_prey"), make_env("predator_prey", variant="official")
    oa, _ = a.reset(seed=4)
    ob, _ = b.reset(seed=4)
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k])


# ------------------------------------------------------------------ physics
@pytest.mark.parametrize("task", ["predator_prey", "world"])
@pytest.mark.parametrize("variant, chaser_gain, good_gain", [("mpe2", 3.0, 4.0), ("official", 9.0, 16.0)])
def test_push_from_rest_and_effective_forces(monkeypatch, task, variant, chaser_gain, good_gain):
    monkeypatch.setitem(FIXED_POLICIES, "push", _push_policy([0.5, 0.0]))
    kwargs = {"prey_policy" if task == "predator_prey" else "good_policy": "push", "variant": variant}
    env = make_env(task, **kwargs)
    env.reset(seed=0)
    world = env.world
    _place(world.agents, FAR[: len(world.agents)])
    _place(world.landmarks, [(8.0 + 2 * k, 8.0) for k in range(len(world.landmarks))])
    before = np.array([a.state.p_pos.copy() for a in world.agents])
    forces = np.zeros((env.num_learners, 2), np.float32)
    forces[0] = [1.0, 0.0]
    forces[1] = [0.0, -0.5]
    # mpe2's world leader also speaks: its communication numbers follow its force.
    env.step_actions([np.concatenate([f, -np.ones(d - 2, np.float32)]) for f, d in zip(forces, env.act_dims)])
    moved = np.array([a.state.p_pos for a in world.agents]) - before
    vel = np.array([a.state.p_vel for a in world.agents])
    good = env.num_learners  # first good agent
    expected_vel = {0: [chaser_gain * DT, 0.0], 1: [0.0, -0.5 * chaser_gain * DT], 2: [0.0, 0.0], good: [0.5 * good_gain * DT, 0.0]}
    for i, v in expected_vel.items():
        np.testing.assert_allclose(vel[i], v, atol=1e-12)
        # mpe2 moves with the old velocity (0 from rest); the fork with the new one.
        np.testing.assert_allclose(moved[i], np.asarray(v) * DT if variant == "official" else [0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("task", ["predator_prey", "world"])
def test_official_speed_caps(monkeypatch, task):
    monkeypatch.setitem(FIXED_POLICIES, "push", _push_policy([1.0, 0.0]))
    env = make_env(task, variant="official", **{"prey_policy" if task == "predator_prey" else "good_policy": "push"})
    env.reset(seed=0)
    _place(env.world.agents, FAR[: len(env.world.agents)])
    _place(env.world.landmarks, [(8.0 + 2 * k, 8.0) for k in range(len(env.world.landmarks))])
    env.step_forces(np.tile([[1.0, 0.0]], (3, 1)).astype(np.float32))
    env.step_forces(np.tile([[1.0, 0.0]], (3, 1)).astype(np.float32))
    # 0.9 then 0.9 * 0.75 + 0.9 = 1.575 -> capped at 1.0; the good agent 1.6 -> 1.3.
    speeds = [float(np.linalg.norm(a.state.p_vel)) for a in env.world.agents]
    np.testing.assert_allclose(speeds, [1.0, 1.0, 1.0, 1.3], rtol=1e-12)


# ------------------------------------------------------------------ rewards
def test_official_predator_reward_on_hand_placed_agents():
    env_o, env_m = make_env("predator_prey", variant="official"), make_env("predator_prey")
    for env in (env_o, env_m):
        env.reset(seed=0)
        # Predators 0 and 1 touch the prey (0.1 and 0.12 < 0.075 + 0.05), predator 2 is 1.0 away.
        _place(env.world.agents, [(0.1, 0.0), (0.0, 0.12), (0.6, 0.8), (0.0, 0.0)])
    shaped = 20.0 - 0.1 * (0.1 + 0.12 + 1.0)
    for agent in env_o.world.agents[:3]:
        assert env_o.mpe_env.scenario.reward(agent, env_o.world) == pytest.approx(shaped, abs=1e-12)
        assert env_m.mpe_env.scenario.reward(agent, env_m.world) == 20.0


def _hand_shaped_tag_reward(world):
    prey = world.agents[-1].state.p_pos
    d = [np.hypot(*(a.state.p_pos - prey)) for a in world.agents[:3]]
    return 10.0 * sum(x < 0.125 for x in d) - 0.1 * sum(d)


def test_official_predator_rewards_in_steps_are_shared_and_shaped():
    env = make_env("predator_prey", variant="official")
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(25):
        _, rewards, _, _ = env.step_forces(rng.uniform(-1, 1, (3, 2)).astype(np.float32))
        np.testing.assert_allclose(rewards, np.full(3, _hand_shaped_tag_reward(env.world)), rtol=1e-12)


def test_official_world_reward_on_hand_placed_agents():
    env = make_env("world", variant="official")
    env.reset(seed=0)
    # Adversaries 0 and 1 touch the good agent (0.1 and 0.0707 < 0.075 + 0.045); 2 is 0.7 away.
    _place(env.world.agents, [(0.1, 0.0), (-0.05, 0.05), (0.0, -0.7), (0.0, 0.0)])
    expected = 2 * 5.0 - 0.1 * (0.1 + np.hypot(0.05, 0.05) + 0.7)
    for agent in env.world.agents[:3]:
        assert env.mpe_env.scenario.reward(agent, env.world) == pytest.approx(expected, abs=1e-12)


def test_world_reward_is_fully_shared_only_in_the_official_variant():
    spreads = {}
    for variant in ("mpe2", "official"):
        env = make_env("world", variant=variant)
        env.reset(seed=1)
        rng = np.random.default_rng(1)
        spread = 0.0
        for _ in range(25):
            acts = [rng.uniform(-1, 1, d).astype(np.float32) for d in env.act_dims]
            _, rewards, _, _ = env.step_actions(acts)
            spread = max(spread, float(rewards.max() - rewards.min()))
        spreads[variant] = spread
    assert spreads["official"] == 0.0 and spreads["mpe2"] > 0.01


@pytest.mark.parametrize("task", ["predator_prey", "world"])
def test_official_score_is_the_first_adversarys_return(task):
    res = run_episodes(lambda: make_env(task, variant="official"), uniform_random_policy(np.random.default_rng(0), 2), 4, 0)
    assert res.return_mode == "first"
    np.testing.assert_array_equal(task_returns(res), res.episode_returns[:, 0])


# ------------------------------------------------------------------ observations
def test_official_world_observation_layout_entry_by_entry():
    env = make_env("world", variant="official")
    env.reset(seed=0)
    w = env.world
    # Good agent inside forest 0, adversary 1 inside forest 1, adversaries 0 and 2 in none.
    _place(w.agents, [(0.1, 0.2), (-0.5, 0.4), (0.6, -0.6), (0.3, -0.1)], [(0.05, -0.02), (0.0, 0.1), (-0.1, 0.0), (0.2, 0.1)])
    _place(w.landmarks, [(-0.8, -0.8), (0.7, 0.7), (-0.2, -0.9), (0.4, -0.2), (-0.6, 0.5)])
    a0 = env.mpe_env.observe("adversary_0")
    expected_a0 = [0.05, -0.02, 0.1, 0.2,
                   -0.9, -1.0, 0.6, 0.5, -0.3, -1.1, 0.3, -0.4, -0.7, 0.3,  # obstacle, food x2, forests x2
                   -0.6, 0.2, 0.5, -0.8, 0.2, -0.3,  # adversaries 1, 2, the good agent (seen in its forest)
                   0.2, 0.1,  # the good agent's velocity
                   -1.0, -1.0]  # in forest 0, in forest 1
    np.testing.assert_allclose(a0, expected_a0, atol=1e-6)
    a1 = env.mpe_env.observe("adversary_1")
    assert a1.shape == (24,) and list(a1[-2:]) == [-1.0, 1.0]
    np.testing.assert_allclose(a1[18:22], [0.8, -0.5, 0.2, 0.1], atol=1e-6)  # good agent seen from forest 1
    good = env.mpe_env.observe("agent_0")
    expected_good = [0.2, 0.1, 0.3, -0.1,
                     -1.1, -0.7, 0.4, 0.8, -0.5, -0.8, 0.1, -0.1, -0.9, 0.6,
                     -0.2, 0.3, -0.8, 0.5, 0.3, -0.5,
                     1.0, -1.0]
    np.testing.assert_allclose(good, expected_good, atol=1e-6)
    # What the learners get is the same observation.
    obs, *_ = env.step_forces(np.zeros((3, 2), np.float32))
    np.testing.assert_array_equal(obs[0], env.mpe_env.observe("adversary_0"))


def test_official_predator_prey_observation_layout():
    env = make_env("predator_prey", variant="official")
    env.reset(seed=0)
    w = env.world
    _place(w.agents, [(0.1, 0.2), (-0.5, 0.4), (0.6, -0.6), (0.3, -0.1)], [(0.05, -0.02), (0.0, 0.1), (-0.1, 0.0), (0.2, 0.1)])
    _place(w.landmarks, [(-0.8, -0.8), (0.7, 0.7)])
    expected = [0.05, -0.02, 0.1, 0.2, -0.9, -1.0, 0.6, 0.5, -0.6, 0.2, 0.5, -0.8, 0.2, -0.3, 0.2, 0.1]
    np.testing.assert_allclose(env.mpe_env.observe("adversary_0"), expected, atol=1e-6)
    prey = env.mpe_env.observe("agent_0")
    np.testing.assert_allclose(prey, [0.2, 0.1, 0.3, -0.1, -1.1, -0.7, 0.4, 0.8, -0.2, 0.3, -0.8, 0.5, 0.3, -0.5], atol=1e-6)


# ------------------------------------------------------------------ fixed and scripted policies
def _prey_obs(env, prey, predators, obstacles):
    _place(env.world.agents, list(predators) + [prey])
    _place(env.world.landmarks, obstacles)
    return np.stack([env.mpe_env.observe(a.name) for a in env.world.agents if not a.adversary])


def test_evade_runs_straight_away_from_a_lone_predator():
    env = make_env("predator_prey", variant="official", num_adversaries=1)
    env.reset(seed=0)
    force = evade_policy(_prey_obs(env, (0.0, 0.0), [(0.3, 0.0)], [(3.0, 3.0), (-3.0, 3.0)]), env)
    np.testing.assert_allclose(force, [[-1.0, 0.0]], atol=1e-6)


def test_evade_keeps_to_the_arena_and_around_obstacles():
    env = make_env("predator_prey", variant="official", num_adversaries=1)
    env.reset(seed=0)
    # Near the right edge with the predator on its left: it runs along the edge, not out.
    force = evade_policy(_prey_obs(env, (0.75, 0.0), [(0.45, 0.0)], [(3.0, 3.0), (-3.0, 3.0)]), env)[0]
    assert force[0] <= 1e-6 and abs(force[1]) > 0.9
    # An obstacle right behind it: it leaves at an angle.
    force = evade_policy(_prey_obs(env, (0.0, 0.0), [(0.3, 0.0)], [(-0.35, 0.0), (3.0, 3.0)]), env)[0]
    assert force[0] < 0 and abs(force[1]) > 0.3


@pytest.mark.parametrize("task, key", [("predator_prey", "prey_policy"), ("world", "good_policy")])
@pytest.mark.parametrize("name", ["evade", "uniform_random"])
def test_fixed_policies_are_harder_for_the_scripted_chasers_than_a_still_target(task, key, name):
    scores = {}
    for fixed in ("stand_still", name):
        kw = {"variant": "official", key: fixed}
        scores[fixed] = task_returns(run_episodes(lambda: make_env(task, **kw), expert_policy(task, **kw), 20, 10_000)).mean()
    assert scores[name] < 0.5 * scores["stand_still"]


@pytest.mark.parametrize("task, key", [("predator_prey", "prey_policy"), ("world", "good_policy")])
def test_random_walk_is_no_easier_than_a_still_target_and_easier_than_full_force(task, key):
    scores = {}
    for fixed in ("stand_still", "random_walk", "uniform_random"):
        kw = {"variant": "official", key: fixed}
        scores[fixed] = task_returns(run_episodes(lambda: make_env(task, **kw), expert_policy(task, **kw), 20, 10_000)).mean()
    assert scores["uniform_random"] < scores["random_walk"] < scores["stand_still"]


def test_random_walk_is_the_uniform_draw_scaled_by_its_force():
    from omar_lightning.envs.mpe_competitive import RANDOM_WALK_FORCE

    a, b = make_env("world", variant="official"), make_env("world", variant="official")
    a.reset(seed=5)
    b.reset(seed=5)
    obs = np.zeros((1, 22), np.float32)
    walk = np.concatenate([FIXED_POLICIES["random_walk"](obs, a) for _ in range(50)])
    full = np.concatenate([FIXED_POLICIES["uniform_random"](obs, b) for _ in range(50)])
    assert RANDOM_WALK_FORCE == 0.1
    np.testing.assert_allclose(walk, 0.1 * full, rtol=1e-6)
    assert np.abs(walk).max() <= 0.1 and np.abs(walk).max() > 0.08


def test_uniform_random_fixed_policy_follows_the_episode_seed():
    def prey_path(seed):
        env = make_env("predator_prey", variant="official")
        env.reset(seed=seed)
        path = []
        for _ in range(10):
            env.step_forces(np.zeros((3, 2), np.float32))
            path.append(env.world.agents[-1].state.p_pos.copy())
        return np.array(path)

    a, b, c = prey_path(3), prey_path(3), prey_path(4)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and np.abs(np.diff(a, axis=0)).max() > 0.01
    env = make_env("world", variant="official")
    env.reset(seed=0)
    forces = np.concatenate([FIXED_POLICIES["uniform_random"](np.zeros((1, 22), np.float32), env) for _ in range(500)])
    assert forces.shape == (500, 2) and forces.min() >= -1 and forces.max() <= 1
    assert abs(forces.mean()) < 0.1 and forces.std() == pytest.approx(1 / np.sqrt(3), abs=0.05)


def test_stand_still_prey_does_not_move():
    env = make_env("predator_prey", variant="official", prey_policy="stand_still")
    env.reset(seed=2)
    prey = env.world.agents[-1]
    _place(env.world.agents, FAR[:4])
    start = prey.state.p_pos.copy()
    env.step_forces(np.ones((3, 2), np.float32))
    np.testing.assert_array_equal(prey.state.p_pos, start)


def test_chasers_drive_at_the_good_agent_in_the_official_world():
    env = make_env("world", variant="official")
    env.reset(seed=0)
    _place(env.world.agents, [(-0.5, 0.0), (0.5, 0.0), (0.0, -0.5), (0.0, 0.0)])
    _place(env.world.landmarks, [(3.0, 3.0)] * 5)
    obs = np.stack([env.mpe_env.observe(n) for n in env.possible_agents])[:, None]  # [A, 1, 24]
    act = chase_policy(obs, env)[:, 0]
    assert act.shape == (3, 2)
    np.testing.assert_allclose(act, [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], atol=1e-6)


# ------------------------------------------------------------------ HalfCheetah
OFFICIAL_JOINTS = {"agent_0": ["bfoot", "bshin", "bthigh"], "agent_1": ["ffoot", "fshin", "fthigh"]}


def _joint_index(model, name):
    import mujoco

    j = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)
    return int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])


def test_official_halfcheetah_observes_own_joint_angles_and_velocities():
    env = make_env("halfcheetah_2x3", variant="official", max_episode_steps=6)
    spec = task_spec("halfcheetah_2x3", variant="official")
    assert spec.obs_dims == [6, 6] and spec.act_dims == [3, 3]
    obs, _ = env.reset(seed=1)
    sim = env._env.single_agent_env.unwrapped
    rng = np.random.default_rng(0)
    for _ in range(5):
        for agent, joints in OFFICIAL_JOINTS.items():
            want = []
            for name in joints:  # per joint, in name order: angle, then angular velocity
                qpos, dof = _joint_index(sim.model, name)
                want += [sim.data.qpos[qpos], sim.data.qvel[dof]]
            np.testing.assert_allclose(obs[agent], np.asarray(want, np.float32), rtol=0, atol=0)
        obs, *_ = env.step({a: rng.uniform(-1, 1, 3).astype(np.float32) for a in env.possible_agents})


def test_official_halfcheetah_actions_rewards_and_state_are_mamujocos():
    import mujoco

    ours, ref = make_env("halfcheetah_2x3", variant="official"), make_env("halfcheetah_2x3")
    ours.reset(seed=5)
    ref.reset(seed=5)
    sim = ours._env.single_agent_env.unwrapped
    actuators = [mujoco.mj_id2name(sim.model, mujoco.mjtObj.mjOBJ_ACTUATOR, k) for k in range(sim.model.nu)]
    acts = {"agent_0": np.array([0.1, -0.2, 0.3], np.float32), "agent_1": np.array([-0.4, 0.5, -0.6], np.float32)}
    _, r1, *_ = ours.step(acts)
    _, r2, *_ = ref.step(acts)
    ctrl = dict(zip(actuators, sim.data.ctrl))
    np.testing.assert_allclose([ctrl[j] for j in ("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot")],
                               [0.1, -0.2, 0.3, -0.4, 0.5, -0.6], rtol=1e-6)
    assert r1 == r2 and r1["agent_0"] == r1["agent_1"]
    np.testing.assert_array_equal(ours.state(), ref.state())
    assert ours.state().shape == (17,)


# ------------------------------------------------------------------ collection
@pytest.mark.parametrize("task, size, obs_dim", [("predator_prey", 60, 16), ("world", 60, 24), ("halfcheetah_2x3", 30, 6)])
def test_random_tier_collects_on_the_official_variants(task, size, obs_dim):
    data = random_tier(task, size, seed=0, progress=False, variant="official")
    assert all(o.shape == (size, obs_dim) for o in data["obs"]) and all(o.shape == (size, obs_dim) for o in data["next_obs"])
    assert all(np.isfinite(r).all() for r in data["rewards"])
    if task == "world":  # fully shared
        np.testing.assert_array_equal(data["rewards"][0], data["rewards"][2])


def test_collect_cli_writes_an_official_tier_and_refuses_a_snapshot_of_another_variant(tmp_path, capsys):
    from omar_lightning.cli import main
    from omar_lightning.data import load_dataset

    out = tmp_path / "tag.npz"
    main(["collect", "dataset", "--task", "predator_prey", "--tier", "random", "--env-kwarg", "variant=official",
          "--size", "100", "--reference-episodes", "4", "--out", str(out), "--no-progress"])
    data = load_dataset(out)
    assert data.meta["env_kwargs"] == {"variant": "official"} and [o.shape for o in data.obs] == [(100, 16)] * 3
    run = tmp_path / "run"
    main(["collect", "train", "--task", "predator_prey", "--steps", "250", "--out", str(run), "--eval-every", "250", "--no-progress"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["collect", "dataset", "--task", "predator_prey", "--tier", "random", "--env-kwarg", "variant=official",
              "--expert", str(run / "expert.pt"), "--size", "100", "--out", str(tmp_path / "x.npz"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1
    assert err.endswith("expert.pt: snapshot is for task 'predator_prey' {}, not 'predator_prey' {'variant': 'official'}")
    assert not (tmp_path / "x.npz").exists()


def test_a_random_walk_of_any_force_is_named_random_walk_colon_force():
    from omar_lightning.envs.mpe_competitive import fixed_policy

    envs = [make_env("predator_prey", variant="official", prey_policy=p) for p in ("random_walk", "random_walk:0.1", "random_walk:0.25", "uniform_random")]
    for env in envs:
        env.reset(seed=3)
    obs = np.zeros((1, 14), np.float32)
    draws = [np.concatenate([env._fixed_policy(obs, env) for _ in range(20)]) for env in envs]
    np.testing.assert_array_equal(draws[0], draws[1])  # random_walk is random_walk:0.1
    np.testing.assert_allclose(draws[2], 0.25 * draws[3], rtol=1e-6)
    assert envs[2].fixed_policy_name == "random_walk:0.25" and task_spec("predator_prey", variant="official", prey_policy="random_walk:0.25").obs_dims == [16, 16, 16]
    for bad in ("random_walk:0", "random_walk:1.5", "random_walk:fast", "random_walk:", "walk"):
        with pytest.raises(ValueError, match=rf"^prey_policy must be one of .* or random_walk:F with 0 < F <= 1, got '{bad}'$"):
            make_env("predator_prey", variant="official", prey_policy=bad)
    with pytest.raises(ValueError, match="^good_policy must be one of"):
        make_env("world", variant="official", good_policy="random_walk:-1")
    assert fixed_policy("random_walk:1")(obs, envs[3]).shape == (1, 2)


def test_a_snapshot_trained_against_another_fixed_policy_writes_rollout_tiers_but_no_replay_tier(tmp_path, capsys):
    """Predators trained against a faster prey play the task's own prey: rollout tiers say so in
    their behaviour line; a medium-replay tier, the run's own transitions, is refused."""
    from omar_lightning.cli import main
    from omar_lightning.data import load_dataset
    from omar_lightning.data.collect.snapshots import matching_snapshot, trained_apart

    run = tmp_path / "run"
    main(["collect", "train", "--task", "predator_prey", "--env-kwarg", "variant=official", "--env-kwarg", "prey_policy=random_walk:0.25",
          "--steps", "250", "--out", str(run), "--eval-every", "250", "--no-progress"])
    snap = matching_snapshot(run / "expert.pt", "predator_prey", {"variant": "official"})
    assert trained_apart(snap, {"variant": "official"}) == {"prey_policy": "random_walk:0.25"}
    assert trained_apart(snap, {"variant": "official", "prey_policy": "random_walk:0.25"}) == {}
    with pytest.raises(ValueError, match=r"snapshot is for task 'predator_prey' .*, not 'predator_prey' \{'variant': 'mpe2'\}"):
        matching_snapshot(run / "expert.pt", "predator_prey", {"variant": "mpe2"})
    out = tmp_path / "medium.npz"
    main(["collect", "dataset", "--task", "predator_prey", "--tier", "medium", "--env-kwarg", "variant=official", "--policy", str(run / "expert.pt"),
          "--size", "100", "--reference-episodes", "2", "--out", str(out), "--no-progress"])
    meta = load_dataset(out).meta
    assert meta["env_kwargs"] == {"variant": "official"} and meta["behaviour"].endswith("with Gaussian noise 0.1 (trained with prey_policy=random_walk:0.25)")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["collect", "dataset", "--task", "predator_prey", "--tier", "medium_replay", "--env-kwarg", "variant=official",
              "--policy", str(run / "expert.pt"), "--out", str(tmp_path / "mr.npz"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "a medium_replay tier needs a run in the tier's own environment" in err
    assert not (tmp_path / "mr.npz").exists()
