"""An algorithm written against AbstractAlgorithm trains through the one loop."""

from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Float, Shaped

from lerax.algorithm import PPO, AbstractAlgorithm, Rollout
from lerax.env import CartPole
from lerax.policy import AbstractActorCriticPolicy, MLPActorCriticPolicy

Policy = AbstractActorCriticPolicy[Any, Any]


@final
class ValueRegression(AbstractAlgorithm[Policy]):
    """Regresses the critic on the immediate reward (CartPole: always 1)."""

    num_envs: int = eqx.field(static=True, default=2)
    num_steps: int = eqx.field(static=True, default=8)

    def optimizer(self, num_iterations: int) -> optax.GradientTransformation:
        return optax.adam(0.05)

    def act(
        self, policy: Policy, observation: Any, *, key: Any
    ) -> tuple[Any, dict[str, Shaped[Array, "..."]]]:
        action, _, value = policy.action_and_value(observation, key=key)
        return action, {"value": value}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        return {"value_loss": jnp.zeros((), jnp.float32)}

    def update(
        self,
        policy: Policy,
        optimizer: optax.GradientTransformation,
        opt_state: Any,
        rollout: Rollout,
        *,
        key: Any,
    ) -> tuple[Policy, Any, dict[str, Float[Array, ""]]]:
        params, static = eqx.partition(policy, eqx.is_inexact_array)

        def loss(p: Any) -> Float[Array, ""]:
            values = jax.vmap(jax.vmap(eqx.combine(p, static).value))(
                rollout.observations
            )
            return jnp.mean((values - rollout.rewards) ** 2)

        value, grads = jax.value_and_grad(loss)(params)
        # optax mixes its int step count with floats (the suite runs JAX with
        # strict dtype promotion, as PPO allows for its update too).
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(grads, opt_state, params)
        policy = eqx.combine(optax.apply_updates(params, updates), static)
        return policy, opt_state, {"value_loss": value}


def value_error(policy: Policy, obs: Float[Array, "n 4"]) -> float:
    return float(jnp.mean(jnp.abs(jax.vmap(policy.value)(obs) - 1.0)))


def test_custom_algorithm_trains_with_the_default_optimizer_state() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = ValueRegression()
    result = algo.train(env, policy, 40 * algo.steps_per_iteration, key=jr.key(1))
    assert int(result.iterations) == 40 and int(result.timesteps) == 640
    # Default init_optimizer_state: Adam's moments mirror the policy's arrays.
    mu = result.opt_state[0].mu  # optax.adam's ScaleByAdamState
    params = eqx.filter(policy, eqx.is_inexact_array)
    assert [x.shape for x in jax.tree.leaves(mu)] == [
        x.shape for x in jax.tree.leaves(params)
    ]
    # The critic moved towards the reward of 1 on fresh observations.
    obs = jax.vmap(lambda k: env.reset(key=k)[1])(jr.split(jr.key(2), 32))
    assert value_error(result.policy, obs) < 0.5 * value_error(policy, obs)


def test_ppo_optimizer_state_is_over_one_flat_vector() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
    state = algo.init_optimizer_state(algo.optimizer(1), policy)
    size = sum(
        x.size for x in jax.tree.leaves(eqx.filter(policy, eqx.is_inexact_array))
    )
    vectors = [x for x in jax.tree.leaves(state) if getattr(x, "ndim", 0) == 1]
    # Adam's two moments, each one vector over every parameter.
    assert [v.shape for v in vectors] == [(size,), (size,)]
    result = algo.train(env, policy, 32, key=jr.key(3))
    after = [x for x in jax.tree.leaves(result.opt_state) if getattr(x, "ndim", 0) == 1]
    assert [v.shape for v in after] == [(size,), (size,)]
    assert all(np.any(np.asarray(v) != 0) for v in after)
