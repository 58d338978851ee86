"""Trace-time validation of the states hooks return."""

from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, Shaped

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
from lerax.callback.testing import (
    iteration_context,
    reset_context,
    run_hook,
    step_context,
)

from .callbacks import EpisodeCounter, EpisodeStepState
from .factories import ALGO, ENV, POLICY, reset_ctx, step_ctx

KEY = jr.key(0)


@final
class Count(eqx.Module):
    n: Int[Array, ""]


@final
class Loose(eqx.Module):
    n: Shaped[Array, "..."]


@final
class Pair(eqx.Module):
    a: Float[Array, " n"]
    b: Float[Array, " n"]


@final
class WrongType(AbstractCallback[Count, EmptyCallbackStepState]):
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return EmptyCallbackState()  # type: ignore[return-value]  # deliberate mistake


@final
class GrowingStep(AbstractCallback[EmptyCallbackState, Loose]):
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Loose:
        return Loose(jnp.array(0, jnp.int32))

    def on_step(self, ctx: StepContext[Loose], *, key: PRNGKeyArray) -> Loose:
        return Loose(jnp.stack([ctx.state.n, ctx.state.n]))  # shape () -> (2,)


@final
class FloatingStep(AbstractCallback[EmptyCallbackState, Count]):
    def step_reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return Count(jnp.array(0, jnp.int32))

    def on_step(self, ctx: StepContext[Count], *, key: PRNGKeyArray) -> Count:
        return Count(ctx.state.n.astype(jnp.float32) + ctx.reward)  # int32 -> float32


@final
class BadAnnotation(AbstractCallback[Count, EmptyCallbackStepState]):
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Count:
        return Count(jnp.array(0.5, jnp.float32))  # annotated Int[Array, ""]


@final
class BadDims(AbstractCallback[Pair, EmptyCallbackStepState]):
    def reset(self, ctx: ResetContext, *, key: PRNGKeyArray) -> Pair:
        return Pair(jnp.zeros(3, jnp.float32), jnp.zeros(4, jnp.float32))


@final
class NoReset(AbstractCallback[Count, EmptyCallbackStepState]):
    def on_iteration(
        self, ctx: IterationContext[Count, EmptyCallbackStepState], *, key: PRNGKeyArray
    ) -> Count:
        return ctx.state


@final
class NotBool(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState],
        *,
        key: PRNGKeyArray,
    ) -> Bool[Array, ""]:
        return jnp.array(1, jnp.int32)  # deliberate mistake: not a bool


def test_wrong_type_names_callback_hook_and_types() -> None:
    with pytest.raises(
        CallbackStateError,
        match=r"WrongType\.reset must return its declared state type Count, got a value of type EmptyCallbackState",
    ):
        CallbackList(WrongType()).reset(reset_ctx(), key=KEY)


def test_shape_change_names_leaf_and_expected() -> None:
    state = Loose(jnp.array(0, jnp.int32))
    ctx = step_context(ENV, POLICY, ALGO, key=KEY, state=(state,))
    with pytest.raises(
        CallbackStateError,
        match=r"GrowingStep\.on_step returned a step state whose leaf \.n has shape \(2,\) and dtype int32; expected shape \(\) and dtype int32 as created by step_reset",
    ):
        run_hook(CallbackList(GrowingStep()), "on_step", ctx, key=KEY)


def test_dtype_change_is_caught_under_jit_at_trace_time() -> None:
    state = Count(jnp.array(0, jnp.int32))
    cb = CallbackList(FloatingStep())
    ctx = step_context(ENV, POLICY, ALGO, key=KEY, state=(state,))
    with pytest.raises(
        CallbackStateError,
        match=r"FloatingStep\.on_step .*field \.n does not match its annotation",
    ):
        run_hook(cb, "on_step", ctx, key=KEY, jit=True)


def test_jaxtyping_annotation_of_a_field_is_enforced() -> None:
    with pytest.raises(
        CallbackStateError,
        match=r"BadAnnotation\.reset returned a state whose field \.n does not match its annotation",
    ):
        CallbackList(BadAnnotation()).reset(reset_ctx(), key=KEY)


def test_named_dimensions_must_agree_across_fields() -> None:
    with pytest.raises(CallbackStateError, match=r"BadDims\.reset .*field \.b"):
        CallbackList(BadDims()).reset(reset_ctx(), key=KEY)


def test_missing_reset_for_declared_state() -> None:
    with pytest.raises(
        CallbackStateError,
        match=r"NoReset declares the state type Count but does not implement reset\(\)",
    ):
        NoReset().reset(reset_ctx(), key=KEY)


def test_empty_states_need_no_reset() -> None:
    cb = NotBool()
    assert isinstance(cb.reset(reset_ctx(), key=KEY), EmptyCallbackState)
    assert isinstance(cb.step_reset(reset_ctx(), key=KEY), EmptyCallbackStepState)


def test_continue_training_must_be_bool_scalar() -> None:
    ctx = iteration_context(
        ENV,
        POLICY,
        ALGO,
        key=KEY,
        state=(EmptyCallbackState(),),
        step_state=(EmptyCallbackStepState(),),
    )
    with pytest.raises(
        CallbackStateError,
        match=r"NotBool\.continue_training must return a boolean scalar array",
    ):
        run_hook(CallbackList(NotBool()), "continue_training", ctx, key=KEY)


def test_valid_callback_passes_and_structure_is_kept() -> None:
    cb = CallbackList(EpisodeCounter())
    reset = reset_context(ENV, POLICY, ALGO, key=KEY)
    (step,) = run_hook(cb, "step_reset", reset, key=KEY)
    ctx = step_context(
        ENV, POLICY, ALGO, key=KEY, state=(step,), reward=2.0, terminated=True
    )
    (out,) = run_hook(cb, "on_step", ctx, key=KEY)
    assert isinstance(out, EpisodeStepState)
    assert int(out.episodes) == 1 and float(out.last_return) == 2.0


def test_validation_adds_nothing_to_the_compiled_program() -> None:
    """The validated hook (through CallbackList) lowers to exactly the jaxpr of
    the bare hook given the same key."""
    cb = EpisodeCounter()
    step = cb.step_reset(reset_ctx(), key=KEY)

    def bare(s: EpisodeStepState) -> EpisodeStepState:
        ctx = step_ctx(s)
        (member_key,) = list(jr.split(KEY, 1))  # as CallbackList derives it
        return cb.on_step(ctx, key=member_key)

    def checked(s: EpisodeStepState) -> EpisodeStepState:
        (out,) = CallbackList(cb).on_step(step_ctx((s,)), key=KEY)
        return out

    assert str(jax.make_jaxpr(checked)(step)) == str(jax.make_jaxpr(bare)(step))
