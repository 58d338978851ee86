"""EveryN: run a callback's iteration hooks only every so many environment
steps."""

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int
from typing_extensions import TypeVar, override

from ..._custom_types import Key
from .._base import AbstractCallback
from .._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
)
from .._discovery import published_names
from .._errors import CallbackStateError
from .._invoke import (
    call_continue_training,
    call_on_rollout,
    call_on_step,
    call_on_training_end,
    call_on_training_start,
    call_reset,
    call_step_reset,
)
from .._list import call_iteration, check_declared_types
from .._types import AlgorithmInfo, EnvT, PolicyT, TrainStateSaver
from ._gate import (
    end_iteration_context,
    for_runs,
    is_due,
    iterations_between,
    positive_int,
    stopped_after_last_firing,
    training_with_state,
    with_state,
)

InnerStateT = TypeVar("InnerStateT")
"""The wrapped callback's state type."""
InnerStepStateT = TypeVar("InnerStepStateT")
"""The wrapped callback's step state type."""


@final
class EveryNState(eqx.Module, Generic[InnerStateT]):
    """The state of [`EveryN`][lerax.callback.control.EveryN].

    Attributes:
        state: the wrapped callback's state.
        last_iteration: the iteration at which the wrapped callback last fired
            (0 before it first fires).
        metrics: what the wrapped callback published when it last fired (NaN
            before it first fires), published again at every iteration.
    """

    state: InnerStateT
    last_iteration: Int[Array, ""]
    metrics: dict[str, Float[Array, ""]]


@final
class EveryN(
    AbstractCallback[EveryNState[InnerStateT], InnerStepStateT, EnvT, PolicyT],
    Generic[InnerStateT, InnerStepStateT, EnvT, PolicyT],
):
    """Run a callback's iteration hooks (``on_iteration`` and ``metrics``)
    only every ``every`` environment steps, and at the last iteration.

    ``every`` counts environment steps over all environments, like
    Stable-Baselines3's ``eval_freq``: the callback fires after every
    [`iterations_between`][lerax.callback.control.EveryN.iterations_between]
    ``= max(1, ceil(every / steps_per_iteration))`` iterations and after the
    run's last iteration. A run that stops early (another callback's
    ``continue_training``, Ctrl-C) between two firings fires once more in
    ``on_training_end``, on its final iteration (a context rebuilt from the
    training context), so the wrapped callback always sees the run's end.

    Every other hook (``reset``, ``step_reset``, ``on_step``, ``on_rollout``,
    ``on_training_start``, ``continue_training``, ``on_training_end``) and
    [`host_ids`][lerax.callback.AbstractCallback.host_ids] go to the wrapped
    callback every time. Its state is kept in
    [`EveryNState`][lerax.callback.control.EveryNState], whose type wraps the
    wrapped callback's (static checkers infer ``EveryN[S, T, ...]`` from the
    callback). The metrics it publishes are published at every iteration with
    their values from its last firing (NaN before the first), since the loop
    needs the same names every iteration; the final firing in
    ``on_training_end`` updates only the state (``TrainResult.metrics`` keeps
    what was published in the loop).

    Under ``eqx.filter_vmap`` over runs, the wrapped hooks run only in
    iterations where some active run is due (one branch for all runs, never
    a select that would run them every iteration), their results are kept
    only for the runs that are due, and the wrapped callback's ``ctx.active``
    is false for the others, so its host calls (gated on ``ctx.active``, as
    every callback's should be) happen once per firing of each run.

    Args:
        callback: the callback to run periodically (a ``CallbackList`` too).
        every: environment steps between firings, over all environments, a
            positive int.

    Raises:
        TypeError: ``callback`` is not a callback or ``every`` not an int.
        ValueError: ``every`` is not positive.
    """

    callback: AbstractCallback[Any, Any, Any, Any]
    every: int = eqx.field(static=True)

    def __init__(
        self,
        callback: AbstractCallback[InnerStateT, InnerStepStateT, EnvT, PolicyT],
        *,
        every: int,
    ) -> None:
        if not isinstance(callback, AbstractCallback):
            raise TypeError(
                "EveryN: callback must be a callback (an AbstractCallback "
                f"instance), got callback={callback!r} of type "
                f"{type(callback).__qualname__}"
            )
        self.callback = callback
        self.every = positive_int("EveryN", "every", every, "environment steps")

    def iterations_between(self, algorithm: AlgorithmInfo) -> int:
        """``every`` environment steps in whole iterations of ``algorithm``,
        rounded up (at least one)."""
        return iterations_between(self.every, algorithm.steps_per_iteration)

    @override
    def reset(
        self, ctx: ResetContext[EnvT, PolicyT], *, key: Key
    ) -> EveryNState[InnerStateT]:
        """The wrapped callback's state, and NaN for each metric it publishes
        (found by tracing its hooks, as the training loop finds names)."""
        check_declared_types(self.callback, ctx.env, ctx.policy)
        k_reset, k_names = jr.split(key)
        state: InnerStateT = call_reset(self.callback, ctx, key=k_reset)
        names = published_names(self.callback, ctx, key=k_names)
        nan = jnp.full((), jnp.nan, jnp.float32)
        return EveryNState(state, jnp.zeros((), jnp.int32), dict.fromkeys(names, nan))

    @override
    def step_reset(
        self, ctx: ResetContext[EnvT, PolicyT], *, key: Key
    ) -> InnerStepStateT:
        """The wrapped callback's step state."""
        step_state: InnerStepStateT = call_step_reset(self.callback, ctx, key=key)
        return step_state

    @override
    def on_step(
        self, ctx: StepContext[InnerStepStateT, EnvT, PolicyT], *, key: Key
    ) -> InnerStepStateT:
        """The wrapped callback's ``on_step``, at every step."""
        step_state: InnerStepStateT = call_on_step(self.callback, ctx, key=key)
        return step_state

    @override
    def on_rollout(
        self, ctx: RolloutContext[InnerStepStateT, EnvT, PolicyT], *, key: Key
    ) -> InnerStepStateT:
        """The wrapped callback's ``on_rollout``, at every rollout (step
        states follow every step, as ``on_step``)."""
        step_state: InnerStepStateT = call_on_rollout(self.callback, ctx, key=key)
        return step_state

    @override
    def on_training_start(
        self,
        ctx: TrainingContext[EveryNState[InnerStateT], InnerStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> EveryNState[InnerStateT]:
        """The wrapped callback's ``on_training_start``."""
        inner = training_with_state(ctx, ctx.state.state)
        state = call_on_training_start(self.callback, inner, key=key)
        return dataclasses.replace(ctx.state, state=state)

    @override
    def on_iteration(
        self,
        ctx: IterationContext[EveryNState[InnerStateT], InnerStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> EveryNState[InnerStateT]:
        """When due, the wrapped callback's ``on_iteration`` then ``metrics``
        (validated as the loop validates them), for the runs that are due."""
        fire = jnp.logical_and(is_due(self.every, ctx), ctx.active)
        return for_runs(
            fire,
            lambda s, i: self._fire(i[0], s, i[1], i[2]),
            ctx.state,
            (ctx, fire, key),
        )

    @override
    def metrics(
        self,
        ctx: IterationContext[EveryNState[InnerStateT], InnerStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> Mapping[str, Float[Array, ""]]:
        """What the wrapped callback published when it last fired."""
        return dict(ctx.state.metrics)

    @override
    def continue_training(
        self,
        ctx: IterationContext[EveryNState[InnerStateT], InnerStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> Bool[Array, ""]:
        """The wrapped callback's ``continue_training``, at every iteration."""
        inner = with_state(ctx, ctx.state.state)
        return call_continue_training(self.callback, inner, key=key)

    @override
    def on_training_end(
        self,
        ctx: TrainingContext[EveryNState[InnerStateT], InnerStepStateT, EnvT, PolicyT],
        *,
        key: Key,
    ) -> EveryNState[InnerStateT]:
        """A last firing for a run that stopped after its last firing, then
        the wrapped callback's ``on_training_end``."""
        k_fire, k_end = jr.split(key)
        fire = stopped_after_last_firing(ctx, ctx.state.last_iteration)
        last = end_iteration_context(ctx, ctx.state, fire)
        state = for_runs(
            fire,
            lambda s, i: self._fire(i[0], s, i[1], i[2]),
            ctx.state,
            (last, fire, k_fire),
        )
        inner = training_with_state(ctx, state.state)
        end = call_on_training_end(self.callback, inner, key=k_end)
        return dataclasses.replace(state, state=end)

    @override
    def reads_training_log(self) -> bool:
        """Whether the wrapped callback reads the training log."""
        return self.callback.reads_training_log()

    @override
    def host_ids(self) -> tuple[Int[Array, ""], ...]:
        """The wrapped callback's host ids."""
        return self.callback.host_ids()

    @override
    def train_state_savers(self) -> tuple[TrainStateSaver, ...]:
        """The wrapped callback's savers (they keep their own cadence)."""
        return self.callback.train_state_savers()

    def _fire(
        self,
        ctx: IterationContext[Any, Any, Any, Any, Any],
        state: EveryNState[InnerStateT],
        fire: Bool[Array, ""],
        key: Key,
    ) -> EveryNState[InnerStateT]:
        """The wrapped callback's ``on_iteration`` and ``metrics`` on ``ctx``
        with its own state; its ``ctx.active`` is ``fire``."""
        inner_ctx = dataclasses.replace(ctx, state=state.state, active=fire)
        inner, published = call_iteration(self.callback, inner_ctx, key=key)
        if sorted(published) != sorted(state.metrics):
            raise CallbackStateError(
                f"EveryN: the wrapped {type(self.callback).__qualname__} published "
                f"the metrics {sorted(published)} but {sorted(state.metrics)} on "
                "the first iteration's context; a callback must publish the same "
                "names every iteration"
            )
        iteration = jnp.asarray(ctx.iteration_count, jnp.int32)
        return EveryNState(inner, iteration, published)
