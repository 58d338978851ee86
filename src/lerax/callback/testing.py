"""A test kit for callbacks: real contexts, built as the training loop builds
them, and hook calls validated as the loop validates them.

A callback tested with the kit sees what it sees in training: the same
context classes, field meanings, dtypes (int counters, bool flags, the
environment's reward dtype) and training-log names; a hook returning a bad
state raises the same [`CallbackStateError`][lerax.errors.CallbackStateError].
Why: a callback written for others can be tested hook by hook, each case
on its own, without a training run.

```python
from lerax.callback.testing import run_hook, step_context
```

``lerax.callback`` does not import this module (it builds on
``lerax.algorithm``, which imports ``lerax.callback``): import it by name.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypeVar, overload

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, UInt32
from jaxtyping import Key as PRNGKey

from .._custom_types import Key
from ..algorithm import AbstractAlgorithm
from ..algorithm._hyper import counter_dtype, show
from ..algorithm._loop import (
    _batched_where,
    check_env,
    check_policy,
    check_policy_fits,
)
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from ..space import Box
from ._base import AbstractCallback
from ._context import (
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
)
from ._hooks import HOOKS
from ._invoke import (
    call_continue_training,
    call_metrics,
    call_on_iteration,
    call_on_rollout,
    call_on_step,
    call_on_training_end,
    call_on_training_start,
    call_reset,
    call_step_reset,
)

_E = TypeVar("_E", bound=AbstractEnv[Any, Any, Any])
_P = TypeVar("_P", bound=AbstractPolicy[Any, Any])
_S = TypeVar("_S")
_T = TypeVar("_T")

_AnyContext: TypeAlias = (
    ResetContext[Any, Any, Any]
    | StepContext[Any, Any, Any, Any]
    | RolloutContext[Any, Any, Any, Any]
    | IterationContext[Any, Any, Any, Any, Any]
    | TrainingContext[Any, Any, Any, Any, Any]
)
_C = TypeVar("_C", bound=_AnyContext)
_Keys: TypeAlias = PRNGKey[Array, " runs"] | UInt32[Array, "runs 2"]
_AnyAlgorithm: TypeAlias = AbstractAlgorithm[Any, Any]
_AnyCallback: TypeAlias = AbstractCallback[Any, Any, Any, Any]

# The context class each hook takes, and the loop's validated call of it.
_HOOK_CALLS: dict[str, tuple[type, Callable[..., Any]]] = {
    "reset": (ResetContext, call_reset),
    "step_reset": (ResetContext, call_step_reset),
    "on_step": (StepContext, call_on_step),
    "on_rollout": (RolloutContext, call_on_rollout),
    "on_iteration": (IterationContext, call_on_iteration),
    "metrics": (IterationContext, call_metrics),
    "continue_training": (IterationContext, call_continue_training),
    "on_training_start": (TrainingContext, call_on_training_start),
    "on_training_end": (TrainingContext, call_on_training_end),
}


# -- contexts ------------------------------------------------------------------


def reset_context(
    env: _E,
    policy: _P,
    algorithm: AbstractAlgorithm[Any, Any],
    *,
    key: Key,
    num_envs: int | None = None,
    total_timesteps: int | None = None,
    **overrides: object,
) -> ResetContext[_E, _P, Any]:
    """The context of ``reset`` and ``step_reset``, as the training loop builds
    it before training.

    Args:
        env: the environment.
        policy: the policy (built for ``env``).
        algorithm: the algorithm; the context's ``algorithm_state`` is its
            ``init_state(env, policy, num_iterations, key=...)``.
        key: the key the defaults are drawn from.
        num_envs: parallel environments (default: ``algorithm.num_envs``, as
            in training).
        total_timesteps: environment steps asked for (default: one iteration,
            ``algorithm.steps_per_iteration``).
        **overrides: any field of
            [`ResetContext`][lerax.callback.ResetContext], replacing its
            default (``run_index=2``; a Python int becomes an int32 array).

    Returns:
        The context, with ``run_index`` 0 and no ``metric_names`` unless
        overridden (training lists there the metrics its callbacks publish).

    Raises:
        TypeError: an override names no field of ``ResetContext`` (the
            message lists them) or has the wrong dtype; ``env``, ``policy``
            or ``key`` is not what training accepts.
        ValueError: ``num_envs`` is not positive, ``total_timesteps`` buys no
            iteration, or ``policy`` was built for other spaces.
    """
    where = "reset_context"
    _check_setup(where, env, policy, algorithm, key)
    if num_envs is None:
        num_envs = algorithm.num_envs
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(
            f"{where}: num_envs must be a positive int, got num_envs={num_envs!r}"
        )
    total = _total_timesteps(where, algorithm, total_timesteps, 0, end=False)
    fields: dict[str, object] = dict(
        env=env,
        policy=policy,
        algorithm_state=_algorithm_state(
            where, env, policy, algorithm, total_timesteps, total, key
        ),
        algorithm=algorithm,
        total_timesteps=total,
        num_envs=num_envs,
        run_index=jnp.zeros((), jnp.int32),
    )
    ctx: ResetContext[_E, _P, Any] = _build(ResetContext, where, fields, overrides)
    return ctx


def step_context(
    env: _E,
    policy: _P,
    algorithm: AbstractAlgorithm[Any, Any],
    *,
    key: Key,
    state: _T,
    iteration: int = 0,
    total_timesteps: int | None = None,
    **overrides: object,
) -> StepContext[_T, _E, _P, Any]:
    """The context of ``on_step``: one environment's first step of iteration
    ``iteration``, as the training loop builds it.

    The defaults come from ``env.reset``, then the algorithm's ``act`` on that
    observation (the action and ``locals``, PPO's ``log_prob`` and ``value``),
    then one ``env.step`` (with a ``Box`` action clipped to its bounds, as in
    training); ``training_log`` holds ``algorithm.initial_training_log()``
    (zeros); ``iteration_count`` is ``iteration`` and ``num_timesteps``
    ``iteration * algorithm.steps_per_iteration`` (iterations and steps
    before this step); ``run_index`` is 0 and ``active`` true.

    Args:
        env: the environment.
        policy: the policy (built for ``env``).
        algorithm: the algorithm (its ``init_state`` gives ``algorithm_state``,
            its ``act`` the action).
        key: the key the defaults are drawn from.
        state: this environment's callback step state (e.g. what
            ``step_reset`` returned: ``run_hook(callback, "step_reset", ...)``).
        iteration: the iteration whose rollout this step belongs to, from 0.
        total_timesteps: environment steps asked for (default: up to the end
            of iteration ``iteration``).
        **overrides: any field of [`StepContext`][lerax.callback.StepContext]
            (``reward=2.0``, ``terminated=True``, ``active=False``), replacing
            its default; nothing is recomputed from an override. Python and
            NumPy scalars become arrays of the dtype training gives;
            ``training_log`` entries replace those of the zero log.

    Returns:
        The context.

    Raises:
        TypeError: an override names no field of ``StepContext`` (the message
            lists them) or has the wrong dtype or shape; ``env``, ``policy``
            or ``key`` is not what training accepts.
        ValueError: ``iteration`` is negative or past the run's last
            iteration, ``total_timesteps`` buys no iteration, or a
            ``training_log`` override names a statistic the algorithm does
            not report.
    """
    where = "step_context"
    _check_setup(where, env, policy, algorithm, key)
    total = _total_timesteps(where, algorithm, total_timesteps, iteration, end=False)
    k_algorithm, k_reset, k_act, k_step = jr.split(_typed(key), 4)
    algorithm_state = _algorithm_state(
        where, env, policy, algorithm, total_timesteps, total, k_algorithm
    )
    num_timesteps = _counter(iteration * algorithm.steps_per_iteration)
    env_state, observation = env.reset(key=k_reset)
    action, extras = algorithm.act(
        policy, algorithm_state, observation, timestep=num_timesteps, key=k_act
    )
    ts = env.step(env_state, _env_action(env.action_space, action), key=k_step)
    fields: dict[str, object] = dict(
        state=state,
        env=env,
        policy=policy,
        algorithm_state=algorithm_state,
        training_log=algorithm.initial_training_log(),
        observation=observation,
        action=action,
        next_observation=ts.observation,
        reward=ts.reward,
        terminated=ts.terminated,
        truncated=ts.truncated,
        iteration_count=_counter(iteration),
        num_timesteps=num_timesteps,
        locals=extras,
        algorithm=algorithm,
        run_index=jnp.zeros((), jnp.int32),
        active=jnp.array(True),
    )
    ctx: StepContext[_T, _E, _P, Any] = _build(StepContext, where, fields, overrides)
    return ctx


def rollout_context(
    env: _E,
    policy: _P,
    algorithm: AbstractAlgorithm[Any, Any],
    *,
    key: Key,
    state: _T,
    iteration: int = 0,
    total_timesteps: int | None = None,
    **overrides: object,
) -> RolloutContext[_T, _E, _P, Any]:
    """The context of ``on_rollout``: the whole rollout of iteration
    ``iteration``, every step of every environment, as the training loop
    builds it (after the rollout's ``on_step`` calls, before the update).

    The defaults come from ``env.reset`` in each of ``algorithm.num_envs``
    environments, then ``algorithm.num_steps`` steps of the algorithm's
    ``act`` (the actions and ``locals``) and ``env.step`` in each (with
    ``Box`` actions clipped to their bounds, and an environment whose episode
    ended reset before its next step, as in training), stacked on leading
    axes ``(num_steps, num_envs)``; the ``act`` of step ``t`` gets
    ``timestep=iteration * algorithm.steps_per_iteration + t * num_envs``.
    ``training_log`` holds ``algorithm.initial_training_log()`` (zeros);
    ``iteration_count`` is ``iteration`` and ``num_timesteps``
    ``iteration * algorithm.steps_per_iteration`` (iterations and steps
    before this rollout); ``run_index`` is 0 and ``active`` true.

    Args:
        env: the environment.
        policy: the policy (built for ``env``).
        algorithm: the algorithm (its ``init_state`` gives ``algorithm_state``,
            its ``act`` the actions, its ``num_envs`` and ``num_steps`` the
            rollout's shape).
        key: the key the defaults are drawn from.
        state: every environment's callback step state, stacked on a leading
            ``num_envs`` axis (as
            [`initial_states`][lerax.callback.testing.initial_states]
            returns it).
        iteration: the iteration whose rollout this is, from 0.
        total_timesteps: environment steps asked for (default: up to the end
            of iteration ``iteration``).
        **overrides: any field of
            [`RolloutContext`][lerax.callback.RolloutContext], replacing its
            default; nothing is recomputed from an override (``dones`` is
            computed from ``terminated`` and ``truncated``). ``rewards``,
            ``terminated`` and ``truncated`` take an array of shape
            ``(num_steps, num_envs)`` (a NumPy array or nested list becomes
            one of the dtype training gives: ``terminated=np.eye(4, 2,
            dtype=bool)``); the scalar fields as in
            [`step_context`][lerax.callback.testing.step_context].

    Returns:
        The context.

    Raises:
        TypeError: an override names no field of ``RolloutContext`` (the
            message lists them) or has the wrong dtype or shape; ``env``,
            ``policy`` or ``key`` is not what training accepts.
        ValueError: ``state`` has an array leaf without a leading environment
            axis of ``algorithm.num_envs``; ``iteration`` is negative or past
            the run's last iteration; ``total_timesteps`` buys no iteration;
            a ``training_log`` override names a statistic the algorithm does
            not report.
    """
    where = "rollout_context"
    _check_setup(where, env, policy, algorithm, key)
    total = _total_timesteps(where, algorithm, total_timesteps, iteration, end=False)
    _check_stacked(where, algorithm, state, name="state", size=algorithm.num_envs)
    k_algorithm, k_reset, k_steps = jr.split(_typed(key), 3)
    algorithm_state = _algorithm_state(
        where, env, policy, algorithm, total_timesteps, total, k_algorithm
    )
    num_timesteps = _counter(iteration * algorithm.steps_per_iteration)
    observations, actions, next_observations, rewards, terminated, truncated, extras = (
        _collect(
            env, policy, algorithm, algorithm_state, k_reset, k_steps, num_timesteps
        )
    )
    fields: dict[str, object] = dict(
        state=state,
        env=env,
        policy=policy,
        algorithm_state=algorithm_state,
        training_log=algorithm.initial_training_log(),
        observations=observations,
        actions=actions,
        next_observations=next_observations,
        rewards=rewards,
        terminated=terminated,
        truncated=truncated,
        iteration_count=_counter(iteration),
        num_timesteps=num_timesteps,
        locals=extras,
        algorithm=algorithm,
        run_index=jnp.zeros((), jnp.int32),
        active=jnp.array(True),
    )
    ctx: RolloutContext[_T, _E, _P, Any] = _build(
        RolloutContext, where, fields, overrides
    )
    return ctx


def iteration_context(
    env: _E,
    policy: _P,
    algorithm: AbstractAlgorithm[Any, Any],
    *,
    key: Key,
    state: _S,
    step_state: _T,
    iteration: int = 0,
    total_timesteps: int | None = None,
    **overrides: object,
) -> IterationContext[_S, _T, _E, _P, Any]:
    """The context of ``on_iteration``, ``metrics`` and ``continue_training``
    after the update of iteration ``iteration``, as the training loop builds
    it.

    ``iteration_count`` is ``iteration + 1`` and ``num_timesteps``
    ``(iteration + 1) * algorithm.steps_per_iteration`` (this iteration
    included, as in training); ``training_log`` holds
    ``algorithm.initial_training_log()`` (zeros; override entries to test a
    callback that reads it); ``metrics`` is empty (override it with what the
    other callbacks publish, ``metrics={"eval/return": 12.0}``); ``run_index``
    is 0 and ``active`` true.

    Args:
        env: the environment.
        policy: the policy (built for ``env``).
        algorithm: the algorithm (its ``init_state`` gives ``algorithm_state``).
        key: the key the defaults are drawn from.
        state: the callback state.
        step_state: every environment's step state, stacked on a leading
            ``num_envs`` axis (as [`initial_states`][lerax.callback.testing.initial_states]
            returns it).
        iteration: the iteration just updated, from 0.
        total_timesteps: environment steps asked for (default: up to the end
            of iteration ``iteration``).
        **overrides: any field of
            [`IterationContext`][lerax.callback.IterationContext], replacing its
            default (``active=False``, ``training_log={"loss": 0.5}``); see
            [`step_context`][lerax.callback.testing.step_context].

    Returns:
        The context.

    Raises:
        TypeError: an override names no field of ``IterationContext`` or has
            the wrong dtype or shape; ``env``, ``policy`` or ``key`` is not
            what training accepts.
        ValueError: ``step_state`` has an array leaf without a leading
            environment axis (or leaves disagree on it); ``iteration`` is
            negative or past the run's last iteration; a ``training_log``
            override names a statistic the algorithm does not report.
    """
    where = "iteration_context"
    _check_setup(where, env, policy, algorithm, key)
    total = _total_timesteps(where, algorithm, total_timesteps, iteration, end=False)
    _check_stacked(where, algorithm, step_state)
    fields: dict[str, object] = dict(
        state=state,
        step_state=step_state,
        env=env,
        policy=policy,
        algorithm_state=_algorithm_state(
            where, env, policy, algorithm, total_timesteps, total, key
        ),
        training_log=algorithm.initial_training_log(),
        iteration_count=_counter(iteration + 1),
        num_timesteps=_counter((iteration + 1) * algorithm.steps_per_iteration),
        total_timesteps=total,
        algorithm=algorithm,
        run_index=jnp.zeros((), jnp.int32),
        active=jnp.array(True),
    )
    ctx: IterationContext[_S, _T, _E, _P, Any] = _build(
        IterationContext, where, fields, overrides
    )
    return ctx


def training_context(
    env: _E,
    policy: _P,
    algorithm: AbstractAlgorithm[Any, Any],
    *,
    key: Key,
    state: _S,
    step_state: _T,
    iteration: int = 0,
    total_timesteps: int | None = None,
    **overrides: object,
) -> TrainingContext[_S, _T, _E, _P, Any]:
    """The context of ``on_training_start`` (``iteration=0``) or
    ``on_training_end`` (``iteration`` = the iterations run), as the training
    loop builds it.

    ``iteration_count`` is ``iteration`` and ``num_timesteps``
    ``iteration * algorithm.steps_per_iteration``; ``training_log`` holds
    ``algorithm.initial_training_log()`` (zeros, as at the start);
    ``metrics`` is empty; ``run_index`` is 0.

    Args:
        env: the environment.
        policy: the policy (built for ``env``).
        algorithm: the algorithm (its ``init_state`` gives ``algorithm_state``).
        key: the key the defaults are drawn from.
        state: the callback state.
        step_state: every environment's step state, stacked on a leading
            ``num_envs`` axis.
        iteration: the iterations completed: 0 at the start, the run's
            iterations at the end (an early stop included).
        total_timesteps: environment steps asked for (default:
            ``max(iteration, 1)`` iterations).
        **overrides: any field of
            [`TrainingContext`][lerax.callback.TrainingContext], replacing its
            default; see [`step_context`][lerax.callback.testing.step_context].

    Returns:
        The context.

    Raises:
        TypeError: an override names no field of ``TrainingContext`` or has
            the wrong dtype or shape; ``env``, ``policy`` or ``key`` is not
            what training accepts.
        ValueError: as [`iteration_context`][lerax.callback.testing.iteration_context].
    """
    where = "training_context"
    _check_setup(where, env, policy, algorithm, key)
    total = _total_timesteps(where, algorithm, total_timesteps, iteration, end=True)
    _check_stacked(where, algorithm, step_state)
    fields: dict[str, object] = dict(
        state=state,
        step_state=step_state,
        env=env,
        policy=policy,
        algorithm_state=_algorithm_state(
            where, env, policy, algorithm, total_timesteps, total, key
        ),
        training_log=algorithm.initial_training_log(),
        iteration_count=_counter(iteration),
        num_timesteps=_counter(iteration * algorithm.steps_per_iteration),
        total_timesteps=total,
        algorithm=algorithm,
        run_index=jnp.zeros((), jnp.int32),
    )
    ctx: TrainingContext[_S, _T, _E, _P, Any] = _build(
        TrainingContext, where, fields, overrides
    )
    return ctx


def initial_states(
    callback: AbstractCallback[_S, _T, _E, _P],
    ctx: ResetContext[_E, _P, Any],
    *,
    key: Key,
) -> tuple[_S, _T]:
    """The callback's state and step states as training starts: ``reset``,
    and ``step_reset`` once per environment (``ctx.num_envs``) stacked on a
    leading axis, each validated as the loop validates it.

    Args:
        callback: the callback.
        ctx: a reset context ([`reset_context`][lerax.callback.testing.reset_context]).
        key: the key the hooks draw from.

    Returns:
        ``(state, step_state)``, ready for
        [`iteration_context`][lerax.callback.testing.iteration_context].

    Raises:
        CallbackStateError: ``reset`` or ``step_reset`` returned a bad state.
    """
    _check_callback("initial_states", callback)
    _check_key("initial_states", key)
    k_reset, k_steps = jr.split(_typed(key))
    state = call_reset(callback, ctx, key=k_reset)
    step_state: _T = jax.vmap(lambda k: call_step_reset(callback, ctx, key=k))(
        jr.split(k_steps, ctx.num_envs)
    )
    return state, step_state


# -- batches of contexts -------------------------------------------------------


def batch_contexts(contexts: Sequence[_C]) -> _C:
    """Stack contexts of one class along a new leading axis: the batch that a
    hook sees when training is vmapped over runs (seeds).

    Give each member its own ``run_index`` (its position, as the loop numbers
    vmapped runs) and ``active`` flag (false for a run that has stopped while
    the others go on), then call the hook on the batch with
    [`run_hook_vmapped`][lerax.callback.testing.run_hook_vmapped].

    Args:
        contexts: one or more contexts of one class, e.g.
            ``[step_context(..., run_index=i, active=a) for ...]``.

    Returns:
        A context of the same class whose array leaves have a leading axis of
        ``len(contexts)``.

    Raises:
        ValueError: ``contexts`` is empty; or its members differ in class, in
            a static field (``total_timesteps``, ``num_envs``, the
            environment's configuration: one program runs every member), in
            pytree structure, or in a leaf's shape or dtype (the message names
            the member and the field).
    """
    members = list(contexts)
    if not members:
        raise ValueError("batch_contexts needs at least one context, got none")
    first = members[0]
    for i, ctx in enumerate(members[1:], start=1):
        _check_same_member(first, ctx, i)

    def stack(*xs: object) -> object:
        if eqx.is_array(xs[0]):
            return jnp.stack([jnp.asarray(x) for x in xs])
        return xs[0]

    batched: _C = jax.tree.map(stack, first, *members[1:])
    return batched


# -- running hooks -------------------------------------------------------------


@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["reset"],
    ctx: ResetContext[_E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> _S: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["step_reset"],
    ctx: ResetContext[_E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> _T: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_step"],
    ctx: StepContext[_T, _E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> _T: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_rollout"],
    ctx: RolloutContext[_T, _E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> _T: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_iteration"],
    ctx: IterationContext[_S, _T, _E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> _S: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["continue_training"],
    ctx: IterationContext[_S, _T, _E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> Bool[Array, ""]: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["metrics"],
    ctx: IterationContext[_S, _T, _E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> dict[str, Float[Array, ""]]: ...
@overload
def run_hook(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_training_start", "on_training_end"],
    ctx: TrainingContext[_S, _T, _E, _P, Any],
    *,
    key: Key,
    jit: bool = False,
) -> _S: ...
def run_hook(
    callback: AbstractCallback[Any, Any, Any, Any],
    hook: str,
    ctx: _AnyContext,
    *,
    key: Key,
    jit: bool = False,
) -> Any:
    """Call one hook of ``callback`` on ``ctx`` as the training loop calls it,
    validating what it returns, and return that.

    The returned state is checked against the callback's declared state type
    and field annotations and, for every hook but ``reset`` and
    ``step_reset`` (which create it), against ``ctx.state``'s exact pytree
    structure, shapes and dtypes (the state the loop passed in); a
    ``continue_training`` result must be a boolean scalar array, and
    ``metrics`` a mapping of names to float32 scalars. A mistake
    raises the [`CallbackStateError`][lerax.errors.CallbackStateError] that
    training raises, with the same message.

    Args:
        callback: the callback (a [`CallbackList`][lerax.callback.CallbackList]
            too).
        hook: the hook's name, one of [`HOOKS`][lerax.callback.HOOKS].
        ctx: the context that hook takes: a ``ResetContext`` for ``reset``
            and ``step_reset``, a ``StepContext`` for ``on_step``, a
            ``RolloutContext`` for ``on_rollout``, an
            ``IterationContext`` for ``on_iteration``, ``metrics`` and
            ``continue_training``, a ``TrainingContext`` for
            ``on_training_start`` and ``on_training_end``.
        key: the key the hook draws from.
        jit: run the hook under ``eqx.filter_jit`` (validation then happens
            while tracing, as in training).

    Returns:
        What the hook returned: the new state or step state, the published
        metrics, or the ``continue_training`` flag.

    Raises:
        ValueError: ``hook`` is not a hook name.
        TypeError: ``ctx`` is not the context ``hook`` takes, ``callback`` not
            a callback, or ``key`` not a PRNG key.
        CallbackStateError: the hook returned a bad state.
    """
    _check_call("run_hook", callback, hook, ctx)
    _check_key("run_hook", key)
    call = _jit_invoke if jit else _invoke
    return call(callback, hook, ctx, key)


@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["reset"],
    ctx: ResetContext[_E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> _S: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["step_reset"],
    ctx: ResetContext[_E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> _T: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_step"],
    ctx: StepContext[_T, _E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> _T: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_rollout"],
    ctx: RolloutContext[_T, _E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> _T: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_iteration"],
    ctx: IterationContext[_S, _T, _E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> _S: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["continue_training"],
    ctx: IterationContext[_S, _T, _E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> Bool[Array, " runs"]: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["metrics"],
    ctx: IterationContext[_S, _T, _E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> dict[str, Float[Array, " runs"]]: ...
@overload
def run_hook_vmapped(
    callback: AbstractCallback[_S, _T, _E, _P],
    hook: Literal["on_training_start", "on_training_end"],
    ctx: TrainingContext[_S, _T, _E, _P, Any],
    *,
    keys: _Keys,
    jit: bool = False,
) -> _S: ...
def run_hook_vmapped(
    callback: AbstractCallback[Any, Any, Any, Any],
    hook: str,
    ctx: _AnyContext,
    *,
    keys: _Keys,
    jit: bool = False,
) -> Any:
    """[`run_hook`][lerax.callback.testing.run_hook] on a batch of contexts
    ([`batch_contexts`][lerax.callback.testing.batch_contexts]) under
    ``eqx.filter_vmap``: what the hook does when training is vmapped over runs.

    The callback is the same for every member. Under vmap one program runs
    for all members, so a member whose ``active`` is false runs the hook too
    (the loop then discards its result): this is where to test that a
    callback gates its host-side effects on ``ctx.active``.
    [`num_runs`][lerax.callback.num_runs]``(ctx.run_index)`` inside the hook
    is the batch size, as in training.

    Args:
        callback: the callback.
        hook: the hook's name, one of [`HOOKS`][lerax.callback.HOOKS].
        ctx: a batch of the contexts that hook takes.
        keys: one key per member (``jax.random.split(key, n)``).
        jit: run under ``eqx.filter_jit`` as well.

    Returns:
        What the hook returned, batched: leaf ``i`` of member ``i``.

    Raises:
        ValueError: ``hook`` is not a hook name; ``ctx`` is not a batch
            (its ``run_index`` has no leading axis); ``keys`` does not hold
            one key per member.
        TypeError: ``ctx`` is not the context ``hook`` takes, ``callback`` not
            a callback, or ``keys`` not PRNG keys.
        CallbackStateError: the hook returned a bad state.
    """
    where = "run_hook_vmapped"
    _check_call(where, callback, hook, ctx)
    shape = jnp.shape(ctx.run_index)
    if len(shape) != 1:
        raise ValueError(
            f"{where}: ctx must be a batch of contexts (built with batch_contexts), "
            f"whose run_index has shape (runs,), got ctx.run_index of shape {shape}"
        )
    _check_keys(where, keys, shape[0])
    call = _jit_vmapped_invoke if jit else _vmapped_invoke
    return call(callback, hook, ctx, keys)


def _invoke(callback: _AnyCallback, hook: str, ctx: _AnyContext, key: Key) -> Any:
    _, call = _HOOK_CALLS[hook]
    return call(callback, ctx, key=_typed(key))


_jit_invoke = eqx.filter_jit(_invoke)
_vmapped_invoke = eqx.filter_vmap(_invoke, in_axes=(None, None, eqx.if_array(0), 0))
_jit_vmapped_invoke = eqx.filter_jit(_vmapped_invoke)


# -- checks and helpers --------------------------------------------------------


def _check_setup(
    where: str, env: object, policy: object, algorithm: object, key: object
) -> None:
    """The checks ``train`` makes of its arguments, before any default is built."""
    check_env(env)
    check_policy(policy)
    if not isinstance(algorithm, AbstractAlgorithm):
        raise TypeError(
            f"{where}: algorithm must be a Lerax algorithm (an instance of "
            "lerax.algorithm.AbstractAlgorithm, e.g. lerax.algorithm.PPO()), got "
            f"algorithm={algorithm!r} of type {type(algorithm).__qualname__}"
        )
    assert isinstance(env, AbstractEnv) and isinstance(policy, AbstractPolicy)
    check_policy_fits(env, policy)
    _check_key(where, key)


def _check_key(where: str, key: object) -> None:
    if isinstance(key, jax.Array) and (
        (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ())
        or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        return
    raise TypeError(
        f"{where}: key must be a JAX PRNG key, jax.random.key(seed) (or a legacy "
        f"jax.random.PRNGKey(seed)), got key={show(key)}"
    )


def _check_keys(where: str, keys: object, runs: int) -> None:
    if isinstance(keys, jax.Array):
        typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
        if typed and keys.shape == (runs,):
            return
        if not typed and keys.dtype == jnp.uint32 and keys.shape == (runs, 2):
            return
    raise ValueError(
        f"{where}: keys must hold one PRNG key per member of the batch "
        f"(jax.random.split(key, {runs})), got keys={show(keys)}"
    )


def _check_callback(where: str, callback: object) -> None:
    if not isinstance(callback, AbstractCallback):
        raise TypeError(
            f"{where}: callback must be a callback (an AbstractCallback instance), "
            f"got callback={callback!r} of type {type(callback).__qualname__}"
        )


def _check_call(where: str, callback: object, hook: object, ctx: object) -> None:
    """``hook`` is a hook's name and ``ctx`` the context it takes."""
    _check_callback(where, callback)
    if not isinstance(hook, str) or hook not in _HOOK_CALLS:
        raise ValueError(
            f"{where}: hook must name a callback hook, got hook={hook!r}; the "
            f"hooks are {', '.join(HOOKS)}"
        )
    expected, _ = _HOOK_CALLS[hook]
    if not isinstance(ctx, expected):
        raise TypeError(
            f"{where}: hook {hook!r} takes ctx: {expected.__name__}, got ctx of type "
            f"{type(ctx).__qualname__}"
        )


def _check_stacked(
    where: str,
    algorithm: _AnyAlgorithm,
    step_state: object,
    *,
    name: str = "step_state",
    size: int | None = None,
) -> None:
    """Every array leaf of ``step_state`` (the argument ``name``) has one
    leading environment axis (of ``size``, if given)."""
    leaves = jax.tree_util.tree_flatten_with_path(step_state)[0]
    sizes = set()
    for path, leaf in leaves:
        if not eqx.is_array(leaf):
            continue
        shape = jnp.shape(leaf)
        if not shape:
            raise ValueError(
                f"{where}: {name} must hold every environment's step state "
                f"stacked on a leading axis (num_envs={algorithm.num_envs} in "
                "training; initial_states builds one), got leaf "
                f"{name}{jax.tree_util.keystr(path)} of shape ()"
            )
        if size is not None and shape[0] != size:
            raise ValueError(
                f"{where}: {name} must hold the step states of the rollout's "
                f"num_envs={size} environments (algorithm.num_envs) stacked on "
                "a leading axis (initial_states builds one), got leaf "
                f"{name}{jax.tree_util.keystr(path)} of shape {shape}"
            )
        sizes.add(shape[0])
    if len(sizes) > 1:
        raise ValueError(
            f"{where}: {name}'s leaves must share one leading environment "
            f"axis, got leading sizes {sorted(sizes)}"
        )


def _total_timesteps(
    where: str,
    algorithm: AbstractAlgorithm[Any, Any],
    total: int | None,
    iteration: object,
    *,
    end: bool,
) -> int:
    """The run's ``total_timesteps`` (checked as ``train`` checks it), given
    that ``iteration`` must be one of its iterations (or, for the ``end`` of
    training, the number it ran): by default the smallest run that has it."""
    if isinstance(iteration, bool) or not isinstance(iteration, int):
        raise TypeError(
            f"{where}: iteration must be an int, got iteration={show(iteration)}"
        )
    if iteration < 0:
        raise ValueError(
            f"{where}: iteration must be at least 0, got iteration={iteration}"
        )
    if total is None:
        last = iteration if end else iteration + 1
        return max(last, 1) * algorithm.steps_per_iteration
    n = algorithm.num_iterations(total)  # raises for a bad value, naming it
    top = n if end else n - 1
    if iteration > top:
        raise ValueError(
            f"{where}: iteration must be in [0, {top}]: total_timesteps={total} "
            f"buys {n} iteration(s) of {algorithm.steps_per_iteration} steps, got "
            f"iteration={iteration}"
        )
    return int(total)


def _algorithm_state(
    where: str,
    env: AbstractEnv[Any, Any, Any],
    policy: AbstractPolicy[Any, Any],
    algorithm: AbstractAlgorithm[Any, Any],
    asked: int | None,
    total: int,
    key: Key,
) -> Any:
    """The algorithm's state before training, as the loop makes it, for a run
    of ``total`` steps (``asked`` is the caller's ``total_timesteps``)."""
    try:
        return algorithm.init_state(
            env, policy, algorithm.num_iterations(total), key=_typed(key)
        )
    except ValueError as error:
        if asked is None:  # the kit chose the run's length: say so
            error.add_note(
                f"{where} builds the algorithm state of a run of "
                f"total_timesteps={total} by default; pass total_timesteps= a "
                f"length {algorithm.name} accepts"
            )
        raise


@eqx.filter_jit  # compiled once per configuration, not per call
def _collect(
    env: AbstractEnv[Any, Any, Any],
    policy: AbstractPolicy[Any, Any],
    algorithm: AbstractAlgorithm[Any, Any],
    algorithm_state: Any,
    k_reset: Key,
    k_steps: Key,
    num_timesteps: Array,
) -> tuple[Any, ...]:
    """A rollout of ``algorithm.num_steps`` steps in each of
    ``algorithm.num_envs`` environments, as the training loop collects it:
    ``(observations, actions, next_observations, rewards, terminated,
    truncated, extras)`` with leading axes ``(num_steps, num_envs)``."""
    num_envs, num_steps = algorithm.num_envs, algorithm.num_steps

    def reset(k: Key) -> tuple[Any, Any]:
        return env.reset(key=k)

    def one_env(
        env_state: Any, observation: Any, timestep: Array, keys: PRNGKey[Array, " 3"]
    ) -> Any:
        k_act, k_step, _ = keys
        action, extras = algorithm.act(
            policy, algorithm_state, observation, timestep=timestep, key=k_act
        )
        ts = env.step(env_state, _env_action(env.action_space, action), key=k_step)
        record = (
            observation,
            action,
            ts.observation,
            ts.reward,
            ts.terminated,
            ts.truncated,
            extras,
        )
        return (ts.state, ts.observation), ts.done, record

    def step(carry: Any, xs: tuple[Array, PRNGKey[Array, "envs 3"]]) -> tuple[Any, Any]:
        env_states, observations = carry
        t, keys = xs
        timestep = num_timesteps + t * num_envs
        stepped, done, record = jax.vmap(one_env, in_axes=(0, 0, None, 0))(
            env_states, observations, timestep, keys
        )
        # The loop's automatic reset: an environment whose episode ended
        # starts a new one (from its own key) before its next step.
        resets = jax.vmap(reset)(keys[:, 2])
        return _batched_where(done, resets, stepped), record

    step_keys = jr.split(k_steps, num_steps * num_envs * 3)
    _, records = jax.lax.scan(
        step,
        jax.vmap(reset)(jr.split(k_reset, num_envs)),
        (
            jnp.arange(num_steps, dtype=num_timesteps.dtype),
            step_keys.reshape(num_steps, num_envs, 3),
        ),
    )
    return tuple(records)


def _counter(value: int) -> Array:
    """A training counter, in the loop's dtype (int32, or int64 with x64)."""
    return jnp.asarray(value, counter_dtype())


def _typed(key: Key) -> Key:
    """A typed key (a legacy raw key wrapped, as the training loop does)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    typed: Key = jr.wrap_key_data(key)
    return typed


def _env_action(space: object, action: Any) -> Any:
    """The action the environment receives: Box actions are clipped to their
    bounds (as the training loop does)."""
    if isinstance(space, Box):
        return jnp.clip(action, jnp.asarray(space.low), jnp.asarray(space.high))
    return action


# The scalar fields training fills with arrays of a fixed kind: an override
# given as a Python or NumPy scalar becomes one; an array must already be one.
_SCALARS: dict[str, Literal["bool", "int", "float", "counter"]] = {
    "terminated": "bool",
    "truncated": "bool",
    "active": "bool",
    "run_index": "int",
    "iteration_count": "counter",
    "num_timesteps": "counter",
    "reward": "float",
}

# The rollout's per-transition fields, of shape (num_steps, num_envs): an
# override given as a NumPy array or nested list of that shape becomes one.
_TRANSITIONS: dict[str, Literal["bool", "float"]] = {
    "rewards": "float",
    "terminated": "bool",
    "truncated": "bool",
}
_TRANSITION_FIELDS: dict[type, dict[str, Literal["bool", "float"]]] = {
    RolloutContext: _TRANSITIONS
}


def _build(
    cls: type, where: str, fields: dict[str, object], overrides: Mapping[str, object]
) -> Any:
    """``cls(**fields)`` with ``overrides`` applied, each checked."""
    names = [f.name for f in dataclasses.fields(cls)]
    transitions = _TRANSITION_FIELDS.get(cls, {})
    for name, value in overrides.items():
        if name not in names:
            why = ""
            if isinstance(getattr(cls, name, None), property):
                why = f" ({name} is a property computed from the fields)"
            raise TypeError(
                f"{where} got an unexpected override {name}={show(value)}{why}; "
                f"the fields of {cls.__name__} are {', '.join(names)}"
            )
        if name == "training_log":
            fields[name] = _training_log(where, fields[name], value)
        elif name == "metrics":
            fields[name] = _metrics(where, value)
        elif name in transitions:
            fields[name] = _transitions(where, name, value, fields[name])
        elif name in _SCALARS:
            fields[name] = _scalar(where, name, value, fields[name])
        else:
            fields[name] = value
    return cls(**fields)


def _scalar(where: str, name: str, value: object, default: object) -> Array:
    """``value`` as the scalar array training gives for field ``name`` (of
    ``default``'s dtype)."""
    dtype = jnp.asarray(default).dtype
    kind = _SCALARS[name]
    allowed = {
        "bool": (bool, np.bool_),
        "int": (int, np.integer),
        "counter": (int, np.integer),
        "float": (int, float, np.integer, np.floating),
    }[kind]
    if isinstance(value, jax.Array):
        if value.shape == () and value.dtype == dtype:
            return value
    elif isinstance(value, allowed) and not (
        kind != "bool" and isinstance(value, bool | np.bool_)
    ):
        return jnp.asarray(value, dtype)
    raise TypeError(
        f"{where}: {name} must be a {dtype} scalar array, as training gives it, "
        f"or a Python {'int' if kind == 'counter' else kind} (converted to one), "
        f"got {name}={show(value)}"
    )


def _transitions(where: str, name: str, value: object, default: object) -> Array:
    """``value`` as the ``(num_steps, num_envs)`` array training gives for the
    rollout field ``name`` (of ``default``'s shape and dtype)."""
    expected = jnp.asarray(default)
    shape, dtype = expected.shape, expected.dtype
    kind = _TRANSITIONS[name]
    if isinstance(value, jax.Array):
        if value.shape == shape and value.dtype == dtype:
            return value
    elif isinstance(value, np.ndarray | list | tuple):
        try:
            host = np.asarray(value)
        except ValueError:  # a ragged nested list
            host = None
        if host is not None and host.shape == shape:
            if kind == "bool" and host.dtype == np.bool_:
                return jnp.asarray(host, dtype)
            if kind == "float" and host.dtype.kind in "iuf":
                return jnp.asarray(host, dtype)
    what = "bools" if kind == "bool" else "numbers"
    raise TypeError(
        f"{where}: {name} must be a {dtype} array of shape {shape} "
        "(num_steps, num_envs), as training gives it, or a NumPy array or "
        f"nested list of {what} of that shape (converted to one), got "
        f"{name}={show(value)}"
    )


def _training_log(where: str, default: object, value: object) -> dict[str, Array]:
    """The zero training log with ``value``'s entries in place."""
    assert isinstance(default, Mapping)
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{where}: training_log must be a mapping of statistic names to float "
            f"scalars, got training_log={show(value)}"
        )
    unknown = sorted(set(value) - set(default))
    if unknown:
        raise ValueError(
            f"{where}: training_log names statistics the algorithm does not "
            f"report: {', '.join(map(repr, unknown))}; it reports "
            f"{', '.join(map(repr, default))}"
        )
    log = dict(default)
    for name, entry in value.items():
        zero = jnp.asarray(default[name])
        if (
            isinstance(entry, jax.Array)
            and entry.shape == ()
            and entry.dtype == zero.dtype
        ):
            log[name] = entry
        elif isinstance(
            entry, int | float | np.integer | np.floating
        ) and not isinstance(entry, bool | np.bool_):
            log[name] = jnp.asarray(entry, zero.dtype)
        else:
            raise TypeError(
                f"{where}: training_log[{name!r}] must be a {zero.dtype} scalar, "
                f"as training gives it (or a Python float), got {show(entry)}"
            )
    return log


def _metrics(where: str, value: object) -> dict[str, Array]:
    """``value`` as the ``metrics`` training gives: float32 scalars by name."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{where}: metrics must be a mapping of metric names to float32 "
            f"scalars, got metrics={show(value)}"
        )
    metrics: dict[str, Array] = {}
    for name, entry in value.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: metric names must be str, got {name!r}")
        if isinstance(entry, jax.Array):
            if entry.shape == () and entry.dtype == jnp.float32:
                metrics[name] = entry
                continue
        elif isinstance(entry, int | float | np.integer | np.floating) and not (
            isinstance(entry, bool | np.bool_)
        ):
            metrics[name] = jnp.asarray(entry, jnp.float32)
            continue
        raise TypeError(
            f"{where}: metrics[{name!r}] must be a float32 scalar, as training "
            f"gives it (or a Python float), got {show(entry)}"
        )
    return metrics


def _check_same_member(first: _AnyContext, ctx: _AnyContext, i: int) -> None:
    """``ctx`` (member ``i``) can be stacked with ``first`` (member 0)."""
    where = "batch_contexts"
    if type(ctx) is not type(first):
        raise ValueError(
            f"{where}: every context must be of one class, got contexts[0] of type "
            f"{type(first).__name__} and contexts[{i}] of type {type(ctx).__name__}"
        )
    for field in dataclasses.fields(first):
        name = field.name
        a, b = getattr(first, name), getattr(ctx, name)
        if field.metadata.get("static", False):
            if a != b:
                raise ValueError(
                    f"{where}: contexts[{i}].{name}={b!r} differs from "
                    f"contexts[0].{name}={a!r}; the members of a batch share every "
                    "static field (one program runs them all)"
                )
            continue
        a_leaves, a_def = jax.tree_util.tree_flatten_with_path(a)
        b_leaves, b_def = jax.tree_util.tree_flatten_with_path(b)
        if not _same(a_def, b_def):
            a_paths = {jax.tree_util.keystr(p) for p, _ in a_leaves}
            b_paths = {jax.tree_util.keystr(p) for p, _ in b_leaves}
            detail = "a static field inside it differs"
            if a_paths != b_paths:
                missing = sorted(a_paths - b_paths) or "none"
                extra = sorted(b_paths - a_paths) or "none"
                detail = f"missing leaves: {missing}; extra leaves: {extra}"
            raise ValueError(
                f"{where}: contexts[{i}].{name} differs in structure from "
                f"contexts[0].{name} ({detail}); the members of a batch share "
                "their structure and static configuration (one program runs them all)"
            )
        for (path, x), (_, y) in zip(a_leaves, b_leaves, strict=True):
            at = f"{name}{jax.tree_util.keystr(path)}"
            if eqx.is_array(x) and eqx.is_array(y):
                sx = (jnp.shape(x), jnp.asarray(x).dtype)
                sy = (jnp.shape(y), jnp.asarray(y).dtype)
                if sx != sy:
                    raise ValueError(
                        f"{where}: contexts[{i}].{at} has shape {sy[0]} and dtype "
                        f"{sy[1]}, but contexts[0].{at} has shape {sx[0]} and dtype "
                        f"{sx[1]}; members are stacked leaf by leaf"
                    )
            elif eqx.is_array(x) or eqx.is_array(y) or not _same(x, y):
                raise ValueError(
                    f"{where}: contexts[{i}].{at}={show(y)} differs from "
                    f"contexts[0].{at}={show(x)}; the members of a batch share "
                    "every non-array value (one program runs them all)"
                )


def _same(a: object, b: object) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001  # an == that does not give one bool
        return False


__all__ = [
    "reset_context",
    "step_context",
    "rollout_context",
    "iteration_context",
    "training_context",
    "initial_states",
    "batch_contexts",
    "run_hook",
    "run_hook_vmapped",
]
