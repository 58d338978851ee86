"""Stoppers: callbacks that stop a run (each run on its own under vmap)
through ``continue_training``."""

from collections.abc import Mapping
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, Real
from typing_extensions import override

from ..._custom_types import Key
from ...env import AbstractEnv
from ...policy import AbstractPolicy
from .._base import AbstractCallback, EmptyCallbackState, EmptyCallbackStepState
from .._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    TrainingContext,
)
from .._episodes import (
    EMA_NAMES,
    ROLLOUT_NAMES,
    EpisodeStatistics,
    initial_statistics,
    summarize,
    update_statistics_over,
)
from ._gate import read_metric, scalar_field

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]

TRAINING_STATISTICS = ROLLOUT_NAMES
"""The training episode statistics a stopper computes itself (the names and
meanings of [`LoggingCallback`][lerax.callback.LoggingCallback]'s, over the
episodes that ended in the iteration for the ``..._mean|min|max`` ones)."""


def _not_finite(x: Array) -> Bool[Array, ""]:
    return jnp.logical_not(jnp.isfinite(x))


@final
class StopOnRewardThreshold(AbstractCallback[EmptyCallbackState, EpisodeStatistics]):
    """Stop a run once a return reaches ``threshold``.

    The return read is ``key``, either:

    - a metric another callback publishes (default ``"eval/mean_return"``,
      [`EvalCallback`][lerax.callback.control.EvalCallback]'s), read in
      ``continue_training``, which sees this iteration's values; or
    - a training episode statistic the stopper computes itself from raw
      environment rewards, with
      [`LoggingCallback`][lerax.callback.LoggingCallback]'s names and
      meanings: ``"rollout/ep_return_mean"`` (``_min``, ``_max``,
      ``"rollout/ep_length_mean"``) over the episodes that ended in this
      iteration, in all environments; ``"rollout/ep_return_ema"``
      (``"rollout/ep_length_ema"``) the EMA of each environment's completed
      episodes (weight ``ema_alpha`` on the previous value), averaged over
      the environments that completed one.

    The run stops after the first iteration whose value is ``>= threshold``;
    a NaN value (nothing published yet, no episode ended) never stops it.
    ``threshold`` is a float32 array field: a batch of stoppers (built under
    ``eqx.filter_vmap``, or stacked) gives each vmapped run its own.

    Args:
        threshold: the return to reach, a finite number.
        key: the metric or training statistic to read.
        ema_alpha: for ``"rollout/..._ema"``, the EMA's weight on the
            previous value, in ``[0, 1)`` (``LoggingCallback``'s default).

    Raises:
        TypeError: ``threshold`` is not a number, ``key`` not a str.
        ValueError: ``threshold`` is not finite, ``ema_alpha`` outside ``[0,
            1)``. When training is traced (before it runs): ``key`` is neither
            a training statistic nor a metric a callback publishes.
    """

    threshold: Float[Array, ""]
    key: str = eqx.field(static=True)
    ema_alpha: float = eqx.field(static=True)

    def __init__(
        self,
        threshold: int | float | Real[Array, ""],
        key: str = "eval/mean_return",
        *,
        ema_alpha: float = 0.9,
    ) -> None:
        owner = "StopOnRewardThreshold"
        self.threshold = scalar_field(
            owner,
            "threshold",
            threshold,
            "float",
            allowed="a finite number",
            bad=_not_finite,
        )
        self.key = _metric_name(owner, "key", key)
        if (
            isinstance(ema_alpha, bool)
            or not isinstance(ema_alpha, int | float)
            or not 0.0 <= ema_alpha < 1.0
        ):
            raise ValueError(
                f"{owner}: ema_alpha must be a number in [0, 1), got "
                f"ema_alpha={ema_alpha!r}"
            )
        self.ema_alpha = float(ema_alpha)

    @property
    def tracks_episodes(self) -> bool:
        """Whether ``key`` is a training statistic (computed by the stopper)
        rather than a published metric."""
        return self.key in TRAINING_STATISTICS

    @override
    def reads_training_log(self) -> bool:
        """No: it reads published metrics and its own episode statistics."""
        return False

    @override
    def step_reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeStatistics:
        """No episode yet."""
        return initial_statistics()

    @override
    def on_rollout(
        self, ctx: RolloutContext[EpisodeStatistics, AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeStatistics:
        """Add the rollout's raw rewards (only when ``key`` is a training
        statistic), once per iteration over all steps and environments."""
        if not self.tracks_episodes:
            return ctx.state
        return update_statistics_over(
            ctx.state,
            ctx.rewards,
            ctx.dones,
            ctx.iteration_count,
            every=1,
            ema_alpha=self.ema_alpha,
        )

    @override
    def on_training_start(
        self,
        ctx: TrainingContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> EmptyCallbackState:
        """Check, before the loop, that ``key`` is published if it is not a
        training statistic."""
        if not self.tracks_episodes:
            self._published(ctx.metrics)
        return ctx.state

    @override
    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> Bool[Array, ""]:
        """False once the value reaches the threshold."""
        return jnp.logical_not(self.value(ctx) >= self.threshold)

    def value(
        self,
        ctx: IterationContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
    ) -> Float[Array, ""]:
        """The value compared with the threshold after this iteration (NaN
        if it is undefined)."""
        if not self.tracks_episodes:
            return self._published(ctx.metrics)
        summary = summarize(ctx.step_state, ctx.iteration_count, every=1)
        valid = summary.ema_valid if self.key in EMA_NAMES else summary.window_valid
        return jnp.where(valid, summary.scalars[self.key], jnp.nan)

    def _published(self, metrics: Mapping[str, Float[Array, ""]]) -> Float[Array, ""]:
        return read_metric(
            "StopOnRewardThreshold",
            "key",
            metrics,
            self.key,
            computed=TRAINING_STATISTICS,
        )


@final
class NoImprovementState(eqx.Module):
    """The state of
    [`StopOnNoImprovement`][lerax.callback.control.StopOnNoImprovement].

    Attributes:
        best: the best value evaluated so far (``-inf`` before the first).
        stale: evaluations in a row without an improvement.
        last_evaluation: the iteration of the last evaluation counted (the
            value of the iteration metric; NaN before the first).
    """

    best: Float[Array, ""]
    stale: Int[Array, ""]
    last_evaluation: Float[Array, ""]


@final
class StopOnNoImprovement(AbstractCallback[NoImprovementState, EmptyCallbackStepState]):
    """Stop a run after ``patience`` evaluations in a row without an
    improvement.

    It reads two published metrics: ``key``, the evaluated value (default
    ``"eval/mean_return"``), and ``iteration_key``, the iteration of the last
    evaluation (default: ``key``'s prefix with ``/last_iteration``, as
    [`EvalCallback`][lerax.callback.control.EvalCallback] publishes it). An
    evaluation is counted once, when ``iteration_key`` changes: it improves
    if its value exceeds the best so far by more than ``min_delta`` (the
    first always does), else it adds one to the evaluations without
    improvement (a NaN value too). The run stops after the evaluation that
    makes them ``patience``. Whether the stopper comes before or after the
    evaluating callback in a list, it stops after the same iteration
    (``continue_training`` sees this iteration's metrics).

    ``patience`` (int32) and ``min_delta`` (float32) are array fields: a
    batch of stoppers gives each vmapped run its own.

    Args:
        patience: evaluations in a row without improvement that stop the
            run, a positive int.
        min_delta: the least increase over the best that counts as an
            improvement, a finite number ``>= 0``.
        key: the published metric to improve.
        iteration_key: the published metric holding the iteration of the
            last evaluation; ``None`` for ``<prefix of key>/last_iteration``.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: ``patience`` is not positive, ``min_delta`` is negative or
            not finite, ``iteration_key`` is ``None`` and ``key`` has no
            ``prefix/``. When training is traced (before it runs): a name no
            callback publishes.
    """

    patience: Int[Array, ""]
    min_delta: Float[Array, ""]
    key: str = eqx.field(static=True)
    iteration_key: str = eqx.field(static=True)

    def __init__(
        self,
        patience: int | Int[Array, ""],
        min_delta: int | float | Real[Array, ""] = 0.0,
        key: str = "eval/mean_return",
        *,
        iteration_key: str | None = None,
    ) -> None:
        owner = "StopOnNoImprovement"
        self.patience = scalar_field(
            owner,
            "patience",
            patience,
            "int",
            allowed="a positive int (evaluations)",
            bad=lambda x: x <= 0,
        )
        self.min_delta = scalar_field(
            owner,
            "min_delta",
            min_delta,
            "float",
            allowed="a finite number >= 0",
            bad=lambda x: jnp.logical_or(_not_finite(x), x < 0),
        )
        self.key = _metric_name(owner, "key", key)
        if iteration_key is None:
            prefix, slash, _ = key.rpartition("/")
            if not slash or not prefix:
                raise ValueError(
                    f"{owner}: iteration_key=None takes the prefix of key, but "
                    f"key={key!r} has none; pass iteration_key, the metric "
                    "holding the iteration of the last evaluation"
                )
            iteration_key = f"{prefix}/last_iteration"
        self.iteration_key = _metric_name(owner, "iteration_key", iteration_key)

    @override
    def reads_training_log(self) -> bool:
        """No: it reads published metrics."""
        return False

    @override
    def reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key
    ) -> NoImprovementState:
        """No evaluation yet."""
        return NoImprovementState(
            best=jnp.full((), -jnp.inf, jnp.float32),
            stale=jnp.zeros((), jnp.int32),
            last_evaluation=jnp.full((), jnp.nan, jnp.float32),
        )

    @override
    def on_training_start(
        self,
        ctx: TrainingContext[
            NoImprovementState, EmptyCallbackStepState, AnyEnv, AnyPolicy
        ],
        *,
        key: Key,
    ) -> NoImprovementState:
        """Check, before the loop, that both metrics are published."""
        self._read(ctx.metrics)
        return ctx.state

    @override
    def on_iteration(
        self,
        ctx: IterationContext[
            NoImprovementState, EmptyCallbackStepState, AnyEnv, AnyPolicy
        ],
        *,
        key: Key,
    ) -> NoImprovementState:
        """Count a new evaluation."""
        return self._observe(ctx.state, ctx.metrics)

    @override
    def continue_training(
        self,
        ctx: IterationContext[
            NoImprovementState, EmptyCallbackStepState, AnyEnv, AnyPolicy
        ],
        *,
        key: Key,
    ) -> Bool[Array, ""]:
        """False once ``patience`` evaluations in a row did not improve
        (this iteration's included)."""
        return self._observe(ctx.state, ctx.metrics).stale < self.patience

    def _read(
        self, metrics: Mapping[str, Float[Array, ""]]
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        owner = "StopOnNoImprovement"
        value = read_metric(owner, "key", metrics, self.key)
        at = read_metric(owner, "iteration_key", metrics, self.iteration_key)
        return value, at

    def _observe(
        self, state: NoImprovementState, metrics: Mapping[str, Float[Array, ""]]
    ) -> NoImprovementState:
        """``state`` after counting the evaluation ``metrics`` show, if it is
        a new one (counting one twice changes nothing)."""
        value, at = self._read(metrics)
        new = jnp.logical_and(jnp.isfinite(at), at != state.last_evaluation)
        improved = value > state.best + self.min_delta
        return NoImprovementState(
            best=jnp.where(jnp.logical_and(new, improved), value, state.best),
            stale=jnp.where(
                new, jnp.where(improved, 0, state.stale + 1), state.stale
            ).astype(jnp.int32),
            last_evaluation=jnp.where(new, at, state.last_evaluation),
        )


@final
class EpisodeCount(eqx.Module):
    """The step state of
    [`StopOnMaxEpisodes`][lerax.callback.control.StopOnMaxEpisodes]: one
    environment's completed episodes (a leading ``num_envs`` axis when read
    from a training result).

    Attributes:
        episodes: the episodes this environment completed.
    """

    episodes: Int[Array, "*envs"]


@final
class StopOnMaxEpisodes(AbstractCallback[EmptyCallbackState, EpisodeCount]):
    """Stop a run once its environments have completed ``n`` episodes in
    all (terminated or truncated), after the iteration in which they do.

    ``n`` is an int32 array field: a batch of stoppers gives each vmapped run
    its own.

    Args:
        n: the episodes, over all environments of the run, a positive int.

    Raises:
        TypeError: ``n`` is not an int.
        ValueError: ``n`` is not positive.
    """

    n: Int[Array, ""]

    def __init__(self, n: int | Int[Array, ""]) -> None:
        self.n = scalar_field(
            "StopOnMaxEpisodes",
            "n",
            n,
            "int",
            allowed="a positive int (episodes)",
            bad=lambda x: x <= 0,
        )

    @override
    def reads_training_log(self) -> bool:
        """No: it counts episodes itself."""
        return False

    @override
    def step_reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeCount:
        """No episode yet."""
        return EpisodeCount(jnp.zeros((), jnp.int32))

    @override
    def on_rollout(
        self, ctx: RolloutContext[EpisodeCount, AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeCount:
        """Count the episodes that ended in this rollout, per environment."""
        ended = jnp.sum(ctx.dones.astype(jnp.int32), axis=0)
        return EpisodeCount(ctx.state.episodes + ended)

    @override
    def continue_training(
        self,
        ctx: IterationContext[EmptyCallbackState, EpisodeCount, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> Bool[Array, ""]:
        """False once the environments completed ``n`` episodes."""
        return jnp.sum(ctx.step_state.episodes) < self.n


def _metric_name(owner: str, argument: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"{owner}: {argument} must be a non-empty str (a metric name such as "
            f"'eval/mean_return'), got {argument}={name!r}"
        )
    return name
