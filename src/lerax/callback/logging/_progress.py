"""ProgressBarCallback: a standalone Rich progress bar of environment steps."""

import threading
from typing import Any, ClassVar, final

import equinox as eqx
import jax.numpy as jnp
import numpy.typing as npt
from jaxtyping import Array, Int
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typing_extensions import override

from ..._custom_types import Key
from ..._host import host_call, lookup, new_token, register
from ...env import AbstractEnv
from ...policy import AbstractPolicy
from .._base import AbstractCallback, EmptyCallbackStepState
from .._context import IterationContext, ResetContext, TrainingContext
from .._types import AlgorithmInfo

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]


@final
class ProgressState(eqx.Module):
    """The iteration-level state of
    [`ProgressBarCallback`][lerax.callback.logging.ProgressBarCallback].

    Attributes:
        token: orders the callback's host calls (each takes the one before's
            token and returns the next); its value carries no meaning.
    """

    token: Int[Array, ""]


_Ctx = TrainingContext[ProgressState, EmptyCallbackStepState, AnyEnv, AnyPolicy]
_IterCtx = IterationContext[ProgressState, EmptyCallbackStepState, AnyEnv, AnyPolicy]


@final
class ProgressBarCallback(AbstractCallback[ProgressState, EmptyCallbackStepState]):
    """A Rich progress bar of environment steps (done/total, steps per second,
    elapsed time, ETA), updated about every ``update_every`` environment steps
    and at the last iteration.

    Under ``eqx.filter_vmap`` over seeds it shows one bar per run (``run 0``,
    ``run 1``, ...), or with ``aggregate=True`` one bar of the steps of all
    runs together. The display starts when training starts (after
    compilation) and is closed when every run's ``learn`` call ends
    (``on_training_end``); a run that stops early shows the steps it took.
    Like [`LoggingCallback`][lerax.callback.logging.LoggingCallback], it keeps its
    host-side display out of the traced structure, so a new ``ProgressBarCallback``
    reuses the compiled program. For a metrics table as well, prefer ``LoggingCallback``
    with a ``ConsoleBackend``.

    Args:
        console: the Rich console to draw on (default: standard output). On a
            console that is not a terminal, Rich draws the bars once, when they
            close.
        description: the label of a single run's (or the aggregated) bar.
        aggregate: under vmap, show one bar for all runs instead of one per run.
        update_every: update the bar about every this many environment steps,
            over all environments of a run (converted to ``max(1,
            update_every // steps_per_iteration)`` iterations; always the last
            one); ``None`` for
            [`DEFAULT_UPDATE_EVERY`][lerax.callback.logging.ProgressBarCallback.DEFAULT_UPDATE_EVERY],
            or the algorithm's ``host_call_every`` iterations if that is longer
            ([`iterations_between_updates`][lerax.callback.logging.ProgressBarCallback.iterations_between_updates]).

    Raises:
        TypeError: if ``description`` is not a str, ``aggregate`` not a bool
            or ``update_every`` not an int or ``None``.
        ValueError: if ``update_every`` is less than 1.
    """

    DEFAULT_UPDATE_EVERY: ClassVar[int] = 2048
    """Environment steps between updates when ``update_every`` is ``None``:
    the cadence of [`LoggingCallback`][lerax.callback.logging.LoggingCallback]'s
    default, counted in steps so that it costs little with every algorithm's
    defaults (one host call per update; BENCHMARKS.md). An algorithm whose
    ``host_call_every`` iterations hold more steps updates the bar at that
    cadence instead."""

    progress_id: Int[Array, ""]
    update_every: int | None = eqx.field(static=True)

    def __init__(
        self,
        *,
        console: Console | None = None,
        description: str = "training",
        aggregate: bool = False,
        update_every: int | None = None,
    ):
        if not isinstance(description, str):
            raise TypeError(
                "ProgressBarCallback: description must be a str, got "
                f"description={description!r}"
            )
        if not isinstance(aggregate, bool):
            raise TypeError(
                "ProgressBarCallback: aggregate must be a bool, got "
                f"aggregate={aggregate!r}"
            )
        if update_every is not None and (
            isinstance(update_every, bool) or not isinstance(update_every, int)
        ):
            raise TypeError(
                "ProgressBarCallback: update_every must be an int (environment "
                f"steps) or None, got update_every={update_every!r}"
            )
        if update_every is not None and update_every < 1:
            raise ValueError(
                "ProgressBarCallback: update_every must be a positive int "
                f"(environment steps) or None, got update_every={update_every!r}"
            )
        self.update_every = update_every
        self.progress_id = jnp.asarray(
            register(_HostProgress(console, description, aggregate)), jnp.int32
        )

    def iterations_between_updates(self, algorithm: AlgorithmInfo) -> int:
        """``update_every`` environment steps in whole iterations of
        ``algorithm`` (at least one). By default (``update_every=None``),
        [`DEFAULT_UPDATE_EVERY`][lerax.callback.logging.ProgressBarCallback.DEFAULT_UPDATE_EVERY]
        steps, but no more often than the algorithm's
        [`host_call_every`][lerax.algorithm.AbstractAlgorithm.host_call_every]
        iterations: each update is a host call, which costs an algorithm with
        short iterations (A2C's) far more than the bar's redraws can show."""
        per = algorithm.steps_per_iteration
        if self.update_every is not None:
            return max(1, self.update_every // per)
        return max(1, self.DEFAULT_UPDATE_EVERY // per, algorithm.host_call_every)

    @override
    def reads_training_log(self) -> bool:
        """No: the bar shows environment steps only."""
        return False

    @override
    def reset(self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key) -> ProgressState:
        """A fresh token for this run's chain of host calls."""
        return ProgressState(new_token())

    @override
    def on_training_start(self, ctx: _Ctx, *, key: Key) -> ProgressState:
        """Show a bar for this run."""
        algorithm = ctx.algorithm
        total = algorithm.num_iterations(ctx.total_timesteps) * (
            algorithm.steps_per_iteration
        )
        token = host_call(
            _ProgressStart(total), self.progress_id, ctx.run_index, ctx.state.token
        )
        return ProgressState(token)

    @override
    def on_iteration(self, ctx: _IterCtx, *, key: Key) -> ProgressState:
        """Advance this run's bar every
        [`iterations_between_updates`][lerax.callback.logging.ProgressBarCallback.iterations_between_updates]
        iterations and at the last."""
        algorithm = ctx.algorithm
        iteration = ctx.iteration_count
        due = jnp.logical_or(
            iteration % self.iterations_between_updates(algorithm) == 0,
            iteration == algorithm.num_iterations(ctx.total_timesteps),
        )
        record = (self.progress_id, ctx.num_timesteps)
        token = host_call(
            _progress_update,
            record,
            ctx.run_index,
            ctx.state.token,
            when=jnp.logical_and(due, ctx.active),
        )
        return ProgressState(token)

    @override
    def on_training_end(self, ctx: _Ctx, *, key: Key) -> ProgressState:
        """Complete this run's bar; close the display after the last run."""
        record = (self.progress_id, ctx.num_timesteps)
        token = host_call(_progress_end, record, ctx.run_index, ctx.state.token)
        return ProgressState(token)


@final
class _StepsPerSecondColumn(ProgressColumn):
    """Rich's speed estimate of a task, in environment steps per second."""

    @override
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("? steps/s")
        return Text(f"{speed:,.0f} steps/s")


@final
class _HostProgress:
    """The host side of one
    [`ProgressBarCallback`][lerax.callback.logging.ProgressBarCallback]."""

    def __init__(self, console: Console | None, description: str, aggregate: bool):
        self.console = console
        self.description = description
        self.aggregate = aggregate
        self.lock = threading.Lock()
        self.progress: Progress | None = None
        self.tasks: dict[int, TaskID] = {}
        self.done: dict[int, int] = {}
        self.active: set[int] = set()

    def start(self, run_index: int, runs: int, total: int) -> None:
        with self.lock:
            if not self.active or run_index in self.active:
                self._stop()
                progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    _StepsPerSecondColumn(),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=self.console or Console(),
                )
                progress.start()
                self.progress = progress
                self.tasks = {}
                self.done = {}
                self.active = set()
            assert self.progress is not None
            if self.aggregate:
                if not self.tasks:
                    label = (
                        self.description
                        if runs == 1
                        else f"{self.description} ({runs} runs)"
                    )
                    shared = self.progress.add_task(label, total=total * runs)
                else:
                    shared = next(iter(self.tasks.values()))
                self.tasks[run_index] = shared
            else:
                label = self.description if runs == 1 else f"run {run_index}"
                self.tasks[run_index] = self.progress.add_task(label, total=total)
            self.done[run_index] = 0
            self.active.add(run_index)

    def _completed(self, run_index: int) -> int:
        if self.aggregate:
            return sum(self.done.values())
        return self.done[run_index]

    def update(self, run_index: int, timesteps: int) -> None:
        with self.lock:
            task = self.tasks.get(run_index)
            if self.progress is None or task is None or run_index not in self.active:
                return
            if timesteps <= self.done[run_index]:
                return
            self.done[run_index] = timesteps
            self.progress.update(task, completed=self._completed(run_index))

    def end(self, run_index: int, timesteps: int) -> None:
        with self.lock:
            task = self.tasks.get(run_index)
            if self.progress is None or task is None:
                return
            self.done[run_index] = timesteps
            self.progress.update(task, completed=self._completed(run_index))
            self.active.discard(run_index)
            if not self.aggregate or not self.active:
                self.progress.stop_task(task)
            if not self.active:
                self._stop()

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@final
class _ProgressStart:
    """The start host call; ``total`` is known while tracing."""

    def __init__(self, total: int):
        self.total = total

    def __call__(
        self, progress_id: npt.NDArray[Any], run_index: int, runs: int
    ) -> None:
        lookup(int(progress_id), _HostProgress).start(run_index, runs, self.total)


def _progress_update(
    record: tuple[npt.NDArray[Any], ...], run_index: int, runs: int
) -> None:
    progress_id, timesteps = record
    lookup(int(progress_id), _HostProgress).update(run_index, int(timesteps))


def _progress_end(
    record: tuple[npt.NDArray[Any], ...], run_index: int, runs: int
) -> None:
    progress_id, timesteps = record
    lookup(int(progress_id), _HostProgress).end(run_index, int(timesteps))
