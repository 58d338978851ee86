"""MLPActorCriticPolicy built from real classic-control environments."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from lerax.env.classic_control import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy


def test_cartpole_policy_acts_in_the_environment() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env, key=jr.key(0))
    state, obs = env.reset(key=jr.key(1))
    action, log_prob, value = policy.action_and_value(obs, key=jr.key(2))
    assert action.shape == () and action.dtype == jnp.int32
    assert bool(env.action_space.contains(action))
    lp, entropy, v = policy.evaluate_action(obs, action)
    assert float(lp) == float(log_prob) and float(v) == float(value)
    # Two actions, near-uniform at initialisation.
    np.testing.assert_allclose(float(entropy), np.log(2.0), atol=1e-3)
    step = env.step(state, action, key=jr.key(3))
    assert step.observation.shape == (4,)
    assert policy.value(step.observation).shape == ()


def test_pendulum_policy_actions_clip_into_the_box() -> None:
    env = Pendulum()
    policy = MLPActorCriticPolicy(env, key=jr.key(0), log_std_init=2.0)
    state, obs = env.reset(key=jr.key(1))
    action, _, _ = policy.action_and_value(obs, key=jr.key(2))
    assert action.shape == env.action_space.shape == (1,)
    assert action.dtype == jnp.float32
    # Not clipped by the policy (std e^2); the training loop clips.
    low = jnp.asarray(env.action_space.low)
    high = jnp.asarray(env.action_space.high)
    clipped = jnp.clip(action, low, high)
    assert bool(env.action_space.contains(clipped))
    step = env.step(state, clipped, key=jr.key(3))
    assert step.observation.shape == (3,)
