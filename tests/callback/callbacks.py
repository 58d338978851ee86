"""Callbacks used by the tests (written as a user would)."""

from collections.abc import Callable
from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    ResetContext,
    StepContext,
    TrainingContext,
)
from lerax.env import AbstractEnv
from lerax.policy import AbstractPolicy


@final
class CounterState(eqx.Module):
    iterations: Int[Array, ""]
    last_iteration: Int[Array, ""]
    in_order: Bool[Array, ""]
    started: Int[Array, ""]
    ended: Int[Array, ""]
    last_timesteps: Int[Array, ""]


@final
class EpisodeStepState(eqx.Module):
    steps: Int[Array, ""]
    episodes: Int[Array, ""]
    reward_sum: Float[Array, ""]
    episode_return: Float[Array, ""]
    last_return: Float[Array, ""]


@final
class EpisodeCounter(AbstractCallback[CounterState, EpisodeStepState]):
    """Counts steps, episodes and iterations; checks hook order on the way."""

    def reset(
        self,
        ctx: ResetContext[
            AbstractEnv[object, object, object], AbstractPolicy[object, object]
        ],
        *,
        key: PRNGKeyArray,
    ) -> CounterState:
        z = jnp.array(0, jnp.int32)
        return CounterState(z, z, jnp.array(True), z, z, z)

    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> EpisodeStepState:
        z = jnp.array(0, jnp.int32)
        f = jnp.array(0.0, jnp.float32)
        return EpisodeStepState(z, z, f, f, f)

    def on_step(
        self, ctx: StepContext[EpisodeStepState], *, key: PRNGKeyArray
    ) -> EpisodeStepState:
        s = ctx.state
        ret = s.episode_return + ctx.reward
        return EpisodeStepState(
            steps=s.steps + 1,
            episodes=s.episodes + ctx.done.astype(jnp.int32),
            reward_sum=s.reward_sum + ctx.reward,
            episode_return=jnp.where(ctx.done, 0.0, ret),
            last_return=jnp.where(ctx.done, ret, s.last_return),
        )

    def on_training_start(
        self, ctx: TrainingContext[CounterState, EpisodeStepState], *, key: PRNGKeyArray
    ) -> CounterState:
        s = ctx.state
        return CounterState(
            s.iterations,
            s.last_iteration,
            s.in_order,
            s.started + 1,
            s.ended,
            s.last_timesteps,
        )

    def on_iteration(
        self,
        ctx: IterationContext[CounterState, EpisodeStepState],
        *,
        key: PRNGKeyArray,
    ) -> CounterState:
        s = ctx.state
        in_order = (
            s.in_order
            & (ctx.iteration_count == s.last_iteration + 1)
            & (s.started == 1)
            & (s.ended == 0)
        )
        return CounterState(
            iterations=s.iterations + 1,
            last_iteration=ctx.iteration_count,
            in_order=in_order,
            started=s.started,
            ended=s.ended,
            last_timesteps=ctx.num_timesteps,
        )

    def on_training_end(
        self, ctx: TrainingContext[CounterState, EpisodeStepState], *, key: PRNGKeyArray
    ) -> CounterState:
        s = ctx.state
        return CounterState(
            s.iterations,
            s.last_iteration,
            s.in_order,
            s.started,
            s.ended + 1,
            s.last_timesteps,
        )


@final
class StopAfter(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Stops training once ``iterations`` iterations have run (a vmappable field)."""

    iterations: Int[Array, ""]

    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return ctx.iteration_count < self.iterations


@final
class LogSum(eqx.Module):
    total: Float[Array, ""]


@final
class LogReader(AbstractCallback[LogSum, EmptyCallbackStepState]):
    """Sums every entry of the training log over the iterations (so the
    algorithm must compute its statistics)."""

    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> LogSum:
        return LogSum(jnp.zeros((), jnp.float32))

    def on_iteration(
        self,
        ctx: IterationContext[LogSum, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> LogSum:
        values = [jnp.asarray(v, jnp.float32) for v in ctx.training_log.values()]
        return LogSum(ctx.state.total + jnp.sum(jnp.stack(values)))


@final
class RandomStepState(eqx.Module):
    draws: Float[Array, ""]


@final
class RandomDrawer(AbstractCallback[EmptyCallbackState, RandomStepState]):
    """Uses its keys (to check callbacks have their own key stream)."""

    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> RandomStepState:
        return RandomStepState(jnp.array(0.0, jnp.float32))

    def on_step(
        self, ctx: StepContext[RandomStepState], *, key: PRNGKeyArray
    ) -> RandomStepState:

        return RandomStepState(ctx.state.draws + jr.uniform(key))


@final
class TraceCounter(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Calls a Python function each time ``on_iteration`` is traced."""

    on_trace: Callable[[], None] = eqx.field(static=True)

    def on_iteration(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> EmptyCallbackState:
        self.on_trace()
        return ctx.state


@final
class HostRecorder(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """Sends (run_index, iteration, active) to the host after each iteration."""

    record: Callable[[np.ndarray, np.ndarray, np.ndarray], None] = eqx.field(
        static=True
    )

    def on_iteration(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> EmptyCallbackState:
        jax.debug.callback(
            self.record, ctx.run_index, ctx.iteration_count, ctx.active, ordered=True
        )
        return ctx.state
