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
        """Act: with ``key``, the action the policy takes while it collects
        experience (a sample, for a stochastic policy); with ``None``, the
        deterministic action (a stochastic policy's mode).

        Policies that are deterministic by nature (Q-value and TD3 policies)
        ignore ``key``: their exploration belongs to the algorithm.
        """

    def deterministic_action(self, observation: ObsT) -> ActT:
        """The action evaluation uses: ``self(observation, key=None)``.

        That is the mode of a stochastic policy's distribution, the greedy action
        of a Q-value policy and the actor's action of a deterministic one.
        """
        return self(observation, key=None)


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


class AbstractQPolicy(AbstractPolicy[ObsT, ActT]):
    """A policy that acts greedily on one Q-value per discrete action (for DQN).

    The whole policy is the Q-network: an algorithm keeps a target network as a
    copy of the policy.
    """

    @abc.abstractmethod
    def q_values(self, observation: ObsT) -> Float[Array, " n"]:
        """The Q-value of every action in ``observation``: entry ``i`` belongs to
        the ``i``-th action of the (discrete) action space."""

    @abc.abstractmethod
    def __call__(self, observation: ObsT, *, key: Key | None = None) -> ActT:
        """The greedy action, the one of the largest Q-value, whatever ``key``:
        exploration (e.g. epsilon-greedy) is the algorithm's."""


class AbstractTwinQCritic(eqx.Module):
    """Two independent action-value estimates (clipped double Q, for SAC/TD3).

    A critic is callable on its own, so an algorithm can keep a target critic
    (a copy of a policy's ``critic``, updated slowly) in its own state and
    evaluate it without the policy.
    """

    @abc.abstractmethod
    def __call__(
        self,
        flat_observation: Float[Array, " o"],
        normalized_action: Float[Array, " a"],
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """Return ``(q1, q2)`` for an observation flattened with its space's
        ``flatten`` and an action in the policy's normalized coordinates (a flat
        vector of ``[-1, 1]^a`` for actions inside the box, see the policy's
        ``unscale_action``)."""


class AbstractSACPolicy(AbstractPolicy[ObsT, ActT]):
    """A squashed stochastic actor with twin Q critics (for SAC).

    ``actor`` and ``critic`` are sub-modules an algorithm optimises apart and
    copies for target networks; ``critic`` is callable on its own (see
    [`AbstractTwinQCritic`][lerax.policy.AbstractTwinQCritic]).
    """

    actor: eqx.AbstractVar[eqx.Module]
    critic: eqx.AbstractVar[AbstractTwinQCritic]

    @abc.abstractmethod
    def action_and_log_prob(
        self, observation: ObsT, *, key: Key
    ) -> tuple[ActT, Float[Array, ""]]:
        """Sample an action; return ``(action, log_prob(action))``.

        The sample is reparameterised (differentiable in the parameters), and
        ``log_prob`` includes the change of variables of the squashing function
        (for ``tanh``: minus ``sum(log(1 - tanh(u)^2))`` of the pre-squash
        sample ``u``), so that it is the log density of the squashed action.
        """

    @abc.abstractmethod
    def q_values(
        self, observation: ObsT, action: ActT
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """The twin critics' ``(q1, q2)`` of ``action`` in ``observation``:
        ``critic(flatten(observation), unscale_action(action))``."""

    @abc.abstractmethod
    def scale_action(self, normalized_action: Float[Array, " a"]) -> ActT:
        """Map a flat vector of ``[-1, 1]^a`` to an action of the action space."""

    @abc.abstractmethod
    def unscale_action(self, action: ActT) -> Float[Array, " a"]:
        """Invert [`scale_action`][lerax.policy.AbstractSACPolicy.scale_action]:
        the normalized (flat) coordinates of ``action``, what the critic takes."""


class AbstractTD3Policy(AbstractPolicy[ObsT, ActT]):
    """A deterministic actor with twin Q critics (for TD3).

    ``actor`` and ``critic`` are sub-modules an algorithm optimises apart and
    copies for target networks; ``critic`` is callable on its own (see
    [`AbstractTwinQCritic`][lerax.policy.AbstractTwinQCritic]).
    """

    actor: eqx.AbstractVar[eqx.Module]
    critic: eqx.AbstractVar[AbstractTwinQCritic]

    @abc.abstractmethod
    def __call__(self, observation: ObsT, *, key: Key | None = None) -> ActT:
        """The actor's (deterministic) action, whatever ``key``: exploration
        noise and target smoothing are the algorithm's, applied in normalized
        coordinates (see
        [`unscale_action`][lerax.policy.AbstractTD3Policy.unscale_action])."""

    @abc.abstractmethod
    def q_values(
        self, observation: ObsT, action: ActT
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        """The twin critics' ``(q1, q2)`` of ``action`` in ``observation``:
        ``critic(flatten(observation), unscale_action(action))``."""

    @abc.abstractmethod
    def scale_action(self, normalized_action: Float[Array, " a"]) -> ActT:
        """Map a flat vector of ``[-1, 1]^a`` to an action of the action space."""

    @abc.abstractmethod
    def unscale_action(self, action: ActT) -> Float[Array, " a"]:
        """Invert [`scale_action`][lerax.policy.AbstractTD3Policy.scale_action]:
        the normalized (flat) coordinates of ``action``, what the critic takes."""
