"""Validated hook calls: how the training loop and ``CallbackList`` call hooks.

Each function calls one hook and checks what it returned (see
``_validation``), at trace time only.
"""

from typing import Any, TypeVar

from jaxtyping import Array, Bool

from .._custom_types import Key
from ._base import AbstractCallback
from ._context import IterationContext, ResetContext, StepContext, TrainingContext
from ._validation import check_continue, check_state

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
