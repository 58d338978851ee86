"""The abstract space."""

import abc
from typing import Generic, TypeVar

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Float

from .._custom_types import Key

ElementT = TypeVar("ElementT")


class AbstractSpace(eqx.Module, Generic[ElementT]):
    """A set of values an environment observes or accepts.

    A space is an immutable Equinox module. Everything that changes its trace
    (shapes, dtypes, sizes) is static Python data, so two equal spaces give the
    same compiled program. All methods are pure and jittable.
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
        """The length of :meth:`flatten`'s output."""

    @abc.abstractmethod
    def sample(self, *, key: Key) -> ElementT:
        """Draw one element uniformly (or from a documented distribution)."""

    @abc.abstractmethod
    def contains(self, x: ElementT) -> Bool[Array, ""]:
        """Whether ``x`` is an element of the space, as a traced boolean.

        A value of the wrong shape is not contained (``False``), it does not raise.
        """

    @abc.abstractmethod
    def flatten(self, x: ElementT) -> Float[Array, " size"]:
        """Map an element to a float vector of length :attr:`flat_size`.

        Discrete components are one-hot encoded.
        """

    @abc.abstractmethod
    def unflatten(self, v: Float[Array, " size"]) -> ElementT:
        """Invert :meth:`flatten` (one-hot components decode by argmax)."""
