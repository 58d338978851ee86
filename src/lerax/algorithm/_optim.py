"""Optimizer-state helpers."""

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from .._custom_types import OptState


def current_learning_rate(opt_state: OptState) -> Float[Array, ""]:
    """The learning rate of the most recent update in an optax state, or NaN if
    the state holds none (before any update: the initial rate).

    Works with any optimizer built with ``optax.inject_hyperparams`` (as all
    Lerax algorithms are), scheduled or constant.
    """
    found = optax.tree_utils.tree_get_all_with_path(opt_state, "learning_rate")
    values = [v for _, v in found if isinstance(v, jax.Array)]
    if len(values) != 1:
        return jnp.array(jnp.nan, jnp.float32)
    return jnp.asarray(values[0], jnp.float32)
