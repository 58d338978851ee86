"""Test configuration.

The whole ``lerax`` package is type-checked at runtime during tests by
jaxtyping + beartype (see ``addopts`` in ``pyproject.toml``).
"""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")  # type: ignore[no-untyped-call]  # jax.config is untyped
jax.config.update("jax_numpy_rank_promotion", "raise")  # type: ignore[no-untyped-call]  # jax.config is untyped
