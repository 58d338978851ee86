"""MultiDiscrete: a vector of independent discrete choices."""

from collections.abc import Sequence
from typing import SupportsIndex, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._custom_types import Key
from ._base import AbstractSpace
from ._utils import (
    INT32_MAX,
    INT32_MIN,
    as_array,
    as_index_array,
    flat_dtype,
    int_in_range,
    is_integer_array,
)


@final
class MultiDiscrete(AbstractSpace[Int[Array, " n"]]):
    """Int32 vectors ``x`` with ``start[i] <= x[i] < start[i] + nvec[i]``.

    ``nvec`` is a non-empty 1-D sequence of positive integers, ``start``
    (default all zeros) has the same length. Entries are sampled uniformly and
    independently. ``contains`` accepts 1-D arrays of the right length and any
    integer dtype. ``flatten`` concatenates the one-hot encodings of the entries
    (``flat_size == sum(nvec)``), like ``gymnasium.spaces.flatten``.
    """

    nvec: tuple[int, ...] = eqx.field(static=True)
    start: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        nvec: ArrayLike | Sequence[SupportsIndex],
        start: ArrayLike | Sequence[SupportsIndex] | None = None,
    ):
        nvec_np = as_index_array("MultiDiscrete", "nvec", nvec)
        if nvec_np.ndim != 1 or nvec_np.size == 0:
            raise ValueError(
                "MultiDiscrete: nvec must be a non-empty 1-D sequence of positive "
                f"integers, got nvec={nvec!r} (shape {nvec_np.shape})"
            )
        if np.any(nvec_np <= 0):
            i = int(np.argmax(nvec_np <= 0))
            raise ValueError(
                "MultiDiscrete: nvec must hold positive integers, got "
                f"nvec[{i}]={int(nvec_np[i])} in nvec={nvec_np.tolist()}"
            )
        if start is None:
            start_np = np.zeros_like(nvec_np)
        else:
            start_np = as_index_array("MultiDiscrete", "start", start)
            if start_np.shape != nvec_np.shape:
                raise ValueError(
                    f"MultiDiscrete: start must have the shape of nvec "
                    f"{nvec_np.shape}, got start={start!r} (shape {start_np.shape})"
                )
        last = start_np + nvec_np - 1
        if np.any(start_np < INT32_MIN) or np.any(last > INT32_MAX):
            i = int(np.argmax((start_np < INT32_MIN) | (last > INT32_MAX)))
            raise ValueError(
                f"MultiDiscrete: the elements must fit int32 ([{INT32_MIN}, "
                f"{INT32_MAX}]), got start[{i}]={int(start_np[i])}, "
                f"nvec[{i}]={int(nvec_np[i])}"
            )
        self.nvec = tuple(int(v) for v in nvec_np)
        self.start = tuple(int(v) for v in start_np)

    def _nvec(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.nvec, np.int64)

    def _start(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.start, np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(np.int32)

    @property
    def flat_size(self) -> int:
        return sum(self.nvec)

    def sample(self, *, key: Key) -> Int[Array, " n"]:
        nvec = jnp.asarray(self._nvec(), jnp.int32)
        offset = jr.randint(key, self.shape, 0, nvec, dtype=jnp.int32)
        return offset + jnp.asarray(self._start(), jnp.int32)

    def contains(self, x: object) -> Bool[Array, ""]:
        arr = as_array(x)
        if arr is None or arr.shape != self.shape or not is_integer_array(arr):
            return jnp.array(False)
        lo = self._start()
        return jnp.all(int_in_range(arr, lo, lo + self._nvec() - 1))

    def _segments(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """The one-hot table layout: ``flat[k] = table[rows[k], cols[k]]``.

        Returns ``(index, mask)`` of shape ``(len(nvec), max(nvec))``: the
        position in the flat vector of each cell and whether the cell exists.
        """
        width = max(self.nvec)
        cols = np.arange(width)[None, :]
        mask = cols < self._nvec()[:, None]
        offsets = np.cumsum((0, *self.nvec[:-1]))[:, None]
        return np.where(mask, offsets + cols, 0).astype(np.intp), mask

    def flatten(self, x: Int[Array, " n"]) -> Float[Array, " size"]:
        offset = x.astype(jnp.int32) - jnp.asarray(self._start(), jnp.int32)
        table = jax.nn.one_hot(offset, max(self.nvec), dtype=flat_dtype())
        _, mask = self._segments()
        return table[mask]

    def unflatten(self, v: Float[Array, " size"]) -> Int[Array, " n"]:
        index, mask = self._segments()
        table = jnp.where(jnp.asarray(mask), v[index], -jnp.inf)
        return jnp.argmax(table, axis=1).astype(jnp.int32) + jnp.asarray(
            self._start(), jnp.int32
        )
