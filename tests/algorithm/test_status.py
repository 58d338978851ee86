"""Every result says whether and why each run stopped, and at which iteration."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Bool, Int

from lerax.algorithm import PPO, StopReason
from lerax.callback import (
    AbstractCallback,
    AbstractLoggingBackend,
    EmptyCallbackState,
    EmptyCallbackStepState,
    HParamValue,
    IterationContext,
    JSONLBackend,
    LoggingBackendError,
    LoggingCallback,
    RunInfo,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
ITERATIONS = 6
TOTAL = ITERATIONS * ALGO.steps_per_iteration


class StopAt(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops each run after its own number of iterations."""

    at: Int[Array, ""]

    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: Any,
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < self.at


def test_each_vmapped_run_has_its_own_status() -> None:
    stoppers = eqx.filter_vmap(lambda a: StopAt(a))(jnp.array([2, 4, 100]))
    result = eqx.filter_jit(
        eqx.filter_vmap(
            lambda cb, k: ALGO.train(ENV, POLICY, TOTAL, key=k, callback=cb)
        )
    )(stoppers, jr.split(jr.key(1), 3))
    assert result.status.reasons() == [
        StopReason.CALLBACK,
        StopReason.CALLBACK,
        StopReason.COMPLETED,
    ]
    np.testing.assert_array_equal(result.status.iteration, [2, 4, ITERATIONS])
    # A stopped run keeps its counters where it stopped.
    np.testing.assert_array_equal(result.iterations, [2, 4, ITERATIONS])
    np.testing.assert_array_equal(
        result.timesteps, np.array([2, 4, ITERATIONS]) * ALGO.steps_per_iteration
    )
    np.testing.assert_array_equal(result.status.stopped_early, [True, True, False])


def test_a_stop_at_the_last_iteration_is_a_completed_run() -> None:
    result = ALGO.train(
        ENV, POLICY, TOTAL, key=jr.key(2), callback=StopAt(jnp.asarray(ITERATIONS))
    )
    assert result.status.reasons() is StopReason.COMPLETED
    assert int(result.status.iteration) == ITERATIONS


class FailsAt(AbstractLoggingBackend):
    """Raises when iteration 2 is logged."""

    def open(self, run: RunInfo) -> None:
        pass

    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        pass

    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        if scalars["time/iteration"] == 2:
            raise OSError("disk full")

    def finish(self, run_index: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_logging_failure_under_the_users_transform_is_a_status(
    tmp_path: Path,
) -> None:
    """Under jit/vmap no Lerax code runs after the program: every run ends
    with its status and the logger's close() raises the failure. Records go
    to the host 64 at a time for iterations this short, and the writer
    fails on the first batch: a later send tells the loop."""
    planned = 300
    logger = LoggingCallback(
        [FailsAt(), JSONLBackend(tmp_path / "log.jsonl")], log_every=1
    )
    result = eqx.filter_jit(
        eqx.filter_vmap(
            lambda k: ALGO.train(
                ENV, POLICY, planned * ALGO.steps_per_iteration, key=k, callback=logger
            )
        )
    )(jr.split(jr.key(3), 2))
    reasons = result.status.reasons()
    stopped = np.asarray(result.status.iteration)
    assert (stopped < planned).all(), stopped
    assert reasons == [StopReason.LOGGING_FAILED] * 2
    with pytest.raises(LoggingBackendError, match="disk full") as info:
        logger.close()
    assert isinstance(info.value.__cause__, OSError)
