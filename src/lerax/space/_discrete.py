"""Discrete: the integers ``start, ..., start + n - 1``."""

from typing import SupportsIndex, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import Key
from ._base import AbstractSpace
from ._utils import (
    INT32_MAX,
    INT32_MIN,
    as_array,
    as_index,
    flat_dtype,
    int_in_range,
    is_integer_array,
)


@final
class Discrete(AbstractSpace[Int[Array, ""]]):
    """The integers ``start, ..., start + n - 1``, as int32 scalars.

    Samples are uniform. ``contains`` accepts integer scalars of any integer
    dtype (and Python ints), not floats or bools. ``flatten`` is the one-hot
    vector of ``x - start`` (all zeros for a value outside the space).
    """

    n: int = eqx.field(static=True)
    start: int = eqx.field(static=True)

    def __init__(self, n: SupportsIndex, start: SupportsIndex = 0):
        n_ = as_index("Discrete", "n", n)
        start_ = as_index("Discrete", "start", start)
        if n_ <= 0:
            raise ValueError(f"Discrete: n must be a positive integer, got n={n_}")
        if start_ < INT32_MIN or start_ + n_ - 1 > INT32_MAX:
            raise ValueError(
                "Discrete: the elements must fit int32 "
                f"([{INT32_MIN}, {INT32_MAX}]), got start={start_}, n={n_} "
                f"(largest element {start_ + n_ - 1})"
            )
        self.n = n_
        self.start = start_

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(np.int32)

    @property
    def flat_size(self) -> int:
        return self.n

    def sample(self, *, key: Key) -> Int[Array, ""]:
        # Drawing the offset keeps every bound inside int32.
        offset = jr.randint(key, (), 0, self.n, dtype=jnp.int32)
        return offset + jnp.asarray(self.start, jnp.int32)

    def contains(self, x: object) -> Bool[Array, ""]:
        arr = as_array(x)
        if arr is None or arr.shape != () or not is_integer_array(arr):
            return jnp.array(False)
        lo = np.asarray(self.start, np.int64)
        hi = np.asarray(self.start + self.n - 1, np.int64)
        return int_in_range(arr, lo, hi)

    def flatten(self, x: Int[Array, ""]) -> Float[Array, " size"]:
        offset = x.astype(jnp.int32) - jnp.asarray(self.start, jnp.int32)
        return jax.nn.one_hot(offset, self.n, dtype=flat_dtype())

    def unflatten(self, v: Float[Array, " size"]) -> Int[Array, ""]:
        return jnp.argmax(v).astype(jnp.int32) + jnp.asarray(self.start, jnp.int32)
