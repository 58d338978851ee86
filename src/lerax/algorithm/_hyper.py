"""Float hyperparameters as array leaves, checked where their values are known.

A hyperparameter that changes no shape and no code path (a learning rate, a
discount, a coefficient) is a float32 array leaf of its algorithm, so that a
batch of algorithms (stacked, or built inside ``eqx.filter_vmap``) trains as
one compiled program and a new value reuses the compiled program. A value
known at construction (a Python float, a NumPy or concrete JAX array,
elementwise over any batch axes) is checked there; a traced one is checked
inside the program, when training starts.
"""

import dataclasses
import math
import operator
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float


@dataclasses.dataclass(frozen=True)
class Interval:
    """The values a hyperparameter may take: ``low``..``high``, each end
    closed or open. NaN is never inside; an infinite end is inside only when
    closed (e.g. ``max_grad_norm=inf``, documented as "no clipping")."""

    low: float
    high: float
    low_closed: bool
    high_closed: bool

    def __str__(self) -> str:
        left = "[" if self.low_closed else "("
        right = "]" if self.high_closed else ")"
        return f"in {left}{_show(self.low)}, {_show(self.high)}{right}"

    def contains(self, x: Float[ArrayLike, "*batch"]) -> Bool[Array, "*batch"]:
        """Elementwise membership (false for NaN), staged into the program."""
        return jnp.asarray(self._inside(jnp.asarray(x, jnp.float32)))

    def _inside(self, x: Any) -> Any:
        """Membership with ``x``'s own operators: NumPy for concrete values
        (nothing staged into a trace), jnp for traced ones."""
        above = x >= self.low if self.low_closed else x > self.low
        below = x <= self.high if self.high_closed else x < self.high
        return above & below


def _show(v: float) -> str:
    return ("-inf" if v < 0 else "inf") if math.isinf(v) else f"{v:g}"


POSITIVE = Interval(0.0, math.inf, False, False)
"""Positive and finite."""
NON_NEGATIVE = Interval(0.0, math.inf, True, False)
"""Non-negative and finite."""
UNIT = Interval(0.0, 1.0, True, True)
"""In ``[0, 1]``."""
POSITIVE_OR_INF = Interval(0.0, math.inf, False, True)
"""Positive; ``inf`` allowed (it means "no limit")."""
UNIT_OPEN_LOW = Interval(0.0, 1.0, False, True)
"""In ``(0, 1]`` (e.g. a target update's step: 0 would never move it)."""
FINITE = Interval(-math.inf, math.inf, False, False)
"""Any finite real (e.g. a target entropy)."""


def hyperparameter(
    owner: str, name: str, value: Float[ArrayLike, "*batch"], allowed: Interval
) -> Float[Array, "*batch"]:
    """``value`` as a float32 array, checked now if it is concrete.

    Raises:
        ValueError: a concrete value (or any element of a batch of them) is
            outside ``allowed``; the message names ``owner``, ``name``, the
            value and what is allowed.
    """
    array = jnp.asarray(value, jnp.float32)
    try:
        concrete = np.asarray(value, np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return array  # traced: checked in the program (checked_values)
    # NumPy, not jnp: under a trace (e.g. an algorithm built inside
    # `jax.jit`) jnp would stage even constant work into the program.
    inside = np.asarray(allowed._inside(concrete))
    if not inside.all():
        bad = concrete if concrete.ndim == 0 else concrete[~inside]
        raise ValueError(
            f"{owner}: {name} must be {allowed}, got {name}={value!r}"
            + ("" if concrete.ndim == 0 else f" (out of range: {bad.tolist()})")
        )
    return array


def hyperparameters(
    module: eqx.Module,
    allowed: Mapping[str, Interval],
    **values: Float[ArrayLike, "*batch"],
) -> None:
    """In ``module``'s ``__init__``: [`hyperparameter`][] for each of
    ``values`` (by name, against ``allowed``; errors name ``module``'s class),
    set as the field of that name."""
    owner = type(module).__name__
    for name, value in values.items():
        setattr(module, name, hyperparameter(owner, name, value, allowed[name]))


def check_flags(owner: str, **flags: object) -> None:
    """Raise ``TypeError`` naming the flag unless each of ``flags`` is a bool
    (flags choose code: they are static)."""
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise TypeError(
                f"{owner}: {name} must be a bool (it is static: it chooses code), "
                f"got {name}={flag!r}"
            )


def check_sizes(owner: str, **sizes: object) -> None:
    """Raise ``ValueError`` naming the size unless each of ``sizes`` is a
    positive Python int (sizes are static: they choose shapes)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{owner}: {name} must be a positive int, got {name}={value!r}"
            )


def checked_values(
    owner: str,
    values: Mapping[str, Float[Array, "*batch"]],
    allowed: Mapping[str, Interval],
) -> dict[str, Float[Array, "*batch"]]:
    """``values``, each checked against ``allowed`` where its value is known.

    A concrete value is checked now, on the host (it was checked when the
    algorithm was built, unless a field was replaced since, e.g. with
    ``eqx.tree_at``), and returned as it is: it adds nothing to the program. A
    traced one (built inside ``eqx.filter_vmap``, or an algorithm passed into
    the user's ``jit``) gets an ``eqx.error_if``: running the program raises,
    naming the field, if it is outside ``allowed``.

    Raises:
        ValueError: a concrete value is outside ``allowed`` (as
            [`hyperparameter`][] says).
    """
    checked: dict[str, Float[Array, "*batch"]] = {}
    for name, value in values.items():
        if isinstance(value, jax.core.Tracer):
            value = eqx.error_if(
                value,
                jnp.logical_not(allowed[name].contains(value)),
                f"{owner}: {name} must be {allowed[name]} (a value traced when "
                "the algorithm was built, checked when training started)",
            )
        else:
            hyperparameter(owner, name, value, allowed[name])
        checked[name] = value
    return checked


def policy_kind_error(
    owner: str, policy: object, kind: type[Any], example: str
) -> TypeError:
    """The error for an algorithm given a policy that is not a ``kind``
    (raised before tracing, rather than an ``AttributeError`` inside the
    update): ``if not isinstance(policy, kind): raise policy_kind_error(...)``,
    which also narrows ``policy`` for the type checkers."""
    return TypeError(
        f"{owner}: policy must be an instance of {kind.__name__} (e.g. {example}), got "
        f"policy of type {type(policy).__name__}"
    )


if TYPE_CHECKING:
    Timesteps = int | np.integer[Any]
else:  # beartype cannot check a subscripted NumPy scalar type in a union
    Timesteps = int | np.integer
"""A count of environment steps given by the user: a Python or NumPy integer
(static: it sets the number of iterations)."""


def show(value: object, limit: int = 80) -> str:
    """How an error shows a bad argument: its repr on one line, shortened to
    ``limit`` characters, and its type (an array's too: dtype and shape), so
    that a message stays readable whatever was passed."""
    text = re.sub(r"\s+", " ", repr(value))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    cls = type(value)
    kind = cls.__qualname__
    if cls.__module__ != "builtins":
        kind = f"{cls.__module__}.{kind}"
    if isinstance(value, jax.Array | np.ndarray | np.generic):
        return f"{text} (of type {kind}, dtype {value.dtype}, shape {value.shape})"
    return f"{text} of type {kind}"


def as_total_timesteps(total_timesteps: object) -> int:
    """``total_timesteps`` as a Python int: it may be a Python or a NumPy
    integer, because it is static (it sets the number of iterations, so it
    must be known before tracing).

    Raises:
        TypeError: ``total_timesteps`` is a bool, a float, a JAX array (traced
            or not) or anything else; the message names the value.
    """
    if isinstance(total_timesteps, int | np.integer) and not isinstance(
        total_timesteps, bool
    ):
        return operator.index(total_timesteps)
    hint = ""
    if isinstance(total_timesteps, jax.Array):
        hint = (
            "; total_timesteps is static (it sets the number of iterations, so it "
            "must be known before tracing): pass a Python int, and under "
            "jax.jit/eqx.filter_jit close over it rather than pass it as an argument"
        )
    raise TypeError(
        "total_timesteps must be an int (a Python or NumPy integer, not a bool), "
        f"got total_timesteps={show(total_timesteps)}{hint}"
    )


def counter_dtype() -> np.dtype[Any]:
    """The dtype of the training loop's counters (iterations, environment
    steps): JAX's default integer, int32, or int64 with ``jax_enable_x64``.
    Read when training starts, so the counters and ``counter_limit``
    always agree."""
    return np.dtype(jax.dtypes.canonicalize_dtype(int))


def counter_limit() -> tuple[int, str]:
    """One past the largest value of a training counter, and how to write it
    (``2**31``, or ``2**63`` with ``jax_enable_x64``): a run must keep its
    counters and its optimizers' update counts below it."""
    bits = np.iinfo(counter_dtype()).bits - 1
    return 2**bits, f"2**{bits}"
