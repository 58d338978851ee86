"""shard_seeds: seeds spread over devices train as they do on one device."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import shard_seeds


def test_one_device_places_and_keeps_values() -> None:
    keys = jr.split(jr.key(0), 3)
    x = jnp.arange(6.0).reshape(3, 2)
    placed_keys, placed_x, name = shard_seeds((keys, x, "not an array"))
    assert name == "not an array"
    np.testing.assert_array_equal(placed_x, x)
    np.testing.assert_array_equal(jr.key_data(placed_keys), jr.key_data(keys))
    assert placed_x.sharding.device_set == set(jax.devices()[:1])


def test_errors_name_the_shape_and_device_count() -> None:
    device = jax.devices()[0]
    with pytest.raises(
        ValueError,
        match=r"divisible by the number of devices \(2\), got an array of shape \(3,\)",
    ):
        shard_seeds(jnp.zeros(3), devices=[device, device])
    with pytest.raises(ValueError, match=r"shape \(\)"):
        shard_seeds(jnp.zeros(()))
    with pytest.raises(ValueError, match="devices must not be empty"):
        shard_seeds(jnp.zeros(2), devices=[])


SCRIPT = textwrap.dedent(
    """
    import equinox as eqx, jax, jax.numpy as jnp, jax.random as jr, numpy as np
    from lerax.algorithm import PPO, shard_seeds
    from lerax.env import CartPole
    from lerax.policy import MLPActorCriticPolicy

    assert len(jax.devices()) == 2, jax.devices()
    env = CartPole()
    algo = PPO(num_envs=2, num_steps=32, num_epochs=2, num_minibatches=2)
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    train = eqx.filter_jit(
        eqx.filter_vmap(lambda k: algo.train(env, policy, 128, key=k))
    )
    keys = jr.split(jr.key(1), 4)
    spread = train(shard_seeds(keys))
    weight = spread.policy.value_head.weight
    # Each device holds two of the four seeds.
    assert weight.sharding.device_set == set(jax.devices()), weight.sharding
    shards = sorted((s.device.id, s.data.shape) for s in weight.addressable_shards)
    assert shards == [(0, (2, 64, 1)), (1, (2, 64, 1))], shards
    together = train(keys)
    np.testing.assert_array_equal(spread.iterations, [2, 2, 2, 2])
    for a, b in zip(
        jax.tree.leaves(eqx.filter(spread.policy, eqx.is_array)),
        jax.tree.leaves(eqx.filter(together.policy, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for i in range(4):
        single = algo.train(env, policy, 128, key=keys[i]).policy.value_head.weight
        np.testing.assert_allclose(
            np.asarray(weight)[i], np.asarray(single), rtol=1e-5, atol=1e-6
        )

    # Logging and checkpoints work with the seeds split over the devices. One
    # host call (on the first device) carries every seed's buffered records,
    # seed by seed, each seed's in order. The four seeds' state (about 440 KB)
    # reaches the checkpoint's host call in pieces (in one operand of 100 KiB
    # or more the program stalled in a cross-device rendezvous), and the last
    # checkpoint is the returned state, bit for bit.
    import io, json, sys
    from rich.console import Console
    from lerax.callback import JSONLBackend, LoggingCallback, ProgressBarCallback
    from lerax.checkpoint import CheckpointCallback, load

    def logged(keys, name):
        logger = LoggingCallback([JSONLBackend(f"{sys.argv[1]}/{name}.jsonl")], log_every=1)
        bars = io.StringIO()
        progress = ProgressBarCallback(console=Console(file=bars, width=100))
        saver = CheckpointCallback(f"{sys.argv[1]}/{name}", every=64)
        run = eqx.filter_jit(eqx.filter_vmap(
            lambda k: algo.train(
                env, policy, 128, key=k, callback=[logger, progress, saver]
            )
        ))
        result = run(keys)
        jax.block_until_ready(result)
        logger.close()
        saver.wait()
        assert saver.writer.latest_step() == 2
        state = load(f"{sys.argv[1]}/{name}")
        saved = jax.tree.leaves(eqx.filter(state.policy, eqx.is_array))
        final = jax.tree.leaves(eqx.filter(result.policy, eqx.is_array))
        assert sum(np.asarray(x).nbytes for x in saved) > 100 * 1024
        for a, b in zip(saved, final, strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        saver.close()
        with open(f"{sys.argv[1]}/{name}.jsonl") as f:
            rows = [json.loads(line) for line in f]
        for run in range(4):
            mine = [r["time/iteration"] for r in rows if r["run"] == run]
            assert mine == sorted(mine), (run, mine)
        rows.sort(key=lambda r: (r["time/iteration"], r["run"]))
        return rows, bars.getvalue()

    rows, bars = logged(shard_seeds(keys), "spread")
    assert [(r["run"], r["time/iteration"]) for r in rows] == [
        (run, it) for it in (1, 2) for run in range(4)
    ], rows
    assert all(f"run {i}" in bars for i in range(4)) and bars.count("128/128") == 4
    one_device, _ = logged(keys, "together")
    for a, b in zip(rows, one_device, strict=True):
        assert a["run"] == b["run"] and a["step"] == b["step"]
        np.testing.assert_allclose(a["train/loss"], b["train/loss"], rtol=1e-4)
        assert a.get("rollout/ep_return_mean") == b.get("rollout/ep_return_mean")
    print("OK")
    """
)


def run_on_two_cpu_devices(script: str, *args: str) -> None:
    """Run ``script`` in a fresh interpreter with two CPU devices (JAX reads
    the device count when it starts) and check it printed ``OK``."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env.pop("JAX_PLATFORMS", None)
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")


def test_two_cpu_devices_train_and_log_like_one(tmp_path: Path) -> None:
    run_on_two_cpu_devices(SCRIPT, str(tmp_path))


OFF_POLICY_SCRIPT = textwrap.dedent(
    """
    import equinox as eqx, jax, jax.random as jr, numpy as np
    from lerax.algorithm import SAC, shard_seeds
    from lerax.env import Pendulum
    from lerax.policy import MLPSACPolicy

    assert len(jax.devices()) == 2, jax.devices()
    env = Pendulum()
    algo = SAC(num_steps=4, buffer_size=64, learning_starts=4, batch_size=8)
    policy = MLPSACPolicy(env, key=jr.key(0), hidden_sizes=(16,))
    train = eqx.filter_jit(
        eqx.filter_vmap(lambda k: algo.train(env, policy, 16, key=k))
    )
    keys = jr.split(jr.key(1), 4)
    spread = train(shard_seeds(keys))
    # Each device holds two seeds' replay buffers and networks.
    rewards = spread.algorithm_state.buffer.rewards
    assert rewards.sharding.device_set == set(jax.devices()), rewards.sharding
    shards = sorted((s.device.id, s.data.shape) for s in rewards.addressable_shards)
    assert shards == [(0, (2, 64)), (1, (2, 64))], shards
    np.testing.assert_array_equal(spread.iterations, [4, 4, 4, 4])
    together = train(keys)
    single = eqx.filter_jit(lambda k: algo.train(env, policy, 16, key=k))
    for i in range(4):
        alone = single(keys[i])
        for a, b, c in zip(
            jax.tree.leaves(eqx.filter(spread.policy, eqx.is_array)),
            jax.tree.leaves(eqx.filter(together.policy, eqx.is_array)),
            jax.tree.leaves(eqx.filter(alone.policy, eqx.is_array)),
            strict=True,
        ):
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(b)[i], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(c), rtol=1e-5, atol=1e-6)
        # The rewards follow the actions: equal within the same rounding.
        np.testing.assert_allclose(
            np.asarray(spread.algorithm_state.buffer.rewards)[i],
            np.asarray(alone.algorithm_state.buffer.rewards),
            rtol=1e-5,
            atol=1e-6,
        )
    print("OK")
    """
)


def test_an_offpolicy_algorithm_spreads_seeds_and_buffers_over_devices() -> None:
    """SAC: each seed's replay buffer lives on the device of its seed, and
    each seed learns as its single run does."""
    run_on_two_cpu_devices(OFF_POLICY_SCRIPT)
