"""What one iteration's rollout collected: the loop gives it to the update."""

from collections.abc import Mapping
from typing import final

import equinox as eqx
from jaxtyping import Array, Bool, Float, Int, Shaped

from .._custom_types import ArrayTree


@final
class Rollout(eqx.Module):
    """What one iteration's rollout collected, leading axes ``[num_steps, num_envs]``.

    Attributes:
        observations: the observations actions were chosen on.
        actions: the actions as the policy produced them (before clipping).
        rewards: raw environment rewards.
        terminated: the episode reached a terminal state at this step.
        truncated: the episode hit its time limit at this step.
        next_observations: the observation after each step, before any
            automatic reset (bootstrap from these on truncation).
        extras: what the algorithm's
            [`AbstractAlgorithm.act`][lerax.algorithm.AbstractAlgorithm.act] returned
            per step (e.g. ``log_prob`` and ``value`` for PPO).
        last_observations: the observations the next rollout starts from,
            leading axis ``[num_envs]``.
        timesteps: this run's environment steps before the rollout, over all
            environments (the ``timestep`` the first step was acted at).
    """

    observations: ArrayTree
    actions: ArrayTree
    rewards: Float[Array, "steps envs"]
    terminated: Bool[Array, "steps envs"]
    truncated: Bool[Array, "steps envs"]
    next_observations: ArrayTree
    extras: Mapping[str, Shaped[Array, "steps envs *rest"]]
    last_observations: ArrayTree
    timesteps: Int[Array, ""]
