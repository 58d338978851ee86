"""The control callbacks and checkpoints with every algorithm: evaluation
published and recorded, an episode stopper, checkpoints on their cadence,
and the state a checkpoint holds is the run's, bitwise."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.random as jr
import numpy as np
import pytest

from lerax.algorithm import A2C, DQN, PPO, SAC, TD3, AbstractAlgorithm, StopReason
from lerax.callback import EvalCallback, HistoryCallback, StopOnMaxEpisodes
from lerax.checkpoint import CheckpointCallback, load, steps
from lerax.env import AbstractEnv, CartPole, Pendulum
from lerax.policy import (
    AbstractPolicy,
    MLPActorCriticPolicy,
    MLPDeterministicPolicy,
    MLPQPolicy,
    MLPSACPolicy,
)

from .helpers import assert_bitwise_equal

Case = Callable[[], tuple[AbstractAlgorithm[Any, Any], AbstractEnv[Any, Any, Any], Any]]


def _case(
    algo: AbstractAlgorithm[Any, Any],
    env: AbstractEnv[Any, Any, Any],
    policy: Callable[..., AbstractPolicy[Any, Any]],
) -> Case:
    return lambda: (algo, env, policy(env, key=jr.key(0), hidden_sizes=(8,)))


CASES: dict[str, Case] = {
    "ppo": _case(
        PPO(num_envs=2, num_steps=4, num_epochs=1, num_minibatches=1),
        CartPole(),
        MLPActorCriticPolicy,
    ),
    "a2c": _case(A2C(num_envs=2, num_steps=4), CartPole(), MLPActorCriticPolicy),
    "dqn": _case(
        DQN(buffer_size=32, learning_starts=4, batch_size=4), CartPole(), MLPQPolicy
    ),
    "sac": _case(
        SAC(buffer_size=32, learning_starts=4, batch_size=4), Pendulum(), MLPSACPolicy
    ),
    "td3": _case(
        TD3(buffer_size=32, learning_starts=4, batch_size=4),
        Pendulum(),
        MLPDeterministicPolicy,
    ),
}
ITERATIONS = 6


@pytest.mark.parametrize("name", sorted(CASES))
def test_control_callbacks_and_checkpoints_work_with_the_algorithm(
    name: str, tmp_path: Path
) -> None:
    algo, env, policy = CASES[name]()
    spi = algo.steps_per_iteration
    history = HistoryCallback(("eval/mean_return", "eval/last_iteration"))
    result = algo.train(
        env,
        policy,
        ITERATIONS * spi,
        key=jr.key(1),
        callback=(
            EvalCallback(env, every=2 * spi, num_episodes=2, max_episode_steps=8),
            history,
            StopOnMaxEpisodes(10**6),
            CheckpointCallback(tmp_path, every=3 * spi),
        ),
    )
    assert result.status.reasons() is StopReason.COMPLETED
    assert int(result.iterations) == ITERATIONS
    # Evaluated at iterations 2, 4, 6; recorded every iteration.
    last = np.asarray(result.callback_state[1].curve("eval/last_iteration"))
    np.testing.assert_array_equal(last, [np.nan, 2, 2, 4, 4, 6])
    returns = np.asarray(result.callback_state[1].curve("eval/mean_return"))
    assert np.isnan(returns[0]) and np.isfinite(returns[1:]).all()
    assert float(result.metrics["eval/last_iteration"]) == ITERATIONS
    assert steps(tmp_path) == (3, 6)
    assert_bitwise_equal(load(tmp_path), result.train_state)
