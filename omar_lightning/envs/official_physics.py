"""The physics of the official OMAR code's MPE fork, as an override of mpe2's ``World``.

The paper's MPE numbers come from the multiagent-particle-envs fork shipped with the official
OMAR code. Its world differs from mpe2's (1.1) in three measured ways, all in ``World``'s
physics methods; everything else (scenarios, observations, ``dt = 0.1``, ``damping = 0.25``,
contact constants) is the same:

1. **Integration order.** mpe2 moves every entity with its *old* velocity, then damps and
   applies the force. The fork damps, applies the force, clamps the speed and only then moves
   with the *new* velocity (semi-implicit Euler). A push from rest therefore moves an agent by
   ``|F| / m * dt^2`` in the first step in the fork and by 0 in mpe2.
2. **Action force.** Both scale the action by the agent's ``accel`` (5 when unset) in
   ``_set_action``. The fork then multiplies once more by ``mass * accel`` (``mass`` when
   ``accel`` is unset), so agents with an ``accel`` (predator-prey and world: predators 3,
   prey 4) are pushed with ``accel^2`` (9 and 16), the others with 5 as in mpe2.
3. **Collisions between two movable entities** are shared by the mass ratio
   (``force * m_b / m_a`` on a, ``-force * m_a / m_b`` on b); mpe2 gives both ``+-force``.
   With equal masses, as in every task here, both agree.

:func:`use_official_physics` switches an existing mpe2 world to these methods by giving it a
subclass of its own class (mpe2's per-scenario ``ExtendedWorld``) with :class:`OfficialPhysics`
mixed in first; the world's state and scenario are untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["OfficialPhysics", "use_official_physics", "uses_official_physics"]


class OfficialPhysics:
    """Mixin over mpe2's ``World`` with the official fork's physics (module docstring)."""

    agents: list
    entities: list
    dt: float
    damping: float
    contact_margin: float
    contact_force: float

    def apply_action_force(self, p_force: list) -> list:
        for i, agent in enumerate(self.agents):
            if agent.movable:
                noise = np.random.randn(*agent.action.u.shape) * agent.u_noise if agent.u_noise else 0.0
                gain = agent.mass * agent.accel if agent.accel is not None else agent.mass
                p_force[i] = gain * agent.action.u + noise
        return p_force

    def get_collision_force(self, entity_a: Any, entity_b: Any) -> list:
        force_a, force_b = super().get_collision_force(entity_a, entity_b)  # type: ignore[misc]
        if force_a is not None and force_b is not None:
            ratio = entity_b.mass / entity_a.mass
            force_a, force_b = ratio * force_a, force_b / ratio
        return [force_a, force_b]

    def integrate_state(self, p_force: list) -> None:
        for i, entity in enumerate(self.entities):
            if not entity.movable:
                continue
            state = entity.state
            state.p_vel = state.p_vel * (1 - self.damping)
            if p_force[i] is not None:
                state.p_vel = state.p_vel + (p_force[i] / entity.mass) * self.dt
            if entity.max_speed is not None:
                speed = float(np.sqrt(np.square(state.p_vel[0]) + np.square(state.p_vel[1])))
                if speed > entity.max_speed:
                    state.p_vel = state.p_vel / speed * entity.max_speed
            state.p_pos = state.p_pos + state.p_vel * self.dt


_CLASSES: dict[type, type] = {}


def use_official_physics(world: Any) -> Any:
    """Give ``world`` (an mpe2 ``World``) the official fork's physics, in place; returns it."""
    cls = type(world)
    if issubclass(cls, OfficialPhysics):
        return world
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"Official{cls.__name__}", (OfficialPhysics, cls), {"__module__": __name__})
    world.__class__ = _CLASSES[cls]
    return world


def uses_official_physics(world: Any) -> bool:
    """Whether ``world`` runs :class:`OfficialPhysics`."""
    return isinstance(world, OfficialPhysics)
