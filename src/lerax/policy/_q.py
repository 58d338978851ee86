"""A multilayer-perceptron Q-value policy (for DQN)."""

from collections.abc import Sequence
from typing import TypeVar, final

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Shaped

from .._custom_types import Key
from ..space import AbstractSpace, Discrete
from ._base import AbstractQPolicy
from ._layers import (
    HIDDEN_GAIN,
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
class MLPQPolicy(AbstractQPolicy[ObsT, Int[Array, ""]]):
    """One Q-value per action of a ``Discrete`` action space, from an MLP.

    The observation is flattened with ``observation_space.flatten`` and fed to
    one torso. Without ``dueling`` a linear head gives the Q-values; with it,
    ``head`` gives advantages ``A`` and ``value_head`` a state value ``V``,
    combined as ``Q = V + A - mean(A)`` (Wang et al., 2016). Acting is greedy,
    ``argmax(Q) + start`` as an int32 scalar, whatever ``key``: exploration
    (epsilon-greedy) is the algorithm's.

    Weights are initialised orthogonally, as
    [`MLPActorCriticPolicy`][lerax.policy.MLPActorCriticPolicy]'s: gain
    ``sqrt(2)`` for hidden layers and ``1`` for the heads, zero biases; one
    initialiser (one small compiled program per architecture) serves every
    Lerax policy, and the ``sqrt(2)`` gain keeps the scale of activations
    through ReLU layers.

    Args:
        env: anything with ``observation_space`` and ``action_space`` (a
            ``Discrete`` space), such as an environment.
        key: the initialisation key.
        hidden_sizes: the width of each hidden layer (``()`` for a linear
            Q-function).
        activation: the hidden activation; a static (non-trainable) function.
        dueling: whether to use the dueling architecture.
    """

    observation_space: AbstractSpace[ObsT]
    action_space: Discrete
    torso: _Torso
    head: _Linear
    value_head: _Linear | None

    def __init__(
        self,
        env: _HasSpaces[ObsT, Shaped[Array, "..."]],
        *,
        key: Key,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: Activation = jax.nn.relu,
        dueling: bool = False,
    ):
        owner = "MLPQPolicy"
        observation_space = env.observation_space
        action_space = env.action_space
        check_observation_space(owner, observation_space)
        if not isinstance(action_space, Discrete):
            raise TypeError(
                f"{owner}: action_space must be Discrete, got "
                f"{type(action_space).__name__}: {action_space!r}"
            )
        sizes = check_hidden_sizes(owner, hidden_sizes)
        check_activation(owner, activation)

        in_size = observation_space.flat_size
        feature_size = sizes[-1] if sizes else in_size
        hidden = torso_shapes(in_size, sizes)
        heads: tuple[tuple[int, int], ...] = ((action_space.n, feature_size),)
        if dueling:
            heads = (*heads, (1, feature_size))
        gains = (*((HIDDEN_GAIN,) * len(hidden)), *((VALUE_GAIN,) * len(heads)))
        layers = _orthogonal_layers(key, (*hidden, *heads), gains)
        self.observation_space = observation_space
        self.action_space = action_space
        self.torso = _Torso(layers[: len(hidden)], activation)
        self.head = layers[len(hidden)]
        self.value_head = layers[-1] if dueling else None

    def q_values(self, observation: ObsT) -> Float[Array, " n"]:
        """The Q-value of each action ``start, ..., start + n - 1``."""
        x = flatten_observation("MLPQPolicy", self.observation_space, observation)
        features = self.torso(x)
        out = self.head(features)
        if self.value_head is None:
            return out
        return self.value_head(features) + out - jnp.mean(out)

    def __call__(self, observation: ObsT, *, key: Key | None = None) -> Int[Array, ""]:
        """The greedy action ``argmax(q_values) + start``; ``key`` is ignored."""
        greedy = jnp.argmax(self.q_values(observation)).astype(jnp.int32)
        return greedy + jnp.asarray(self.action_space.start, jnp.int32)

    @property
    def dueling(self) -> bool:
        """Whether the Q-values combine a value and an advantage head."""
        return self.value_head is not None
