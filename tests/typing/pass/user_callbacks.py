"""A user's callbacks: must type-check clean under mypy and pyright."""

from typing import Any, assert_type, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from lerax.algorithm import PPO, TrainResult
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy


@final
class Iterations(eqx.Module):
    count: Int[Array, ""]


@final
class Episodes(eqx.Module):
    count: Int[Array, ""]


@final
class IterationCounter(AbstractCallback[Iterations, EmptyCallbackStepState]):
    limit: int = 100

    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Iterations:
        return Iterations(jnp.array(0, jnp.int32))

    def on_iteration(
        self,
        ctx: IterationContext[Iterations, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Iterations:
        assert_type(ctx.state, Iterations)
        return Iterations(ctx.state.count + 1)

    def continue_training(
        self,
        ctx: IterationContext[Iterations, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return ctx.state.count < self.limit


@final
class EpisodeCounter(AbstractCallback[EmptyCallbackState, Episodes]):
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Episodes:
        return Episodes(jnp.array(0, jnp.int32))

    def on_step(self, ctx: StepContext[Episodes], *, key: PRNGKeyArray) -> Episodes:
        assert_type(ctx.state, Episodes)
        return Episodes(ctx.state.count + ctx.done.astype(jnp.int32))


@final
class RolloutEpisodeCounter(AbstractCallback[EmptyCallbackState, Episodes]):
    """The same count from the whole rollout: every environment's state."""

    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Episodes:
        return Episodes(jnp.array(0, jnp.int32))

    def on_rollout(
        self, ctx: RolloutContext[Episodes], *, key: PRNGKeyArray
    ) -> Episodes:
        assert_type(ctx.state, Episodes)
        ended = ctx.dones.astype(jnp.int32).sum(axis=0)
        return Episodes(ctx.state.count + ended)


@final
class CartPoleWatcher(
    AbstractCallback[EmptyCallbackState, EmptyCallbackStepState, CartPole]
):
    """A callback for one environment type sees its fields."""

    def on_step(
        self, ctx: StepContext[EmptyCallbackStepState, CartPole], *, key: PRNGKeyArray
    ) -> EmptyCallbackStepState:
        assert_type(ctx.env, CartPole)
        return ctx.state


def list_states(ctx: ResetContext) -> None:
    callbacks = CallbackList(IterationCounter(), EpisodeCounter())
    key = jr.key(0)
    assert_type(callbacks.reset(ctx, key=key), tuple[Iterations, EmptyCallbackState])
    assert_type(
        callbacks.step_reset(ctx, key=key), tuple[EmptyCallbackStepState, Episodes]
    )


def nested_lists(ctx: ResetContext) -> None:
    # A nested CallbackList keeps every member's type under both checkers.
    inner = CallbackList(IterationCounter(), EpisodeCounter())
    outer = CallbackList(inner, IterationCounter())
    key = jr.key(0)
    assert_type(
        outer.reset(ctx, key=key),
        tuple[tuple[Iterations, EmptyCallbackState], Iterations],
    )
    # Past eight members (or from a Python list) the states are untyped tuples.
    a, b = IterationCounter(), EpisodeCounter()
    nine = CallbackList(a, b, a, b, a, b, a, b, a)
    many = CallbackList([IterationCounter(), EpisodeCounter()])
    assert_type(nine.reset(ctx, key=key), tuple[Any, ...])
    assert_type(many.reset(ctx, key=key), tuple[Any, ...])


def train_result() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    result = PPO().train(env, policy, 2048, key=jr.key(1), callback=IterationCounter())
    assert_type(result.callback_state, Iterations)
    both = PPO().train(
        env,
        policy,
        2048,
        key=jr.key(1),
        callback=CallbackList(IterationCounter(), CartPoleWatcher()),
    )
    assert_type(both.callback_state, tuple[Iterations, EmptyCallbackState])
    # A tuple is typed member by member, like CallbackList(a, b).
    pair = PPO().train(
        env,
        policy,
        2048,
        key=jr.key(1),
        callback=(IterationCounter(), EpisodeCounter()),
    )
    assert_type(pair.callback_state, tuple[Iterations, EmptyCallbackState])
    assert_type(pair.callback_step_state, tuple[EmptyCallbackStepState, Episodes])
    one = PPO().train(env, policy, 2048, key=jr.key(1), callback=(IterationCounter(),))
    assert_type(one.callback_state, tuple[Iterations])
    plain: TrainResult[
        MLPActorCriticPolicy[Array], EmptyCallbackState, EmptyCallbackStepState
    ]
    plain = PPO().train(env, policy, 2048, key=jr.key(1))
    del plain
