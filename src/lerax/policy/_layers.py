"""Building blocks shared by the MLP policies: the affine layer, its batched
orthogonal initialisation, MLPs, the twin Q critic and argument checks."""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, final, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import numpy.typing as npt
from jaxtyping import Array, Float

from .._custom_types import Key
from ..space import AbstractSpace, Box
from ._base import AbstractTwinQCritic

ObsT = TypeVar("ObsT")
ObsT_co = TypeVar("ObsT_co", covariant=True)
ActT_co = TypeVar("ActT_co", covariant=True)

Activation = Callable[[Float[Array, " n"]], Float[Array, " n"]]

HIDDEN_GAIN = math.sqrt(2.0)
POLICY_GAIN = 0.01
VALUE_GAIN = 1.0


@runtime_checkable
class _HasSpaces(Protocol[ObsT_co, ActT_co]):
    """Anything with an observation and an action space, e.g. an ``AbstractEnv``."""

    @property
    def observation_space(self) -> AbstractSpace[ObsT_co]: ...

    @property
    def action_space(self) -> AbstractSpace[ActT_co]: ...


@final
class _Linear(eqx.Module):
    """An affine layer ``x @ weight + bias``.

    The weight is stored ``(in, out)`` (as in Flax and Haiku): under ``vmap`` the
    batched product is then a plain ``(batch, in) @ (in, out)``, which XLA's CPU
    backend runs faster, gradients included, than ``weight @ x`` with an
    ``(out, in)`` weight.
    """

    weight: Float[Array, "i o"]
    bias: Float[Array, " o"]

    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        return x @ self.weight + self.bias


@functools.partial(jax.jit, static_argnames=("shapes", "gains"))
def _orthogonal_layers(
    key: Key, shapes: tuple[tuple[int, int], ...], gains: tuple[float, ...]
) -> tuple[_Linear, ...]:
    """Layers with orthogonal weights times their gains and zero biases, one per
    ``(out, in)`` shape (stored transposed, see ``_Linear``).

    As ``torch.nn.init.orthogonal_`` (Stable-Baselines3, CleanRL): an
    ``(out, in)`` weight has orthonormal rows when ``out <= in`` and orthonormal
    columns otherwise. Each weight is made of the first ``min(out, in)`` columns
    of its own Haar-random ``n x n`` orthogonal matrix, ``n = max(out, in)``;
    those columns are Haar-distributed with orthonormal columns. All matrices
    come from one Gaussian draw, and those of one size from one batched QR, in
    one compiled program (cached per architecture): about a quarter of the
    compilation of a draw and a QR per layer, which is what a user waits for
    when building the first policy of a process. A policy builds all its layers
    with one call (two calls under ``jit(vmap(...))`` could hang JAX 0.10.2's
    CPU runtime; BENCHMARKS.md).
    """
    sizes = sorted({max(shape) for shape in shapes})
    groups = [[j for j, shape in enumerate(shapes) if max(shape) == n] for n in sizes]
    # One flat draw for everything: a 1-D draw compiles several times faster
    # than a batched or multi-dimensional one.
    total = sum(len(g) * n * n for n, g in zip(sizes, groups, strict=True))
    gaussian = jr.normal(key, (total,), jnp.float32)
    layers: dict[int, _Linear] = {}
    offset = 0
    for n, members in zip(sizes, groups, strict=True):
        count = len(members) * n * n
        block = gaussian[offset : offset + count].reshape(len(members), n, n)
        offset += count
        q, r = jnp.linalg.qr(block)
        # Make the decomposition unique (diag(r) > 0), hence Q Haar-distributed.
        q = q * jnp.sign(jnp.diagonal(r, axis1=-2, axis2=-1))[:, None, :]
        for b, j in enumerate(members):
            out_size, in_size = shapes[j]
            columns = q[b, :, : min(out_size, in_size)]  # (max, min)
            stored = columns if out_size < in_size else columns.T  # (in, out)
            bias = jnp.zeros((out_size,), jnp.float32)
            layers[j] = _Linear(gains[j] * stored, bias)
    return tuple(layers[j] for j in range(len(shapes)))


@final
class _Torso(eqx.Module):
    """Hidden layers, each followed by the activation (identity if none)."""

    layers: tuple[_Linear, ...]
    activation: Activation = eqx.field(static=True)

    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        for layer in self.layers:
            x = self.activation(layer(x))
        return x


@final
class _MLP(eqx.Module):
    """A torso and a linear output head."""

    torso: _Torso
    head: _Linear

    def __call__(self, x: Float[Array, " i"]) -> Float[Array, " o"]:
        return self.head(self.torso(x))


def torso_shapes(in_size: int, sizes: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The ``(out, in)`` shapes of the hidden layers of an MLP."""
    return tuple(zip(sizes, (in_size, *sizes), strict=False))


@final
class _MLPTwinQCritic(AbstractTwinQCritic):
    """Two independent MLP Q-functions of ``concat(flat_observation,
    normalized_action)``, each with its own hidden layers and a scalar head."""

    q1: _MLP
    q2: _MLP

    def __call__(
        self,
        flat_observation: Float[Array, " o"],
        normalized_action: Float[Array, " a"],
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        x = jnp.concatenate([flat_observation, normalized_action])
        return self.q1(x)[0], self.q2(x)[0]


def twin_critic_plan(
    in_size: int, sizes: tuple[int, ...]
) -> tuple[tuple[tuple[int, int], ...], tuple[float, ...]]:
    """The layer shapes and gains of a twin critic on inputs of ``in_size``."""
    hidden = torso_shapes(in_size, sizes)
    feature_size = sizes[-1] if sizes else in_size
    one = (*hidden, (1, feature_size))
    gains = (*((HIDDEN_GAIN,) * len(hidden)), VALUE_GAIN)
    return one * 2, gains * 2


def twin_critic(layers: tuple[_Linear, ...], activation: Activation) -> _MLPTwinQCritic:
    """Assemble the layers made from ``twin_critic_plan`` into a critic."""
    half = len(layers) // 2
    q1 = _MLP(_Torso(layers[: half - 1], activation), layers[half - 1])
    q2 = _MLP(_Torso(layers[half:-1], activation), layers[-1])
    return _MLPTwinQCritic(q1, q2)


def check_observation_space(owner: str, observation_space: object) -> None:
    """Raise ``TypeError`` unless ``observation_space`` is a space."""
    if not isinstance(observation_space, AbstractSpace):
        raise TypeError(
            f"{owner}: env.observation_space must be an AbstractSpace, got "
            f"{observation_space!r}"
        )


def check_hidden_sizes(owner: str, hidden_sizes: Sequence[int]) -> tuple[int, ...]:
    """The hidden sizes as a tuple of ints; ``ValueError`` unless all are
    positive ints."""
    if not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0
        for s in hidden_sizes
    ):
        raise ValueError(
            f"{owner}: hidden_sizes must be positive ints, got "
            f"hidden_sizes={hidden_sizes!r}"
        )
    return tuple(int(s) for s in hidden_sizes)


def check_activation(owner: str, activation: object) -> None:
    """Raise ``TypeError`` unless ``activation`` is callable."""
    if not callable(activation):
        raise TypeError(
            f"{owner}: activation must be callable, got activation={activation!r}"
        )


def check_bounded_box(owner: str, action_space: object) -> Box:
    """The action space if it is a floating ``Box`` with finite bounds and
    ``low < high`` everywhere; ``TypeError`` or ``ValueError`` otherwise."""
    if not isinstance(action_space, Box):
        raise TypeError(
            f"{owner}: action_space must be a Box, got "
            f"{type(action_space).__name__}: {action_space!r}"
        )
    if not jnp.issubdtype(action_space.dtype, jnp.floating):
        raise TypeError(
            f"{owner}: a Box action space must have a floating dtype, got dtype "
            f"{action_space.dtype} in {action_space!r}"
        )
    if not np.all(action_space.bounded_below & action_space.bounded_above):
        raise ValueError(
            f"{owner}: action_space must have finite bounds (actions are squashed "
            f"into [low, high]), got action_space={action_space!r}"
        )
    low = action_space.low.astype(np.float64)
    high = action_space.high.astype(np.float64)
    if not np.all(low < high):
        raise ValueError(
            f"{owner}: action_space must have low < high everywhere, got "
            f"action_space={action_space!r}"
        )
    return action_space


def flatten_observation(
    owner: str, space: AbstractSpace[ObsT], observation: ObsT
) -> Float[Array, " size"]:
    """``space.flatten(observation)``, checked to have the space's flat size."""
    x = space.flatten(observation)
    if x.shape != (space.flat_size,):
        raise ValueError(
            f"{owner}: the observation flattens to shape {x.shape}, expected "
            f"({space.flat_size},) for observation_space={space!r}"
        )
    return x


def _box_constants(
    space: Box,
) -> tuple[npt.NDArray[np.float32], ...]:
    """The flat ``center``, ``half_range``, ``low`` and ``high`` of a bounded box,
    in float32. ``center`` and ``half_range`` are computed in float64 from the
    bounds, so neither overflows float32 for any finite float32 bounds."""
    low = space.low.astype(np.float64).ravel()
    high = space.high.astype(np.float64).ravel()
    center = ((low + high) / 2).astype(np.float32)
    half = ((high - low) / 2).astype(np.float32)
    return center, half, low.astype(np.float32), high.astype(np.float32)


def scale_to_box(
    owner: str, space: Box, normalized_action: Float[Array, " a"]
) -> Float[Array, "..."]:
    """Map a flat vector of ``[-1, 1]^a`` affinely onto ``space``'s bounds and
    reshape it to ``space.shape``; the result is clipped to ``[low, high]`` so
    that rounding never leaves the box."""
    size = space.flat_size
    if normalized_action.shape != (size,):
        raise ValueError(
            f"{owner}.scale_action: normalized_action must have shape ({size},), "
            f"got shape {normalized_action.shape} for action_space={space!r}"
        )
    _, _, low, high = _box_constants(space)
    t = (normalized_action.astype(jnp.float32) + 1) / 2
    # Exact at the corners (t = 0 or 1) and never overflowing, unlike
    # low + t * (high - low); clipped against rounding in between.
    flat = low * (1 - t) + high * t
    return jnp.reshape(jnp.clip(flat, low, high), space.shape)


def unscale_from_box(
    owner: str, space: Box, action: Float[Array, "..."]
) -> Float[Array, " a"]:
    """Invert ``scale_to_box``: the flat vector of ``[-1, 1]^a`` (for actions in
    the box) that maps to ``action``."""
    size = space.flat_size
    if action.size != size:
        raise ValueError(
            f"{owner}.unscale_action: action must have {size} elements (shape "
            f"{space.shape}), got shape {action.shape} for action_space={space!r}"
        )
    center, half, _, _ = _box_constants(space)
    return (jnp.ravel(action).astype(jnp.float32) - center) / half
