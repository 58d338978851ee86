"""An algorithm written against AbstractAlgorithm trains through the one loop."""

from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from jaxtyping import Array, Float, Int, Shaped

from lerax.algorithm import PPO, AbstractAlgorithm, Rollout
from lerax.env import CartPole
from lerax.policy import AbstractActorCriticPolicy, MLPActorCriticPolicy

Policy = AbstractActorCriticPolicy[Any, Any]


@final
class RegressionState(eqx.Module):
    opt_state: Any
    acted_at: Int[Array, ""]


@final
class TwoOptimizers(eqx.Module):
    actor_opt_state: Any
    critic_opt_state: Any


@final
class ValueRegression(AbstractAlgorithm[Policy, RegressionState]):
    """Regresses the critic on the immediate reward (CartPole: always 1)."""

    num_envs: int = eqx.field(static=True, default=2)
    num_steps: int = eqx.field(static=True, default=8)

    def init_state(
        self, env: Any, policy: Policy, num_iterations: int, *, key: Any
    ) -> RegressionState:
        params = eqx.filter(policy, eqx.is_inexact_array)
        return RegressionState(optax.adam(0.05).init(params), jnp.array(-1))

    def act(
        self,
        policy: Policy,
        state: RegressionState,
        observation: Any,
        *,
        timestep: Int[Array, ""],
        key: Any,
    ) -> tuple[Any, dict[str, Shaped[Array, "..."]]]:
        action, _, value = policy.action_and_value(observation, key=key)
        return action, {"value": value, "timestep": timestep}

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        return {"value_loss": jnp.zeros((), jnp.float32)}

    def update(
        self,
        policy: Policy,
        state: RegressionState,
        rollout: Rollout,
        *,
        key: Any,
        need_log: bool,
    ) -> tuple[Policy, RegressionState, dict[str, Float[Array, ""]]]:
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
            updates, opt_state = optax.adam(0.05).update(grads, state.opt_state, params)
        policy = eqx.combine(optax.apply_updates(params, updates), static)
        # The last step's timestep, as act saw it.
        acted_at = rollout.extras["timestep"][-1, -1]
        return policy, RegressionState(opt_state, acted_at), {"value_loss": value}


def value_error(policy: Policy, obs: Float[Array, "n 4"]) -> float:
    return float(jnp.mean(jnp.abs(jax.vmap(policy.value)(obs) - 1.0)))


def test_custom_algorithm_trains_through_the_loop_with_its_own_state() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = ValueRegression()
    result = algo.train(env, policy, 40 * algo.steps_per_iteration, key=jr.key(1))
    assert int(result.iterations) == 40 and int(result.timesteps) == 640
    # act saw the run's global step: the last step of the last rollout was
    # taken after 39 iterations of 16 steps and 7 steps of 2 environments.
    assert int(result.algorithm_state.acted_at) == 39 * 16 + 7 * 2
    mu = result.algorithm_state.opt_state[0].mu  # optax.adam's ScaleByAdamState
    params = eqx.filter(policy, eqx.is_inexact_array)
    assert [x.shape for x in jax.tree.leaves(mu)] == [
        x.shape for x in jax.tree.leaves(params)
    ]
    # The critic moved towards the reward of 1 on fresh observations.
    obs = jax.vmap(lambda k: env.reset(key=k)[1])(jr.split(jr.key(2), 32))
    assert value_error(result.policy, obs) < 0.5 * value_error(policy, obs)


def test_ppo_state_holds_an_optimizer_state_over_one_flat_vector() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
    state = algo.init_state(env, policy, 1, key=jr.key(0))
    size = sum(
        x.size for x in jax.tree.leaves(eqx.filter(policy, eqx.is_inexact_array))
    )
    vectors = [x for x in jax.tree.leaves(state) if getattr(x, "ndim", 0) == 1]
    # Adam's two moments, each one vector over every parameter.
    assert [v.shape for v in vectors] == [(size,), (size,)]
    result = algo.train(env, policy, 32, key=jr.key(3))
    after = [
        x for x in jax.tree.leaves(result.algorithm_state) if getattr(x, "ndim", 0) == 1
    ]
    assert [v.shape for v in after] == [(size,), (size,)]
    assert all(np.any(np.asarray(v) != 0) for v in after)


def test_opt_state_is_a_deprecated_alias_of_the_algorithm_state() -> None:
    env = CartPole()
    policy = MLPActorCriticPolicy(env=env, key=jr.key(0))
    algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
    result = algo.train(env, policy, 32, key=jr.key(3))
    with pytest.warns(DeprecationWarning, match=r"TrainResult\.algorithm_state"):
        alias = result.opt_state
    assert alias is result.algorithm_state.opt_state
    # An algorithm whose state has several optimizer states has no alias.
    several = eqx.tree_at(
        lambda r: r.train_state.algorithm_state, result, TwoOptimizers((), ())
    )
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(AttributeError, match="TwoOptimizers has no single"),
    ):
        _ = several.opt_state
