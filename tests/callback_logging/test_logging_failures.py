"""Bad input and failures: errors before training, data kept after a crash."""

import math
import sys
from pathlib import Path

import jax
import jax.random as jr
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax.callback import (
    ConsoleBackend,
    JSONLBackend,
    LoggingCallback,
    RunInfo,
    TensorBoardBackend,
    WandbBackend,
)
from lerax.env import Pendulum
from lerax.policy import MLPActorCriticPolicy

from .logging_helpers import ITERATIONS, ListBackend, read_jsonl, train

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


def test_records_before_a_host_failure_are_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    failing = ListBackend(fail_at=3)
    logger = LoggingCallback([failing, JSONLBackend(path)])
    with pytest.raises(jax.errors.JaxRuntimeError, match="backend failure at record 3"):
        train(logger, jr.key(0)).iterations.block_until_ready()
    rows = read_jsonl(path)  # every line complete, none of the failed record
    assert [r["time/iteration"] for r in rows] == [1, 2]
    # The logger still closes cleanly, and a new learn call starts a session.
    ok = ListBackend()
    logger.close()
    with LoggingCallback([ok, JSONLBackend(tmp_path / "again.jsonl")]) as again:
        train(again, jr.key(0))
    assert len(ok.records) == ITERATIONS


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
        LoggingCallback([backend], ema_alpha=1.0)
    with pytest.raises(ValueError, match="at least one backend"):
        LoggingCallback([])
    # (The test suite's runtime type checker may fire first on the next two;
    # both errors are TypeErrors naming the argument.)
    with pytest.raises(TypeError, match="backends"):
        LoggingCallback([backend, "tensorboard"])  # type: ignore[list-item]  # deliberate misuse
    with pytest.raises(TypeError, match="hparams"):
        LoggingCallback([backend], hparams={"seed": [1, 2]})  # type: ignore[dict-item]  # deliberate misuse
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        LoggingCallback([backend], name="")
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
    )
    with pytest.raises(TypeError, match="built with env of type Pendulum"):
        train(logger, jr.key(0))
    logger.close()
    assert not (tmp_path / "log.jsonl").exists()  # nothing ran
