"""The abstract environment and the record of one step."""

import abc
from typing import Generic, TypeVar, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

from .._custom_types import Key
from ..space import AbstractSpace

StateT = TypeVar("StateT")
ObsT = TypeVar("ObsT")
ActT = TypeVar("ActT")


@final
class TimeStep(eqx.Module, Generic[StateT, ObsT]):
    """What one environment step returns.

    ``reward`` is the raw environment reward. ``terminated`` means the MDP
    reached a terminal state (no bootstrapping past it); ``truncated`` means the
    episode was cut short (time limit), so a learner should bootstrap from the
    value of ``observation``.
    """

    state: StateT
    observation: ObsT
    reward: Float[Array, ""]
    terminated: Bool[Array, ""]
    truncated: Bool[Array, ""]

    @property
    def done(self) -> Bool[Array, ""]:
        """``terminated | truncated``: the episode is over."""
        return jnp.logical_or(self.terminated, self.truncated)


class AbstractEnv(eqx.Module, Generic[StateT, ObsT, ActT]):
    """A pure, jittable environment.

    An environment is an immutable Equinox module: its physical parameters are
    array leaves (so they can be changed, vmapped or scheduled inside a
    compiled program without recompiling), its configuration (time limit,
    spaces) is static. The state of one episode is a separate pytree, passed in
    and returned, so environments can be vmapped over keys or states and used as
    a ``lax.scan`` carry.

    Episode time limits live in the environment: ``step`` sets ``truncated``
    when the episode reaches ``max_episode_steps`` without terminating.
    """

    observation_space: eqx.AbstractVar[AbstractSpace[ObsT]]
    action_space: eqx.AbstractVar[AbstractSpace[ActT]]
    max_episode_steps: eqx.AbstractVar[int | None]

    @property
    def name(self) -> str:
        """A short name for logs and run directories (the class name)."""
        return type(self).__name__

    @abc.abstractmethod
    def reset(self, *, key: Key) -> tuple[StateT, ObsT]:
        """Start an episode: return its first state and observation."""

    @abc.abstractmethod
    def step(self, state: StateT, action: ActT, *, key: Key) -> TimeStep[StateT, ObsT]:
        """Advance one step from ``state`` with ``action``.

        Returns the next state, its observation, the raw reward and the
        terminated/truncated flags. ``step`` does not reset: after ``done`` the
        caller resets (training loops do this automatically). Stepping a state
        that is already done is allowed and returns values with no meaning.
        """
