"""HistoryCallback: learning curves recorded on device and returned as data."""

import difflib
import operator
from collections.abc import Mapping, Sequence
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int
from typing_extensions import override

from ..._custom_types import Key
from ...env import AbstractEnv
from ...policy import AbstractPolicy
from .._base import AbstractCallback
from .._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    TrainingContext,
)
from .._episodes import (
    EMA_NAMES,
    EPISODES_NAME,
    ROLLOUT_NAMES,
    WINDOW_NAMES,
    EpisodeStatistics,
    initial_statistics,
    summarize,
    update_statistics_over,
)
from .._invoke import DiscoveryMetrics

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]

EPISODE_STATISTICS = (*ROLLOUT_NAMES, EPISODES_NAME)
"""The episode statistics a history can record (LoggingCallback's names)."""


@final
class HistoryState(eqx.Module):
    """The state of [`HistoryCallback`][lerax.callback.history.HistoryCallback]:
    learning curves, one row per recorded iteration.

    Row ``r`` holds iteration ``min((r + 1) * every, num_iterations)``: every
    ``every``-th iteration, and the last iteration in the last row when
    ``num_iterations`` is not a multiple of ``every``. Read from a training
    result under ``eqx.filter_vmap`` over seeds, every array has the vmapped
    axes in front (``values``: ``(seeds, rows, len(names))``).

    Attributes:
        names: the recorded names, in the order they were asked for.
        values: the recorded values, float32, one column per name (see
            [`curve`][lerax.callback.history.HistoryState.curve]); NaN in rows
            not written: not reached yet, or after the run stopped. A
            written value may be NaN too: an episode statistic that is not
            defined at that row (no episode ended yet, or none in its window),
            a published metric not published yet.
        iteration: the iteration each row holds (fixed when training starts).
        timesteps: the environment steps, over all environments, at that
            iteration.
        recorded: whether each row was written.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    values: Float[Array, "*runs rows metrics"]
    iteration: Int[Array, "*runs rows"]
    timesteps: Int[Array, "*runs rows"]
    recorded: Bool[Array, "*runs rows"]

    def curve(self, name: str) -> Float[Array, "*runs rows"]:
        """The values of ``name`` in every row (per run, under vmap).

        Raises:
            KeyError: if ``name`` was not recorded (the message lists what was).
        """
        if name not in self.names:
            raise KeyError(
                f"HistoryState.curve: {name!r} was not recorded; recorded: "
                f"{', '.join(map(repr, self.names))}"
            )
        return self.values[..., self.names.index(name)]


@final
class HistoryCallback(AbstractCallback[HistoryState, EpisodeStatistics]):
    """Record learning curves on device: chosen scalars every ``every``
    iterations, into arrays preallocated in the state, so ``train`` returns
    them as data (``result.callback_state``), per run under
    ``eqx.filter_vmap``, without any host call.

    Each name in ``metrics`` is one of:

    - ``train/<name>``: an entry of the algorithm's training log (the names
      [`LoggingCallback`][lerax.callback.logging.LoggingCallback] logs, e.g.
      PPO's ``train/loss``, ``train/learning_rate``);
    - an episode statistic, with the meaning it has in ``LoggingCallback``
      (over raw environment rewards): ``rollout/ep_return_ema``,
      ``rollout/ep_length_ema`` (NaN until an episode ended),
      ``rollout/ep_return_mean``, ``rollout/ep_return_min``,
      ``rollout/ep_return_max``, ``rollout/ep_length_mean`` over the episodes
      that ended since the previous recorded iteration (NaN when none did),
      and ``rollout/episodes``, their number;
    - a published metric (see
      [`AbstractCallback.metrics`][lerax.callback.AbstractCallback.metrics]),
      as it stands when this callback's ``on_iteration`` runs: put the
      history after the callbacks that publish.

    The state is a [`HistoryState`][lerax.callback.history.HistoryState] with
    ``ceil(num_iterations / every)`` rows. A run that stops early (a
    callback's ``continue_training``, Ctrl-C) records nothing more: its later
    rows stay NaN, and are not written at its stop either. Recording every
    ``every`` iterations matches a ``LoggingCallback`` with
    ``log_every=every * algorithm.steps_per_iteration``: the same rows hold
    the same values. Draw the curves with
    [`lerax.plot.learning_curves`][lerax.plot.learning_curves].

    Example::

        history = HistoryCallback(["rollout/ep_return_mean", "train/loss"])
        result = PPO().train(env, policy, 2**14, key=key, callback=history)
        returns = result.callback_state.curve("rollout/ep_return_mean")

    Args:
        metrics: the names to record, in order (a single name may be given as
            a string).
        every: record every this many iterations (and the last one).
        ema_alpha: the episode EMAs' weight on the previous value, in
            ``[0, 1)`` (as ``LoggingCallback``'s).

    Raises:
        TypeError: if ``metrics`` is not a string or a sequence of strings, or
            ``every`` is not an int.
        ValueError: if ``metrics`` is empty or names one twice or an empty
            name, ``every < 1``, or ``ema_alpha`` is outside ``[0, 1)``; when
            training starts (while tracing, before anything runs), if a name
            is neither a training-log entry, an episode statistic nor a
            published metric (the message lists those available).
    """

    names: tuple[str, ...] = eqx.field(static=True)
    every: int = eqx.field(static=True)
    ema_alpha: float = eqx.field(static=True)

    def __init__(
        self, metrics: str | Sequence[str], every: int = 1, *, ema_alpha: float = 0.9
    ):
        self.names = _check_metrics(metrics)
        self.every = _check_every(every)
        if (
            isinstance(ema_alpha, bool)
            or not isinstance(ema_alpha, int | float)
            or not 0.0 <= ema_alpha < 1.0
        ):
            raise ValueError(
                "HistoryCallback: ema_alpha must be a number in [0, 1), got "
                f"ema_alpha={ema_alpha!r}"
            )
        self.ema_alpha = float(ema_alpha)

    @override
    def reads_training_log(self) -> bool:
        """Whether a recorded metric is a training-log entry (``train/...``)."""
        return any(name.startswith("train/") for name in self.names)

    @override
    def reset(self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key) -> HistoryState:
        """Rows of NaN for the whole run, with the iteration and step count
        each will hold."""
        num_iterations = ctx.algorithm.num_iterations(ctx.total_timesteps)
        rows = -(-num_iterations // self.every)
        iteration = np.minimum(np.arange(1, rows + 1) * self.every, num_iterations)
        timesteps = iteration * ctx.algorithm.steps_per_iteration
        return HistoryState(
            names=self.names,
            values=jnp.full((rows, len(self.names)), jnp.nan, jnp.float32),
            iteration=jnp.asarray(iteration, jnp.int32),
            timesteps=jnp.asarray(timesteps, jnp.int32),
            recorded=jnp.zeros((rows,), jnp.bool_),
        )

    @override
    def step_reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeStatistics:
        """Empty statistics: no episode completed, no window."""
        return initial_statistics()

    @override
    def on_rollout(
        self, ctx: RolloutContext[EpisodeStatistics, AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeStatistics:
        """Add the rollout's raw rewards; where an episode ended, close it
        (once per iteration, over all steps and environments at once)."""
        return update_statistics_over(
            ctx.state,
            ctx.rewards,
            ctx.dones,
            ctx.iteration_count,
            self.every,
            self.ema_alpha,
        )

    @override
    def on_training_start(
        self,
        ctx: TrainingContext[HistoryState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> HistoryState:
        """Check, while tracing, that every name can be recorded."""
        self._check_available(ctx.training_log, ctx.metrics)
        return ctx.state

    @override
    def on_iteration(
        self,
        ctx: IterationContext[HistoryState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> HistoryState:
        """Write this iteration's row, if it is one to record."""
        # The trace that finds the published names (before training) reads
        # every name not published yet as NaN; the names are checked after it.
        if not isinstance(ctx.metrics, DiscoveryMetrics):
            self._check_available(ctx.training_log, ctx.metrics)
        state = ctx.state
        iteration = ctx.iteration_count
        last = ctx.algorithm.num_iterations(ctx.total_timesteps)
        due = jnp.logical_or(iteration % self.every == 0, iteration == last)
        row = (iteration - 1) // self.every

        def write(state: HistoryState) -> HistoryState:
            return HistoryState(
                names=state.names,
                values=state.values.at[row].set(self._row(ctx)),
                iteration=state.iteration,
                timesteps=state.timesteps,
                recorded=state.recorded.at[row].set(True),
            )

        # Computed only in iterations that record (under vmap with a batched
        # flag, a select).
        out: HistoryState = jax.lax.cond(
            jnp.logical_and(due, ctx.active), write, lambda s: s, state
        )
        return out

    def _row(
        self,
        ctx: IterationContext[HistoryState, EpisodeStatistics, AnyEnv, AnyPolicy],
    ) -> Float[Array, " metrics"]:
        """The values of this iteration, in the order of ``names``."""
        summary = None
        if any(name in EPISODE_STATISTICS for name in self.names):
            summary = summarize(ctx.step_state, ctx.iteration_count, self.every)
        nan = jnp.full((), jnp.nan, jnp.float32)
        values = []
        for name in self.names:
            log_name = name.removeprefix("train/")
            if name.startswith("train/") and log_name in ctx.training_log:
                value = jnp.asarray(ctx.training_log[log_name], jnp.float32)
            elif summary is not None and name == EPISODES_NAME:
                value = summary.episodes.astype(jnp.float32)
            elif summary is not None and name in EMA_NAMES:
                value = jnp.where(summary.ema_valid, summary.scalars[name], nan)
            elif summary is not None and name in WINDOW_NAMES:
                value = jnp.where(summary.window_valid, summary.scalars[name], nan)
            else:
                value = ctx.metrics[name]
            values.append(value)
        return jnp.stack(values)

    def _check_available(
        self,
        training_log: Mapping[str, Float[Array, ""]],
        metrics: Mapping[str, Float[Array, ""]],
    ) -> None:
        available = (
            *sorted(f"train/{k}" for k in training_log),
            *EPISODE_STATISTICS,
            *sorted(metrics),
        )
        for i, name in enumerate(self.names):
            if name in available:
                continue
            close = difflib.get_close_matches(name, available, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(
                f"HistoryCallback: metrics[{i}]={name!r} is neither a training-log "
                "entry, an episode statistic nor a published metric"
                f"{hint}; available: {', '.join(available)}"
            )


def _check_metrics(metrics: object) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    if not isinstance(metrics, Sequence):
        raise TypeError(
            "HistoryCallback: metrics must be a name or a sequence of names "
            f"(str), got metrics={metrics!r}"
        )
    names: list[str] = []
    for i, name in enumerate(metrics):
        if not isinstance(name, str):
            raise TypeError(
                f"HistoryCallback: metrics[{i}] must be a name (str), got {name!r}"
            )
        if not name:
            raise ValueError(f"HistoryCallback: metrics[{i}] is an empty name")
        if name in names:
            raise ValueError(
                f"HistoryCallback: metrics names {name!r} twice "
                f"(metrics[{names.index(name)}] and metrics[{i}])"
            )
        names.append(name)
    if not names:
        raise ValueError(
            "HistoryCallback: metrics must name at least one scalar to record, "
            "got an empty sequence"
        )
    return tuple(names)


def _check_every(every: object) -> int:
    if isinstance(every, bool):
        raise TypeError(f"HistoryCallback: every must be an int, got every={every!r}")
    try:
        value = operator.index(every)  # type: ignore[arg-type]  # checked here
    except TypeError:
        raise TypeError(
            f"HistoryCallback: every must be an int (iterations), got every={every!r}"
        ) from None
    if value < 1:
        raise ValueError(
            "HistoryCallback: every must be a positive number of iterations, got "
            f"every={every!r}"
        )
    return value
