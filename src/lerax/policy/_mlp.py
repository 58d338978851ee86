"""A multilayer-perceptron actor-critic policy."""

import math
from collections.abc import Sequence
from typing import TypeVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Shaped

from .._custom_types import Key
from ..distribution import Categorical, Normal
from ..space import AbstractSpace, Box, Discrete
from ._base import AbstractActorCriticPolicy
from ._layers import (
    HIDDEN_GAIN,
    POLICY_GAIN,
    VALUE_GAIN,
    Activation,
    _HasSpaces,
    _Linear,
    _orthogonal_layers,
    _Torso,
    check_activation,
    check_hidden_sizes,
    check_observation_space,
    flatten_observation,
    torso_shapes,
)

ObsT = TypeVar("ObsT")


@final
class MLPActorCriticPolicy(AbstractActorCriticPolicy[ObsT, Shaped[Array, "..."]]):
    """An actor-critic policy made of multilayer perceptrons (PPO/A2C default).

    The observation is flattened with ``observation_space.flatten``. By default
    the actor and the critic are separate MLPs; with ``shared=True`` one torso
    feeds both heads. Weights are initialised orthogonally as in
    Stable-Baselines3 and CleanRL: gain ``sqrt(2)`` for hidden layers, ``0.01``
    for the action head, ``1`` for the value head, and zero biases.

    The action distribution depends on the action space:

    - ``Discrete(n)``: a [`Categorical`][lerax.distribution.Categorical] over ``n``
      logits; actions are int32 scalars in ``start, ..., start + n - 1``.
    - ``Box``: a diagonal [`Normal`][lerax.distribution.Normal] whose mean is the
      action head's output and whose ``log_std`` is a learnable vector that
      does not depend on the observation. Actions are float32 arrays of the
      box's shape, not clipped to its bounds (the training loop clips before
      stepping the environment).

    Any other action space raises ``TypeError``.

    Args:
        env: anything with ``observation_space`` and ``action_space``, such as an
            environment.
        key: the initialisation key.
        hidden_sizes: the width of each hidden layer (``()`` for linear heads).
        activation: the hidden activation; a static (non-trainable) function.
        shared: whether the actor and the critic share one torso.
        log_std_init: the initial value of every entry of ``log_std`` (Box only).
    """

    observation_space: AbstractSpace[ObsT]
    action_space: Discrete | Box
    actor_torso: _Torso
    critic_torso: _Torso | None
    action_head: _Linear
    value_head: _Linear
    log_std: Float[Array, " a"] | None
    shared: bool = eqx.field(static=True)

    def __init__(
        self,
        env: _HasSpaces[ObsT, Shaped[Array, "..."]],
        *,
        key: Key,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: Activation = jax.nn.tanh,
        shared: bool = False,
        log_std_init: float = 0.0,
    ):
        observation_space = env.observation_space
        action_space = env.action_space
        check_observation_space("MLPActorCriticPolicy", observation_space)
        if isinstance(action_space, Discrete):
            action_size = action_space.n
        elif isinstance(action_space, Box):
            if not jnp.issubdtype(action_space.dtype, jnp.floating):
                raise TypeError(
                    "MLPActorCriticPolicy: a Box action space must have a floating "
                    f"dtype, got dtype {action_space.dtype} in {action_space!r}"
                )
            action_size = action_space.flat_size
        else:
            raise TypeError(
                "MLPActorCriticPolicy: action_space must be Discrete or Box, got "
                f"{type(action_space).__name__}: {action_space!r}"
            )
        sizes = check_hidden_sizes("MLPActorCriticPolicy", hidden_sizes)
        check_activation("MLPActorCriticPolicy", activation)
        if not math.isfinite(log_std_init):
            raise ValueError(
                "MLPActorCriticPolicy: log_std_init must be finite, got "
                f"log_std_init={log_std_init!r}"
            )

        in_size = observation_space.flat_size
        feature_size = sizes[-1] if sizes else in_size
        hidden_shapes = torso_shapes(in_size, sizes)
        num_torsos = 1 if shared else 2
        shapes = (
            *(hidden_shapes * num_torsos),
            (action_size, feature_size),
            (1, feature_size),
        )
        gains = (
            *((HIDDEN_GAIN,) * (len(hidden_shapes) * num_torsos)),
            POLICY_GAIN,
            VALUE_GAIN,
        )
        layers = _orthogonal_layers(key, shapes, gains)
        depth = len(hidden_shapes)
        self.observation_space = observation_space
        self.action_space = action_space
        self.actor_torso = _Torso(layers[:depth], activation)
        self.critic_torso = (
            None if shared else _Torso(layers[depth : 2 * depth], activation)
        )
        self.action_head, self.value_head = layers[-2], layers[-1]
        self.log_std = (
            jnp.full((action_size,), log_std_init, jnp.float32)
            if isinstance(action_space, Box)
            else None
        )
        self.shared = shared

    def _forward(
        self, observation: ObsT
    ) -> tuple[Categorical | Normal, Float[Array, ""]]:
        """The action distribution (over flat actions) and the value."""
        x = flatten_observation(
            "MLPActorCriticPolicy", self.observation_space, observation
        )
        actor_features = self.actor_torso(x)
        critic_features = (
            actor_features if self.critic_torso is None else self.critic_torso(x)
        )
        value = self.value_head(critic_features)[0]
        out = self.action_head(actor_features)
        if self.log_std is None:
            return Categorical(out), value
        return Normal(out, self.log_std), value

    def _to_action(self, flat: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Map a sample of the distribution to an element of the action space."""
        space = self.action_space
        if isinstance(space, Discrete):
            return (flat + space.start).astype(jnp.int32)
        return jnp.reshape(flat, space.shape)

    def _from_action(self, action: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Invert ``_to_action``."""
        space = self.action_space
        if isinstance(space, Discrete):
            return jnp.asarray(action, jnp.int32) - space.start
        return jnp.ravel(action).astype(jnp.float32)

    def __call__(
        self, observation: ObsT, *, key: Key | None = None
    ) -> Shaped[Array, "..."]:
        """Sample an action with ``key``; the distribution's mode when ``None``."""
        dist, _ = self._forward(observation)
        flat = dist.mode() if key is None else dist.sample(key=key)
        return self._to_action(flat)

    def action_and_value(
        self, observation: ObsT, *, key: Key
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""], Float[Array, ""]]:
        """Sample an action; return ``(action, log_prob(action), value)``."""
        dist, value = self._forward(observation)
        flat = dist.sample(key=key)
        return self._to_action(flat), dist.log_prob(flat), value

    def evaluate_action(
        self, observation: ObsT, action: Shaped[Array, "..."]
    ) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
        """Return ``(log_prob(action), entropy, value)``."""
        dist, value = self._forward(observation)
        flat = self._from_action(action)
        return dist.log_prob(flat), dist.entropy(), value

    def value(self, observation: ObsT) -> Float[Array, ""]:
        """The state-value estimate of ``observation``."""
        _, value = self._forward(observation)
        return value
