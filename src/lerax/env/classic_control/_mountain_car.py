"""MountainCar and ContinuousMountainCar, as Gymnasium's MountainCar-v0 and
MountainCarContinuous-v0."""

from typing import final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int

from ..._custom_types import Key, ScalarLike
from ...space import Box, Discrete
from .._base import AbstractEnv, TimeStep
from ._params import concrete, episode_steps, float_param, ordered


@final
class MountainCarState(eqx.Module):
    """The state of one (discrete or continuous) MountainCar episode."""

    position: Float[Array, ""]
    velocity: Float[Array, ""]
    t: Int[Array, ""]
    """Steps taken in this episode."""


def _reset(key: Key) -> tuple[MountainCarState, Float[Array, " 2"]]:
    """Position uniform on ``[-0.6, -0.4)``, velocity 0 (both Gymnasium versions)."""
    position = jr.uniform(key, (), jnp.float32, -0.6, -0.4)
    velocity = jnp.zeros((), jnp.float32)
    state = MountainCarState(
        position=position, velocity=velocity, t=jnp.zeros((), jnp.int32)
    )
    return state, jnp.stack([position, velocity])


def _observation_space(
    env: str, min_position: ScalarLike, max_position: ScalarLike, max_speed: ScalarLike
) -> Box:
    speed = concrete(env, "max_speed", max_speed)
    low = np.array([concrete(env, "min_position", min_position), -speed], np.float32)
    high = np.array([concrete(env, "max_position", max_position), speed], np.float32)
    return Box(low, high, dtype=np.float32)


def _move(
    position: Float[Array, ""],
    velocity: Float[Array, ""],
    min_position: Float[Array, ""],
    max_position: Float[Array, ""],
    max_speed: Float[Array, ""],
) -> tuple[Float[Array, ""], Float[Array, ""]]:
    """Clip the new velocity, move, stop at the walls (left wall: inelastic)."""
    velocity = jnp.clip(velocity, -max_speed, max_speed)
    position = jnp.clip(position + velocity, min_position, max_position)
    velocity = jnp.where((position == min_position) & (velocity < 0), 0.0, velocity)
    return position, velocity.astype(jnp.float32)


@final
class MountainCar(AbstractEnv[MountainCarState, Float[Array, " 2"], Int[Array, ""]]):
    """Drive an underpowered car up a hill: Gymnasium's ``MountainCar-v0``.

    Same dynamics (``velocity += (action - 1) * force - cos(3 * position) *
    gravity``, clipped to ``max_speed``; the position is clipped to
    ``[min_position, max_position]`` and the car stops at the left wall), reward
    (``-1`` per step), termination (``position >= goal_position`` and ``velocity
    >= goal_velocity``), time limit (``max_episode_steps``, 200) and reset
    distribution (position uniform on ``[-0.6, -0.4)``, velocity 0), computed in
    float32.

    Observation: ``[position, velocity]``, float32. Action: ``Discrete(3)``:
    accelerate left, don't accelerate, accelerate right.

    Out-of-space actions are clamped: **values below 0 act as 0, values above 2
    act as 2**.

    The physical parameters are float32 array leaves; the observation space is
    built from the constructor's ``min_position``, ``max_position`` and
    ``max_speed``.
    """

    min_position: Float[Array, ""]
    max_position: Float[Array, ""]
    max_speed: Float[Array, ""]
    goal_position: Float[Array, ""]
    goal_velocity: Float[Array, ""]
    force: Float[Array, ""]
    gravity: Float[Array, ""]
    max_episode_steps: int = eqx.field(static=True)
    observation_space: Box = eqx.field(static=True)
    action_space: Discrete = eqx.field(static=True)

    def __init__(
        self,
        *,
        min_position: ScalarLike = -1.2,
        max_position: ScalarLike = 0.6,
        max_speed: ScalarLike = 0.07,
        goal_position: ScalarLike = 0.5,
        goal_velocity: ScalarLike = 0.0,
        force: ScalarLike = 0.001,
        gravity: ScalarLike = 0.0025,
        max_episode_steps: int = 200,
    ):
        name = "MountainCar"
        self.min_position = float_param(name, "min_position", min_position, "finite")
        self.max_position = float_param(name, "max_position", max_position, "finite")
        ordered(name, "min_position", min_position, "max_position", max_position)
        self.max_speed = float_param(name, "max_speed", max_speed, "positive")
        self.goal_position = float_param(name, "goal_position", goal_position, "finite")
        self.goal_velocity = float_param(name, "goal_velocity", goal_velocity, "finite")
        self.force = float_param(name, "force", force, "nonnegative")
        self.gravity = float_param(name, "gravity", gravity, "finite")
        self.max_episode_steps = episode_steps(name, max_episode_steps)
        self.observation_space = _observation_space(
            name, min_position, max_position, max_speed
        )
        self.action_space = Discrete(3)

    def reset(self, *, key: Key) -> tuple[MountainCarState, Float[Array, " 2"]]:
        return _reset(key)

    def step(
        self, state: MountainCarState, action: Int[Array, ""], *, key: Key
    ) -> TimeStep[MountainCarState, Float[Array, " 2"]]:
        del key  # deterministic
        push = jnp.clip(action, 0, 2).astype(jnp.float32) - 1.0
        velocity = state.velocity + (
            push * self.force + jnp.cos(3 * state.position) * (-self.gravity)
        )
        position, velocity = _move(
            state.position,
            velocity,
            self.min_position,
            self.max_position,
            self.max_speed,
        )
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        t = state.t + 1
        return TimeStep(
            state=MountainCarState(position=position, velocity=velocity, t=t),
            observation=jnp.stack([position, velocity]),
            reward=jnp.full((), -1.0, jnp.float32),
            terminated=terminated,
            truncated=(t >= self.max_episode_steps) & ~terminated,
        )


@final
class ContinuousMountainCar(
    AbstractEnv[MountainCarState, Float[Array, " 2"], Float[Array, " 1"]]
):
    """MountainCar with a continuous force: Gymnasium's ``MountainCarContinuous-v0``.

    Same dynamics (``velocity += clip(action) * power - gravity * cos(3 *
    position)``, then as [`MountainCar`][lerax.env.classic_control.MountainCar]), reward
    (``100`` on reaching the goal, minus ``0.1 * action**2`` on every step), termination
    (``position >= goal_position`` (0.45) and ``velocity >= goal_velocity``), time limit
    (``max_episode_steps``, 999) and reset distribution (position uniform on ``[-0.6,
    -0.4)``, velocity 0), computed in float32.

    Observation: ``[position, velocity]``, float32. Action: ``Box(min_action,
    max_action, shape=(1,))``, the force.

    Out-of-space actions: as in Gymnasium, **the force is clipped to
    ``[min_action, max_action]``, but the energy penalty ``0.1 * action**2`` uses
    the action as given** (unclipped).

    The physical parameters are float32 array leaves; ``min_action`` and
    ``max_action`` define the (static) action space and are static floats; the
    observation space is built from the constructor's ``min_position``,
    ``max_position`` and ``max_speed``.
    """

    min_position: Float[Array, ""]
    max_position: Float[Array, ""]
    max_speed: Float[Array, ""]
    goal_position: Float[Array, ""]
    goal_velocity: Float[Array, ""]
    power: Float[Array, ""]
    gravity: Float[Array, ""]
    min_action: float = eqx.field(static=True)
    max_action: float = eqx.field(static=True)
    max_episode_steps: int = eqx.field(static=True)
    observation_space: Box = eqx.field(static=True)
    action_space: Box = eqx.field(static=True)

    def __init__(
        self,
        *,
        min_position: ScalarLike = -1.2,
        max_position: ScalarLike = 0.6,
        max_speed: ScalarLike = 0.07,
        goal_position: ScalarLike = 0.45,
        goal_velocity: ScalarLike = 0.0,
        power: ScalarLike = 0.0015,
        gravity: ScalarLike = 0.0025,
        min_action: ScalarLike = -1.0,
        max_action: ScalarLike = 1.0,
        max_episode_steps: int = 999,
    ):
        name = "ContinuousMountainCar"
        self.min_position = float_param(name, "min_position", min_position, "finite")
        self.max_position = float_param(name, "max_position", max_position, "finite")
        ordered(name, "min_position", min_position, "max_position", max_position)
        self.max_speed = float_param(name, "max_speed", max_speed, "positive")
        self.goal_position = float_param(name, "goal_position", goal_position, "finite")
        self.goal_velocity = float_param(name, "goal_velocity", goal_velocity, "finite")
        self.power = float_param(name, "power", power, "nonnegative")
        self.gravity = float_param(name, "gravity", gravity, "finite")
        float_param(name, "min_action", min_action, "finite")
        float_param(name, "max_action", max_action, "finite")
        ordered(name, "min_action", min_action, "max_action", max_action)
        self.min_action = concrete(name, "min_action", min_action)
        self.max_action = concrete(name, "max_action", max_action)
        self.max_episode_steps = episode_steps(name, max_episode_steps)
        self.observation_space = _observation_space(
            name, min_position, max_position, max_speed
        )
        self.action_space = Box(
            self.min_action, self.max_action, shape=(1,), dtype=np.float32
        )

    def reset(self, *, key: Key) -> tuple[MountainCarState, Float[Array, " 2"]]:
        return _reset(key)

    def step(
        self, state: MountainCarState, action: Float[Array, " 1"], *, key: Key
    ) -> TimeStep[MountainCarState, Float[Array, " 2"]]:
        del key  # deterministic
        a = action[0].astype(jnp.float32)
        force = jnp.clip(a, self.min_action, self.max_action)
        velocity = state.velocity + (
            force * self.power - self.gravity * jnp.cos(3 * state.position)
        )
        position, velocity = _move(
            state.position,
            velocity,
            self.min_position,
            self.max_position,
            self.max_speed,
        )
        terminated = (position >= self.goal_position) & (velocity >= self.goal_velocity)
        reward = jnp.where(terminated, 100.0, 0.0) - jnp.square(a) * 0.1
        t = state.t + 1
        return TimeStep(
            state=MountainCarState(position=position, velocity=velocity, t=t),
            observation=jnp.stack([position, velocity]),
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=(t >= self.max_episode_steps) & ~terminated,
        )
