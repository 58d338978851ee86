"""Deliberate mistakes: each line marked `# expect-error` must be reported by
both mypy and pyright, and no other line."""

from typing import final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Int, PRNGKeyArray

from lerax.algorithm import PPO
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
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy


@final
class Iterations(eqx.Module):
    count: Int[Array, ""]


@final
class Episodes(eqx.Module):
    count: Int[Array, ""]


@final
class WrongReturn(AbstractCallback[Iterations, Episodes]):
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Iterations:
        return Episodes(jnp.array(0, jnp.int32))  # expect-error

    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Episodes:
        return Episodes(jnp.array(0, jnp.int32))

    def on_iteration(
        self, ctx: IterationContext[Iterations, Episodes], *, key: PRNGKeyArray
    ) -> Iterations:
        return ctx.step_state  # expect-error

    def on_step(self, ctx: StepContext[Episodes], *, key: PRNGKeyArray) -> Episodes:
        return ctx.state

    def continue_training(
        self, ctx: IterationContext[Iterations, Episodes], *, key: PRNGKeyArray
    ) -> Bool[Array, ""]:
        return True  # expect-error


@final
class WrongRollout(AbstractCallback[Iterations, Episodes]):
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Iterations:
        return Iterations(jnp.array(0, jnp.int32))

    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Episodes:
        return Episodes(jnp.array(0, jnp.int32))

    def on_rollout(
        self, ctx: RolloutContext[Episodes], *, key: PRNGKeyArray
    ) -> Episodes:
        return Iterations(ctx.state.count)  # expect-error


@final
class Other(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    pass


def swapped(ctx: ResetContext) -> None:
    callbacks = CallbackList(WrongReturn(), Other())
    states: tuple[EmptyCallbackState, Iterations] = callbacks.reset(ctx, key=jr.key(0))  # expect-error
    del states


def swapped_in_a_tuple() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    result = PPO().train(env, policy, 2048, key=jr.key(1), callback=(WrongReturn(), Other()))
    states: tuple[EmptyCallbackState, Iterations] = result.callback_state  # expect-error
    del states


def nested_swapped(ctx: ResetContext) -> None:
    nested = CallbackList(CallbackList(WrongReturn(), Other()), Other())
    states: tuple[tuple[EmptyCallbackState, Iterations], EmptyCallbackState] = nested.reset(ctx, key=jr.key(0))  # expect-error
    del states


@final
class ForCartPole(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState, CartPole]):
    pass


def declared_for_another_environment() -> None:
    # At run time a TypeError naming both types, before compiling.
    env = Pendulum()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    PPO().train(env, policy, 2048, key=jr.key(1), callback=ForCartPole())  # expect-error
