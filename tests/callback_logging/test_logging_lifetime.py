"""A logger that is never closed releases its thread and files once the
``LoggingCallback`` is garbage-collected and no run of it is in flight."""

import gc
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.random as jr
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax._host import find, register
from lerax.algorithm import PPO
from lerax.callback import JSONLBackend, LoggingCallback, RunInfo, TensorBoardBackend
from lerax.callback.logging._writer import HostLogger, Record, StartInfo

from .logging_helpers import ENV, POLICY, ListBackend, read_jsonl, train

SMALL = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
SMALL_TOTAL = 2 * SMALL.steps_per_iteration  # two iterations


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition()`` holds within ``timeout`` seconds (worker
    threads exit asynchronously)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _backends(tmp_path: Path, i: int) -> list[JSONLBackend | TensorBoardBackend]:
    return [
        JSONLBackend(tmp_path / f"{i}.jsonl"),
        TensorBoardBackend(tmp_path / f"tb{i}"),
    ]


def test_unclosed_loggers_release_threads_and_files_when_collected(
    tmp_path: Path,
) -> None:
    # Compile first, and let anything created once per process exist.
    with LoggingCallback(_backends(tmp_path, -1), log_every=1) as warm:
        SMALL.train(ENV, POLICY, SMALL_TOTAL, key=jr.key(0), callback=warm)
    gc.collect()
    threads, fds = threading.active_count(), _open_fds()

    def train_and_drop(i: int) -> int:
        logger = LoggingCallback(_backends(tmp_path, i), log_every=1)
        result = SMALL.train(ENV, POLICY, SMALL_TOTAL, key=jr.key(i), callback=logger)
        # Wait until the program is done: a program dispatched asynchronously
        # (on an accelerator) must have started before its logger goes (see
        # the LoggingCallback docstring; the in-flight case is tested below).
        result.iterations.block_until_ready()
        assert threading.active_count() > threads  # this logger's worker
        return int(logger.logger_id)  # the logger goes with this frame

    ids = [train_and_drop(i) for i in range(5)]
    gc.collect()
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated

    assert _eventually(lambda: threading.active_count() == threads)
    assert _eventually(lambda: _open_fds() == fds)
    assert all(find(ident, HostLogger) is None for ident in ids)  # released
    for i in range(5):
        rows = read_jsonl(tmp_path / f"{i}.jsonl")
        assert [r["time/iteration"] for r in rows] == [1, 2]
        acc = EventAccumulator(str(tmp_path / f"tb{i}"))
        acc.Reload()
        assert [e.step for e in acc.Scalars("train/loss")] == [r["step"] for r in rows]


def test_a_logger_collected_while_its_run_is_in_flight_closes_when_it_ends(
    tmp_path: Path,
) -> None:
    """The program uses a copy (as JAX transformations make them); the
    instance that was constructed goes while the run is in flight. The
    logger closes when the run ends, with every record written."""
    path = tmp_path / "log.jsonl"
    gate = threading.Event()
    backend = ListBackend(block=gate, block_at=1)
    gc.collect()
    threads, fds = threading.active_count(), _open_fds()
    owner = [
        LoggingCallback([backend, JSONLBackend(path)], drain_timeout=60.0, log_every=1)
    ]
    ident = int(owner[0].logger_id)
    copy = jax.tree.map(lambda x: x, owner[0])  # no finalizer of its own
    assert copy is not owner[0]
    host = find(ident, HostLogger)
    assert host is not None

    def drop_the_owner() -> None:
        backend.blocked.wait()  # the run started; the worker writes record 1
        owner.clear()
        gc.collect()
        gate.set()

    dropper = threading.Thread(target=drop_the_owner)
    dropper.start()
    train(copy, jr.key(0)).iterations.block_until_ready()
    dropper.join()
    assert _eventually(lambda: host.orphaned and host.closed)
    del copy
    gc.collect()
    jax.effects_barrier()  # type: ignore[no-untyped-call]  # jax leaves it unannotated
    assert _eventually(lambda: threading.active_count() == threads)
    assert _eventually(lambda: _open_fds() == fds)
    assert find(ident, HostLogger) is None
    assert [r["time/iteration"] for r in read_jsonl(path)] == [1, 2, 3, 4]
    assert len(backend.records) == 4 and backend.calls[-1] == ("close", None)


# -- the host logger alone ------------------------------------------------------

START = StartInfo(
    algorithm="PPO",
    env="CartPole",
    policy="MLP",
    total_timesteps=20,
    static_hparams=(),
    dynamic_hparams=(),
)


def _host(backend: ListBackend) -> tuple[HostLogger, int]:
    host = HostLogger([backend], "unit", {}, drain_timeout=10.0)
    ident = register(host)
    host.ident = ident
    return host, ident


def test_orphaned_with_a_run_in_flight_the_last_end_closes() -> None:
    backend = ListBackend()
    host, ident = _host(backend)
    host.start(START, 0, 1, {})
    host.log(0.0, 0, lambda: Record(0, 1, 10, {"a": 1.0}))
    host.orphan()  # what the finalizer does
    assert _eventually(lambda: host.orphaned)
    # Still open and registered while the run is in flight.
    assert not host.closed and find(ident, HostLogger) is host
    host.log(0.0, 0, lambda: Record(0, 2, 20, {"a": 2.0}))
    host.end(0, 2, 20)  # the last run ends: closes, waiting for the worker
    assert host.closed and find(ident, HostLogger) is None
    assert not host._thread.is_alive()
    assert [c[0] for c in backend.calls] == [
        "open",
        "hparams",
        "scalars",
        "scalars",
        "finish",
        "close",
    ]
    assert backend.flushed_at[-1] == len(backend.calls) - 1  # flushed, then closed


def test_orphaned_with_no_run_in_flight_closes_at_once() -> None:
    backend = ListBackend()
    host, ident = _host(backend)
    host.start(START, 0, 1, {})
    host.end(0, 0, 0)
    host.orphan()
    assert _eventually(lambda: not host._thread.is_alive())
    assert host.closed and find(ident, HostLogger) is None
    assert backend.calls[-1] == ("close", None)


def test_a_host_logger_never_used_exits_when_orphaned() -> None:
    backend = ListBackend()
    host, ident = _host(backend)
    host.orphan()
    assert _eventually(lambda: not host._thread.is_alive())
    assert find(ident, HostLogger) is None
    assert backend.calls == [("close", None)]


def test_a_closed_logger_is_not_reopened_by_its_collection(tmp_path: Path) -> None:
    backend = ListBackend()
    logger = LoggingCallback(
        [backend, JSONLBackend(tmp_path / "log.jsonl")], log_every=1
    )
    train(logger, jr.key(0))
    logger.close()
    del logger
    gc.collect()
    assert [c[0] for c in backend.calls].count("close") == 1


def test_run_info_reaches_backends_unchanged() -> None:
    """The bookkeeping that moved between host calls and the worker still
    gives the backends the same RunInfo and steps across learn calls."""
    backend = ListBackend()
    host, _ = _host(backend)
    for session in range(2):
        host.start(START, 0, 1, {})
        host.log(0.0, 0, lambda: Record(0, 1, 10, {}))
        host.log(0.0, 0, lambda: Record(0, 2, 20, {}))
        host.end(0, 2, 20)
        assert host.runs[0].last_step == 20 * (session + 1)
    host.close()
    opens = [c[1] for c in backend.calls if c[0] == "open"]
    assert opens == [
        RunInfo("unit", "PPO", "CartPole", "MLP", 1, 20, (0,), 1),
        RunInfo("unit", "PPO", "CartPole", "MLP", 1, 20, (20,), 2),
    ]
    assert [step for _, step, _ in backend.records] == [10, 20, 30, 40]
    its = [rec["time/iteration"] for _, _, rec in backend.records]
    assert its == [1.0, 2.0, 3.0, 4.0]
