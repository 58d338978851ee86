"""A multilayer-perceptron deterministic actor with twin critics (for TD3)."""

from collections.abc import Sequence
from typing import TypeVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Shaped

from .._custom_types import Key
from ..space import AbstractSpace, Box
from ._base import AbstractTD3Policy
from ._layers import (
    _MLP,
    HIDDEN_GAIN,
    POLICY_GAIN,
    Activation,
    _HasSpaces,
    _MLPTwinQCritic,
    _orthogonal_layers,
    _Torso,
    check_activation,
    check_bounded_box,
    check_hidden_sizes,
    check_observation_space,
    flatten_observation,
    scale_to_box,
    torso_shapes,
    twin_critic,
    twin_critic_plan,
    unscale_from_box,
)

ObsT = TypeVar("ObsT")


@final
class _TanhActor(eqx.Module):
    """``actor(flat_observation) -> tanh(mlp(flat_observation))``: an action in
    normalized coordinates, ``[-1, 1]^a``."""

    mlp: _MLP

    def __call__(self, flat_observation: Float[Array, " o"]) -> Float[Array, " a"]:
        return jnp.tanh(self.mlp(flat_observation))


@final
class MLPDeterministicPolicy(AbstractTD3Policy[ObsT, Float[Array, "..."]]):
    """A deterministic actor and twin Q critics made of MLPs (TD3).

    The observation is flattened with ``observation_space.flatten``. The
    ``actor`` maps it to ``tanh`` of an MLP's output, in ``[-1, 1]^a``, and
    the policy maps that affinely onto the box, ``low + (a + 1) / 2 * (high -
    low)``, reshaped to its shape: actions always lie in ``[low, high]``. The
    action is the same whatever ``key``; exploration noise and target policy
    smoothing are the algorithm's, added in normalized coordinates
    ([`unscale_action`][lerax.policy.MLPDeterministicPolicy.unscale_action],
    clip to ``[-1, 1]``,
    [`scale_action`][lerax.policy.MLPDeterministicPolicy.scale_action]).

    The ``critic`` holds two independent MLP Q-functions of
    ``concat(flat_observation, unscale_action(action))``, and is callable on its
    own: ``critic(flat_observation, normalized_action) -> (q1, q2)`` (see
    [`AbstractTwinQCritic`][lerax.policy.AbstractTwinQCritic]). The ``actor``
    is callable too: ``actor(flat_observation) -> normalized_action``, so a
    target actor and a target critic kept in an algorithm's state are
    evaluated without the policy.

    Weights are initialised orthogonally, as
    [`MLPActorCriticPolicy`][lerax.policy.MLPActorCriticPolicy]'s: gain
    ``sqrt(2)`` for hidden layers, ``0.01`` for the actor's head (initial
    actions near the middle of the box) and ``1`` for the Q heads; biases are
    zero.

    Args:
        env: anything with ``observation_space`` and ``action_space``, such as an
            environment. The action space must be a floating ``Box`` with finite
            bounds and ``low < high`` everywhere.
        key: the initialisation key.
        hidden_sizes: the width of each hidden layer of the actor and of each
            critic (``()`` for linear ones).
        activation: the hidden activation; a static (non-trainable) function.
    """

    observation_space: AbstractSpace[ObsT]
    action_space: Box
    actor: _TanhActor
    critic: _MLPTwinQCritic

    def __init__(
        self,
        env: _HasSpaces[ObsT, Shaped[Array, "..."]],
        *,
        key: Key,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: Activation = jax.nn.relu,
    ):
        owner = "MLPDeterministicPolicy"
        observation_space = env.observation_space
        check_observation_space(owner, observation_space)
        action_space = check_bounded_box(owner, env.action_space)
        sizes = check_hidden_sizes(owner, hidden_sizes)
        check_activation(owner, activation)

        obs_size = observation_space.flat_size
        action_size = action_space.flat_size
        feature_size = sizes[-1] if sizes else obs_size
        hidden = torso_shapes(obs_size, sizes)
        critic_shapes, critic_gains = twin_critic_plan(obs_size + action_size, sizes)
        layers = _orthogonal_layers(
            key,
            (*hidden, (action_size, feature_size), *critic_shapes),
            (*((HIDDEN_GAIN,) * len(hidden)), POLICY_GAIN, *critic_gains),
        )
        depth = len(hidden)
        self.observation_space = observation_space
        self.action_space = action_space
        self.actor = _TanhActor(_MLP(_Torso(layers[:depth], activation), layers[depth]))
        self.critic = twin_critic(layers[depth + 1 :], activation)

    def _flat(self, observation: ObsT) -> Float[Array, " o"]:
        return flatten_observation(
            "MLPDeterministicPolicy", self.observation_space, observation
        )

    def __call__(
        self, observation: ObsT, *, key: Key | None = None
    ) -> Float[Array, "..."]:
        """``scale_action(actor(flatten(observation)))``; ``key`` is ignored."""
        return self.scale_action(self.actor(self._flat(observation)))

    def q_values(
        self, observation: ObsT, action: Float[Array, "..."]
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """``critic(flatten(observation), unscale_action(action))``."""
        return self.critic(self._flat(observation), self.unscale_action(action))

    def scale_action(
        self, normalized_action: Float[Array, " a"]
    ) -> Float[Array, "..."]:
        """``low + (normalized_action + 1) / 2 * (high - low)``, reshaped to the
        box's shape and kept inside ``[low, high]`` despite rounding."""
        return scale_to_box(
            "MLPDeterministicPolicy", self.action_space, normalized_action
        )

    def unscale_action(self, action: Float[Array, "..."]) -> Float[Array, " a"]:
        """``2 * (action - low) / (high - low) - 1``, flattened."""
        return unscale_from_box("MLPDeterministicPolicy", self.action_space, action)
