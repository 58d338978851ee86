"""The names of the callback hooks, and the class-definition check that a
method meant as a hook is spelled as one (a misspelt hook is never called)."""

import difflib
from collections.abc import Callable
from typing import Final, TypeVar

HOOKS: Final[tuple[str, ...]] = (
    "reset",
    "step_reset",
    "on_step",
    "on_rollout",
    "on_iteration",
    "metrics",
    "continue_training",
    "on_training_start",
    "on_training_end",
)
"""Every hook of [`AbstractCallback`][lerax.callback.AbstractCallback], in the
order the training loop first calls them. Defined once: a later hook is added
here."""

_EXEMPT = "__lerax_not_a_hook__"

F = TypeVar("F", bound=Callable[..., object])


def not_a_hook(method: F) -> F:
    """Mark a callback's public method as deliberately not a hook, so that a
    name starting with ``on_`` or close to a hook's passes the class-definition
    check (e.g. ``on_step_count``, a helper of your own)."""
    setattr(method, _EXEMPT, True)
    return method


def _function(value: object) -> object | None:
    """The function a class attribute defines as a method (plain, static or
    class method), or ``None`` for anything else (fields, properties)."""
    if isinstance(value, staticmethod | classmethod):
        return value.__func__
    if callable(value) and not isinstance(value, type):
        return value
    return None


def check_hook_names(cls: type) -> None:
    """Raise ``TypeError`` if ``cls`` defines a public method that is not a
    hook but looks like one: its name starts with ``on_``, or is close to a
    hook's (``difflib`` ratio at least 0.8), unless marked with
    [`not_a_hook`][lerax.callback.not_a_hook]."""
    for name, value in vars(cls).items():
        if name.startswith("_") or name in HOOKS:
            continue
        function = _function(value)
        if function is None or getattr(function, _EXEMPT, False):
            continue
        close = difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.8)
        if not close and not name.startswith("on_"):
            continue
        nearest = close or difflib.get_close_matches(name, HOOKS, n=1, cutoff=0.0)
        raise TypeError(
            f"{cls.__name__}.{name} is not a callback hook, so the training loop "
            f"would never call it; did you mean {nearest[0]!r}? The hooks are "
            f"{', '.join(HOOKS)}. If {name} is a helper on purpose, decorate it "
            "with @lerax.callback.not_a_hook"
        )
