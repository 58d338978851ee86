"""The abstract space."""

import abc
from typing import Generic, TypeVar

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float

from .._custom_types import Key

ElementT_co = TypeVar("ElementT_co", covariant=True)


class AbstractSpace(eqx.Module, Generic[ElementT_co]):
    """A set of values an environment observes or accepts.

    A space is an immutable Equinox module. Everything that changes its trace
    (shapes, dtypes, sizes, bounds) is static, hashable Python data, so two
    equal spaces are equal, hash equal and give the same compiled program
    (passing an equal space to a ``filter_jit``-ed function does not retrace).
    All methods are pure and jittable, and ``sample``/``contains``/``flatten``
    work under ``jax.vmap``.

    The element type parameter is covariant, so spaces compose: a ``Box`` (an
    ``AbstractSpace[Array]``) is an ``AbstractSpace[object]`` and can sit in a
    [`Tuple`][lerax.space.Tuple] beside any other space. The price is that
    [`flatten`][lerax.space.AbstractSpace.flatten] trusts its argument's static type; at
    run time jaxtyping checks it.
    """

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, ...]:
        """The shape of one element (``()`` for composite spaces)."""

    @property
    @abc.abstractmethod
    def dtype(self) -> np.dtype[np.generic] | None:
        """The dtype of one element (``None`` for composite spaces)."""

    @property
    @abc.abstractmethod
    def flat_size(self) -> int:
        """The length of [`flatten`][lerax.space.AbstractSpace.flatten]'s output.

        Equal to ``gymnasium.spaces.flatdim`` of the corresponding Gymnasium
        space.
        """

    @abc.abstractmethod
    def sample(self, *, key: Key) -> ElementT_co:
        """Draw one element.

        Bounded components are drawn uniformly; each space documents its
        distribution otherwise. The result is always contained in the space,
        and the same ``key`` always gives the same element. Jittable and
        vmappable over ``key``.
        """

    @abc.abstractmethod
    def contains(self, x: object) -> Bool[Array, ""]:
        """Whether ``x`` is an element of the space, as a traced boolean scalar.

        Anything that is not an element gives ``False``; nothing raises. In
        particular a value of the wrong shape, the wrong dtype kind or the
        wrong pytree structure is not contained. Shape, dtype and structure are
        decided at trace time, values at run time, so ``contains`` is jittable
        and vmappable. Arrays (JAX or numpy) and Python scalars are accepted for
        array spaces; each space documents which dtypes it accepts.
        """

    @abc.abstractmethod
    def flatten(
        self,
        x: ElementT_co,  # type: ignore[misc]  # pyright: ignore[reportGeneralTypeIssues]  # covariant on purpose, see the class docstring
    ) -> Float[Array, " size"]:
        """Map an element to a float vector of length
        [`flat_size`][lerax.space.AbstractSpace.flat_size].

        The vector has JAX's default float dtype (``float32`` unless
        ``jax_enable_x64`` is set). Continuous and binary components are copied
        (raveled in C order); discrete components are one-hot encoded.
        Composite spaces concatenate their parts in order (``Dict``: sorted
        keys). The layout is the one of ``gymnasium.spaces.flatten``.
        """

    @abc.abstractmethod
    def unflatten(self, v: Float[Array, " size"]) -> ElementT_co:
        """Invert [`flatten`][lerax.space.AbstractSpace.flatten]:
        ``unflatten(flatten(x))`` equals ``x``.

        One-hot components decode by argmax, binary components by ``v > 0.5``
        and integer components by rounding, so a slightly perturbed vector
        still maps to the nearest element (bounds are not enforced).
        """
