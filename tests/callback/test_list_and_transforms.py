"""CallbackList semantics, and hooks under jit, scan and vmap."""

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array

from lerax.callback import (
    CallbackList,
    EmptyCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    num_runs,
    run_index,
)
from lerax.callback.testing import (
    iteration_context,
    reset_context,
    run_hook,
    step_context,
)

from .callbacks import EpisodeCounter, EpisodeStepState, RandomDrawer, StopAfter
from .factories import ALGO, ENV, POLICY, iteration_ctx, reset_ctx, step_ctx

KEY = jr.key(0)


def test_list_states_are_member_tuples_in_order() -> None:
    cb = CallbackList(EpisodeCounter(), EmptyCallback(), RandomDrawer())
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    state = run_hook(cb, "reset", reset, key=KEY)
    step = run_hook(cb, "step_reset", reset, key=KEY)
    assert isinstance(state, tuple) and len(state) == 3
    assert isinstance(state[1], EmptyCallbackState)
    assert isinstance(step[0], EpisodeStepState)
    assert isinstance(step[1], EmptyCallbackStepState)
    ctx = step_context(
        ENV, POLICY, ALGO, key=KEY, state=step, reward=1.0, terminated=True
    )
    new_step = run_hook(cb, "on_step", ctx, key=KEY)
    assert int(new_step[0].episodes) == 1
    assert float(new_step[2].draws) > 0.0


def test_nested_lists_flatten_and_bad_members_raise() -> None:
    a, b, c = EmptyCallback(), EpisodeCounter(), RandomDrawer()
    nested = CallbackList([a, [b, c]])
    assert nested.callbacks == (a, b, c)
    with pytest.raises(TypeError, match="callbacks"):
        CallbackList(a, 3)  # type: ignore[call-overload]  # deliberate misuse
    with pytest.raises(ValueError, match="at least one callback"):
        CallbackList()  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue]  # deliberate misuse


@pytest.mark.parametrize(
    ("stops", "expected"), [((5, 5), True), ((1, 5), False), ((5, 1), False)]
)
def test_continue_training_is_logical_and(
    stops: tuple[int, int], expected: bool
) -> None:
    cb = CallbackList(StopAfter(jnp.array(stops[0])), StopAfter(jnp.array(stops[1])))
    empty = (EmptyCallbackState(), EmptyCallbackState())
    empty_step = (EmptyCallbackStepState(), EmptyCallbackStepState())
    ctx = iteration_context(
        ENV, POLICY, ALGO, key=KEY, state=empty, step_state=empty_step, iteration=1
    )  # iteration_count 2: the second iteration's update is done
    flag = run_hook(cb, "continue_training", ctx, key=KEY)
    assert flag.dtype == jnp.bool_ and flag.shape == ()
    assert bool(flag) is expected


def _rollout_step_states(cb: CallbackList[Any, Any], num_steps: int, key: Array) -> Any:
    """Drive on_step with a lax.scan over a random-action CartPole rollout."""
    step = cb.step_reset(reset_ctx(), key=key)
    env_state, _ = ENV.reset(key=key)

    def body(carry: tuple[Any, Any], k: Array) -> tuple[tuple[Any, Any], None]:
        env_state, step = carry
        k_act, k_env, k_cb = jr.split(k, 3)
        action = ENV.action_space.sample(key=k_act)
        ts = ENV.step(env_state, action, key=k_env)
        step = cb.on_step(step_ctx(step, reward=ts.reward, done=ts.done), key=k_cb)
        reset_state, _ = ENV.reset(key=k_env)
        env_state = jax.tree.map(
            lambda a, b: jnp.where(ts.done, a, b), reset_state, ts.state
        )
        return (env_state, step), None

    (_, step), _ = jax.lax.scan(body, (env_state, step), jr.split(key, num_steps))
    return step


def test_eager_jit_scan_and_vmap_agree() -> None:
    cb = CallbackList(EpisodeCounter(), RandomDrawer(), EmptyCallback())
    # eager, step by step, vs jitted scan
    scanned = eqx.filter_jit(_rollout_step_states)(cb, 40, KEY)
    with jax.disable_jit():
        eager = _rollout_step_states(cb, 40, KEY)
    for a, b in zip(jax.tree.leaves(scanned), jax.tree.leaves(eager), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    assert int(scanned[0].steps) == 40
    np.testing.assert_allclose(float(scanned[0].reward_sum), 40.0)
    # vmap over seeds: per-seed states equal single runs
    keys = jr.split(KEY, 3)
    batched = jax.vmap(lambda k: _rollout_step_states(cb, 40, k))(keys)
    assert batched[0].steps.shape == (3,)
    for i in range(3):
        single = _rollout_step_states(cb, 40, keys[i])
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i], rtol=1e-6)


def test_vmap_over_callback_parameters() -> None:
    empty = (EmptyCallbackState(),)
    empty_step = (EmptyCallbackStepState(),)

    def flag(stop: Array) -> Array:
        cb = CallbackList(StopAfter(stop))
        return cb.continue_training(
            iteration_ctx(empty, empty_step, iteration=3), key=KEY
        )

    stops = jnp.array([1, 3, 4, 10], jnp.int32)
    np.testing.assert_array_equal(jax.vmap(flag)(stops), [False, False, True, True])
    # and a batch of callback modules through eqx.filter_vmap
    batch = eqx.filter_vmap(lambda s: StopAfter(s))(stops)
    flags = eqx.filter_vmap(
        lambda c: c.continue_training(
            iteration_ctx(EmptyCallbackState(), EmptyCallbackStepState(), iteration=3),
            key=KEY,
        )
    )(batch)
    np.testing.assert_array_equal(flags, [False, False, True, True])


def test_empty_callback_compiles_away() -> None:
    cb = EmptyCallback()
    step = cb.step_reset(reset_ctx(), key=KEY)
    jaxpr, _, _ = eqx.filter_make_jaxpr(lambda c: cb.on_step(c, key=KEY))(
        step_ctx(step)
    )
    assert len(jaxpr.eqns) == 0
    assert isinstance(
        cb.on_iteration(iteration_ctx(EmptyCallbackState(), step), key=KEY),
        EmptyCallbackState,
    )


def test_hooks_trace_once() -> None:
    cb = CallbackList(EpisodeCounter())
    step = cb.step_reset(reset_ctx(), key=KEY)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def run(step: Any, reward: Array) -> Any:
        return cb.on_step(step_ctx(step, reward=reward), key=KEY)

    step = run(step, jnp.array(1.0))
    step = run(step, jnp.array(2.0))
    np.testing.assert_allclose(float(step[0].reward_sum), 3.0)


def test_run_index() -> None:
    assert int(run_index(jnp.zeros(2))) == 0
    np.testing.assert_array_equal(jax.vmap(run_index)(jnp.zeros((4, 2))), [0, 1, 2, 3])
    # unbatched anchors give 0 even under vmap
    out = jax.vmap(lambda x: run_index(jnp.zeros(2)) + 0 * x)(jnp.zeros(3, jnp.int32))
    np.testing.assert_array_equal(out, [0, 0, 0])


def test_run_index_counts_every_vmapped_axis() -> None:
    def index_and_count(x: jax.Array) -> jax.Array:
        index = run_index(x)
        return jnp.stack([index, num_runs(index)])

    # vmap(vmap) over a 2 x 3 batch: row-major index over both axes, 6 runs.
    nested = jax.jit(jax.vmap(jax.vmap(index_and_count)))(jnp.zeros((2, 3)))
    np.testing.assert_array_equal(nested[..., 0], [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(nested[..., 1], np.full((2, 3), 6))
    # An axis that does not batch the anchor does not count.
    outer_only = jax.vmap(jax.vmap(index_and_count, in_axes=None, axis_size=2))(
        jnp.zeros((3, 2))
    )
    np.testing.assert_array_equal(outer_only[..., 0], [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(outer_only[..., 1], np.full((3, 2), 3))
    inner_only = jax.vmap(jax.vmap(index_and_count), in_axes=None, axis_size=2)(
        jnp.zeros(4)
    )
    np.testing.assert_array_equal(inner_only[..., 0], [[0, 1, 2, 3]] * 2)
    np.testing.assert_array_equal(inner_only[..., 1], np.full((2, 4), 4))
    # A key anchor (typed keys) works like any other array.
    keys = jax.random.split(jax.random.key(0), 5)
    np.testing.assert_array_equal(jax.vmap(run_index)(keys), np.arange(5))
    assert int(num_runs(run_index(keys[0]))) == 1


def test_vmap_over_a_batch_of_states_equals_each_state() -> None:
    cb = CallbackList(EpisodeCounter())
    states = (
        EpisodeStepState(
            steps=jnp.array([0, 5, 9], jnp.int32),
            episodes=jnp.array([0, 1, 2], jnp.int32),
            reward_sum=jnp.array([0.0, 5.0, 9.0], jnp.float32),
            episode_return=jnp.array([0.0, 2.0, 7.0], jnp.float32),
            last_return=jnp.array([0.0, 3.0, 1.0], jnp.float32),
        ),
    )
    rewards = jnp.array([1.0, 0.5, 2.0], jnp.float32)
    dones = jnp.array([False, True, True])

    def one(state: Any, reward: Array, done: Array) -> Any:
        return cb.on_step(step_ctx(state, reward=reward, done=done), key=KEY)

    batched = eqx.filter_jit(jax.vmap(one))(states, rewards, dones)
    for i in range(3):
        single_state = jax.tree.map(lambda x, i=i: x[i], states)
        single = one(single_state, rewards[i], dones[i])
        for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(batched), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b)[i])
    np.testing.assert_array_equal(batched[0].episodes, [0, 2, 3])
    np.testing.assert_allclose(batched[0].last_return, [0.0, 2.5, 9.0])
