"""Tests of reference returns and random-tier collection."""

from __future__ import annotations

import numpy as np
import pytest

from omar_lightning.data.collect.references import reference_returns
from omar_lightning.data.collect.tiers import random_tier
from omar_lightning.envs import make_env

TASK = "cooperative_navigation"
KEYS = ["obs", "actions", "rewards", "next_obs", "dones"]


def test_random_tier_shapes_and_contents():
    data = random_tier(TASK, 110, seed=0, progress=False)
    assert data["agent_names"] == ["agent_0", "agent_1", "agent_2"]
    for key in KEYS:
        assert len(data[key]) == 3
    for i in range(3):
        assert data["obs"][i].shape == (110, 18)
        assert data["next_obs"][i].shape == (110, 18)
        assert data["actions"][i].shape == (110, 2)
        assert data["rewards"][i].shape == (110,)
        assert data["dones"][i].shape == (110,)
        for key in KEYS:
            assert data[key][i].dtype == np.float32
        assert np.abs(data["actions"][i]).max() <= 1.0
        assert data["actions"][i].std() > 0.4  # uniform in [-1, 1]: std 0.577
        assert (data["dones"][i] == 0).all()  # only time-limit ends in this task
    # 110 = 4 whole episodes of 25 steps + 10 steps of a fifth.
    returns = data["episode_returns"]
    assert returns.shape == (4,)
    per_step = np.mean([data["rewards"][i] for i in range(3)], axis=0)
    np.testing.assert_allclose(returns, per_step[:100].reshape(4, 25).sum(1), rtol=1e-5)
    # Observation chains hold inside episodes and break between them.
    o, no = data["obs"][0], data["next_obs"][0]
    np.testing.assert_array_equal(no[:24], o[1:25])
    assert not np.array_equal(no[24], o[25])


def test_random_tier_deterministic_by_seed():
    a = random_tier(TASK, 60, seed=3, progress=False)
    b = random_tier(TASK, 60, seed=3, progress=False)
    c = random_tier(TASK, 60, seed=4, progress=False)
    for key in KEYS:
        for x, y in zip(a[key], b[key]):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a["episode_returns"], b["episode_returns"])
    assert not np.array_equal(a["obs"][0], c["obs"][0])
    assert not np.array_equal(a["actions"][0], c["actions"][0])


def test_random_tier_env_kwargs_and_first_state():
    data = random_tier(TASK, 20, seed=0, progress=False, num_agents=2, max_cycles=10)
    assert len(data["obs"]) == 2 and data["obs"][0].shape == (20, 12)
    assert data["episode_returns"].shape == (2,)
    # Episode 0 of seed 0 is the env reset with seed 1_000_000.
    obs, _ = make_env(TASK, num_agents=2, max_cycles=10).reset(seed=1_000_000)
    np.testing.assert_array_equal(data["obs"][1][0], obs["agent_1"])


def test_collect_errors():
    with pytest.raises(ValueError, match="nope"):
        random_tier("nope", 10, progress=False)
    with pytest.raises(ValueError, match="num_transitions"):
        random_tier(TASK, 0, progress=False)
    with pytest.raises(ValueError, match="num_agents"):
        random_tier(TASK, 10, progress=False, num_agents=9)
    with pytest.raises(ValueError, match="nope"):
        reference_returns("nope")


def test_reference_returns():
    s_random, s_expert = reference_returns(TASK, episodes=20, seed=10_000)
    assert 0 < s_random < s_expert
    assert s_expert >= 2.0 * s_random
    assert reference_returns(TASK, episodes=20, seed=10_000) == (s_random, s_expert)
    # mpe2's own reward is negative and the expert is still better.
    m_random, m_expert = reference_returns(TASK, episodes=10, reward="mpe2")
    assert m_random < m_expert < 0
