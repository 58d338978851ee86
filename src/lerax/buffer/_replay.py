"""A circular replay buffer of transitions for off-policy algorithms."""

import math
from typing import final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int, PyTree, Shaped

from .._custom_types import ArrayTree, Key


def _check_positive_int(where: str, name: str, value: object) -> int:
    """Return ``value`` if it is a positive Python int (not a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{where}: {name} must be a positive Python int, got {value!r} "
            f"of type {type(value).__name__}"
        )
    if value < 1:
        raise ValueError(f"{where}: {name} must be a positive int (>= 1), got {value}")
    return value


def _equal(a: object, b: object) -> bool:
    """``a == b`` for values whose stubs leave ``==`` untyped (``PyTreeDef``)."""
    return bool(a == b)


def _check_leaves(
    where: str,
    name: str,
    got: PyTree[Shaped[Array, "..."]],
    stored: PyTree[Shaped[Array, "capacity ..."]],
    n: int,
) -> None:
    """Raise unless ``got`` has ``stored``'s structure, dtypes and per-slot shapes,
    with leading axis ``n`` instead of ``capacity``.

    Checked at trace time, so a batch that would be silently cast or
    broadcast into the buffer is an error instead.
    """
    got_leaves, got_def = jax.tree_util.tree_flatten_with_path(got)
    stored_leaves, stored_def = jax.tree_util.tree_flatten_with_path(stored)
    if not _equal(got_def, stored_def):
        raise TypeError(
            f"{where}: {name} must have the pytree structure of the buffer's "
            f"example, {stored_def}, got {got_def}"
        )
    for (path, g), (_, s) in zip(got_leaves, stored_leaves, strict=True):
        expected_shape = (n, *s.shape[1:])
        if g.shape != expected_shape:
            raise ValueError(
                f"{where}: {name}{jax.tree_util.keystr(path)} must have shape "
                f"{expected_shape} (batch size {n}, then the example's shape), "
                f"got {g.shape}"
            )
        if g.dtype != s.dtype:
            raise TypeError(
                f"{where}: {name}{jax.tree_util.keystr(path)} must have the "
                f"example's dtype {s.dtype}, got {g.dtype}"
            )


def _take(
    tree: PyTree[Shaped[Array, "capacity ..."]], indices: Int[Array, " batch"]
) -> PyTree[Shaped[Array, "batch ..."]]:
    return jax.tree.map(lambda leaf: leaf[indices], tree)


def _put(
    tree: PyTree[Shaped[Array, "capacity ..."]],
    indices: Int[Array, " n"],
    values: PyTree[Shaped[Array, "n ..."]],
) -> PyTree[Shaped[Array, "capacity ..."]]:
    return jax.tree.map(lambda leaf, v: leaf.at[indices].set(v), tree, values)


@final
class Transition(eqx.Module):
    """A batch of transitions, leading axis ``batch``, as
    [`ReplayBuffer.sample`][lerax.buffer.ReplayBuffer.sample] returns them.

    Attributes:
        observations: the observations actions were chosen on.
        actions: the actions taken.
        rewards: raw environment rewards.
        terminated: the episode reached a terminal state at this step (do not
            bootstrap from ``next_observations``).
        truncated: the episode was cut short at this step (bootstrap from
            ``next_observations``).
        next_observations: the true observation each step led to, before any
            automatic reset.
    """

    observations: PyTree[Shaped[Array, "batch ..."]]
    actions: PyTree[Shaped[Array, "batch ..."]]
    rewards: Float[Array, " batch"]
    terminated: Bool[Array, " batch"]
    truncated: Bool[Array, " batch"]
    next_observations: PyTree[Shaped[Array, "batch ..."]]


@final
class ReplayBuffer(eqx.Module):
    """A fixed-capacity circular buffer of transitions, pure and jittable.

    Every field has a leading ``capacity`` axis except the counters. Adding
    returns a new buffer; when the buffer is full, new transitions overwrite
    the oldest. The buffer lives in an algorithm's state inside the compiled
    training program, so ``add`` and ``sample`` are jittable, work as a
    ``lax.scan`` carry and vmap over runs (``eqx.filter_vmap``: one buffer per
    seed).

    ``terminated`` and ``truncated`` are stored apart and ``next_observations``
    is the true next observation (the final one of an episode, not the first
    of the next), so a learner can bootstrap through time limits but not
    through terminal states.

    Build one with [`ReplayBuffer.empty`][lerax.buffer.ReplayBuffer.empty].

    Attributes:
        observations: the observations actions were chosen on.
        actions: the actions taken.
        rewards: raw environment rewards.
        terminated: the episode reached a terminal state at this step.
        truncated: the episode was cut short (time limit) at this step.
        next_observations: the observation each step led to, before any
            automatic reset.
        position: the slot the next transition is written to.
        size: how many slots hold transitions, at most ``capacity``; they are
            slots ``[0, size)``.
        capacity: how many transitions the buffer holds (static).
    """

    observations: PyTree[Shaped[Array, "capacity ..."]]
    actions: PyTree[Shaped[Array, "capacity ..."]]
    rewards: Float[Array, " capacity"]
    terminated: Bool[Array, " capacity"]
    truncated: Bool[Array, " capacity"]
    next_observations: PyTree[Shaped[Array, "capacity ..."]]
    position: Int[Array, ""]
    size: Int[Array, ""]
    capacity: int = eqx.field(static=True)

    def __check_init__(self) -> None:
        _check_positive_int("ReplayBuffer", "capacity", self.capacity)
        for name in (
            "observations",
            "actions",
            "rewards",
            "terminated",
            "truncated",
            "next_observations",
        ):
            leaves, _ = jax.tree_util.tree_flatten_with_path(getattr(self, name))
            for path, leaf in leaves:
                if leaf.ndim == 0 or leaf.shape[0] != self.capacity:
                    raise ValueError(
                        f"ReplayBuffer: {name}{jax.tree_util.keystr(path)} must "
                        f"have leading axis capacity={self.capacity}, got shape "
                        f"{leaf.shape}"
                    )

    @classmethod
    def empty(
        cls, capacity: int, observation: ArrayTree, action: ArrayTree
    ) -> "ReplayBuffer":
        """An empty buffer for ``capacity`` transitions.

        Arrays are zero-filled with the shapes and dtypes of the examples
        (e.g. ``env.reset(key=...)[1]`` and ``env.action_space.sample(key=...)``),
        so the buffer matches what the environment and policy produce. Rewards
        are stored in the default float dtype.

        Args:
            capacity: how many transitions to hold, a positive Python int.
            observation: one observation (a pytree of arrays).
            action: one action (a pytree of arrays).

        Raises:
            TypeError: ``capacity`` is not a Python int (or is a bool).
            ValueError: ``capacity`` is less than 1.
        """
        capacity = _check_positive_int("ReplayBuffer.empty", "capacity", capacity)

        def zeros(x: Shaped[Array, "..."]) -> Shaped[Array, "capacity ..."]:
            return jnp.zeros((capacity, *x.shape), dtype=x.dtype)

        return cls(
            observations=jax.tree.map(zeros, observation),
            actions=jax.tree.map(zeros, action),
            rewards=jnp.zeros((capacity,), dtype=float),
            terminated=jnp.zeros((capacity,), dtype=bool),
            truncated=jnp.zeros((capacity,), dtype=bool),
            next_observations=jax.tree.map(zeros, observation),
            position=jnp.zeros((), dtype=int),
            size=jnp.zeros((), dtype=int),
            capacity=capacity,
        )

    @property
    def nbytes(self) -> int:
        """The memory the buffer's arrays take, in bytes.

        ``capacity x (observation + action + next observation + 3 scalars)``
        bytes, the scalars being the reward and the two flags, plus the two
        integer counters. A buffer vmapped over runs holds that many bytes for
        each run, and ``nbytes`` of the batched buffer counts them all (every
        leaf carries the runs axis). Static: readable under ``jit``.
        """
        return sum(
            math.prod(leaf.shape) * leaf.dtype.itemsize
            for leaf in jax.tree.leaves(self)
        )

    def add(
        self,
        observations: PyTree[Shaped[Array, "n ..."]],
        actions: PyTree[Shaped[Array, "n ..."]],
        rewards: Float[Array, " n"],
        terminated: Bool[Array, " n"],
        truncated: Bool[Array, " n"],
        next_observations: PyTree[Shaped[Array, "n ..."]],
    ) -> "ReplayBuffer":
        """Write a batch of ``n`` transitions, returning the new buffer.

        Every argument has the leading batch axis ``n`` (flatten a rollout's
        ``[num_steps, num_envs]`` axes first); the batch's order is the
        insertion order, so its last transitions are the newest. They go to
        slots ``(position + arange(n)) % capacity``, overwriting the oldest
        when the buffer is full. Observations, actions and next observations
        must have the examples' structure, per-transition shapes and dtypes;
        rewards are cast to the buffer's float dtype.

        Args:
            observations: the observations actions were chosen on.
            actions: the actions taken.
            rewards: raw rewards.
            terminated: the episode reached a terminal state.
            truncated: the episode was cut short.
            next_observations: the true next observations, before any reset.

        Raises:
            ValueError: ``n`` is greater than ``capacity`` (the batch would
                overwrite itself), or a shape does not match. Raised at trace
                time.
            TypeError: a structure or dtype does not match the examples.
        """
        n = rewards.shape[0]
        if n > self.capacity:
            raise ValueError(
                f"ReplayBuffer.add: batch of n={n} transitions is larger than "
                f"capacity={self.capacity}; add at most capacity transitions at once"
            )
        _check_leaves(
            "ReplayBuffer.add", "observations", observations, self.observations, n
        )
        _check_leaves("ReplayBuffer.add", "actions", actions, self.actions, n)
        _check_leaves(
            "ReplayBuffer.add",
            "next_observations",
            next_observations,
            self.next_observations,
            n,
        )
        for name, flags in (("terminated", terminated), ("truncated", truncated)):
            if flags.shape != (n,):
                raise ValueError(
                    f"ReplayBuffer.add: {name} must have shape ({n},) like rewards, "
                    f"got {flags.shape}"
                )
            if flags.dtype != jnp.bool_:
                raise TypeError(
                    f"ReplayBuffer.add: {name} must have dtype bool, got {flags.dtype}"
                )
        indices = (self.position + jnp.arange(n)) % self.capacity
        return ReplayBuffer(
            observations=_put(self.observations, indices, observations),
            actions=_put(self.actions, indices, actions),
            rewards=self.rewards.at[indices].set(rewards.astype(self.rewards.dtype)),
            terminated=self.terminated.at[indices].set(terminated),
            truncated=self.truncated.at[indices].set(truncated),
            next_observations=_put(self.next_observations, indices, next_observations),
            position=(self.position + n) % self.capacity,
            size=jnp.minimum(self.size + n, self.capacity),
            capacity=self.capacity,
        )

    def sample(self, batch_size: int, *, key: Key) -> Transition:
        """Draw ``batch_size`` transitions uniformly, with replacement, from the
        filled slots ``[0, size)``.

        Sampling an empty buffer returns copies of slot 0, which holds zeros;
        callers gate updates on a number of stored steps (``learning_starts``)
        instead of branching on ``size`` inside the compiled program.

        Args:
            batch_size: how many transitions, a positive Python int.
            key: the random key.

        Raises:
            TypeError: ``batch_size`` is not a Python int (or is a bool).
            ValueError: ``batch_size`` is less than 1.
        """
        _check_positive_int("ReplayBuffer.sample", "batch_size", batch_size)
        indices = jr.randint(
            key, (batch_size,), minval=0, maxval=jnp.maximum(self.size, 1)
        )
        return Transition(
            observations=_take(self.observations, indices),
            actions=_take(self.actions, indices),
            rewards=self.rewards[indices],
            terminated=self.terminated[indices],
            truncated=self.truncated[indices],
            next_observations=_take(self.next_observations, indices),
        )
