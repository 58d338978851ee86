"""The main job (`make demo`): PPO on CartPole with console and TensorBoard logging.

This is the example of the callbacks page, as written. TensorBoard logs go to
``runs/`` under the working directory (``tensorboard --logdir runs``).
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
