"""Box: a (possibly unbounded) rectangle of real or integer arrays."""

import math
from collections.abc import Sequence
from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, ArrayLike, Bool, Float, Shaped

from .._custom_types import Key
from ._base import AbstractSpace
from ._utils import (
    as_array,
    as_shape,
    flat_dtype,
    float_max,
    int_in_range,
    int_limits,
    randint_inclusive,
)

_Bound = float | int
# Cap on the integer offset drawn for a half-unbounded integer coordinate (an
# exponential variate never comes near it; it only keeps the cast exact).
_OFFSET_CAP = 2**20


def _box_dtype(dtype: type[np.generic] | np.dtype[np.generic]) -> np.dtype[np.generic]:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(
            f"Box: dtype must be an integer or floating dtype, got dtype={dtype!r}"
        ) from None
    if dt.kind not in "iuf":
        raise ValueError(
            f"Box: dtype must be a numpy integer or floating dtype, got dtype={dt}"
        )
    return np.dtype(jax.dtypes.canonicalize_dtype(dt))


def _bounds(
    name: str,
    value: npt.NDArray[np.generic],
    dtype: np.dtype[np.generic],
) -> list[_Bound]:
    """Check one bound array and return its entries as Python numbers.

    Integer boxes keep ``-inf``/``inf`` entries (unbounded) as floats and all
    other entries as ints; floating boxes keep floats rounded to ``dtype``.
    """
    if value.dtype.kind not in "iuf":
        raise ValueError(f"Box: {name} must be real numbers, got {name}={value!r}")
    flat = value.ravel()
    if value.dtype.kind == "f" and np.any(np.isnan(flat)):
        i = int(np.argmax(np.isnan(flat)))
        idx = tuple(int(j) for j in np.unravel_index(i, value.shape))
        raise ValueError(f"Box: {name} must not contain NaN, got NaN at index {idx}")
    out: list[_Bound] = []
    if dtype.kind in "iu":
        dmin, dmax = int_limits(dtype)
        signed = dmin < 0
        unbounded = -math.inf if name == "low" else math.inf
        for v in flat.tolist():
            if v == unbounded and signed:
                out.append(v)
            elif math.isinf(v) or v != int(v) or not dmin <= v <= dmax:
                raise ValueError(
                    f"Box: {name} must hold integers in the range of dtype={dtype} "
                    f"([{dmin}, {dmax}]"
                    + (f", or {unbounded} for unbounded" if signed else "")
                    + f"), got {name} entry {v!r}"
                )
            else:
                out.append(int(v))
    else:
        fmax = float_max(dtype)
        for v in flat.tolist():
            if not math.isinf(v) and abs(v) > fmax:
                raise ValueError(
                    f"Box: {name} entry {v!r} is out of the range of dtype={dtype} "
                    f"(finite values must lie in [-{fmax}, {fmax}])"
                )
        out = np.asarray(flat, dtype).astype(np.float64).tolist()
    return out


def _compact(values: list[_Bound]) -> tuple[_Bound, ...]:
    """One entry when all are equal (cheap to hash for large boxes)."""
    if values and all(v == values[0] for v in values):
        return (values[0],)
    return tuple(values)


@final
class Box(AbstractSpace[Shaped[Array, "..."]]):
    """The arrays ``x`` of a fixed shape and dtype with ``low <= x <= high``.

    ``low`` and ``high`` broadcast to ``shape`` (inferred from them when not
    given; scalars give a scalar box of shape ``()``). Bounds may be infinite.
    The dtype is any integer or floating dtype, canonicalized by JAX (so
    ``np.float64`` means ``float32`` unless ``jax_enable_x64`` is set). Bounds
    are stored as static tuples of Python numbers, so equal boxes hash equal.

    Sampling follows Gymnasium coordinate by coordinate: uniform on ``[low,
    high]`` when both bounds are finite, ``low + Exponential(1)`` or ``high -
    Exponential(1)`` when one is infinite and a standard normal when both are.
    Integer boxes sample uniformly among the integers of ``[low, high]``, both
    included; an integer bound given as ``-inf``/``inf`` is unbounded (its
    [`low`][lerax.space.Box.low]/[`high`][lerax.space.Box.high] shows the dtype's limit)
    and gets the floor of the unbounded distribution, clipped to the dtype.

    ``contains`` accepts arrays whose dtype casts safely to the box's dtype (as
    ``numpy.can_cast``, like Gymnasium) and Python scalars of a fitting kind.
    """

    _shape: tuple[int, ...] = eqx.field(static=True)
    _dtype: str = eqx.field(static=True)
    _low: tuple[_Bound, ...] = eqx.field(static=True)
    _high: tuple[_Bound, ...] = eqx.field(static=True)

    def __init__(
        self,
        low: ArrayLike | Sequence[float | int],
        high: ArrayLike | Sequence[float | int],
        shape: Sequence[int] | None = None,
        dtype: type[np.generic] | np.dtype[np.generic] = np.float32,
    ):
        dt = _box_dtype(dtype)
        low_np: npt.NDArray[np.generic] = np.asarray(low)
        high_np: npt.NDArray[np.generic] = np.asarray(high)
        if shape is None:
            try:
                box_shape = np.broadcast_shapes(low_np.shape, high_np.shape)
            except ValueError:
                raise ValueError(
                    f"Box: low (shape {low_np.shape}) and high (shape "
                    f"{high_np.shape}) must broadcast together"
                ) from None
        else:
            box_shape = as_shape("Box", "shape", shape)
        try:
            low_np = np.broadcast_to(low_np, box_shape)
            high_np = np.broadcast_to(high_np, box_shape)
        except ValueError:
            raise ValueError(
                f"Box: low (shape {np.shape(low)}) and high (shape {np.shape(high)}) "
                f"must broadcast to shape={box_shape}"
            ) from None
        lows = _bounds("low", low_np, dt)
        highs = _bounds("high", high_np, dt)
        for i, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
            if lo > hi:
                idx = tuple(int(j) for j in np.unravel_index(i, box_shape))
                raise ValueError(
                    f"Box: low must be <= high everywhere, got low={lo!r} > "
                    f"high={hi!r} at index {idx}"
                )
        self._shape = tuple(box_shape)
        self._dtype = dt.name
        self._low = _compact(lows)
        self._high = _compact(highs)

    def _bound_array(self, values: tuple[_Bound, ...]) -> npt.NDArray[np.object_]:
        """The stored bounds as an object array of Python numbers, of shape."""
        if len(values) == 1:
            return np.full(self._shape, values[0], dtype=object)
        return np.asarray(values, dtype=object).reshape(self._shape)

    def _as_dtype(self, values: tuple[_Bound, ...]) -> npt.NDArray[np.generic]:
        arr = self._bound_array(values)
        if self.dtype.kind in "iu":
            dmin, dmax = int_limits(self.dtype)
            arr = np.where(arr == -math.inf, dmin, arr)
            arr = np.where(arr == math.inf, dmax, arr)
        return np.asarray(arr.astype(self.dtype))

    @property
    def low(self) -> npt.NDArray[np.generic]:
        """The lower bounds: a numpy array of [`shape`][lerax.space.AbstractSpace.shape]
        and [`dtype`][lerax.space.AbstractSpace.dtype].

        For integer boxes an unbounded entry shows the dtype's minimum.
        """
        return self._as_dtype(self._low)

    @property
    def high(self) -> npt.NDArray[np.generic]:
        """The upper bounds: a numpy array of [`shape`][lerax.space.AbstractSpace.shape]
        and [`dtype`][lerax.space.AbstractSpace.dtype].

        For integer boxes an unbounded entry shows the dtype's maximum.
        """
        return self._as_dtype(self._high)

    @property
    def bounded_below(self) -> npt.NDArray[np.bool_]:
        """Where ``low`` is finite (a static numpy bool array of
        [`shape`][lerax.space.AbstractSpace.shape])."""
        return np.asarray(self._bound_array(self._low) != -math.inf, np.bool_)

    @property
    def bounded_above(self) -> npt.NDArray[np.bool_]:
        """Where ``high`` is finite (a static numpy bool array of
        [`shape`][lerax.space.AbstractSpace.shape])."""
        return np.asarray(self._bound_array(self._high) != math.inf, np.bool_)

    def __repr__(self) -> str:
        def show(values: tuple[_Bound, ...]) -> str:
            if len(values) == 1:
                return repr(values[0])
            if len(values) <= 8:
                return repr(list(values))
            return f"<{len(values)} values in [{min(values)}, {max(values)}]>"

        return (
            f"Box({show(self._low)}, {show(self._high)}, {self._shape}, {self._dtype})"
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> np.dtype[np.generic]:
        return np.dtype(self._dtype)

    @property
    def flat_size(self) -> int:
        return math.prod(self._shape)

    def sample(self, *, key: Key) -> Shaped[Array, "..."]:
        if self.dtype.kind in "iu":
            return self._sample_int(key)
        return self._sample_float(key)

    def _sample_float(self, key: Key) -> Float[Array, "..."]:
        dt = self.dtype
        # Narrow floats are drawn in float32 and rounded (bounds stay exact).
        cdt = dt if dt.itemsize >= 4 else np.dtype(np.float32)
        low, high = self.low.astype(cdt), self.high.astype(cdt)
        below, above = self.bounded_below, self.bounded_above
        k_u, k_n, k_e = jr.split(key, 3)
        x = jnp.zeros(self._shape, cdt)
        if np.any(below & above):
            u = jr.uniform(k_u, self._shape, cdt)
            # Placeholders where unbounded keep inf * 0 (NaN) out of the program.
            lo = np.where(below & above, low, 0).astype(cdt)
            hi = np.where(below & above, high, 1).astype(cdt)
            # lo + u * (hi - lo) could overflow; this form cannot.
            uni = jnp.clip(lo * (1 - u) + hi * u, lo, hi)
            x = jnp.where(below & above, uni, x)
        if np.any(below ^ above):
            e = jr.exponential(k_e, self._shape, cdt)
            x = jnp.where(below & ~above, low + e, x)
            x = jnp.where(~below & above, high - e, x)
        if np.any(~below & ~above):
            x = jnp.where(~below & ~above, jr.normal(k_n, self._shape, cdt), x)
        return x.astype(dt)

    def _sample_int(self, key: Key) -> Shaped[Array, "..."]:
        dt = self.dtype
        dmin, dmax = int_limits(dt)
        low, high = self.low, self.high
        below, above = self.bounded_below, self.bounded_above
        k_u, k_n, k_e = jr.split(key, 3)
        x = randint_inclusive(k_u, low, high, dt)
        if np.any(below ^ above):
            e = jr.exponential(k_e, self._shape, jnp.float32)
            # Offsets are capped so that low + k and high - k stay in the dtype.
            room_up = np.minimum(dmax - low.astype(object), _OFFSET_CAP)
            room_down = np.minimum(high.astype(object) - dmin, _OFFSET_CAP)
            k = jnp.floor(e).astype(jnp.int32)
            k_up = jnp.minimum(k, room_up.astype(np.int32)).astype(dt)
            k_down = jnp.minimum(k, room_down.astype(np.int32)).astype(dt)
            x = jnp.where(below & ~above, jnp.asarray(low) + k_up, x)
            x = jnp.where(~below & above, jnp.asarray(high) - k_down, x)
        if np.any(~below & ~above):
            n = jnp.floor(jr.normal(k_n, self._shape, jnp.float32))
            n = jnp.clip(n, -_OFFSET_CAP, _OFFSET_CAP).astype(jnp.int32)
            n = jnp.clip(n, max(dmin, -_OFFSET_CAP), min(dmax, _OFFSET_CAP))
            x = jnp.where(~below & ~above, n.astype(dt), x)
        return x

    def contains(self, x: object) -> Bool[Array, ""]:
        arr = as_array(x)
        if arr is None or arr.shape != self._shape:
            return jnp.array(False)
        if arr.weak_type:
            # A Python scalar: ints fit any box, floats only floating boxes.
            if arr.dtype.kind == "f" and self.dtype.kind != "f":
                return jnp.array(False)
        elif not np.can_cast(arr.dtype, self.dtype):
            return jnp.array(False)
        if arr.dtype.kind in "iu" and self.dtype.kind in "iu":
            # Compared without a cast, which could wrap a weak int around.
            lo, hi = self.low.astype(np.int64), self.high.astype(np.int64)
            return jnp.all(int_in_range(arr, lo, hi))
        arr = arr.astype(self.dtype)
        return jnp.all((arr >= self.low) & (arr <= self.high))

    def flatten(self, x: Shaped[Array, "..."]) -> Float[Array, " size"]:
        return jnp.ravel(x).astype(flat_dtype())

    def unflatten(self, v: Float[Array, " size"]) -> Shaped[Array, "..."]:
        x = jnp.reshape(v, self._shape)
        if self.dtype.kind in "iu":
            x = jnp.round(x)
        return x.astype(self.dtype)
