"""Training states to checkpoint, each trained once per session (tiny runs:
what matters is their structure, not what they learned)."""

from pathlib import Path
from typing import Any

import equinox as eqx
import jax.random as jr
import pytest
from jaxtyping import Array

from lerax.algorithm import PPO, SAC, TrainState
from lerax.callback import CallbackList, EmptyCallback, JSONLBackend, LoggingCallback
from lerax.env import CartPole
from lerax.env.classic_control import Pendulum
from lerax.policy import MLPActorCriticPolicy, MLPSACPolicy

PPO_ALGO = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)
PPO_TOTAL = 3 * PPO_ALGO.steps_per_iteration
SEEDS = 2


def ppo_policy() -> MLPActorCriticPolicy[Any]:
    return MLPActorCriticPolicy(env=CartPole(), key=jr.key(0), hidden_sizes=(8,))


@pytest.fixture(scope="session")
def ppo_state() -> TrainState[Any, Any, Any, Any]:
    """A single PPO run on CartPole."""
    result = PPO_ALGO.train(CartPole(), ppo_policy(), PPO_TOTAL, key=jr.key(1))
    return result.train_state


@pytest.fixture(scope="session")
def sac_batch(
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainState[Any, Any, Any, Any]:
    """Two SAC runs on Pendulum (a replay buffer in the algorithm's state),
    vmapped over keys (batch shape (2,)), with a CallbackList of a
    LoggingCallback and an EmptyCallback."""
    env = Pendulum()
    policy = MLPSACPolicy(env=env, key=jr.key(0), hidden_sizes=(8,))
    algo = SAC(num_envs=1, num_steps=4, buffer_size=64, learning_starts=8, batch_size=8)
    log = Path(tmp_path_factory.mktemp("sac_log")) / "log.jsonl"
    with LoggingCallback([JSONLBackend(log)], log_every=1) as logger:
        callback = CallbackList(logger, EmptyCallback())

        def run(key: Array) -> TrainState[Any, Any, Any, Any]:
            total = 4 * algo.steps_per_iteration
            return algo.train(
                env, policy, total, key=key, callback=callback
            ).train_state

        state: TrainState[Any, Any, Any, Any] = eqx.filter_vmap(run)(
            jr.split(jr.key(3), SEEDS)
        )
    return state
