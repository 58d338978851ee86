"""Discrete: the integers ``0, 1, ..., n - 1``."""

from typing import final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Key
from ._base import AbstractSpace


@final
class Discrete(AbstractSpace[Int[Array, ""]]):
    """The integers ``start, ..., start + n - 1`` as int32 scalars."""

    n: int = eqx.field(static=True)
    start: int = eqx.field(static=True, default=0)

    def __check_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int | np.integer):
            raise TypeError(f"Discrete: n must be an int, got {self.n!r}")
        if self.n <= 0:
            raise ValueError(f"Discrete: n must be a positive integer, got n={self.n}")

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(np.int32)

    @property
    def flat_size(self) -> int:
        return int(self.n)

    def sample(self, *, key: Key) -> Int[Array, ""]:
        return jr.randint(key, (), self.start, self.start + self.n, dtype=jnp.int32)

    def contains(self, x: Int[Array, ""]) -> Bool[Array, ""]:
        x = jnp.asarray(x)
        if x.shape != () or not (
            jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_
        ):
            return jnp.array(False)
        return (x >= self.start) & (x < self.start + self.n)

    def flatten(self, x: Int[Array, ""]) -> Float[Array, " size"]:
        return jnp.zeros(self.n, jnp.float32).at[x - self.start].set(1.0)

    def unflatten(self, v: Float[Array, " size"]) -> Int[Array, ""]:
        return (jnp.argmax(v) + self.start).astype(jnp.int32)
