"""The training log is computed only when some callback reads it
(``AbstractCallback.reads_training_log``)."""

import io
from typing import Any, final

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, PRNGKeyArray
from rich.console import Console
from typing_extensions import override

from lerax.algorithm import A2C
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    EmptyCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    HistoryCallback,
    IterationContext,
    ProgressBarCallback,
)
from lerax.callback.control import (
    EvalCallback,
    EveryN,
    StopOnMaxEpisodes,
    StopOnNoImprovement,
    StopOnRewardThreshold,
)
from lerax.checkpoint import CheckpointCallback
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(ENV, key=jr.key(0))
ALGO = A2C(num_envs=2, num_steps=4)
TOTAL = 3 * ALGO.steps_per_iteration


@final
class LossReader(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Reads the training log (the default declaration) and publishes it."""

    @override
    def metrics(
        self, ctx: IterationContext[Any, Any, Any, Any], *, key: PRNGKeyArray
    ) -> dict[str, Float[Array, ""]]:
        return {"test/loss": jnp.asarray(ctx.training_log["loss"], jnp.float32)}


@final
class WrongDeclaration(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Says it does not read the training log, then reads it."""

    @override
    def reads_training_log(self) -> bool:
        return False

    @override
    def on_iteration(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState, Any, Any],
        *,
        key: PRNGKeyArray,
    ) -> EmptyCallbackState:
        _ = ctx.training_log["loss"]
        return ctx.state


def final_loss(callback: AbstractCallback[Any, Any]) -> float:
    result = ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), callback=callback)
    return float(result.train_state.training_log["loss"])


def test_the_declarations_of_the_built_in_callbacks(tmp_path: Any) -> None:
    bar = ProgressBarCallback(console=Console(file=io.StringIO()))
    with CheckpointCallback(tmp_path, every=10**6) as saver:
        readers_not: list[AbstractCallback[Any, Any]] = [
            EmptyCallback(),
            bar,
            saver,
            StopOnRewardThreshold(100.0),
            StopOnNoImprovement(3),
            StopOnMaxEpisodes(10),
            EvalCallback(CartPole(), every=8),
            HistoryCallback(["rollout/ep_return_mean"]),
            EveryN(bar, every=8),
            CallbackList([bar, EmptyCallback()]),
        ]
        assert [cb.reads_training_log() for cb in readers_not] == [False] * 10
        readers: list[AbstractCallback[Any, Any]] = [
            LossReader(),
            HistoryCallback(["rollout/ep_return_mean", "train/loss"]),
            EveryN(LossReader(), every=8),
            CallbackList([bar, LossReader()]),
        ]
        assert [cb.reads_training_log() for cb in readers] == [True] * 4


def test_the_log_is_computed_only_when_a_callback_reads_it() -> None:
    bar = ProgressBarCallback(console=Console(file=io.StringIO()))
    # Not read: the update skips it, the state keeps the initial zeros.
    assert final_loss(EmptyCallback()) == 0.0
    assert final_loss(bar) == 0.0
    # Read by one member of a list: computed, and the same as read alone.
    alone = final_loss(LossReader())
    assert alone != 0.0 and np.isfinite(alone)
    assert final_loss(CallbackList([bar, LossReader()])) == alone


def test_reading_a_log_declared_unread_fails_while_tracing() -> None:
    with pytest.raises(KeyError, match="loss"):
        ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), callback=WrongDeclaration())
