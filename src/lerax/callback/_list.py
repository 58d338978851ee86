"""CallbackList: run several callbacks as one."""

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import (
    Any,
    Generic,
    Protocol,
    TypeAlias,
    cast,
    final,
    overload,
    runtime_checkable,
)

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int
from typing_extensions import TypeVar, override

from .._custom_types import Key
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from ._base import AbstractCallback, declared_type_arguments
from ._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
)
from ._errors import CallbackStateError, in_member
from ._invoke import (
    call_continue_training,
    call_metrics,
    call_on_iteration,
    call_on_rollout,
    call_on_step,
    call_on_training_end,
    call_on_training_start,
    call_reset,
    call_step_reset,
    with_published,
)
from ._types import EnvT, PolicyT, TrainStateSaver

S1 = TypeVar("S1")
S2 = TypeVar("S2")
S3 = TypeVar("S3")
S4 = TypeVar("S4")
S5 = TypeVar("S5")
S6 = TypeVar("S6")
S7 = TypeVar("S7")
S8 = TypeVar("S8")
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")
T7 = TypeVar("T7")
T8 = TypeVar("T8")
E = TypeVar("E", bound=AbstractEnv[Any, Any, Any], default=AbstractEnv[Any, Any, Any])
P = TypeVar("P", bound=AbstractPolicy[Any, Any], default=AbstractPolicy[Any, Any])
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
ListStateT = TypeVar("ListStateT", bound=tuple[object, ...])
ListStepStateT = TypeVar("ListStepStateT", bound=tuple[object, ...])

AnyCallback: TypeAlias = AbstractCallback[Any, Any, Any, Any]
CallbackSequence: TypeAlias = Sequence[AnyCallback | Sequence[AnyCallback]]
CallbackLike: TypeAlias = AnyCallback | CallbackSequence
"""A callback or a sequence of callbacks (lists may nest; static checkers see
two levels)."""


@final
class CallbackList(
    AbstractCallback[ListStateT, ListStepStateT, EnvT, PolicyT],
    Generic[ListStateT, ListStepStateT, EnvT, PolicyT],
):
    """Run several callbacks as one, in order.

    Its state is the tuple of its members' states and its step state the tuple
    of their step states, in member order; static type checkers infer both
    (for up to eight members passed as separate arguments, nested lists
    included; with more members, or from one Python list, they are
    ``tuple[Any, ...]``). Every hook is
    forwarded to each member with its own slice of the state and its own key;
    ``continue_training`` is the logical AND of the members'. A Python list
    (``CallbackList([a, b])``) is accepted too, and nested lists are flattened.
    Each member's returned states are validated like a top-level callback's;
    a [`CallbackStateError`][lerax.errors.CallbackStateError] for a member
    names its position and class (``CallbackList member 1 (Counter): ...``),
    and for a member of a nested ``CallbackList`` the position in each list
    (``member 2 > member 0``).
    """

    callbacks: tuple[AnyCallback, ...]

    @overload
    def __init__(
        self: "CallbackList[tuple[S1], tuple[T1], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2], tuple[T1, T2], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2, S3], tuple[T1, T2, T3], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        c3: AbstractCallback[S3, T3, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2, S3, S4], tuple[T1, T2, T3, T4], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        c3: AbstractCallback[S3, T3, E, P],
        c4: AbstractCallback[S4, T4, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2, S3, S4, S5], tuple[T1, T2, T3, T4, T5], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        c3: AbstractCallback[S3, T3, E, P],
        c4: AbstractCallback[S4, T4, E, P],
        c5: AbstractCallback[S5, T5, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2, S3, S4, S5, S6], tuple[T1, T2, T3, T4, T5, T6], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        c3: AbstractCallback[S3, T3, E, P],
        c4: AbstractCallback[S4, T4, E, P],
        c5: AbstractCallback[S5, T5, E, P],
        c6: AbstractCallback[S6, T6, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2, S3, S4, S5, S6, S7], tuple[T1, T2, T3, T4, T5, T6, T7], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        c3: AbstractCallback[S3, T3, E, P],
        c4: AbstractCallback[S4, T4, E, P],
        c5: AbstractCallback[S5, T5, E, P],
        c6: AbstractCallback[S6, T6, E, P],
        c7: AbstractCallback[S7, T7, E, P],
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[S1, S2, S3, S4, S5, S6, S7, S8], tuple[T1, T2, T3, T4, T5, T6, T7, T8], E, P]",
        c1: AbstractCallback[S1, T1, E, P],
        c2: AbstractCallback[S2, T2, E, P],
        c3: AbstractCallback[S3, T3, E, P],
        c4: AbstractCallback[S4, T4, E, P],
        c5: AbstractCallback[S5, T5, E, P],
        c6: AbstractCallback[S6, T6, E, P],
        c7: AbstractCallback[S7, T7, E, P],
        c8: AbstractCallback[S8, T8, E, P],
        /,
    ) -> None: ...

    # The untyped forms never take one to eight plain callbacks, which the
    # overloads above type precisely: an overlap would make mypy fall back to
    # Any for an argument whose type holds Any (a nested CallbackList's).
    @overload
    def __init__(
        self: "CallbackList[tuple[Any, ...], tuple[Any, ...], E, P]",
        callbacks: CallbackSequence,
        /,
    ) -> None: ...

    @overload
    def __init__(
        self: "CallbackList[tuple[Any, ...], tuple[Any, ...], E, P]",
        c1: CallbackLike,
        c2: CallbackLike,
        c3: CallbackLike,
        c4: CallbackLike,
        c5: CallbackLike,
        c6: CallbackLike,
        c7: CallbackLike,
        c8: CallbackLike,
        c9: CallbackLike,
        /,
        *more: CallbackLike,
    ) -> None: ...

    def __init__(self, *callbacks: CallbackLike) -> None:
        flat = _flatten(callbacks)
        if not flat:
            raise ValueError(
                "CallbackList needs at least one callback, got none; use "
                "EmptyCallback() for a no-op"
            )
        self.callbacks = tuple(flat)

    def _keys(self, key: Key) -> list[Key]:
        return list(jr.split(key, len(self.callbacks)))

    def _each(self, call: "_MemberHook[R]", ctx: "CtxT", key: Key) -> list[R]:
        """Call one validated hook of every member on its own slice of ``ctx``."""
        return [
            _call_member(call, i, cb, _member(ctx, i), k)
            for i, (cb, k) in enumerate(
                zip(self.callbacks, self._keys(key), strict=True)
            )
        ]

    @override
    def reset(self, ctx: ResetContext[EnvT, PolicyT], *, key: Key) -> ListStateT:
        states = tuple(
            _call_member(call_reset, i, cb, ctx, k)
            for i, (cb, k) in enumerate(
                zip(self.callbacks, self._keys(key), strict=True)
            )
        )
        return cast(ListStateT, states)

    @override
    def step_reset(
        self, ctx: ResetContext[EnvT, PolicyT], *, key: Key
    ) -> ListStepStateT:
        states = tuple(
            _call_member(call_step_reset, i, cb, ctx, k)
            for i, (cb, k) in enumerate(
                zip(self.callbacks, self._keys(key), strict=True)
            )
        )
        return cast(ListStepStateT, states)

    def _each_step_state(
        self,
        call: "_MemberHook[object]",
        ctx: StepContext[ListStepStateT, EnvT, PolicyT]
        | RolloutContext[ListStepStateT, EnvT, PolicyT],
        key: Key,
    ) -> ListStepStateT:
        """Call a hook that updates step states (``on_step``, ``on_rollout``)
        of every member, with its own step state in ``ctx.state``."""
        states = tuple(
            _call_member(call, i, cb, eqx.tree_at(lambda c: c.state, ctx, s), k)
            for i, (cb, s, k) in enumerate(
                zip(self.callbacks, ctx.state, self._keys(key), strict=True)
            )
        )
        return cast(ListStepStateT, states)

    @override
    def on_step(
        self, ctx: StepContext[ListStepStateT, EnvT, PolicyT], *, key: Key
    ) -> ListStepStateT:
        return self._each_step_state(call_on_step, ctx, key)

    @override
    def on_rollout(
        self, ctx: RolloutContext[ListStepStateT, EnvT, PolicyT], *, key: Key
    ) -> ListStepStateT:
        return self._each_step_state(call_on_rollout, ctx, key)

    @override
    def on_iteration(
        self,
        ctx: IterationContext[ListStateT, ListStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> ListStateT:
        return cast(ListStateT, tuple(self._each(call_on_iteration, ctx, key)))

    @override
    def metrics(
        self,
        ctx: IterationContext[ListStateT, ListStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> Mapping[str, Float[Array, ""]]:
        """What the members publish, each called on its own slice of ``ctx``.
        (The training loop instead calls each member's ``on_iteration`` and
        ``metrics`` in turn, so that a member sees what the members before it
        published this iteration.)"""
        published: dict[str, Float[Array, ""]] = {}
        owners: dict[str, int] = {}
        for i, values in enumerate(self._each(call_metrics, ctx, key)):
            _add_published(published, owners, values, i, self.callbacks)
        return published

    def _iterate(
        self,
        ctx: IterationContext[ListStateT, ListStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> tuple[ListStateT, dict[str, Float[Array, ""]]]:
        """Each member's ``on_iteration`` then ``metrics``, in order, each
        member seeing in ``ctx.metrics`` what the members before it published
        this iteration. Member ``i``'s ``on_iteration`` key is the one
        ``on_iteration`` gives it."""
        metrics: Mapping[str, Float[Array, ""]] = ctx.metrics
        published: dict[str, Float[Array, ""]] = {}
        owners: dict[str, int] = {}
        states = []
        for i, (cb, k) in enumerate(zip(self.callbacks, self._keys(key), strict=True)):
            member = dataclasses.replace(_member(ctx, i), metrics=metrics)
            state, values = _call_member(call_iteration, i, cb, member, k)
            _add_published(published, owners, values, i, self.callbacks)
            metrics = with_published(metrics, values)
            states.append(state)
        return cast(ListStateT, tuple(states)), published

    @override
    def reads_training_log(self) -> bool:
        """Whether any member reads the training log."""
        return any(cb.reads_training_log() for cb in self.callbacks)

    @override
    def host_ids(self) -> tuple[Int[Array, ""], ...]:
        """Every member's host ids, in order."""
        return tuple(i for cb in self.callbacks for i in cb.host_ids())

    @override
    def train_state_savers(self) -> tuple[TrainStateSaver, ...]:
        """Every member's savers, in order."""
        return tuple(s for cb in self.callbacks for s in cb.train_state_savers())

    @override
    def continue_training(
        self,
        ctx: IterationContext[ListStateT, ListStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> Bool[Array, ""]:
        flags = self._each(call_continue_training, ctx, key)
        return jnp.all(jnp.stack(flags))

    @override
    def on_training_start(
        self,
        ctx: TrainingContext[ListStateT, ListStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> ListStateT:
        return cast(ListStateT, tuple(self._each(call_on_training_start, ctx, key)))

    @override
    def on_training_end(
        self,
        ctx: TrainingContext[ListStateT, ListStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> ListStateT:
        return cast(ListStateT, tuple(self._each(call_on_training_end, ctx, key)))


CtxT = TypeVar(
    "CtxT", IterationContext[Any, Any, Any, Any], TrainingContext[Any, Any, Any, Any]
)


@runtime_checkable  # so that the runtime type checker can check an argument
class _MemberHook(Protocol[R_co]):
    """A validated hook call of ``_invoke`` (``call_on_iteration``, ...)."""

    def __call__(self, callback: AnyCallback, ctx: Any, *, key: Key) -> R_co: ...


def _call_member(
    call: _MemberHook[R], index: int, callback: AnyCallback, ctx: Any, key: Key
) -> R:
    """``call`` (a validated hook call) for member ``index``: a
    [`CallbackStateError`][lerax.errors.CallbackStateError] it raises is raised
    again naming the member's position and class, with the original as its
    cause, so two members of one class are told apart."""
    try:
        return call(callback, ctx, key=key)
    except CallbackStateError as err:
        raise in_member(err, index, callback) from err


def call_iteration(
    callback: AnyCallback, ctx: IterationContext[Any, Any, Any, Any], *, key: Key
) -> tuple[Any, dict[str, Float[Array, ""]]]:
    """What the training loop calls after each update: validated
    ``on_iteration`` (key ``key``), then validated ``metrics`` on the context
    with the new state (key ``jr.fold_in(key, 1)``); a ``CallbackList`` does so
    member by member. Returns the new state and the published metrics."""
    if isinstance(callback, CallbackList):
        return callback._iterate(ctx, key=key)  # noqa: SLF001  # the list's own dispatch
    state = call_on_iteration(callback, ctx, key=key)
    after = dataclasses.replace(ctx, state=state)
    return state, call_metrics(callback, after, key=jr.fold_in(key, 1))


def check_declared_types(
    callback: AbstractCallback[Any, Any, Any, Any], env: object, policy: object
) -> None:
    """Raise ``TypeError`` if ``callback`` declares an environment or policy
    type (its third or fourth type argument) that ``env`` or ``policy`` is
    not: its hooks would read fields the training's environment lacks. A
    ``CallbackList`` checks each member, naming its position."""
    if isinstance(callback, CallbackList):
        for index, member in enumerate(callback.callbacks):
            try:
                check_declared_types(member, env, policy)
            except TypeError as error:
                raise TypeError(f"CallbackList member {index}: {error}") from error
        return
    _, _, env_t, policy_t = declared_type_arguments(type(callback))
    for roles, one, value, declared, position in (
        ("environments", "an environment", env, env_t, "third"),
        ("policies", "a policy", policy, policy_t, "fourth"),
    ):
        cls = typing.get_origin(declared) or declared
        if cls is Any:  # a class on Python 3.11+, but not one to check against
            continue
        if isinstance(cls, type) and not isinstance(value, cls):
            raise TypeError(
                f"{type(callback).__qualname__} is declared for {roles} of type "
                f"{cls.__qualname__} (its {position} type argument), but training "
                f"uses {one} of type {type(value).__qualname__}; train it on one, "
                "or declare a type that both are"
            )


def _add_published(
    published: dict[str, Float[Array, ""]],
    owners: dict[str, int],
    values: Mapping[str, Float[Array, ""]],
    index: int,
    members: Sequence[AnyCallback],
) -> None:
    """Add member ``index``'s ``values`` to ``published``; a name another
    member already published is a ``CallbackStateError`` naming both."""
    for name, value in values.items():
        if name in owners:
            first = owners[name]
            raise CallbackStateError(
                f"CallbackList members {first} ({type(members[first]).__qualname__}) "
                f"and {index} ({type(members[index]).__qualname__}) both publish the "
                f"metric {name!r}; metric names are shared by all callbacks: give "
                "one of them another name"
            )
        owners[name] = index
        published[name] = value


def _member(ctx: CtxT, i: int) -> CtxT:
    """The context member ``i`` sees: its own state and step state."""
    member = eqx.tree_at(
        lambda c: (c.state, c.step_state), ctx, (ctx.state[i], ctx.step_state[i])
    )
    return cast(CtxT, member)


def _flatten(items: Sequence[object]) -> list[AnyCallback]:
    flat: list[AnyCallback] = []
    for item in items:
        if isinstance(item, AbstractCallback):
            flat.append(item)
        elif isinstance(item, list | tuple):
            flat.extend(_flatten(item))
        else:
            raise TypeError(
                "CallbackList members must be callbacks (AbstractCallback "
                f"instances) or lists of them, got {item!r} of type "
                f"{type(item).__qualname__}"
            )
    return flat
