"""Test configuration.

The whole ``lerax`` package is type-checked at runtime during tests by
jaxtyping + beartype (see ``addopts`` in ``pyproject.toml``).
"""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
