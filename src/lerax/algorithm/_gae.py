"""Generalised advantage estimation."""

from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from ..policy import AbstractActorCriticPolicy
from ._rollout import Rollout


def generalized_advantage_estimate(
    rewards: Float[Array, " steps *envs"],
    values: Float[Array, " steps *envs"],
    next_values: Float[Array, " steps *envs"],
    terminated: Bool[Array, " steps *envs"],
    truncated: Bool[Array, " steps *envs"],
    *,
    gamma: float | Float[Array, ""],
    gae_lambda: float | Float[Array, ""],
) -> tuple[Float[Array, " steps *envs"], Float[Array, " steps *envs"]]:
    """GAE(gamma, lambda) over a rollout with automatic resets.

    ``next_values[t]`` is the value of the observation that step ``t`` led to,
    before any reset, so a truncated episode bootstraps from its final
    observation while a terminated one does not bootstrap at all. The
    advantage recursion stops at every episode end (terminated or truncated).

    Returns:
        ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    not_terminal = 1.0 - terminated.astype(rewards.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(rewards.dtype)
    deltas = rewards + gamma * not_terminal * next_values - values

    def backward(
        carry: Float[Array, "*envs"],
        xs: tuple[Float[Array, "*envs"], Float[Array, "*envs"]],
    ) -> tuple[Float[Array, "*envs"], Float[Array, "*envs"]]:
        delta, nd = xs
        advantage = delta + gamma * gae_lambda * nd * carry
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(rewards[0]), (deltas, not_done), reverse=True
    )
    return advantages, advantages + values


def next_state_values(
    policy: AbstractActorCriticPolicy[Any, Any],
    rollout: Rollout,
    values: Float[Array, "steps envs"],
) -> Float[Array, "steps envs"]:
    """The value of the observation each step of ``rollout`` led to, for
    [`generalized_advantage_estimate`][lerax.algorithm.generalized_advantage_estimate]'s
    ``next_values``.

    ``values[t]`` must be ``policy.value(rollout.observations[t])`` (what PPO
    stores during the rollout). Within an episode the next observation is the
    next step's, so its value is ``values[t + 1]``; after the last step it is
    the value of ``rollout.last_observations``. Only a truncated step needs a
    new evaluation, of its final observation (before the reset). Those are
    gathered and evaluated for up to ``num_envs`` truncated steps per rollout
    (one per environment, the usual case when episodes outlast a rollout);
    with more, every final observation is evaluated. After a termination the
    returned value is that of the reset observation, which GAE ignores.

    Equals ``jax.vmap(jax.vmap(policy.value))(rollout.next_observations)``
    wherever the step did not terminate, at a fraction of its cost.
    """
    num_steps, num_envs = values.shape
    last = jax.vmap(policy.value)(rollout.last_observations)
    following = jnp.concatenate([values[1:], last[None]], axis=0)
    truncated = rollout.truncated.reshape(-1)
    final_observations = jax.tree.map(
        lambda x: x.reshape((num_steps * num_envs, *x.shape[2:])),
        rollout.next_observations,
    )

    def few() -> Float[Array, " batch"]:
        (index,) = jnp.nonzero(truncated, size=num_envs, fill_value=0)
        picked = jax.tree.map(lambda x: x[index], final_observations)
        # Unused slots repeat index 0 and write its own value back to it.
        return (
            jnp.zeros(truncated.shape, values.dtype)
            .at[index]
            .set(jax.vmap(policy.value)(picked))
        )

    def every() -> Float[Array, " batch"]:
        return jax.vmap(policy.value)(final_observations)

    final = jax.lax.cond(jnp.sum(truncated) > num_envs, every, few)
    return jnp.where(rollout.truncated, final.reshape(values.shape), following)
