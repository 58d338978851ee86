"""The one training loop: every callback hook call, automatic resets, early
stopping and the stop status, for every algorithm.

An algorithm takes part through what [`_Trainable`][] names (its acting, its
update and its state); the loop owns everything else and carries it all in a
[`TrainState`][lerax.algorithm.TrainState].
"""

import dataclasses
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.core
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree, Shaped
from jaxtyping import Key as PRNGKey

from .. import _interrupt
from .._custom_types import ArrayTree, Key, TrainingLog
from .._host import any_run, failures_of, poll, run_index, select_runs
from .._structure import LeafInfo, describe
from ..buffer import ReplayBuffer
from ..callback import (
    AbstractCallback,
    CallbackList,
    CallbackStateError,
    EmptyCallback,
    IterationContext,
    ResetContext,
    RolloutContext,
    StepContext,
    TrainingContext,
)
from ..callback._discovery import published_names
from ..callback._invoke import (
    call_continue_training,
    call_on_rollout,
    call_on_step,
    call_on_training_end,
    call_on_training_start,
    call_reset,
    call_step_reset,
)
from ..callback._list import call_iteration, check_declared_types
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from ..space import Box
from ._finite import all_finite, all_finite_joined
from ._hyper import Timesteps, as_total_timesteps, counter_dtype, show
from ._rollout import Rollout
from ._status import NonFiniteError, StopReason, TrainingInterrupted, TrainStatus
from ._train_state import TrainResult, TrainState


@runtime_checkable
class _Trainable(Protocol):
    """What the loop calls of an algorithm
    ([`AbstractAlgorithm`][lerax.algorithm.AbstractAlgorithm] has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def num_envs(self) -> int: ...
    @property
    def num_steps(self) -> int: ...
    @property
    def steps_per_iteration(self) -> int: ...
    @property
    def host_call_every(self) -> int: ...
    def checked(self) -> Any: ...
    def num_iterations(self, total_timesteps: int) -> int: ...
    def initial_training_log(self) -> dict[str, Float[Array, ""]]: ...
    @property
    def loss_names(self) -> tuple[str, ...]: ...
    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: Any,
        num_iterations: int,
        *,
        key: Key,
    ) -> Any: ...
    def act(
        self,
        policy: Any,
        state: Any,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]: ...
    def update(
        self,
        policy: Any,
        state: Any,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[Any, Any, dict[str, Float[Array, ""]]]: ...
    def guarded_update(
        self,
        policy: Any,
        state: Any,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[Any, Any, dict[str, Float[Array, ""]], Bool[Array, ""]] | None: ...


def train(
    algo: _Trainable,
    env: AbstractEnv[Any, Any, Any],
    policy: AbstractPolicy[Any, Any],
    total_timesteps: Timesteps,
    *,
    key: Key,
    callback: object,
    interruptible: bool,
    check_finite: bool,
    resume_from: object = None,
) -> TrainResult[Any, Any, Any, Any]:
    """[`AbstractAlgorithm.train`][lerax.algorithm.AbstractAlgorithm.train]: check
    the arguments before anything compiles, run the compiled program, and
    called eagerly, raise for an abnormal stop."""
    check_env(env)
    check_policy(policy)
    total_timesteps = as_total_timesteps(total_timesteps)
    num_iterations = algo.num_iterations(total_timesteps)
    check_key(key)
    cb = as_callback(callback)
    if not isinstance(interruptible, bool):
        raise TypeError(
            f"interruptible must be a bool, got interruptible={interruptible!r}"
        )
    if not isinstance(check_finite, bool):
        raise TypeError(
            f"check_finite must be a bool, got check_finite={check_finite!r}"
        )
    check_policy_fits(env, policy)
    check_declared_types(cb, env, policy)
    # Before `_train`: concrete hyperparameters are checked here and add
    # nothing to its program; traced ones are checked in the caller's.
    algo = algo.checked()
    traced = _traced(key, policy, env, cb, algo)
    resume = as_resume(resume_from, traced)
    # Not interruptible too: the handler holds a Ctrl-C that comes while the
    # main thread runs a host call until the program has returned.
    _interrupt.install()
    result = _train(
        algo,
        env,
        policy,
        cb,
        total_timesteps,
        num_iterations,
        key,
        interruptible,
        check_finite,
        resume,
    )
    if not traced:
        # Called directly: what the savers queued is written before returning.
        for saver in cb.train_state_savers():
            saver.wait()
    _raise_if_abnormal(result, cb)
    return result


def _raise_if_abnormal(
    result: TrainResult[Any, Any, Any, Any],
    callback: AbstractCallback[Any, Any, Any, Any],
) -> None:
    """Called directly (eagerly), raise for an abnormal end: Ctrl-C as
    [`TrainingInterrupted`][lerax.algorithm.TrainingInterrupted]; a failure of one of
    the callback's host objects (a logging backend that failed during this call or
    before it) as the error its logger recorded; both with ``result`` attached. Under a
    transform (the status is traced) every run just returns its status. First, a
    Ctrl-C held while the main thread ran a host call goes to the previous SIGINT
    handler (by default ``KeyboardInterrupt``), as if it came now."""
    try:
        codes = np.asarray(result.status.code)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    _interrupt.deliver()
    if (codes == StopReason.INTERRUPTED).any():
        stopped = np.asarray(result.status.iteration)[codes == StopReason.INTERRUPTED]
        raise TrainingInterrupted(result, int(stopped.max()))
    if (codes == StopReason.NON_FINITE).any():
        # The first run in the row-major order of `run_index`.
        run = int(np.flatnonzero(codes.reshape(-1) == StopReason.NON_FINITE)[0])
        status = result.status
        iteration = int(np.asarray(status.iteration).reshape(-1)[run])
        quantity = int(np.asarray(status.quantity).reshape(-1)[run])
        raise NonFiniteError(result, iteration, run, status.quantities[quantity])
    try:
        ids = [int(i) for i in np.asarray(callback.host_ids()).reshape(-1)]
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    # The writer runs beside the program: a failure in its last iterations
    # stops no run but is reported all the same.
    errors = failures_of(ids)
    if errors:
        error = errors[0]
        setattr(error, "result", result)  # noqa: B010  # any exception type
        raise error


def _traced(*trees: object) -> bool:
    """Whether any array in ``trees`` is traced (``train`` runs under the
    user's ``jit``/``vmap``)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(trees))


def check_env(env: object) -> None:
    """Raise ``TypeError`` unless ``env`` is an
    [`AbstractEnv`][lerax.env.AbstractEnv]; a Gymnasium environment (told by its
    classes' module, or by ``unwrapped``/``step``/``reset``; Gymnasium is not
    imported) gets a message saying what Lerax trains on instead."""
    if isinstance(env, AbstractEnv):
        return
    allowed = (
        "env must be a Lerax environment (an instance of lerax.env.AbstractEnv, "
        "e.g. lerax.env.CartPole())"
    )
    if _stateful_env(env):
        raise TypeError(
            f"{allowed}, got a Gymnasium-style environment: env={show(env)}. "
            "Lerax trains on pure JAX environments, whose reset and step are "
            "functions of an explicit state and key compiled with the training "
            "loop, not on Gymnasium's stateful ones: use one of lerax.env's "
            "(CartPole, Acrobot, MountainCar, ContinuousMountainCar, Pendulum: "
            "Gymnasium's classic-control tasks) or subclass lerax.env.AbstractEnv"
        )
    raise TypeError(f"{allowed}, got env={show(env)}")


def _stateful_env(env: object) -> bool:
    """Whether ``env`` looks like a Gymnasium (or Gym) environment."""
    if any(
        cls.__module__.partition(".")[0] in ("gymnasium", "gym")
        for cls in type(env).__mro__
    ):
        return True
    return hasattr(env, "unwrapped") or (hasattr(env, "step") and hasattr(env, "reset"))


def check_policy(policy: object) -> None:
    """Raise ``TypeError`` unless ``policy`` is an
    [`AbstractPolicy`][lerax.policy.AbstractPolicy] (each algorithm then checks
    the kind it trains)."""
    if not isinstance(policy, AbstractPolicy):
        raise TypeError(
            "policy must be a Lerax policy (an instance of "
            "lerax.policy.AbstractPolicy built for env, e.g. "
            f"lerax.policy.MLPActorCriticPolicy(env=env, key=key)), got "
            f"policy={show(policy)}"
        )


def check_key(key: object) -> None:
    """Raise ``TypeError`` unless ``key`` is one JAX PRNG key: a typed key of
    shape ``()`` (``jax.random.key``) or legacy raw key data
    (``jax.random.PRNGKey``: uint32 of the default implementation's shape).
    Reads only the type, dtype and shape, so a traced key is checked too."""
    hint = ""
    if isinstance(key, jax.Array):
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            if key.shape == ():
                return
            hint = (
                f"; this is a batch of keys of shape {key.shape}: to train one run "
                "per key, eqx.filter_vmap over them"
            )
        elif key.dtype == np.uint32 and key.shape == _raw_key_shape():
            return
    raise TypeError(
        "key must be a JAX PRNG key: jax.random.key(seed) (a typed key of shape "
        "()) or a legacy jax.random.PRNGKey(seed) (uint32 of shape "
        f"{_raw_key_shape()}), got key={show(key)}{hint}"
    )


def _raw_key_shape() -> tuple[int, ...]:
    """The shape of ``jax.random.PRNGKey``'s raw key data (``(2,)`` for the
    default implementation), computed without running anything."""
    return tuple(jax.eval_shape(jr.PRNGKey, 0).shape)


def as_callback(callback: object) -> AbstractCallback[Any, Any, Any, Any]:
    """Normalise the ``callback`` argument of ``train``/``learn``."""
    if callback is None:
        return EmptyCallback()
    if isinstance(callback, AbstractCallback):
        return callback
    if isinstance(callback, list | tuple):
        return CallbackList(*callback)
    raise TypeError(
        "callback must be a callback (an AbstractCallback instance), a list of "
        f"callbacks or None, got {callback!r} of type {type(callback).__qualname__}"
    )


def check_policy_fits(
    env: AbstractEnv[Any, Any, Any], policy: AbstractPolicy[Any, Any]
) -> None:
    """Raise ``ValueError`` unless ``policy`` was built for ``env``'s spaces."""
    for what in ("observation_space", "action_space"):
        env_space = getattr(env, what)
        policy_space = getattr(policy, what)
        if env_space != policy_space:
            raise ValueError(
                f"policy {policy.name} was built for {what}={policy_space}, but env "
                f"{env.name} has {what}={env_space}; build the policy with env={env.name}"
            )


CheckpointLoader = Callable[[str | os.PathLike[str]], TrainState[Any, Any, Any, Any]]
_checkpoint_loader: list[CheckpointLoader] = []


def set_checkpoint_loader(loader: CheckpointLoader) -> None:
    """Name the function that reads a checkpoint path for ``resume_from``
    (``lerax.checkpoint.load``, which registers itself when imported: the
    checkpoint layer sits above this one)."""
    _checkpoint_loader[:] = [loader]


def as_resume(
    resume_from: object, traced: bool
) -> TrainState[Any, Any, Any, Any] | None:
    """Normalise ``train``'s ``resume_from``: ``None``, a
    [`TrainState`][lerax.algorithm.TrainState], or (``traced`` false: called
    directly) a checkpoint path, read by ``lerax.checkpoint.load``."""
    if resume_from is None or isinstance(resume_from, TrainState):
        return resume_from
    if isinstance(resume_from, str | os.PathLike):
        if traced:
            raise TypeError(
                f"resume_from={resume_from!r} is a path, but train is traced (under "
                "jit or vmap), where no file can be read: load it first, outside "
                "the transform, with lerax.checkpoint.load(path), and pass the "
                "TrainState (a vmapped batch resumes under eqx.filter_vmap over it)"
            )
        # `import lerax` imports lerax.checkpoint, which registers its loader.
        (load,) = _checkpoint_loader
        return load(resume_from)
    raise TypeError(
        "resume_from must be a TrainState (a TrainResult's train_state, or "
        "lerax.checkpoint.load(path)), a checkpoint path, or None, got "
        f"resume_from={show(resume_from)}"
    )


# The parts of a TrainState a resume takes from the saved state, and for each
# whether its static configuration must be equal too (a policy's activation,
# say); the algorithm's state may hold static parts that depend on the run's
# length (schedules), which follow the new run.
_RESUMED_PARTS: tuple[tuple[str, bool], ...] = (
    ("policy", True),
    ("algorithm_state", False),
    ("callback_state", False),
    ("callback_step_state", False),
    ("env_state", False),
    ("observation", False),
    ("training_log", False),
    ("metrics", False),
)


def _resumed(
    fresh: TrainState[Any, Any, Any, Any], saved: TrainState[Any, Any, Any, Any]
) -> TrainState[Any, Any, Any, Any]:
    """``fresh`` (the state this call would start from) continued from
    ``saved``: its policy, algorithm, callback and environment states,
    observations, metrics, counters and loop key, checked to have the same
    structure. The algorithm (its hyperparameter values may differ: fine
    tuning), the run's length and a cleared status are this call's."""
    _check_same("algorithm", fresh.algorithm, saved.algorithm, statics=True)
    for part, statics in _RESUMED_PARTS:
        _check_same(part, getattr(fresh, part), getattr(saved, part), statics)
    replaced = {
        part: _with_arrays(getattr(fresh, part), getattr(saved, part))
        for part, _ in _RESUMED_PARTS
    }
    hyperparameters = jax.tree.leaves(eqx.filter(fresh.algorithm, eqx.is_array))
    saved_hyperparameters = jax.tree.leaves(eqx.filter(saved.algorithm, eqx.is_array))
    changed = jnp.any(
        jnp.stack(
            [
                jnp.any(a != b)
                for a, b in zip(hyperparameters, saved_hyperparameters, strict=True)
            ]
            or [jnp.array(False)]
        )
    )
    replaced["algorithm_state"] = _fresh_hyperparameters(
        fresh.algorithm_state, replaced["algorithm_state"], changed
    )
    status = dataclasses.replace(fresh.status, iteration=saved.iteration)
    return dataclasses.replace(
        fresh,
        **replaced,
        iteration=saved.iteration.astype(fresh.iteration.dtype),
        timesteps=saved.timesteps.astype(fresh.timesteps.dtype),
        key=saved.key,
        status=status,
    )


_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def _fresh_hyperparameters(
    fresh: PyTree, resumed: PyTree, changed: Bool[Array, ""]
) -> PyTree:
    """``resumed`` where ``changed`` is false; where it is true (this call's
    hyperparameters differ from the saved run's: fine-tuning), the values
    that ``optax.inject_hyperparams`` keeps in optimizer states (a constant
    learning rate; a schedule's are recomputed at every update) are
    ``fresh``'s, so that they follow this call's algorithm."""

    def is_injected(x: object) -> bool:
        return isinstance(x, _INJECTED)

    fresh_nodes = jax.tree.leaves(fresh, is_leaf=is_injected)
    resumed_nodes, treedef = jax.tree.flatten(resumed, is_leaf=is_injected)
    picked = [
        r._replace(
            hyperparams=jax.tree.map(
                lambda a, b: jnp.where(changed, a, b), f.hyperparams, r.hyperparams
            )
        )
        if isinstance(r, _INJECTED) and isinstance(f, _INJECTED)
        else r
        for f, r in zip(fresh_nodes, resumed_nodes, strict=True)
    ]
    return jax.tree.unflatten(treedef, picked)


def _with_arrays(fresh: PyTree, saved: PyTree) -> PyTree:
    """``fresh`` with ``saved``'s array leaves, in order (their paths, shapes
    and dtypes checked equal): static parts, which may differ (a schedule's
    length), stay ``fresh``'s."""
    arrays, static = eqx.partition(fresh, eqx.is_array)
    leaves = jax.tree.leaves(eqx.filter(saved, eqx.is_array))
    return eqx.combine(jax.tree.unflatten(jax.tree.structure(arrays), leaves), static)


def _check_same(part: str, fresh: PyTree, saved: PyTree, statics: bool) -> None:
    """Raise ``ValueError`` naming the first path where ``saved`` (the state
    resumed from) and ``fresh`` (this call's) differ: in structure, in a
    leaf's shape or dtype, or (``statics``) in a static field's value."""
    saved_items = _items(saved, statics)
    fresh_items = _items(fresh, statics)
    for (path, text), (other_path, other) in zip(
        saved_items, fresh_items, strict=False
    ):
        if path != other_path or text != other:
            where = path if path == other_path else f"{path} / {other_path}"
            raise ValueError(
                f"resume_from does not fit this run: at {part}{where} the saved "
                f"state has {text} where this run has {other}"
                f"{'' if path == other_path else f' (at {part}{other_path})'}; "
                "resume with the same algorithm configuration (static fields "
                "and hyperparameter shapes), environment, policy and callbacks "
                "as the run that was saved"
            )
    if len(saved_items) != len(fresh_items):
        longer, which = (
            (saved_items, "the saved state")
            if len(saved_items) > len(fresh_items)
            else (fresh_items, "this run")
        )
        path, text = longer[min(len(saved_items), len(fresh_items))]
        raise ValueError(
            f"resume_from does not fit this run: only {which} has {part}{path} ({text})"
        )


def _items(tree: PyTree, statics: bool) -> list[tuple[str, str]]:
    """``(path, text)`` for every node type, leaf shape and dtype (and with
    ``statics``, static field value) of ``tree``, depth first."""
    items: list[tuple[str, str]] = []
    for item in describe(tree).items:
        if isinstance(item, LeafInfo):
            items.append((item.path, item.show()))
        elif statics or not item[1].startswith("static "):
            items.append(item)
    return items


def _env_action(space: object, action: ArrayTree) -> ArrayTree:
    """The action the environment receives: Box actions are clipped to bounds."""
    if isinstance(space, Box):
        return jnp.clip(action, jnp.asarray(space.low), jnp.asarray(space.high))
    return action


def _batched_where(pred: Bool[Array, " batch"], a: PyTree, b: PyTree) -> PyTree:
    """``a`` where ``pred`` else ``b``, per element of the leading axis."""

    def pick(x: Array, y: Array) -> Array:
        return jnp.where(pred.reshape(pred.shape + (1,) * (x.ndim - 1)), x, y)

    return jax.tree.map(pick, a, b)


# Every key of a run comes from a few `jr.split` calls with fixed shapes: one
# before the loop and one per iteration (plus what the policy, environment and
# update draw). Each distinct random-number call site costs XLA about 0.1 s of
# compilation on CPU, so the loop draws everything an iteration needs at once.
# Callbacks get keys of their own from the same splits, so a callback that
# does not stop training never changes what is learned.
_STEP_KEYS = 4  # per env step: act, env step, env reset, on_step
_ITERATION_KEYS = 4  # per iteration: next iteration, update, on_iteration, continue


@eqx.filter_jit
def _train(
    algo: _Trainable,
    env: AbstractEnv[Any, Any, Any],
    policy: AbstractPolicy[Any, Any],
    callback: AbstractCallback[Any, Any, Any, Any],
    total_timesteps: int,
    num_iterations: int,
    key: Key,
    interruptible: bool,
    check_finite: bool,
    resume: TrainState[Any, Any, Any, Any] | None,
) -> TrainResult[Any, Any, Any, Any]:
    num_envs, num_steps = algo.num_envs, algo.num_steps
    steps_per_iteration = num_envs * num_steps
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        # A raw uint32 key (`jax.random.PRNGKey`): the same key, typed, so the
        # batches of keys below have one shape whatever the caller passed.
        key = jr.wrap_key_data(key)
    # [env resets | train | callbacks: reset, start, end | callback step resets
    #  | algorithm state]
    run_keys = jr.split(key, 2 * num_envs + 5)
    reset_keys, train_key = run_keys[:num_envs], run_keys[num_envs]
    k_reset, k_start, k_end = run_keys[num_envs + 1 : num_envs + 4]
    step_reset_keys = run_keys[num_envs + 4 : 2 * num_envs + 4]
    k_algorithm = run_keys[2 * num_envs + 4]

    index = run_index(
        (
            jr.key_data(key),
            eqx.filter(policy, eqx.is_array),
            eqx.filter(env, eqx.is_array),
            eqx.filter(callback, eqx.is_array),
            eqx.filter(algo, eqx.is_array),
            eqx.filter(resume, eqx.is_array),
        )
    )
    algorithm_state = algo.init_state(env, policy, num_iterations, key=k_algorithm)
    env_states, observations = jax.vmap(lambda k: env.reset(key=k))(reset_keys)
    reset_ctx = ResetContext(
        env=env,
        policy=policy,
        algorithm_state=algorithm_state,
        algorithm=algo,
        total_timesteps=total_timesteps,
        num_envs=num_envs,
        run_index=index,
    )
    metric_names = published_names(callback, reset_ctx, key=k_reset)
    reset_ctx = dataclasses.replace(reset_ctx, metric_names=metric_names)
    # What no callback has published yet reads NaN.
    no_metrics = {name: jnp.full((), jnp.nan, jnp.float32) for name in metric_names}
    cb_state = call_reset(callback, reset_ctx, key=k_reset)
    cb_step_state = jax.vmap(lambda k: call_step_reset(callback, reset_ctx, key=k))(
        step_reset_keys
    )
    # Only callbacks read the training log: when none does, the update skips
    # it and the contexts hold an empty one (a hook that reads it anyway
    # fails while tracing instead of reading the initial zeros).
    need_log = callback.reads_training_log()

    def ctx_log(log: TrainingLog) -> TrainingLog:
        return log if need_log else {}

    # int32, or int64 with jax_enable_x64 (what `num_iterations` checked against).
    zero = jnp.zeros((), counter_dtype())

    def training_ctx(s: TrainState[Any, Any, Any, Any]) -> TrainingContext[Any, Any]:
        return TrainingContext(
            state=s.callback_state,
            step_state=s.callback_step_state,
            env=env,
            policy=s.policy,
            algorithm_state=s.algorithm_state,
            training_log=ctx_log(s.training_log),
            iteration_count=s.iteration,
            num_timesteps=s.timesteps,
            total_timesteps=total_timesteps,
            algorithm=algo,
            run_index=index,
            metrics=s.metrics,
        )

    # Ctrl-C: the program tells the host it runs (its result starts the
    # status, so the call comes first), polls every `interrupt_every`
    # iterations and says when it has ended.
    interrupt_every = algo.host_call_every if interruptible else 0
    # The host objects the callback writes through (their failures stop runs).
    declared = callback.host_ids()
    savers = callback.train_state_savers()
    ids = jnp.stack(declared) if declared else jnp.zeros((0,), jnp.int32)
    started = (
        poll(_interrupt.begin, jnp.array(True)) if interruptible else jnp.asarray(0)
    )
    loss_names = algo.loss_names
    quantities = (
        "reward",
        "observation",
        *(f"training_log[{name!r}]" for name in loss_names),
        "loss or gradient",
        "policy parameters",
    )
    state = TrainState(
        policy=policy,
        algorithm_state=algorithm_state,
        callback_state=cb_state,
        callback_step_state=cb_step_state,
        env_state=env_states,
        observation=observations,
        training_log=algo.initial_training_log(),
        metrics=no_metrics,
        iteration=zero,
        timesteps=zero,
        status=TrainStatus(
            code=jnp.asarray(started, jnp.int32),
            iteration=zero,
            quantity=jnp.asarray(-1, jnp.int32),
            quantities=quantities,
        ),
        key=train_key,
        algorithm=algo,
        total_timesteps=total_timesteps,
        num_iterations=num_iterations,
    )
    if resume is not None:
        state = _resumed(state, resume)
    state = eqx.tree_at(
        lambda s: s.callback_state,
        state,
        call_on_training_start(callback, training_ctx(state), key=k_start),
    )

    def collect(
        s: TrainState[Any, Any, Any, Any],
        active: Bool[Array, ""],
        keys: PRNGKey[Array, "steps envs 4"],
    ) -> tuple[Rollout, PyTree, ArrayTree, Any]:
        policy, algorithm_state = s.policy, s.algorithm_state

        def one_env(
            env_state: PyTree,
            obs: ArrayTree,
            step_state: Any,
            step_timesteps: Int[Array, ""],
            keys: PRNGKey[Array, " 4"],
        ) -> tuple[PyTree, ArrayTree, Bool[Array, ""], Any, tuple[Any, ...]]:
            k_act, k_step, _, cb_key = keys
            action, extras = algo.act(
                policy, algorithm_state, obs, timestep=step_timesteps, key=k_act
            )
            ts = env.step(env_state, _env_action(env.action_space, action), key=k_step)
            step_ctx = StepContext(
                state=step_state,
                env=env,
                policy=policy,
                algorithm_state=algorithm_state,
                training_log=ctx_log(s.training_log),
                observation=obs,
                action=action,
                next_observation=ts.observation,
                reward=ts.reward,
                terminated=ts.terminated,
                truncated=ts.truncated,
                iteration_count=s.iteration,
                num_timesteps=step_timesteps,
                locals=extras,
                algorithm=algo,
                run_index=index,
                active=active,
            )
            step_state = call_on_step(callback, step_ctx, key=cb_key)
            record = (
                obs,
                action,
                ts.reward,
                ts.terminated,
                ts.truncated,
                ts.observation,
                extras,
            )
            return ts.state, ts.observation, ts.done, step_state, record

        def step(
            carry: tuple[PyTree, ArrayTree, Any],
            xs: tuple[Int[Array, ""], PRNGKey[Array, "envs 4"]],
        ) -> tuple[tuple[PyTree, ArrayTree, Any], tuple[Any, ...]]:
            env_states, observations, cb_step_state = carry
            t, step_keys = xs
            step_timesteps = s.timesteps + t * num_envs
            stepped_states, stepped_obs, done, cb_step_state, record = jax.vmap(
                one_env, in_axes=(0, 0, 0, None, 0)
            )(env_states, observations, cb_step_state, step_timesteps, step_keys)
            # Automatic resets, drawn only at steps where an episode ended: a
            # real branch for a single run (most steps skip the reset and its
            # random draw); under vmap over runs both branches run, as before.
            reset_keys = step_keys[:, 2]
            stepped = (stepped_states, stepped_obs)
            resets = jax.lax.cond(
                jnp.any(done),
                lambda: jax.vmap(lambda k: env.reset(key=k))(reset_keys),
                lambda: stepped,
            )
            env_states, observations = _batched_where(done, resets, stepped)
            return (env_states, observations, cb_step_state), record

        (env_states, observations, cb_step_state), records = jax.lax.scan(
            step,
            (s.env_state, s.observation, s.callback_step_state),
            (jnp.arange(num_steps, dtype=zero.dtype), keys),
        )
        obs, actions, rewards, terminated, truncated, next_obs, extras = records
        rollout = Rollout(
            observations=obs,
            actions=actions,
            rewards=rewards,
            terminated=terminated,
            truncated=truncated,
            next_observations=next_obs,
            extras=extras,
            last_observations=observations,
            timesteps=s.timesteps,
        )
        return rollout, env_states, observations, cb_step_state

    # The loop carries the state's arrays; the rest (functions, static
    # configuration) stays outside the compiled loop.
    carry, static = eqx.partition(state, eqx.is_array)

    def cond(carry: PyTree) -> Bool[Array, ""]:
        # Unbatched under vmap (the loop runs while any run is active; the
        # body keeps stopped runs as they were), so the body may make host
        # calls, which JAX refuses in a loop with a batched predicate.
        return any_run(eqx.combine(carry, static).running)

    def body(old: PyTree) -> PyTree:
        s: TrainState[Any, Any, Any, Any] = eqx.combine(old, static)
        # Under vmap the loop runs until every run stops; a stopped run's body
        # still executes (its results are discarded), so hooks are told.
        active = s.running
        keys = jr.split(s.key, _ITERATION_KEYS + num_steps * num_envs * _STEP_KEYS)
        loop_key, k_update, k_cb_iter, k_cb_continue = keys[:_ITERATION_KEYS]
        step_keys = keys[_ITERATION_KEYS:].reshape(num_steps, num_envs, _STEP_KEYS)
        rollout, env_states, observations, cb_step_state = collect(s, active, step_keys)
        rollout_ctx = RolloutContext(
            state=cb_step_state,
            env=env,
            policy=s.policy,
            algorithm_state=s.algorithm_state,
            training_log=ctx_log(s.training_log),
            observations=rollout.observations,
            actions=rollout.actions,
            next_observations=rollout.next_observations,
            rewards=rollout.rewards,
            terminated=rollout.terminated,
            truncated=rollout.truncated,
            iteration_count=s.iteration,
            num_timesteps=s.timesteps,
            locals=rollout.extras,
            algorithm=algo,
            run_index=index,
            active=active,
        )
        # Its own key, folded from on_iteration's: the loop's split (and so
        # everything an existing run draws) stays as it was.
        k_cb_rollout = jr.fold_in(k_cb_iter, 1)
        cb_step_state = call_on_rollout(callback, rollout_ctx, key=k_cb_rollout)
        # An algorithm that guards its own updates (with the check on) stops
        # changing its policy and state at its first non-finite loss or
        # gradient, so a stop needs no copy of them from before the update.
        guarded = (
            algo.guarded_update(
                s.policy, s.algorithm_state, rollout, key=k_update, need_log=need_log
            )
            if check_finite
            else None
        )
        if guarded is None:
            policy, algorithm_state, log = algo.update(
                s.policy, s.algorithm_state, rollout, key=k_update, need_log=need_log
            )
            update_finite = jnp.array(True)
        else:
            policy, algorithm_state, log, update_finite = guarded
        training_log: TrainingLog = log if need_log else s.training_log
        iteration = s.iteration + 1
        timesteps = s.timesteps + steps_per_iteration
        iter_ctx = IterationContext(
            state=s.callback_state,
            step_state=cb_step_state,
            env=env,
            policy=policy,
            algorithm_state=algorithm_state,
            training_log=ctx_log(training_log),
            iteration_count=iteration,
            num_timesteps=timesteps,
            total_timesteps=total_timesteps,
            algorithm=algo,
            run_index=index,
            active=active,
            metrics=s.metrics,
        )
        # on_iteration, then metrics (member by member in a CallbackList).
        cb_state, published = call_iteration(callback, iter_ctx, key=k_cb_iter)
        _check_published(metric_names, published)
        metrics = {**s.metrics, **published}
        keep_going = call_continue_training(
            callback,
            dataclasses.replace(iter_ctx, state=cb_state, metrics=metrics),
            key=k_cb_continue,
        )
        code = _stop_code(
            keep_going, iteration < num_iterations, iteration, interrupt_every, ids
        )
        if check_finite:
            quantity = _first_non_finite(
                rollout,
                training_log if need_log else {},
                loss_names,
                update_finite,
                policy,
            )
        else:
            quantity = jnp.asarray(-1, jnp.int32)
        new = TrainState(
            policy=policy,
            algorithm_state=algorithm_state,
            callback_state=cb_state,
            callback_step_state=cb_step_state,
            env_state=env_states,
            observation=observations,
            training_log=training_log,
            metrics=metrics,
            iteration=iteration,
            timesteps=timesteps,
            status=TrainStatus(
                code=code,
                iteration=iteration,
                quantity=quantity,
                quantities=quantities,
            ),
            key=loop_key,
            algorithm=s.algorithm,
            total_timesteps=total_timesteps,
            num_iterations=num_iterations,
        )
        new_carry, _ = eqx.partition(new, eqx.is_array)
        if check_finite and guarded is not None:
            # The policy and algorithm state are the update's either way; the
            # rest (counters, environments, callback states) goes through a
            # branch: a select per leaf would run every iteration, one kernel
            # per leaf of every callback's state. A stopped run's rest is from
            # before the iteration (its loop key too); the algorithm stopped
            # changing its own part at the first non-finite value it met.
            status = _non_finite_status(new_carry, iteration, quantity)
            rest = jax.lax.cond(
                quantity < 0,
                lambda: _without_update(new_carry),
                lambda: _without_update(eqx.tree_at(lambda c: c.status, old, status)),
            )
            new_carry = eqx.tree_at(
                lambda c: (c.policy, c.algorithm_state),
                rest,
                (new_carry.policy, new_carry.algorithm_state),
                is_leaf=lambda x: x is None,
            )
        elif check_finite:
            new_carry = jax.lax.cond(
                quantity < 0,
                lambda: new_carry,
                lambda: _non_finite_stop(old, new_carry, iteration, quantity),
            )
        # A run that had stopped keeps everything as it was (its counters and
        # loop key too, so that it resumes as a single run would).
        kept = select_runs(active, new_carry, old)
        for saver in savers:
            saver.save_train_state(
                eqx.combine(kept, static), run_index=index, stepped=active, final=False
            )
        return kept

    carry = jax.lax.while_loop(cond, body, carry)
    state = eqx.combine(carry, static)
    for saver in savers:
        saver.save_train_state(
            state, run_index=index, stepped=jnp.array(True), final=True
        )
    if interruptible:
        poll(_interrupt.end, state.iteration >= 0)
    state = eqx.tree_at(
        lambda s: s.callback_state,
        state,
        call_on_training_end(callback, training_ctx(state), key=k_end),
    )
    return TrainResult(train_state=state)


def _first_non_finite(
    rollout: Rollout,
    training_log: TrainingLog,
    loss_names: tuple[str, ...],
    update_finite: Bool[Array, ""],
    policy: AbstractPolicy[Any, Any],
) -> Int[Array, ""]:
    """The index in ``TrainStatus.quantities`` of the first quantity of this
    iteration that is not all finite (-1 if all are): the rollout's rewards,
    its observations (those acted on and those that followed, before the
    automatic resets), the losses in ``training_log`` (empty when the update
    did not compute its log), the losses and gradients of an algorithm that
    guards its updates (``update_finite``) and the updated policy's
    parameters."""
    losses = [
        jnp.isfinite(training_log[name]) if name in training_log else jnp.array(True)
        for name in loss_names
    ]
    finite = jnp.stack(
        [
            all_finite(rollout.rewards),
            all_finite((rollout.observations, rollout.next_observations)),
            *losses,
            update_finite,
            all_finite_joined(eqx.filter(policy, eqx.is_inexact_array)),
        ]
    )
    first = jnp.argmin(finite).astype(jnp.int32)
    return jnp.where(finite.all(), jnp.asarray(-1, jnp.int32), first)


def _without_update(carry: PyTree) -> PyTree:
    """``carry`` without its policy and algorithm state (``None`` there)."""
    return eqx.tree_at(lambda c: (c.policy, c.algorithm_state), carry, (None, None))


def _non_finite_status(
    new: PyTree, iteration: Int[Array, ""], quantity: Int[Array, ""]
) -> TrainStatus:
    """``new``'s status, changed to ``NON_FINITE`` at ``iteration`` for
    ``quantity``."""
    status: TrainStatus = new.status
    return dataclasses.replace(
        status,
        code=jnp.asarray(StopReason.NON_FINITE, jnp.int32),
        iteration=iteration,
        quantity=quantity,
    )


def _non_finite_stop(
    old: PyTree,
    new: PyTree,
    iteration: Int[Array, ""],
    quantity: Int[Array, ""],
) -> PyTree:
    """The carry of a run whose unguarded update met a non-finite value in
    ``iteration``: its state from before the iteration (``old``, its loop
    key too), stopped with status ``NON_FINITE`` and ``quantity``. A replay
    buffer in the algorithm's state is the new one (it may hold the
    iteration's transitions), which keeps a large buffer from being copied
    every iteration to keep the old one."""
    status = _non_finite_status(new, iteration, quantity)
    is_buffer = lambda x: isinstance(x, ReplayBuffer)  # noqa: E731
    algorithm_state = jax.tree.map(
        lambda o, n: n if isinstance(n, ReplayBuffer) else o,
        old.algorithm_state,
        new.algorithm_state,
        is_leaf=is_buffer,
    )
    return eqx.tree_at(
        lambda c: (c.algorithm_state, c.status), old, (algorithm_state, status)
    )


def _poll_stop(ids: list[int]) -> int:
    """Host side of the loop's poll: bit 0, Ctrl-C asks to stop; bit 1, a
    host object of the callback (``ids``) has failed."""
    return int(_interrupt.requested()) | _poll_failure(ids)


def _poll_failure(ids: list[int]) -> int:
    """The poll when training is not interruptible: failures only."""
    return 2 if failures_of(ids) else 0


def _stop_code(
    keep_going: Bool[Array, ""],
    more: Bool[Array, ""],
    iteration: Int[Array, ""],
    interrupt_every: int,
    host_ids: Int[Array, " n"],
) -> Int[Array, ""]:
    """This iteration's [`StopReason`][lerax.algorithm.StopReason] (COMPLETED: go on).
    ``more``: the run has iterations left. The host is asked only when a callback with
    host objects stops the run (to tell a logging failure from a callback's decision)
    or, every ``interrupt_every`` iterations (0: never), whether Ctrl-C was pressed."""
    stopping = jnp.logical_not(keep_going)
    if interrupt_every:
        due = jnp.logical_and(iteration % interrupt_every == 0, more)
        flags = poll(_poll_stop, jnp.logical_or(stopping, due), host_ids)
    elif host_ids.shape[0]:
        flags = poll(_poll_failure, stopping, host_ids)
    else:  # nothing to ask the host
        flags = jnp.zeros((), jnp.int32)
    interrupted = jnp.logical_and((flags & 1) != 0, more)
    failed = (flags & 2) != 0
    by_callback = jnp.logical_and(stopping, more)
    return jnp.select(
        [interrupted, jnp.logical_and(stopping, failed), by_callback],
        [StopReason.INTERRUPTED, StopReason.LOGGING_FAILED, StopReason.CALLBACK],
        StopReason.COMPLETED,
    ).astype(jnp.int32)


def _check_published(
    names: tuple[str, ...], published: dict[str, Float[Array, ""]]
) -> None:
    """The names published in the loop are those found before it (a callback
    that publishes a name only sometimes cannot be carried)."""
    if tuple(sorted(published)) != names:
        raise CallbackStateError(
            f"the callbacks published the metrics {sorted(published)} in the "
            f"training loop but {list(names)} on the first iteration's context; "
            "a callback must publish the same names every iteration"
        )
