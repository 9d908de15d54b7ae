"""Episodes from a dataset's rows, and ``omar datasets compare``: agent 0's level and the size
against the official tiers' (OG-MARL's OMAR dataset card)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_datasets

from omar_lightning.data import OfflineDataset, save_dataset
from omar_lightning.data.compare import LevelComparison, compare_to_official
from omar_lightning.data.episodes import episode_bounds, whole_episode_returns
from omar_lightning.data.official import LEVELS, Level, tolerance
from omar_lightning.envs import task_spec


run = run_datasets


def chain(rng, lengths, dim=2):
    """obs, next_obs of consecutive episodes of the given lengths (continuing inside each)."""
    obs, nxt = [], []
    for n in lengths:
        traj = rng.standard_normal((n + 1, dim))
        obs.append(traj[:-1])
        nxt.append(traj[1:])
    return np.concatenate(obs), np.concatenate(nxt)


def test_episodes_end_at_dones_time_limits_and_breaks():
    rng = np.random.default_rng(0)
    obs, nxt = chain(rng, [7, 5])  # rows 0..6 continue each other, then 7..11
    dones = np.zeros(12)
    dones[2] = 1  # a termination after row 2 (the rows still continue: done wins)
    obs[3] = nxt[2]
    starts, ends, whole = episode_bounds([obs], [nxt], [dones], episode_length=5)
    np.testing.assert_array_equal(starts, [0, 3, 7])
    np.testing.assert_array_equal(ends, [3, 7, 12])
    np.testing.assert_array_equal(whole, [True, False, True])  # terminated; cut (4 rows); time limit
    # one long continuing run is cut at the time limit; its last piece is not whole
    obs, nxt = chain(rng, [12])
    starts, ends, whole = episode_bounds([obs], [nxt], [np.zeros(12)], episode_length=5)
    np.testing.assert_array_equal(starts, [0, 5, 10])
    np.testing.assert_array_equal(whole, [True, True, False])
    # a break in any agent's rows ends the episode
    o2, n2 = obs.copy(), nxt.copy()
    o2[4] += 1
    starts, _, _ = episode_bounds([obs, o2], [nxt, n2], [np.zeros(12)] * 2, episode_length=5)
    np.testing.assert_array_equal(starts, [0, 4, 9])


def test_whole_episode_returns_of_agent_0_or_the_mean():
    rng = np.random.default_rng(1)
    obs, nxt = chain(rng, [3, 3, 2])  # the last episode is cut
    r0, r1 = rng.standard_normal(8), rng.standard_normal(8)
    args = ([obs, obs], [nxt, nxt], [np.zeros(8)] * 2, [r0, r1], 3)
    np.testing.assert_allclose(whole_episode_returns(*args, agent=0), [r0[:3].sum(), r0[3:6].sum()])
    np.testing.assert_allclose(whole_episode_returns(*args, agent=None), [(r0[:3].sum() + r1[:3].sum()) / 2, (r0[3:6].sum() + r1[3:6].sum()) / 2])


def dataset_with_returns(task, tier, returns, env_kwargs=None, seed=0):
    """A dataset of ``task`` whose whole episodes give agent 0 the returns ``returns``; the other
    agents get large rewards (compare must not look at them)."""
    spec = task_spec(task, **(env_kwargs or {}))
    rng = np.random.default_rng(seed)
    length = spec.episode_length
    n = len(returns) * length
    per_agent = {f: [] for f in ("obs", "actions", "rewards", "next_obs", "dones")}
    for i, (od, ad) in enumerate(zip(spec.obs_dims, spec.act_dims)):
        o, no = chain(rng, [length] * len(returns), od)
        per_agent["obs"].append(o.astype(np.float32))
        per_agent["next_obs"].append(no.astype(np.float32))
        per_agent["actions"].append(rng.uniform(-1, 1, (n, ad)).astype(np.float32))
        rew = np.repeat(np.asarray(returns, np.float64) / length, length) if i == 0 else np.full(n, 1000.0)
        per_agent["rewards"].append(rew.astype(np.float32))
        per_agent["dones"].append(np.zeros(n, np.float32))
    meta = {"task": task, "tier": tier, "agent_names": spec.agent_names, "s_random": 0.0, "s_expert": 1.0, "env_kwargs": env_kwargs or {}}
    return OfflineDataset(**per_agent, meta=meta)


def test_tolerance_is_five_percent_or_two_points():
    assert tolerance(273.39) == pytest.approx(0.05 * 273.39)
    assert tolerance(-282.89) == pytest.approx(0.05 * 282.89)
    assert tolerance(-4.13) == 2.0 and tolerance(1.23) == 2.0


@pytest.mark.parametrize("task, tier, factor_or_shift, within", [
    ("cooperative_navigation", "medium", 1.049, True),
    ("cooperative_navigation", "medium", 0.951, True),
    ("cooperative_navigation", "medium", 1.051, False),
    ("predator_prey", "random", -1.9, True),  # official -4.13: within 2 points
    ("predator_prey", "random", +2.1, False),
])
def test_compare_verdict(task, tier, factor_or_shift, within):
    official = LEVELS[task][tier].mean
    target = official * factor_or_shift if official > 0 else official + factor_or_shift
    returns = [target - 3.0, target + 3.0]
    c = compare_to_official(dataset_with_returns(task, tier, returns))
    assert c.mean == pytest.approx(target, abs=1e-4) and c.std == pytest.approx(3.0, abs=1e-4) and c.episodes == 2
    assert c.within is within and c.official == LEVELS[task][tier]
    assert c.same_size is False and c.transitions == 2 * task_spec(task).episode_length


def test_size_match_and_no_episode():
    c = LevelComparison("cooperative_navigation", "medium_replay", 97_500, 0, None, None, LEVELS["cooperative_navigation"]["medium_replay"], 10.0)
    assert c.same_size and c.within is None and c.difference is None
    assert not LevelComparison("world", "medium_replay", 80_001, 1, 1.0, 0.0, Level(1.23, 13.49, 80_000), 2.0).same_size


def test_compare_command_prints_the_verdict_and_json(tmp_path, capsys):
    target = LEVELS["cooperative_navigation"]["expert"].mean * 1.02
    path = save_dataset(tmp_path / "e.npz", dataset_with_returns("cooperative_navigation", "expert", [target] * 3))
    code, out, err = run(["compare", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{path}: cooperative_navigation / expert, env_kwargs {{}}"
    assert f"agent 0 return {target:,.2f} +- 0.00 over 3 episodes; official expert 530.95 +- 71.41: +10.62, +2.0%, within +-26.55: yes" in lines[1]
    assert "transitions 75; official 1,000,000: -999,925 (-100.0%)" in lines[2]
    code, out, _ = run(["compare", str(path), "--json", "--tier", "medium"], capsys)
    got = json.loads(out)
    assert got["tier"] == "medium" and got["official"]["mean"] == 273.39 and got["within"] is False and got["same_size"] is False


def test_compare_without_an_official_level_is_one_line(tmp_path, capsys):
    five = save_dataset(tmp_path / "n5.npz", dataset_with_returns("cooperative_navigation", "medium", [1.0], env_kwargs={"num_agents": 5}))
    own = save_dataset(tmp_path / "own.npz", dataset_with_returns("cooperative_navigation", "own", [1.0]))
    code, out, err = run(["compare", str(five), str(own), str(tmp_path / "missing.npz")], capsys)
    lines = err.splitlines()
    assert code == 1 and len(lines) == 3 and out == ""
    assert lines[0] == f"{five}: the official cooperative_navigation tiers have 3 learning agents, this dataset 5"
    assert lines[1].startswith(f"{own}: no official tier 'own'") and "give --tier" in lines[1]
    assert "missing.npz" in lines[2]
    code, out, _ = run(["compare", str(own), "--tier", "random"], capsys)
    assert code == 0 and "official random 159.57" in out
