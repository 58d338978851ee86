"""MultiBinary: arrays of independent bits."""

import math
from collections.abc import Sequence
from typing import SupportsIndex, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int8

from .._custom_types import Key
from ._base import AbstractSpace
from ._utils import as_array, as_shape, flat_dtype, is_integer_array


@final
class MultiBinary(AbstractSpace[Int8[Array, "..."]]):
    """Int8 arrays of a fixed shape whose entries are 0 or 1.

    ``n`` is the number of bits (shape ``(n,)``) or a shape. Elements are int8,
    as in Gymnasium. Bits are sampled independently with probability 1/2.
    ``contains`` accepts arrays of the shape with any integer or bool dtype
    and entries in {0, 1}. ``flatten`` copies the bits as floats (no one-hot:
    ``flat_size == prod(shape)``, as ``gymnasium.spaces.flatdim``);
    ``unflatten`` reads ``v > 0.5``.
    """

    _shape: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, n: SupportsIndex | Sequence[SupportsIndex]):
        shape = as_shape("MultiBinary", "n", n)
        if len(shape) == 0 or any(d <= 0 for d in shape):
            raise ValueError(
                "MultiBinary: n must be a positive integer or a non-empty shape of "
                f"positive integers, got n={n!r}"
            )
        self._shape = shape

    @property
    def n(self) -> int | tuple[int, ...]:
        """The number of bits for a 1-D space, else the shape (as Gymnasium)."""
        return self._shape[0] if len(self._shape) == 1 else self._shape

    def __repr__(self) -> str:
        return f"MultiBinary({self.n})"

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(np.int8)

    @property
    def flat_size(self) -> int:
        return math.prod(self._shape)

    def sample(self, *, key: Key) -> Int8[Array, "..."]:
        return jr.bernoulli(key, 0.5, self._shape).astype(jnp.int8)

    def contains(self, x: object) -> Bool[Array, ""]:
        arr = as_array(x)
        if (
            arr is None
            or arr.shape != self._shape
            or not is_integer_array(arr, allow_bool=True)
        ):
            return jnp.array(False)
        if arr.dtype == np.bool_:
            return jnp.array(True)
        return jnp.all((arr == 0) | (arr == 1))

    def flatten(self, x: Int8[Array, "..."]) -> Float[Array, " size"]:
        return jnp.ravel(x).astype(flat_dtype())

    def unflatten(self, v: Float[Array, " size"]) -> Int8[Array, "..."]:
        return jnp.reshape(v > 0.5, self._shape).astype(jnp.int8)
