"""A callback declared for one environment or policy type (third and fourth
type arguments) refuses training on another before tracing, naming both."""

from typing import Any, final

import jax.numpy as jnp
import jax.random as jr
import pytest
from jaxtyping import Array, Float, PRNGKeyArray

from lerax.algorithm import DQN, PPO
from lerax.callback import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
    IterationContext,
)
from lerax.env import CartPole, Pendulum
from lerax.policy import MLPActorCriticPolicy, MLPQPolicy

PPO_SMALL = PPO(num_envs=2, num_steps=8, num_epochs=1, num_minibatches=1)


@final
class Gravity(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState, CartPole]):
    """Reads a CartPole field (``Pendulum`` has ``gravity`` too, but not
    ``masspole``)."""

    def metrics(
        self,
        ctx: IterationContext[EmptyCallbackState, EmptyCallbackStepState, CartPole],
        *,
        key: PRNGKeyArray,
    ) -> dict[str, Float[Array, ""]]:
        return {"env/masspole": jnp.asarray(ctx.env.masspole, jnp.float32)}


@final
class ForActorCritic(
    AbstractCallback[
        EmptyCallbackState,
        EmptyCallbackStepState,
        Any,
        MLPActorCriticPolicy[Any],
    ]
):
    pass


def test_the_declared_environment_trains() -> None:
    env = CartPole()
    result = PPO_SMALL.train(
        env,
        MLPActorCriticPolicy(env, key=jr.key(0)),
        16,
        key=jr.key(1),
        callback=Gravity(),
    )
    assert float(result.metrics["env/masspole"]) == pytest.approx(0.1)


def test_another_environment_is_refused_before_tracing() -> None:
    env = Pendulum()
    # Typed Any: mypy and pyright reject this call already (the callback's
    # environment type is not Pendulum); the test is of the run-time check.
    gravity: Any = Gravity()
    with pytest.raises(
        TypeError,
        match=r"^Gravity is declared for environments of type CartPole \(its third "
        r"type argument\), but training uses an environment of type Pendulum",
    ):
        PPO_SMALL.train(
            env,
            MLPActorCriticPolicy(env, key=jr.key(0)),
            16,
            key=jr.key(1),
            callback=gravity,
        )


def test_a_list_member_is_named() -> None:
    env = Pendulum()
    with pytest.raises(
        TypeError, match=r"^CallbackList member 1: Gravity is declared for environments"
    ):
        PPO_SMALL.train(
            env,
            MLPActorCriticPolicy(env, key=jr.key(0)),
            16,
            key=jr.key(1),
            callback=(ForActorCritic(), Gravity()),
        )


def test_another_policy_is_refused() -> None:
    env = CartPole()
    for_actor_critic: Any = ForActorCritic()  # the checkers reject it, as above
    with pytest.raises(
        TypeError,
        match=r"ForActorCritic is declared for policies of type MLPActorCriticPolicy "
        r"\(its fourth type argument\), but training uses a policy of type "
        r"MLPQPolicy",
    ):
        DQN(num_envs=2, buffer_size=64, learning_starts=0, batch_size=8).train(
            env,
            MLPQPolicy(env, key=jr.key(0)),
            16,
            key=jr.key(1),
            callback=for_actor_critic,
        )
