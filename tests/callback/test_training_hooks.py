"""The training loop calls every hook as documented (driven through PPO.train)."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import PPO
from lerax.callback import CallbackList, EmptyCallback
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

from .callbacks import (
    EpisodeCounter,
    HostRecorder,
    LogReader,
    RandomDrawer,
    StopAfter,
    TraceCounter,
)

ENV = CartPole()
# A constant learning rate, so a run stopped after k iterations can be compared
# with a run planned for k iterations (annealing depends on the planned length).
ALGO = PPO(num_envs=2, num_steps=32, num_epochs=1, num_minibatches=2, anneal_lr=False)
SPI = ALGO.num_envs * ALGO.num_steps
TOTAL = 5 * SPI
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))


def params(policy: MLPActorCriticPolicy[Any]) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(policy, eqx.is_array))]


def test_hooks_counts_and_order() -> None:
    result = ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), callback=EpisodeCounter())
    state, step = result.callback_state, result.callback_step_state
    assert int(result.iterations) == 5 and int(result.timesteps) == TOTAL
    assert int(state.iterations) == 5
    assert bool(state.in_order)
    assert int(state.started) == 1 and int(state.ended) == 1
    assert int(state.last_timesteps) == TOTAL
    # step states: leading num_envs axis, one on_step per env per step
    assert step.steps.shape == (ALGO.num_envs,)
    np.testing.assert_array_equal(step.steps, [5 * ALGO.num_steps] * ALGO.num_envs)
    # CartPole pays 1 per step: the raw reward sum equals the step count
    # (a bootstrapped reward would not)
    np.testing.assert_allclose(step.reward_sum, step.steps.astype(np.float32))
    # step state persisted across rollouts: episodes were counted over 160 steps
    assert np.all(step.episodes >= 1)
    assert np.all(step.last_return >= 1.0)


def test_raw_reward_and_episode_returns_match_a_replay() -> None:
    """Episode returns seen by on_step equal a replay of the same env with the
    same actions (raw rewards, episodes spanning rollouts)."""
    result = ALGO.train(ENV, POLICY, 2 * SPI, key=jr.key(2), callback=EpisodeCounter())
    step = result.callback_step_state
    total_steps = int(step.steps[0])
    # every env's completed returns sum plus the running one equals its step count
    # because CartPole's reward is 1 per step
    assert float(step.reward_sum[0]) == pytest.approx(total_steps)
    assert float(step.last_return[0]) <= 500.0


def test_early_stopping_stops_and_freezes() -> None:
    stopped = ALGO.train(
        ENV, POLICY, TOTAL, key=jr.key(3), callback=StopAfter(jnp.array(2, jnp.int32))
    )
    assert int(stopped.iterations) == 2
    assert int(stopped.timesteps) == 2 * SPI
    # the stopped run is exactly a run of two iterations
    short = ALGO.train(ENV, POLICY, 2 * SPI, key=jr.key(3))
    for a, b in zip(params(stopped.policy), params(short.policy), strict=True):
        np.testing.assert_array_equal(a, b)


def test_callbacks_do_not_change_what_is_learned() -> None:
    plain = ALGO.train(ENV, POLICY, 2 * SPI, key=jr.key(4))
    observed = ALGO.train(
        ENV,
        POLICY,
        2 * SPI,
        key=jr.key(4),
        callback=[EpisodeCounter(), RandomDrawer(), EmptyCallback()],
    )
    for a, b in zip(params(plain.policy), params(observed.policy), strict=True):
        np.testing.assert_array_equal(a, b)
    draws = observed.callback_step_state[1].draws
    assert draws.shape == (2,) and np.all(draws > 0)


def test_reading_the_training_log_does_not_change_what_is_learned() -> None:
    """Without a callback the loop runs PPO's update without its statistics
    (one loop over the epochs); a callback that reads them gets the update
    whose last epoch is a loop of its own. Both learn bitwise the same."""
    algo = PPO(num_envs=2, num_steps=32, num_epochs=3, num_minibatches=2)
    plain = algo.train(ENV, POLICY, 3 * SPI, key=jr.key(6))
    read = algo.train(ENV, POLICY, 3 * SPI, key=jr.key(6), callback=LogReader())
    for a, b in zip(params(plain.policy), params(read.policy), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(float(read.callback_state.total))
    assert float(read.callback_state.total) != 0.0


def test_same_key_is_bitwise_deterministic() -> None:
    a = ALGO.train(ENV, POLICY, SPI, key=jr.key(5))
    b = ALGO.train(ENV, POLICY, SPI, key=jr.key(5))
    for x, y in zip(params(a.policy), params(b.policy), strict=True):
        np.testing.assert_array_equal(x, y)


def test_vmapped_seeds_stop_on_their_own() -> None:
    keys = jr.split(jr.key(6), 3)
    stops = jnp.array([1, 3, 5], jnp.int32)

    def run(key: jax.Array, stop: jax.Array) -> Any:
        cb = CallbackList(EpisodeCounter(), StopAfter(stop))
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=cb)

    out = eqx.filter_vmap(run)(keys, stops)
    np.testing.assert_array_equal(out.iterations, [1, 3, 5])
    np.testing.assert_array_equal(out.timesteps, [SPI, 3 * SPI, 5 * SPI])
    counter_state, _ = out.callback_state
    counter_step, _ = out.callback_step_state
    np.testing.assert_array_equal(counter_state.iterations, [1, 3, 5])
    assert counter_step.steps.shape == (3, ALGO.num_envs)
    np.testing.assert_array_equal(
        counter_step.steps[:, 0],
        [ALGO.num_steps, 3 * ALGO.num_steps, 5 * ALGO.num_steps],
    )
    # each seed's frozen policy equals its own unbatched run
    for i in range(3):
        single = run(keys[i], stops[i])
        batched = jax.tree.map(
            lambda x, i=i: x[i], eqx.filter(out.policy, eqx.is_array)
        )
        for a, b in zip(params(single.policy), jax.tree.leaves(batched), strict=True):
            np.testing.assert_allclose(a, np.asarray(b), rtol=1e-5, atol=1e-6)


def test_no_retrace_on_second_call_or_equal_callback() -> None:
    traces: list[int] = []

    def count_trace() -> None:
        traces.append(1)

    cb = TraceCounter(count_trace)
    ALGO.train(ENV, POLICY, SPI, key=jr.key(7), callback=cb)
    ALGO.train(ENV, POLICY, SPI, key=jr.key(8), callback=cb)
    ALGO.train(ENV, POLICY, SPI, key=jr.key(9), callback=TraceCounter(count_trace))
    assert len(traces) == 1


def test_bad_arguments() -> None:
    # (under the test suite's runtime checker, beartype reports it first)
    with pytest.raises(TypeError, match="callback"):
        ALGO.train(ENV, POLICY, SPI, key=jr.key(0), callback=42)  # type: ignore[call-overload]  # deliberate misuse
    with pytest.raises(ValueError, match=f"at least {SPI}"):
        ALGO.train(ENV, POLICY, SPI - 1, key=jr.key(0))


def test_stopped_vmapped_runs_are_marked_inactive() -> None:
    """Under vmap a stopped run's hooks still execute (one program for all runs);
    ctx.active tells them so, and host calls can be gated on it."""
    records: list[tuple[int, int, bool]] = []

    def record(run: np.ndarray, iteration: np.ndarray, active: np.ndarray) -> None:
        records.append((int(run), int(iteration), bool(active)))

    keys = jr.split(jr.key(10), 2)
    stops = jnp.array([1, 3], jnp.int32)

    def run(key: jax.Array, stop: jax.Array) -> Any:
        cb = CallbackList(HostRecorder(record), StopAfter(stop))
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=cb)

    out = eqx.filter_vmap(run)(keys, stops)
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # untyped in jax
    np.testing.assert_array_equal(out.iterations, [1, 3])
    live = sorted((r, i) for r, i, a in records if a)
    assert live == [(0, 1), (1, 1), (1, 2), (1, 3)]
    # run 0's body was evaluated (and discarded) while run 1 went on
    assert any(r == 0 and not a for r, _, a in records)
