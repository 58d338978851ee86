"""Test configuration.

The whole ``lerax`` package is type-checked at runtime during tests by
jaxtyping + beartype (see ``addopts`` in ``pyproject.toml``).
"""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")  # type: ignore[no-untyped-call]  # jax.config is untyped
jax.config.update("jax_numpy_rank_promotion", "raise")  # type: ignore[no-untyped-call]  # jax.config is untyped
# Tests compare batched with unbatched computations at float32 tolerances. On
# GPUs, float32 matmuls default to TF32 (about 1e-3 relative error), which
# fails three of them on an H200 (checked 2026-11-26); on CPU this changes
# nothing.
jax.config.update("jax_default_matmul_precision", "highest")  # type: ignore[no-untyped-call]  # jax.config is untyped
