"""Box: a (possibly unbounded) rectangle of real or integer vectors."""

from typing import final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Shaped

from .._custom_types import Key
from ._base import AbstractSpace


@final
class Box(AbstractSpace[Shaped[Array, "..."]]):
    """A box ``low <= x <= high`` of a fixed shape and dtype.

    Bounds are kept as numpy arrays (static data), so they are known at trace
    time and never become traced values. Infinite bounds are allowed; sampling
    then uses a unit normal (both infinite) or a shifted exponential (one
    infinite), as Gymnasium does.
    """

    _shape: tuple[int, ...] = eqx.field(static=True)
    _dtype: str = eqx.field(static=True)
    _low: tuple[float | int, ...] = eqx.field(static=True)
    _high: tuple[float | int, ...] = eqx.field(static=True)

    def __init__(
        self,
        low: ArrayLike,
        high: ArrayLike,
        shape: tuple[int, ...] | None = None,
        dtype: type[np.generic] | np.dtype[np.generic] = np.float32,
    ):
        dt = np.dtype(dtype)
        low_np = np.asarray(low, dtype=dt)
        high_np = np.asarray(high, dtype=dt)
        if shape is None:
            shape = np.broadcast_shapes(low_np.shape, high_np.shape)
        try:
            low_np = np.broadcast_to(low_np, shape).copy()
            high_np = np.broadcast_to(high_np, shape).copy()
        except ValueError as e:
            raise ValueError(
                f"Box: low (shape {np.shape(low)}) and high (shape {np.shape(high)}) "
                f"must broadcast to shape={shape}"
            ) from e
        if np.any(np.isnan(low_np)) or np.any(np.isnan(high_np)):
            raise ValueError("Box: low and high must not contain NaN")
        if np.any(low_np > high_np):
            bad = np.argwhere(low_np > high_np)[0]
            idx = tuple(int(i) for i in bad)
            raise ValueError(
                f"Box: low must be <= high everywhere, got low={low_np[idx]} > "
                f"high={high_np[idx]} at index {idx}"
            )
        self._shape = tuple(int(d) for d in shape)
        self._dtype = dt.name
        self._low = tuple(low_np.ravel().tolist())
        self._high = tuple(high_np.ravel().tolist())

    @property
    def low(self) -> np.ndarray:
        """The lower bounds, as a numpy array of :attr:`shape` and :attr:`dtype`."""
        return np.asarray(self._low, dtype=self.dtype).reshape(self._shape)

    @property
    def high(self) -> np.ndarray:
        """The upper bounds, as a numpy array of :attr:`shape` and :attr:`dtype`."""
        return np.asarray(self._high, dtype=self.dtype).reshape(self._shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(self._dtype)

    @property
    def flat_size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def sample(self, *, key: Key) -> Shaped[Array, "..."]:
        low = jnp.asarray(self.low, jnp.float32)
        high = jnp.asarray(self.high, jnp.float32)
        lo_fin = jnp.isfinite(low)
        hi_fin = jnp.isfinite(high)
        k_u, k_n, k_e = jr.split(key, 3)
        uniform = jr.uniform(
            k_u,
            self.shape,
            minval=jnp.where(lo_fin, low, 0.0),
            maxval=jnp.where(hi_fin, high, 1.0),
        )
        normal = jr.normal(k_n, self.shape)
        expo = jr.exponential(k_e, self.shape)
        x = jnp.where(
            lo_fin & hi_fin,
            uniform,
            jnp.where(lo_fin, low + expo, jnp.where(hi_fin, high - expo, normal)),
        )
        if jnp.issubdtype(self.dtype, jnp.integer):
            x = jnp.floor(x)
        return x.astype(self.dtype)

    def contains(self, x: Shaped[Array, "..."]) -> Bool[Array, ""]:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.array(False)
        return jnp.all((x >= self.low) & (x <= self.high))

    def flatten(self, x: Shaped[Array, "..."]) -> Float[Array, " size"]:
        return jnp.ravel(jnp.asarray(x)).astype(jnp.float32)

    def unflatten(self, v: Float[Array, " size"]) -> Shaped[Array, "..."]:
        return jnp.reshape(v, self.shape).astype(self.dtype)
