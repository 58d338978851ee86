"""One compiled program shared by the stopper and evaluation tests: 4 seeds
vmapped, PPO on CartPole, an evaluation every iteration, the learning curves
recorded, and every stopper, each switched off or on by its array fields."""

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
import pytest
from jaxtyping import Array, Float, Int, PRNGKeyArray

from lerax.algorithm import TrainResult
from lerax.callback import HistoryCallback
from lerax.callback.control import (
    EvalCallback,
    StopOnMaxEpisodes,
    StopOnNoImprovement,
    StopOnRewardThreshold,
)

from .helpers import ALGO, ENV, POLICY, STEPS

ITERATIONS = 12
SEEDS = 4
KEYS = jr.split(jr.key(7), SEEDS)
EVAL_EPISODES = 2
CURVES = (
    "eval/mean_return",
    "eval/last_iteration",
    "rollout/ep_return_mean",
    "rollout/ep_return_ema",
    "rollout/episodes",
)
#: Values that never stop a run of ITERATIONS iterations.
OFF = {"eval": 1e9, "mean": 1e9, "ema": 1e9, "patience": 10**6, "episodes": 10**6}


def _train(
    key: PRNGKeyArray,
    eval_threshold: Float[Array, ""],
    mean_threshold: Float[Array, ""],
    ema_threshold: Float[Array, ""],
    patience: Int[Array, ""],
    episodes: Int[Array, ""],
) -> TrainResult[Any, Any, Any, Any]:
    # The stoppers are built from traced values: one per seed.
    callback = (
        EvalCallback(ENV, every=STEPS, num_episodes=EVAL_EPISODES),
        HistoryCallback(CURVES),
        StopOnRewardThreshold(eval_threshold),
        StopOnRewardThreshold(mean_threshold, key="rollout/ep_return_mean"),
        StopOnRewardThreshold(ema_threshold, key="rollout/ep_return_ema"),
        StopOnNoImprovement(patience),
        StopOnMaxEpisodes(episodes),
    )
    return ALGO.train(ENV, POLICY, ITERATIONS * STEPS, key=key, callback=callback)


_RUN = eqx.filter_jit(eqx.filter_vmap(_train))


def run_seeds(**on: Any) -> TrainResult[Any, Any, Any, Any]:
    """The 4 seeds with the stoppers named in ``on`` (``eval=``, ``mean=``,
    ``ema=``, ``patience=``, ``episodes=``: one value per seed) switched on
    and the others off. Every call runs the same compiled program."""
    values = {**{k: [v] * SEEDS for k, v in OFF.items()}, **on}
    result: TrainResult[Any, Any, Any, Any] = _RUN(
        KEYS,
        jnp.asarray(values["eval"], jnp.float32),
        jnp.asarray(values["mean"], jnp.float32),
        jnp.asarray(values["ema"], jnp.float32),
        jnp.asarray(values["patience"], jnp.int32),
        jnp.asarray(values["episodes"], jnp.int32),
    )
    return result


@pytest.fixture(scope="session")
def reference() -> TrainResult[Any, Any, Any, Any]:
    """Every stopper off: the seeds' full learning curves."""
    return run_seeds()


def curve(result: TrainResult[Any, Any, Any, Any], name: str) -> npt.NDArray[Any]:
    """``name``'s values, one row per seed, one column per iteration."""
    return np.asarray(result.callback_state[1].curve(name))
