"""Checking and converting the constructor arguments of the classic-control envs."""

import math
from typing import Literal

import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jaxtyping import Array, Float

from ..._custom_types import ScalarLike

Requirement = Literal["positive", "nonnegative", "finite"]

_ALLOWED: dict[Requirement, str] = {
    "positive": "a finite number > 0",
    "nonnegative": "a finite number >= 0",
    "finite": "a finite number",
}


def _is_traced(x: ScalarLike) -> bool:
    """Whether ``x`` is a tracer (abstract inside jit/vmap), so not inspectable."""
    return isinstance(x, Tracer)


def float_param(
    env: str, name: str, value: ScalarLike, requirement: Requirement
) -> Float[Array, ""]:
    """Convert ``value`` to a float32 scalar array leaf, checking ``requirement``.

    Raises ``TypeError`` for a bool or a non-scalar and ``ValueError`` for a value
    outside what is allowed. A traced value (a parameter passed in from inside
    ``jit`` or ``vmap``) cannot be inspected and is accepted as is.
    """
    if isinstance(value, bool):
        raise TypeError(f"{env}: {name} must be {_ALLOWED[requirement]}, got {value!r}")
    if jnp.shape(value) != ():
        raise TypeError(
            f"{env}: {name} must be a scalar, got an array of shape {jnp.shape(value)}"
        )
    if not _is_traced(value):
        v = float(value)
        ok = math.isfinite(v) and (
            requirement == "finite"
            or (requirement == "positive" and v > 0)
            or (requirement == "nonnegative" and v >= 0)
        )
        if not ok:
            raise ValueError(
                f"{env}: {name} must be {_ALLOWED[requirement]}, got {name}={value!r}"
            )
    return jnp.asarray(value, dtype=jnp.float32)


def episode_steps(env: str, value: int) -> int:
    """Check ``max_episode_steps``: a positive Python int (it is static)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{env}: max_episode_steps must be a positive int, got {value!r}"
        )
    if value <= 0:
        raise ValueError(
            f"{env}: max_episode_steps must be a positive int, "
            f"got max_episode_steps={value}"
        )
    return value


def ordered(
    env: str, low_name: str, low: ScalarLike, high_name: str, high: ScalarLike
) -> None:
    """Require ``low < high`` for two checked parameters (skipped when traced)."""
    if _is_traced(low) or _is_traced(high):
        return
    if not float(low) < float(high):
        raise ValueError(
            f"{env}: {low_name} must be < {high_name}, got {low_name}={low!r} "
            f"and {high_name}={high!r}"
        )


def concrete(env: str, name: str, value: ScalarLike) -> float:
    """The float32-rounded Python value of a parameter that sets a space bound.

    Spaces are static, so such a parameter must not be traced.
    """
    if _is_traced(value):
        raise TypeError(
            f"{env}: {name} sets a bound of a space, which is static, so it must be "
            f"a concrete value at construction, got a traced value; build the "
            f"environment outside jit/vmap and replace the leaf with eqx.tree_at"
        )
    return float(np.float32(value))
