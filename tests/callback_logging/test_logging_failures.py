"""Bad input and failures: errors before training, data kept after a crash."""

import math
import sys
import threading
import time
from pathlib import Path

import jax.random as jr
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax.algorithm import StopReason
from lerax.callback import (
    ConsoleBackend,
    JSONLBackend,
    LoggingCallback,
    RunInfo,
    TensorBoardBackend,
    WandbBackend,
)
from lerax.callback.logging import LoggingBackendError
from lerax.env import Pendulum
from lerax.policy import MLPActorCriticPolicy

from .logging_helpers import ALGO, ITERATIONS, ListBackend, read_jsonl, train

RUN = RunInfo(
    name="unit",
    algorithm="PPO",
    env="CartPole",
    policy="MLPActorCriticPolicy",
    num_runs=1,
    total_timesteps=100,
    step_offsets=(0,),
    session=1,
)


def test_a_failing_backend_stops_training_and_learn_raises(tmp_path: Path) -> None:
    """The backend fails writing iteration 2 (on the writer thread); one of
    the logger's next host calls tells the loop, which stops the run there;
    called eagerly, train raises the error with the result attached."""
    path = tmp_path / "log.jsonl"
    failing = ListBackend(fail_at=2, path="memory://failing")
    healthy = ListBackend()
    logger = LoggingCallback([failing, JSONLBackend(path), healthy], log_every=1)
    planned = 2 * ITERATIONS
    with pytest.raises(LoggingBackendError) as raised:
        train(logger, jr.key(0), planned * ALGO.steps_per_iteration)
    result = raised.value.result
    stopped = int(result.status.iteration)
    assert stopped == int(result.iterations) and stopped >= 3
    if stopped < planned:  # see the test below
        assert result.status.reasons() is StopReason.LOGGING_FAILED
    # The others got every record, written and flushed when learn returned.
    logged = list(range(1, stopped + 1))
    assert [r["time/iteration"] for r in read_jsonl(path)] == logged
    assert len(healthy.records) == stopped
    assert healthy.flushed_at[-1] == len(healthy.calls)
    # They were flushed right after the failure (open, hparams, 2 records).
    assert 4 in healthy.flushed_at
    assert [c[0] for c in failing.calls] == ["open", "hparams", "scalars"]
    failure = logger.failure  # seen without raising
    assert failure is not None and failure is raised.value
    assert failure.backend == "ListBackend"
    assert failure.location == "memory://failing"
    assert failure.method == "log_scalars"
    assert failure.iteration == 2 and failure.run_indices == (0,)
    assert isinstance(failure.__cause__, RuntimeError)
    message = (
        r"ListBackend \(memory://failing\) failed in log_scalars at iteration 2 "
        r"of run 0 .*backend failure at record 2"
    )
    with pytest.raises(LoggingBackendError, match=message) as info:
        logger.close()
    assert info.value is failure
    assert failing.calls[-1] == ("close", None)  # closed, to release its files
    assert healthy.calls[-2:] == [("finish", 0), ("close", None)]
    assert logger.failure is failure  # still readable after close
    logger.close()  # closing again does nothing (and does not raise again)
    # A new logger trains as usual.
    ok = ListBackend()
    with LoggingCallback(
        [ok, JSONLBackend(tmp_path / "again.jsonl")], log_every=1
    ) as again:
        train(again, jr.key(0))
    assert len(ok.records) == ITERATIONS
    assert again.failure is None


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_a_backend_raising_keyboard_interrupt_or_system_exit(
    tmp_path: Path, error: type[BaseException]
) -> None:
    """Neither kills the writer: the run stops, learn raises the exception
    itself with a note naming the backend (and the result attached), the
    others have every record, and close() raises it again."""
    path = tmp_path / "log.jsonl"
    failing = ListBackend(fail_at=2, error=error)
    logger = LoggingCallback([failing, JSONLBackend(path)], log_every=1)
    planned = 2 * ITERATIONS
    with pytest.raises(error) as raised:
        train(logger, jr.key(0), planned * ALGO.steps_per_iteration)
    status = raised.value.result.status  # type: ignore[attr-defined]  # attached by train
    stopped = int(status.iteration)
    # The writer runs beside the program: the run stops at the first host
    # call after the failure, if one comes before its end.
    assert stopped >= 3
    if stopped < planned:
        assert status.reasons() is StopReason.LOGGING_FAILED
    logged = list(range(1, stopped + 1))
    assert [r["time/iteration"] for r in read_jsonl(path)] == logged
    (note,) = raised.value.__notes__
    assert "logging backend ListBackend in log_scalars" in note
    failure = logger.failure
    assert failure is not None and failure.__cause__ is raised.value
    with pytest.raises(error) as info:
        logger.close()
    assert info.value is raised.value
    assert info.value.__notes__ == [note]


def test_exit_adds_close_failures_to_the_blocks_exception(tmp_path: Path) -> None:
    """A with block that raises keeps its exception; every other failure
    becomes a note on it, naming the backend and where it writes."""
    closing = ListBackend(close_error=OSError("disk gone"), path="memory://b")
    with pytest.raises(ValueError, match="the block's own error") as info:
        with LoggingCallback([closing], log_every=1) as logger:
            train(logger, jr.key(0))
            raise ValueError("the block's own error")
    (note,) = info.value.__notes__
    assert "ListBackend (memory://b) failed in close" in note and "disk gone" in note
    assert closing.calls[-1] == ("close", None)
    assert len(closing.records) == ITERATIONS
    # The block's error is the failure train raised: the close failure of
    # the other backend is noted on it, the failure itself is not.
    failing = ListBackend(fail_at=2, path="memory://a")
    closing = ListBackend(close_error=OSError("disk gone"), path="memory://b")
    with pytest.raises(LoggingBackendError) as raised:
        with LoggingCallback([failing, closing], log_every=1) as logger:
            train(logger, jr.key(0))
    assert "ListBackend (memory://a) failed in log_scalars at iteration 2" in str(
        raised.value
    )
    (note,) = raised.value.__notes__
    assert "ListBackend (memory://b) failed in close" in note and "disk gone" in note


def test_exit_raises_like_close_when_the_block_did_not(tmp_path: Path) -> None:
    first = ListBackend(close_error=OSError("first disk gone"))
    second = ListBackend(close_error=OSError("disk gone"), path="memory://b")
    with pytest.raises(LoggingBackendError, match="first disk gone") as info:
        with LoggingCallback([first, second], log_every=1) as logger:
            train(logger, jr.key(0))
    (note,) = info.value.__notes__  # the second failure
    assert note.startswith("also: ") and "memory://b" in note


def test_a_stuck_backend_is_given_up_on_after_drain_timeout(tmp_path: Path) -> None:
    """learn waits at most drain_timeout for a backend call that does not
    return, records it as stuck, and does not wait for it again."""
    path = tmp_path / "log.jsonl"
    gate = threading.Event()
    stuck = ListBackend(block=gate, block_at=2)
    logger = LoggingCallback(
        [stuck, JSONLBackend(path)], drain_timeout=3.0, log_every=1
    )
    try:
        # The end of the call gives up on the stuck call after drain_timeout
        # and reports it: the run had completed.
        with pytest.raises(LoggingBackendError) as first:
            train(logger, jr.key(0))
        assert first.value.result.status.reasons() is StopReason.COMPLETED
        start = time.monotonic()
        # The failure was recorded at the end of the first call: the second
        # stops after its first iteration and raises it.
        with pytest.raises(LoggingBackendError) as raised:
            train(logger, jr.key(1))
        assert time.monotonic() - start < 3.0  # not waiting for it again
    finally:
        gate.set()
    stopped = raised.value.result.status
    assert stopped.reasons() is StopReason.LOGGING_FAILED
    assert int(stopped.iteration) == 1
    failure = logger.failure
    assert failure is not None and failure.method == "log_scalars"
    assert failure.iteration == 2 and failure.run_indices == (0,)
    assert isinstance(failure.__cause__, TimeoutError)
    assert "did not return within drain_timeout=3.0 s" in str(failure)
    with pytest.raises(LoggingBackendError) as info:
        logger.close()
    assert info.value is failure is raised.value
    # Once the call returned, the others got everything, at the right steps.
    rows = read_jsonl(path)
    assert [r["time/iteration"] for r in rows] == list(range(1, ITERATIONS + 2))
    per = ALGO.steps_per_iteration
    assert [r["step"] for r in rows] == [per * i for i in range(1, ITERATIONS + 2)]
    assert len(stuck.records) == 2 and stuck.calls[-1] == ("close", None)


def test_learn_waits_at_most_drain_timeout(tmp_path: Path) -> None:
    gate = threading.Event()
    stuck = ListBackend(block=gate, block_at=1)
    logger = LoggingCallback([stuck], drain_timeout=1.0, log_every=1)
    try:
        start = time.monotonic()
        with pytest.raises(LoggingBackendError, match="drain_timeout=1.0") as info:
            train(logger, jr.key(0))
        elapsed = time.monotonic() - start
    finally:
        gate.set()
    assert stuck.blocked.is_set()
    assert elapsed >= 1.0
    with pytest.raises(LoggingBackendError) as again:
        logger.close()
    assert again.value is info.value


def test_unwritable_directories_raise_at_construction(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="TensorBoardBackend: log_dir="):
        TensorBoardBackend(log_dir=blocker / "tb")
    with pytest.raises(ValueError, match="TensorBoardBackend: log_dir="):
        TensorBoardBackend(log_dir=blocker)
    with pytest.raises(ValueError, match="JSONLBackend: path's directory="):
        JSONLBackend(blocker / "log.jsonl")
    with pytest.raises(ValueError, match="is a directory"):
        JSONLBackend(tmp_path)


def test_default_tensorboard_dir_checked_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runs").write_text("a file where runs/ should go")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"log_dir \(default\)"):
        TensorBoardBackend()


def test_nan_and_inf_are_logged_as_such(tmp_path: Path) -> None:
    values = {"a/nan": math.nan, "a/inf": math.inf, "a/neg_inf": -math.inf}
    jsonl = JSONLBackend(tmp_path / "log.jsonl")
    tb = TensorBoardBackend(tmp_path / "tb")
    console = ConsoleBackend()
    for backend in (jsonl, tb, console):
        backend.open(RUN)
        backend.log_scalars(values, 10, 0)
        backend.flush()
        backend.close()
    (row,) = read_jsonl(tmp_path / "log.jsonl")
    assert math.isnan(row["a/nan"])
    assert row["a/inf"] == math.inf and row["a/neg_inf"] == -math.inf
    assert "NaN" in (tmp_path / "log.jsonl").read_text()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert math.isnan(acc.Scalars("a/nan")[0].value)
    assert acc.Scalars("a/inf")[0].value == math.inf
    assert acc.Scalars("a/neg_inf")[0].value == -math.inf
    assert acc.Scalars("a/nan")[0].step == 10


def test_missing_wandb_raises_import_error_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with pytest.raises(ImportError, match=r"pip install 'lerax\[wandb\]'"):
        WandbBackend(project="p", mode="offline")


def test_bad_configuration_raises_at_construction(tmp_path: Path) -> None:
    backend = JSONLBackend(tmp_path / "log.jsonl")
    with pytest.raises(ValueError, match="log_every must be a positive int"):
        LoggingCallback([backend], log_every=0)
    with pytest.raises(ValueError, match=r"ema_alpha must be a number in \[0, 1\)"):
        LoggingCallback([backend], ema_alpha=1.0, log_every=1)
    with pytest.raises(ValueError, match="at least one backend"):
        LoggingCallback([], log_every=1)
    # (The test suite's runtime type checker may fire first on the next two;
    # both errors are TypeErrors naming the argument.)
    with pytest.raises(TypeError, match="backends"):
        LoggingCallback([backend, "tensorboard"], log_every=1)  # type: ignore[list-item]  # deliberate misuse
    with pytest.raises(TypeError, match="hparams"):
        LoggingCallback([backend], hparams={"seed": [1, 2]}, log_every=1)  # type: ignore[dict-item]  # deliberate misuse
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        LoggingCallback([backend], name="", log_every=1)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="drain_timeout must be a positive"):
            LoggingCallback([backend], drain_timeout=bad, log_every=1)
    with pytest.raises(ValueError, match="refresh_per_second must be a positive"):
        ConsoleBackend(refresh_per_second=-1.0)
    with pytest.raises((TypeError, ValueError), match="mode"):
        WandbBackend(mode="sometimes")  # type: ignore[arg-type]  # deliberate misuse


def test_env_of_another_type_raises_while_tracing(tmp_path: Path) -> None:
    pendulum = Pendulum()
    logger = LoggingCallback(
        [JSONLBackend(tmp_path / "log.jsonl")],
        env=pendulum,
        policy=MLPActorCriticPolicy(env=pendulum, key=jr.key(0)),
        log_every=1,
    )
    with pytest.raises(TypeError, match="built with env of type Pendulum"):
        train(logger, jr.key(0))
    logger.close()
    assert not (tmp_path / "log.jsonl").exists()  # nothing ran


def test_event_files_of_one_directory_sort_in_the_order_they_were_opened(
    tmp_path: Path,
) -> None:
    # TensorBoard reads a directory's event files in name order, and a
    # resumed run's file must come after the file it continues: within one
    # second the names differ only by a counter, past 9 and 99 too (110
    # files: the counter, shared by the process, passes 99 unless over 99).
    opened: list[Path] = []
    for i in range(110):
        backend = TensorBoardBackend(tmp_path)
        backend.open(RUN)
        before = set(tmp_path.rglob("events.out.tfevents.*"))
        backend.log_scalars({"x": float(i)}, step=i, run_index=0)
        backend.close()
        (new,) = set(tmp_path.rglob("events.out.tfevents.*")) - before
        opened.append(new)
    assert len({p.parent for p in opened}) == 1
    assert sorted(opened) == opened
