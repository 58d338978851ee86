"""The stoppers and EveryN hook by hook, with the test kit: the values they
compare, NaN that never stops, evaluations counted once, and EveryN under
vmap when seeds are active or not."""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.callback import CallbackList, EpisodeStatistics, EveryN
from lerax.callback.control import (
    EvalCallback,
    NoImprovementState,
    StopOnMaxEpisodes,
    StopOnNoImprovement,
    StopOnRewardThreshold,
)
from lerax.callback.testing import (
    batch_contexts,
    initial_states,
    iteration_context,
    reset_context,
    rollout_context,
    run_hook,
    run_hook_vmapped,
)

from .helpers import ALGO, ENV, POLICY, Counting, Endless, HostLog, Recorder

KEY = jr.key(0)
TOTAL = 6 * ALGO.steps_per_iteration


def _episodes(
    callback: Any, episodes: list[list[tuple[float, bool]]], iteration: int
) -> Any:
    """The stacked step states after each environment's steps ``(reward,
    done)`` in iteration ``iteration``, given to ``on_rollout`` as one
    rollout (a shorter list is padded at its start with steps of reward 0
    that end nothing: the returns and episode counts stay the same)."""
    reset = reset_context(ENV, POLICY, ALGO, key=KEY, total_timesteps=TOTAL)
    _, first = initial_states(callback, reset, key=KEY)
    num_steps = max(len(steps) for steps in episodes)
    padded = [[(0.0, False)] * (num_steps - len(s)) + s for s in episodes]
    rewards = jnp.asarray([[r for r, _ in s] for s in padded], jnp.float32).T
    dones = jnp.asarray([[d for _, d in s] for s in padded]).T
    base = rollout_context(
        ENV,
        POLICY,
        ALGO,
        key=KEY,
        state=first,
        iteration=iteration,
        total_timesteps=TOTAL,
    )
    # Any number of steps: the kit's overrides keep the algorithm's.
    ctx = dataclasses.replace(
        base, rewards=rewards, terminated=dones, truncated=jnp.zeros_like(dones)
    )
    return run_hook(callback, "on_rollout", ctx, key=KEY)


def _go_on(callback: Any, step_state: Any, iteration: int, **overrides: Any) -> bool:
    state, _ = initial_states(
        callback,
        reset_context(ENV, POLICY, ALGO, key=KEY, total_timesteps=TOTAL),
        key=KEY,
    )
    ctx = iteration_context(
        ENV,
        POLICY,
        ALGO,
        key=KEY,
        state=state,
        step_state=step_state,
        iteration=iteration,
        total_timesteps=TOTAL,
        **overrides,
    )
    return bool(run_hook(callback, "continue_training", ctx, key=KEY))


def test_episode_return_mean_and_ema_over_the_iteration() -> None:
    mean = StopOnRewardThreshold(2.5, key="rollout/ep_return_mean")
    # Iteration 0: env 0 ends an episode of return 2, env 1 one of return 3.
    stats = _episodes(mean, [[(1.0, False), (1.0, True)], [(3.0, True)]], 0)
    assert isinstance(stats, EpisodeStatistics)
    assert not _go_on(mean, stats, 0)  # mean 2.5 >= 2.5
    assert _go_on(StopOnRewardThreshold(2.6, key="rollout/ep_return_mean"), stats, 0)
    # The next iteration: no episode ended, the mean is NaN: never stops.
    low = StopOnRewardThreshold(-100.0, key="rollout/ep_return_mean")
    assert _go_on(low, stats, 1)
    # The EMA stays defined: the mean of the environments' EMAs, 2.5.
    assert not _go_on(StopOnRewardThreshold(2.5, key="rollout/ep_return_ema"), stats, 1)
    assert _go_on(StopOnRewardThreshold(2.6, key="rollout/ep_return_ema"), stats, 1)
    # Before any episode ended, the EMA is NaN.
    running = _episodes(low, [[(1.0, False)], [(1.0, False)]], 0)
    assert _go_on(
        StopOnRewardThreshold(-100.0, key="rollout/ep_return_ema"), running, 0
    )


def test_a_published_metric_is_compared_as_it_is_this_iteration() -> None:
    stop = StopOnRewardThreshold(10.0)
    stats = _episodes(stop, [[(1.0, True)], [(1.0, True)]], 0)
    assert _go_on(stop, stats, 0, metrics={"eval/mean_return": 9.5})
    assert not _go_on(stop, stats, 0, metrics={"eval/mean_return": 10.0})
    assert _go_on(stop, stats, 0, metrics={"eval/mean_return": float("nan")})
    # A published metric needs no episode statistics: they stay untouched.
    assert np.asarray(stats.window_episodes).tolist() == [0, 0]


def test_no_improvement_counts_each_evaluation_once() -> None:
    stop = StopOnNoImprovement(2, min_delta=0.5)
    reset = reset_context(ENV, POLICY, ALGO, key=KEY, total_timesteps=TOTAL)
    state, step_state = initial_states(stop, reset, key=KEY)

    def after(
        state: NoImprovementState, iteration: int, value: float, at: float
    ) -> Any:
        ctx = iteration_context(
            ENV,
            POLICY,
            ALGO,
            key=KEY,
            state=state,
            step_state=step_state,
            iteration=iteration,
            total_timesteps=TOTAL,
            metrics={"eval/mean_return": value, "eval/last_iteration": at},
        )
        go_on = bool(run_hook(stop, "continue_training", ctx, key=KEY))
        return run_hook(stop, "on_iteration", ctx, key=KEY), go_on

    state, go_on = after(state, 0, 10.0, 1.0)  # the first evaluation improves
    assert go_on and (float(state.best), int(state.stale)) == (10.0, 0)
    state, go_on = after(state, 1, 10.0, 1.0)  # the same evaluation again
    assert go_on and int(state.stale) == 0
    state, go_on = after(state, 2, 10.4, 3.0)  # within min_delta: no improvement
    assert go_on and (float(state.best), int(state.stale)) == (10.0, 1)
    state, go_on = after(state, 3, 11.0, 4.0)  # an improvement resets the count
    assert go_on and (float(state.best), int(state.stale)) == (11.0, 0)
    state, go_on = after(state, 4, 5.0, 5.0)
    state, go_on = after(state, 5, float("nan"), 6.0)  # NaN: no improvement
    assert not go_on and int(state.stale) == 2


def test_max_episodes_sums_the_environments() -> None:
    stop = StopOnMaxEpisodes(3)
    two = _episodes(stop, [[(1.0, True), (1.0, True)], [(1.0, False)]], 0)
    assert np.asarray(two.episodes).tolist() == [2, 0]
    assert _go_on(stop, two, 0)
    three = _episodes(stop, [[(1.0, True), (1.0, True)], [(1.0, True)]], 0)
    assert not _go_on(stop, three, 0)


@pytest.mark.parametrize("jit", [False, True])
def test_every_n_fires_only_for_seeds_that_are_due_and_active(jit: bool) -> None:
    """Three seeds after their 2nd iteration (due: every 2 iterations), seed
    1 stopped, seed 2 stopped after its 1st: only seed 0 fires, and the
    wrapped host call sees the others inactive. After the 3rd iteration (not
    due) nothing runs: no host call."""
    log = HostLog()
    every = EveryN(
        CallbackList(Recorder(), Counting(log)), every=2 * ALGO.steps_per_iteration
    )
    reset = reset_context(ENV, POLICY, ALGO, key=KEY, total_timesteps=TOTAL)
    state, step_state = initial_states(every, reset, key=KEY)
    assert np.isnan(float(state.metrics["inner/count"]))

    def batch(iteration: int) -> Any:
        return batch_contexts(
            [
                iteration_context(
                    ENV,
                    POLICY,
                    ALGO,
                    key=KEY,
                    state=state,
                    step_state=step_state,
                    iteration=it,
                    total_timesteps=TOTAL,
                    run_index=run,
                    active=active,
                )
                for run, (it, active) in enumerate(
                    [(iteration, True), (iteration, False), (iteration - 1, False)]
                )
            ]
        )

    keys = jr.split(KEY, 3)
    due = run_hook_vmapped(every, "on_iteration", batch(1), keys=keys, jit=jit)
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
    assert np.asarray(due.last_iteration).tolist() == [2, 0, 0]
    assert np.asarray(due.state[0].count).tolist() == [1, 0, 0]
    np.testing.assert_array_equal(due.metrics["inner/count"], [1.0, np.nan, np.nan])
    assert log.rows == [(0, 2, True), (1, 2, False), (2, 1, False)]
    later = run_hook_vmapped(every, "on_iteration", batch(2), keys=keys, jit=jit)
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
    assert np.asarray(later.last_iteration).tolist() == [0, 0, 0]
    assert len(log.rows) == 3


def test_evaluation_episodes_end_at_max_episode_steps() -> None:
    evaluation = EvalCallback(
        Endless(), every=ALGO.steps_per_iteration, num_episodes=2, max_episode_steps=5
    )
    reset = reset_context(ENV, POLICY, ALGO, key=KEY, total_timesteps=TOTAL)
    state, step_state = initial_states(evaluation, reset, key=KEY)

    def context(state: Any) -> Any:
        return iteration_context(
            ENV,
            POLICY,
            ALGO,
            key=KEY,
            state=state,
            step_state=step_state,
            total_timesteps=TOTAL,
        )

    before = run_hook(evaluation, "metrics", context(state), key=KEY)
    assert all(np.isnan(float(v)) for v in before.values())
    state = run_hook(evaluation, "on_iteration", context(state), key=KEY, jit=True)
    published = run_hook(evaluation, "metrics", context(state), key=KEY)
    assert {k: float(v) for k, v in published.items()} == {
        "eval/mean_return": 5.0,
        "eval/best_mean_return": 5.0,
        "eval/last_iteration": 1.0,
    }
    assert int(state.evaluations) == 1 and state.best_params is None
