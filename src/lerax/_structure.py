"""Describing and comparing pytree structures, for saved policies and
checkpoints: what a file holds is described in JSON (every node's type,
every static field's value, every leaf's shape and dtype) so that a file and
a given structure are compared without unpickling anything, and a mismatch
names the first differing path.

Also the functions a structure may name (a policy's activation): looked up
by identity in a few JAX namespaces, so that a static function field is
written as ``"jax.nn.relu"`` and read back as that function, and pickled
skeletons refer to them by name.
"""

import dataclasses
import enum
import functools
import importlib
import io
import pickle
import types
from collections.abc import Callable, Iterator
from typing import Any, Final, final

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

# -- functions by name ---------------------------------------------------------

#: The namespaces a static function may be named from, in lookup order.
FUNCTION_NAMESPACES: Final = ("jax.nn", "jax.numpy", "jax.lax")

_names: dict[int, tuple[object, str]] | None = None


def _function_table() -> dict[int, tuple[object, str]]:
    """``id(f) -> (f, "module.name")`` for the public callables of
    ``FUNCTION_NAMESPACES`` (first namespace wins), built once."""
    global _names
    if _names is None:
        table: dict[int, tuple[object, str]] = {}
        for module_name in FUNCTION_NAMESPACES:
            module = importlib.import_module(module_name)
            for name, value in vars(module).items():
                if (
                    name.startswith("_")
                    or isinstance(value, type | types.ModuleType)
                    or not callable(value)
                ):
                    continue
                table.setdefault(id(value), (value, f"{module_name}.{name}"))
        _names = table
    return _names


def function_name(fn: object) -> str | None:
    """``"jax.nn.relu"`` for ``jax.nn.relu``: the name of a public function of
    ``jax.nn``, ``jax.numpy`` or ``jax.lax`` (found by identity), else None."""
    entry = _function_table().get(id(fn))
    if entry is None or entry[0] is not fn:
        return None
    return entry[1]


def resolve_function(name: str) -> Callable[..., Any]:
    """The function ``function_name`` named ``name``.

    Raises:
        ValueError: if ``name`` is not a public function of those namespaces
            (nothing else is ever imported).
    """
    module_name, _, attribute = name.rpartition(".")
    if module_name in FUNCTION_NAMESPACES and not attribute.startswith("_"):
        value = getattr(importlib.import_module(module_name), attribute, None)
        if value is not None and function_name(value) == name:
            fn: Callable[..., Any] = value
            return fn
    raise ValueError(
        f"{name!r} is not a public function of {', '.join(FUNCTION_NAMESPACES)}"
    )


# -- descriptions --------------------------------------------------------------


@final
@dataclasses.dataclass(frozen=True)
class LeafInfo:
    """One array leaf of a saved structure.

    Attributes:
        path: the leaf's path, as ``jax.tree_util.keystr`` writes it
            (``".policy.action_head.weight"``).
        shape: the leaf's shape (batch axes included).
        dtype: the dtype's name (``"float32"``; ``"key<fry>"`` for a typed
            PRNG key).
    """

    path: str
    shape: tuple[int, ...]
    dtype: str

    def show(self) -> str:
        """``"shape (4, 64) dtype float32"``, for messages."""
        return f"shape {self.shape} dtype {self.dtype}"


@final
@dataclasses.dataclass(frozen=True)
class Structure:
    """A pytree's description, in depth-first order: a ``(path, text)`` pair
    for every node's type (``"type lerax.policy._mlp.MLPActorCriticPolicy"``)
    and every static field's value (``"static (64, 64)"``), and a
    ``LeafInfo`` for every leaf (in ``jax.tree.leaves`` order)."""

    items: tuple[tuple[str, str] | LeafInfo, ...]

    @property
    def leaves(self) -> tuple[LeafInfo, ...]:
        """The leaves, in ``jax.tree.leaves`` order."""
        return tuple(item for item in self.items if isinstance(item, LeafInfo))

    def to_json(self) -> list[list[object]]:
        """A JSON-able form (``[path, text]`` for a node, ``[path, shape,
        dtype]`` for a leaf), read back by ``Structure.from_json``."""
        return [
            [item.path, list(item.shape), item.dtype]
            if isinstance(item, LeafInfo)
            else [item[0], item[1]]
            for item in self.items
        ]

    @staticmethod
    def from_json(data: object) -> "Structure":
        """Read ``to_json``'s form back.

        Raises:
            ValueError: if ``data`` does not have that form.
        """
        if not isinstance(data, list):
            raise ValueError(f"malformed structure description: {type(data).__name__}")
        items: list[tuple[str, str] | LeafInfo] = []
        for entry in data:
            if isinstance(entry, list) and len(entry) == 2:
                items.append((str(entry[0]), str(entry[1])))
            elif (
                isinstance(entry, list)
                and len(entry) == 3
                and isinstance(entry[1], list)
                and all(isinstance(n, int) for n in entry[1])
            ):
                items.append(LeafInfo(str(entry[0]), tuple(entry[1]), str(entry[2])))
            else:
                raise ValueError(f"malformed structure description entry {entry!r}")
        return Structure(tuple(items))


def is_array_leaf(x: object) -> bool:
    """Whether ``x`` is an array leaf (a JAX or NumPy array or scalar, or a
    ``jax.ShapeDtypeStruct``)."""
    return isinstance(x, jax.Array | np.ndarray | np.generic | jax.ShapeDtypeStruct)


def is_key(x: object) -> bool:
    """Whether ``x`` is a typed PRNG key array (a JAX array of a key dtype)."""
    return isinstance(x, jax.Array) and bool(
        jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
    )


def leaf_info(path: str, x: object) -> LeafInfo:
    """The shape and dtype of an array leaf (``str(dtype)`` for a typed key),
    or of a Python scalar leaf as NumPy would hold it."""
    if isinstance(x, jax.Array | np.ndarray | np.generic | jax.ShapeDtypeStruct):
        return LeafInfo(path, tuple(int(n) for n in x.shape), str(x.dtype))
    arr = np.asarray(x)
    return LeafInfo(path, tuple(arr.shape), f"python {type(x).__name__}")


def describe_value(value: object) -> str:
    """A static field's value as text that is the same in every process: no
    memory addresses, functions and classes by qualified name."""
    if value is None or isinstance(value, bool | int | float | complex | str | bytes):
        return repr(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if isinstance(value, tuple | list):
        inner = ", ".join(describe_value(v) for v in value)
        if isinstance(value, list):
            return f"[{inner}]"
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, np.dtype):
        return f"dtype {value}"
    if isinstance(value, np.ndarray | np.generic):
        return f"array({np.asarray(value).tolist()!r}, {value.dtype})"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    if callable(value):
        name = function_name(value)
        if name is not None:
            return f"function {name}"
        module = getattr(value, "__module__", None) or "?"
        qualname = getattr(value, "__qualname__", None) or type(value).__qualname__
        return f"function {module}.{qualname}"
    text = repr(value)
    if " at 0x" in text:
        return f"{type(value).__module__}.{type(value).__qualname__} object"
    return text


def _children(node: object) -> list[tuple[str, object]] | None:
    """The children of a pytree node with their path suffixes, or None if
    ``node`` is a leaf. ``None`` children are kept (they are part of the
    structure)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(
        node, is_leaf=lambda y: y is not node
    )
    if len(flat) == 1 and flat[0][0] == () and flat[0][1] is node:
        return None
    return [(jax.tree_util.keystr(path), child) for path, child in flat]


def _type_name(node: object) -> str:
    cls = type(node)
    return f"type {cls.__module__}.{cls.__qualname__}"


def _walk(node: object, path: str) -> Iterator[tuple[str, str] | LeafInfo]:
    if node is None:
        yield (path, "None")
        return
    if is_array_leaf(node):
        yield leaf_info(path, node)
        return
    children = _children(node)
    if children is None:
        yield leaf_info(path, node)
        return
    yield (path, _type_name(node))
    statics: list[str] = []
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = dataclasses.fields(node)
        statics = [f.name for f in fields if f.metadata.get("static", False)]
        dynamic = [f".{f.name}" for f in fields if f.name not in statics]
        if [suffix for suffix, _ in children] == [
            suffix for suffix in dynamic if suffix in dict(children)
        ]:
            # Flattened in declaration order (as Equinox modules are): static
            # fields where they are declared, leaves still in flatten order.
            rest = dict(children)
            for f in fields:
                if f.name in statics:
                    yield _static(node, path, f.name)
                elif f".{f.name}" in rest:
                    yield from _walk(rest[f".{f.name}"], f"{path}.{f.name}")
            return
    for name in statics:
        yield _static(node, path, name)
    for suffix, child in children:
        yield from _walk(child, path + suffix)


def _static(node: object, path: str, name: str) -> tuple[str, str]:
    return (f"{path}.{name}", f"static {describe_value(getattr(node, name, None))}")


def describe(tree: PyTree) -> Structure:
    """Describe ``tree``: the type of every node, the value of every static
    field of its dataclasses (Equinox modules), and every leaf's path, shape
    and dtype. A leaf that is not an array (a Python scalar) is described by
    its type."""
    return Structure(tuple(_walk(tree, "")))


def _keyed(structure: Structure) -> dict[tuple[str, str], str]:
    """Every entry's text by ``(kind, path)``, in depth-first order."""
    return {
        ("leaf", item.path) if isinstance(item, LeafInfo) else ("node", item[0]): (
            item.show() if isinstance(item, LeafInfo) else item[1]
        )
        for item in structure.items
    }


def first_difference(
    saved: Structure, given: Structure, *, batch_shape: tuple[int, ...] = ()
) -> str | None:
    """The first difference between a saved structure and a given one, in the
    saved structure's depth-first order, as text naming the path and both
    sides (None if they agree). Leaves are compared by path, shape and dtype
    only, never by value. ``batch_shape`` (the saved leaves' leading batch
    axes) only explains a difference of batch axes."""
    saved_items = _keyed(saved)
    given_items = _keyed(given)
    for (kind, path), text in saved_items.items():
        other = given_items.get((kind, path))
        if other is None:
            other = given_items.get(("leaf" if kind == "node" else "node", path))
        if other is None:
            return f"{path}: the file has {text}; the given structure has no {path}"
        if other != text:
            hint = _batch_hint(saved, given, path, batch_shape)
            return f"{path}: the file has {text}; the given structure has {other}{hint}"
    for (kind, path), text in given_items.items():
        twin = ("leaf" if kind == "node" else "node", path)
        if (kind, path) not in saved_items and twin not in saved_items:
            return f"{path}: the given structure has {text}; the file has no {path}"
    return None


def _batch_hint(
    saved: Structure, given: Structure, path: str, batch_shape: tuple[int, ...]
) -> str:
    if not batch_shape:
        return ""
    mine = {leaf.path: leaf for leaf in saved.leaves}.get(path)
    theirs = {leaf.path: leaf for leaf in given.leaves}.get(path)
    if mine is None or theirs is None or mine.dtype != theirs.dtype:
        return ""
    if mine.shape == batch_shape + theirs.shape:
        return (
            f" (the file holds a batch of runs of batch shape {batch_shape}; "
            "give a structure with the same batch axes)"
        )
    return ""


# -- pickled skeletons -----------------------------------------------------------


class _Pickler(pickle.Pickler):
    """Pickles the functions ``function_name`` knows by name (``jax.nn.relu``
    is a wrapper that plain pickle cannot find under its own name)."""

    def persistent_id(self, obj: object) -> str | None:  # noqa: D102
        if isinstance(obj, type):
            return None
        return function_name(obj) if callable(obj) else None


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: object) -> object:  # noqa: D102
        if not isinstance(pid, str):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        try:
            return resolve_function(pid)
        except ValueError as err:
            raise pickle.UnpicklingError(str(err)) from None


def pickle_skeleton(tree: PyTree) -> bytes:
    """Pickle ``tree`` (whose array leaves are ``jax.ShapeDtypeStruct``), with
    functions of ``jax.nn``/``jax.numpy``/``jax.lax`` by name.

    Raises:
        Exception: whatever pickle raises for an object it cannot pickle (a
            lambda, a class that is not importable).
    """
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(tree)
    return buffer.getvalue()


def unpickle_skeleton(data: bytes) -> PyTree:
    """Read ``pickle_skeleton``'s bytes back. Unpickling runs code named in
    the data: only for files one trusts."""
    return _Unpickler(io.BytesIO(data)).load()


def skeleton(tree: PyTree) -> PyTree:
    """``tree`` with every array leaf replaced by its ``jax.ShapeDtypeStruct``."""

    def shape_of(x: object) -> object:
        if isinstance(x, jax.Array | np.ndarray | np.generic):
            return jax.ShapeDtypeStruct(x.shape, x.dtype)  # type: ignore[no-untyped-call]  # jax leaves ShapeDtypeStruct.__init__ unannotated
        return x

    return jax.tree.map(shape_of, tree)


def paths_and_leaves(tree: PyTree) -> list[tuple[str, object]]:
    """``(keystr(path), leaf)`` for every leaf of ``tree``, in order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in flat]


@functools.cache
def versions() -> dict[str, str]:
    """The versions of Lerax, JAX and Equinox, for file headers."""
    from importlib.metadata import version

    import equinox as eqx

    return {
        "lerax_version": version("lerax"),
        "jax_version": jax.__version__,
        "equinox_version": eqx.__version__,
    }
