"""LoggingCallback: training metrics to pluggable backends, seed-aware."""

import atexit
import dataclasses
import functools
import math
import time
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, ArrayLike, Bool, Float, Int
from typing_extensions import override

from ..._custom_types import Key
from ..._host import (
    host_call,
    lookup,
    new_token,
    register,
    registered,
    release,
)
from ...env import AbstractEnv
from ...policy import AbstractPolicy
from .._base import AbstractCallback
from .._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    TrainingContext,
)
from .._episodes import EMA_NAMES as _EMA_NAMES
from .._episodes import ROLLOUT_NAMES as _ROLLOUT_NAMES
from .._episodes import WINDOW_NAMES as _WINDOW_NAMES
from .._episodes import (
    EpisodeStatistics,
    initial_statistics,
    summarize,
    update_statistics_over,
)
from .._types import AlgorithmInfo
from ._backend import AbstractLoggingBackend, HParamValue, LoggingBackendError
from ._writer import (
    TIME_NAMES,
    Experiment,
    HostLogger,
    Record,
    ResumePoint,
    StartInfo,
    raisable,
)

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]


_ITERATION, _TIMESTEPS, _EPISODES = 0, 1, 2  # IterationRecord.counts
_EMA_VALID, _WINDOW_VALID = 0, 1  # IterationRecord.flags


@final
class IterationRecord(eqx.Module):
    """What one logged iteration sends to the host (one run's values; in
    [`LoggingState`][lerax.callback.logging.LoggingState], a leading axis
    of buffered records).

    Kept in three arrays (integers, flags, scalars) and read through
    properties: the buffer is part of every iteration's state, and XLA on a
    CPU handles each of its arrays with a kernel of its own (copied where the
    loop chooses a state), so a record of many arrays costs an algorithm with
    short iterations several percent (A2C; BENCHMARKS.md). Build one with
    [`pack`][lerax.callback.logging.IterationRecord.pack].

    Attributes:
        counts: ``iteration``, ``timesteps`` and ``episodes``, in that order
            along the last axis.
        flags: ``ema_valid`` and ``window_valid``, in that order.
        values: the scalars, in the order of ``names``.
        names: the scalars' names (static).
    """

    counts: Int[Array, "*records 3"]
    flags: Bool[Array, "*records 2"]
    values: Float[Array, "*records names"]
    names: tuple[str, ...] = eqx.field(static=True)

    @staticmethod
    def pack(
        *,
        iteration: Int[ArrayLike, "*records"],
        timesteps: Int[ArrayLike, "*records"],
        episodes: Int[ArrayLike, "*records"],
        ema_valid: Bool[ArrayLike, "*records"],
        window_valid: Bool[ArrayLike, "*records"],
        scalars: Mapping[str, Float[ArrayLike, "*records"]],
    ) -> "IterationRecord":
        """A record (or a buffer of them) from its parts; ``names`` is the
        order of ``scalars``."""
        names = tuple(scalars)
        return IterationRecord(
            counts=jnp.stack(
                [jnp.asarray(x, jnp.int32) for x in (iteration, timesteps, episodes)],
                axis=-1,
            ),
            flags=jnp.stack(
                [jnp.asarray(x, jnp.bool_) for x in (ema_valid, window_valid)],
                axis=-1,
            ),
            values=jnp.stack(
                [jnp.asarray(scalars[name], jnp.float32) for name in names], axis=-1
            ),
            names=names,
        )

    @property
    def iteration(self) -> Int[Array, "*records"]:
        """Iterations completed."""
        return self.counts[..., _ITERATION]

    @property
    def timesteps(self) -> Int[Array, "*records"]:
        """Environment steps taken."""
        return self.counts[..., _TIMESTEPS]

    @property
    def episodes(self) -> Int[Array, "*records"]:
        """Episodes that ended in the iteration."""
        return self.counts[..., _EPISODES]

    @property
    def ema_valid(self) -> Bool[Array, "*records"]:
        """An episode has ended (the EMAs are defined)."""
        return self.flags[..., _EMA_VALID]

    @property
    def window_valid(self) -> Bool[Array, "*records"]:
        """An episode ended in the iteration (its means are defined)."""
        return self.flags[..., _WINDOW_VALID]

    @property
    def scalars(self) -> dict[str, Float[Array, "*records"]]:
        """The values by name (``train/...``, ``rollout/...``)."""
        return {name: self.values[..., i] for i, name in enumerate(self.names)}


@final
class LoggingState(eqx.Module):
    """The iteration-level state of
    [`LoggingCallback`][lerax.callback.logging.LoggingCallback].

    A host call costs the compiled program far more than its own work, so
    records are buffered here and sent together every
    ``algorithm.host_call_every`` logged iterations (at most 64), at the
    last iteration and when training ends.

    Attributes:
        token: orders the callback's host calls (each takes the one before's
            token and returns the next); nonzero once the logger has failed.
        pending: the buffered records, leading axis the buffer's size.
        count: how many of them are waiting to be sent.
        experiment: the experiment the run logs to (the logger's creation
            stamp and 32 random bits; zeros until the run starts): a run
            resumed from this state, by any ``LoggingCallback``, continues it.
        offsets: the logged step and iteration of the run's counters' 0
            (-1 until the run starts; nonzero when the logger trained the
            run in an earlier ``learn`` call).
    """

    token: Int[Array, ""]
    pending: IterationRecord
    count: Int[Array, ""]
    experiment: Int[Array, " 2"]
    offsets: Int[Array, " 2"]


_MAX_BUFFER = 64  # records buffered per run at most (SIGKILL loses at most these)


BackendsLike = AbstractLoggingBackend | Sequence[AbstractLoggingBackend]


@final
class LoggingCallback(AbstractCallback[LoggingState, EpisodeStatistics]):
    """Log training metrics to one or more backends.

    Every ``log_every`` environment steps (over all environments; by default
    [`DEFAULT_LOG_EVERY`][lerax.callback.logging.LoggingCallback.DEFAULT_LOG_EVERY],
    Stable-Baselines3's PPO cadence), rounded down to whole iterations and at
    least every iteration, and at the last iteration, each backend receives:

    - ``train/<name>`` for every entry of the algorithm's training log (Lerax's
      algorithms report their learning rate there as ``learning_rate``);
    - ``rollout/ep_return_ema``, ``rollout/ep_length_ema``: EMAs over completed
      episodes of raw environment rewards, per environment, averaged over the
      environments that completed an episode; absent until one has;
    - ``rollout/episodes``: episodes completed since the previous logged
      iteration, and, when there were any, ``rollout/ep_return_mean|min|max``
      and ``rollout/ep_length_mean`` over them;
    - every metric the callbacks publish (``ctx.metrics``, see
      [`AbstractCallback.metrics`][lerax.callback.AbstractCallback.metrics]),
      under its own name, as it stands when the logger's ``on_iteration`` runs
      (put the logger after the callbacks that publish);
    - ``time/timesteps``, ``time/iteration`` and ``time/steps_per_second``
      (host wall clock between logged iterations, compilation excluded).

    Hyperparameters are recorded once per run at its start: the static
    ``int``/``float``/``bool``/``str`` fields and scalar array fields of the
    algorithm, environment and policy (``algorithm/num_envs``, ``env/gravity``,
    ...), plus ``hparams``.

    Data leaves the compiled program through ordered host calls, once per
    logged iteration (one call for all vmapped runs), gated by ``lax.cond`` so
    other iterations pay nothing; the training loop never leaves the compiled program. Host
    objects stay out of the traced structure (the callback holds an id), so a
    new ``LoggingCallback`` with the same ``log_every``/``ema_alpha`` (and
    ``env``/``policy`` types) reuses the compiled program.

    Under ``eqx.filter_vmap`` over seeds every record carries its run index
    (its position in the vmapped batch; under nested vmaps, the row-major
    position over all of them) and backends keep runs apart (TensorBoard: one
    sub-directory per run, JSONL: a ``"run"`` field, W&B: one run each in a
    shared group, console: a bar and a column per run).

    Calling ``learn`` again with the same logger continues its runs: steps and
    iterations go on from where the previous call ended. Call
    [`close`][lerax.callback.logging.LoggingCallback.close] at the end (or use the
    logger as a context manager). One writer thread per logger makes the backend calls
    and flushes them at most every 0.25 s, after a backend failure and at the end of
    every ``learn`` call (which waits for it, at most ``drain_timeout`` seconds);
    ``close()`` and interpreter exit flush what is pending, so what was logged before an
    exception is on disk.

    A run resumed from a saved state (``train(..., resume_from=state)``,
    e.g. ``result.train_state`` or a loaded checkpoint) continues where the
    state was saved, with this logger or a new one built the same way (same
    backends, same arguments), also in a new process: the same experiment
    (name, TensorBoard directory, JSONL file, W&B run ids), its logged steps
    and iterations going on from the state's counters. Its ``LoggingState``
    carries what that takes (the experiment's identity and the run's step
    and iteration offsets, as arrays), and it sends again the records it had
    buffered and not sent when it was saved. Records that a process which
    went on past the saved state wrote before it stopped are superseded; the
    backends say what becomes of them (JSONL drops them, TensorBoard purges
    them from its display, W&B online ignores the resumed run's rows at
    steps it has logged already). Its hyperparameters are not recorded
    again. A logger that has logged one experiment refuses to resume runs of
    another: the start host call raises ``ValueError``, which JAX reports as
    a ``JaxRuntimeError``.

    A failing backend never stops training: the others go on receiving every
    record, [`failure`][lerax.callback.logging.LoggingCallback.failure] shows the
    failure and [`close`][lerax.callback.logging.LoggingCallback.close] raises it
    ([`LoggingBackendError`][lerax.callback.logging.LoggingBackendError]).

    A logger that is garbage-collected without ``close()`` closes itself:
    at once if none of its runs is in flight, else when the last of them
    ends. Only the instance you constructed counts (copies that JAX
    transformations make do not); keep it, or close it, until the programs
    that use it have started: a program that reaches its first logging call
    after the logger was collected fails.

    Example::

        logger = LoggingCallback([TensorBoardBackend(), ConsoleBackend()], env=env)
        policy = PPO().learn(env, policy, 2**16, key=key, callback=logger)
        logger.close()

    Args:
        backends: a backend or a sequence of them.
        env: optional; if given, training must use an environment of this type.
        policy: optional; if given, training must use a policy of this type.
        log_every: log about every this many environment steps, over all
            environments (converted to ``max(1, log_every //
            steps_per_iteration)`` iterations; always the last one); ``None``
            for [`DEFAULT_LOG_EVERY`][lerax.callback.logging.LoggingCallback.DEFAULT_LOG_EVERY].
        ema_alpha: the EMAs' weight on the previous value, in ``[0, 1)``.
        name: the experiment name (directory and W&B run name); default
            ``<algorithm>_<env>_<YYYYmmdd-HHMMSS>``, the time this logger was
            created (or, once it resumes runs, that of the experiment's first
            logger).
        hparams: extra hyperparameters to record (e.g. the seed).
        drain_timeout: the most seconds the end of a ``learn`` call (and
            [`close`][lerax.callback.logging.LoggingCallback.close]) waits for the
            writer thread to write and flush what is queued; a backend call still
            running then is recorded as stuck (a
            [`LoggingBackendError`][lerax.callback.logging.LoggingBackendError]) and not
            waited for again, so training always finishes.

    Raises:
        TypeError: if ``backends``, ``env``, ``policy`` or ``hparams`` has the
            wrong type.
        ValueError: if ``backends`` is empty, ``log_every < 1``, ``ema_alpha`` is
            outside ``[0, 1)``, ``name`` is empty or ``drain_timeout`` is not a
            positive finite number.
    """

    DEFAULT_LOG_EVERY: ClassVar[int] = 2048
    """Environment steps between logged iterations when ``log_every`` is
    ``None``: often enough to follow a run, rarely enough that logging costs
    little with every algorithm's defaults (BENCHMARKS.md)."""

    logger_id: Int[Array, ""]
    log_every: int = eqx.field(static=True)
    ema_alpha: float = eqx.field(static=True)
    env_type: type | None = eqx.field(static=True)
    policy_type: type | None = eqx.field(static=True)

    def __init__(
        self,
        backends: BackendsLike,
        env: AnyEnv | None = None,
        policy: AnyPolicy | None = None,
        *,
        log_every: int | None = None,
        ema_alpha: float = 0.9,
        name: str | None = None,
        hparams: Mapping[str, HParamValue] | None = None,
        drain_timeout: float = 30.0,
    ):
        backend_list = _check_backends(backends)
        if env is not None and not isinstance(env, AbstractEnv):
            raise TypeError(
                f"LoggingCallback: env must be an environment (AbstractEnv) or None, "
                f"got env={env!r}"
            )
        if policy is not None and not isinstance(policy, AbstractPolicy):
            raise TypeError(
                "LoggingCallback: policy must be a policy (AbstractPolicy) or None, "
                f"got policy={policy!r}"
            )
        if log_every is not None and (
            isinstance(log_every, bool)
            or not isinstance(log_every, int)
            or (log_every < 1)
        ):
            raise ValueError(
                f"LoggingCallback: log_every must be a positive int (environment "
                f"steps) or None, got log_every={log_every!r}"
            )
        if (
            isinstance(ema_alpha, bool)
            or not isinstance(ema_alpha, int | float)
            or not 0.0 <= ema_alpha < 1.0
        ):
            raise ValueError(
                "LoggingCallback: ema_alpha must be a number in [0, 1), got "
                f"ema_alpha={ema_alpha!r}"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(
                f"LoggingCallback: name must be a non-empty str or None, got "
                f"name={name!r}"
            )
        extra = _check_hparams(hparams)
        if (
            isinstance(drain_timeout, bool)
            or not isinstance(drain_timeout, int | float)
            or not (math.isfinite(drain_timeout) and drain_timeout > 0)
        ):
            raise ValueError(
                "LoggingCallback: drain_timeout must be a positive finite number "
                f"of seconds, got drain_timeout={drain_timeout!r}"
            )
        host = HostLogger(
            backend_list, name, extra, float(drain_timeout), Experiment.new()
        )
        ident = register(host)
        host.ident = ident
        _OWNED[ident] = host
        # Bound to this instance only: the copies JAX transformations make of
        # the module are built without __init__ and have no finalizer.
        weakref.finalize(self, _collected, ident).atexit = False
        self.logger_id = jnp.asarray(ident, jnp.int32)
        self.log_every = self.DEFAULT_LOG_EVERY if log_every is None else log_every
        self.ema_alpha = float(ema_alpha)
        self.env_type = None if env is None else type(env)
        self.policy_type = None if policy is None else type(policy)

    def iterations_between_logs(self, algorithm: AlgorithmInfo) -> int:
        """``log_every`` environment steps in whole iterations of
        ``algorithm`` (at least one)."""
        return max(1, self.log_every // algorithm.steps_per_iteration)

    # -- hooks ----------------------------------------------------------------

    @override
    def reset(self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key) -> LoggingState:
        """A fresh token for this run's chain of host calls and an empty
        buffer of records."""
        size = max(1, min(ctx.algorithm.host_call_every, _MAX_BUFFER))
        names = [f"train/{k}" for k in ctx.algorithm.initial_training_log()]
        taken = {*names, *_ROLLOUT_NAMES, "rollout/episodes", *TIME_NAMES}
        for metric in ctx.metric_names:
            if metric in taken:
                raise ValueError(
                    f"LoggingCallback: a callback publishes the metric {metric!r}, "
                    "a name the logger writes itself; publish it under another "
                    "name (e.g. with a prefix of your own, 'eval/...')"
                )
        names.extend(ctx.metric_names)
        zero_i = jnp.zeros((size,), jnp.int32)
        zero_b = jnp.zeros((size,), jnp.bool_)
        pending = IterationRecord.pack(
            iteration=zero_i,
            timesteps=zero_i,
            episodes=zero_i,
            ema_valid=zero_b,
            window_valid=zero_b,
            scalars={
                name: jnp.zeros((size,), jnp.float32)
                for name in (*names, *_ROLLOUT_NAMES)
            },
        )
        return LoggingState(
            token=new_token(),
            pending=pending,
            count=jnp.zeros((), jnp.int32),
            experiment=jnp.zeros((2,), jnp.int32),
            offsets=jnp.full((2,), -1, jnp.int32),
        )

    @override
    def step_reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeStatistics:
        """Empty statistics: no episode completed, no window."""
        return initial_statistics()

    @override
    def on_rollout(
        self,
        ctx: RolloutContext[EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> EpisodeStatistics:
        """Add the rollout's raw rewards; where an episode ended, close it.
        Once per iteration, over all steps and environments at once (per
        step, it was a few kernels per environment step)."""
        # The window describes the episodes since the last logged iteration.
        every = self.iterations_between_logs(ctx.algorithm)
        return update_statistics_over(
            ctx.state,
            ctx.rewards,
            ctx.dones,
            ctx.iteration_count,
            every,
            self.ema_alpha,
        )

    @override
    def on_training_start(
        self,
        ctx: TrainingContext[LoggingState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> LoggingState:
        """Open the backends' runs and record the hyperparameters."""
        self._check_types(ctx.env, ctx.policy)
        algorithm = ctx.algorithm
        total = algorithm.num_iterations(ctx.total_timesteps) * (
            algorithm.steps_per_iteration
        )
        static: dict[str, HParamValue] = {}
        dynamic: dict[str, Float[Array, ""]] = {}
        for prefix, obj in (
            ("algorithm", algorithm),
            ("env", ctx.env),
            ("policy", ctx.policy),
        ):
            static[f"{prefix}/name"] = str(getattr(obj, "name", type(obj).__name__))
            _collect_hparams(prefix, obj, static, dynamic)
        start = StartInfo(
            algorithm=algorithm.name,
            env=ctx.env.name,
            policy=ctx.policy.name,
            total_timesteps=total,
            static_hparams=tuple(static.items()),
            dynamic_hparams=tuple(sorted(dynamic)),
        )
        state = ctx.state
        # A run that started before (its state was saved and is resumed)
        # tells the host where it was: its experiment, offsets and counters,
        # and the first record it had buffered but not sent.
        point = jnp.stack(
            [
                jnp.asarray(x, jnp.int32)
                for x in (
                    state.offsets[0],
                    state.offsets[1],
                    state.experiment[0],
                    state.experiment[1],
                    ctx.iteration_count,
                    ctx.num_timesteps,
                    state.count,
                    state.pending.timesteps[0],
                )
            ]
        )
        token = host_call(
            functools.partial(_host_start, start),
            (self.logger_id, dynamic, point),
            ctx.run_index,
            state.token,
        )
        # What the host decided (or confirmed, for a resumed run), so that a
        # run resumed from a later state continues the same way.
        words = []
        answer = token
        for which in range(4):
            answer = host_call(
                functools.partial(_host_word, which),
                self.logger_id,
                ctx.run_index,
                answer,
            )
            words.append(answer)
        return LoggingState(
            token=token,
            pending=state.pending,
            count=state.count,
            experiment=jnp.stack(words[:2]),
            offsets=jnp.stack(words[2:]),
        )

    @override
    def on_iteration(
        self,
        ctx: IterationContext[LoggingState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> LoggingState:
        """Send this iteration's record, if it is one to log."""
        algorithm = ctx.algorithm
        last = algorithm.num_iterations(ctx.total_timesteps)
        iteration = ctx.iteration_count
        every = self.iterations_between_logs(algorithm)
        due = jnp.logical_or(iteration % every == 0, iteration == last)
        # A vmapped run that stopped early still evaluates the loop body while
        # the others go on; it is not active and logs nothing.
        should_log = jnp.logical_and(due, ctx.active)
        state = ctx.state

        def write(pending: IterationRecord) -> IterationRecord:
            # Slot `count` is free (a full buffer was sent and emptied).
            out: IterationRecord = jax.tree.map(
                lambda buffer, x: buffer.at[state.count].set(x),
                pending,
                self._record(ctx),
            )
            return out

        # The record is computed only in iterations that log: with a cheap
        # iteration (A2C's, SAC's) its reductions are not negligible. (Under
        # vmap with a batched flag this is a select, as before.)
        pending = jax.lax.cond(should_log, write, lambda p: p, state.pending)
        count = state.count + should_log.astype(jnp.int32)
        size = jax.tree.leaves(pending)[0].shape[0]
        # Sent when the buffer is full, at the last iteration, and at the
        # algorithm's periodic host call, so records arrive while training.
        periodic = iteration % algorithm.host_call_every == 0
        send = jnp.logical_and(
            count > 0,
            jnp.logical_or(jnp.logical_or(count == size, iteration == last), periodic),
        )
        token = host_call(
            _host_send,
            (self.logger_id, pending, count),
            ctx.run_index,
            state.token,
            when=send,
        )
        return dataclasses.replace(
            state, token=token, pending=pending, count=jnp.where(send, 0, count)
        )

    def _record(
        self,
        ctx: IterationContext[LoggingState, EpisodeStatistics, AnyEnv, AnyPolicy],
    ) -> IterationRecord:
        """This iteration's record."""
        every = self.iterations_between_logs(ctx.algorithm)
        summary = summarize(ctx.step_state, ctx.iteration_count, every)

        scalars = {
            f"train/{k}": jnp.asarray(v, jnp.float32)
            for k, v in ctx.training_log.items()
        }
        scalars.update(summary.scalars)
        # In the buffer's order; the published metrics this logger was reset
        # for (their latest values) too.
        return IterationRecord.pack(
            iteration=ctx.iteration_count,
            timesteps=ctx.num_timesteps,
            episodes=summary.episodes,
            ema_valid=summary.ema_valid,
            window_valid=summary.window_valid,
            scalars={
                name: scalars[name] if name in scalars else ctx.metrics[name]
                for name in ctx.state.pending.names
            },
        )

    @override
    def host_ids(self) -> tuple[Int[Array, ""], ...]:
        """The logger's id: the loop asks whether it has failed."""
        return (self.logger_id,)

    @override
    def continue_training(
        self,
        ctx: IterationContext[LoggingState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> Bool[Array, ""]:
        """False once a backend has failed (the host call says so through the
        token): the run stops, and its status says logging failed."""
        return ctx.state.token == 0

    @override
    def on_training_end(
        self,
        ctx: TrainingContext[LoggingState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> LoggingState:
        """Send the records still buffered and tell the backends this run's
        ``learn`` call ended."""
        state = ctx.state
        ends = jnp.stack([ctx.iteration_count, ctx.num_timesteps]).astype(jnp.int32)
        record = (self.logger_id, state.pending, state.count, ends)
        token = host_call(_host_end, record, ctx.run_index, state.token)
        return dataclasses.replace(state, token=token, count=jnp.zeros((), jnp.int32))

    # -- host side ------------------------------------------------------------

    @property
    def failure(self) -> LoggingBackendError | None:
        """The first backend failure so far (its ``backend``, ``location``,
        ``method``, ``run_indices`` and ``iteration`` say what failed), or
        None; never raises. Host side only (it reads ``logger_id``); it stays
        readable after [`close`][lerax.callback.logging.LoggingCallback.close]."""
        host = _OWNED.get(int(self.logger_id))
        return None if host is None else host.failure

    def close(self) -> None:
        """Wait for training still running asynchronously (``learn`` may return
        before the device finishes), then flush and close every backend and
        stop the writer thread (waiting at most ``drain_timeout`` seconds for
        it).

        Calling it again does nothing.

        Raises:
            LoggingBackendError: the first backend failure, after everything
                else is closed (with a note for each further failure); if that
                backend raised ``KeyboardInterrupt`` or ``SystemExit``, that
                exception itself, with a note naming the backend.
        """
        failures = self._close()
        if failures:
            raise _to_raise(failures)

    def _close(self) -> tuple[LoggingBackendError, ...]:
        """Close as [`close`][lerax.callback.logging.LoggingCallback.close] does; the
        failures to report (none if it was closed before). If waiting for training
        raises, the logger is closed all the same and that error is raised, noting the
        failures."""
        waiting_error: BaseException | None = None
        try:
            jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
        except BaseException as err:  # noqa: BLE001  # raised below, after closing
            waiting_error = err
        host = release(int(self.logger_id))
        failures: tuple[LoggingBackendError, ...] = ()
        if isinstance(host, HostLogger):
            host.close()
            failures = host.failures
        if waiting_error is not None:
            for failure in failures:
                waiting_error.add_note(f"LoggingCallback.close(): {failure}")
            raise waiting_error
        return failures

    def __enter__(self) -> "LoggingCallback":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the logger. If the block raised, closing never replaces its
        exception: each close failure is added to it as a note, and it goes
        on; otherwise this raises as
        [`close`][lerax.callback.logging.LoggingCallback.close] does."""
        if exc is None:
            self.close()
            return
        try:
            failures = self._close()
        except BaseException as err:  # noqa: BLE001  # never mask the block's error
            exc.add_note(f"LoggingCallback.close() failed too: {err!r}")
            return
        for failure in failures:
            if exc is failure or exc is raisable(failure):
                continue  # train already raised it: the block's own error
            exc.add_note(f"LoggingCallback.close(): {failure}")

    def _check_types(self, env: object, policy: object) -> None:
        for argument, expected, got in (
            ("env", self.env_type, env),
            ("policy", self.policy_type, policy),
        ):
            if expected is not None and not isinstance(got, expected):
                raise TypeError(
                    f"LoggingCallback was built with {argument} of type "
                    f"{expected.__name__}, but training uses {type(got).__name__}"
                )


def _check_backends(backends: object) -> list[AbstractLoggingBackend]:
    if isinstance(backends, AbstractLoggingBackend):
        return [backends]
    if isinstance(backends, str | bytes) or not isinstance(backends, Sequence):
        raise TypeError(
            "LoggingCallback: backends must be a logging backend or a sequence of "
            f"them (AbstractLoggingBackend), got backends={backends!r}"
        )
    items: list[object] = list(backends)
    if not items:
        raise ValueError(
            "LoggingCallback: backends must hold at least one backend, got an "
            "empty sequence"
        )
    out: list[AbstractLoggingBackend] = []
    for i, item in enumerate(items):
        if not isinstance(item, AbstractLoggingBackend):
            raise TypeError(
                f"LoggingCallback: backends[{i}] must be a logging backend "
                f"(AbstractLoggingBackend), got {item!r}"
            )
        out.append(item)
    return out


def _check_hparams(hparams: object) -> dict[str, HParamValue]:
    if hparams is None:
        return {}
    if not isinstance(hparams, Mapping):
        raise TypeError(
            "LoggingCallback: hparams must be a mapping of str to bool, int, float "
            f"or str, got hparams={hparams!r}"
        )
    out: dict[str, HParamValue] = {}
    for key, value in hparams.items():
        if not isinstance(key, str) or not isinstance(value, bool | int | float | str):
            raise TypeError(
                "LoggingCallback: hparams must map str to bool, int, float or str, "
                f"got {key!r}: {value!r}"
            )
        out[key] = value
    return out


def _collect_hparams(
    prefix: str,
    obj: object,
    static: dict[str, HParamValue],
    dynamic: dict[str, Float[Array, ""]],
) -> None:
    """The hyperparameters among ``obj``'s fields: Python scalars and strings
    (known while tracing) and numeric scalar arrays (sent at run time)."""
    if not dataclasses.is_dataclass(obj):
        return
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name, None)
        key = f"{prefix}/{field.name}"
        if isinstance(value, bool | int | float | str):
            static[key] = value
        elif (
            isinstance(value, jax.Array)
            and value.ndim == 0
            and (
                jnp.issubdtype(value.dtype, jnp.number)
                or jnp.issubdtype(value.dtype, jnp.bool_)
            )
        ):
            dynamic[key] = jnp.asarray(value, jnp.float32)


def _to_raise(failures: tuple[LoggingBackendError, ...]) -> BaseException:
    """What [`LoggingCallback.close`][lerax.callback.logging.LoggingCallback.close]
    raises for ``failures``: the first, noting the others; a backend's
    ``KeyboardInterrupt``/``SystemExit`` as itself (see ``raisable``)."""
    first = failures[0]
    raised = raisable(first)
    for other in failures[1:]:
        note = f"also: {other}"
        if note not in getattr(raised, "__notes__", ()):
            raised.add_note(note)
    return raised


_OWNED: dict[int, HostLogger] = {}
"""The host logger of every ``LoggingCallback`` you constructed that is
alive, by id (``failure`` reads it, also after ``close()``)."""


def _collected(ident: int) -> None:
    """The ``LoggingCallback`` with id ``ident`` was garbage-collected: its
    logger closes once no run is in flight, and leaves the registry.

    The garbage collector may run this on any thread, at any allocation,
    even while that thread holds one of Lerax's locks; so it takes no lock
    and waits for nothing: it drops a dict entry (int keys: no Python code
    runs) and puts a message on the writer's ``SimpleQueue`` (reentrant)."""
    host = _OWNED.pop(ident, None)
    if host is not None:
        host.orphan()


def _host_start(
    info: StartInfo,
    record: tuple[
        npt.NDArray[np.int32], dict[str, npt.NDArray[np.float32]], npt.NDArray[np.int32]
    ],
    run_index: int,
    runs: int,
) -> int:
    """Returns the run's first token: 1 if the logger failed in an earlier
    ``learn`` call (the run then stops after its first iteration), else 0."""
    logger_id, values, point = record
    dynamic: dict[str, HParamValue] = {k: float(v) for k, v in values.items()}
    host = lookup(int(logger_id), HostLogger)
    host.start(info, run_index, runs, dynamic, _resume_point(point))
    return 0 if host.failure is None else 1


def _resume_point(point: npt.NDArray[np.int32]) -> ResumePoint | None:
    """What a resumed run's state says (see ``on_training_start``); None for
    a run that starts afresh (its offsets are still -1)."""
    step_offset, iteration_offset, stamp, nonce, iteration, timesteps, count, first = (
        int(x) for x in point
    )
    if step_offset < 0:
        return None
    return ResumePoint(
        experiment=Experiment.from_words(stamp, nonce),
        step_offset=step_offset,
        iteration_offset=iteration_offset,
        iteration=iteration,
        timesteps=timesteps,
        first_pending=first if count > 0 else None,
    )


def _host_word(
    which: int, logger_id: npt.NDArray[np.int32], run_index: int, runs: int
) -> int:
    """One word of what the run's state keeps once it started (see
    ``HostLogger.word``)."""
    return lookup(int(logger_id), HostLogger).word(run_index, which)


def _host_send(
    record: tuple[npt.NDArray[np.int32], IterationRecord, npt.NDArray[np.int32]],
    run_index: int,
    runs: int,
) -> int:
    """The host call that sends buffered records: as little as possible,
    since the compiled program waits for it; the writer thread decodes them.
    Returns the run's next token: 1 once a backend has failed (training
    stops), else 0."""
    logger_id, pending, count = record
    host = lookup(int(logger_id), HostLogger)
    _queue(host, run_index, pending, int(count))
    return 0 if host.failure is None else 1


def _queue(
    host: HostLogger, run_index: int, pending: IterationRecord, count: int
) -> None:
    """Queue the first ``count`` buffered records of a run. They arrive
    together: their wall clocks are spread between the previous send and
    now in proportion to their steps, so each has the batch's rate."""
    if count <= 0:
        return
    now = time.perf_counter()
    since, steps_then = host.send_marks.get(run_index, (now, 0))
    # (On the host the leaves are NumPy arrays: read them, not the
    # properties, which are typed for the compiled program.)
    steps = [int(t) for t in pending.counts[:count, _TIMESTEPS]]
    span = max(steps[-1] - steps_then, 1)
    for j, timesteps in enumerate(steps):
        # (A resumed run's records buffered before it was saved: at its start.)
        clock = since + (now - since) * max(timesteps - steps_then, 0) / span
        one = jax.tree.map(lambda leaf, j=j: leaf[j], pending)
        host.log(clock, run_index, functools.partial(_decode_iteration, run_index, one))
    host.send_marks[run_index] = (now, steps[-1])


def _decode_iteration(run_index: int, record: IterationRecord) -> Record:
    """One buffered record (NumPy leaves) as the backends' ``Record``."""
    counts = np.asarray(record.counts)
    flags = np.asarray(record.flags)
    scalars: dict[str, float] = {"rollout/episodes": float(counts[_EPISODES])}
    for name, value in zip(record.names, np.asarray(record.values), strict=True):
        if name in _EMA_NAMES and not flags[_EMA_VALID]:
            continue
        if name in _WINDOW_NAMES and not flags[_WINDOW_VALID]:
            continue
        scalars[name] = float(value)
    ordered = {k: scalars[k] for k in sorted(scalars, key=_order)}
    return Record(run_index, int(counts[_ITERATION]), int(counts[_TIMESTEPS]), ordered)


def _order(name: str) -> tuple[int, int, str]:
    """Rollout statistics first (returns before lengths), then the training log."""
    group = name.split("/", 1)[0]
    rank = _ROLLOUT_ORDER.index(name) if name in _ROLLOUT_ORDER else 0
    return ({"time": 0, "rollout": 1, "train": 2}.get(group, 3), rank, name)


_ROLLOUT_ORDER = (
    "rollout/ep_return_ema",
    "rollout/ep_return_mean",
    "rollout/ep_return_min",
    "rollout/ep_return_max",
    "rollout/ep_length_ema",
    "rollout/ep_length_mean",
    "rollout/episodes",
)


def _host_end(
    record: tuple[
        npt.NDArray[np.int32],
        IterationRecord,
        npt.NDArray[np.int32],
        npt.NDArray[np.int32],
    ],
    run_index: int,
    runs: int,
) -> None:
    logger_id, pending, count, ends = record
    host = lookup(int(logger_id), HostLogger)
    _queue(host, run_index, pending, int(count))
    host.end(run_index, int(ends[0]), int(ends[1]))


@atexit.register
def _close_all() -> None:
    """Flush and close every logger still open when Python exits (each
    waiting at most its ``drain_timeout``); failures are dropped: at exit
    there is no one left to tell."""
    for host in registered(HostLogger):
        host.close()
