"""The classic-control environments under jit, vmap and lax.scan."""

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, PyTree

from lerax.env import (
    AbstractEnv,
    Acrobot,
    CartPole,
    ContinuousMountainCar,
    MountainCar,
    Pendulum,
    TimeStep,
)

Env = AbstractEnv[Any, Any, Any]

# name: (factory, a parameter to change, a changed value)
ENVS: dict[str, tuple[Callable[..., Env], str, float]] = {
    "CartPole": (CartPole, "gravity", 20.0),
    "Acrobot": (Acrobot, "link_mass_2", 2.0),
    "MountainCar": (MountainCar, "gravity", 0.004),
    "ContinuousMountainCar": (ContinuousMountainCar, "power", 0.003),
    "Pendulum": (Pendulum, "gravity", 3.0),
}
NAMES = list(ENVS)

# Reset bounds [low, high) of each float state field, in declaration order.
RESET_BOUNDS: dict[str, list[tuple[float, float]]] = {
    "CartPole": [(-0.05, 0.05)] * 4,
    "Acrobot": [(-0.1, 0.1)] * 4,
    "MountainCar": [(-0.6, -0.4), (0.0, 0.0)],
    "ContinuousMountainCar": [(-0.6, -0.4), (0.0, 0.0)],
    "Pendulum": [(-math.pi, math.pi), (-1.0, 1.0)],
}


def float_fields(state: PyTree[Array]) -> list[Array]:
    return [x for x in jax.tree.leaves(state) if x.dtype == jnp.float32]


def assert_trees_close(a: PyTree[Array], b: PyTree[Array], tol: float = 1e-6) -> None:
    """Same structure, dtypes and shapes; values equal up to ``tol``."""

    def check(x: Array, y: Array) -> None:
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)

    jax.tree.map(check, a, b)


def take(tree: PyTree[Array], i: int) -> PyTree[Array]:
    """Element ``i`` of a batched pytree."""
    return jax.tree.map(lambda x: x[i], tree)


def step_fn(
    env: Env, state: PyTree[Array], action: Array, key: jax.Array
) -> TimeStep[Any, Any]:
    return env.step(state, action, key=key)


def reset_fn(env: Env, key: jax.Array) -> tuple[Any, Any]:
    return env.reset(key=key)


# Compiled once per environment configuration and reused by the tests below
# (eager calls compile every primitive separately, which is slow); that jit
# agrees with eager execution is tested by test_jit_matches_eager.
jit_step = eqx.filter_jit(step_fn)
jit_reset = eqx.filter_jit(reset_fn)


@eqx.filter_jit
def start(env: Env) -> tuple[Any, Any, Array, jax.Array]:
    """A reset state, its observation, a random in-space action and a step key."""
    k_reset, k_act, k_step = jr.split(jr.key(0), 3)
    state, obs = env.reset(key=k_reset)
    return state, obs, env.action_space.sample(key=k_act), k_step


@pytest.mark.parametrize("name", NAMES)
def test_reset_distribution(name: str) -> None:
    env = ENVS[name][0]()
    keys = jr.split(jr.key(1), 4000)
    states, obs = jax.jit(jax.vmap(lambda k: env.reset(key=k)))(keys)
    assert np.all(np.asarray(states.t) == 0) and states.t.dtype == jnp.int32
    fields = float_fields(states)
    assert len(fields) == len(RESET_BOUNDS[name])
    for x, (low, high) in zip(fields, RESET_BOUNDS[name], strict=True):
        x_np = np.asarray(x)
        assert x.dtype == jnp.float32 and x.shape == (4000,)
        if low == high:
            assert np.all(x_np == low)
        else:
            assert np.all((x_np >= np.float32(low)) & (x_np < np.float32(high)))
            # Uniform: it fills the interval (4000 samples; each 2% end is hit
            # with probability 1 - 0.98**4000), and its mean is the midpoint.
            span = high - low
            assert x_np.min() < low + 0.02 * span and x_np.max() > high - 0.02 * span
            assert abs(x_np.mean() - (low + high) / 2) < 0.05 * span
    assert obs.dtype == jnp.float32
    assert obs.shape == (4000, *env.observation_space.shape)
    assert np.all(np.asarray(jax.vmap(env.observation_space.contains)(obs)))


@pytest.mark.parametrize("name", NAMES)
def test_jit_matches_eager(name: str) -> None:
    env = ENVS[name][0]()
    k_reset = jr.key(2)
    assert_trees_close(env.reset(key=k_reset), jit_reset(env, k_reset))
    state, _, action, key = start(env)
    assert_trees_close(
        step_fn(env, state, action, key), jit_step(env, state, action, key), tol=1e-5
    )


@pytest.mark.parametrize("name", NAMES)
def test_vmap_matches_single_calls(name: str) -> None:
    env = ENVS[name][0]()
    keys = jr.split(jr.key(3), 8)
    step_keys = jr.split(jr.key(4), 8)
    actions = jax.vmap(lambda k: env.action_space.sample(key=k))(jr.split(jr.key(5), 8))

    @jax.jit
    def batched(
        keys: jax.Array, actions: Array, step_keys: jax.Array
    ) -> tuple[Any, TimeStep[Any, Any]]:
        states, obs = jax.vmap(lambda k: env.reset(key=k))(keys)
        ts = jax.vmap(lambda s, a, k: env.step(s, a, key=k))(states, actions, step_keys)
        return (states, obs), ts

    (states, obs), ts = batched(keys, actions, step_keys)
    for i in range(8):
        state_i, obs_i = jit_reset(env, keys[i])
        assert_trees_close((state_i, obs_i), take((states, obs), i))
        ts_i = jit_step(env, state_i, actions[i], step_keys[i])
        assert_trees_close(ts_i, take(ts, i), tol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_scan_carry_matches_python_loop(name: str) -> None:
    env = ENVS[name][0]()
    state, _, _, _ = start(env)
    n = 12
    keys = jr.split(jr.key(6), n)
    actions = jax.vmap(lambda k: env.action_space.sample(key=k))(keys)

    def body(state: Any, xs: tuple[Array, jax.Array]) -> tuple[Any, Array]:
        action, key = xs
        ts = env.step(state, action, key=key)
        return ts.state, ts.reward

    final, rewards = jax.jit(lambda s: jax.lax.scan(body, s, (actions, keys)))(state)
    loop_rewards = []
    for i in range(n):
        ts = jit_step(env, state, actions[i], keys[i])
        state = ts.state
        loop_rewards.append(ts.reward)
    assert_trees_close(final, state, tol=1e-4)
    assert_trees_close(rewards, jnp.stack(loop_rewards), tol=1e-4)
    assert int(final.t) == n


@pytest.mark.parametrize("name", NAMES)
def test_equal_env_or_new_parameter_value_does_not_retrace(name: str) -> None:
    factory, param, value = ENVS[name]
    env = factory()
    state, _, action, key = start(env)
    counted = eqx.filter_jit(eqx.debug.assert_max_traces(step_fn, max_traces=1))
    first = counted(env, state, action, key)
    again = counted(factory(), state, action, key)  # an equal, new instance
    changed_env = eqx.tree_at(
        lambda e: getattr(e, param), env, jnp.asarray(value, jnp.float32)
    )
    changed = counted(changed_env, state, action, key)
    assert eqx.debug.get_num_traces(counted) == 1
    assert_trees_close(first, again, tol=0.0)
    assert_trees_close(changed, jit_step(factory(**{param: value}), state, action, key))
    assert not np.allclose(first.observation, changed.observation)


@pytest.mark.parametrize("name", NAMES)
def test_parameter_changed_inside_jit(name: str) -> None:
    factory, param, value = ENVS[name]
    env = factory()
    state, _, action, key = start(env)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step_with(
        env: Env, new_value: Float[Array, ""], state: Any
    ) -> TimeStep[Any, Any]:
        env = eqx.tree_at(lambda e: getattr(e, param), env, new_value)
        return env.step(state, action, key=key)

    default = float(getattr(env, param))
    out_default = step_with(env, jnp.float32(default), state)
    out_changed = step_with(env, jnp.float32(value), state)
    assert_trees_close(out_default, jit_step(env, state, action, key))
    assert_trees_close(
        out_changed, jit_step(factory(**{param: value}), state, action, key)
    )
    assert not np.allclose(out_default.observation, out_changed.observation)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_a_parameter(name: str) -> None:
    """A batch of environments built inside vmap from a batch of values."""
    factory, param, value = ENVS[name]
    state, _, action, key = start(factory())
    values = jnp.linspace(value / 2, value, 4, dtype=jnp.float32)

    @jax.jit
    def batched(values: Float[Array, " 4"]) -> TimeStep[Any, Any]:
        return jax.vmap(lambda v: factory(**{param: v}).step(state, action, key=key))(
            values
        )

    out = batched(values)
    for i in range(4):
        single = jit_step(factory(**{param: float(values[i])}), state, action, key)
        assert_trees_close(take(out, i), single, tol=1e-5)
