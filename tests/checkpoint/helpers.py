"""Comparing training states and policies leaf by leaf."""

import operator

import jax
import numpy as np
from jaxtyping import PyTree


def raw(x: object) -> np.ndarray:
    """A leaf as NumPy: a typed PRNG key as its key data."""
    if isinstance(x, jax.Array) and jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def assert_bitwise_equal(a: PyTree, b: PyTree) -> None:
    """The same structure (static fields included) and every leaf equal bit
    for bit, with the same dtype, shape and kind (typed keys stay keys)."""
    structure_a, structure_b = jax.tree.structure(a), jax.tree.structure(b)
    # operator.eq: jaxlib's stubs give PyTreeDef no __eq__ that mypy sees
    assert operator.eq(structure_a, structure_b), (structure_a, structure_b)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        assert type(x) is type(y) or (
            isinstance(x, jax.Array) and isinstance(y, jax.Array)
        )
        assert x.dtype == y.dtype and x.shape == y.shape
        rx, ry = raw(x), raw(y)
        assert rx.dtype == ry.dtype
        # bit for bit: NaNs and signed zeros included
        assert rx.tobytes() == ry.tobytes()
