"""The index of the current run in a batch of vmapped runs."""

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Int, PyTree


@custom_vmap
def _index(anchor: PyTree) -> Int[Array, ""]:
    return jnp.zeros((), jnp.int32)


@_index.def_vmap
def _index_vmap(
    axis_size: int, in_batched: PyTree, anchor: PyTree
) -> tuple[Int[Array, " batch"], bool]:
    return jnp.arange(axis_size, dtype=jnp.int32), True


def run_index(anchor: PyTree) -> Int[Array, ""]:
    """``0`` for a single run; under ``jax.vmap``/``eqx.filter_vmap``, the index
    of this run along the vmapped axis, if any leaf of ``anchor`` is vmapped.

    The training loop computes it once from the key, policy, environment and
    callback, and puts it in every callback context as ``ctx.run_index``, so
    host-side I/O can tell vmapped seeds apart. Only the innermost vmapped
    axis that batches ``anchor`` is counted.
    """
    leaves = [
        jnp.asarray(x) for x in jax.tree.leaves(anchor) if isinstance(x, jax.Array)
    ]
    index: Int[Array, ""] = jnp.asarray(_index(leaves))
    return index
