"""The classic-control environments step exactly like Gymnasium's.

Each case drives our environment with one jitted ``lax.scan`` (auto-reset, the
policy drawing actions from our observations), records every step, then replays
the recorded actions through Gymnasium's own environment (``gymnasium.make``, so
its ``TimeLimit`` decides truncation). At every episode start Gymnasium's
``state`` is overwritten with our reset state; from there both run freely and
every step's observation, reward, terminated and truncated must agree.

Gymnasium computes in float64, we compute in float32. Where the dynamics are
unstable along the trajectory (Acrobot and Pendulum under any actions, CartPole
under a balancing policy, whose open-loop replay is unstable) the rounding
difference grows exponentially: after ``free_steps`` steps of an episode the
two no longer agree to float32 tolerance however correct the code is. For those
cases the free-running comparison covers the first ``free_steps`` steps of each
episode (chosen with a margin below the observed drift), and after that
Gymnasium's state is re-synchronised from ours before every step, so each later
step is still compared one step at a time. The tolerance (rtol=atol=1e-4) is
the same everywhere.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, final

import equinox as eqx
import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, Shaped

from lerax.env import (
    AbstractEnv,
    Acrobot,
    CartPole,
    ContinuousMountainCar,
    MountainCar,
    Pendulum,
)
from lerax.space import AbstractSpace

RTOL = 1e-4
ATOL = 1e-4

Policy = Callable[[Float[Array, " n"], jax.Array], Shaped[Array, "..."]]


@final
class Trajectory(eqx.Module):
    """What our rollout records at each step (arrays have a leading time axis)."""

    start: Float[Array, "steps k"]
    """The state before the step, without its step counter (as Gymnasium's)."""
    start_obs: Float[Array, "steps n"]
    action: Shaped[Array, "steps ..."]
    observation: Float[Array, "steps n"]
    reward: Float[Array, " steps"]
    terminated: Bool[Array, " steps"]
    truncated: Bool[Array, " steps"]


def physical_state(state: eqx.Module) -> Float[Array, " k"]:
    """The state's float fields in declaration order (drops the int step counter)."""
    return jnp.stack([x for x in jax.tree.leaves(state) if x.dtype == jnp.float32])


def rollout(
    env: AbstractEnv[Any, Float[Array, " n"], Any],
    policy: Policy,
    steps: int,
    key: jax.Array,
) -> Trajectory:
    """Run ``env`` for ``steps`` steps with auto-reset in one jitted scan."""

    def body(
        carry: tuple[Any, Float[Array, " n"]], k: jax.Array
    ) -> tuple[tuple[Any, Float[Array, " n"]], Trajectory]:
        state, obs = carry
        k_act, k_step, k_reset = jr.split(k, 3)
        action = policy(obs, k_act)
        ts = env.step(state, action, key=k_step)
        reset_state, reset_obs = env.reset(key=k_reset)
        next_state = jax.tree.map(
            lambda r, s: jnp.where(ts.done, r, s), reset_state, ts.state
        )
        next_obs = jnp.where(ts.done, reset_obs, ts.observation)
        record = Trajectory(
            start=physical_state(state),
            start_obs=obs,
            action=action,
            observation=ts.observation,
            reward=ts.reward,
            terminated=ts.terminated,
            truncated=ts.truncated,
        )
        return (next_state, next_obs), record

    @jax.jit
    def run(key: jax.Array) -> Trajectory:
        k0, k1 = jr.split(key)
        carry = env.reset(key=k0)
        _, trajectory = jax.lax.scan(body, carry, jr.split(k1, steps))
        return trajectory

    trajectory: Trajectory = run(key)
    return trajectory


def gym_observation(gym_id: str, unwrapped: Any) -> np.ndarray:
    """Gymnasium's observation of its current state."""
    if gym_id == "Acrobot-v1":
        return np.asarray(unwrapped._get_ob())
    if gym_id == "Pendulum-v1":
        return np.asarray(unwrapped._get_obs())
    return np.asarray(unwrapped.state, dtype=np.float32)


@dataclass(frozen=True)
class Case:
    gym_id: str
    env: AbstractEnv[Any, Float[Array, " n"], Any]
    policy: Policy
    steps: int
    free_steps: int | None
    """Steps per episode compared free-running; ``None``: whole episodes."""
    expect_terminations: bool
    """The case is there to cover terminations: it must contain some."""
    expect_truncations: bool
    """The case is there to cover time-limit truncations: it must contain some."""


def _random_discrete(n: int) -> Policy:
    def policy(obs: Float[Array, " n"], key: jax.Array) -> Shaped[Array, "..."]:
        del obs
        return jr.randint(key, (), 0, n, dtype=jnp.int32)

    return policy


def _epsilon(
    greedy: Callable[[Float[Array, " n"]], Shaped[Array, ""]], n: int, eps: float
) -> Policy:
    """``greedy(obs)`` with probability ``1 - eps``, else a uniform action."""

    def policy(obs: Float[Array, " n"], key: jax.Array) -> Shaped[Array, "..."]:
        k_coin, k_act = jr.split(key)
        random = jr.randint(k_act, (), 0, n, dtype=jnp.int32)
        return jnp.where(jr.uniform(k_coin) < eps, random, greedy(obs))

    return policy


def _balance(obs: Float[Array, " n"]) -> Shaped[Array, ""]:
    """Push towards the side the pole falls to (keeps CartPole up for 500 steps)."""
    lean = obs[2] + 0.5 * obs[3] + 0.05 * obs[0] + 0.2 * obs[1]
    return (lean > 0).astype(jnp.int32)


def _acrobot_pump(obs: Float[Array, " n"]) -> Shaped[Array, ""]:
    """Torque along the second joint's velocity: swings up in ~100 steps."""
    return jnp.where(obs[5] > 0, 2, 0).astype(jnp.int32)


def _mountain_car_pump(obs: Float[Array, " n"]) -> Shaped[Array, ""]:
    """Accelerate along the velocity: reaches the goal in ~100-150 steps."""
    return jnp.where(obs[1] >= 0, 2, 0).astype(jnp.int32)


def _continuous_pump(obs: Float[Array, " n"], key: jax.Array) -> Shaped[Array, "..."]:
    """A random force along the velocity, up to 1.5 (beyond the bound of 1, to
    exercise the clipping)."""
    direction = jnp.where(obs[1] >= 0, 1.0, -1.0)
    return direction * jr.uniform(key, (1,), jnp.float32, 0.0, 1.5)


def _uniform(low: float, high: float) -> Policy:
    """Uniform actions of shape (1,), wider than the action space."""

    def policy(obs: Float[Array, " n"], key: jax.Array) -> Shaped[Array, "..."]:
        del obs
        return jr.uniform(key, (1,), jnp.float32, low, high)

    return policy


CASES = {
    "cartpole-random": Case(
        "CartPole-v1", CartPole(), _random_discrete(2), 3000, None, True, False
    ),
    "cartpole-balance": Case(
        "CartPole-v1",
        CartPole(),
        _epsilon(_balance, 2, 0.1),
        2000,
        50,  # free-running drift first passes 1e-4 at episode step 106
        False,
        True,
    ),
    "acrobot-random": Case(
        "Acrobot-v1",
        Acrobot(),
        _random_discrete(3),
        1500,
        150,  # free-running drift first passes 1e-4 at episode step 316
        False,
        True,
    ),
    "acrobot-pump": Case(
        "Acrobot-v1",
        Acrobot(),
        _epsilon(_acrobot_pump, 3, 0.2),
        1500,
        40,  # free-running drift first passes 1e-4 at episode step 85
        True,
        False,
    ),
    "mountaincar": Case(
        "MountainCar-v0",
        MountainCar(),
        _epsilon(_mountain_car_pump, 3, 0.3),
        3000,
        None,
        True,
        True,
    ),
    "continuous-mountaincar-pump": Case(
        "MountainCarContinuous-v0",
        ContinuousMountainCar(),
        _continuous_pump,
        2000,
        None,
        True,
        False,
    ),
    "continuous-mountaincar-random": Case(
        "MountainCarContinuous-v0",
        ContinuousMountainCar(),
        _uniform(-1.5, 1.5),
        2000,
        None,
        False,
        True,
    ),
    "pendulum": Case(
        "Pendulum-v1",
        Pendulum(),
        _uniform(-3.0, 3.0),
        3000,
        50,  # free-running drift first passes 1e-4 at episode step 117
        False,
        True,
    ),
}


def _gym_action(action: np.ndarray) -> int | np.ndarray:
    return int(action) if action.ndim == 0 else action


@pytest.mark.parametrize("name", list(CASES))
def test_matches_gymnasium(name: str) -> None:
    case = CASES[name]
    env = case.env
    gym_env = gymnasium.make(case.gym_id, disable_env_checker=True)
    assert gym_env.spec is not None
    assert gym_env.spec.max_episode_steps == env.max_episode_steps
    unwrapped = gym_env.unwrapped
    traj = jax.tree.map(np.asarray, rollout(env, case.policy, case.steps, jr.key(0)))
    space: AbstractSpace[Any] = env.observation_space

    episode_start = True
    t = 0
    episodes = terminations = truncations = 0
    for i in range(case.steps):
        start = traj.start[i].astype(np.float64)
        if episode_start:
            gym_env.reset(seed=i)
            setattr(unwrapped, "state", start)  # noqa: B010  foreign attribute
            np.testing.assert_allclose(
                traj.start_obs[i],
                gym_observation(case.gym_id, unwrapped),
                rtol=RTOL,
                atol=ATOL,
            )
            episodes += 1
            t = 0
        elif case.free_steps is not None and t >= case.free_steps:
            setattr(unwrapped, "state", start)  # noqa: B010  re-synchronise
        obs, reward, terminated, truncated, _ = gym_env.step(
            _gym_action(traj.action[i])
        )
        t += 1
        where = f"{name}: step {i} (episode step {t})"
        np.testing.assert_allclose(
            traj.observation[i], obs, rtol=RTOL, atol=ATOL, err_msg=where
        )
        np.testing.assert_allclose(
            traj.reward[i], float(reward), rtol=RTOL, atol=ATOL, err_msg=where
        )
        assert bool(traj.terminated[i]) == terminated, where
        # Gymnasium's TimeLimit also flags truncation on a terminating last step;
        # Lerax's contract (TimeStep) reports truncation only without termination.
        assert bool(traj.truncated[i]) == (truncated and not terminated), where
        terminations += int(terminated)
        truncations += int(truncated and not terminated)
        episode_start = terminated or truncated

    # Every observation lies in the observation space (CartPole's terminal one may
    # leave it, as Gymnasium's does).
    contained = np.asarray(jax.vmap(space.contains)(jnp.asarray(traj.observation)))
    assert np.all(contained | traj.terminated)
    assert episodes >= 2
    assert terminations > 0 or not case.expect_terminations
    assert truncations > 0 or not case.expect_truncations
