"""The abstract probability distribution."""

import abc
from typing import Generic, TypeVar

import equinox as eqx
from jaxtyping import Array, Float

from .._custom_types import Key

SampleT = TypeVar("SampleT")


class AbstractDistribution(eqx.Module, Generic[SampleT]):
    """A probability distribution over one (unbatched) value.

    A distribution is an immutable Equinox module whose parameters are array
    leaves, so it can be built inside ``jax.jit``, batched with ``jax.vmap`` and
    differentiated with respect to its parameters. Every method acts on a single
    value; batch with ``jax.vmap``.
    """

    @abc.abstractmethod
    def sample(self, *, key: Key) -> SampleT:
        """Draw one value, using ``key`` as the only source of randomness."""

    @abc.abstractmethod
    def log_prob(self, x: SampleT) -> Float[Array, ""]:
        """The log probability (mass or density) of ``x``, as a float scalar.

        For a multivariate distribution this is the joint log probability (a sum
        over independent components), never a per-component vector.
        """

    @abc.abstractmethod
    def entropy(self) -> Float[Array, ""]:
        """The (differential, for densities) entropy in nats, as a float scalar."""

    @abc.abstractmethod
    def mode(self) -> SampleT:
        """The most likely value: the deterministic action of a policy.

        Ties are broken towards the smallest index (as ``jnp.argmax`` does).
        """
