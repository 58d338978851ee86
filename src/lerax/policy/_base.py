"""Abstract policies."""

import abc
from typing import Generic, TypeVar

import equinox as eqx
from jaxtyping import Array, Float

from .._custom_types import Key
from ..space import AbstractSpace

ObsT = TypeVar("ObsT")
ActT = TypeVar("ActT")


class AbstractPolicy(eqx.Module, Generic[ObsT, ActT]):
    """A policy maps one observation to one action.

    Policies act on a single (unbatched) observation; batch them with
    ``jax.vmap``. They know the spaces they were built for, so a training loop
    can check that a policy fits an environment before it compiles anything.
    """

    observation_space: eqx.AbstractVar[AbstractSpace[ObsT]]
    action_space: eqx.AbstractVar[AbstractSpace[ActT]]

    @property
    def name(self) -> str:
        """A short name for logs (the class name)."""
        return type(self).__name__

    @abc.abstractmethod
    def __call__(self, observation: ObsT, *, key: Key | None = None) -> ActT:
        """Act: sample an action with ``key``, or the deterministic action
        (the distribution's mode) when ``key`` is ``None``."""


class AbstractActorCriticPolicy(AbstractPolicy[ObsT, ActT]):
    """A stochastic policy with a state-value estimate (for PPO/A2C)."""

    @abc.abstractmethod
    def action_and_value(
        self, observation: ObsT, *, key: Key
    ) -> tuple[ActT, Float[Array, ""], Float[Array, ""]]:
        """Sample an action; return ``(action, log_prob(action), value)``."""

    @abc.abstractmethod
    def evaluate_action(
        self, observation: ObsT, action: ActT
    ) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
        """Return ``(log_prob(action), entropy, value)`` for an update."""

    @abc.abstractmethod
    def value(self, observation: ObsT) -> Float[Array, ""]:
        """The state-value estimate of ``observation``."""
