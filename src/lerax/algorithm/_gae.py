"""Generalised advantage estimation."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


def generalized_advantage_estimate(
    rewards: Float[Array, " steps *envs"],
    values: Float[Array, " steps *envs"],
    next_values: Float[Array, " steps *envs"],
    terminated: Bool[Array, " steps *envs"],
    truncated: Bool[Array, " steps *envs"],
    *,
    gamma: float,
    gae_lambda: float,
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
