"""Finding the names of the metrics a callback publishes before the loop
that carries them is built (the training loop and callbacks that wrap
others both need them)."""

from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float

from .._custom_types import Key
from ._base import AbstractCallback
from ._context import IterationContext, ResetContext
from ._invoke import DiscoveryMetrics, call_reset, call_step_reset
from ._list import CallbackList, call_iteration


def publishes(callback: AbstractCallback[Any, Any, Any, Any]) -> bool:
    """Whether ``callback`` (or a member of a ``CallbackList``) overrides
    ``metrics``."""
    if isinstance(callback, CallbackList):
        return any(publishes(member) for member in callback.callbacks)
    return type(callback).metrics is not AbstractCallback.metrics


def published_names(
    callback: AbstractCallback[Any, Any, Any, Any],
    ctx: ResetContext[Any, Any, Any],
    *,
    key: Key,
) -> tuple[str, ...]:
    """The names of the metrics ``callback`` publishes, sorted: found by
    tracing (``jax.eval_shape``, nothing runs) its ``reset``, ``step_reset``,
    ``on_iteration`` and ``metrics`` on a first iteration's context, in which
    every name not yet published reads NaN. The training loop's carry holds
    one value per name, so the names must be known before the loop is
    built."""
    if not publishes(callback):
        return ()

    def first_iteration() -> dict[str, Float[Array, ""]]:
        state = call_reset(callback, ctx, key=key)
        step_state = jax.vmap(lambda k: call_step_reset(callback, ctx, key=k))(
            jr.split(key, ctx.num_envs)
        )
        iteration_ctx = IterationContext(
            state=state,
            step_state=step_state,
            env=ctx.env,
            policy=ctx.policy,
            algorithm_state=ctx.algorithm_state,
            training_log=ctx.algorithm.initial_training_log(),
            iteration_count=jnp.ones((), jnp.int32),
            num_timesteps=jnp.zeros((), jnp.int32),
            total_timesteps=ctx.total_timesteps,
            algorithm=ctx.algorithm,
            run_index=ctx.run_index,
            active=jnp.array(True),
            metrics=DiscoveryMetrics(),
        )
        return call_iteration(callback, iteration_ctx, key=key)[1]

    return tuple(sorted(jax.eval_shape(first_iteration)))
