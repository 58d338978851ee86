"""CheckpointCallback: checkpoints saved from inside the compiled program on
its cadence and at an early stop, and runs resumed from them bitwise."""

from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import PPO, SAC, NonFiniteError, StopReason
from lerax.checkpoint import CheckpointCallback, load, read_metadata, steps
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy, MLPSACPolicy

from ..algorithm.offpolicy_helpers import StopAt
from ..algorithm.test_non_finite import Poisoned
from .helpers import assert_bitwise_equal

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0), hidden_sizes=(8,))
ALGO = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)
SPI = ALGO.steps_per_iteration
N = 10
TOTAL = N * SPI


def never() -> StopAt:
    return StopAt(jnp.asarray(10**6))


def train(directory: Path, every: int, stop: int = 10**6, **kwargs: Any) -> Any:
    """PPO for N iterations with a stopper and a CheckpointCallback (one
    compiled program for every directory, cadence and stop)."""
    checkpoints = CheckpointCallback(directory, every=every, **kwargs)
    return ALGO.train(
        ENV,
        POLICY,
        TOTAL,
        key=jr.key(1),
        callback=[StopAt(jnp.asarray(stop)), checkpoints],
    )


def test_saves_on_its_cadence_and_at_the_last_iteration(tmp_path: Path) -> None:
    full = train(tmp_path / "a", every=3 * SPI)
    assert steps(tmp_path / "a") == (3, 6, 9, 10)
    # `every` is in environment steps, rounded up to whole iterations.
    train(tmp_path / "b", every=2 * SPI + 1)
    assert steps(tmp_path / "b") == (3, 6, 9, 10)
    train(tmp_path / "c", every=3 * SPI, keep_last=2)
    assert steps(tmp_path / "c") == (9, 10)
    meta = read_metadata(tmp_path / "a")
    assert (meta.step, meta.iteration, meta.batch_shape) == (10, (10,), ())
    assert (meta.total_timesteps, meta.num_iterations) == (TOTAL, N)
    assert meta.algorithm == "PPO"
    assert_bitwise_equal(load(tmp_path / "a"), full.train_state)


def test_a_run_that_stops_between_saves_gets_a_last_checkpoint(tmp_path: Path) -> None:
    stopped = train(tmp_path / "on", every=2 * SPI, stop=5)
    assert stopped.status.reasons() is StopReason.CALLBACK
    assert steps(tmp_path / "on") == (2, 4, 5)
    assert_bitwise_equal(load(tmp_path / "on"), stopped.train_state)
    train(tmp_path / "off", every=2 * SPI, stop=5, save_on_stop=False)
    assert steps(tmp_path / "off") == (2, 4)


def test_resuming_from_the_directory_ends_bitwise_where_the_full_run_ends(
    tmp_path: Path,
) -> None:
    full = train(tmp_path / "full", every=4 * SPI)
    train(tmp_path / "run", every=2 * SPI, stop=5)
    # Called directly, a path resumes from its latest checkpoint; a new
    # CheckpointCallback on the directory goes on saving there.
    resumed = ALGO.train(
        ENV,
        POLICY,
        TOTAL,
        key=jr.key(1),
        callback=[never(), CheckpointCallback(tmp_path / "run", every=2 * SPI)],
        resume_from=tmp_path / "run",
    )
    assert int(resumed.iterations) == N
    assert steps(tmp_path / "run") == (2, 4, 5, 6, 8, 10)
    assert_bitwise_equal(resumed.train_state, full.train_state)
    # One checkpoint's own path resumes from it.
    again = ALGO.train(
        ENV,
        POLICY,
        TOTAL,
        key=jr.key(1),
        callback=[never(), CheckpointCallback(tmp_path / "again", every=N * SPI)],
        resume_from=tmp_path / "run" / "4",
    )
    assert_bitwise_equal(again.policy, full.policy)


def test_a_vmapped_batch_is_one_checkpoint_and_resumes_as_the_batch(
    tmp_path: Path,
) -> None:
    keys = jr.split(jr.key(3), 3)

    def run(key: Any, stop: Any, saver: CheckpointCallback) -> Any:
        return ALGO.train(ENV, POLICY, TOTAL, key=key, callback=[StopAt(stop), saver])

    full_saver = CheckpointCallback(tmp_path / "full", every=4 * SPI)
    part_saver = CheckpointCallback(tmp_path / "part", every=4 * SPI)
    full = eqx.filter_vmap(lambda k, s: run(k, s, full_saver))(
        keys, jnp.full((3,), 10**6)
    )
    eqx.filter_vmap(lambda k, s: run(k, s, part_saver))(keys, jnp.array([3, 6, 7]))
    # Under vmap train is traced and cannot wait for the writes itself.
    part_saver.wait()
    # Saved whenever a run that took the iteration is due; the last at the
    # stop of the last run.
    assert steps(tmp_path / "part") == (4, 7)
    meta = read_metadata(tmp_path / "part")
    assert (meta.batch_shape, meta.iteration) == ((3,), (3, 6, 7))
    state = load(tmp_path / "part")
    np.testing.assert_array_equal(state.iteration, [3, 6, 7])
    # Not under an outer jit, as the runs above (bitwise equality holds
    # between runs of the same program).
    resumed = eqx.filter_vmap(
        lambda s: ALGO.train(
            ENV,
            POLICY,
            TOTAL,
            key=jr.key(0),
            # The saved callbacks' structure: two with empty states.
            callback=[never(), never()],
            resume_from=s,
        )
    )(state)
    assert_bitwise_equal(resumed.policy, full.policy)
    assert_bitwise_equal(resumed.algorithm_state, full.algorithm_state)


def test_sac_with_its_replay_buffer_resumes_bitwise(tmp_path: Path) -> None:
    env = Pendulum()
    policy = MLPSACPolicy(env=env, key=jr.key(0), hidden_sizes=(8, 8))
    algo = SAC(buffer_size=64, learning_starts=8, batch_size=8)

    def run(stop: int, directory: Path, resume: Any = None) -> Any:
        return algo.train(
            env,
            policy,
            24,
            key=jr.key(1),
            callback=[
                StopAt(jnp.asarray(stop)),
                CheckpointCallback(directory, every=10),
            ],
            resume_from=resume,
        )

    full = run(10**6, tmp_path / "full")
    run(13, tmp_path / "part")
    assert steps(tmp_path / "part") == (10, 13)
    resumed = run(10**6, tmp_path / "part", resume=tmp_path / "part")
    assert_bitwise_equal(resumed.train_state, full.train_state)


def test_a_non_finite_stop_saves_the_last_good_state(tmp_path: Path) -> None:
    env = Poisoned(ENV, 30)  # env step 30: iteration 4
    checkpoints = CheckpointCallback(tmp_path, every=3 * SPI)
    with pytest.raises(NonFiniteError) as caught:
        ALGO.train(env, POLICY, TOTAL, key=jr.key(1), callback=checkpoints)
    assert caught.value.iteration == 4
    # Saved at 3; the state at the stop is that same one (from before 4).
    assert steps(tmp_path) == (3,)
    saved, stopped = load(tmp_path), caught.value.result.train_state
    assert int(saved.iteration) == int(stopped.iteration) == 3
    for part in ("policy", "algorithm_state", "env_state", "observation", "key"):
        assert_bitwise_equal(getattr(saved, part), getattr(stopped, part))


def test_works_under_the_users_jit(tmp_path: Path) -> None:
    checkpoints = CheckpointCallback(tmp_path, every=5 * SPI)
    result = eqx.filter_jit(
        lambda key: ALGO.train(ENV, POLICY, TOTAL, key=key, callback=checkpoints)
    )(jr.key(1))
    checkpoints.wait()  # traced: train cannot wait for the writes itself
    assert steps(tmp_path) == (5, 10)
    assert_bitwise_equal(load(tmp_path).policy, result.policy)


def test_a_path_under_a_transform_is_refused(tmp_path: Path) -> None:
    train(tmp_path, every=5 * SPI)
    with pytest.raises(TypeError, match="is a path, but train is traced"):
        eqx.filter_vmap(
            lambda key: ALGO.train(ENV, POLICY, TOTAL, key=key, resume_from=tmp_path)
        )(jr.split(jr.key(1), 2))


def test_bad_arguments(tmp_path: Path) -> None:
    for every in (0, -5, 1.5, True):
        with pytest.raises((ValueError, TypeError), match="every"):
            CheckpointCallback(tmp_path, every=every)  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises((ValueError, TypeError), match="save_on_stop"):
        CheckpointCallback(tmp_path, every=8, save_on_stop=1)  # type: ignore[arg-type]  # wrong on purpose
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match="cannot be written"):
        CheckpointCallback(blocker / "checkpoints", every=8)
    with pytest.raises(FileNotFoundError):
        ALGO.train(ENV, POLICY, TOTAL, key=jr.key(1), resume_from=tmp_path / "none")
