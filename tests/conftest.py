"""Test configuration.

The whole ``lerax`` package is type-checked at runtime during tests by
jaxtyping + beartype (see ``addopts`` in ``pyproject.toml``).
"""

from collections.abc import Iterator

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")  # type: ignore[no-untyped-call]  # jax.config is untyped
jax.config.update("jax_numpy_rank_promotion", "raise")  # type: ignore[no-untyped-call]  # jax.config is untyped
# Tests compare batched with unbatched computations at float32 tolerances. On
# GPUs, float32 matmuls default to TF32 (about 1e-3 relative error), which
# fails three of them on an H200 (checked 2026-11-26); on CPU this changes
# nothing.
jax.config.update("jax_default_matmul_precision", "highest")  # type: ignore[no-untyped-call]  # jax.config is untyped


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs() -> Iterator[None]:
    """Drop JAX's compiled programs after each test module.

    On CPU every compiled training program holds several hundred memory
    mappings (about 590 for a small PPO run, measured with JAX 0.10.2) until
    its cache entry goes, and Linux allows a process 65,530
    (``vm.max_map_count``); past that, XLA's next compilation crashes the
    process with a segmentation fault. A test worker compiles far more
    programs than that allows, so each module starts with empty caches
    (tests that check reuse of a compiled program do so within a module)."""
    yield
    jax.clear_caches()  # type: ignore[no-untyped-call]  # jax leaves clear_caches unannotated
