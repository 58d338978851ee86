"""Validated hook calls: how the training loop and ``CallbackList`` call hooks.

Each function calls one hook and checks what it returned (see
``_validation``), at trace time only.
"""

from collections.abc import Mapping
from typing import Any, TypeVar, final

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._custom_types import Key
from ._base import AbstractCallback
from ._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
)
from ._validation import check_continue, check_metrics, check_state

S = TypeVar("S")
T = TypeVar("T")
E = TypeVar("E", bound=Any)
P = TypeVar("P", bound=Any)


def call_reset(
    callback: AbstractCallback[S, T, E, P], ctx: ResetContext[E, P], *, key: Key
) -> S:
    state = callback.reset(ctx, key=key)
    check_state(callback, "reset", "state", state, None)
    return state


def call_step_reset(
    callback: AbstractCallback[S, T, E, P], ctx: ResetContext[E, P], *, key: Key
) -> T:
    state = callback.step_reset(ctx, key=key)
    check_state(callback, "step_reset", "step state", state, None)
    return state


def call_on_step(
    callback: AbstractCallback[S, T, E, P], ctx: StepContext[T, E, P], *, key: Key
) -> T:
    state = callback.on_step(ctx, key=key)
    check_state(callback, "on_step", "step state", state, ctx.state)
    return state


def call_on_rollout(
    callback: AbstractCallback[S, T, E, P], ctx: RolloutContext[T, E, P], *, key: Key
) -> T:
    state = callback.on_rollout(ctx, key=key)
    check_state(callback, "on_rollout", "step states", state, ctx.state)
    return state


def call_on_iteration(
    callback: AbstractCallback[S, T, E, P],
    ctx: IterationContext[S, T, E, P],
    *,
    key: Key,
) -> S:
    state = callback.on_iteration(ctx, key=key)
    check_state(callback, "on_iteration", "state", state, ctx.state)
    return state


def call_continue_training(
    callback: AbstractCallback[S, T, E, P],
    ctx: IterationContext[S, T, E, P],
    *,
    key: Key,
) -> Bool[Array, ""]:
    return check_continue(callback, callback.continue_training(ctx, key=key))


def call_on_training_start(
    callback: AbstractCallback[S, T, E, P],
    ctx: TrainingContext[S, T, E, P],
    *,
    key: Key,
) -> S:
    state = callback.on_training_start(ctx, key=key)
    check_state(callback, "on_training_start", "state", state, ctx.state)
    return state


def call_on_training_end(
    callback: AbstractCallback[S, T, E, P],
    ctx: TrainingContext[S, T, E, P],
    *,
    key: Key,
) -> S:
    state = callback.on_training_end(ctx, key=key)
    check_state(callback, "on_training_end", "state", state, ctx.state)
    return state


def call_metrics(
    callback: AbstractCallback[S, T, E, P],
    ctx: IterationContext[S, T, E, P],
    *,
    key: Key,
) -> dict[str, Float[Array, ""]]:
    return check_metrics(callback, callback.metrics(ctx, key=key))


@final
class DiscoveryMetrics(dict[str, Float[Array, ""]]):
    """The ``ctx.metrics`` of the trace that finds which metrics the
    callbacks publish (before the training program is built): a name not
    published yet reads NaN, as it will in the first iteration, whoever
    publishes it."""

    def __missing__(self, name: str) -> Float[Array, ""]:
        return jnp.full((), jnp.nan, jnp.float32)


def with_published(
    metrics: Mapping[str, Float[Array, ""]],
    published: Mapping[str, Float[Array, ""]],
) -> dict[str, Float[Array, ""]]:
    """``metrics`` updated with ``published`` (keeping a
    ``DiscoveryMetrics`` one)."""
    merged = {**metrics, **published}
    if isinstance(metrics, DiscoveryMetrics):
        return DiscoveryMetrics(merged)
    return merged
