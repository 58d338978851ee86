"""Trace-time validation of the states callback hooks return.

Everything here runs in Python while JAX traces the training loop; nothing is
added to the compiled program.
"""

import dataclasses
import functools
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from beartype.door import is_bearable
from jaxtyping import Array, Bool, jaxtyped

from ._base import AbstractCallback, declared_state_types
from ._errors import CallbackStateError

Kind = Literal["state", "step state", "step states"]
"""What a hook returned: the state, one environment's step state, or every
environment's (``on_rollout``'s, stacked on a leading ``num_envs`` axis)."""


def check_state(
    callback: AbstractCallback[Any, Any, Any, Any],
    hook: str,
    kind: Kind,
    value: object,
    reference: object | None,
) -> None:
    """Check one hook's returned state; raise
    [`CallbackStateError`][lerax.callback.CallbackStateError] if bad.

    Args:
        callback: the callback whose hook ran.
        hook: the hook's name, for the message.
        kind: whether ``value`` is the iteration-level state, one
            environment's step state or every environment's.
        value: what the hook returned.
        reference: the state the hook received (``None`` for ``reset`` and
            ``step_reset``, which create it); ``value`` must match its pytree
            structure, shapes and dtypes exactly.
    """
    where = f"{type(callback).__qualname__}.{hook}"
    state_t, step_state_t = declared_state_types(type(callback))
    declared = state_t if kind == "state" else step_state_t
    if not isinstance(declared, TypeVar) and not is_bearable(
        value, cast(Any, declared)
    ):
        raise CallbackStateError(
            f"{where} must return its declared {_text(kind)} type "
            f"{_name(declared)}, got {_describe(value)}"
        )
    if kind == "step states":
        # Stacked over environments: the shapes must be the stacked ones,
        # and the annotations (written for one environment) hold for each
        # row; the first row's slice is traced only, and nothing uses it.
        if reference is not None:
            _check_same_structure(where, kind, value, reference, hook)
        first = jax.tree.map(lambda x: x[0] if eqx.is_array(x) else x, value)
        _check_annotations(where, "step state", first, "")
        return
    _check_annotations(where, kind, value, "")
    if reference is not None:
        _check_same_structure(where, kind, value, reference, hook)


def check_continue(
    callback: AbstractCallback[Any, Any, Any, Any], value: object
) -> Bool[Array, ""]:
    """Check that ``continue_training`` returned a boolean scalar array."""
    where = f"{type(callback).__qualname__}.continue_training"
    if isinstance(value, bool | np.bool_):
        return jnp.asarray(value)
    if (
        not isinstance(value, jax.Array)
        or value.dtype != jnp.bool_
        or value.shape != ()
    ):
        raise CallbackStateError(
            f"{where} must return a boolean scalar array (Bool[Array, '']), "
            f"got {_describe(value)}"
        )
    return value


def check_metrics(
    callback: AbstractCallback[Any, Any, Any, Any], value: object
) -> dict[str, Array]:
    """Check what ``metrics`` returned: a mapping of ``str`` names to float32
    scalar arrays. Returns it as a ``dict``."""
    where = f"{type(callback).__qualname__}.metrics"
    if not isinstance(value, Mapping):
        raise CallbackStateError(
            f"{where} must return a mapping of names to float32 scalars "
            f"(Mapping[str, Float[Array, '']]), got {_describe(value)}"
        )
    for name, item in value.items():
        if not isinstance(name, str) or not name:
            raise CallbackStateError(
                f"{where} must publish non-empty str names, got the name {name!r}"
            )
        if (
            not isinstance(item, jax.Array)
            or item.dtype != jnp.float32
            or item.shape != ()
        ):
            raise CallbackStateError(
                f"{where} published {name!r} as {_describe(item)}; a metric must be "
                "a float32 scalar array (Float[Array, '']): convert it with "
                "jnp.asarray(x, jnp.float32)"
            )
    return dict(value)


def _check_annotations(where: str, kind: Kind, value: object, path: str) -> None:
    """Check the jaxtyping annotations of ``value``'s fields, recursively."""
    if isinstance(value, tuple | list):
        for i, item in enumerate(value):
            _check_annotations(where, kind, item, f"{path}[{i}]")
        return
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    hints = _field_hints(type(value))
    # One jaxtyping memo per module: named dimensions must agree across its fields.
    with jaxtyped("context"):
        for name, hint in hints.items():
            field_value = getattr(value, name)
            if not is_bearable(field_value, cast(Any, hint)):
                raise CallbackStateError(
                    f"{where} returned a {kind} whose field {path}.{name} does not "
                    f"match its annotation {_hint_name(hint)}: got "
                    f"{_describe(field_value)}"
                )
    for name in hints:
        _check_annotations(where, kind, getattr(value, name), f"{path}.{name}")


@functools.cache
def _field_hints(cls: type) -> dict[str, object]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.name in hints}


def _check_same_structure(
    where: str, kind: Kind, value: object, reference: object, hook: str
) -> None:
    origin = "reset" if kind == "state" else "step_reset"
    origin += " (for every environment)" if kind == "step states" else ""
    got_leaves, got_def = jax.tree_util.tree_flatten_with_path(value)
    ref_leaves, ref_def = jax.tree_util.tree_flatten_with_path(reference)
    if not _equal(got_def, ref_def):
        got_paths = {jax.tree_util.keystr(p) for p, _ in got_leaves}
        ref_paths = {jax.tree_util.keystr(p) for p, _ in ref_leaves}
        detail = ""
        if got_paths != ref_paths:
            missing = sorted(ref_paths - got_paths)
            extra = sorted(got_paths - ref_paths)
            detail = f" (missing leaves: {missing or 'none'}; extra leaves: {extra or 'none'})"
        raise CallbackStateError(
            f"{where} returned a {_text(kind)} whose pytree structure differs from the one "
            f"created by {origin}{detail}: expected {ref_def}, got {got_def}"
        )
    for (path, got), (_, ref) in zip(got_leaves, ref_leaves, strict=True):
        got_sd, ref_sd = _shape_dtype(got), _shape_dtype(ref)
        if got_sd != ref_sd:
            raise CallbackStateError(
                f"{where} returned a {_text(kind)} whose leaf {jax.tree_util.keystr(path)} "
                f"has {_fmt_sd(got_sd)}; expected {_fmt_sd(ref_sd)} as created by "
                f"{origin} (a state must keep its shapes and dtypes across hooks)"
            )


def _text(kind: Kind) -> str:
    """``kind`` as the messages name it."""
    return "step state" if kind == "step states" else kind


def _equal(a: object, b: object) -> bool:
    return a == b


def _shape_dtype(x: object) -> tuple[tuple[int, ...], str] | str:
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        return (tuple(x.shape), str(x.dtype))
    return type(x).__qualname__


def _fmt_sd(sd: tuple[tuple[int, ...], str] | str) -> str:
    if isinstance(sd, str):
        return f"a non-array value of type {sd}"
    return f"shape {sd[0]} and dtype {sd[1]}"


def _describe(value: object) -> str:
    if isinstance(value, jax.Array | np.ndarray):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"a value of type {type(value).__qualname__}"


def _name(t: object) -> str:
    return t.__qualname__ if isinstance(t, type) else repr(t)


def _hint_name(hint: object) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


__all__ = ["check_state", "check_continue"]
