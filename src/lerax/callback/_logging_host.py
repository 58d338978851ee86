"""Host-side plumbing shared by the I/O callbacks.

Host objects (writers, consoles, progress bars) never enter the traced
structure of a callback: a callback holds an integer id as an array leaf, and
the host function that a host call runs receives that id's value
at run time and looks the object up here. The compiled training loop therefore
depends only on the callback's static configuration, so a new callback of the
same configuration reuses it.
"""

import itertools
import threading
from collections.abc import Sequence
from typing import TypeVar

import jax.numpy as jnp
from jax.custom_batching import custom_vmap
from jaxtyping import Array, Bool

T = TypeVar("T")

_lock = threading.Lock()
_objects: dict[int, object] = {}
_ids = itertools.count(1)


def register(obj: object) -> int:
    """Keep ``obj`` under a fresh id and return the id."""
    with _lock:
        ident = next(_ids)
        _objects[ident] = obj
        return ident


def lookup(ident: int, cls: type[T]) -> T:
    """The object kept under ``ident``.

    Raises:
        RuntimeError: if there is none (it was closed) or it is not a ``cls``.
    """
    obj = _objects.get(ident)  # one dict read: atomic, no lock needed
    if not isinstance(obj, cls):
        raise RuntimeError(
            f"no open {cls.__name__} with id {ident}: the callback was closed "
            "(close() releases its host-side objects); create a new one to train "
            "again"
        )
    return obj


def release(ident: int) -> object | None:
    """Forget the object kept under ``ident`` and return it (None if none)."""
    with _lock:
        return _objects.pop(ident, None)


def registered(cls: type[T]) -> list[T]:
    """Every object kept that is a ``cls``."""
    with _lock:
        return [obj for obj in _objects.values() if isinstance(obj, cls)]


@custom_vmap
def _any_run(flag: Bool[Array, ""]) -> Bool[Array, ""]:
    return flag


@_any_run.def_vmap
def _any_run_vmap(
    axis_size: int, in_batched: Sequence[bool], flag: Bool[Array, "..."]
) -> tuple[Bool[Array, ""], bool]:
    if in_batched[0]:
        return jnp.any(flag), False
    return flag, False


def any_run(flag: Bool[Array, ""]) -> Bool[Array, ""]:
    """``flag`` for a single run; under ``jax.vmap``, whether it holds for any
    run of the batch (an unbatched value).

    A ``lax.cond`` on a batched predicate runs both branches, host callbacks
    included; gating a host call on ``any_run(flag)`` keeps it a real branch,
    so iterations on which no run logs pay nothing. The host function still
    receives each run's own ``flag`` and skips the runs for which it is false.
    """
    out: Bool[Array, ""] = jnp.asarray(_any_run(flag))
    return out
