"""The abstract callback and the empty states."""

import functools
import typing
from collections.abc import Mapping
from typing import Any, Generic, Literal, TypeVar, cast, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int
from typing_extensions import override

from .._custom_types import Key
from ._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
)
from ._errors import CallbackStateError
from ._hooks import check_hook_names
from ._types import EnvT, PolicyT, StateT, StepStateT, TrainStateSaver


@final
class EmptyCallbackState(eqx.Module):
    """The state of a callback that keeps no iteration-level state."""


@final
class EmptyCallbackStepState(eqx.Module):
    """The step state of a callback that keeps no per-environment state."""


class AbstractCallback(eqx.Module, Generic[StateT, StepStateT, EnvT, PolicyT]):
    """Base class of all callbacks.

    A callback is an immutable Equinox module whose hooks are pure functions
    called from inside the compiled training loop. It declares two state types
    as type arguments:

    - ``StateT``: iteration-level state, created by
      [`reset`][lerax.callback.AbstractCallback.reset], updated by
      [`on_training_start`][lerax.callback.AbstractCallback.on_training_start],
      [`on_iteration`][lerax.callback.AbstractCallback.on_iteration] and
      [`on_training_end`][lerax.callback.AbstractCallback.on_training_end];
    - ``StepStateT``: per-environment state, created by
      [`step_reset`][lerax.callback.AbstractCallback.step_reset] for each parallel
      environment and updated by [`on_step`][lerax.callback.AbstractCallback.on_step]
      after each of that environment's steps, or by
      [`on_rollout`][lerax.callback.AbstractCallback.on_rollout] once per
      iteration from the whole rollout (all environments at once). It persists
      across rollouts, so episode statistics can span rollout boundaries.
      [`IterationContext`][lerax.callback.IterationContext] shows the step states of all
      environments stacked on a leading ``num_envs`` axis.

    Two further type arguments, ``EnvT`` and ``PolicyT``, default to the
    abstract environment and policy; set them when a callback needs a specific
    environment's fields (``ctx.env.gravity``).

    Subclasses implement some or all hooks. A hook that is not implemented
    keeps the state unchanged, and
    [`continue_training`][lerax.callback.AbstractCallback.continue_training] defaults to
    true. A callback whose declared state (or step state) is
    [`EmptyCallbackState`][lerax.callback.EmptyCallbackState]
    ([`EmptyCallbackStepState`][lerax.callback.EmptyCallbackStepState]) needs no
    [`reset`][lerax.callback.AbstractCallback.reset]
    ([`step_reset`][lerax.callback.AbstractCallback.step_reset]); one that declares
    another state type must implement the hook that creates it, or
    [`CallbackStateError`][lerax.callback.CallbackStateError] is raised when training is
    traced. These identity defaults are the one deliberate exception in Lerax to
    "override only abstract members": they are the documented contract of this class.

    Every hook's return value is validated while tracing (never at run time):
    it must have the declared type, satisfy the jaxtyping annotations of its
    fields, and keep exactly the pytree structure, shapes and dtypes that
    [`reset`][lerax.callback.AbstractCallback.reset] /
    [`step_reset`][lerax.callback.AbstractCallback.step_reset] produced.

    A public method whose name starts with ``on_`` or is close to a hook's
    (``on_steps``, ``continue_trainig``) but is not a hook raises ``TypeError``
    when the class is defined, naming the closest hook, since the loop would
    never call it; [`not_a_hook`][lerax.callback.not_a_hook] exempts a method on
    purpose. Mark hooks with ``@override`` (``typing_extensions``) as well, so
    that mypy (``enable_error_code = explicit-override``) and pyright check them
    too.

    Hooks draw randomness only from their ``key``; the training loop gives
    callbacks a key stream of their own, so adding a callback never changes
    what is learned.
    """

    @override
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Reject a public method that looks like a misspelt hook (it would
        never be called): see [`not_a_hook`][lerax.callback.not_a_hook]."""
        super().__init_subclass__(**kwargs)
        check_hook_names(cls)

    def reset(self, ctx: ResetContext[EnvT, PolicyT], *, key: Key) -> StateT:
        """Create the iteration-level state, once before training.

        Defaults to [`EmptyCallbackState`][lerax.callback.EmptyCallbackState] for
        callbacks that declare it.
        """
        return cast(StateT, default_initial_state(self, "reset"))

    def step_reset(self, ctx: ResetContext[EnvT, PolicyT], *, key: Key) -> StepStateT:
        """Create one environment's step state, once per parallel environment.

        Defaults to [`EmptyCallbackStepState`][lerax.callback.EmptyCallbackStepState]
        for callbacks that declare it.
        """
        return cast(StepStateT, default_initial_state(self, "step_reset"))

    def on_step(
        self, ctx: StepContext[StepStateT, EnvT, PolicyT], *, key: Key
    ) -> StepStateT:
        """Update one environment's step state after each of its steps.

        ``ctx`` holds that environment's transition (raw reward, terminated,
        truncated). Defaults to returning ``ctx.state``.
        """
        return ctx.state

    def on_rollout(
        self, ctx: RolloutContext[StepStateT, EnvT, PolicyT], *, key: Key
    ) -> StepStateT:
        """Update every environment's step state from the iteration's whole
        rollout, once per iteration, after the rollout's ``on_step`` calls and
        before the update.

        ``ctx.state`` holds the step states of all environments (leading axis
        ``num_envs``), ``ctx.rewards``, ``ctx.terminated`` and
        ``ctx.truncated`` the rollout's transitions (leading axes
        ``(num_steps, num_envs)``). What depends only on the transitions
        (episode returns, lengths, counts) is cheaper here than in
        ``on_step``: one vectorised computation per iteration instead of
        a few small kernels per environment step. Defaults to returning
        ``ctx.state``.
        """
        return ctx.state

    def on_iteration(
        self, ctx: IterationContext[StateT, StepStateT, EnvT, PolicyT], *, key: Key
    ) -> StateT:
        """Update the state after each training iteration (rollout + update).

        Defaults to returning ``ctx.state``.
        """
        return ctx.state

    def metrics(
        self, ctx: IterationContext[StateT, StepStateT, EnvT, PolicyT], *, key: Key
    ) -> Mapping[str, Float[Array, ""]]:
        """Named scalars to publish to the other callbacks, after each
        iteration's [`on_iteration`][lerax.callback.AbstractCallback.on_iteration]
        (``ctx.state`` is the state it returned).

        Every callback's ``ctx.metrics`` shows them (in a ``CallbackList``, the
        members after this one see them this iteration, the others from the
        next), ``continue_training`` sees this iteration's, and
        [`LoggingCallback`][lerax.callback.LoggingCallback] logs them. Return
        the same names every iteration, each a float32 scalar (a value kept in
        the state, such as the last evaluation's return, is published again);
        names are shared by all callbacks, so prefix them (``eval/...``). A name
        no callback has published yet reads NaN. Defaults to publishing
        nothing.
        """
        return {}

    def continue_training(
        self, ctx: IterationContext[StateT, StepStateT, EnvT, PolicyT], *, key: Key
    ) -> Bool[Array, ""]:
        """Whether training goes on, evaluated after
        [`on_iteration`][lerax.callback.AbstractCallback.on_iteration] with the state it
        returned. A false value stops training: the remaining iterations do nothing.
        Defaults to ``True``.
        """
        return jnp.array(True)

    def on_training_start(
        self, ctx: TrainingContext[StateT, StepStateT, EnvT, PolicyT], *, key: Key
    ) -> StateT:
        """Update the state once training starts (after
        [`reset`][lerax.callback.AbstractCallback.reset]).

        Defaults to returning ``ctx.state``.
        """
        return ctx.state

    def on_training_end(
        self, ctx: TrainingContext[StateT, StepStateT, EnvT, PolicyT], *, key: Key
    ) -> StateT:
        """Update the state once training ends, early stop included.

        Defaults to returning ``ctx.state``.
        """
        return ctx.state

    def train_state_savers(self) -> tuple[TrainStateSaver, ...]:
        """What saves the training loop's whole state from inside the program
        (see [`TrainStateSaver`][lerax.callback.TrainStateSaver]): a checkpoint
        callback returns itself, a wrapper or list its members'. Not a hook.
        Defaults to none."""
        return ()

    def reads_training_log(self) -> bool:
        """Whether a hook of this callback reads ``ctx.training_log``. Not a
        hook. Defaults to ``True``.

        The training loop has the algorithm compute its training log only
        when some callback reads it: the statistics (losses computed again,
        explained variance, learning rates) cost a few kernels per
        iteration, which shows in algorithms with short iterations (A2C's).
        A callback that returns ``False`` sees an empty ``training_log``
        when no other callback reads it, so a hook that reads it anyway
        fails while tracing (``KeyError``) rather than reading stale
        numbers."""
        return True

    def host_ids(self) -> tuple[Int[Array, ""], ...]:
        """The ids of the host-side objects (writers, displays) this
        callback's host calls go through, as Lerax's logging callbacks keep
        them. When the callback stops a run, the training loop asks the host
        whether one of them failed, to report why; a failure also makes an
        eager ``train`` raise. Not a hook. Defaults to none."""
        return ()


@functools.cache
def declared_state_types(cls: type) -> tuple[object, object]:
    """The ``(StateT, StepStateT)`` a callback class declares.

    Resolved from the generic bases, through intermediate generic classes.
    An entry that is still a type variable (a generic callback such as
    [`CallbackList`][lerax.callback.CallbackList]) means "not declared".
    """
    return declared_type_arguments(cls)[:2]


@functools.cache
def declared_type_arguments(cls: type) -> tuple[object, object, object, object]:
    """The ``(StateT, StepStateT, EnvT, PolicyT)`` a callback class declares
    (a type variable where it declares none)."""
    found = _resolve_callback_args(cls, {})
    if found is None:  # AbstractCallback itself, or a non-generic subclass
        return (StateT, StepStateT, EnvT, PolicyT)
    return found


def _resolve_callback_args(
    cls: type, subst: dict[object, object]
) -> tuple[object, object, object, object] | None:
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = typing.get_origin(base) or base
        args = tuple(
            subst.get(a, a) if isinstance(a, TypeVar) else a
            for a in typing.get_args(base)
        )
        if origin is AbstractCallback:
            padded = args + (StateT, StepStateT, EnvT, PolicyT)[len(args) :]
            return (padded[0], padded[1], padded[2], padded[3])
        if isinstance(origin, type) and issubclass(origin, AbstractCallback):
            params = getattr(origin, "__parameters__", ())
            found = _resolve_callback_args(
                origin, dict(zip(params, args, strict=False))
            )
            if found is not None:
                return found
    for base in cls.__bases__:
        if base is not AbstractCallback and issubclass(base, AbstractCallback):
            found = _resolve_callback_args(base, {})
            if found is not None:
                return found
    return None


def default_initial_state(
    callback: AbstractCallback[Any, Any, Any, Any],
    hook: Literal["reset", "step_reset"],
) -> EmptyCallbackState | EmptyCallbackStepState:
    """What an unimplemented ``reset``/``step_reset`` returns: the empty state
    when the callback declares it, else a
    [`CallbackStateError`][lerax.callback.CallbackStateError]."""
    cls = type(callback)
    state_t, step_state_t = declared_state_types(cls)
    declared = state_t if hook == "reset" else step_state_t
    empty = EmptyCallbackState if hook == "reset" else EmptyCallbackStepState
    if declared is empty or isinstance(declared, TypeVar):
        return empty()
    kind = "state" if hook == "reset" else "step state"
    raise CallbackStateError(
        f"{cls.__qualname__} declares the {kind} type {_type_name(declared)} but "
        f"does not implement {hook}(), which must create it. Implement "
        f"{hook}(self, ctx, *, key) -> {_type_name(declared)}, or declare "
        f"{empty.__name__} if the callback keeps no {kind}."
    )


def _type_name(t: object) -> str:
    return t.__qualname__ if isinstance(t, type) else repr(t)
