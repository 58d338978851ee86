"""A multilayer-perceptron actor-critic policy."""

import functools
import math
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, final, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Shaped

from .._custom_types import Key
from ..distribution import Categorical, Normal
from ..space import AbstractSpace, Box, Discrete
from ._base import AbstractActorCriticPolicy

ObsT = TypeVar("ObsT")
ObsT_co = TypeVar("ObsT_co", covariant=True)
ActT_co = TypeVar("ActT_co", covariant=True)

Activation = Callable[[Float[Array, " n"]], Float[Array, " n"]]

_HIDDEN_GAIN = math.sqrt(2.0)
_POLICY_GAIN = 0.01
_VALUE_GAIN = 1.0


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
    when building the first policy of a process.
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
class MLPActorCriticPolicy(AbstractActorCriticPolicy[ObsT, Shaped[Array, "..."]]):
    """An actor-critic policy made of multilayer perceptrons (PPO/A2C default).

    The observation is flattened with ``observation_space.flatten``. By default
    the actor and the critic are separate MLPs; with ``shared=True`` one torso
    feeds both heads. Weights are initialised orthogonally as in
    Stable-Baselines3 and CleanRL: gain ``sqrt(2)`` for hidden layers, ``0.01``
    for the action head, ``1`` for the value head, and zero biases.

    The action distribution depends on the action space:

    - ``Discrete(n)``: a [`Categorical`][lerax.distribution.Categorical] over ``n``
      logits; actions are int32 scalars in ``start, ..., start + n - 1``.
    - ``Box``: a diagonal [`Normal`][lerax.distribution.Normal] whose mean is the
      action head's output and whose ``log_std`` is a learnable vector that
      does not depend on the observation. Actions are float32 arrays of the
      box's shape, not clipped to its bounds (the training loop clips before
      stepping the environment).

    Any other action space raises ``TypeError``.

    Args:
        env: anything with ``observation_space`` and ``action_space``, such as an
            environment.
        key: the initialisation key.
        hidden_sizes: the width of each hidden layer (``()`` for linear heads).
        activation: the hidden activation; a static (non-trainable) function.
        shared: whether the actor and the critic share one torso.
        log_std_init: the initial value of every entry of ``log_std`` (Box only).
    """

    observation_space: AbstractSpace[ObsT]
    action_space: Discrete | Box
    actor_torso: _Torso
    critic_torso: _Torso | None
    action_head: _Linear
    value_head: _Linear
    log_std: Float[Array, " a"] | None
    shared: bool = eqx.field(static=True)

    def __init__(
        self,
        env: _HasSpaces[ObsT, Shaped[Array, "..."]],
        *,
        key: Key,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: Activation = jax.nn.tanh,
        shared: bool = False,
        log_std_init: float = 0.0,
    ):
        observation_space = env.observation_space
        action_space = env.action_space
        if not isinstance(observation_space, AbstractSpace):
            raise TypeError(
                "MLPActorCriticPolicy: env.observation_space must be an "
                f"AbstractSpace, got {observation_space!r}"
            )
        if isinstance(action_space, Discrete):
            action_size = action_space.n
        elif isinstance(action_space, Box):
            if not jnp.issubdtype(action_space.dtype, jnp.floating):
                raise TypeError(
                    "MLPActorCriticPolicy: a Box action space must have a floating "
                    f"dtype, got dtype {action_space.dtype} in {action_space!r}"
                )
            action_size = action_space.flat_size
        else:
            raise TypeError(
                "MLPActorCriticPolicy: action_space must be Discrete or Box, got "
                f"{type(action_space).__name__}: {action_space!r}"
            )
        if not all(
            isinstance(s, int | np.integer) and not isinstance(s, bool) and s > 0
            for s in hidden_sizes
        ):
            raise ValueError(
                "MLPActorCriticPolicy: hidden_sizes must be positive ints, got "
                f"hidden_sizes={hidden_sizes!r}"
            )
        sizes = tuple(int(s) for s in hidden_sizes)
        if not callable(activation):
            raise TypeError(
                "MLPActorCriticPolicy: activation must be callable, got "
                f"activation={activation!r}"
            )
        if not math.isfinite(log_std_init):
            raise ValueError(
                "MLPActorCriticPolicy: log_std_init must be finite, got "
                f"log_std_init={log_std_init!r}"
            )

        in_size = observation_space.flat_size
        feature_size = sizes[-1] if sizes else in_size
        torso_shapes = tuple(zip(sizes, (in_size, *sizes), strict=False))
        num_torsos = 1 if shared else 2
        shapes = (
            *(torso_shapes * num_torsos),
            (action_size, feature_size),
            (1, feature_size),
        )
        gains = (
            *((_HIDDEN_GAIN,) * (len(torso_shapes) * num_torsos)),
            _POLICY_GAIN,
            _VALUE_GAIN,
        )
        layers = _orthogonal_layers(key, shapes, gains)
        depth = len(torso_shapes)
        self.observation_space = observation_space
        self.action_space = action_space
        self.actor_torso = _Torso(layers[:depth], activation)
        self.critic_torso = (
            None if shared else _Torso(layers[depth : 2 * depth], activation)
        )
        self.action_head, self.value_head = layers[-2], layers[-1]
        self.log_std = (
            jnp.full((action_size,), log_std_init, jnp.float32)
            if isinstance(action_space, Box)
            else None
        )
        self.shared = shared

    def _forward(
        self, observation: ObsT
    ) -> tuple[Categorical | Normal, Float[Array, ""]]:
        """The action distribution (over flat actions) and the value."""
        x = self.observation_space.flatten(observation)
        if x.shape != (self.observation_space.flat_size,):
            raise ValueError(
                "MLPActorCriticPolicy: the observation flattens to shape "
                f"{x.shape}, expected ({self.observation_space.flat_size},) for "
                f"observation_space={self.observation_space!r}"
            )
        actor_features = self.actor_torso(x)
        critic_features = (
            actor_features if self.critic_torso is None else self.critic_torso(x)
        )
        value = self.value_head(critic_features)[0]
        out = self.action_head(actor_features)
        if self.log_std is None:
            return Categorical(out), value
        return Normal(out, self.log_std), value

    def _to_action(self, flat: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Map a sample of the distribution to an element of the action space."""
        space = self.action_space
        if isinstance(space, Discrete):
            return (flat + space.start).astype(jnp.int32)
        return jnp.reshape(flat, space.shape)

    def _from_action(self, action: Shaped[Array, "..."]) -> Shaped[Array, "..."]:
        """Invert ``_to_action``."""
        space = self.action_space
        if isinstance(space, Discrete):
            return jnp.asarray(action, jnp.int32) - space.start
        return jnp.ravel(action).astype(jnp.float32)

    def __call__(
        self, observation: ObsT, *, key: Key | None = None
    ) -> Shaped[Array, "..."]:
        """Sample an action with ``key``; the distribution's mode when ``None``."""
        dist, _ = self._forward(observation)
        flat = dist.mode() if key is None else dist.sample(key=key)
        return self._to_action(flat)

    def action_and_value(
        self, observation: ObsT, *, key: Key
    ) -> tuple[Shaped[Array, "..."], Float[Array, ""], Float[Array, ""]]:
        """Sample an action; return ``(action, log_prob(action), value)``."""
        dist, value = self._forward(observation)
        flat = dist.sample(key=key)
        return self._to_action(flat), dist.log_prob(flat), value

    def evaluate_action(
        self, observation: ObsT, action: Shaped[Array, "..."]
    ) -> tuple[Float[Array, ""], Float[Array, ""], Float[Array, ""]]:
        """Return ``(log_prob(action), entropy, value)``."""
        dist, value = self._forward(observation)
        flat = self._from_action(action)
        return dist.log_prob(flat), dist.entropy(), value

    def value(self, observation: ObsT) -> Float[Array, ""]:
        """The state-value estimate of ``observation``."""
        _, value = self._forward(observation)
        return value
