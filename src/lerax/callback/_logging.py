"""LoggingCallback: training metrics to pluggable backends, seed-aware."""

import atexit
import dataclasses
import functools
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Key
from ..algorithm._optim import current_learning_rate
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from ._base import AbstractCallback, EmptyCallbackState
from ._context import IterationContext, ResetContext, StepContext, TrainingContext
from ._host_call import host_call
from ._logging_backend import AbstractLoggingBackend, HParamValue
from ._logging_host import any_run, lookup, register, registered, release
from ._logging_session import HostLogger, Record, StartInfo

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]


@final
class EpisodeStatistics(eqx.Module):
    """:class:`LoggingCallback`'s step state: one environment's episodes.

    Built from raw environment rewards; it persists across rollouts, so an
    episode may span several iterations. All values live in one int32 vector,
    the floats as their bit patterns: each loop-carried array costs the
    rollout loop kernels and a copy per step, and one vector halves what the
    statistics cost a run (about 0.5 %). The properties name the values. With
    a leading axis (one row per environment) when read from a training result.

    Attributes:
        data: the six float32 values (as int32 bit patterns), then the four
            ints; read them through :attr:`floats`, :attr:`ints` and the named
            properties.
    """

    data: Int[Array, "*envs 10"]

    @property
    def floats(self) -> Float[Array, "*envs 6"]:
        """``episode_return``, ``return_ema``, ``length_ema``,
        ``window_return_sum``, ``window_return_min``, ``window_return_max``,
        in this order."""
        return jax.lax.bitcast_convert_type(self.data[..., :6], jnp.float32)

    @property
    def ints(self) -> Int[Array, "*envs 4"]:
        """``episode_length``, ``window_iteration``, ``window_episodes``,
        ``window_length_sum``, in this order."""
        return self.data[..., 6:]

    @property
    def episode_return(self) -> Float[Array, "*envs"]:
        """The return of the episode in progress so far."""
        return self.floats[..., 0]

    @property
    def return_ema(self) -> Float[Array, "*envs"]:
        """EMA of completed episodes' returns, started at the first one
        (``ema = ema_alpha * ema + (1 - ema_alpha) * episode_return``)."""
        return self.floats[..., 1]

    @property
    def length_ema(self) -> Float[Array, "*envs"]:
        """The same for episode lengths (0 until an episode has ended)."""
        return self.floats[..., 2]

    @property
    def window_return_sum(self) -> Float[Array, "*envs"]:
        """The sum of the returns of the episodes that ended in the window's
        iteration."""
        return self.floats[..., 3]

    @property
    def window_return_min(self) -> Float[Array, "*envs"]:
        """The smallest of them (``inf`` if none)."""
        return self.floats[..., 4]

    @property
    def window_return_max(self) -> Float[Array, "*envs"]:
        """The largest of them (``-inf`` if none)."""
        return self.floats[..., 5]

    @property
    def episode_length(self) -> Int[Array, "*envs"]:
        """The length of the episode in progress so far."""
        return self.ints[..., 0]

    @property
    def window_iteration(self) -> Int[Array, "*envs"]:
        """The iteration (0-based) the window fields describe."""
        return self.ints[..., 1]

    @property
    def window_episodes(self) -> Int[Array, "*envs"]:
        """Episodes that ended in that iteration."""
        return self.ints[..., 2]

    @property
    def window_length_sum(self) -> Int[Array, "*envs"]:
        """The sum of their lengths."""
        return self.ints[..., 3]

    @property
    def completed(self) -> Bool[Array, "*envs"]:
        """At least one episode has ended (the EMAs are defined): episode
        lengths are at least 1, so the length EMA is positive from then on."""
        return self.length_ema > 0


def _pack(floats: Float[Array, " 6"], ints: Int[Array, " 4"]) -> EpisodeStatistics:
    """One environment's statistics from their float and int values."""
    return EpisodeStatistics(
        jnp.concatenate([jax.lax.bitcast_convert_type(floats, jnp.int32), ints])
    )


BackendsLike = AbstractLoggingBackend | Sequence[AbstractLoggingBackend]


@final
class LoggingCallback(AbstractCallback[EmptyCallbackState, EpisodeStatistics]):
    """Log training metrics to one or more backends.

    Every ``log_every`` iterations (and at the last one) each backend receives:

    - ``train/<name>`` for every entry of the algorithm's training log, and
      ``train/learning_rate`` (from the optimizer state if the log lacks it);
    - ``rollout/ep_return_ema``, ``rollout/ep_length_ema``: EMAs over completed
      episodes of raw environment rewards, per environment, averaged over the
      environments that completed an episode; absent until one has;
    - ``rollout/episodes``: episodes completed in the iteration, and, when
      there were any, ``rollout/ep_return_mean|min|max`` and
      ``rollout/ep_length_mean`` over them;
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
    iterations go on from where the previous call ended. Call :meth:`close` at
    the end (or use the logger as a context manager). A writer thread makes the
    backend calls and flushes them at most every 0.25 s and at the end of
    every ``learn`` call; ``close()``, a backend error and interpreter
    exit flush what is pending, so what was logged before an exception is on
    disk.

    Example::

        logger = LoggingCallback([TensorBoardBackend(), ConsoleBackend()], env=env)
        policy = PPO().learn(env, policy, 2**16, key=key, callback=logger)
        logger.close()

    Args:
        backends: a backend or a sequence of them.
        env: optional; if given, training must use an environment of this type.
        policy: optional; if given, training must use a policy of this type.
        log_every: log every this many iterations (and always the last one).
        ema_alpha: the EMAs' weight on the previous value, in ``[0, 1)``.
        name: the experiment name (directory and W&B run name); default
            ``<algorithm>_<env>_<YYYYmmdd-HHMMSS>`` at the first ``learn``.
        hparams: extra hyperparameters to record (e.g. the seed).

    Raises:
        TypeError: if ``backends``, ``env``, ``policy`` or ``hparams`` has the
            wrong type.
        ValueError: if ``backends`` is empty, ``log_every < 1``, ``ema_alpha`` is
            outside ``[0, 1)`` or ``name`` is empty.
    """

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
        log_every: int = 1,
        ema_alpha: float = 0.9,
        name: str | None = None,
        hparams: Mapping[str, HParamValue] | None = None,
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
        if (
            isinstance(log_every, bool)
            or not isinstance(log_every, int)
            or (log_every < 1)
        ):
            raise ValueError(
                f"LoggingCallback: log_every must be a positive int, got "
                f"log_every={log_every!r}"
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
        host = HostLogger(backend_list, name, extra)
        self.logger_id = jnp.asarray(register(host), jnp.int32)
        self.log_every = log_every
        self.ema_alpha = float(ema_alpha)
        self.env_type = None if env is None else type(env)
        self.policy_type = None if policy is None else type(policy)

    # -- hooks ----------------------------------------------------------------

    def step_reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key
    ) -> EpisodeStatistics:
        """Empty statistics: no episode completed, no window."""
        inf = jnp.inf
        return _pack(
            jnp.array([0.0, 0.0, 0.0, 0.0, inf, -inf], jnp.float32),
            jnp.array([0, -1, 0, 0], jnp.int32),
        )

    def on_step(
        self,
        ctx: StepContext[EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> EpisodeStatistics:
        """Add the step's raw reward; on ``done``, close the episode."""
        s = ctx.state
        # The window describes the current iteration: restart it when the
        # iteration moved on (a hook can only update step state here).
        current = s.window_iteration == ctx.iteration_count
        episodes = jnp.where(current, s.window_episodes, 0)
        return_sum = jnp.where(current, s.window_return_sum, 0.0)
        length_sum = jnp.where(current, s.window_length_sum, 0)
        return_min = jnp.where(current, s.window_return_min, jnp.inf)
        return_max = jnp.where(current, s.window_return_max, -jnp.inf)

        ret = s.episode_return + jnp.asarray(ctx.reward, jnp.float32)
        length = s.episode_length + 1
        done = ctx.done
        length_f = length.astype(jnp.float32)
        a = self.ema_alpha
        completed = s.completed
        return_ema = jnp.where(completed, a * s.return_ema + (1.0 - a) * ret, ret)
        length_ema = jnp.where(
            completed, a * s.length_ema + (1.0 - a) * length_f, length_f
        )
        floats = jnp.stack(
            [
                jnp.where(done, 0.0, ret),
                jnp.where(done, return_ema, s.return_ema),
                jnp.where(done, length_ema, s.length_ema),
                return_sum + jnp.where(done, ret, 0.0),
                jnp.where(done, jnp.minimum(return_min, ret), return_min),
                jnp.where(done, jnp.maximum(return_max, ret), return_max),
            ]
        )
        ints = jnp.stack(
            [
                jnp.where(done, 0, length),
                jnp.asarray(ctx.iteration_count, jnp.int32),
                episodes + done.astype(jnp.int32),
                length_sum + jnp.where(done, length, 0),
            ]
        )
        return _pack(floats, ints)

    def on_training_start(
        self,
        ctx: TrainingContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> EmptyCallbackState:
        """Open the backends' runs and record the hyperparameters."""
        self._check_types(ctx.env, ctx.policy)
        algorithm = ctx.algorithm
        total = algorithm.num_iterations(ctx.total_timesteps) * (
            algorithm.steps_per_iteration
        )
        static: dict[str, HParamValue] = {}
        dynamic_names: list[str] = []
        dynamic_values: list[Float[Array, ""]] = []
        for prefix, obj in (
            ("algorithm", algorithm),
            ("env", ctx.env),
            ("policy", ctx.policy),
        ):
            static[f"{prefix}/name"] = str(getattr(obj, "name", type(obj).__name__))
            _collect_hparams(prefix, obj, static, dynamic_names, dynamic_values)
        start = StartInfo(
            algorithm=algorithm.name,
            env=ctx.env.name,
            policy=ctx.policy.name,
            total_timesteps=total,
            static_hparams=tuple(static.items()),
            dynamic_hparams=tuple(dynamic_names),
        )
        floats = (
            jnp.stack(dynamic_values)
            if dynamic_values
            else jnp.zeros((0,), jnp.float32)
        )
        host_call(
            functools.partial(_host_start, start),
            [self.logger_id, floats],
            ctx.run_index,
        )
        return ctx.state

    def on_iteration(
        self,
        ctx: IterationContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> EmptyCallbackState:
        """Send this iteration's record, if it is one to log."""
        algorithm = ctx.algorithm
        last = algorithm.num_iterations(ctx.total_timesteps)
        iteration = ctx.iteration_count
        due = jnp.logical_or(iteration % self.log_every == 0, iteration == last)
        # A vmapped run that stopped early still evaluates the loop body while
        # the others go on; it is not active and logs nothing.
        should_log = jnp.logical_and(due, ctx.active)

        def send() -> None:
            # Built here, so iterations that are not logged skip the work.
            names, packed = self._record(ctx, should_log)
            host = functools.partial(_host_iteration, names)
            host_call(host, [packed], ctx.run_index)

        def skip() -> None:
            return None

        jax.lax.cond(any_run(should_log), send, skip)
        return ctx.state

    def _record(
        self,
        ctx: IterationContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
        should_log: Bool[Array, ""],
    ) -> tuple[tuple[str, ...], Int[Array, " record"]]:
        """The scalars' names and the packed record of this iteration."""
        st = ctx.step_state
        current = st.window_iteration == ctx.iteration_count - 1
        episodes_per_env = jnp.where(current, st.window_episodes, 0)
        episodes = jnp.sum(episodes_per_env)
        denom = jnp.maximum(episodes, 1).astype(jnp.float32)
        return_mean = jnp.sum(jnp.where(current, st.window_return_sum, 0.0)) / denom
        length_mean = (
            jnp.sum(jnp.where(current, st.window_length_sum, 0)).astype(jnp.float32)
            / denom
        )
        return_min = jnp.min(jnp.where(current, st.window_return_min, jnp.inf))
        return_max = jnp.max(jnp.where(current, st.window_return_max, -jnp.inf))
        n_completed = jnp.sum(st.completed.astype(jnp.int32))
        ema_denom = jnp.maximum(n_completed, 1).astype(jnp.float32)
        return_ema = jnp.sum(jnp.where(st.completed, st.return_ema, 0.0)) / ema_denom
        length_ema = jnp.sum(jnp.where(st.completed, st.length_ema, 0.0)) / ema_denom

        log = ctx.training_log
        names = [f"train/{k}" for k in sorted(log)]
        values = [jnp.asarray(log[k], jnp.float32) for k in sorted(log)]
        if "learning_rate" not in log:
            names.append("train/learning_rate")
            values.append(current_learning_rate(ctx.opt_state))
        names += list(_ROLLOUT_NAMES)
        values += [
            return_ema,
            length_ema,
            return_mean,
            return_min,
            return_max,
            length_mean,
        ]
        floats = jnp.stack(values).astype(jnp.float32)
        ints = jnp.stack(
            [
                self.logger_id,
                should_log.astype(jnp.int32),
                ctx.iteration_count,
                ctx.num_timesteps,
                episodes,
                (n_completed > 0).astype(jnp.int32),
                (episodes > 0).astype(jnp.int32),
            ]
        ).astype(jnp.int32)
        # One operand: each operand of a host call costs a host-side transfer.
        # The floats travel bit for bit (NaN and inf included) as int32.
        packed = jnp.concatenate(
            [ints, jax.lax.bitcast_convert_type(floats, jnp.int32)]
        )
        return tuple(names), packed

    def on_training_end(
        self,
        ctx: TrainingContext[EmptyCallbackState, EpisodeStatistics, AnyEnv, AnyPolicy],
        *,
        key: Key,
    ) -> EmptyCallbackState:
        """Tell the backends this run's ``learn`` call ended."""
        ints = jnp.stack(
            [self.logger_id, ctx.iteration_count, ctx.num_timesteps]
        ).astype(jnp.int32)
        host_call(_host_end, [ints], ctx.run_index)
        return ctx.state

    # -- host side ------------------------------------------------------------

    def close(self) -> None:
        """Wait for training still running asynchronously (``learn`` may return
        before the device finishes), then flush and close every backend.
        Calling it again does nothing."""
        jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
        host = release(int(self.logger_id))
        if isinstance(host, HostLogger):
            host.close()

    def __enter__(self) -> "LoggingCallback":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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


_ROLLOUT_NAMES = (
    "rollout/ep_return_ema",
    "rollout/ep_length_ema",
    "rollout/ep_return_mean",
    "rollout/ep_return_min",
    "rollout/ep_return_max",
    "rollout/ep_length_mean",
)
_EMA_NAMES = frozenset(_ROLLOUT_NAMES[:2])
_WINDOW_NAMES = frozenset(_ROLLOUT_NAMES[2:])


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
    dynamic_names: list[str],
    dynamic_values: list[Float[Array, ""]],
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
            dynamic_names.append(key)
            dynamic_values.append(jnp.asarray(value, jnp.float32))


def _host_start(
    info: StartInfo, row: tuple[npt.NDArray[Any], ...], run_index: int, runs: int
) -> None:
    logger_id, floats = row
    dynamic: dict[str, HParamValue] = dict(
        zip(info.dynamic_hparams, floats.tolist(), strict=True)
    )
    lookup(int(logger_id), HostLogger).start(info, run_index, runs, dynamic)


_HEADER = 7  # the int32 fields in front of the floats in an iteration record


def _host_iteration(
    names: tuple[str, ...],
    row: tuple[npt.NDArray[Any], ...],
    run_index: int,
    runs: int,
) -> None:
    """The per-iteration host call: as little as possible, since the compiled
    program waits for it; the writer thread decodes the record."""
    (data,) = row
    if not data[1]:  # should_log
        return
    clock = time.perf_counter()
    host = lookup(int(data[0]), HostLogger)
    # A copy: XLA reuses the buffer the row views once the call returns.
    record = np.array(data, np.int32)
    host.log(clock, functools.partial(_decode_iteration, names, run_index, record))


def _decode_iteration(
    names: tuple[str, ...], run_index: int, data: npt.NDArray[np.int32]
) -> Record:
    (
        _,
        _,
        iteration,
        timesteps,
        episodes,
        ema_valid,
        window_valid,
    ) = data[:_HEADER].tolist()
    values: list[float] = data[_HEADER:].view(np.float32).tolist()
    scalars: dict[str, float] = {"rollout/episodes": float(episodes)}
    for name, value in zip(names, values, strict=True):
        if name in _EMA_NAMES and not ema_valid:
            continue
        if name in _WINDOW_NAMES and not window_valid:
            continue
        scalars[name] = value
    ordered = {k: scalars[k] for k in sorted(scalars, key=_order)}
    return Record(run_index, iteration, timesteps, ordered)


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


def _host_end(row: tuple[npt.NDArray[Any], ...], run_index: int, runs: int) -> None:
    logger_id, iteration, timesteps = row[0].tolist()
    lookup(logger_id, HostLogger).end(run_index, iteration, timesteps)


@atexit.register
def _close_all() -> None:
    """Flush and close every logger still open when Python exits."""
    for host in registered(HostLogger):
        try:
            host.close()
        except Exception:  # noqa: BLE001  # at exit there is no one left to tell
            pass
