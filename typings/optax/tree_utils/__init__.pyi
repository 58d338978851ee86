# Minimal stubs for optax.tree_utils: only what Lerax calls.
from typing import Any

from jaxtyping import PyTree

def tree_get_all_with_path(
    tree: PyTree[Any], key: str, filtering: Any = None
) -> list[tuple[tuple[Any, ...], Any]]: ...
def tree_get(tree: PyTree[Any], key: str, default: Any = None, filtering: Any = None) -> Any: ...
