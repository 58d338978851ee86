"""Optimizer-state helpers."""

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from .._custom_types import OptState


def current_learning_rate(opt_state: OptState) -> Float[Array, ""]:
    """The learning rate an optax state will apply next, or NaN if it has none.

    Works with any optimizer built with ``optax.inject_hyperparams`` (as all
    Lerax algorithms are), scheduled or constant.
    """
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate")
    values = [v for _, v in found if isinstance(v, jax.Array)]
    if len(values) != 1:
        return jnp.array(jnp.nan, jnp.float32)
    return jnp.asarray(values[0], jnp.float32)
