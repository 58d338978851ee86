"""LoggingCallback in a single run: the logged values are the right ones."""

import importlib
import math
import struct
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lerax.callback import (
    IterationRecord,
    JSONLBackend,
    LoggingCallback,
    TensorBoardBackend,
)

from .logging_helpers import (
    ALGO,
    ITERATIONS,
    TOTAL,
    TRACES,
    ListBackend,
    assert_rollout_matches,
    expected_rollout_stats,
    read_jsonl,
    train,
)

PPO_LOG_KEYS = {
    "train/loss",
    "train/policy_loss",
    "train/value_loss",
    "train/entropy",
    "train/approx_kl",
    "train/clip_fraction",
    "train/explained_variance",
    "train/learning_rate",
}


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {
        tag: [(e.step, e.value) for e in acc.Scalars(tag)]
        for tag in acc.Tags()["scalars"]
    }


def tensorboard_hparams(log_dir: Path) -> dict[str, Any]:
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    # protobuf modules are untyped: reach the message class through the module
    pb2 = importlib.import_module("tensorboard.plugins.hparams.plugin_data_pb2")
    data = pb2.HParamsPluginData.FromString(content)
    out: dict[str, Any] = {}
    for name, value in data.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        out[name] = getattr(value, kind)
    return out


def test_logged_values_match_a_recorded_rollout(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    logger = LoggingCallback([JSONLBackend(path)], ema_alpha=0.9, log_every=1)
    result = train(logger, jr.key(1))
    logger.close()
    rows = read_jsonl(path)
    assert [r["time/iteration"] for r in rows] == list(range(1, ITERATIONS + 1))
    assert [r["step"] for r in rows] == [
        ALGO.steps_per_iteration * i for i in range(1, ITERATIONS + 1)
    ]
    assert all(r["run"] == 0 and r["time/timesteps"] == r["step"] for r in rows)
    assert all(r["time/steps_per_second"] > 0 for r in rows)

    recorded = result.callback_step_state[1]
    rewards = np.asarray(recorded.rewards)
    dones = np.asarray(recorded.dones)
    assert rewards.shape == (ALGO.num_envs, ITERATIONS * ALGO.num_steps)
    expected = expected_rollout_stats(rewards, dones, ALGO.num_steps, 0.9)
    assert sum(e["rollout/episodes"] for e in expected) >= 8  # a real check
    for row, exp in zip(rows, expected, strict=True):
        assert_rollout_matches(row, exp)

    # The step state's named fields: per environment, the episode in
    # progress at the end (steps since its last done) and whether one ended.
    stats = result.callback_step_state[0]
    assert stats.episode_return.shape == (ALGO.num_envs,)
    assert stats.window_length_sum.shape == (ALGO.num_envs,)
    for e in range(ALGO.num_envs):
        ends = np.flatnonzero(dones[e])
        start = ends[-1] + 1 if ends.size else 0
        assert int(stats.episode_length[e]) == rewards.shape[1] - start
        assert math.isclose(
            float(stats.episode_return[e]),
            float(rewards[e, start:].sum()),
            rel_tol=1e-6,
        )
        assert bool(stats.completed[e]) == bool(ends.size)
        assert int(stats.window_iteration[e]) == ITERATIONS - 1

    # Every PPO training-log entry; the learning rate is the linear schedule's
    # value at the iteration's last minibatch update.
    updates = ALGO.num_epochs * ALGO.num_minibatches
    for i, row in enumerate(rows, start=1):
        assert PPO_LOG_KEYS <= set(row)
        lr = ALGO.learning_rate * (1 - (i * updates - 1) / (ITERATIONS * updates))
        assert math.isclose(row["train/learning_rate"], lr, rel_tol=1e-5)


def test_tensorboard_scalars_and_hparams_read_back(tmp_path: Path) -> None:
    jsonl, tb = tmp_path / "log.jsonl", tmp_path / "tb"
    logger = LoggingCallback(
        [JSONLBackend(jsonl), TensorBoardBackend(tb)], hparams={"seed": 7}, log_every=1
    )
    train(logger, jr.key(2))
    logger.close()
    rows = read_jsonl(jsonl)
    scalars = tensorboard_scalars(tb)  # a single run writes into log_dir itself
    keys = {k for row in rows for k in row} - {"run", "step"}
    assert set(scalars) == keys
    for key in keys:
        want = [(row["step"], row[key]) for row in rows if key in row]
        got = scalars[key]
        assert [s for s, _ in got] == [s for s, _ in want]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)
    hparams = tensorboard_hparams(tb)
    assert hparams["algorithm/num_envs"] == 2
    assert hparams["algorithm/num_steps"] == 64
    assert hparams["algorithm/anneal_lr"] is True
    assert hparams["algorithm/name"] == "PPO"
    assert hparams["env/name"] == "CartPole"
    assert math.isclose(hparams["env/gravity"], 9.8, rel_tol=1e-6)
    assert hparams["env/max_episode_steps"] == 500
    assert hparams["policy/name"] == "MLPActorCriticPolicy"
    assert hparams["policy/shared"] is False
    assert hparams["seed"] == 7


def test_a_new_logger_of_equal_config_does_not_recompile(tmp_path: Path) -> None:
    first = ListBackend()
    with LoggingCallback([first], name="a", log_every=1) as logger:
        train(logger, jr.key(3))
    traces = TRACES[0]
    second = ListBackend()
    other = LoggingCallback(
        [JSONLBackend(tmp_path / "b.jsonl"), second], name="b", log_every=1
    )
    train(other, jr.key(3))
    other.close()
    assert TRACES[0] == traces  # no new trace, hence no recompilation
    # The new logger's id reached the compiled program: its backends got the
    # records (identical to the first logger's, same key), nothing else did.
    assert len(first.records) == len(second.records) == ITERATIONS
    for (_, s1, r1), (_, s2, r2) in zip(first.records, second.records, strict=True):
        assert s1 == s2
        assert r1.keys() == r2.keys()
        for k in r1:
            if k != "time/steps_per_second":
                assert r1[k] == r2[k] or (math.isnan(r1[k]) and math.isnan(r2[k]))
    assert len(read_jsonl(tmp_path / "b.jsonl")) == ITERATIONS


def test_second_learn_continues_steps_and_iterations(tmp_path: Path) -> None:
    backend = ListBackend()
    path = tmp_path / "log.jsonl"
    with LoggingCallback([JSONLBackend(path), backend], log_every=1) as logger:
        train(logger, jr.key(4))
        train(logger, jr.key(5))
    rows = read_jsonl(path)
    per = ALGO.steps_per_iteration
    assert [r["step"] for r in rows] == [per * i for i in range(1, 2 * ITERATIONS + 1)]
    assert [r["time/iteration"] for r in rows] == list(range(1, 2 * ITERATIONS + 1))
    kinds = [c[0] for c in backend.calls]
    assert kinds == (
        ["open", "hparams"]
        + ["scalars"] * ITERATIONS
        + ["finish", "open"]  # hyperparameters are recorded once per run
        + ["scalars"] * ITERATIONS
        + ["finish", "close"]
    )
    opens = [c[1] for c in backend.calls if c[0] == "open"]
    assert [o.session for o in opens] == [1, 2]
    assert opens[0].step_offsets == (0,) and opens[1].step_offsets == (TOTAL,)
    assert opens[0].name == opens[1].name
    assert opens[0].name.startswith("PPO_CartPole_")
    assert opens[0].num_runs == 1 and opens[0].total_timesteps == TOTAL


def test_learn_returns_with_everything_written_and_flushed(tmp_path: Path) -> None:
    # The writer batches its flushes; the end of learn drains and flushes.
    backend = ListBackend()
    path = tmp_path / "log.jsonl"
    with LoggingCallback([backend, JSONLBackend(path)], log_every=1) as logger:
        train(logger, jr.key(7)).iterations.block_until_ready()
        assert [r["time/iteration"] for r in read_jsonl(path)] == list(
            range(1, ITERATIONS + 1)
        )
        assert backend.calls[-1] == ("finish", 0)
        assert backend.flushed_at and backend.flushed_at[-1] == len(backend.calls)


def test_a_closed_logger_refuses_to_train(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with LoggingCallback([JSONLBackend(path)], log_every=1) as logger:
        pass
    logger.close()  # closing twice is harmless
    with pytest.raises(Exception, match="closed"):
        train(logger, jr.key(6)).iterations.block_until_ready()


def _crc32c_reference(data: bytes) -> int:
    """CRC-32C (Castagnoli), bit by bit: the reference for the event files'
    check sums."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_tensorboard_event_files_are_valid_tfrecords(tmp_path: Path) -> None:
    """Every record of the event file has TFRecord's framing and correct
    masked CRC32C check sums (what TensorBoard's strict readers verify), and
    the first event declares the file version."""
    logger = LoggingCallback([TensorBoardBackend(tmp_path)], log_every=1)
    train(logger, jr.key(3))
    logger.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    data = path.read_bytes()
    pos, records = 0, []
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        body = data[pos + 12 : pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert header_crc == _masked(_crc32c_reference(header))
        assert body_crc == _masked(_crc32c_reference(body))
        records.append(body)
        pos += 16 + length
    assert pos == len(data)
    # protobuf modules are untyped: reach the message class through the module
    event_pb2 = importlib.import_module("tensorboard.compat.proto.event_pb2")
    events = [event_pb2.Event.FromString(r) for r in records]
    assert events[0].file_version == "brain.Event:2"
    scalar_steps = [
        e.step for e in events if any(v.tag == "train/loss" for v in e.summary.value)
    ]
    assert scalar_steps == [
        ALGO.steps_per_iteration * i for i in range(1, ITERATIONS + 1)
    ]


def test_an_iteration_record_packs_its_parts_and_reads_them_back() -> None:
    record = IterationRecord.pack(
        iteration=jnp.array([1, 2]),
        timesteps=jnp.array([64, 128]),
        episodes=jnp.array([0, 3]),
        ema_valid=jnp.array([False, True]),
        window_valid=jnp.array([False, True]),
        scalars={"train/loss": jnp.array([0.5, 0.25]), "rollout/x": jnp.zeros(2)},
    )
    # Three arrays, whatever the number of scalars: each array of the
    # logger's buffer is a kernel of its own in every iteration.
    assert len(jax.tree.leaves(record)) == 3
    assert record.names == ("train/loss", "rollout/x")
    assert record.counts.shape == (2, 3) and record.values.shape == (2, 2)
    np.testing.assert_array_equal(record.iteration, [1, 2])
    np.testing.assert_array_equal(record.timesteps, [64, 128])
    np.testing.assert_array_equal(record.episodes, [0, 3])
    np.testing.assert_array_equal(record.ema_valid, [False, True])
    np.testing.assert_array_equal(record.window_valid, [False, True])
    np.testing.assert_array_equal(record.scalars["train/loss"], [0.5, 0.25])
    assert list(record.scalars) == ["train/loss", "rollout/x"]


def test_the_loggers_buffer_is_three_arrays(tmp_path: Path) -> None:
    with LoggingCallback([JSONLBackend(tmp_path / "log.jsonl")]) as logger:
        result = train(logger, key=jr.key(0))
    [pending] = [
        x
        for x in jax.tree.leaves(
            result.train_state.callback_state,
            is_leaf=lambda x: isinstance(x, IterationRecord),
        )
        if isinstance(x, IterationRecord)
    ]
    assert len(jax.tree.leaves(pending)) == 3
    assert "train/loss" in pending.names and "rollout/ep_return_ema" in pending.names
