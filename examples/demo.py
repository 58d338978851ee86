"""The main job (`make demo`): PPO on CartPole with console and TensorBoard logging,
then learning curves of four seeds.

This is the example of the callbacks page, as written, followed by the
learning curves of docs/learning-curves.md. TensorBoard logs go to ``runs/``
under the working directory (``tensorboard --logdir runs``), and the picture
to ``runs/learning_curves.png``.
"""

from jax import random as jr

from lerax.algorithm import PPO
from lerax.callback import ConsoleBackend, LoggingCallback, TensorBoardBackend
from lerax.env.classic_control import CartPole
from lerax.policy import MLPActorCriticPolicy

policy_key, learn_key = jr.split(jr.key(0), 2)

env = CartPole()
policy = MLPActorCriticPolicy(env=env, key=policy_key)
algo = PPO()

logger = LoggingCallback(
    [TensorBoardBackend(), ConsoleBackend()],
    env=env,
    policy=policy,
)

policy = algo.learn(
    env,
    policy,
    total_timesteps=2**16,
    key=learn_key,
    callback=logger,
)
logger.close()


# The additions to the page's example: learning curves as data, then as a
# picture (docs/learning-curves.md).
def learning_curves_of_four_seeds() -> str:
    """The same training for four seeds at once (one vmapped program, half the
    steps each), recorded on device by a HistoryCallback and drawn by
    lerax.plot (the `plot` extra); returns where the picture was saved."""
    import os
    from typing import Any

    import equinox as eqx
    from jaxtyping import Array

    from lerax.algorithm import TrainResult
    from lerax.callback import HistoryCallback
    from lerax.plot import learning_curves

    history = HistoryCallback(
        ["rollout/ep_return_mean", "train/loss", "train/entropy"], every=2
    )
    untrained = MLPActorCriticPolicy(env=env, key=policy_key)

    @eqx.filter_vmap
    def train_seeds(key: Array) -> TrainResult[Any, Any, Any]:
        return algo.train(env, untrained, 2**15, key=key, callback=history)

    result = train_seeds(jr.split(jr.key(1), 4))
    os.makedirs("runs", exist_ok=True)
    path = os.path.abspath(os.path.join("runs", "learning_curves.png"))
    title = "PPO on CartPole, 4 seeds (mean ± std)"
    learning_curves(result.callback_state, path=path, title=title)
    return path


print(f"learning curves: {learning_curves_of_four_seeds()}")
