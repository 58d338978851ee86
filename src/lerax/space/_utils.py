"""Private helpers shared by the spaces."""

import operator
from typing import Any, SupportsIndex, cast

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
from jax import lax
from jaxtyping import Array, Bool, Integer, Shaped

from .._custom_types import Key

INT32_MIN = int(np.iinfo(np.int32).min)
INT32_MAX = int(np.iinfo(np.int32).max)


def int_limits(dtype: np.dtype[np.generic]) -> tuple[int, int]:
    """The smallest and largest value of an integer dtype."""
    info = np.iinfo(dtype.name)
    return int(info.min), int(info.max)


def float_max(dtype: np.dtype[np.generic]) -> float:
    """The largest finite value of a floating dtype."""
    return float(np.finfo(dtype.name).max)


def flat_dtype() -> np.dtype[np.floating]:
    """JAX's default float dtype: what ``flatten`` returns."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def as_index(owner: str, name: str, value: object) -> int:
    """``value`` as a Python int, or a ``TypeError`` naming it (bools refused)."""
    if isinstance(value, SupportsIndex) and not isinstance(value, bool | np.bool_):
        try:
            return operator.index(value)
        except TypeError:  # e.g. a numpy array that is not a scalar
            pass
    raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")


def as_index_array(owner: str, name: str, value: object) -> npt.NDArray[np.int64]:
    """``value`` (an integer array or a sequence of ints) as an int64 array."""
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: {name} must be an array of integers, got {value!r}"
        ) from None
    if arr.dtype.kind not in ("i", "u") and arr.size > 0:
        raise TypeError(
            f"{owner}: {name} must be an array of integers, got {value!r} "
            f"(dtype {arr.dtype})"
        )
    return arr.astype(np.int64)


def as_shape(owner: str, name: str, value: SupportsIndex | object) -> tuple[int, ...]:
    """A shape: an int or a sequence of non-negative ints, as a tuple."""
    dims: tuple[object, ...]
    if isinstance(value, np.ndarray) and value.ndim <= 1:
        dims = tuple(value.reshape(-1).tolist()) if value.ndim else (value.item(),)
    elif (
        isinstance(value, SupportsIndex)
        and not isinstance(value, np.ndarray)
        and not isinstance(value, bool | np.bool_)
    ):
        dims = (value,)
    elif isinstance(value, tuple | list):
        items: list[object] = list(value)  # pyright: ignore[reportUnknownArgumentType]  # items checked below
        dims = tuple(items)
    else:
        raise TypeError(
            f"{owner}: {name} must be an int or a sequence of ints, got {value!r}"
        )
    shape = tuple(as_index(owner, f"{name}[{i}]", d) for i, d in enumerate(dims))
    if any(d < 0 for d in shape):
        raise ValueError(
            f"{owner}: {name} must have non-negative entries, got {name}={shape}"
        )
    return shape


def as_array(x: object) -> Shaped[Array, "..."] | None:
    """``x`` as a JAX array if it is an array or a Python scalar, else ``None``.

    JAX arrays (and tracers) pass through. Numpy arrays and scalars are
    converted to JAX's dtypes (``int64`` to ``int32`` and ``float64`` to
    ``float32`` unless ``jax_enable_x64``); a value that the conversion would
    change (an integer out of range, a finite float that overflows) gives
    ``None``, as do non-numeric arrays. Python scalars become weakly typed
    arrays. Anything else, including lists and tuples, gives ``None``.
    """
    if isinstance(x, jax.Array):
        return x
    if isinstance(x, np.ndarray | np.generic | bool | int | float):
        np_x: npt.NDArray[np.generic] = np.asarray(x)
        if np_x.dtype.kind not in "biuf":
            return None
        target = np.dtype(jax.dtypes.canonicalize_dtype(np_x.dtype))
        if np_x.size and np_x.dtype.kind in "iu" and target != np_x.dtype:
            lo, hi = int_limits(target)
            int_x = cast(npt.NDArray[np.integer[Any]], np_x)  # kind "iu" above
            if int(np.min(int_x)) < lo or int(np.max(int_x)) > hi:
                return None
        if np_x.size and np_x.dtype.kind == "f" and target != np_x.dtype:
            fmax = float_max(target)
            finite = np_x[np.isfinite(np_x)]
            if finite.size and float(np.abs(finite).max()) > fmax:
                return None
        return jnp.asarray(x)
    return None


def is_integer_array(x: Shaped[Array, "..."], *, allow_bool: bool = False) -> bool:
    """Whether ``x`` has an integer dtype (or bool, if allowed): static."""
    if x.dtype == np.bool_:
        return allow_bool
    return bool(jnp.issubdtype(x.dtype, jnp.integer))


def int_in_range(
    x: Integer[Array, "*s"],
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
) -> Bool[Array, "*s"]:
    """Elementwise ``lo <= x <= hi`` for an integer ``x`` of any dtype.

    ``lo`` and ``hi`` are static int64 arrays of ``x``'s shape. The bounds are
    clipped to ``x``'s dtype first, so no comparison overflows or promotes.
    """
    dmin, dmax = int_limits(x.dtype)
    possible = jnp.asarray((hi >= dmin) & (lo <= dmax))
    lo_c = np.clip(lo, dmin, dmax).astype(x.dtype)
    hi_c = np.clip(hi, dmin, dmax).astype(x.dtype)
    return possible & (x >= lo_c) & (x <= hi_c)


def randint_inclusive(
    key: Key,
    low: npt.NDArray[np.generic],
    high: npt.NDArray[np.generic],
    dtype: np.dtype[np.generic],
) -> Integer[Array, "..."]:
    """Uniform integers in ``[low, high]`` (both inclusive), elementwise.

    ``low`` and ``high`` are static arrays of ``dtype``; any range is allowed,
    including the whole range of ``dtype`` (where ``high + 1`` overflows).
    The offset from ``low`` is drawn in the unsigned type of the same width,
    where every span ``high - low`` fits, then added with wraparound.
    """
    udtype = np.dtype(f"uint{dtype.itemsize * 8}")
    low_u = np.asarray(low, dtype).view(udtype)
    # Exact Python-int arithmetic: ``high - low + 1`` may not fit any dtype.
    span = np.asarray(high, object) - np.asarray(low, object) + 1
    full = np.asarray(span == int_limits(udtype)[1] + 1, np.bool_)
    span = np.where(full, 0, span).astype(udtype)
    k_int, k_bits = jr.split(key)
    offset = jr.randint(k_int, low.shape, 0, jnp.asarray(span), dtype=udtype)
    if np.any(full):
        bits = jr.bits(k_bits, low.shape, udtype)
        offset = jnp.where(jnp.asarray(full), bits, offset)
    return lax.bitcast_convert_type(jnp.asarray(low_u) + offset, dtype)
