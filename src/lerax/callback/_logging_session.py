"""The host side of a :class:`~lerax.callback.LoggingCallback`.

Host callbacks from the compiled program only do bookkeeping (run sessions,
step offsets, wall-clock rates) and put the backend calls on a queue; one
writer thread per logger makes those calls in order, flushing after each
record. The training loop thus never waits for disk or network, except once
at the end of each ``learn`` call, when the queue is drained so that
everything logged is on disk before ``learn`` returns.
"""

import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import final

from ._logging_backend import AbstractLoggingBackend, HParamValue, RunInfo

Task = Callable[[], None]


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
        self._tasks: queue.Queue[Task | None] = queue.Queue()
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

    def log(
        self, run_index: int, iteration: int, timesteps: int, scalars: dict[str, float]
    ) -> None:
        with self.lock:
            self._raise_pending()
            record = self.runs.get(run_index)
            if record is None or run_index not in self.active:
                return
            if iteration <= record.session_iteration:
                return  # never log an iteration twice (defensive)
            now = time.perf_counter()
            elapsed = now - record.clock
            steps = timesteps - record.session_timesteps
            rate = steps / elapsed if elapsed > 0 else math.nan
            step = record.step_offset + timesteps
            full: dict[str, float] = {
                "time/timesteps": float(step),
                "time/iteration": float(record.iteration_offset + iteration),
                "time/steps_per_second": rate,
            }
            full.update(scalars)
            self._submit(self._each("log_scalars", full, step, run_index))
            record.clock = now
            record.session_timesteps = timesteps
            record.session_iteration = iteration
            record.last_step = step
            record.last_iteration = record.iteration_offset + iteration

    def end(self, run_index: int, iteration: int, timesteps: int) -> None:
        with self.lock:
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
                if method != "open":
                    backend.flush()

        return task

    def _submit(self, task: Task) -> None:
        if self.closed:
            raise RuntimeError("LoggingCallback: the logger is closed")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="lerax-logging", daemon=True
            )
            self._thread.start()
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                if self._error is None:
                    task()
            except Exception as err:  # reported from the next host call
                self._error = err
                self._flush_quietly()
            finally:
                self._tasks.task_done()

    def _flush_quietly(self) -> None:
        for backend in self.backends:
            try:
                backend.flush()
            except Exception:  # noqa: BLE001  # the first error is the one reported
                pass

    def _raise_pending(self) -> None:
        error = self._error
        if error is not None:
            self._error = None
            raise BackendError(
                f"LoggingCallback: a logging backend failed: {error!r}"
            ) from error

    def drain(self) -> None:
        """Wait until the writer thread has made every queued call."""
        if self._thread is not None:
            self._tasks.join()

    def close(self) -> None:
        """Drain the queue, then flush and close every backend."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        self.drain()
        if self._thread is not None:
            self._tasks.put(None)
            self._thread.join()
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
