"""The index of the current run in a batch of vmapped runs, and their number.

Both are primitives of Lerax's own, batched by rules that see every vmapped
axis, so nested vmaps count every axis that batches the anchor (the index is
the row-major position over them). If the JAX internals they need are
missing, they fall back to ``custom_vmap`` versions that count only the
innermost vmapped axis.
"""

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Int, PyTree


@custom_vmap
def _index_portable(anchor: PyTree) -> Int[Array, ""]:
    return jnp.zeros((), jnp.int32)


@_index_portable.def_vmap
def _index_portable_vmap(
    axis_size: int, in_batched: PyTree, anchor: PyTree
) -> tuple[Int[Array, " batch"], bool]:
    return jnp.arange(axis_size, dtype=jnp.int32), True


@custom_vmap
def _count_portable(run_index: Int[Array, ""]) -> Int[Array, ""]:
    return jnp.ones((), jnp.int32)


@_count_portable.def_vmap
def _count_portable_vmap(
    axis_size: int, in_batched: Sequence[bool], run_index: Int[Array, "..."]
) -> tuple[Int[Array, ""], bool]:
    if in_batched[0]:
        return jnp.asarray(axis_size, jnp.int32), False
    return _count_portable(run_index), False


def _strip(a: Any, d: int | None) -> Any:
    """One element along batch axis ``d``: the values do not matter, only
    whether an outer vmap batches them."""
    return a if d is None else jax.lax.index_in_dim(a, 0, d, keepdims=False)


def jax_internals_allowed() -> bool:
    """False when ``LERAX_NO_JAX_INTERNALS`` is set (to anything but ``0``):
    Lerax's primitives then fall back to public JAX APIs."""
    return os.environ.get("LERAX_NO_JAX_INTERNALS", "") in ("", "0")


def _build() -> tuple[Callable[[list[Array]], Array], Callable[[Array], Array]] | None:
    """The index and count primitives' binders, or None where this JAX lacks
    what they need (or ``LERAX_NO_JAX_INTERNALS=1`` is set)."""
    if not jax_internals_allowed():
        return None
    try:
        from jax._src import core
        from jax._src.interpreters import batching, mlir

        # Any: these internals are partly unannotated.
        index_p: Any = core.Primitive("lerax_run_index")
        count_p: Any = core.Primitive("lerax_num_runs")
        shaped = core.ShapedArray
    except (ImportError, AttributeError):
        return None

    def index_value(*leaves: Any, sizes: tuple[int, ...]) -> Array:
        return jnp.arange(math.prod(sizes), dtype=jnp.int32).reshape(sizes)

    def index_batch(
        args: Sequence[Any], dims: Sequence[int | None], *, sizes: tuple[int, ...]
    ) -> tuple[Any, int]:
        size = next(
            a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None
        )
        stripped = [_strip(a, d) for a, d in zip(args, dims, strict=True)]
        return index_p.bind(*stripped, sizes=(size, *sizes)), 0

    def count_value(run_index: Any) -> Array:
        return jnp.ones((), jnp.int32)

    def count_batch(
        args: Sequence[Any], dims: Sequence[int | None]
    ) -> tuple[Any, None]:
        ((a,), (d,)) = (args, dims)
        assert d is not None  # only batched operands reach a batching rule
        return count_p.bind(_strip(a, d)) * a.shape[d], None

    try:
        index_p.def_impl(index_value)
        index_p.def_abstract_eval(
            lambda *avals, sizes: shaped(sizes, jnp.dtype(jnp.int32))
        )
        batching.primitive_batchers[index_p] = index_batch
        mlir.register_lowering(
            index_p, mlir.lower_fun(index_value, multiple_results=False)
        )
        count_p.def_impl(count_value)
        count_p.def_abstract_eval(lambda aval: shaped((), jnp.dtype(jnp.int32)))
        batching.primitive_batchers[count_p] = count_batch
        mlir.register_lowering(
            count_p, mlir.lower_fun(count_value, multiple_results=False)
        )
    except (AttributeError, TypeError):
        return None

    def index(leaves: list[Array]) -> Array:
        out: Array = index_p.bind(*leaves, sizes=())
        return out

    def count(run_index: Array) -> Array:
        out: Array = count_p.bind(run_index)
        return out

    return index, count


_primitives = _build()


def run_index(anchor: PyTree) -> Int[Array, ""]:
    """``0`` for a single run; under ``jax.vmap``/``eqx.filter_vmap``, the index
    of this run among the vmapped runs, counting every vmapped axis that
    batches some leaf of ``anchor`` (row-major over nested vmaps: under
    ``vmap(vmap(f))`` over a 2 x 3 batch, run ``(i, j)`` has index
    ``3 * i + j``).

    The training loop computes it once from the key, policy, environment and
    callback, and puts it in every callback context as ``ctx.run_index``, so
    host-side I/O can tell vmapped seeds apart. The result is batched along
    every such axis.
    """
    leaves = [
        jax.random.key_data(x)
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
        else jnp.asarray(x)
        for x in jax.tree.leaves(anchor)
        if isinstance(x, jax.Array)
    ]
    if _primitives is None:
        return jnp.asarray(_index_portable(leaves))
    return _primitives[0](leaves)


def num_runs(run_index: Int[Array, ""]) -> Int[Array, ""]:
    """How many runs ``run_index`` (``ctx.run_index``) counts: 1 for a single
    run, else the product of the sizes of the vmapped axes that batch it (an
    unbatched value)."""
    if _primitives is None:
        return jnp.asarray(_count_portable(run_index))
    return _primitives[1](run_index)
