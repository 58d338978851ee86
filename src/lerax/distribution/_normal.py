"""Normal: a diagonal Gaussian over a vector."""

import math
from typing import final

import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from .._custom_types import Key
from ._base import AbstractDistribution

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@final
class Normal(AbstractDistribution[Float[Array, " n"]]):
    """A Gaussian over vectors of length ``n`` with independent components.

    Component ``i`` has mean ``mean[i]`` and standard deviation
    ``exp(log_std[i])``. [`log_prob`][lerax.distribution.AbstractDistribution.log_prob]
    and [`entropy`][lerax.distribution.AbstractDistribution.entropy] are sums over the
    components (the joint density), so both are scalars.
    """

    mean: Float[Array, " n"]
    log_std: Float[Array, " n"]

    def __check_init__(self) -> None:
        if self.mean.ndim != 1 or self.mean.shape != self.log_std.shape:
            raise ValueError(
                "Normal: mean and log_std must be 1-D arrays of the same shape, got "
                f"mean shape {self.mean.shape} and log_std shape {self.log_std.shape}"
            )
        for name, a in (("mean", self.mean), ("log_std", self.log_std)):
            if not jnp.issubdtype(a.dtype, jnp.floating):
                raise TypeError(f"Normal: {name} must be floating point, got {a.dtype}")

    @property
    def std(self) -> Float[Array, " n"]:
        """The standard deviation of each component."""
        return jnp.exp(self.log_std)

    def sample(self, *, key: Key) -> Float[Array, " n"]:
        noise = jr.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + self.std * noise

    def log_prob(self, x: Float[Array, " n"]) -> Float[Array, ""]:
        z = (x - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - _HALF_LOG_2PI)

    def entropy(self) -> Float[Array, ""]:
        return jnp.sum(0.5 + _HALF_LOG_2PI + self.log_std)

    def mode(self) -> Float[Array, " n"]:
        return self.mean
