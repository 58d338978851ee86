"""The host side of a [`LoggingCallback`][lerax.callback.logging.LoggingCallback].

The compiled program blocks while a host call runs, and every host call
needs the GIL, so the host calls (``HostLogger.start``,
``HostLogger.log``, ``HostLogger.end``) do almost nothing: they
update a little bookkeeping and put a message on a ``queue.SimpleQueue``.
One worker thread per logger does the rest (decoding, step offsets, rates,
every backend call) in program order, in batches at most every
``BATCH_SECONDS`` (each wake-up of the worker costs the training thread a
little on a small machine), and flushes the backends at most every
``FLUSH_SECONDS``, at the end of every ``learn`` call and right after a
backend failure.

Contracts:

- The host calls never raise because of a backend. The worker catches
  everything a backend raises (``BaseException``: ``KeyboardInterrupt`` and
  ``SystemExit`` included), records it as a
  [`LoggingBackendError`][lerax.callback.logging.LoggingBackendError] (which backend,
  which method, which runs and iteration), flushes the other backends, calls the failed
  backend no more (but for ``close`` at the end) and goes on with the others.
  ``LoggingCallback.close()`` raises the first failure.
- The last ``end`` of a ``learn`` call waits until the worker has made every
  call queued before it and flushed, so that when the compiled program
  finishes everything it logged is written and flushed; but it waits only
  while the worker is alive and at most ``drain_timeout`` seconds. After
  that it records the backend the worker is calling as stuck and returns,
  so the compiled program always finishes; later waits do not wait for that
  call again. ``close()`` waits the same way.
- A hard kill (``SIGKILL``) loses at most what was logged since the last
  flush (about ``FLUSH_SECONDS``, plus a batch); every flush writes whole
  records, so what is on disk stays readable.
- The worker exits at ``close()``, or when the ``LoggingCallback`` that owns
  the logger is garbage-collected (see ``HostLogger.orphan``): at once if
  no run is in flight, else when the last run in flight ends.
- A run resumed from a saved state (``train(resume_from=...)``) continues
  the experiment and the logged steps it was saved with (``ResumePoint``),
  also in a new logger in a new process: the experiment's identity
  (``Experiment``) and each run's offsets travel in its ``LoggingState``.
"""

import calendar
import dataclasses
import functools
import math
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import final

from ..._host import clear_failure, fail, release
from ._backend import AbstractLoggingBackend, HParamValue, LoggingBackendError, RunInfo

FLUSH_SECONDS = 0.25
"""The worker flushes the backends at most this often while records come
(and always at the end of every ``learn`` call, at ``close()`` and after a
backend failure)."""

BATCH_SECONDS = 0.05
"""After a batch, the worker lets records gather this long before the next
(the first record after a pause is written at once; a drain cuts the pause
short)."""

_POLL_SECONDS = 0.05
"""How often a waiting host call checks that the worker is still alive."""

# What the writer adds to every iteration record.
TIME_NAMES = ("time/timesteps", "time/iteration", "time/steps_per_second")

_WORD = 1 << 32


@final
@dataclasses.dataclass(frozen=True)
class Experiment:
    """What identifies an experiment (all runs of one ``LoggingCallback``):
    when it was created and 32 random bits, both unsigned 32-bit words, so
    that a run's ``LoggingState`` can carry them as int32 arrays.

    ``stamp`` is the local date and time read as if it were UTC (seconds
    since 1970), so the name it gives is the same in every time zone.
    """

    stamp: int
    nonce: int

    @staticmethod
    def new() -> "Experiment":
        """One created now (its ``nonce`` never 0)."""
        stamp = calendar.timegm(time.localtime()) % _WORD
        return Experiment(stamp, secrets.randbits(32) or 1)

    @staticmethod
    def from_words(stamp: int, nonce: int) -> "Experiment":
        """The experiment whose ``words()`` these are."""
        return Experiment(stamp % _WORD, nonce % _WORD)

    @property
    def time_text(self) -> str:
        """``YYYYmmdd-HHMMSS``: the time in the default experiment name."""
        return time.strftime("%Y%m%d-%H%M%S", time.gmtime(self.stamp))

    @property
    def ident(self) -> str:
        """``YYYYmmdd-HHMMSS-xxxxxxxx`` (the nonce in hex): what
        ``RunInfo.experiment_id`` holds."""
        return f"{self.time_text}-{self.nonce:08x}"

    def words(self) -> tuple[int, int]:
        """``(stamp, nonce)`` as signed 32-bit values (what int32 holds)."""
        return signed(self.stamp), signed(self.nonce)


def signed(word: int) -> int:
    """An unsigned 32-bit word as the int32 with the same bits."""
    word %= _WORD
    return word - _WORD if word >= _WORD // 2 else word


@final
@dataclasses.dataclass(frozen=True)
class ResumePoint:
    """What a run resumed from a saved state brings to its start.

    Attributes:
        experiment: the experiment the run was saved in.
        step_offset: the logged step of the run's step counter 0.
        iteration_offset: the logged iteration of its iteration counter 0.
        iteration: the run's iteration counter when it resumes.
        timesteps: its step counter when it resumes.
        first_pending: the step counter of the first record it had buffered
            but not sent when it was saved (it sends them now), or None.
    """

    experiment: Experiment
    step_offset: int
    iteration_offset: int
    iteration: int
    timesteps: int
    first_pending: int | None

    @property
    def rewrites_from(self) -> int:
        """The logged step from which the resumed run writes its records:
        records of the run at this step or later that were written before
        the resume are superseded."""
        first = self.timesteps + 1 if self.first_pending is None else self.first_pending
        return self.step_offset + first


@final
@dataclasses.dataclass(frozen=True)
class Record:
    """One logged iteration of one run, decoded on the worker thread."""

    run_index: int
    iteration: int
    timesteps: int
    scalars: Mapping[str, float]


@final
@dataclasses.dataclass(frozen=True)
class StartInfo:
    """What the start host call knows at trace time."""

    algorithm: str
    env: str
    policy: str
    total_timesteps: int
    static_hparams: tuple[tuple[str, HParamValue], ...]
    dynamic_hparams: tuple[str, ...]


@final
@dataclasses.dataclass(frozen=True)
class _Session:
    """One run's part of one ``learn`` call: the logged step and iteration
    of its counters' 0, when it started (wall clock), and its step counter
    then (0, or where a resumed run resumes)."""

    number: int
    step_offset: int
    iteration_offset: int
    clock: float
    start_timesteps: int = 0


@final
@dataclasses.dataclass
class _RunRecord:
    """Bookkeeping of one run (one seed).

    The host calls keep the session and the ``last_*`` fields (under the
    logger's lock); every record carries the session it was logged in, so
    the worker computes its steps right even if it writes it late. The
    worker alone keeps the ``rate_*`` fields (for ``time/steps_per_second``).
    """

    session: _Session = _Session(0, 0, 0, 0.0)
    last_step: int = 0
    last_iteration: int = 0
    hparams_logged: bool = False
    rate_session: _Session | None = None
    rate_clock: float = 0.0
    rate_timesteps: int = 0
    rate_iteration: int = -1


# -- the worker's messages -----------------------------------------------------


@final
@dataclasses.dataclass(slots=True)
class _Call:
    """Call ``method(*args)`` on every backend that has not failed."""

    method: str
    args: tuple[object, ...]
    runs: tuple[int, ...]


@final
@dataclasses.dataclass(slots=True)
class _Log:
    """One iteration's record, taken at wall clock ``clock`` in ``session``."""

    clock: float
    session: _Session
    decode: Callable[[], Record]


@final
@dataclasses.dataclass(slots=True)
class _Finish:
    """A run's ``learn`` call ended."""

    run_index: int


@final
@dataclasses.dataclass(slots=True)
class _Drain:
    """Flush, then set ``done``; with ``shutdown``, close the backends and
    stop the worker first."""

    done: threading.Event
    shutdown: bool


@final
class _Orphan:
    """The owning ``LoggingCallback`` was garbage-collected."""


_ORPHAN = _Orphan()

_Message = _Call | _Log | _Finish | _Drain | _Orphan


@final
class _InCall:
    """The backend call the worker is making (a fresh object per call, so a
    waiter can tell whether the worker is still in the same call)."""

    __slots__ = ("index", "iteration", "method", "runs")

    def __init__(
        self, index: int, method: str, runs: tuple[int, ...], iteration: int | None
    ):
        self.index = index
        self.method = method
        self.runs = runs
        self.iteration = iteration


def raisable(failure: LoggingBackendError) -> BaseException:
    """The exception that reports ``failure``: itself, or, when the backend
    raised ``KeyboardInterrupt``/``SystemExit``, that exception as itself
    with a note naming the backend (added once)."""
    cause = failure.__cause__
    if cause is None or isinstance(cause, Exception):
        return failure
    where = "" if failure.location is None else f" ({failure.location})"
    note = (
        f"raised by the logging backend {failure.backend}{where} in "
        f"{failure.method}; LoggingCallback recorded it and re-raises it"
    )
    if note not in getattr(cause, "__notes__", ()):
        cause.add_note(note)
    return cause


@final
class HostLogger:
    """Backends, runs and the worker thread of one ``LoggingCallback``.

    Args:
        backends: the backends, called only from the worker thread.
        name: the experiment name, or None for the default.
        hparams: the extra hyperparameters to record.
        drain_timeout: how long (seconds) a host call or ``close()`` waits for
            the worker to drain (see the module docstring).
        experiment: the experiment's identity (``LoggingCallback`` always
            gives one); None: none (backends get an empty ``experiment_id``
            and the default name takes the time of the first ``learn``),
            until a resumed run brings its own.
    """

    def __init__(
        self,
        backends: list[AbstractLoggingBackend],
        name: str | None,
        hparams: dict[str, HParamValue],
        drain_timeout: float,
        experiment: Experiment | None = None,
    ):
        self.backends = backends
        self.name = name
        self.hparams = hparams
        self.drain_timeout = drain_timeout
        self.experiment = experiment
        self.ident: int | None = None  # the registry id, set by the owner
        # per run: the wall clock and steps of its last batch of records sent
        self.send_marks: dict[int, tuple[float, int]] = {}
        # Guards the bookkeeping below, shared by host calls and the worker.
        self.lock = threading.Lock()
        self.session = 0
        self.num_runs: int | None = None
        self.active: set[int] = set()  # runs started and not yet ended
        self.runs: dict[int, _RunRecord] = {}
        # The session being started: per run, its step offset and the step
        # it rewrites from (None: not resumed); and the calls that wait for
        # the backends' ``open``, queued once every run has started.
        self._starting: dict[int, tuple[int, int | None]] = {}
        self._deferred: list[_Call] = []
        self.closed = False  # close() or the orphan shutdown has begun
        self.orphaned = False
        self._failures: list[LoggingBackendError] = []
        self._failed: set[int] = set()  # indices of backends not to call again
        self._inbox: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._wake = threading.Event()  # cuts the worker's batch pause short
        self._in_call: _InCall | None = None
        self._stuck: _InCall | None = None  # the call a waiter gave up on
        self._thread = threading.Thread(
            target=self._work, name="lerax-logging", daemon=True
        )
        self._thread.start()

    # -- failures ---------------------------------------------------------------

    @property
    def failures(self) -> tuple[LoggingBackendError, ...]:
        """Every failure recorded so far, first first."""
        with self.lock:
            return tuple(self._failures)

    @property
    def failure(self) -> LoggingBackendError | None:
        """The first failure recorded, or None."""
        with self.lock:
            return self._failures[0] if self._failures else None

    def _fail(
        self,
        index: int | None,
        method: str,
        runs: tuple[int, ...],
        iteration: int | None,
        error: BaseException,
    ) -> None:
        """Record that backend ``index`` (None: the writer itself) failed in
        ``method``, unless it failed before."""
        if index is None:
            backend, location = "LoggingCallback", None
        else:
            obj = self.backends[index]
            backend = type(obj).__name__
            try:
                location = obj.location
            except Exception:  # noqa: BLE001  # a message must not fail
                location = None
        where = f" ({location})" if location is not None else ""
        if iteration is not None:
            when = f" at iteration {iteration} of run {runs[0]}"
        elif len(runs) == 1:
            when = f" for run {runs[0]}"
        else:
            when = ""
        cause = repr(error) if str(error) else type(error).__name__
        experiment = "" if self.name is None else f" (experiment {self.name!r})"
        message = (
            f"LoggingCallback: {backend}{where} failed in {method}{when}"
            f"{experiment}: {cause}"
        )
        err = LoggingBackendError(message, backend, location, method, runs, iteration)
        err.__cause__ = error
        with self.lock:
            if index is not None:
                if index in self._failed:
                    return
                self._failed.add(index)
            self._failures.append(err)
        if self.ident is not None:
            fail(self.ident, raisable(err))

    def _known_runs(self) -> tuple[int, ...]:
        with self.lock:
            return tuple(sorted(self.runs))

    # -- called from host calls ---------------------------------------------------

    def start(
        self,
        info: StartInfo,
        run_index: int,
        num_runs: int,
        dynamic: dict[str, HParamValue],
        resume: ResumePoint | None = None,
    ) -> None:
        """Run ``run_index``'s ``learn`` call starts; with ``resume``, from a
        saved state.

        The backends' ``open`` is queued once every run of the call has
        started (they all start in one host call), with each run's offsets.

        Raises:
            RuntimeError: if the logger is closed (a usage error).
            ValueError: if the number of vmapped runs changed, or ``resume``
                belongs to another experiment than the one this logger has
                logged (usage errors).
        """
        start_timesteps = 0 if resume is None else resume.timesteps
        self.send_marks[run_index] = (time.perf_counter(), start_timesteps)
        with self.lock:
            if self.closed:
                raise RuntimeError(
                    "LoggingCallback: the logger is closed (close() was called or "
                    "it was garbage-collected); create a new one to train again"
                )
            if resume is not None:
                self._adopt(resume.experiment)
            if not self.active or run_index in self.active:
                self._begin_session(info, num_runs)
            self.active.add(run_index)
            record = self.runs.setdefault(run_index, _RunRecord())
            rewrites_from: int | None = None
            if resume is None:
                step_offset = record.last_step
                iteration_offset = record.last_iteration
            else:
                # The run goes on from the saved state, whatever this logger
                # logged for it before; it recorded its hyperparameters when
                # it first started.
                step_offset = resume.step_offset
                iteration_offset = resume.iteration_offset
                record.last_step = step_offset + resume.timesteps
                record.last_iteration = iteration_offset + resume.iteration
                record.hparams_logged = True
                rewrites_from = resume.rewrites_from
            record.session = _Session(
                self.session,
                step_offset,
                iteration_offset,
                time.perf_counter(),
                start_timesteps,
            )
            self._starting[run_index] = (step_offset, rewrites_from)
            if not record.hparams_logged:
                hparams = {**dict(info.static_hparams), **dynamic, **self.hparams}
                self._deferred.append(
                    _Call("log_hparams", (hparams, run_index), (run_index,))
                )
                record.hparams_logged = True
            if len(self.active) == self.num_runs:
                self._open(info)

    def _adopt(self, experiment: Experiment) -> None:
        """A resumed run's experiment: this logger's from now on if it has
        logged nothing yet; else it must be this logger's."""
        if experiment == self.experiment:
            return
        if self.num_runs is None:
            self.experiment = experiment
            return
        mine = "none" if self.experiment is None else self.experiment.ident
        raise ValueError(
            "LoggingCallback: resume_from holds runs of the experiment "
            f"{experiment.ident}, but this logger has logged the experiment "
            f"{mine}; resume them with a new LoggingCallback built like the one "
            "that logged them"
        )

    def _begin_session(self, info: StartInfo, num_runs: int) -> None:
        if self.num_runs is None:
            self.num_runs = num_runs
            if self.name is None:
                stamp = (
                    time.strftime("%Y%m%d-%H%M%S")
                    if self.experiment is None
                    else self.experiment.time_text
                )
                self.name = f"{info.algorithm}_{info.env}_{stamp}"
        elif num_runs != self.num_runs:
            raise ValueError(
                f"LoggingCallback: this logger first trained {self.num_runs} run(s) "
                f"at once, now {num_runs}; use a new LoggingCallback for a "
                "different number of vmapped runs"
            )
        self.session += 1
        self.active = set()
        self._starting = {}
        self._deferred = []

    def _open(self, info: StartInfo) -> None:
        """Every run of the session has started: queue the backends' ``open``,
        then the calls that waited for it."""
        num_runs = self.num_runs or 1
        starts = [
            self._starting.get(i, (self.runs[i].last_step, None))
            if i in self.runs
            else (0, None)
            for i in range(num_runs)
        ]
        resumed = tuple(rewrites for _, rewrites in starts)
        run = RunInfo(
            name=self.name or "",
            algorithm=info.algorithm,
            env=info.env,
            policy=info.policy,
            num_runs=num_runs,
            total_timesteps=info.total_timesteps,
            step_offsets=tuple(offset for offset, _ in starts),
            session=self.session,
            experiment_id="" if self.experiment is None else self.experiment.ident,
            resumed_from=resumed if any(r is not None for r in resumed) else (),
        )
        self._inbox.put(_Call("open", (run,), tuple(range(num_runs))))
        for call in self._deferred:
            self._inbox.put(call)
        self._deferred = []

    def word(self, run_index: int, which: int) -> int:
        """What run ``run_index``'s ``LoggingState`` keeps once the run has
        started, as an int32 value: for ``which`` 0 and 1, the experiment's
        stamp and nonce (0 without an experiment); 2 and 3, the run's step
        and iteration offsets."""
        with self.lock:
            session = self.runs[run_index].session
            experiment = self.experiment
        if which == 2:
            return signed(session.step_offset)
        if which == 3:
            return signed(session.iteration_offset)
        if experiment is None:
            return 0
        return experiment.words()[which]

    def log(self, clock: float, run_index: int, decode: Callable[[], Record]) -> None:
        """Queue one iteration's record of run ``run_index``, taken at wall
        clock ``clock``; ``decode`` turns it into a ``Record`` on the
        worker thread. Never raises because of a backend."""
        record = self.runs.get(run_index)
        if record is not None:  # else it never started: nothing to log
            self._inbox.put(_Log(clock, record.session, decode))

    def end(self, run_index: int, iteration: int, timesteps: int) -> None:
        """Run ``run_index``'s ``learn`` call ended. The last run of a call to
        end waits until everything queued is written and flushed (see the
        module docstring for the bound); if the owner was garbage-collected,
        it closes the logger. Never raises because of a backend."""
        with self.lock:
            record = self.runs.get(run_index)
            if record is not None:
                session = record.session
                step = session.step_offset + timesteps
                record.last_step = max(record.last_step, step)
                it = session.iteration_offset + iteration
                record.last_iteration = max(record.last_iteration, it)
            self.active.discard(run_index)
            last = not self.active
            shutdown = last and self.orphaned and not self.closed
            if shutdown:
                self.closed = True
            self._inbox.put(_Finish(run_index))
        if shutdown:
            self._release()
        if last:
            self._wait(shutdown=shutdown)

    # -- called from the owner --------------------------------------------------

    def orphan(self) -> None:
        """The owning ``LoggingCallback`` was garbage-collected: close the
        logger once no run is in flight.

        Safe anywhere, including in a finalizer run by the garbage collector
        while this thread holds a lock: it only puts a message on the
        queue (``SimpleQueue.put`` is reentrant)."""
        self._inbox.put(_ORPHAN)

    def close(self) -> None:
        """Drain the queue, then flush and close every backend and stop the
        worker, waiting at most ``drain_timeout`` seconds (a call still
        running then is recorded as stuck). Failures are recorded, not
        raised; calling it again does nothing."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self._wait(shutdown=True)

    def _release(self) -> None:
        if self.ident is not None:
            release(self.ident)
            clear_failure(self.ident)

    def _wait(self, shutdown: bool) -> None:
        """Queue a drain (a shutdown, with ``shutdown``) and wait for it while
        the worker is alive, at most ``drain_timeout`` seconds."""
        done = threading.Event()
        self._inbox.put(_Drain(done, shutdown))
        self._wake.set()
        deadline = time.monotonic() + self.drain_timeout
        while not done.wait(_POLL_SECONDS):
            if not self._thread.is_alive():
                return
            in_call = self._in_call
            if in_call is not None and in_call is self._stuck:
                return  # given up on before: do not wait for it again
            if time.monotonic() >= deadline:
                self._give_up()
                return
        if shutdown:
            self._thread.join(max(0.0, deadline - time.monotonic()))

    def _give_up(self) -> None:
        """The wait timed out: record the call the worker is in as stuck."""
        in_call = self._in_call
        timeout = self.drain_timeout
        if in_call is None:
            error = TimeoutError(
                f"the writer did not drain its queue within drain_timeout={timeout} s"
            )
            self._fail(None, "drain", self._known_runs(), None, error)
            return
        self._stuck = in_call
        error = TimeoutError(
            f"{in_call.method} did not return within drain_timeout={timeout} s"
        )
        self._fail(
            in_call.index, in_call.method, in_call.runs, in_call.iteration, error
        )

    # -- the worker thread --------------------------------------------------------

    def _work(self) -> None:
        dirty = False  # written since the last flush
        last_flush = time.monotonic()
        while True:
            try:
                wait = None
                if dirty:
                    wait = max(0.0, last_flush + FLUSH_SECONDS - time.monotonic())
                batch: list[_Message] = []
                try:
                    batch.append(self._inbox.get(timeout=wait))
                    while True:
                        batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    pass
                worked = False
                for message in batch:
                    if isinstance(message, _Drain):
                        if dirty or message.shutdown:
                            self._flush()
                            dirty = False
                            last_flush = time.monotonic()
                        if message.shutdown:
                            self._close_backends()
                            message.done.set()
                            return
                        message.done.set()
                    elif isinstance(message, _Orphan):
                        if self._orphaned():
                            # Write what is queued behind this message
                            # (records of a run that ended since), then stop.
                            self._release()
                            self._inbox.put(_Drain(threading.Event(), True))
                    else:
                        worked = True
                        dirty = True
                        if not self._handle_safely(message):
                            # Keep what the others wrote before the failure.
                            self._flush()
                            dirty = False
                            last_flush = time.monotonic()
                if dirty and time.monotonic() - last_flush >= FLUSH_SECONDS:
                    self._flush()
                    dirty = False
                    last_flush = time.monotonic()
                if worked:
                    # Let records gather: one wake-up per batch, not per record.
                    self._wake.wait(BATCH_SECONDS)
                    self._wake.clear()
            except BaseException as err:  # noqa: BLE001  # the worker must not die
                self._fail(None, "write", self._known_runs(), None, err)

    def _orphaned(self) -> bool:
        """Mark the logger orphaned; whether to shut down now (no run in
        flight; else the last ``end`` does)."""
        with self.lock:
            self.orphaned = True
            if self.active or self.closed:
                return False
            self.closed = True
            return True

    def _handle_safely(self, message: _Call | _Log | _Finish) -> bool:
        """``_handle``, recording what the writer itself raises (a bug:
        backend errors are caught in ``_call``)."""
        try:
            return self._handle(message)
        except BaseException as err:  # noqa: BLE001  # the worker must not die
            self._fail(None, "write", self._known_runs(), None, err)
            return False

    def _handle(self, message: _Call | _Log | _Finish) -> bool:
        """Make the backend calls of one message; False if one failed."""
        if isinstance(message, _Call):
            return self._each(message.method, message.args, message.runs, None)
        if isinstance(message, _Finish):
            runs = (message.run_index,)
            return self._each("finish", (message.run_index,), runs, None)
        rec = message.decode()
        written = self._bookkeep(message, rec)
        if written is None:
            return True
        scalars, step, iteration = written
        args = (scalars, step, rec.run_index)
        return self._each("log_scalars", args, (rec.run_index,), iteration)

    def _bookkeep(
        self, message: _Log, rec: Record
    ) -> tuple[dict[str, float], int, int] | None:
        """The full scalars of a record, its step and iteration (None: do not
        write it)."""
        session = message.session
        step = session.step_offset + rec.timesteps
        iteration = session.iteration_offset + rec.iteration
        with self.lock:
            record = self.runs.get(rec.run_index)
            if record is None:
                return None
            if record.rate_session is not session:
                record.rate_session = session
                record.rate_clock = session.clock
                record.rate_timesteps = session.start_timesteps
                record.rate_iteration = -1
            if rec.iteration <= record.rate_iteration:
                return None  # never log an iteration twice (defensive)
            # Continue from here if the run's learn call never ends.
            record.last_step = max(record.last_step, step)
            record.last_iteration = max(record.last_iteration, iteration)
        record.rate_iteration = rec.iteration
        if rec.timesteps <= session.start_timesteps:
            # Buffered before the state it resumes from was saved: taken in
            # another process, at a rate this one never saw.
            rate = math.nan
        else:
            elapsed = message.clock - record.rate_clock
            steps = rec.timesteps - record.rate_timesteps
            rate = steps / elapsed if elapsed > 0 else math.nan
            record.rate_clock = message.clock
            record.rate_timesteps = rec.timesteps
        full: dict[str, float] = dict(
            zip(TIME_NAMES, (float(step), float(iteration), rate), strict=True)
        )
        full.update(rec.scalars)
        return full, step, iteration

    def _each(
        self,
        method: str,
        args: tuple[object, ...],
        runs: tuple[int, ...],
        iteration: int | None,
    ) -> bool:
        """``method(*args)`` on every backend that has not failed; False if
        one fails now."""
        ok = True
        for index, backend in enumerate(self.backends):
            if index in self._failed:
                continue
            call = functools.partial(getattr(backend, method), *args)
            ok = self._call(index, method, runs, iteration, call) and ok
        return ok

    def _call(
        self,
        index: int,
        method: str,
        runs: tuple[int, ...],
        iteration: int | None,
        call: Callable[[], object],
    ) -> bool:
        self._in_call = _InCall(index, method, runs, iteration)
        try:
            call()
        except BaseException as err:  # noqa: BLE001  # recorded, raised by close()
            self._fail(index, method, runs, iteration, err)
            return False
        finally:
            self._in_call = None
        return True

    def _flush(self) -> None:
        """Flush every backend that has not failed, even after one fails."""
        self._each("flush", (), self._known_runs(), None)

    def _close_backends(self) -> None:
        """Close every backend, failed ones too (to release their files);
        a failed backend's close errors are not recorded again."""
        runs = self._known_runs()
        for index, backend in enumerate(self.backends):
            self._call(index, "close", runs, None, backend.close)
