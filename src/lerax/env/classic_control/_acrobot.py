"""Acrobot, as Gymnasium's Acrobot-v1."""

import math
from typing import final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int

from ..._custom_types import Key, ScalarLike
from ...space import Box, Discrete
from .._base import AbstractEnv, TimeStep
from ._params import concrete, episode_steps, float_param


@final
class AcrobotState(eqx.Module):
    """The state of one Acrobot episode."""

    theta1: Float[Array, ""]
    """Angle of the first link from hanging down (rad, in ``[-pi, pi]``)."""
    theta2: Float[Array, ""]
    """Angle of the second link relative to the first (rad, in ``[-pi, pi]``)."""
    dtheta1: Float[Array, ""]
    dtheta2: Float[Array, ""]
    t: Int[Array, ""]
    """Steps taken in this episode."""


def _wrap(
    x: Float[Array, ""], low: Float[Array, ""], high: Float[Array, ""]
) -> Float[Array, ""]:
    """Gymnasium's ``wrap``: shift by whole periods until ``low <= x <= high``."""
    diff = high - low
    x = jnp.where(x > high, x - diff * jnp.ceil((x - high) / diff), x)
    return jnp.where(x < low, x + diff * jnp.ceil((low - x) / diff), x)


@final
class Acrobot(AbstractEnv[AcrobotState, Float[Array, " 6"], Int[Array, ""]]):
    """Swing up a two-link pendulum: Gymnasium's ``Acrobot-v1``.

    Same dynamics (the "book" equations, one fourth-order Runge-Kutta step of
    ``dt`` seconds per action, angles wrapped to ``[-pi, pi]``, angular
    velocities clipped to ``max_vel_1``/``max_vel_2``), reward (``-1`` per step,
    ``0`` on the terminating step), termination (``-cos(theta1) - cos(theta1 +
    theta2) > 1``), time limit (``max_episode_steps``, 500) and reset
    distribution (the four state variables uniform on ``[-0.1, 0.1)``),
    computed in float32.

    Observation: ``[cos theta1, sin theta1, cos theta2, sin theta2, dtheta1,
    dtheta2]``, float32. Action: ``Discrete(3)``, the torque ``action - 1`` on the
    joint between the links. With ``torque_noise_max > 0`` a uniform noise on
    ``[-torque_noise_max, torque_noise_max)`` drawn from ``step``'s key is added
    (Gymnasium's default, and ours, is 0).

    Out-of-space actions are clamped: **values below 0 act as 0 (torque -1),
    values above 2 act as 2 (torque +1)**.

    As in Gymnasium, the second link's length does not enter the dynamics (its
    mass sits at ``link_com_pos_2``) and the termination test uses unit link
    lengths. The physical parameters are float32 array leaves; the observation
    space is built from the constructor's ``max_vel_1``/``max_vel_2``.
    """

    dt: Float[Array, ""]
    link_length_1: Float[Array, ""]
    link_mass_1: Float[Array, ""]
    link_mass_2: Float[Array, ""]
    link_com_pos_1: Float[Array, ""]
    link_com_pos_2: Float[Array, ""]
    link_moi: Float[Array, ""]
    """Moment of inertia of each link."""
    max_vel_1: Float[Array, ""]
    max_vel_2: Float[Array, ""]
    gravity: Float[Array, ""]
    torque_noise_max: Float[Array, ""]
    max_episode_steps: int = eqx.field(static=True)
    observation_space: Box = eqx.field(static=True)
    action_space: Discrete = eqx.field(static=True)

    def __init__(
        self,
        *,
        dt: ScalarLike = 0.2,
        link_length_1: ScalarLike = 1.0,
        link_mass_1: ScalarLike = 1.0,
        link_mass_2: ScalarLike = 1.0,
        link_com_pos_1: ScalarLike = 0.5,
        link_com_pos_2: ScalarLike = 0.5,
        link_moi: ScalarLike = 1.0,
        max_vel_1: ScalarLike = 4 * math.pi,
        max_vel_2: ScalarLike = 9 * math.pi,
        gravity: ScalarLike = 9.8,
        torque_noise_max: ScalarLike = 0.0,
        max_episode_steps: int = 500,
    ):
        name = "Acrobot"
        self.dt = float_param(name, "dt", dt, "positive")
        self.link_length_1 = float_param(
            name, "link_length_1", link_length_1, "positive"
        )
        self.link_mass_1 = float_param(name, "link_mass_1", link_mass_1, "positive")
        self.link_mass_2 = float_param(name, "link_mass_2", link_mass_2, "positive")
        self.link_com_pos_1 = float_param(
            name, "link_com_pos_1", link_com_pos_1, "positive"
        )
        self.link_com_pos_2 = float_param(
            name, "link_com_pos_2", link_com_pos_2, "positive"
        )
        self.link_moi = float_param(name, "link_moi", link_moi, "positive")
        self.max_vel_1 = float_param(name, "max_vel_1", max_vel_1, "positive")
        self.max_vel_2 = float_param(name, "max_vel_2", max_vel_2, "positive")
        self.gravity = float_param(name, "gravity", gravity, "finite")
        self.torque_noise_max = float_param(
            name, "torque_noise_max", torque_noise_max, "nonnegative"
        )
        self.max_episode_steps = episode_steps(name, max_episode_steps)
        high = np.array(
            [
                1.0,
                1.0,
                1.0,
                1.0,
                concrete(name, "max_vel_1", max_vel_1),
                concrete(name, "max_vel_2", max_vel_2),
            ],
            dtype=np.float32,
        )
        self.observation_space = Box(-high, high, dtype=np.float32)
        self.action_space = Discrete(3)

    def reset(self, *, key: Key) -> tuple[AcrobotState, Float[Array, " 6"]]:
        init = jr.uniform(key, (4,), jnp.float32, -0.1, 0.1)
        state = AcrobotState(
            theta1=init[0],
            theta2=init[1],
            dtheta1=init[2],
            dtheta2=init[3],
            t=jnp.zeros((), jnp.int32),
        )
        return state, self._observation(state)

    def step(
        self, state: AcrobotState, action: Int[Array, ""], *, key: Key
    ) -> TimeStep[AcrobotState, Float[Array, " 6"]]:
        torque = jnp.clip(action, 0, 2).astype(jnp.float32) - 1.0
        torque = torque + jr.uniform(
            key, (), jnp.float32, -self.torque_noise_max, self.torque_noise_max
        )
        y = jnp.stack([state.theta1, state.theta2, state.dtheta1, state.dtheta2])
        # One classical Runge-Kutta step over [0, dt], as Gymnasium's ``rk4``.
        half = self.dt / 2.0
        k1 = self._derivatives(y, torque)
        k2 = self._derivatives(y + half * k1, torque)
        k3 = self._derivatives(y + half * k2, torque)
        k4 = self._derivatives(y + self.dt * k3, torque)
        y = y + self.dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        pi = jnp.asarray(math.pi, jnp.float32)
        next_state = AcrobotState(
            theta1=_wrap(y[0], -pi, pi),
            theta2=_wrap(y[1], -pi, pi),
            dtheta1=jnp.clip(y[2], -self.max_vel_1, self.max_vel_1),
            dtheta2=jnp.clip(y[3], -self.max_vel_2, self.max_vel_2),
            t=state.t + 1,
        )
        terminated = (
            -jnp.cos(next_state.theta1) - jnp.cos(next_state.theta2 + next_state.theta1)
            > 1.0
        )
        truncated = (next_state.t >= self.max_episode_steps) & ~terminated
        return TimeStep(
            state=next_state,
            observation=self._observation(next_state),
            reward=jnp.where(terminated, 0.0, -1.0).astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
        )

    def _observation(self, state: AcrobotState) -> Float[Array, " 6"]:
        return jnp.stack(
            [
                jnp.cos(state.theta1),
                jnp.sin(state.theta1),
                jnp.cos(state.theta2),
                jnp.sin(state.theta2),
                state.dtheta1,
                state.dtheta2,
            ]
        )

    def _derivatives(
        self, y: Float[Array, " 4"], torque: Float[Array, ""]
    ) -> Float[Array, " 4"]:
        """Gymnasium's ``_dsdt`` ("book" dynamics), without the torque component."""
        m1 = self.link_mass_1
        m2 = self.link_mass_2
        l1 = self.link_length_1
        lc1 = self.link_com_pos_1
        lc2 = self.link_com_pos_2
        i1 = self.link_moi
        i2 = self.link_moi
        g = self.gravity
        theta1, theta2, dtheta1, dtheta2 = y[0], y[1], y[2], y[3]
        half_pi = math.pi / 2.0
        d1 = (
            m1 * lc1**2
            + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2))
            + i1
            + i2
        )
        d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + i2
        phi2 = m2 * lc2 * g * jnp.cos(theta1 + theta2 - half_pi)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * jnp.cos(theta1 - half_pi)
            + phi2
        )
        ddtheta2 = (
            torque
            + d2 / d1 * phi1
            - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2)
            - phi2
        ) / (m2 * lc2**2 + i2 - d2**2 / d1)
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2])
