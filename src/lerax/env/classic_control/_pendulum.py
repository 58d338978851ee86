"""Pendulum, as Gymnasium's Pendulum-v1."""

import math
from typing import final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int

from ..._custom_types import Key, ScalarLike
from ...space import Box
from .._base import AbstractEnv, TimeStep
from ._params import concrete, episode_steps, float_param


@final
class PendulumState(eqx.Module):
    """The state of one Pendulum episode."""

    theta: Float[Array, ""]
    """Angle from upright (rad, not wrapped)."""
    theta_dot: Float[Array, ""]
    t: Int[Array, ""]
    """Steps taken in this episode."""


def _angle_normalize(x: Float[Array, ""]) -> Float[Array, ""]:
    return jnp.mod(x + math.pi, 2 * math.pi) - math.pi


@final
class Pendulum(AbstractEnv[PendulumState, Float[Array, " 3"], Float[Array, " 1"]]):
    """Swing a pendulum up and hold it: Gymnasium's ``Pendulum-v1``.

    Same dynamics (``theta_dot += (3 g / (2 l) sin(theta) + 3 / (m l^2) u) dt``,
    clipped to ``max_speed``, then ``theta += theta_dot dt``), reward
    (``-(normalized_angle^2 + 0.1 theta_dot^2 + 0.001 u^2)`` of the state before
    the step), no termination, time limit (``max_episode_steps``, 200) and reset
    distribution (``theta`` uniform on ``[-pi, pi)``, ``theta_dot`` on ``[-1,
    1)``), computed in float32.

    Observation: ``[cos theta, sin theta, theta_dot]``, float32. Action:
    ``Box(-max_torque, max_torque, shape=(1,))``, the torque ``u``.

    Out-of-space actions: as in Gymnasium, **the torque is clipped to
    ``[-max_torque, max_torque]``** before it enters both the dynamics and the
    reward.

    ``gravity``, ``mass``, ``length``, ``dt`` and ``max_speed`` are float32 array
    leaves (Gymnasium's ``g``, ``m``, ``l``); ``max_torque`` defines the (static)
    action space and is a static float; the observation space is built from the
    constructor's ``max_speed``.
    """

    gravity: Float[Array, ""]
    mass: Float[Array, ""]
    length: Float[Array, ""]
    dt: Float[Array, ""]
    max_speed: Float[Array, ""]
    max_torque: float = eqx.field(static=True)
    max_episode_steps: int = eqx.field(static=True)
    observation_space: Box = eqx.field(static=True)
    action_space: Box = eqx.field(static=True)

    def __init__(
        self,
        *,
        gravity: ScalarLike = 10.0,
        mass: ScalarLike = 1.0,
        length: ScalarLike = 1.0,
        dt: ScalarLike = 0.05,
        max_speed: ScalarLike = 8.0,
        max_torque: ScalarLike = 2.0,
        max_episode_steps: int = 200,
    ):
        name = "Pendulum"
        self.gravity = float_param(name, "gravity", gravity, "finite")
        self.mass = float_param(name, "mass", mass, "positive")
        self.length = float_param(name, "length", length, "positive")
        self.dt = float_param(name, "dt", dt, "positive")
        self.max_speed = float_param(name, "max_speed", max_speed, "positive")
        float_param(name, "max_torque", max_torque, "positive")
        self.max_torque = concrete(name, "max_torque", max_torque)
        self.max_episode_steps = episode_steps(name, max_episode_steps)
        high = np.array([1.0, 1.0, concrete(name, "max_speed", max_speed)], np.float32)
        self.observation_space = Box(-high, high, dtype=np.float32)
        self.action_space = Box(
            -self.max_torque, self.max_torque, shape=(1,), dtype=np.float32
        )

    def reset(self, *, key: Key) -> tuple[PendulumState, Float[Array, " 3"]]:
        high = jnp.array([math.pi, 1.0], jnp.float32)
        init = jr.uniform(key, (2,), jnp.float32, -high, high)
        state = PendulumState(
            theta=init[0], theta_dot=init[1], t=jnp.zeros((), jnp.int32)
        )
        return state, self._observation(state)

    def step(
        self, state: PendulumState, action: Float[Array, " 1"], *, key: Key
    ) -> TimeStep[PendulumState, Float[Array, " 3"]]:
        del key  # deterministic
        th, thdot = state.theta, state.theta_dot
        u = jnp.clip(action[0].astype(jnp.float32), -self.max_torque, self.max_torque)
        costs = (
            jnp.square(_angle_normalize(th))
            + 0.1 * jnp.square(thdot)
            + 0.001 * jnp.square(u)
        )
        g, m, length, dt = self.gravity, self.mass, self.length, self.dt
        newthdot = (
            thdot
            + (3 * g / (2 * length) * jnp.sin(th) + 3.0 / (m * length**2) * u) * dt
        )
        newthdot = jnp.clip(newthdot, -self.max_speed, self.max_speed)
        newth = th + newthdot * dt
        next_state = PendulumState(theta=newth, theta_dot=newthdot, t=state.t + 1)
        return TimeStep(
            state=next_state,
            observation=self._observation(next_state),
            reward=-costs,
            terminated=jnp.zeros((), jnp.bool_),
            truncated=next_state.t >= self.max_episode_steps,
        )

    def _observation(self, state: PendulumState) -> Float[Array, " 3"]:
        return jnp.stack([jnp.cos(state.theta), jnp.sin(state.theta), state.theta_dot])
