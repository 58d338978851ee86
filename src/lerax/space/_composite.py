"""Composite spaces: Tuple and Dict of other spaces."""

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Generic, TypeVar, final

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float

from .._custom_types import Key
from ._base import AbstractSpace
from ._utils import flat_dtype

ElementT = TypeVar("ElementT")


def _all(flags: Iterable[Bool[Array, ""]]) -> Bool[Array, ""]:
    return functools.reduce(jnp.logical_and, flags, jnp.array(True))


def _concat(parts: list[Float[Array, " _"]]) -> Float[Array, " size"]:
    if not parts:
        return jnp.zeros((0,), flat_dtype())
    return jnp.concatenate(parts)


def _split(
    v: Float[Array, " size"], spaces: tuple[AbstractSpace[object], ...]
) -> Iterator[Float[Array, " _"]]:
    offset = 0
    for space in spaces:
        yield v[offset : offset + space.flat_size]
        offset += space.flat_size


def _check_spaces(owner: str, names: list[str], spaces: Sequence[object]) -> None:
    for name, space in zip(names, spaces, strict=True):
        if not isinstance(space, AbstractSpace):
            raise TypeError(
                f"{owner}: every entry must be a lerax space (an AbstractSpace), "
                f"got {name}={space!r}"
            )


@final
class Tuple(AbstractSpace[tuple[ElementT, ...]], Generic[ElementT]):
    """The tuples ``(x_0, ..., x_{k-1})`` with ``x_i`` in ``spaces[i]``.

    Statically a ``Tuple[E]`` holds ``AbstractSpace[E]`` parts and has
    elements ``tuple[E, ...]``; type checkers infer ``E`` as the union (or
    join) of the parts' element types. Each part is sampled with its own key
    split from ``key``. ``contains`` accepts tuples and lists of the right
    length whose entries are contained in their parts. ``flatten``
    concatenates the parts' flat vectors. ``shape`` is ``()`` and ``dtype``
    ``None``.
    """

    spaces: tuple[AbstractSpace[ElementT], ...]

    def __init__(self, spaces: Iterable[AbstractSpace[ElementT]]):
        parts = list(spaces)
        _check_spaces("Tuple", [f"spaces[{i}]" for i in range(len(parts))], parts)
        self.spaces = tuple(parts)

    def __len__(self) -> int:
        return len(self.spaces)

    def __getitem__(self, index: int) -> AbstractSpace[ElementT]:
        return self.spaces[index]

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> np.dtype[np.generic] | None:
        return None

    @property
    def flat_size(self) -> int:
        return sum(space.flat_size for space in self.spaces)

    def sample(self, *, key: Key) -> tuple[ElementT, ...]:
        if not self.spaces:
            return ()
        keys = jr.split(key, len(self.spaces))
        return tuple(s.sample(key=k) for s, k in zip(self.spaces, keys, strict=True))

    def contains(self, x: object) -> Bool[Array, ""]:
        if not isinstance(x, tuple | list) or len(x) != len(self.spaces):  # pyright: ignore[reportUnknownArgumentType]  # any tuple or list is fine here
            return jnp.array(False)
        items: list[object] = list(x)  # pyright: ignore[reportUnknownArgumentType]  # checked by each part
        return _all(s.contains(xi) for s, xi in zip(self.spaces, items, strict=True))

    def flatten(self, x: tuple[ElementT, ...]) -> Float[Array, " size"]:
        if len(x) != len(self.spaces):
            raise ValueError(
                f"Tuple.flatten: expected a tuple of {len(self.spaces)} elements, "
                f"got {len(x)}"
            )
        return _concat([s.flatten(xi) for s, xi in zip(self.spaces, x, strict=True)])

    def unflatten(self, v: Float[Array, " size"]) -> tuple[ElementT, ...]:
        return tuple(
            s.unflatten(part)
            for s, part in zip(self.spaces, _split(v, self.spaces), strict=True)
        )


@final
class Dict(AbstractSpace[dict[str, ElementT]], Generic[ElementT]):
    """The dicts ``{k: x_k}`` with ``x_k`` in ``spaces[k]``, keys sorted.

    Keys are strings and are kept in sorted order, as Gymnasium's ``Dict``
    does for a mapping: ``sample`` and ``unflatten`` return dicts in that
    order and ``flatten`` concatenates the parts in that order. Statically a
    ``Dict[E]`` has elements ``dict[str, E]``. ``contains`` accepts mappings
    with exactly the space's keys whose values are contained in their parts.
    ``shape`` is ``()`` and ``dtype`` ``None``.
    """

    _keys: tuple[str, ...] = eqx.field(static=True)
    _spaces: tuple[AbstractSpace[ElementT], ...]

    def __init__(self, spaces: Mapping[str, AbstractSpace[ElementT]]):
        if not isinstance(spaces, Mapping):
            raise TypeError(
                f"Dict: spaces must be a mapping of str to spaces, got {spaces!r}"
            )
        for key in spaces:
            if not isinstance(key, str):
                raise TypeError(f"Dict: keys must be strings, got key {key!r}")
        keys = sorted(spaces)
        parts: list[AbstractSpace[ElementT]] = [spaces[k] for k in keys]
        _check_spaces("Dict", [f"spaces[{k!r}]" for k in keys], parts)
        self._keys = tuple(keys)
        self._spaces = tuple(parts)

    @property
    def spaces(self) -> Mapping[str, AbstractSpace[ElementT]]:
        """The parts by key, in sorted key order (a fresh dict)."""
        return dict(zip(self._keys, self._spaces, strict=True))

    def keys(self) -> tuple[str, ...]:
        """The keys, sorted."""
        return self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, key: str) -> AbstractSpace[ElementT]:
        try:
            return self._spaces[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    @property
    def dtype(self) -> np.dtype[np.generic] | None:
        return None

    @property
    def flat_size(self) -> int:
        return sum(space.flat_size for space in self._spaces)

    def sample(self, *, key: Key) -> dict[str, ElementT]:
        if not self._spaces:
            return {}
        keys = jr.split(key, len(self._spaces))
        return {
            name: s.sample(key=k)
            for name, s, k in zip(self._keys, self._spaces, keys, strict=True)
        }

    def contains(self, x: object) -> Bool[Array, ""]:
        if not isinstance(x, Mapping):
            return jnp.array(False)
        mapping: Mapping[object, object] = x  # pyright: ignore[reportUnknownVariableType]  # checked by each part
        if set(mapping.keys()) != set(self._keys):
            return jnp.array(False)
        return _all(
            s.contains(mapping[name])
            for name, s in zip(self._keys, self._spaces, strict=True)
        )

    def flatten(self, x: dict[str, ElementT]) -> Float[Array, " size"]:
        if set(x) != set(self._keys):
            raise ValueError(
                f"Dict.flatten: expected the keys {list(self._keys)}, got {sorted(x)}"
            )
        return _concat(
            [
                s.flatten(x[name])
                for name, s in zip(self._keys, self._spaces, strict=True)
            ]
        )

    def unflatten(self, v: Float[Array, " size"]) -> dict[str, ElementT]:
        parts = _split(v, self._spaces)
        return {
            name: s.unflatten(part)
            for name, s, part in zip(self._keys, self._spaces, parts, strict=True)
        }
