"""CartPole, as Gymnasium's CartPole-v1."""

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
class CartPoleState(eqx.Module):
    """The state of one CartPole episode."""

    x: Float[Array, ""]
    """Cart position (m)."""
    x_dot: Float[Array, ""]
    """Cart velocity (m/s)."""
    theta: Float[Array, ""]
    """Pole angle from upright (rad)."""
    theta_dot: Float[Array, ""]
    """Pole angular velocity (rad/s)."""
    t: Int[Array, ""]
    """Steps taken in this episode."""


@final
class CartPole(AbstractEnv[CartPoleState, Float[Array, " 4"], Int[Array, ""]]):
    """Balance a pole on a cart: Gymnasium's ``CartPole-v1``.

    Same dynamics (explicit Euler, ``tau`` seconds per step), reward (``1.0`` on
    every step, the terminating one included), termination (``|x| > x_threshold``
    or ``|theta| > theta_threshold_radians``), time limit (``max_episode_steps``,
    500) and reset distribution (every state variable uniform on
    ``[-0.05, 0.05)``), computed in float32.

    Observation: ``[x, x_dot, theta, theta_dot]``, float32. Action: ``Discrete(2)``;
    ``1`` pushes the cart right with ``force_mag``, ``0`` pushes it left.

    Out-of-space actions follow Gymnasium's rule ``force if action == 1 else
    -force``: **every value other than 1 pushes left** (no error is raised).

    The physical parameters are float32 array leaves: replace one (for example
    with ``eqx.tree_at``) inside ``jit`` without recompiling, or vmap over it. The
    observation space is built from the thresholds given to the constructor and
    is not updated if the threshold leaves are changed later.
    """

    gravity: Float[Array, ""]
    masscart: Float[Array, ""]
    masspole: Float[Array, ""]
    length: Float[Array, ""]
    """Half the pole's length (as in Gymnasium)."""
    force_mag: Float[Array, ""]
    tau: Float[Array, ""]
    """Seconds per step."""
    theta_threshold_radians: Float[Array, ""]
    x_threshold: Float[Array, ""]
    max_episode_steps: int = eqx.field(static=True)
    observation_space: Box = eqx.field(static=True)
    action_space: Discrete = eqx.field(static=True)

    def __init__(
        self,
        *,
        gravity: ScalarLike = 9.8,
        masscart: ScalarLike = 1.0,
        masspole: ScalarLike = 0.1,
        length: ScalarLike = 0.5,
        force_mag: ScalarLike = 10.0,
        tau: ScalarLike = 0.02,
        theta_threshold_radians: ScalarLike = 12 * 2 * math.pi / 360,
        x_threshold: ScalarLike = 2.4,
        max_episode_steps: int = 500,
    ):
        name = "CartPole"
        self.gravity = float_param(name, "gravity", gravity, "finite")
        self.masscart = float_param(name, "masscart", masscart, "positive")
        self.masspole = float_param(name, "masspole", masspole, "positive")
        self.length = float_param(name, "length", length, "positive")
        self.force_mag = float_param(name, "force_mag", force_mag, "nonnegative")
        self.tau = float_param(name, "tau", tau, "positive")
        self.theta_threshold_radians = float_param(
            name, "theta_threshold_radians", theta_threshold_radians, "positive"
        )
        self.x_threshold = float_param(name, "x_threshold", x_threshold, "positive")
        self.max_episode_steps = episode_steps(name, max_episode_steps)
        high = np.array(
            [
                2 * concrete(name, "x_threshold", x_threshold),
                np.inf,
                2 * concrete(name, "theta_threshold_radians", theta_threshold_radians),
                np.inf,
            ],
            dtype=np.float32,
        )
        self.observation_space = Box(-high, high, dtype=np.float32)
        self.action_space = Discrete(2)

    def reset(self, *, key: Key) -> tuple[CartPoleState, Float[Array, " 4"]]:
        init = jr.uniform(key, (4,), jnp.float32, -0.05, 0.05)
        state = CartPoleState(
            x=init[0],
            x_dot=init[1],
            theta=init[2],
            theta_dot=init[3],
            t=jnp.zeros((), jnp.int32),
        )
        return state, init

    def step(
        self, state: CartPoleState, action: Int[Array, ""], *, key: Key
    ) -> TimeStep[CartPoleState, Float[Array, " 4"]]:
        del key  # deterministic
        force = jnp.where(action == 1, self.force_mag, -self.force_mag)
        costheta = jnp.cos(state.theta)
        sintheta = jnp.sin(state.theta)
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        temp = (
            force + polemass_length * jnp.square(state.theta_dot) * sintheta
        ) / total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length
            * (4.0 / 3.0 - self.masspole * jnp.square(costheta) / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass
        x = state.x + self.tau * state.x_dot
        x_dot = state.x_dot + self.tau * xacc
        theta = state.theta + self.tau * state.theta_dot
        theta_dot = state.theta_dot + self.tau * thetaacc
        t = state.t + 1
        terminated = (
            (x < -self.x_threshold)
            | (x > self.x_threshold)
            | (theta < -self.theta_threshold_radians)
            | (theta > self.theta_threshold_radians)
        )
        truncated = (t >= self.max_episode_steps) & ~terminated
        next_state = CartPoleState(
            x=x, x_dot=x_dot, theta=theta, theta_dot=theta_dot, t=t
        )
        return TimeStep(
            state=next_state,
            observation=jnp.stack([x, x_dot, theta, theta_dot]),
            reward=jnp.ones((), jnp.float32),
            terminated=terminated,
            truncated=truncated,
        )
