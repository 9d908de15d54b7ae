"""The ``official`` environment variants: the official OMAR code's MPE fork on mpe2's classes."""

from __future__ import annotations

import numpy as np
import pytest

from omar_lightning.envs import make_env
from omar_lightning.envs.official_physics import uses_official_physics

DT = 0.1
DAMPING = 0.25


def _place_at_rest(env, positions):
    for agent, pos in zip(env.world.agents, positions):
        agent.state.p_pos = np.asarray(pos, dtype=np.float64)
        agent.state.p_vel = np.zeros(2)


@pytest.mark.parametrize("variant, expected", [("mpe2", 0.0), ("official", 5.0 * DT * DT)])
def test_push_from_rest_moves_by_force_dt_squared_only_in_the_official_variant(variant, expected):
    env = make_env("cooperative_navigation", variant=variant)
    env.reset(seed=0)
    # Far apart: no contact forces.
    _place_at_rest(env, [(-3.0, 0.0), (0.0, 3.0), (3.0, 0.0)])
    before = np.array([a.state.p_pos.copy() for a in env.world.agents])
    env.step_forces(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, -1.0]], dtype=np.float32))
    after = np.array([a.state.p_pos for a in env.world.agents])
    moved = after - before
    np.testing.assert_allclose(moved[0], [expected, 0.0], atol=1e-12)
    np.testing.assert_allclose(moved[1], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(moved[2], [0.0, -expected], atol=1e-12)
    # Both give the agent the same new velocity, 5 * dt from rest.
    np.testing.assert_allclose(env.world.agents[0].state.p_vel, [5.0 * DT, 0.0], atol=1e-12)


def test_official_integration_matches_a_hand_computed_semi_implicit_euler_step():
    env = make_env("cooperative_navigation", variant="official")
    env.reset(seed=1)
    _place_at_rest(env, [(-3.0, 0.0), (0.0, 3.0), (3.0, 0.0)])
    v0 = np.array([0.3, -0.2])
    env.world.agents[0].state.p_vel = v0.copy()
    p0 = env.world.agents[0].state.p_pos.copy()
    force = np.array([0.4, 0.7])
    env.step_forces(np.array([force, [0, 0], [0, 0]], dtype=np.float32))
    v1 = v0 * (1 - DAMPING) + 5.0 * force.astype(np.float32) * DT
    np.testing.assert_allclose(env.world.agents[0].state.p_vel, v1, rtol=1e-6)
    np.testing.assert_allclose(env.world.agents[0].state.p_pos, p0 + v1 * DT, rtol=1e-6)


def test_mpe2_variant_is_the_default_and_keeps_mpe2_physics():
    env = make_env("cooperative_navigation")
    assert env.variant == "mpe2" and not uses_official_physics(env.world)
    assert uses_official_physics(make_env("cooperative_navigation", variant="official").world)


@pytest.mark.parametrize("n, bound", [(3, 1.0), (4, 2.0), (5, 2.0)])
def test_official_spawn_box(n, bound):
    env = make_env("cooperative_navigation", num_agents=n, variant="official")
    pos = []
    for seed in range(40):
        env.reset(seed=seed)
        pos.extend(e.state.p_pos for e in env.world.entities)
    pos = np.abs(np.array(pos))
    assert pos.max() <= bound
    assert pos.max() > 0.9 * bound


def test_official_spawn_is_mpe2s_draw_scaled():
    a = make_env("cooperative_navigation", num_agents=4)
    b = make_env("cooperative_navigation", num_agents=4, variant="official")
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    for ea, eb in zip(a.world.entities, b.world.entities):
        np.testing.assert_allclose(eb.state.p_pos, 2.0 * ea.state.p_pos)
    assert all(ob[k].shape == oa[k].shape for k in oa)


def test_unknown_variant_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"variant must be one of \('mpe2', 'official'\), got 'fork'"):
        make_env("cooperative_navigation", variant="fork")


@pytest.mark.parametrize("variant, gain", [("mpe2", 3.0), ("official", 9.0)])
def test_an_agent_with_accel_is_pushed_with_accel_squared_in_the_official_physics(variant, gain):
    env = make_env("cooperative_navigation", variant=variant)
    env.reset(seed=0)
    _place_at_rest(env, [(-3.0, 0.0), (0.0, 3.0), (3.0, 0.0)])
    env.world.agents[0].accel = 3.0
    env.step_forces(np.array([[1.0, 0.0], [0, 0], [0, 0]], dtype=np.float32))
    np.testing.assert_allclose(env.world.agents[0].state.p_vel, [gain * DT, 0.0], atol=1e-12)


def test_official_contact_forces_are_shared_by_the_mass_ratio():
    env_m = make_env("cooperative_navigation")
    env_o = make_env("cooperative_navigation", variant="official")
    forces = {}
    for name, env in (("mpe2", env_m), ("official", env_o)):
        env.reset(seed=0)
        a, b = env.world.agents[0], env.world.agents[1]
        a.initial_mass, b.initial_mass = 1.0, 2.0
        a.state.p_pos, b.state.p_pos = np.array([0.0, 0.0]), np.array([0.2, 0.0])  # overlap: sizes 0.15
        forces[name] = env.world.get_collision_force(a, b)
    fa, fb = forces["mpe2"]
    np.testing.assert_allclose(fa, -fb)
    np.testing.assert_allclose(forces["official"][0], 2.0 * fa)
    np.testing.assert_allclose(forces["official"][1], fb / 2.0)
