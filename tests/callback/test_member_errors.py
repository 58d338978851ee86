"""A CallbackStateError raised for a CallbackList member names its position
and class (two members of one class are told apart; nested lists give the
whole path), and is still raised while tracing."""

import re
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import pytest
from jaxtyping import Array, Bool, Int, PRNGKeyArray, Shaped
from typing_extensions import override

from lerax.algorithm import PPO
from lerax.callback import (
    AbstractCallback,
    CallbackList,
    CallbackStateError,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
    ResetContext,
    StepContext,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

from .factories import iteration_ctx, reset_ctx, step_ctx

KEY = jr.key(0)
ANNOTATION_MISMATCH = (
    "Counter.on_iteration returned a state whose field .n does not match its annotation"
)


@final
class Count(eqx.Module):
    n: Int[Array, ""]


@final
class Counter(AbstractCallback[Count, EmptyCallbackStepState]):
    """Counts iterations; with ``bad`` it returns the count as a float (a
    dtype mistake its validation catches)."""

    bad: bool = eqx.field(static=True, default=False)

    @override
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return Count(jnp.array(0, jnp.int32))

    @override
    def on_iteration(
        self, ctx: IterationContext[Count, EmptyCallbackStepState], *, key: PRNGKeyArray
    ) -> Count:
        n = ctx.state.n + 1
        return Count(n.astype(jnp.float32) if self.bad else n)


@final
class Steps(eqx.Module):
    n: Shaped[Array, "..."]  # any shape: the shape check, not the annotation, fires


@final
class StepCounter(AbstractCallback[EmptyCallbackState, Steps]):
    """Counts steps; with ``bad`` it returns a count of another shape."""

    bad: bool = eqx.field(static=True, default=False)

    @override
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Steps:
        return Steps(jnp.array(0, jnp.int32))

    @override
    def on_step(self, ctx: StepContext[Steps], *, key: PRNGKeyArray) -> Steps:
        n = ctx.state.n + 1
        return Steps(jnp.stack([n, n]) if self.bad else n)


@final
class NoReset(AbstractCallback[Count, EmptyCallbackStepState]):
    """Declares a state but never creates it."""


@final
class NotBool(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    @override
    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return jnp.array(1, jnp.int32)  # deliberate mistake: not a bool


def on_iteration(cb: CallbackList[Any, Any]) -> Any:
    """Reset ``cb`` and run one ``on_iteration`` through its validation."""
    state = cb.reset(reset_ctx(), key=KEY)
    step = cb.step_reset(reset_ctx(), key=KEY)
    return cb.on_iteration(iteration_ctx(state, step), key=KEY)


def test_second_of_two_same_class_members_is_named() -> None:
    cb = CallbackList(Counter(), Counter(bad=True))
    with pytest.raises(CallbackStateError) as info:
        on_iteration(cb)
    message = str(info.value)
    assert message.startswith(f"CallbackList member 1 (Counter): {ANNOTATION_MISMATCH}")
    assert message.endswith("got an array of shape () and dtype float32")
    assert info.value.member_path == (1,)
    assert info.value.member_class == "Counter"
    # the member's own error, without the prefix, is the cause
    cause = info.value.__cause__
    assert isinstance(cause, CallbackStateError)
    assert str(cause).startswith(ANNOTATION_MISMATCH)
    assert info.value.detail == str(cause)


def test_first_member_is_told_apart_from_the_second() -> None:
    with pytest.raises(
        CallbackStateError, match=r"^CallbackList member 0 \(Counter\): "
    ):
        on_iteration(CallbackList(Counter(bad=True), Counter()))


def test_nested_list_gives_the_full_path() -> None:
    cb = CallbackList(Counter(), Counter(), CallbackList(Counter(bad=True), Counter()))
    with pytest.raises(CallbackStateError) as info:
        on_iteration(cb)
    assert str(info.value).startswith(
        f"CallbackList member 2 > member 0 (Counter): {ANNOTATION_MISMATCH}"
    )
    assert info.value.member_path == (2, 0)
    # the inner list's error (one level) caused the outer one
    inner = info.value.__cause__
    assert isinstance(inner, CallbackStateError)
    assert str(inner).startswith(
        f"CallbackList member 0 (Counter): {ANNOTATION_MISMATCH}"
    )


def test_python_lists_are_flattened_before_counting() -> None:
    cb = CallbackList([Counter(), [Counter(), Counter(bad=True)]])
    with pytest.raises(
        CallbackStateError, match=r"^CallbackList member 2 \(Counter\): "
    ):
        on_iteration(cb)


def test_step_state_error_names_the_member() -> None:
    cb = CallbackList(StepCounter(), StepCounter(bad=True))
    states = cb.step_reset(reset_ctx(), key=KEY)
    with pytest.raises(
        CallbackStateError,
        match=(
            r"^CallbackList member 1 \(StepCounter\): StepCounter\.on_step returned "
            r"a step state whose leaf \.n has shape \(2,\) and dtype int32; expected "
            r"shape \(\) and dtype int32"
        ),
    ):
        cb.on_step(step_ctx(states), key=KEY)


def test_missing_reset_names_the_member() -> None:
    with pytest.raises(
        CallbackStateError,
        match=(
            r"^CallbackList member 1 \(NoReset\): NoReset declares the state type "
            r"Count but does not implement reset\(\)"
        ),
    ):
        CallbackList(Counter(), NoReset()).reset(reset_ctx(), key=KEY)


def test_continue_training_error_names_the_member() -> None:
    cb = CallbackList(NotBool(), NotBool())
    ctx = iteration_ctx(
        (EmptyCallbackState(), EmptyCallbackState()),
        (EmptyCallbackStepState(), EmptyCallbackStepState()),
    )
    with pytest.raises(
        CallbackStateError,
        match=(
            r"^CallbackList member 0 \(NotBool\): NotBool\.continue_training must "
            r"return a boolean scalar array"
        ),
    ):
        cb.continue_training(ctx, key=KEY)


def test_raised_under_jit_at_trace_time() -> None:
    cb = CallbackList(Counter(), Counter(bad=True))
    state = cb.reset(reset_ctx(), key=KEY)
    step = cb.step_reset(reset_ctx(), key=KEY)
    with pytest.raises(CallbackStateError, match=r"^CallbackList member 1 \(Counter\)"):
        eqx.filter_jit(lambda s: cb.on_iteration(iteration_ctx(s, step), key=KEY))(
            state
        )


def test_training_raises_it_while_tracing() -> None:
    """Through ``train`` with a list of callbacks: ``filter_eval_shape`` only
    traces (it neither compiles nor runs), so the error comes from tracing."""
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(1))
    algo = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)

    def run(key: PRNGKeyArray) -> object:
        return algo.train(
            env, policy, 32, key=key, callback=[Counter(), Counter(bad=True)]
        )

    with pytest.raises(
        CallbackStateError,
        match=r"^CallbackList member 1 \(Counter\): " + re.escape(ANNOTATION_MISMATCH),
    ):
        eqx.filter_eval_shape(run, jr.key(2))
