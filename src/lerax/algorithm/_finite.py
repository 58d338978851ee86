"""Checks for non-finite numbers, shared by the training loop's guard and the
algorithms that guard their own updates."""

from typing import TypeVar

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, PyTree

T = TypeVar("T")


def all_finite(tree: PyTree) -> Bool[Array, ""]:
    """Whether every floating-point leaf of ``tree`` is finite everywhere.

    Computed as ``sum(x * 0) == 0`` over the leaves: ``x * 0`` is 0 for a
    finite ``x`` and NaN for an infinite or NaN one, and NaN survives any
    sum. A float sum per leaf is one vectorised pass that XLA fuses with the
    multiplication, where ``isfinite(x).all()`` is a boolean reduction that
    XLA on CPU runs element by element (several percent of a SAC iteration
    with 256x256 networks; BENCHMARKS.md)."""
    sums = [
        (x * 0).sum()
        for x in jax.tree.leaves(tree)
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    if not sums:
        return jnp.array(True)
    return sum(sums[1:], sums[0]) == 0


def keep_if(ok: Bool[Array, ""], new: T, old: T) -> T:
    """``new`` where ``ok`` holds, else ``old``, array leaf by array leaf (the
    two of one structure; other leaves are ``new``'s). With ``ok`` known
    before ``new`` is computed, XLA fuses the choice into the computation of
    ``new`` and may still write it in place of ``old``."""

    def pick(n: object, o: object) -> object:
        if isinstance(n, jax.Array) and isinstance(o, jax.Array):
            return jnp.where(ok, n, o)
        return n

    out: T = jax.tree.map(pick, new, old)
    return out


def all_finite_joined(tree: PyTree) -> Bool[Array, ""]:
    """[`all_finite`][], with the leaves of each dtype joined into one vector
    first: one reduction per dtype instead of one per leaf (XLA fuses the
    join into the reduction, so nothing is copied), for a tree of many small
    leaves such as a policy's parameters, where each reduction's fixed cost
    dominates (BENCHMARKS.md)."""
    groups: dict[object, list[Array]] = {}
    for x in jax.tree.leaves(tree):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact):
            groups.setdefault(x.dtype, []).append(x.ravel())
    return all_finite([jnp.concatenate(v) for v in groups.values()])
