"""CheckpointWriter and load: training states round trip bit for bit, with
their batch axes and static structure, eagerly and from a host call inside a
compiled program; keep_last; asynchronous writes of a copy."""

import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jax.experimental import io_callback

import lerax
from lerax.algorithm import TrainState
from lerax.checkpoint import (
    CheckpointWriter,
    latest,
    load,
    read_metadata,
    split_keys,
    steps,
)

from .conftest import PPO_ALGO, PPO_TOTAL, SEEDS
from .helpers import assert_bitwise_equal

State = TrainState[Any, Any, Any, Any]


def shapes(state: State) -> State:
    """``state`` with ``jax.ShapeDtypeStruct`` leaves."""
    out: State = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
        state,
    )
    return out


def test_a_single_run_round_trips_bitwise(ppo_state: State, tmp_path: Path) -> None:
    with CheckpointWriter(tmp_path) as writer:
        writer.save(3, ppo_state, extra={"note": "first", "seed": 1})
    loaded = load(tmp_path)
    assert_bitwise_equal(loaded, ppo_state)
    assert isinstance(loaded.key, jax.Array)
    assert jnp.issubdtype(loaded.key.dtype, jax.dtypes.prng_key)
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(loaded))
    # its own path, and into a given structure (arrays or shapes only)
    assert_bitwise_equal(load(tmp_path / "3"), ppo_state)
    assert_bitwise_equal(load(tmp_path, like=ppo_state), ppo_state)
    assert_bitwise_equal(load(tmp_path, like=shapes(ppo_state)), ppo_state)


def test_metadata_describes_the_run(ppo_state: State, tmp_path: Path) -> None:
    with CheckpointWriter(tmp_path) as writer:
        writer.save(3, ppo_state, extra={"note": "first", "seed": 1})
    meta = read_metadata(tmp_path)
    assert meta.path == str(tmp_path / "3")
    assert meta.step == 3
    assert meta.algorithm == "PPO"
    config = meta.algorithm_config
    assert config["num_envs"] == 2 and config["num_steps"] == 8
    assert config["gamma"] == 0.99 and config["anneal_lr"] is True
    # float32 values as the shortest decimal that reads back as the same value
    rate = config["learning_rate"]
    assert isinstance(rate, float) and rate == 0.0025
    assert np.float32(rate) == PPO_ALGO.learning_rate
    assert meta.total_timesteps == PPO_TOTAL == ppo_state.total_timesteps
    assert meta.num_iterations == 3 == ppo_state.num_iterations
    assert meta.iteration == (3,) and meta.timesteps == (PPO_TOTAL,)
    assert meta.batch_shape == () and meta.num_runs == 1
    assert meta.lerax_version == lerax.__version__
    assert meta.jax_version == jax.__version__
    assert meta.equinox_version == eqx.__version__
    assert meta.backend == jax.default_backend()
    assert meta.device_count == jax.device_count()
    flat = jax.tree_util.tree_flatten_with_path(ppo_state)[0]
    assert [(x.path, x.shape, x.dtype) for x in meta.leaves] == [
        (jax.tree_util.keystr(p), leaf.shape, str(leaf.dtype)) for p, leaf in flat
    ]
    assert meta.key_impls == {".key": str(jax.random.key_impl(ppo_state.key))}
    assert meta.rebuildable and meta.structure_error is None
    assert meta.extra == {"note": "first", "seed": 1}


def test_a_vmapped_sac_batch_with_a_callback_list_round_trips(
    sac_batch: State, ppo_state: State, tmp_path: Path
) -> None:
    """SAC's state holds a replay buffer; the callback state is a
    CallbackList's (a LoggingCallback's and an EmptyCallback's); every leaf
    has the batch axis."""
    assert np.all(np.asarray(sac_batch.algorithm_state.buffer.size) > 0)
    with CheckpointWriter(tmp_path) as writer:
        writer.save(0, sac_batch)
    loaded = load(tmp_path)
    assert_bitwise_equal(loaded, sac_batch)
    assert type(loaded.callback_state) is type(sac_batch.callback_state)
    assert loaded.key.shape == (SEEDS,)
    assert loaded.algorithm_state.buffer.observations.shape == (SEEDS, 64, 3)
    meta = read_metadata(tmp_path)
    assert meta.algorithm == "SAC"
    assert meta.batch_shape == (SEEDS,) and meta.num_runs == SEEDS
    assert meta.iteration == (4,) * SEEDS
    assert meta.algorithm_config["gamma"] == (0.99,) * SEEDS
    assert meta.algorithm_config["buffer_size"] == 64
    with pytest.raises(ValueError, match=r"batch shape \(2,\)"):
        load(tmp_path, like=jax.tree.map(lambda x: x[0], sac_batch))
    with pytest.raises(
        ValueError,
        match=r"\.policy: the file has type .*MLPSACPolicy; the given structure has type .*MLPActorCriticPolicy",
    ):
        load(tmp_path, like=ppo_state)


def test_keep_last_keeps_the_newest(ppo_state: State, tmp_path: Path) -> None:
    with CheckpointWriter(tmp_path, keep_last=2) as writer:
        for step in (1, 2, 5, 9):
            tagged = eqx.tree_at(lambda s: s.iteration, ppo_state, jnp.int32(step))
            writer.save(step, tagged)
            writer.wait()
    assert steps(tmp_path) == (5, 9)
    assert latest(tmp_path) == tmp_path / "9"
    assert int(load(tmp_path).iteration) == 9
    assert int(load(tmp_path / "5").iteration) == 5
    assert sorted(os.listdir(tmp_path)) == ["5", "9"]
    # a later writer on the same directory continues it
    with CheckpointWriter(tmp_path, keep_last=2) as writer:
        with pytest.raises(
            ValueError, match=r"step=9 is not after the newest checkpoint's step 9"
        ):
            writer.save(9, ppo_state)
        writer.save(10, ppo_state)
    assert steps(tmp_path) == (9, 10)


def test_save_returns_before_the_write_and_writes_its_copy(
    ppo_state: State, tmp_path: Path
) -> None:
    """The write happens in the background, after the state was copied: the
    caller may change its arrays as soon as save returns."""
    observation = np.asarray(
        np.random.default_rng(0).random((3_000_000, 4)), dtype=np.float32
    )  # 48 MB: its write outlasts save's return
    original = observation.copy()
    state = eqx.tree_at(lambda s: s.observation, ppo_state, observation)
    with CheckpointWriter(tmp_path) as writer:
        writer.save(1, state)
        assert steps(tmp_path) == ()  # not complete yet
        observation[:] = -1.0  # the caller reuses its buffer
        writer.wait()
        assert steps(tmp_path) == (1,)
    loaded = load(tmp_path)
    np.testing.assert_array_equal(np.asarray(loaded.observation), original)


def test_a_host_call_inside_a_compiled_program_saves(
    ppo_state: State, tmp_path: Path
) -> None:
    """How a checkpoint callback saves: the state's arrays leave the compiled
    program through ``io_callback`` (typed keys as key data, named by
    ``split_keys``), and the host rebuilds and saves it."""
    arrays, static = eqx.partition(ppo_state, eqx.is_array)
    writer = CheckpointWriter(tmp_path)

    @jax.jit
    def program(arrays: Any) -> jax.Array:
        state = eqx.combine(arrays, static)
        data, impls = split_keys(state)
        sent, kept = eqx.partition(data, eqx.is_array)

        def on_host(host_arrays: Any) -> np.ndarray:
            # as a host call's record arrives: NumPy arrays
            host_arrays = jax.tree.map(np.array, host_arrays)
            host_state = eqx.combine(host_arrays, kept)
            assert isinstance(host_state.observation, np.ndarray)
            writer.save(int(host_state.iteration), host_state, key_impls=impls)
            return np.zeros((), np.int32)

        token = jax.ShapeDtypeStruct((), jnp.int32)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
        out: jax.Array = io_callback(on_host, token, sent)
        return out

    assert int(program(arrays)) == 0
    writer.close()
    assert steps(tmp_path) == (3,)
    assert_bitwise_equal(load(tmp_path), ppo_state)


def test_leaves_of_every_dtype_and_empty_leaves_round_trip(
    ppo_state: State, tmp_path: Path
) -> None:
    """Any dtype a state may hold comes back as itself; empty leaves (which
    orbax refuses to store) come back from their recorded shape."""
    odd = {
        "bool": jnp.array([True, False]),
        "int8": jnp.arange(3, dtype=jnp.int8),
        "uint16": jnp.arange(2, dtype=jnp.uint16),
        "bfloat16": jnp.array([1.5, -0.0], jnp.bfloat16),
        "nan": jnp.array([jnp.nan, -jnp.inf], jnp.float32),
        "empty": jnp.zeros((0, 3), jnp.float32),
        "keys": jr.split(jr.key(0), 2),
        "no_keys": jr.split(jr.key(0), 0),
    }
    state = eqx.tree_at(lambda s: s.metrics, ppo_state, odd)
    with CheckpointWriter(tmp_path) as writer:
        writer.save(0, state)
    loaded = load(tmp_path)
    assert_bitwise_equal(loaded, state)
    assert read_metadata(tmp_path).key_impls.keys() == {
        ".metrics['keys']",
        ".metrics['no_keys']",
        ".key",
    }
