"""One home for the array and pytree aliases used across Lerax."""

from collections.abc import Mapping

from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree, Shaped

Key = PRNGKeyArray
"""A typed JAX PRNG key (``jax.random.key``)."""

FloatScalar = Float[Array, ""]
IntScalar = Int[Array, ""]
BoolScalar = Bool[Array, ""]
ScalarLike = float | int | bool | Shaped[Array, ""]

NamedArrays = Mapping[str, Shaped[Array, "..."]]
"""A mapping of names to arrays: what algorithms expose to callbacks as ``locals``."""

TrainingLog = Mapping[str, Float[Array, ""]]
"""Scalar training statistics of the last update, by name."""

ArrayTree = PyTree[Shaped[Array, "..."]]
"""A pytree of arrays (an observation or action of a composite space, a state)."""

OptState = PyTree[Shaped[Array, "..."]]
"""An optax optimizer state: a pytree of arrays."""

__all__ = [
    "Key",
    "FloatScalar",
    "IntScalar",
    "BoolScalar",
    "ScalarLike",
    "NamedArrays",
    "TrainingLog",
    "ArrayTree",
    "OptState",
]
