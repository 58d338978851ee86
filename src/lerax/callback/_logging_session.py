"""The host side of a :class:`~lerax.callback.LoggingCallback`.

The compiled program blocks while a host callback runs, and every callback
needs the GIL, so the per-iteration host call does almost nothing: it stamps
the wall clock and appends the raw record to a queue. One writer thread per
logger does the rest (decoding, step offsets, rates, the backend calls) in
order, in batches at most every ``BATCH_SECONDS`` (each wake-up of the
writer costs the training thread a little on a small machine; a batch is
short, so it rarely holds the GIL when the next host call comes), and
flushes the backends at most every ``FLUSH_SECONDS``. The training loop thus
never waits for disk or network, except at the end of each ``learn`` call,
when the queue is drained and flushed so that everything logged is on disk
before ``learn`` returns. ``close()`` (and, at exit, an ``atexit`` hook)
drains it too, and a backend error flushes what was written before it
before the error is reported.
"""

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import final

from ._logging_backend import AbstractLoggingBackend, HParamValue, RunInfo

Task = Callable[[], None]

FLUSH_SECONDS = 0.25
"""The writer flushes the backends at most this often (and whenever someone
drains: at the end of every ``learn`` call and at ``close()``)."""

BATCH_SECONDS = 0.05
"""After a batch, the writer lets records gather this long before the next
(the first record after a pause is written at once)."""


@final
@dataclasses.dataclass(frozen=True)
class Record:
    """One logged iteration of one run, decoded on the writer thread."""

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
@dataclasses.dataclass
class _RunRecord:
    """Bookkeeping of one run (one seed)."""

    step_offset: int = 0
    iteration_offset: int = 0
    last_step: int = 0
    last_iteration: int = 0
    session_timesteps: int = 0
    session_iteration: int = -1
    clock: float = 0.0
    hparams_logged: bool = False


@final
class BackendError(RuntimeError):
    """A logging backend raised; training stops with this error."""


@final
class HostLogger:
    """Backends, runs and the writer thread of one ``LoggingCallback``."""

    def __init__(
        self,
        backends: list[AbstractLoggingBackend],
        name: str | None,
        hparams: dict[str, HParamValue],
    ):
        self.backends = backends
        self.name = name
        self.hparams = hparams
        self.lock = threading.Lock()
        self.session = 0
        self.num_runs: int | None = None
        self.active: set[int] = set()
        self.runs: dict[int, _RunRecord] = {}
        self.closed = False
        # A plain lock (cheaper than the default RLock): nothing that holds it
        # takes it again.
        self._cond = threading.Condition(threading.Lock())
        self._tasks: collections.deque[Task] = collections.deque()
        self._submitted = 0  # tasks queued so far
        self._completed = 0  # tasks the writer has finished (run or skipped)
        self._flushed = 0  # tasks finished before the last flush
        self._idle = False  # the writer sleeps until a first task comes
        self._draining = 0  # callers waiting in drain()
        self._stop = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- called from host callbacks -------------------------------------------

    def start(
        self,
        info: StartInfo,
        run_index: int,
        num_runs: int,
        dynamic: dict[str, HParamValue],
    ) -> None:
        with self.lock:
            self._raise_pending()
            if not self.active or run_index in self.active:
                self._open_session(info, num_runs)
            self.active.add(run_index)
            record = self.runs.setdefault(run_index, _RunRecord())
            record.session_timesteps = 0
            record.session_iteration = -1
            record.clock = time.perf_counter()
            if not record.hparams_logged:
                hparams = {**dict(info.static_hparams), **dynamic, **self.hparams}
                self._submit(self._each("log_hparams", hparams, run_index))
                record.hparams_logged = True

    def _open_session(self, info: StartInfo, num_runs: int) -> None:
        if self.num_runs is None:
            self.num_runs = num_runs
            if self.name is None:
                stamp = time.strftime("%Y%m%d-%H%M%S")
                self.name = f"{info.algorithm}_{info.env}_{stamp}"
        elif num_runs != self.num_runs:
            raise ValueError(
                f"LoggingCallback: this logger first trained {self.num_runs} run(s) "
                f"at once, now {num_runs}; use a new LoggingCallback for a "
                "different number of vmapped runs"
            )
        self.session += 1
        self.active = set()
        offsets: list[int] = []
        for i in range(num_runs):
            record = self.runs.setdefault(i, _RunRecord())
            record.step_offset = record.last_step
            record.iteration_offset = record.last_iteration
            offsets.append(record.step_offset)
        run = RunInfo(
            name=self.name or "",
            algorithm=info.algorithm,
            env=info.env,
            policy=info.policy,
            num_runs=num_runs,
            total_timesteps=info.total_timesteps,
            step_offsets=tuple(offsets),
            session=self.session,
        )
        self._submit(self._each("open", run))

    def log(self, clock: float, decode: Callable[[], Record]) -> None:
        """Queue one iteration's record, taken at wall clock ``clock``;
        ``decode`` turns it into a :class:`Record` on the writer thread."""
        if self._error is not None:
            with self.lock:
                self._raise_pending()
        self._submit(lambda: self._write_record(clock, decode()))

    def _write_record(self, clock: float, rec: Record) -> None:
        with self.lock:
            record = self.runs.get(rec.run_index)
            if record is None or rec.run_index not in self.active:
                return
            if rec.iteration <= record.session_iteration:
                return  # never log an iteration twice (defensive)
            elapsed = clock - record.clock
            steps = rec.timesteps - record.session_timesteps
            rate = steps / elapsed if elapsed > 0 else math.nan
            step = record.step_offset + rec.timesteps
            full: dict[str, float] = {
                "time/timesteps": float(step),
                "time/iteration": float(record.iteration_offset + rec.iteration),
                "time/steps_per_second": rate,
            }
            full.update(rec.scalars)
            record.clock = clock
            record.session_timesteps = rec.timesteps
            record.session_iteration = rec.iteration
            record.last_step = step
            record.last_iteration = record.iteration_offset + rec.iteration
        for backend in self.backends:
            backend.log_scalars(full, step, rec.run_index)

    def end(self, run_index: int, iteration: int, timesteps: int) -> None:
        # The run's records first: they update its bookkeeping.
        self.drain()
        with self.lock:
            self._raise_pending()
            record = self.runs.get(run_index)
            if record is not None and run_index in self.active:
                record.last_step = record.step_offset + timesteps
                record.last_iteration = record.iteration_offset + iteration
                self.active.discard(run_index)
                self._submit(self._each("finish", run_index))
        # Everything of this learn call is on disk before the next run's end
        # (and hence before learn returns).
        self.drain()
        with self.lock:
            self._raise_pending()

    # -- the writer thread ----------------------------------------------------

    def _each(self, method: str, *args: object) -> Task:
        def task() -> None:
            for backend in self.backends:
                getattr(backend, method)(*args)

        return task

    def _submit(self, task: Task) -> None:
        if self.closed:
            raise RuntimeError("LoggingCallback: the logger is closed")
        with self._cond:
            if self._thread is None:
                self._stop = False
                self._thread = threading.Thread(
                    target=self._work, name="lerax-logging", daemon=True
                )
                self._thread.start()
            self._tasks.append(task)
            self._submitted += 1
            if self._idle:
                self._cond.notify_all()

    def _work(self) -> None:
        cond = self._cond
        dirty = False  # written since the last flush
        last_flush = time.monotonic()
        last_batch = -math.inf
        while True:
            with cond:
                while not self._stop:
                    now = time.monotonic()
                    if self._tasks:
                        # Gather tasks for up to BATCH_SECONDS after the last
                        # batch: one wake-up per batch, not one per record
                        # (each costs the training thread on a small machine).
                        left = last_batch + BATCH_SECONDS - now
                    elif dirty:
                        left = last_flush + FLUSH_SECONDS - now
                    else:
                        self._idle = True
                        cond.wait()
                        self._idle = False
                        continue
                    if left <= 0 or self._draining:
                        break
                    cond.wait(left)
                if not self._tasks and not dirty:
                    return  # stopped, nothing left
                batch = list(self._tasks)
                self._tasks.clear()
                urgent = self._stop or self._draining > 0
            last_batch = time.monotonic()
            failed: BaseException | None = None
            for task in batch:
                if self._error is None and failed is None:
                    try:
                        task()
                    except Exception as err:  # reported from the next host call
                        failed = err
            dirty = dirty or bool(batch)
            now = time.monotonic()
            due = urgent or failed is not None or now - last_flush >= FLUSH_SECONDS
            flush = dirty and due
            if flush:
                # Keep what was written before a failure on disk before
                # anyone hears of the failure.
                flush_error = self._flush_quietly()
                failed = failed if failed is not None else flush_error
                dirty = False
                last_flush = now
            if failed is not None and self._error is None:
                self._error = failed
            with cond:
                self._completed += len(batch)
                if flush:
                    self._flushed = self._completed
                cond.notify_all()

    def _flush_quietly(self) -> BaseException | None:
        """Flush every backend, even after one fails; the first error."""
        first: BaseException | None = None
        for backend in self.backends:
            try:
                backend.flush()
            except Exception as err:  # flush the others first
                if first is None:
                    first = err
        return first

    def _raise_pending(self) -> None:
        error = self._error
        if error is not None:
            self._error = None
            raise BackendError(
                f"LoggingCallback: a logging backend failed: {error!r}"
            ) from error

    def drain(self) -> None:
        """Wait until the writer thread has made every queued call and
        flushed the backends."""
        with self._cond:
            if self._thread is None:
                return
            target = self._submitted
            self._draining += 1
            self._cond.notify_all()
            try:
                while self._flushed < target:
                    self._cond.wait()
            finally:
                self._draining -= 1

    def close(self) -> None:
        """Drain the queue, then flush and close every backend."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.drain()
        with self._cond:
            thread = self._thread
            self._stop = True
            self._cond.notify_all()
        if thread is not None:
            thread.join()
            self._thread = None
        errors: list[BaseException] = []
        for backend in self.backends:
            try:
                backend.flush()
                backend.close()
            except Exception as err:  # close the others first
                errors.append(err)
        if errors:
            raise errors[0]
