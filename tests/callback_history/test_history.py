"""HistoryCallback records what LoggingCallback logs, as arrays in its state:
for a single (jitted) run, and per seed under vmap with a seed that stops
early; its rows, shapes and bad input."""

import json
import math
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from lerax.algorithm import PPO, TrainResult
from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    HistoryCallback,
    HistoryState,
    IterationContext,
    JSONLBackend,
    LoggingCallback,
)
from lerax.callback.testing import initial_states, reset_context
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=32, num_epochs=1, num_minibatches=1)
ITERATIONS = 9
EVERY = 2
TOTAL = ITERATIONS * ALGO.steps_per_iteration
ROW_ITERATIONS = [2, 4, 6, 8, 9]  # every second iteration, and the last one
NAMES = (
    "train/loss",
    "train/learning_rate",
    "rollout/ep_return_ema",
    "rollout/ep_length_ema",
    "rollout/ep_return_mean",
    "rollout/ep_return_min",
    "rollout/ep_return_max",
    "rollout/ep_length_mean",
    "rollout/episodes",
    "mine/progress",
)


@final
class Progress(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Publishes the fraction of the run done."""

    def metrics(
        self, ctx: IterationContext[Any, Any], *, key: PRNGKeyArray
    ) -> dict[str, Float[Array, ""]]:
        done = ctx.num_timesteps / ctx.total_timesteps
        return {"mine/progress": done.astype(jnp.float32)}


@final
class StopAfter(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops training after ``iterations`` iterations (per seed under vmap)."""

    iterations: Int[Array, ""]

    def continue_training(
        self, ctx: IterationContext[Any, Any], *, key: PRNGKeyArray
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < self.iterations


def logged_rows(path: Path, run: int) -> Float[np.ndarray, "rows names"]:
    """What the logger wrote for ``run``, laid out as the history's rows: NaN
    for a row not logged and for a value the logger left out (undefined)."""
    expected = np.full((len(ROW_ITERATIONS), len(NAMES)), np.nan, np.float32)
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    for line in lines:
        if line["run"] != run:
            continue
        row = ROW_ITERATIONS.index(line["time/iteration"])
        assert line["step"] == ROW_ITERATIONS[row] * ALGO.steps_per_iteration
        expected[row] = [line.get(name, np.nan) for name in NAMES]
    return expected


def test_single_jitted_run_records_what_the_logger_logs(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    logger = LoggingCallback(
        JSONLBackend(path), log_every=EVERY * ALGO.steps_per_iteration
    )
    history = HistoryCallback(NAMES, every=EVERY)

    @eqx.filter_jit
    def train(key: PRNGKeyArray) -> TrainResult[Any, Any, Any]:
        callbacks = (Progress(), history, logger)
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=callbacks)

    result = train(jr.key(1))
    logger.close()
    state = result.callback_state[1]
    assert isinstance(state, HistoryState)
    assert state.names == NAMES
    assert state.values.shape == (len(ROW_ITERATIONS), len(NAMES))
    assert state.values.dtype == jnp.float32
    assert state.iteration.tolist() == ROW_ITERATIONS
    assert state.timesteps.tolist() == [
        i * ALGO.steps_per_iteration for i in ROW_ITERATIONS
    ]
    assert state.recorded.tolist() == [True] * len(ROW_ITERATIONS)
    expected = logged_rows(path, 0)
    np.testing.assert_array_equal(np.asarray(state.values), expected)
    # Episodes ended, so the statistics are defined (not all NaN) and vary.
    assert np.isfinite(np.asarray(state.curve("rollout/ep_return_ema"))).all()
    np.testing.assert_array_equal(
        state.curve("mine/progress"),
        (np.asarray(ROW_ITERATIONS) / ITERATIONS).astype(np.float32),
    )
    np.testing.assert_array_equal(state.curve("train/loss"), expected[:, 0])


def test_per_seed_under_vmap_with_a_seed_that_stops_early(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    logger = LoggingCallback(
        JSONLBackend(path), log_every=EVERY * ALGO.steps_per_iteration
    )
    history = HistoryCallback(NAMES, every=EVERY)
    stops = jnp.array([100, 5, 100], jnp.int32)  # seed 1 stops after iteration 5

    @eqx.filter_vmap
    def train_seeds(
        key: PRNGKeyArray, stop: Int[Array, ""]
    ) -> TrainResult[Any, Any, Any]:
        callbacks = (Progress(), StopAfter(stop), history, logger)
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=callbacks)

    result = train_seeds(jr.split(jr.key(2), 3), stops)
    logger.close()
    assert result.iterations.tolist() == [ITERATIONS, 5, ITERATIONS]
    state = result.callback_state[2]
    assert state.values.shape == (3, len(ROW_ITERATIONS), len(NAMES))
    assert state.curve("train/loss").shape == (3, len(ROW_ITERATIONS))
    assert state.iteration.tolist() == [ROW_ITERATIONS] * 3
    recorded = np.asarray(state.recorded)
    assert recorded.tolist() == [[True] * 5, [True, True, False, False, False]] + [
        [True] * 5
    ]
    values = np.asarray(state.values)
    for run in range(3):
        np.testing.assert_array_equal(values[run], logged_rows(path, run))
    # After its stop, seed 1's rows are NaN; seeds differ.
    assert np.isnan(values[1, 2:]).all()
    assert not np.isnan(values[1, :2, :2]).any()
    assert not np.array_equal(values[0, :, 0], values[2, :, 0])


@pytest.mark.parametrize(
    ("iterations", "every", "rows"),
    [(9, 2, [2, 4, 6, 8, 9]), (8, 2, [2, 4, 6, 8]), (4, 1, [1, 2, 3, 4]), (3, 5, [3])],
)
def test_rows_hold_every_every_th_iteration_and_the_last(
    iterations: int, every: int, rows: list[int]
) -> None:
    history = HistoryCallback(["train/loss", "rollout/episodes"], every=every)
    total = iterations * ALGO.steps_per_iteration
    ctx = reset_context(ENV, POLICY, ALGO, key=jr.key(0), total_timesteps=total)
    state, step_state = initial_states(history, ctx, key=jr.key(1))
    assert len(rows) == math.ceil(iterations / every)
    assert state.values.shape == (len(rows), 2)
    assert np.isnan(np.asarray(state.values)).all()  # nothing written yet
    assert state.iteration.tolist() == rows
    assert state.timesteps.tolist() == [r * ALGO.steps_per_iteration for r in rows]
    assert state.recorded.tolist() == [False] * len(rows)
    assert step_state.episode_return.shape == (ALGO.num_envs,)


def test_a_name_nothing_provides_is_refused_before_training() -> None:
    # Without a publisher (no metric discovery) and with one (the names are
    # discovered by tracing the hooks first).
    def alone() -> object:
        history = HistoryCallback(["train/loss", "train/los"])
        return ALGO.train(ENV, POLICY, TOTAL, key=jr.key(0), callback=history)

    def after_a_publisher() -> object:
        history = HistoryCallback(["mine/progress", "train/los"])
        callbacks = (Progress(), history)
        return ALGO.train(ENV, POLICY, TOTAL, key=jr.key(0), callback=callbacks)

    for train in (alone, after_a_publisher):
        with pytest.raises(ValueError) as info:
            train()
        message = str(info.value)
        assert "metrics[1]='train/los'" in message
        assert "did you mean 'train/loss'?" in message
        assert "available: train/approx_kl, train/clip_fraction," in message
        assert "rollout/ep_return_mean" in message and "rollout/episodes" in message
    assert "mine/progress" in message  # published metrics are listed too


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"metrics": ["train/loss"], "every": 0}, ValueError, "every=0"),
        ({"metrics": ["train/loss"], "every": -2}, ValueError, "every=-2"),
        ({"metrics": ["train/loss"], "every": 1.5}, TypeError, "every"),
        ({"metrics": ["train/loss"], "every": True}, TypeError, "every"),
        ({"metrics": []}, ValueError, "at least one"),
        ({"metrics": ["a", "b", "a"]}, ValueError, "'a' twice"),
        ({"metrics": [""]}, ValueError, "empty name"),
        ({"metrics": 3}, TypeError, "metrics"),
        ({"metrics": ["x"], "ema_alpha": 1.0}, ValueError, "ema_alpha=1.0"),
    ],
)
def test_bad_construction(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        HistoryCallback(**kwargs)


def test_a_single_name_and_curve_lookup() -> None:
    history = HistoryCallback("train/loss", every=3)
    assert history.names == ("train/loss",)
    ctx = reset_context(ENV, POLICY, ALGO, key=jr.key(0))
    state, _ = initial_states(history, ctx, key=jr.key(1))
    assert state.curve("train/loss").shape == (1,)
    with pytest.raises(KeyError, match="recorded: 'train/loss'"):
        state.curve("train/value_loss")
