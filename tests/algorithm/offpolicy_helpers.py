"""Shared pieces of the off-policy algorithm tests (DQN, SAC, TD3): a callback
that stops each seed at its own iteration, parameter comparisons, a small
Pendulum batch and rollout, and the checks every algorithm's training keeps
(same key, same numbers; seeds under vmap match single runs)."""

from collections.abc import Callable, Sequence
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from lerax.algorithm import Rollout
from lerax.buffer import Transition
from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
)
from lerax.env import Pendulum

PENDULUM = Pendulum()


@final
class StopAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops once ``iterations`` iterations have run (an array field: one
    threshold per seed)."""

    iterations: Int[Array, ""]

    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < self.iterations


def leaves(module: Any) -> list[np.ndarray[Any, Any]]:
    """The arrays of ``module``, as NumPy arrays."""
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(module, eqx.is_array))]


def assert_same_arrays(a: Any, b: Any) -> None:
    """``a`` and ``b`` hold bitwise-equal arrays."""
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def assert_polyak(target: Any, online: Any, old_target: Any, tau: float) -> None:
    """Each array of ``target`` is ``tau * online + (1 - tau) * old_target``."""
    for t, n, o in zip(leaves(target), leaves(online), leaves(old_target), strict=True):
        np.testing.assert_allclose(t, tau * n + (1 - tau) * o, rtol=1e-6, atol=1e-7)


def pendulum_batch() -> Transition:
    """Four Pendulum transitions; the second terminated, the third truncated."""
    k_obs, k_next, k_act = jr.split(jr.key(42), 3)
    space = PENDULUM.observation_space
    obs = jax.vmap(lambda k: space.sample(key=k))(jr.split(k_obs, 4))
    next_obs = jax.vmap(lambda k: space.sample(key=k))(jr.split(k_next, 4))
    actions = jr.uniform(k_act, (4, 1), minval=-2.0, maxval=2.0)
    return Transition(
        observations=obs,
        actions=actions,
        rewards=jnp.array([-1.0, -2.5, -0.5, -3.0]),
        terminated=jnp.array([False, True, False, False]),
        truncated=jnp.array([False, False, True, False]),
        next_observations=next_obs,
    )


def one_transition_rollout(timesteps: int) -> Rollout:
    """A Pendulum rollout of one step of one environment, ``timesteps`` steps
    into the run."""
    obs = jnp.array([[[0.6, 0.8, -1.0]]])
    return Rollout(
        observations=obs,
        actions=jnp.array([[[1.5]]]),
        rewards=jnp.array([[-2.0]]),
        terminated=jnp.array([[False]]),
        truncated=jnp.array([[False]]),
        next_observations=jnp.array([[[0.8, 0.6, -0.5]]]),
        extras={},
        last_observations=obs[0],
        timesteps=jnp.asarray(timesteps, jnp.int32),
    )


Train = Callable[[PRNGKeyArray, StopAt], Any]


def check_same_key_same_parameters(train: Train, steps: int) -> Any:
    """Two runs with key 1 end with bitwise-equal policies and algorithm
    states, a run with key 2 with another policy; each runs all ``steps``
    iterations of one step. Returns the first run."""
    never = StopAt(jnp.asarray(10**6))
    a = train(jr.key(1), never)
    b = train(jr.key(1), never)
    c = train(jr.key(2), never)
    assert_same_arrays(a.policy, b.policy)
    assert_same_arrays(a.algorithm_state, b.algorithm_state)
    assert not np.array_equal(leaves(a.policy)[0], leaves(c.policy)[0])
    assert int(a.iterations) == steps and int(a.timesteps) == steps
    return a


def check_vmapped_seeds(
    train: Train,
    keys: PRNGKeyArray,
    stops: Sequence[int],
    *,
    iterations: Sequence[int],
    timesteps: Sequence[int],
) -> tuple[Any, list[Any]]:
    """Train one run per key under ``eqx.filter_vmap``, run ``i`` stopping
    after ``stops[i]`` iterations, and each alone; check the batch's
    ``iterations`` and ``timesteps``, and that each single run ran as many
    iterations as its vmapped one and ended with the same policy (to float32
    tolerance). Returns the batched run and the single runs."""
    thresholds = jnp.array(stops)
    batched = eqx.filter_jit(eqx.filter_vmap(train))(keys, StopAt(thresholds))
    np.testing.assert_array_equal(np.asarray(batched.iterations), iterations)
    np.testing.assert_array_equal(np.asarray(batched.timesteps), timesteps)
    singles = []
    for i in range(len(stops)):
        single = train(keys[i], StopAt(thresholds[i]))
        assert int(single.iterations) == int(batched.iterations[i])
        for b, s in zip(leaves(batched.policy), leaves(single.policy), strict=True):
            np.testing.assert_allclose(b[i], s, rtol=1e-5, atol=1e-6)
        singles.append(single)
    return batched, singles
