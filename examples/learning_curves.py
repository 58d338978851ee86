"""The picture of docs/learning-curves.md: PPO on CartPole, 8 seeds in one
vmapped program, recorded by a HistoryCallback and drawn by
lerax.plot.learning_curves.

Run from the repository root: ``.venv/bin/python examples/learning_curves.py``
(writes ``docs/img/learning-curves.png``; another path as first argument).
"""

import sys
from typing import Any

import equinox as eqx
import jax.random as jr
from jaxtyping import Array

from lerax.algorithm import PPO, TrainResult
from lerax.callback import HistoryCallback
from lerax.env.classic_control import CartPole
from lerax.plot import learning_curves
from lerax.policy import MLPActorCriticPolicy

path = sys.argv[1] if len(sys.argv) > 1 else "docs/img/learning-curves.png"
env = CartPole()
policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
algo = PPO()
history = HistoryCallback(
    ["rollout/ep_return_mean", "train/loss", "train/entropy"], every=4
)


@eqx.filter_vmap
def train_seeds(key: Array) -> TrainResult[Any, Any, Any]:
    return algo.train(env, policy, 2**16, key=key, callback=history)


result = train_seeds(jr.split(jr.key(1), 8))
learning_curves(
    result.callback_state,
    path=path,
    title="PPO on CartPole, 8 seeds (mean ± std)",
)
print(path)
