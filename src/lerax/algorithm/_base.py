"""The abstract algorithm: the one training loop that owns every callback hook."""

import abc
from collections.abc import Mapping
from typing import Any, Generic, TypeAlias, final, overload

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, Int, PyTree, Shaped
from jaxtyping import Key as PRNGKey
from typing_extensions import TypeVar

from .. import _interrupt
from .._custom_types import ArrayTree, Key, OptState, TrainingLog
from .._host import any_run, failures_of, poll, run_index, select_runs
from ..callback._base import (
    AbstractCallback,
    EmptyCallbackState,
    EmptyCallbackStepState,
)
from ..callback._context import (
    IterationContext,
    ResetContext,
    StepContext,
    TrainingContext,
)
from ..callback._empty import EmptyCallback
from ..callback._invoke import (
    call_continue_training,
    call_on_iteration,
    call_on_step,
    call_on_training_end,
    call_on_training_start,
    call_reset,
    call_step_reset,
)
from ..callback._list import CallbackLike, CallbackList, CallbackSequence
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from ..space import Box
from ._status import StopReason, TrainingInterrupted, TrainStatus

PolicyBoundT = TypeVar("PolicyBoundT", bound=AbstractPolicy[Any, Any])
P = TypeVar("P", bound=AbstractPolicy[Any, Any])
E = TypeVar("E", bound=AbstractEnv[Any, Any, Any])
S = TypeVar("S")
T = TypeVar("T")


@final
class Rollout(eqx.Module):
    """What one iteration's rollout collected, leading axes ``[num_steps, num_envs]``.

    Attributes:
        observations: the observations actions were chosen on.
        actions: the actions as the policy produced them (before clipping).
        rewards: raw environment rewards.
        terminated: the episode reached a terminal state at this step.
        truncated: the episode hit its time limit at this step.
        next_observations: the observation after each step, before any
            automatic reset (bootstrap from these on truncation).
        extras: what the algorithm's
            [`AbstractAlgorithm.act`][lerax.algorithm.AbstractAlgorithm.act] returned
            per step (e.g. ``log_prob`` and ``value`` for PPO).
        last_observations: the observations the next rollout starts from,
            leading axis ``[num_envs]``.
    """

    observations: ArrayTree
    actions: ArrayTree
    rewards: Float[Array, "steps envs"]
    terminated: Bool[Array, "steps envs"]
    truncated: Bool[Array, "steps envs"]
    next_observations: ArrayTree
    extras: Mapping[str, Shaped[Array, "steps envs *rest"]]
    last_observations: ArrayTree


@final
class TrainResult(eqx.Module, Generic[P, S, T]):
    """Everything a training run ends with.

    Under ``eqx.filter_vmap`` over seeds every leaf gains a leading seed axis.

    Attributes:
        policy: the trained policy.
        opt_state: the optimizer state at the end, over what the algorithm
            optimises
            ([`AbstractAlgorithm.init_optimizer_state`][lerax.algorithm.AbstractAlgorithm.init_optimizer_state];
            for PPO one flat parameter vector). ``current_learning_rate`` reads it.
        callback_state: the callback's iteration-level state at the end.
        callback_step_state: the callback's step states, leading axis ``num_envs``.
        iterations: iterations actually run (fewer than planned on early stop).
        timesteps: environment steps actually taken, over all environments.
        status: whether and why the run stopped early, and at which iteration.
    """

    policy: P
    opt_state: OptState
    callback_state: S
    callback_step_state: T
    iterations: Int[Array, ""]
    timesteps: Int[Array, ""]
    status: TrainStatus


class AbstractAlgorithm(eqx.Module, Generic[PolicyBoundT]):
    """Base class of training algorithms.

    It owns the one training loop
    ([`train`][lerax.algorithm.AbstractAlgorithm.train] and
    [`learn`][lerax.algorithm.AbstractAlgorithm.learn]), including every callback
    hook call, automatic environment resets and early stopping. An algorithm
    supplies only:

    - [`optimizer`][lerax.algorithm.AbstractAlgorithm.optimizer]: the optax
      transformation it updates the policy with;
    - [`act`][lerax.algorithm.AbstractAlgorithm.act]: what the policy does at one step
      of the rollout;
    - [`update`][lerax.algorithm.AbstractAlgorithm.update]: the update from one rollout;
    - [`initial_training_log`][lerax.algorithm.AbstractAlgorithm.initial_training_log]:
      the names of its training statistics.

    and may override
    [`init_optimizer_state`][lerax.algorithm.AbstractAlgorithm.init_optimizer_state]
    when its update optimises another representation of the parameters than the policy's
    array leaves, and
    [`update_without_log`][lerax.algorithm.AbstractAlgorithm.update_without_log], the
    update the loop runs when no callback can read the training log.

    Each iteration collects ``num_steps`` steps from each of ``num_envs``
    parallel environments, then updates.
    """

    num_envs: eqx.AbstractVar[int]
    num_steps: eqx.AbstractVar[int]

    @abc.abstractmethod
    def optimizer(self, num_iterations: int) -> optax.GradientTransformation:
        """The optimizer, given how many iterations training will run."""

    def init_optimizer_state(
        self, optimizer: optax.GradientTransformation, policy: PolicyBoundT
    ) -> OptState:
        """The optimizer state training starts from. By default ``optimizer``
        initialised on the policy's floating-point array leaves; an algorithm
        that optimises another representation of the parameters (e.g. one flat
        vector) overrides it to match its
        [`update`][lerax.algorithm.AbstractAlgorithm.update]."""
        return optimizer.init(eqx.filter(policy, eqx.is_inexact_array))

    @abc.abstractmethod
    def act(
        self, policy: PolicyBoundT, observation: ArrayTree, *, key: Key
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        """Choose an action for one (unbatched) observation.

        Returns the action and named per-step arrays to store in the rollout
        ([`Rollout.extras`][lerax.algorithm.Rollout]); callbacks see the latter as
        ``ctx.locals`` in ``on_step``.
        """

    @abc.abstractmethod
    def update(
        self,
        policy: PolicyBoundT,
        optimizer: optax.GradientTransformation,
        opt_state: OptState,
        rollout: Rollout,
        *,
        key: Key,
    ) -> tuple[PolicyBoundT, OptState, dict[str, Float[Array, ""]]]:
        """Update the policy from one rollout with ``optimizer`` (what
        [`optimizer`][lerax.algorithm.AbstractAlgorithm.optimizer] returned for this
        run); return the policy, the optimizer state and the training log (scalar
        statistics by name)."""

    def update_without_log(
        self,
        policy: PolicyBoundT,
        optimizer: optax.GradientTransformation,
        opt_state: OptState,
        rollout: Rollout,
        *,
        key: Key,
    ) -> tuple[PolicyBoundT, OptState]:
        """What the loop calls instead of
        [`update`][lerax.algorithm.AbstractAlgorithm.update] when nothing can read the
        training log (training without a callback). It must update exactly as
        [`update`][lerax.algorithm.AbstractAlgorithm.update] does. By default it is
        [`update`][lerax.algorithm.AbstractAlgorithm.update] with the log dropped (XLA
        then drops the work only the log needed); an algorithm overrides it when its
        cheapest program without the log has another shape (PPO: one loop over all
        epochs instead of a separate last epoch for its statistics)."""
        policy, opt_state, _ = self.update(
            policy, optimizer, opt_state, rollout, key=key
        )
        return policy, opt_state

    @abc.abstractmethod
    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        """The training log before the first update: every name
        [`update`][lerax.algorithm.AbstractAlgorithm.update] reports, with value
        zero."""

    @property
    def name(self) -> str:
        """A short name for logs (the class name)."""
        return type(self).__name__

    @property
    def host_call_every(self) -> int:
        """Iterations between periodic host calls: the loop's Ctrl-C poll,
        and the logging callbacks' sending of buffered records and progress.
        Every iteration by default. A host call in the middle of the compiled
        program costs far more than its own work (XLA's threads stop and
        start again around it); an algorithm whose iterations are short
        returns more, so that host calls stay a small part of the time
        (BENCHMARKS.md has their cost for PPO)."""
        return 1

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps per iteration, over all environments."""
        return self.num_envs * self.num_steps

    def num_iterations(self, total_timesteps: int) -> int:
        """How many iterations ``total_timesteps`` buys (rounded down).

        Raises:
            ValueError: if it buys none.
        """
        if isinstance(total_timesteps, bool) or not isinstance(total_timesteps, int):
            raise TypeError(f"total_timesteps must be an int, got {total_timesteps!r}")
        n = total_timesteps // self.steps_per_iteration
        if n < 1:
            raise ValueError(
                f"total_timesteps={total_timesteps} is smaller than one iteration: "
                f"{self.name} takes num_envs * num_steps = {self.num_envs} * "
                f"{self.num_steps} = {self.steps_per_iteration} environment steps "
                f"per iteration, so total_timesteps must be at least "
                f"{self.steps_per_iteration}"
            )
        return n

    # The three overloads give the result the callback's state types.
    @overload
    def train(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: None = None,
        interruptible: bool = True,
    ) -> TrainResult[P, EmptyCallbackState, EmptyCallbackStepState]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: AbstractCallback[S, T, E, P],
        interruptible: bool = True,
    ) -> TrainResult[P, S, T]: ...
    @overload
    def train(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: CallbackSequence,
        interruptible: bool = True,
    ) -> TrainResult[P, tuple[Any, ...], tuple[Any, ...]]: ...
    def train(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: CallbackLike | None = None,
        interruptible: bool = True,
    ) -> TrainResult[P, Any, Any]:
        """Train ``policy`` on ``env`` for ``total_timesteps`` environment steps.

        The whole run (environment steps, updates and callbacks) is one compiled
        program; a second call with the same configuration reuses it. Training
        stops early once the callback's ``continue_training`` returns false.
        Works under ``eqx.filter_vmap`` (e.g. over ``key`` for several seeds,
        each of which stops on its own). ``TrainResult.status`` says for each
        run whether and why it stopped early.

        Ctrl-C (SIGINT) stops training at the next iteration boundary (the
        loop asks the host every
        [`host_call_every`][lerax.algorithm.AbstractAlgorithm.host_call_every]
        iterations); the handler is installed on the first call from the main thread,
        chaining to the one before, and a second Ctrl-C behaves as that one does. Off
        the main thread (if no call was ever made on it) training is not interruptible.

        Args:
            env: the environment.
            policy: the policy to train (built for ``env``'s spaces).
            total_timesteps: environment steps over all environments; rounded
                down to whole iterations.
            key: the PRNG key. Callbacks draw from a stream of their own, so
                a callback that does not stop training never changes the result.
            callback: a callback, a list of callbacks (run as a
                [`CallbackList`][lerax.callback.CallbackList]) or ``None``.
            interruptible: poll for Ctrl-C (False compiles without the poll;
                a logging failure is then reported as a callback stop).

        Raises:
            TypeError: if ``callback`` is not a callback, a list of them or
                None, or ``interruptible`` is not a bool.
            ValueError: if ``total_timesteps`` is below one iteration, or the
                policy was built for other spaces than ``env``'s.
            TrainingInterrupted: called directly (not under ``jit``/``vmap``),
                when Ctrl-C stopped training; ``result`` holds the result.
            LoggingBackendError: called directly, when a logging backend
                failed and stopped training (a backend's ``KeyboardInterrupt``
                or ``SystemExit`` is raised as itself, with a note naming the
                backend); ``result`` holds the result. Under a transform, runs
                end normally with their ``status`` and the logger's
                ``close()`` raises the error.
        """
        cb = as_callback(callback)
        num_iterations = self.num_iterations(total_timesteps)
        check_policy_fits(env, policy)
        if not isinstance(interruptible, bool):
            raise TypeError(
                f"interruptible must be a bool, got interruptible={interruptible!r}"
            )
        if interruptible:
            _interrupt.install()
        result = _train(
            self, env, policy, cb, total_timesteps, num_iterations, key, interruptible
        )
        _raise_if_abnormal(result, cb)
        return result

    @overload
    def learn(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: None = None,
        interruptible: bool = True,
    ) -> P: ...
    @overload
    def learn(
        self,
        env: E,
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: AbstractCallback[Any, Any, E, P] | CallbackSequence,
        interruptible: bool = True,
    ) -> P: ...
    def learn(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: int,
        *,
        key: Key,
        callback: CallbackLike | None = None,
        interruptible: bool = True,
    ) -> P:
        """Like [`train`][lerax.algorithm.AbstractAlgorithm.train], returning only the
        trained policy."""
        result: TrainResult[P, Any, Any] = self.train(
            env,
            policy,
            total_timesteps,
            key=key,
            callback=callback,
            interruptible=interruptible,
        )
        return result.policy


def _raise_if_abnormal(
    result: TrainResult[Any, Any, Any], callback: AbstractCallback[Any, Any, Any, Any]
) -> None:
    """Called directly (eagerly), raise for an abnormal end: Ctrl-C as
    [`TrainingInterrupted`][lerax.algorithm.TrainingInterrupted]; a failure of one of
    the callback's host objects (a logging backend that failed during this call or
    before it) as the error its logger recorded; both with ``result`` attached. Under a
    transform (the status is traced) every run just returns its status."""
    try:
        codes = np.asarray(result.status.code)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    if (codes == StopReason.INTERRUPTED).any():
        stopped = np.asarray(result.status.iteration)[codes == StopReason.INTERRUPTED]
        raise TrainingInterrupted(result, int(stopped.max()))
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


_Carry: TypeAlias = tuple[Any, ...]

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
    algo: AbstractAlgorithm[Any],
    env: AbstractEnv[Any, Any, Any],
    policy: AbstractPolicy[Any, Any],
    callback: AbstractCallback[Any, Any, Any, Any],
    total_timesteps: int,
    num_iterations: int,
    key: Key,
    interruptible: bool,
) -> TrainResult[Any, Any, Any]:
    num_envs, num_steps = algo.num_envs, algo.num_steps
    steps_per_iteration = num_envs * num_steps
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        # A raw uint32 key (`jax.random.PRNGKey`): the same key, typed, so the
        # batches of keys below have one shape whatever the caller passed.
        key = jr.wrap_key_data(key)
    # [env resets | train | callbacks: reset, start, end | callback step resets]
    run_keys = jr.split(key, 2 * num_envs + 4)
    reset_keys, train_key = run_keys[:num_envs], run_keys[num_envs]
    k_reset, k_start, k_end = run_keys[num_envs + 1 : num_envs + 4]
    step_reset_keys = run_keys[num_envs + 4 :]

    index = run_index(
        (
            jr.key_data(key),
            eqx.filter(policy, eqx.is_array),
            eqx.filter(env, eqx.is_array),
            eqx.filter(callback, eqx.is_array),
            eqx.filter(algo, eqx.is_array),
        )
    )
    optimizer = algo.optimizer(num_iterations)
    opt_state = algo.init_optimizer_state(optimizer, policy)
    env_states, observations = jax.vmap(lambda k: env.reset(key=k))(reset_keys)
    reset_ctx = ResetContext(
        env=env,
        policy=policy,
        opt_state=opt_state,
        algorithm=algo,
        total_timesteps=total_timesteps,
        num_envs=num_envs,
        run_index=index,
    )
    cb_state = call_reset(callback, reset_ctx, key=k_reset)
    cb_step_state = jax.vmap(lambda k: call_step_reset(callback, reset_ctx, key=k))(
        step_reset_keys
    )
    training_log = algo.initial_training_log()
    # Only callbacks read the training log.
    log_read = not isinstance(callback, EmptyCallback)
    zero = jnp.array(0, jnp.int32)

    def training_ctx(
        cb_state: Any,
        cb_step_state: Any,
        policy: AbstractPolicy[Any, Any],
        opt_state: OptState,
        training_log: TrainingLog,
        iteration: Int[Array, ""],
        timesteps: Int[Array, ""],
    ) -> TrainingContext[Any, Any, Any, Any]:
        return TrainingContext(
            state=cb_state,
            step_state=cb_step_state,
            env=env,
            policy=policy,
            opt_state=opt_state,
            training_log=training_log,
            iteration_count=iteration,
            num_timesteps=timesteps,
            total_timesteps=total_timesteps,
            algorithm=algo,
            run_index=index,
        )

    cb_state = call_on_training_start(
        callback,
        training_ctx(
            cb_state, cb_step_state, policy, opt_state, training_log, zero, zero
        ),
        key=k_start,
    )

    params, static = eqx.partition(policy, eqx.is_array)

    def collect(
        policy: AbstractPolicy[Any, Any],
        opt_state: OptState,
        training_log: TrainingLog,
        env_states: PyTree,
        observations: ArrayTree,
        cb_step_state: Any,
        iteration: Int[Array, ""],
        timesteps: Int[Array, ""],
        active: Bool[Array, ""],
        keys: PRNGKey[Array, "steps envs 4"],
    ) -> tuple[Rollout, PyTree, ArrayTree, Any]:
        def one_env(
            env_state: PyTree,
            obs: ArrayTree,
            step_state: Any,
            step_timesteps: Int[Array, ""],
            keys: PRNGKey[Array, " 4"],
        ) -> tuple[PyTree, ArrayTree, Bool[Array, ""], Any, tuple[Any, ...]]:
            k_act, k_step, _, cb_key = keys
            action, extras = algo.act(policy, obs, key=k_act)
            ts = env.step(env_state, _env_action(env.action_space, action), key=k_step)
            step_ctx = StepContext(
                state=step_state,
                env=env,
                policy=policy,
                opt_state=opt_state,
                training_log=training_log,
                observation=obs,
                action=action,
                next_observation=ts.observation,
                reward=ts.reward,
                terminated=ts.terminated,
                truncated=ts.truncated,
                iteration_count=iteration,
                num_timesteps=step_timesteps,
                locals=extras,
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
            step_timesteps = timesteps + t * num_envs
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
            (env_states, observations, cb_step_state),
            (jnp.arange(num_steps, dtype=jnp.int32), keys),
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
        )
        return rollout, env_states, observations, cb_step_state

    def running(iteration: Int[Array, ""], code: Int[Array, ""]) -> Bool[Array, ""]:
        return jnp.logical_and(code == StopReason.COMPLETED, iteration < num_iterations)

    def cond(carry: _Carry) -> Bool[Array, ""]:
        # Unbatched under vmap (the loop runs while any run is active; the
        # body keeps stopped runs as they were), so the body may make host
        # calls, which JAX refuses in a loop with a batched predicate.
        return any_run(running(carry[0], carry[-2]))

    def body(old: _Carry) -> _Carry:
        (
            iteration,
            timesteps,
            params,
            opt_state,
            training_log,
            env_states,
            observations,
            cb_state,
            cb_step_state,
            code,
            loop_key,
        ) = old
        # Under vmap the loop runs until every run stops; a stopped run's body
        # still executes (its results are discarded), so hooks are told.
        active = running(iteration, code)
        policy = eqx.combine(params, static)
        keys = jr.split(loop_key, _ITERATION_KEYS + num_steps * num_envs * _STEP_KEYS)
        loop_key, k_update, k_cb_iter, k_cb_continue = keys[:_ITERATION_KEYS]
        step_keys = keys[_ITERATION_KEYS:].reshape(num_steps, num_envs, _STEP_KEYS)
        rollout, env_states, observations, cb_step_state = collect(
            policy,
            opt_state,
            training_log,
            env_states,
            observations,
            cb_step_state,
            iteration,
            timesteps,
            active,
            step_keys,
        )
        if log_read:
            policy, opt_state, training_log = algo.update(
                policy, optimizer, opt_state, rollout, key=k_update
            )
        else:
            policy, opt_state = algo.update_without_log(
                policy, optimizer, opt_state, rollout, key=k_update
            )
        iteration = iteration + 1
        timesteps = timesteps + steps_per_iteration
        iter_ctx = IterationContext(
            state=cb_state,
            step_state=cb_step_state,
            env=env,
            policy=policy,
            opt_state=opt_state,
            training_log=training_log,
            iteration_count=iteration,
            num_timesteps=timesteps,
            total_timesteps=total_timesteps,
            algorithm=algo,
            run_index=index,
            active=active,
        )
        cb_state = call_on_iteration(callback, iter_ctx, key=k_cb_iter)
        keep_going = call_continue_training(
            callback,
            eqx.tree_at(lambda c: c.state, iter_ctx, cb_state),
            key=k_cb_continue,
        )
        code = _stop_code(
            keep_going, iteration < num_iterations, iteration, interrupt_every, ids
        )
        params = eqx.filter(policy, eqx.is_array)
        new = (
            iteration,
            timesteps,
            params,
            opt_state,
            training_log,
            env_states,
            observations,
            cb_state,
            cb_step_state,
            code,
        )
        # A run that had stopped keeps everything as it was (its counters too).
        return (*select_runs(active, new, old[:-1]), loop_key)

    # Ctrl-C: the program tells the host it runs (its result starts the
    # status, so the call comes first), polls every `interrupt_every`
    # iterations and says when it has ended.
    interrupt_every = algo.host_call_every if interruptible else 0
    # The host objects the callback writes through (their failures stop runs).
    declared = callback.host_ids()
    ids = jnp.stack(declared) if declared else jnp.zeros((0,), jnp.int32)
    started = (
        poll(_interrupt.begin, jnp.array(True)) if interruptible else jnp.asarray(0)
    )
    init = (
        zero,
        zero,
        params,
        opt_state,
        training_log,
        env_states,
        observations,
        cb_state,
        cb_step_state,
        jnp.asarray(started, jnp.int32),
        train_key,
    )
    (
        iteration,
        timesteps,
        params,
        opt_state,
        training_log,
        _,
        _,
        cb_state,
        cb_step_state,
        code,
        _,
    ) = jax.lax.while_loop(cond, body, init)
    if interruptible:
        poll(_interrupt.end, iteration >= 0)
    policy = eqx.combine(params, static)
    cb_state = call_on_training_end(
        callback,
        training_ctx(
            cb_state,
            cb_step_state,
            policy,
            opt_state,
            training_log,
            iteration,
            timesteps,
        ),
        key=k_end,
    )
    return TrainResult(
        policy=policy,
        opt_state=opt_state,
        callback_state=cb_state,
        callback_step_state=cb_step_state,
        iterations=iteration,
        timesteps=timesteps,
        status=TrainStatus(code=code, iteration=iteration),
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


__all__ = ["AbstractAlgorithm", "Rollout", "TrainResult"]
