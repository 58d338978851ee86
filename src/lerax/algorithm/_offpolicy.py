"""What the off-policy algorithms (DQN, SAC, TD3) share: their checks, filling
the replay buffer from a rollout, the gate on ``learning_starts``, Polyak
averaging and their optimizers."""

import math
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Bool, Float, PyTree

from .._custom_types import Key
from ..buffer import ReplayBuffer
from ..env import AbstractEnv
from ..policy import AbstractSACPolicy, AbstractTD3Policy
from ..space import Box
from ._finite import all_finite, keep_if
from ._rollout import Rollout


@runtime_checkable
class _WithBuffer(Protocol):
    """An algorithm state holding a replay buffer."""

    @property
    def buffer(self) -> ReplayBuffer: ...


M = TypeVar("M")
P = TypeVar("P")
S = TypeVar("S", bound=_WithBuffer)


def check_replay(
    owner: str,
    *,
    buffer_size: int,
    learning_starts: object,
    batch_size: int,
    steps_per_iteration: int | None = None,
) -> None:
    """Raise ``ValueError`` unless the replay settings fit the buffer.

    ``learning_starts`` is a non-negative int at most ``buffer_size``;
    ``batch_size`` and, when given, the ``steps_per_iteration = num_envs *
    num_steps`` transitions one iteration adds are at most ``buffer_size``
    (DQN checks the last itself: its message spells out the product)."""
    if (
        isinstance(learning_starts, bool)
        or not isinstance(learning_starts, int)
        or learning_starts < 0
    ):
        raise ValueError(
            f"{owner}: learning_starts must be a non-negative int, got "
            f"learning_starts={learning_starts!r}"
        )
    if learning_starts > buffer_size:
        raise ValueError(
            f"{owner}: learning_starts={learning_starts} is larger than "
            f"buffer_size={buffer_size}; learning_starts must be at most buffer_size"
        )
    if batch_size > buffer_size:
        raise ValueError(
            f"{owner}: batch_size={batch_size} is larger than "
            f"buffer_size={buffer_size}; batch_size must be at most buffer_size"
        )
    if steps_per_iteration is not None and steps_per_iteration > buffer_size:
        raise ValueError(
            f"{owner}: one iteration adds num_envs * num_steps = {steps_per_iteration} "
            f"transitions, more than buffer_size={buffer_size}; it must add at most "
            "buffer_size"
        )


def check_box_env(owner: str, env: AbstractEnv[Any, Any, Any]) -> Box:
    """``env.action_space`` if it is a ``Box``; ``TypeError`` otherwise."""
    space = env.action_space
    if not isinstance(space, Box):
        raise TypeError(
            f"{owner}: env.action_space must be a Box (continuous actions), got "
            f"{type(space).__name__}: {space!r} for env {env.name}"
        )
    return space


def check_run_length(
    owner: str,
    learning_starts: int,
    batch_size: int,
    num_iterations: int,
    steps_per_iteration: int,
) -> None:
    """Raise ``ValueError`` if the run ends before ``learning_starts`` steps
    (it would never learn) or holds fewer transitions than one batch (every
    batch would repeat transitions)."""
    run = num_iterations * steps_per_iteration
    steps = f"{num_iterations} iterations of {steps_per_iteration} steps = {run}"
    if learning_starts > run:
        raise ValueError(
            f"{owner}: learning_starts={learning_starts} is larger than the run: "
            f"{steps} environment steps, so it would never learn; learning_starts "
            "must be at most the run's environment steps"
        )
    if batch_size > run:
        raise ValueError(
            f"{owner}: batch_size={batch_size} is larger than the run: {steps} "
            "environment steps, so no batch could be drawn without repeating "
            "transitions; batch_size must be at most the run's environment steps"
        )


def add_rollout(buffer: ReplayBuffer, rollout: Rollout) -> ReplayBuffer:
    """``buffer`` with the rollout's transitions, its ``[num_steps, num_envs]``
    axes flattened step by step (so insertion order is the order they happened)."""
    steps, envs = rollout.rewards.shape

    def flat(tree: Any) -> Any:
        return jax.tree.map(lambda x: x.reshape((steps * envs, *x.shape[2:])), tree)

    return buffer.add(
        flat(rollout.observations),
        flat(rollout.actions),
        flat(rollout.rewards),
        flat(rollout.terminated),
        flat(rollout.truncated),
        flat(rollout.next_observations),
    )


def ready_to_learn(
    rollout: Rollout, steps_per_iteration: int, learning_starts: int
) -> Bool[Array, ""]:
    """Whether this iteration updates: the run has taken ``learning_starts``
    environment steps once this rollout's are counted."""
    return rollout.timesteps + steps_per_iteration >= learning_starts


Ok = Bool[Array, ""] | None
"""A guarded update's "everything so far was finite" (``None``: unguarded)."""


def rollout_ok(rollout: Rollout, guard: bool) -> Ok:
    """For a guarded update (``guard``), whether the rollout's rewards and
    observations are all finite; ``None`` otherwise."""
    if not guard:
        return None
    return all_finite(
        (rollout.rewards, rollout.observations, rollout.next_observations)
    )


def replay_update(
    policy: P,
    state: S,
    rollout: Rollout,
    step: Callable[[P, S, Key, Ok], tuple[P, S, Float[Array, " stats"], Ok]],
    *,
    key: Key,
    num_stats: int,
    gradient_steps: int,
    steps_per_iteration: int,
    learning_starts: int,
    guard: bool,
) -> tuple[P, S, Float[Array, " stats"], Ok]:
    """One iteration's update of SAC or TD3: the rollout added to
    ``state.buffer``, then ``gradient_steps`` calls of ``step`` (a
    ``lax.scan``, their keys ``jr.split(key, gradient_steps)``), skipped by a
    ``lax.cond`` until [`ready_to_learn`][]. Returns the new policy and state,
    the mean of ``step``'s ``num_stats`` statistics (zeros if skipped) and,
    when ``guard``, whether the rollout and every step were finite (each
    step takes the flag so far and stops changing anything once it is
    false; see ``AbstractAlgorithm.guarded_update``)."""
    ok = rollout_ok(rollout, guard)
    state = eqx.tree_at(lambda s: s.buffer, state, add_rollout(state.buffer, rollout))
    arrays, static = eqx.partition((policy, state), eqx.is_array)

    def gradient_step(
        carry: tuple[Any, Ok], step_key: Key
    ) -> tuple[tuple[Any, Ok], Float[Array, " stats"]]:
        arrays, ok = carry
        policy, state = eqx.combine(arrays, static)
        new_policy, new_state, stats, ok = step(policy, state, step_key, ok)
        return (eqx.filter((new_policy, new_state), eqx.is_array), ok), stats

    def learn() -> tuple[tuple[Any, Ok], Float[Array, " stats"]]:
        keys = jr.split(key, gradient_steps)
        (new, new_ok), stats = jax.lax.scan(gradient_step, (arrays, ok), keys)
        return (restore_iteration(new_ok, new, arrays, gradient_steps), new_ok), (
            stats.mean(axis=0)
        )

    def skip() -> tuple[tuple[Any, Ok], Float[Array, " stats"]]:
        return (arrays, ok), jnp.zeros((num_stats,), jnp.float32)

    ready = ready_to_learn(rollout, steps_per_iteration, learning_starts)
    (arrays, ok), stats = jax.lax.cond(ready, learn, skip)
    policy, state = eqx.combine(arrays, static)
    return policy, state, stats, ok


def polyak_update(online: M, target: M, tau: Float[Array, ""]) -> M:
    """``tau * online + (1 - tau) * target`` for each floating-point array of
    two modules of one structure (the rest is ``target``'s)."""
    new = eqx.filter(online, eqx.is_inexact_array)
    old, static = eqx.partition(target, eqx.is_inexact_array)
    mixed = jax.tree.map(lambda n, o: tau * n + (1 - tau) * o, new, old)
    out: M = eqx.combine(mixed, static)
    return out


def host_call_every(
    steps_per_iteration: int, gradient_steps: int, batch_size: int
) -> int:
    """Iterations between periodic host calls: about every ``2**16`` units of
    work, an iteration counting ``steps_per_iteration + gradient_steps *
    batch_size`` (its environment steps and the transitions its updates read)."""
    work = steps_per_iteration + gradient_steps * batch_size
    return max(1, math.ceil(2**16 / work))


def adam(
    learning_rate: Float[Array, ""] | optax.Schedule,
    max_grad_norm: Float[Array, ""] | None = None,
) -> optax.GradientTransformation:
    """Adam with the learning rate (a value, or a schedule of the optimizer's
    step count) in its state (for the training log), after global-norm
    clipping at ``max_grad_norm`` when given."""
    inner = optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)
    if max_grad_norm is None:
        return inner
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), inner)


def apply_adam(
    optimizer: optax.GradientTransformation,
    grads: M,
    opt_state: Any,
    params: M,
) -> tuple[M, Any]:
    """One optimizer step: the new parameters and optimizer state."""
    # optax mixes integer step counts with floats: allow its promotions even
    # when users run JAX with strict dtype promotion.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, opt_state, params)
    new: M = optax.apply_updates(params, updates)
    return new, opt_state


def restore_iteration(ok: Ok, new: M, old: M, gradient_steps: int) -> M:
    """After a guarded iteration of several gradient steps, ``new`` if every
    step was finite, else ``old`` (from before the first step), but for a
    replay buffer, which is always ``new``'s: so a run stops with its state
    from before the failing iteration, not from the middle of it. One copy
    per iteration, shared by its steps; with a single step the step's own
    guard already kept everything as it was."""
    if ok is None or gradient_steps == 1:
        return new
    is_buffer = lambda x: isinstance(x, ReplayBuffer)  # noqa: E731
    new_buffers, new_rest = eqx.partition(new, is_buffer, is_leaf=is_buffer)
    _, old_rest = eqx.partition(old, is_buffer, is_leaf=is_buffer)
    out: M = eqx.combine(
        keep_if(ok, new_rest, old_rest), new_buffers, is_leaf=is_buffer
    )
    return out


def guarded_adam(
    optimizer: optax.GradientTransformation,
    loss: Float[Array, ""],
    grads: M,
    opt_state: Any,
    params: M,
    ok: Ok,
) -> tuple[M, Any, Ok]:
    """[`apply_adam`][], guarded when ``ok`` is not ``None``: the step is
    taken only if ``ok`` (everything before it was finite) holds and
    ``loss`` and ``grads`` are finite, else the parameters and optimizer
    state are returned unchanged; also returns that condition. It is known
    before the step is computed, so XLA fuses the choice into the step and
    can still update in place."""
    new_params, new_state = apply_adam(optimizer, grads, opt_state, params)
    if ok is None:
        return new_params, new_state, None
    ok = ok & jnp.isfinite(loss) & all_finite(grads)
    new_params, new_state = keep_if(ok, (new_params, new_state), (params, opt_state))
    return new_params, new_state, ok


def guarded(ok: Ok, new: M, old: M) -> M:
    """``new``, or for a guarded update whose ``ok`` is false, ``old``."""
    return new if ok is None else keep_if(ok, new, old)


def zeros_log(names: tuple[str, ...]) -> dict[str, Float[Array, ""]]:
    """A training log of zeros under ``names``."""
    return {n: jnp.zeros((), jnp.float32) for n in names}


def flat_parameters(
    module: M,
) -> tuple[Float[Array, " parameters"], Callable[[Float[Array, " parameters"]], M]]:
    """The floating-point arrays of ``module`` as one vector (what its
    optimizer updates: a few fused kernels per step instead of several per
    array, and a small fraction of the compilation), and the function that
    rebuilds the module from such a vector."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    flat, unravel = ravel_pytree(params)

    def rebuild(vector: Float[Array, " parameters"]) -> M:
        out: M = eqx.combine(unravel(vector), static)
        return out

    return flat, rebuild


def box_action(
    policy: AbstractSACPolicy[Any, Any] | AbstractTD3Policy[Any, Any],
) -> PyTree[jax.ShapeDtypeStruct]:
    """The shape and dtype of ``policy``'s actions (found without running it)."""
    action: PyTree[jax.ShapeDtypeStruct] = jax.eval_shape(
        policy.scale_action, jnp.zeros((policy.action_space.flat_size,), jnp.float32)
    )
    return action


def empty_buffer(
    capacity: int,
    env: AbstractEnv[Any, Any, Any],
    action: PyTree[jax.ShapeDtypeStruct],
    key: Key,
) -> ReplayBuffer:
    """An empty buffer for ``env``'s observations (their shapes and dtypes,
    found without running it) and actions of ``action``'s shapes and dtypes."""
    observation = jax.eval_shape(lambda k: env.reset(key=k)[1], key)
    return ReplayBuffer.empty(
        capacity,
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), observation),
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), action),
    )
