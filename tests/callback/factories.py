"""Small factories building real contexts for driving callback hooks directly."""

from collections.abc import Mapping
from typing import Any, TypeVar

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Shaped

from lerax.algorithm import PPO
from lerax.callback import IterationContext, ResetContext, StepContext
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)
NO_LOCALS: Mapping[str, Shaped[Array, "..."]] = {}
LOG = {"loss": jnp.zeros((), jnp.float32)}
S = TypeVar("S")


def reset_ctx() -> ResetContext[CartPole, MLPActorCriticPolicy[Any]]:
    return ResetContext(
        env=ENV,
        policy=POLICY,
        algorithm_state=(),
        algorithm=ALGO,
        total_timesteps=64,
        num_envs=2,
        run_index=jnp.array(0, jnp.int32),
    )


def step_ctx(
    state: S,
    reward: float | Array = 1.0,
    done: bool | Array = False,
    t: int | Array = 0,
) -> StepContext[S, CartPole, MLPActorCriticPolicy[Any]]:
    obs = jnp.zeros(4, jnp.float32)
    return StepContext(
        state=state,
        env=ENV,
        policy=POLICY,
        algorithm_state=(),
        training_log=LOG,
        observation=obs,
        action=jnp.array(0, jnp.int32),
        next_observation=obs,
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(done),
        truncated=jnp.array(False),
        iteration_count=jnp.array(0, jnp.int32),
        num_timesteps=jnp.asarray(t, jnp.int32),
        locals=NO_LOCALS,
        algorithm=ALGO,
        run_index=jnp.array(0, jnp.int32),
        active=jnp.array(True),
    )


def iteration_ctx(
    state: S, step_state: Any, iteration: int = 1
) -> IterationContext[S, Any, CartPole, MLPActorCriticPolicy[Any]]:
    return IterationContext(
        state=state,
        step_state=step_state,
        env=ENV,
        policy=POLICY,
        algorithm_state=(),
        training_log=LOG,
        iteration_count=jnp.asarray(iteration, jnp.int32),
        num_timesteps=jnp.asarray(iteration * 16, jnp.int32),
        total_timesteps=64,
        algorithm=ALGO,
        run_index=jnp.array(0, jnp.int32),
        active=jnp.array(True),
    )
