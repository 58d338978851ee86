"""EveryN: the wrapped callback's iteration hooks run every so many
environment steps and at each run's end, per seed under vmap, with one host
call per due iteration for all seeds."""

from typing import Any, assert_type

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import StopReason
from lerax.callback import EveryN, EveryNState
from lerax.callback.control import StopOnRewardThreshold
from lerax.env import AbstractEnv
from lerax.policy import AbstractPolicy

from .helpers import (
    ALGO,
    ENV,
    POLICY,
    STEPS,
    Counting,
    Fired,
    HostLog,
    IterationPublisher,
    Recorder,
    Steps,
)


def test_the_state_type_wraps_the_wrapped_callbacks() -> None:
    every = EveryN(Recorder(), every=8)
    # Static checkers infer it (mypy and pyright check these lines).
    assert_type(
        every,
        EveryN[Fired, Steps, AbstractEnv[Any, Any, Any], AbstractPolicy[Any, Any]],
    )
    assert every.every == 8 and every.iterations_between(ALGO) == 1
    assert EveryN(Recorder(), every=STEPS + 1).iterations_between(ALGO) == 2
    assert EveryN(Recorder(), every=3 * STEPS).iterations_between(ALGO) == 3


@pytest.fixture(scope="module")
def single() -> Any:
    """One run of 7 iterations, EveryN every 3 iterations (rounded up from
    2 iterations and a step), and a stopper reading the iteration: its
    threshold (an array) switches it off or on without recompiling."""

    @eqx.filter_jit
    def train(threshold: jax.Array) -> Any:
        callback = (
            IterationPublisher(),
            EveryN(Recorder(), every=2 * STEPS + 1),
            StopOnRewardThreshold(threshold, key="test/iteration"),
        )
        return ALGO.train(ENV, POLICY, 7 * STEPS, key=jr.key(3), callback=callback)

    return train


def test_fires_every_n_steps_and_at_the_last_iteration(single: Any) -> None:
    result = single(jnp.asarray(1e9, jnp.float32))
    assert int(result.iterations) == 7
    state = result.callback_state[1]
    assert isinstance(state, EveryNState)
    assert np.asarray(state.state.iterations[:4]).tolist() == [3, 6, 7, 0]
    assert int(state.last_iteration) == 7
    # Published with the value of the last firing: the third.
    assert float(result.metrics["inner/count"]) == 3.0
    assert float(state.metrics["inner/count"]) == 3.0
    # on_step is delegated at every step.
    steps = np.asarray(result.callback_step_state[1].steps)
    assert steps.tolist() == [7 * ALGO.num_steps] * ALGO.num_envs


def test_a_run_stopped_between_firings_fires_once_more_at_its_end(
    single: Any,
) -> None:
    result = single(jnp.asarray(5.0, jnp.float32))
    assert int(result.iterations) == 5
    assert int(result.status.code) == StopReason.CALLBACK
    state = result.callback_state[1]
    assert np.asarray(state.state.iterations[:3]).tolist() == [3, 5, 0]
    assert int(state.last_iteration) == 5
    # The final firing updates the state; the loop's metrics are the last
    # ones published in it.
    assert float(state.metrics["inner/count"]) == 2.0
    assert float(result.metrics["inner/count"]) == 1.0


def test_vmapped_seeds_fire_ceil_iterations_over_n_times_with_shared_host_calls() -> (
    None
):
    """4 seeds stopping after 3, 5 and 6 iterations and at the last (9), a
    firing every 2 iterations: each seed's host calls happen
    ceil(iterations / 2) times, in one batched call per due iteration of the
    loop (2, 4, 6, 8, 9) and one at the end for the seeds that stopped
    between firings (3 and 5): 6 calls for 9 iterations."""
    log = HostLog()
    every = EveryN(Counting(log), every=STEPS + 1)
    # Stoppers built one by one and stacked: one threshold per seed.
    stops = jax.tree.map(
        lambda *x: jnp.stack(x),
        *(StopOnRewardThreshold(t, key="test/iteration") for t in (3, 5, 6, 100)),
    )
    assert stops.threshold.shape == (4,)

    def train(key: jax.Array, stop: StopOnRewardThreshold) -> Any:
        callback = (IterationPublisher(), every, stop)
        return ALGO.train(ENV, POLICY, 9 * STEPS, key=key, callback=callback)

    result = eqx.filter_jit(eqx.filter_vmap(train))(jr.split(jr.key(1), 4), stops)
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
    iterations = [3, 5, 6, 9]
    assert np.asarray(result.iterations).tolist() == iterations
    assert np.asarray(result.status.code).tolist() == [1, 1, 1, 0]
    for run, n in enumerate(iterations):
        fired = log.fired(run)
        assert len(fired) == -(-n // 2), (run, fired)
        assert fired == ([*range(2, n, 2), n] if n % 2 else [*range(2, n + 1, 2)])
    assert log.batched_calls() == 6
    state = result.callback_state[1]
    np.testing.assert_array_equal(state.last_iteration, iterations)
    # Published in the loop: each seed's last firing there; the state holds
    # the final one.
    np.testing.assert_array_equal(result.metrics["inner/fired"], [2, 4, 6, 9])
    np.testing.assert_array_equal(state.metrics["inner/fired"], iterations)
