"""Shared pieces of the logging tests: one small PPO configuration, a callback
that records every raw transition, and a numpy recomputation of the episode
statistics a ``LoggingCallback`` logs."""

import json
import math
import os
import struct
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from lerax.algorithm import PPO, TrainResult
from lerax.callback import (
    AbstractCallback,
    AbstractLoggingBackend,
    EmptyCallbackState,
    HParamValue,
    LoggingCallback,
    ResetContext,
    RunInfo,
    StepContext,
)
from lerax.env import AbstractEnv, CartPole
from lerax.policy import AbstractPolicy, MLPActorCriticPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=64, num_epochs=2, num_minibatches=2)
ITERATIONS = 4
TOTAL = ITERATIONS * ALGO.steps_per_iteration  # 512 environment steps
CAPACITY = ITERATIONS * ALGO.num_steps  # steps per environment per learn call

TRACES = [0]
"""How many times a training loop holding a :class:`Recorder` was traced."""

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]


@final
class Recorded(eqx.Module):
    """One environment's raw transitions, in order."""

    rewards: Float[Array, " t"]
    dones: Bool[Array, " t"]
    count: Int[Array, ""]


@final
class Recorder(AbstractCallback[EmptyCallbackState, Recorded]):
    """Records the raw reward and done flag of every step; counts traces."""

    capacity: int = eqx.field(static=True)

    def reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: PRNGKeyArray
    ) -> EmptyCallbackState:
        TRACES[0] += 1  # runs while tracing only
        return EmptyCallbackState()

    def step_reset(
        self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: PRNGKeyArray
    ) -> Recorded:
        return Recorded(
            rewards=jnp.zeros((self.capacity,), jnp.float32),
            dones=jnp.zeros((self.capacity,), jnp.bool_),
            count=jnp.zeros((), jnp.int32),
        )

    def on_step(
        self, ctx: StepContext[Recorded, AnyEnv, AnyPolicy], *, key: PRNGKeyArray
    ) -> Recorded:
        s = ctx.state
        return Recorded(
            rewards=s.rewards.at[s.count].set(jnp.asarray(ctx.reward, jnp.float32)),
            dones=s.dones.at[s.count].set(ctx.done),
            count=s.count + 1,
        )


def train(
    logger: LoggingCallback, key: Array, total: int = TOTAL
) -> TrainResult[Any, Any, Any]:
    """The one single-run configuration every test shares (one compilation)."""
    return ALGO.train(
        ENV, POLICY, total, key=key, callback=[logger, Recorder(CAPACITY)]
    )


def expected_rollout_stats(
    rewards: npt.NDArray[np.float32],
    dones: npt.NDArray[np.bool_],
    num_steps: int,
    ema_alpha: float,
    logged: Collection[int] | None = None,
) -> list[dict[str, float]]:
    """Per iteration, the ``rollout/*`` values recomputed from raw transitions
    (``rewards``/``dones`` of shape ``[num_envs, steps]``) in plain Python.
    The window of episodes starts after each logged iteration (1-based
    ``logged``; every iteration if ``None``)."""
    num_envs, steps = rewards.shape
    ret = [0.0] * num_envs
    length = [0] * num_envs
    ema_r: dict[int, float] = {}  # per env, once an episode has ended
    ema_l: dict[int, float] = {}
    out: list[dict[str, float]] = []
    window: list[tuple[float, int]] = []
    for it in range(steps // num_steps):
        if it == 0 or logged is None or it in logged:
            window = []  # a new window after a logged iteration
        for e in range(num_envs):
            for t in range(it * num_steps, (it + 1) * num_steps):
                ret[e] += float(rewards[e, t])
                length[e] += 1
                if dones[e, t]:
                    window.append((ret[e], length[e]))
                    if e in ema_r:
                        ema_r[e] = ema_alpha * ema_r[e] + (1 - ema_alpha) * ret[e]
                        ema_l[e] = ema_alpha * ema_l[e] + (1 - ema_alpha) * length[e]
                    else:  # the EMA starts at the first completed episode
                        ema_r[e], ema_l[e] = ret[e], float(length[e])
                    ret[e], length[e] = 0.0, 0
        record: dict[str, float] = {"rollout/episodes": float(len(window))}
        if ema_r:  # the mean over the environments that completed an episode
            record["rollout/ep_return_ema"] = float(np.mean(list(ema_r.values())))
            record["rollout/ep_length_ema"] = float(np.mean(list(ema_l.values())))
        if window:
            returns = [r for r, _ in window]
            record["rollout/ep_return_mean"] = float(np.mean(returns))
            record["rollout/ep_return_min"] = min(returns)
            record["rollout/ep_return_max"] = max(returns)
            record["rollout/ep_length_mean"] = float(np.mean([n for _, n in window]))
        out.append(record)
    return out


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def by_iteration(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of several runs, iteration by iteration and runs in order.

    They arrive in batches (a host call sends each run's buffered records in
    turn); each run's own records must come in order."""
    for run in {r["run"] for r in rows}:
        mine = [r["time/iteration"] for r in rows if r["run"] == run]
        assert mine == sorted(mine), (run, mine)
    return sorted(rows, key=lambda r: (r["time/iteration"], r["run"]))


def assert_rollout_matches(
    logged: Mapping[str, Any], expected: Mapping[str, float]
) -> None:
    """The logged ``rollout/*`` keys are exactly the expected ones, same values."""
    got = {k: v for k, v in logged.items() if k.startswith("rollout/")}
    assert set(got) == set(expected), (sorted(got), sorted(expected))
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-5, abs_tol=1e-5), (
            key,
            got[key],
            value,
        )


@final
class ListBackend(AbstractLoggingBackend):
    """Keeps every call in memory.

    Raises ``error`` on the ``fail_at``-th scalar record, and ``close_error``
    from :meth:`close`; with ``block``, waits for that event on the
    ``block_at``-th scalar record (setting ``blocked`` first). ``path`` (if
    given) is what error messages show as its location.
    """

    def __init__(
        self,
        fail_at: int | None = None,
        *,
        error: type[BaseException] = RuntimeError,
        close_error: BaseException | None = None,
        block: threading.Event | None = None,
        block_at: int = 1,
        path: str | None = None,
    ):
        self.fail_at = fail_at
        self.error = error
        self.close_error = close_error
        self.block = block
        self.block_at = block_at
        self.blocked = threading.Event()
        if path is not None:
            self.path = path
        self.calls: list[tuple[str, Any]] = []
        self.records: list[tuple[int, int, dict[str, float]]] = []
        self.flushed_at: list[int] = []  # len(calls) at each flush

    def open(self, run: RunInfo) -> None:
        self.calls.append(("open", run))

    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        self.calls.append(("hparams", (run_index, dict(hparams))))

    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        n = len(self.records) + 1
        if self.block is not None and n == self.block_at:
            self.blocked.set()
            self.block.wait()
        if self.fail_at is not None and n == self.fail_at:
            raise self.error(f"backend failure at record {self.fail_at}")
        self.records.append((run_index, step, dict(scalars)))
        self.calls.append(("scalars", (run_index, step)))

    def finish(self, run_index: int) -> None:
        self.calls.append(("finish", run_index))

    def flush(self) -> None:
        self.flushed_at.append(len(self.calls))

    def close(self) -> None:
        self.calls.append(("close", None))
        if self.close_error is not None:
            raise self.close_error


def read_wandb_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an offline W&B run file (``run-*.wandb``): its name, group, config
    and history rows.

    The file is a LevelDB-style log (32 KiB blocks of records with a 7-byte
    header: crc32, length, type) after a 7-byte ``:W&B`` header; each record
    is a ``wandb_internal_pb2.Record``. A file still being written is read up
    to its last complete record.
    """
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    pos, block, buf = 7, 32768, b""
    records: list[Any] = []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 or pos + length > len(data):
            break  # end of what the writer has flushed so far
        chunk = data[pos : pos + length]
        pos += length
        buf = chunk if kind in (1, 2) else buf + chunk  # full/first vs middle/last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()  # type: ignore[attr-defined]  # generated protobuf module, no stubs
            try:
                record.ParseFromString(buf)
            except DecodeError:
                break  # a record still being written
            records.append(record)
    out: dict[str, Any] = {"history": [], "config": {}}
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["name"] = record.run.display_name
            out["group"] = record.run.run_group
            for item in record.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in record.history.item
                }
            )
    return out
