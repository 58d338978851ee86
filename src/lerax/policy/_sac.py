"""A multilayer-perceptron squashed-Gaussian actor with twin critics (for SAC)."""

import math
from collections.abc import Sequence
from typing import TypeVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Shaped

from .._custom_types import Key
from ..space import AbstractSpace, Box
from ._base import AbstractSACPolicy
from ._layers import (
    HIDDEN_GAIN,
    POLICY_GAIN,
    Activation,
    _HasSpaces,
    _Linear,
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

_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@final
class _GaussianActor(eqx.Module):
    """``actor(flat_observation) -> (mean, log_std)`` of the pre-squash Gaussian,
    ``log_std`` clipped to ``[log_std_min, log_std_max]``."""

    torso: _Torso
    mean_head: _Linear
    log_std_head: _Linear
    log_std_min: float = eqx.field(static=True)
    log_std_max: float = eqx.field(static=True)

    def __call__(
        self, flat_observation: Float[Array, " o"]
    ) -> tuple[Float[Array, " a"], Float[Array, " a"]]:
        features = self.torso(flat_observation)
        log_std = jnp.clip(
            self.log_std_head(features), self.log_std_min, self.log_std_max
        )
        return self.mean_head(features), log_std


def _tanh_log_det(u: Float[Array, " a"]) -> Float[Array, ""]:
    """``sum(log(1 - tanh(u)^2))``, stably: ``log(1 - tanh(u)^2) =
    2 (log 2 - u - softplus(-2u))`` holds for every ``u`` and never takes the
    log of a rounded zero."""
    return jnp.sum(2.0 * (_LOG_2 - u - jax.nn.softplus(-2.0 * u)))


@final
class MLPSACPolicy(AbstractSACPolicy[ObsT, Float[Array, "..."]]):
    """A tanh-squashed Gaussian actor and twin Q critics made of MLPs (SAC).

    The observation is flattened with ``observation_space.flatten``. The
    ``actor`` maps it through a torso to a mean and a ``log_std`` (clipped to
    ``[log_std_min, log_std_max]``); an action is drawn as ``u = mean +
    exp(log_std) * jax.random.normal(key, mean.shape)``, squashed to ``a =
    tanh(u)`` in ``[-1, 1]^a`` and mapped affinely onto the box, ``low + (a + 1)
    / 2 * (high - low)``, reshaped to its shape: actions always lie in ``[low,
    high]``, so clipping to the bounds never changes them. ``log_prob`` is the
    Normal log density of ``u`` minus ``sum(log(1 - tanh(u)^2))`` (computed
    stably): the log density of ``a`` in ``[-1, 1]^a``. The affine map onto the
    box would add the constant ``-sum(log((high - low) / 2))``; it is left out,
    as in Stable-Baselines3 and rejax, so the usual target entropy ``-a`` means
    the same for every box. The deterministic action is the scaled
    ``tanh(mean)``.

    The ``critic`` holds two independent MLP Q-functions of
    ``concat(flat_observation, unscale_action(action))``, and is callable on its
    own: ``critic(flat_observation, normalized_action) -> (q1, q2)`` (see
    [`AbstractTwinQCritic`][lerax.policy.AbstractTwinQCritic]), so an algorithm
    evaluates a target critic kept in its own state. The ``actor`` is callable
    too: ``actor(flat_observation) -> (mean, log_std)``.

    Weights are initialised orthogonally, as
    [`MLPActorCriticPolicy`][lerax.policy.MLPActorCriticPolicy]'s: gain
    ``sqrt(2)`` for hidden layers, ``0.01`` for the mean and ``log_std`` heads
    (so the initial policy is ``tanh`` of about a standard normal) and ``1`` for
    the Q heads; biases are zero.

    Args:
        env: anything with ``observation_space`` and ``action_space``, such as an
            environment. The action space must be a floating ``Box`` with finite
            bounds and ``low < high`` everywhere.
        key: the initialisation key.
        hidden_sizes: the width of each hidden layer of the actor and of each
            critic (``()`` for linear ones).
        activation: the hidden activation; a static (non-trainable) function.
        log_std_min: the lower clip of ``log_std``.
        log_std_max: the upper clip of ``log_std``.
    """

    observation_space: AbstractSpace[ObsT]
    action_space: Box
    actor: _GaussianActor
    critic: _MLPTwinQCritic

    def __init__(
        self,
        env: _HasSpaces[ObsT, Shaped[Array, "..."]],
        *,
        key: Key,
        hidden_sizes: Sequence[int] = (256, 256),
        activation: Activation = jax.nn.relu,
        log_std_min: float = -20.0,
        log_std_max: float = 2.0,
    ):
        owner = "MLPSACPolicy"
        observation_space = env.observation_space
        check_observation_space(owner, observation_space)
        action_space = check_bounded_box(owner, env.action_space)
        sizes = check_hidden_sizes(owner, hidden_sizes)
        check_activation(owner, activation)
        for name, bound in (("log_std_min", log_std_min), ("log_std_max", log_std_max)):
            if not math.isfinite(bound):
                raise ValueError(
                    f"{owner}: {name} must be finite, got {name}={bound!r}"
                )
        if not log_std_min < log_std_max:
            raise ValueError(
                f"{owner}: log_std_min must be below log_std_max, got "
                f"log_std_min={log_std_min!r} and log_std_max={log_std_max!r}"
            )

        obs_size = observation_space.flat_size
        action_size = action_space.flat_size
        feature_size = sizes[-1] if sizes else obs_size
        hidden = torso_shapes(obs_size, sizes)
        heads = ((action_size, feature_size),) * 2
        critic_shapes, critic_gains = twin_critic_plan(obs_size + action_size, sizes)
        layers = _orthogonal_layers(
            key,
            (*hidden, *heads, *critic_shapes),
            (*((HIDDEN_GAIN,) * len(hidden)), POLICY_GAIN, POLICY_GAIN, *critic_gains),
        )
        depth = len(hidden)
        self.observation_space = observation_space
        self.action_space = action_space
        self.actor = _GaussianActor(
            _Torso(layers[:depth], activation),
            layers[depth],
            layers[depth + 1],
            float(log_std_min),
            float(log_std_max),
        )
        self.critic = twin_critic(layers[depth + 2 :], activation)

    def _flat(self, observation: ObsT) -> Float[Array, " o"]:
        return flatten_observation("MLPSACPolicy", self.observation_space, observation)

    def __call__(
        self, observation: ObsT, *, key: Key | None = None
    ) -> Float[Array, "..."]:
        """A sampled action with ``key``; the scaled ``tanh(mean)`` when ``None``."""
        if key is None:
            mean, _ = self.actor(self._flat(observation))
            return self.scale_action(jnp.tanh(mean))
        action, _ = self.action_and_log_prob(observation, key=key)
        return action

    def action_and_log_prob(
        self, observation: ObsT, *, key: Key
    ) -> tuple[Float[Array, "..."], Float[Array, ""]]:
        """A reparameterised squashed sample and its log density in
        ``[-1, 1]^a`` (without the constant of the map onto the box)."""
        mean, log_std = self.actor(self._flat(observation))
        noise = jr.normal(key, mean.shape, mean.dtype)
        u = mean + jnp.exp(log_std) * noise
        gaussian = jnp.sum(-0.5 * noise**2 - log_std - _HALF_LOG_2PI)
        return self.scale_action(jnp.tanh(u)), gaussian - _tanh_log_det(u)

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
        return scale_to_box("MLPSACPolicy", self.action_space, normalized_action)

    def unscale_action(self, action: Float[Array, "..."]) -> Float[Array, " a"]:
        """``2 * (action - low) / (high - low) - 1``, flattened."""
        return unscale_from_box("MLPSACPolicy", self.action_space, action)
