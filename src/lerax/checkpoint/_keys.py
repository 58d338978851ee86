"""Typed PRNG keys on the host: a checkpoint stores a key's data and its
implementation's name, and rebuilds the typed key when loading."""

import functools
from typing import Any

import jax
from jaxtyping import PyTree

from .._structure import is_key, paths_and_leaves


def split_keys(tree: PyTree) -> tuple[PyTree, dict[str, str]]:
    """Replace every typed PRNG key leaf of ``tree`` by its key data
    (``jax.random.key_data``) and name the implementation of each.

    A typed key cannot pass through a host call out of a
    compiled program; its data can. Call this while tracing (it works on
    traced and concrete trees alike), send the first result to the host and
    give the second to
    [`CheckpointWriter.save`][lerax.checkpoint.CheckpointWriter.save] as
    ``key_impls``, so the checkpoint stores typed keys again.

    Returns:
        ``tree`` with key data (``uint32``, the key's shape plus a trailing
        axis) in place of typed keys, and ``{path: implementation name}``
        (``{".key": "threefry2x32"}``) with paths as
        ``jax.tree_util.keystr`` writes them.
    """
    impls = {
        path: str(jax.random.key_impl(leaf))
        for path, leaf in paths_and_leaves(tree)
        if isinstance(leaf, jax.Array) and is_key(leaf)
    }

    def data(x: object) -> object:
        if is_key(x):
            assert isinstance(x, jax.Array)
            return jax.random.key_data(x)
        return x

    return jax.tree.map(data, tree), impls


@functools.cache
def key_layout(impl: str) -> tuple[Any, tuple[int, ...]]:
    """The key dtype of the PRNG implementation named ``impl`` and the
    trailing shape of its key data (``(2,)`` for ``threefry2x32``), found by
    tracing only (nothing runs on a device).

    Raises:
        ValueError: if JAX knows no implementation of that name.
    """
    try:
        key = jax.eval_shape(lambda: jax.random.key(0, impl=impl))
        data = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0, impl=impl)))
    except (TypeError, ValueError, KeyError) as err:
        raise ValueError(f"JAX has no PRNG implementation {impl!r} ({err})") from None
    return key.dtype, tuple(data.shape)
