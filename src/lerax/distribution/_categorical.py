"""Categorical: a distribution over ``0, ..., n - 1``."""

from typing import final

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, Int

from .._custom_types import Key
from ._base import AbstractDistribution


@final
class Categorical(AbstractDistribution[Int[Array, ""]]):
    """A categorical distribution over ``0, ..., n - 1`` given by logits.

    The logits are stored normalised (``logits = log_softmax(logits)``), so
    ``logits[i]`` is the log probability of ``i``. Logits may be very negative or
    ``-inf`` (a masked category): such categories are never sampled and add
    nothing to the entropy, without producing NaN. Samples are int32 scalars.
    """

    logits: Float[Array, " n"]

    def __init__(self, logits: Float[Array, " n"]):
        self.logits = jax.nn.log_softmax(jnp.asarray(logits))

    def __check_init__(self) -> None:
        if self.logits.ndim != 1 or self.logits.shape[0] == 0:
            raise ValueError(
                "Categorical: logits must be a non-empty 1-D array, got shape "
                f"{self.logits.shape}"
            )
        if not jnp.issubdtype(self.logits.dtype, jnp.floating):
            raise TypeError(
                f"Categorical: logits must be floating point, got {self.logits.dtype}"
            )

    @property
    def probs(self) -> Float[Array, " n"]:
        """The probability of each category."""
        return jnp.exp(self.logits)

    def sample(self, *, key: Key) -> Int[Array, ""]:
        return jr.categorical(key, self.logits).astype(jnp.int32)

    def log_prob(self, x: Int[Array, ""]) -> Float[Array, ""]:
        return self.logits[x]

    def entropy(self) -> Float[Array, ""]:
        # A masked category has probability 0 and logit -inf; 0 * log 0 is 0.
        finite = jnp.where(jnp.isneginf(self.logits), 0.0, self.logits)
        return -jnp.sum(self.probs * finite)

    def mode(self) -> Int[Array, ""]:
        return jnp.argmax(self.logits).astype(jnp.int32)
