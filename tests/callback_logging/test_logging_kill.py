"""A training process killed with SIGKILL keeps what it logged up to about
one flush interval before, in files that stay readable."""

import importlib
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax.callback.logging._writer import BATCH_SECONDS, FLUSH_SECONDS

CHILD = """
import sys, time
import jax.random as jr
from lerax.algorithm import PPO
from lerax.callback import (
    AbstractLoggingBackend, JSONLBackend, LoggingCallback, TensorBoardBackend,
)
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

class Reporter(AbstractLoggingBackend):
    # Called after the file backends: when it reports a step, they have
    # written that record (not necessarily flushed it).
    def open(self, run): pass
    def log_hparams(self, hparams, run_index): pass
    def log_scalars(self, scalars, step, run_index):
        sys.stdout.write(f"{step} {time.monotonic()}\\n")
        sys.stdout.flush()
    def finish(self, run_index): pass
    def flush(self): pass
    def close(self): pass

env = CartPole()
policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
logger = LoggingCallback(
    [JSONLBackend(sys.argv[1]), TensorBoardBackend(sys.argv[2]), Reporter()], log_every=1
)
algo.train(env, policy, 10**6 * algo.steps_per_iteration, key=jr.key(0),
           callback=logger)
"""

# What a record may wait for after it was written: a flush interval, a batch
# pause, and slack for a loaded machine (the test suite runs in parallel).
MARGIN = FLUSH_SECONDS + BATCH_SECONDS + 0.7


def _jsonl_steps(path: Path) -> list[int]:
    """Steps of the complete lines; a torn last line (no newline) is allowed."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # the last piece has no newline: empty or torn
    return [int(json.loads(line)["step"]) for line in complete]


def _masked(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data`` (tensorboardX's CRC: pure
    Python, or the ``crc32c`` package if installed)."""
    crc = int(importlib.import_module("tensorboardX.crc32c").crc32c(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _event_steps(log_dir: Path) -> list[int]:
    """Steps of the scalar events of the complete records (each with valid
    check sums); a torn last record is allowed."""
    event_pb2 = importlib.import_module("tensorboard.compat.proto.event_pb2")
    (path,) = log_dir.glob("events.out.tfevents.*")
    data = path.read_bytes()
    pos, steps = 0, []
    while pos + 12 <= len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        if pos + 16 + length > len(data):
            break  # torn: written up to here when the process died
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        body = data[pos + 12 : pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert header_crc == _masked(header)
        assert body_crc == _masked(body)
        event = event_pb2.Event.FromString(body)
        if any(v.tag == "train/loss" for v in event.summary.value):
            steps.append(event.step)
        pos += 16 + length
    assert len(data) - pos < 16 + 4096  # at most one torn record
    return steps


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_loses_at_most_about_a_flush_interval(tmp_path: Path) -> None:
    jsonl, tb = tmp_path / "log.jsonl", tmp_path / "tb"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(jsonl), str(tb)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert child.stdout is not None
    reported: list[tuple[int, float]] = []
    try:
        deadline = time.monotonic() + 300
        first = None
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break  # the child ended: a failure, reported below
            step, when = line.split()
            reported.append((int(step), float(when)))
            first = first if first is not None else time.monotonic()
            if time.monotonic() - first > 2.0 and len(reported) >= 20:
                break
        killed_at = time.monotonic()
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert len(reported) >= 20, "the child did not train long enough"
    must_have = [s for s, t in reported if t <= killed_at - MARGIN]
    assert must_have  # a real check
    jsonl_steps = _jsonl_steps(jsonl)
    event_steps = _event_steps(tb)
    assert set(must_have) <= set(jsonl_steps)
    assert set(must_have) <= set(event_steps)
    # In order, each once.
    assert jsonl_steps == sorted(set(jsonl_steps))
    assert event_steps == sorted(set(event_steps))
    # TensorBoard's own reader reads the file as it is.
    acc = EventAccumulator(str(tb), size_guidance={"scalars": 0})
    acc.Reload()
    assert {e.step for e in acc.Scalars("train/loss")} >= set(must_have)
