"""What the control callbacks share: when a periodic callback is due, running
an update only for the runs that are due (and not at all when none is), the
names a wrapped callback publishes, reading a published metric, and the
checks of their constructor arguments."""

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ..._host import any_run, select_runs
from .._context import IterationContext, TrainingContext
from .._invoke import DiscoveryMetrics

S = TypeVar("S")
InputsT = TypeVar("InputsT")


def iterations_between(every: int, steps_per_iteration: int) -> int:
    """``every`` environment steps (over all environments) in whole
    iterations of ``steps_per_iteration`` steps, rounded up: ``max(1,
    ceil(every / steps_per_iteration))``."""
    return max(1, -(-every // steps_per_iteration))


def is_due(every: int, ctx: IterationContext[Any, Any, Any, Any]) -> Bool[Array, ""]:
    """Whether a callback firing every ``every`` environment steps fires after
    this iteration: every ``iterations_between(every, steps_per_iteration)``
    iterations and at the run's last."""
    algorithm = ctx.algorithm
    iteration = ctx.iteration_count
    last = algorithm.num_iterations(ctx.total_timesteps)
    period = iterations_between(every, algorithm.steps_per_iteration)
    return jnp.logical_or(iteration % period == 0, iteration == last)


def for_runs(
    flag: Bool[Array, ""], update: Callable[[S, InputsT], S], state: S, inputs: InputsT
) -> S:
    """``update(state, inputs)`` for the runs whose ``flag`` holds; the others
    keep ``state``.

    ``update`` runs only if the flag holds for some run, and then once for
    all runs (its host calls included), only their results kept. Under
    ``vmap`` a ``lax.cond`` on the runs' flags would become a select that
    runs ``update`` every time, and JAX refuses a host call in a vmapped
    ``lax.cond`` even on an unbatched predicate; a ``lax.while_loop`` that
    runs at most once, on the unbatched "some run's flag holds", is a real
    branch in both cases (the training loop's own pattern).

    ``update`` must read the training's values through ``inputs`` (or
    ``state``), not from its closure: inside the loop they pass an
    optimisation barrier with the loop's own flag. Without it, work that
    depends only on values the loop does not change (an evaluation of the
    policy, which is all of ``EvalCallback``) is loop-invariant, and XLA
    hoists it out of the loop, so it ran at every training iteration
    whether due or not (BENCHMARKS.md)."""
    some = any_run(flag)
    dynamic, static = eqx.partition(inputs, eqx.is_array)

    def cond(carry: tuple[Bool[Array, ""], S]) -> Bool[Array, ""]:
        return jnp.logical_and(some, jnp.logical_not(carry[0]))

    def body(carry: tuple[Bool[Array, ""], S]) -> tuple[Bool[Array, ""], S]:
        _, old, arrays = jax.lax.optimization_barrier((*carry, dynamic))  # type: ignore[no-untyped-call]  # jax leaves it unannotated
        new: S = select_runs(flag, update(old, eqx.combine(arrays, static)), old)
        return jnp.array(True), new

    _, out = jax.lax.while_loop(cond, body, (jnp.array(False), state))
    return out


def with_state(
    ctx: IterationContext[Any, Any, Any, Any, Any], state: S
) -> IterationContext[S, Any, Any, Any, Any]:
    """``ctx`` with the callback state ``state`` (a wrapped callback's)."""
    return cast(IterationContext[S, Any, Any, Any, Any], replace(ctx, state=state))


def training_with_state(
    ctx: TrainingContext[Any, Any, Any, Any, Any], state: S
) -> TrainingContext[S, Any, Any, Any, Any]:
    """``ctx`` with the callback state ``state`` (a wrapped callback's)."""
    return cast(TrainingContext[S, Any, Any, Any, Any], replace(ctx, state=state))


def end_iteration_context(
    ctx: TrainingContext[Any, Any, Any, Any, Any], state: S, active: Bool[Array, ""]
) -> IterationContext[S, Any, Any, Any, Any]:
    """The iteration context of a run's last iteration, rebuilt from
    ``on_training_end``'s context, with the callback state ``state`` and the
    flag ``active``."""
    return IterationContext(
        state=state,
        step_state=ctx.step_state,
        env=ctx.env,
        policy=ctx.policy,
        algorithm_state=ctx.algorithm_state,
        training_log=ctx.training_log,
        iteration_count=ctx.iteration_count,
        num_timesteps=ctx.num_timesteps,
        total_timesteps=ctx.total_timesteps,
        algorithm=ctx.algorithm,
        run_index=ctx.run_index,
        active=active,
        metrics=ctx.metrics,
    )


def stopped_after_last_firing(
    ctx: TrainingContext[Any, Any, Any, Any, Any], last_fired: Int[Array, ""]
) -> Bool[Array, ""]:
    """Whether the run ran iterations after the callback last fired (it
    stopped early between two firings): then it fires once more, at the end."""
    iteration = jnp.asarray(ctx.iteration_count, jnp.int32)
    return jnp.logical_and(iteration > 0, last_fired != iteration)


def read_metric(
    owner: str,
    argument: str,
    metrics: Mapping[str, Float[Array, ""]],
    name: str,
    *,
    computed: Sequence[str] = (),
) -> Float[Array, ""]:
    """The published metric ``name``; a ``ValueError`` naming ``argument``,
    the published names and the names the callback would compute itself
    (``computed``) if no callback publishes it. (While the loop looks for
    the names, a name not found yet reads NaN.)"""
    if isinstance(metrics, DiscoveryMetrics) or name in metrics:
        return metrics[name]
    published = ", ".join(repr(n) for n in sorted(metrics)) or "none"
    close = difflib.get_close_matches(name, [*metrics, *computed], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    what = "is not a metric any callback of this training publishes"
    if computed:
        names = ", ".join(repr(n) for n in computed)
        what = (
            "is neither a metric any callback of this training publishes nor a "
            f"training statistic {owner} computes itself ({names})"
        )
    raise ValueError(
        f"{owner}: {argument}={name!r} {what}{hint}; published: {published}. Add "
        "the callback that publishes it (e.g. EvalCallback for 'eval/...'), or "
        "fix the name"
    )


# -- constructor arguments ---------------------------------------------------


def positive_int(owner: str, name: str, value: object, what: str = "") -> int:
    """``value`` if it is a positive Python int (a bool is not one); else
    ``TypeError`` (not an int) or ``ValueError`` (not positive)."""
    unit = f" ({what})" if what else ""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{owner}: {name} must be a positive int{unit}, got {name}={value!r}"
        )
    if value <= 0:
        raise ValueError(
            f"{owner}: {name} must be a positive int{unit}, got {name}={value!r}"
        )
    return int(value)


def scalar_field(
    owner: str,
    name: str,
    value: object,
    kind: Literal["int", "float"],
    *,
    allowed: str,
    bad: Callable[[Array], Bool[Array, ""]],
) -> Array:
    """``value`` as an int32 or float32 scalar array (an array field, so that
    a batch of callbacks may hold one value per run).

    A value of another kind (a bool, a string; a float for an int) or shape
    is a ``TypeError``; a concrete value for which ``bad`` holds a ``ValueError``,
    each naming ``name``, the value and what is ``allowed``. A traced value
    (a callback built under ``eqx.filter_vmap``) is checked when the program
    runs (``eqx.error_if``)."""
    if isinstance(value, bool | np.bool_):
        ok = False
    elif isinstance(value, jax.Array | np.ndarray | np.generic):
        ok = jnp.issubdtype(value.dtype, jnp.integer) or (
            kind == "float" and jnp.issubdtype(value.dtype, jnp.floating)
        )
    else:
        ok = isinstance(value, int) or (kind == "float" and isinstance(value, float))
    if not ok:
        raise TypeError(f"{owner}: {name} must be {allowed}, got {name}={value!r}")
    array = jnp.asarray(value, jnp.int32 if kind == "int" else jnp.float32)
    if array.shape != ():
        raise TypeError(
            f"{owner}: {name} must be a scalar ({allowed}), got {name} of shape "
            f"{array.shape}; for one value per run, build one callback per run "
            "under eqx.filter_vmap, or stack callbacks built with scalars"
        )
    concrete = _concrete(array)
    if concrete is None:  # traced: checked when it runs
        checked: Array = eqx.error_if(
            array, bad(array), f"{owner}: {name} must be {allowed}"
        )
        return checked
    if bool(bad(jnp.asarray(concrete))):
        raise ValueError(f"{owner}: {name} must be {allowed}, got {name}={value!r}")
    return array


def _concrete(value: object) -> Any:
    """``value`` as a NumPy value, or None if it is traced."""
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def checked_bool(owner: str, name: str, value: object) -> bool:
    """``value`` if it is a bool, else ``TypeError``."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be a bool, got {name}={value!r}")
    return value
