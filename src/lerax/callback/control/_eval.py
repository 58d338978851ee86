"""EvalCallback: evaluate the policy inside the compiled training program."""

import dataclasses
from collections.abc import Mapping
from typing import Any, final

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, Int, PyTree
from typing_extensions import override

from ..._custom_types import Key
from ...env import AbstractEnv
from ...evaluation import evaluate_policy
from ...policy import AbstractPolicy
from .._base import AbstractCallback, EmptyCallbackStepState
from .._context import IterationContext, ResetContext, TrainingContext
from .._types import AlgorithmInfo
from ._gate import (
    checked_bool,
    for_runs,
    is_due,
    iterations_between,
    positive_int,
    stopped_after_last_firing,
)

AnyEnv = AbstractEnv[Any, Any, Any]
AnyPolicy = AbstractPolicy[Any, Any]


@final
class EvalState(eqx.Module):
    """The state of [`EvalCallback`][lerax.callback.control.EvalCallback].

    Attributes:
        key: the key evaluations draw from: the evaluation after iteration
            ``t`` is ``evaluate_policy(policy, eval_env, key=jr.fold_in(key,
            t), ...)``.
        mean_return: the last evaluation's mean return (NaN before the first).
        std_return: its standard deviation over episodes (NaN before the first).
        best_mean_return: the best mean return so far (NaN before the first).
        last_iteration: the iteration of the last evaluation (0 before the first).
        best_iteration: the iteration of the best one (0 before the first).
        evaluations: how many evaluations ran.
        best_params: with ``keep_best``, the array leaves of the policy of
            the best evaluation so far (``eqx.filter(policy, eqx.is_array)``;
            the policy before training until the first evaluation):
            ``eqx.combine(best_params, policy)`` rebuilds it. ``None`` without
            ``keep_best``.
    """

    key: Key
    mean_return: Float[Array, ""]
    std_return: Float[Array, ""]
    best_mean_return: Float[Array, ""]
    last_iteration: Int[Array, ""]
    best_iteration: Int[Array, ""]
    evaluations: Int[Array, ""]
    best_params: PyTree


_IterCtx = IterationContext[EvalState, EmptyCallbackStepState, AnyEnv, AnyPolicy]
_TrainCtx = TrainingContext[EvalState, EmptyCallbackStepState, AnyEnv, AnyPolicy]


@final
class EvalCallback(AbstractCallback[EvalState, EmptyCallbackStepState]):
    """Evaluate the policy every ``every`` environment steps, inside the
    compiled training program, and publish the results.

    Each evaluation is
    [`evaluate_policy`][lerax.evaluation.evaluate_policy]``(ctx.policy,
    eval_env, key=jr.fold_in(state.key, iteration), num_episodes=...,
    deterministic=..., max_episode_steps=...)`` on the policy after the
    iteration's update (``state.key`` is drawn from ``reset``'s key, so each
    run has its own). It runs as
    [`EveryN`][lerax.callback.control.EveryN] runs a callback: after every
    ``max(1, ceil(every / steps_per_iteration))`` iterations, after the
    run's last iteration, and in ``on_training_end`` for a run that stopped
    early after its last evaluation (that one updates the state only:
    ``TrainResult.metrics`` keeps what was published in the loop). Under
    ``eqx.filter_vmap`` over runs it evaluates only in iterations where some
    active run is due, and keeps the results of the runs that are due.

    It publishes, at every iteration (see
    [`metrics`][lerax.callback.AbstractCallback.metrics]; NaN before the
    first evaluation), as float32 scalars:

    - ``<prefix>/mean_return``: the last evaluation's mean return;
    - ``<prefix>/best_mean_return``: the best mean return so far;
    - ``<prefix>/last_iteration``: the iteration of the last evaluation
      (equal to ``ctx.iteration_count`` in an iteration that evaluated).

    [`LoggingCallback`][lerax.callback.LoggingCallback] logs them (put it
    after this callback), and the stoppers of
    [`lerax.callback.control`][lerax.callback.control] read them.

    Args:
        eval_env: the environment to evaluate in; its observation and action
            spaces must be the training environment's.
        every: environment steps between evaluations, over all environments,
            a positive int.
        num_episodes: episodes per evaluation, a positive int.
        deterministic: act with the policy's deterministic action (else sample).
        keep_best: keep the parameters of the best evaluation's policy in the
            state (``EvalState.best_params``).
        max_episode_steps: the most steps an evaluation episode may take;
            ``None`` for ``eval_env.max_episode_steps``.
        prefix: the metrics' prefix (``"eval"``); two evaluation callbacks in
            one training need two prefixes.

    Raises:
        TypeError: an argument has the wrong type (``eval_env`` not an
            environment, ``every`` not an int, ...).
        ValueError: ``every``, ``num_episodes`` or ``max_episode_steps`` is
            not positive; ``max_episode_steps`` is ``None`` and ``eval_env``
            has no time limit; ``prefix`` is empty or contains ``/``. When
            training is traced (before it runs): ``eval_env``'s spaces differ
            from the training environment's.
    """

    eval_env: AnyEnv
    every: int = eqx.field(static=True)
    num_episodes: int = eqx.field(static=True)
    deterministic: bool = eqx.field(static=True)
    keep_best: bool = eqx.field(static=True)
    max_episode_steps: int | None = eqx.field(static=True)
    prefix: str = eqx.field(static=True)

    def __init__(
        self,
        eval_env: AnyEnv,
        *,
        every: int,
        num_episodes: int = 10,
        deterministic: bool = True,
        keep_best: bool = False,
        max_episode_steps: int | None = None,
        prefix: str = "eval",
    ) -> None:
        owner = "EvalCallback"
        if not isinstance(eval_env, AbstractEnv):
            raise TypeError(
                f"{owner}: eval_env must be a Lerax environment (an instance of "
                f"lerax.env.AbstractEnv), got eval_env={eval_env!r}"
            )
        self.eval_env = eval_env
        self.every = positive_int(owner, "every", every, "environment steps")
        self.num_episodes = positive_int(owner, "num_episodes", num_episodes)
        self.deterministic = checked_bool(owner, "deterministic", deterministic)
        self.keep_best = checked_bool(owner, "keep_best", keep_best)
        if max_episode_steps is None:
            if eval_env.max_episode_steps is None:
                raise ValueError(
                    f"{owner}: max_episode_steps=None and eval_env "
                    f"{eval_env.name} has no time limit (its max_episode_steps "
                    "is None): pass max_episode_steps, a positive int, so that "
                    "every evaluation episode ends"
                )
            self.max_episode_steps = None
        else:
            self.max_episode_steps = positive_int(
                owner, "max_episode_steps", max_episode_steps
            )
        if not isinstance(prefix, str) or not prefix or "/" in prefix:
            raise ValueError(
                f"{owner}: prefix must be a non-empty str without '/', got "
                f"prefix={prefix!r}"
            )
        self.prefix = prefix

    def iterations_between(self, algorithm: AlgorithmInfo) -> int:
        """``every`` environment steps in whole iterations of ``algorithm``,
        rounded up (at least one)."""
        return iterations_between(self.every, algorithm.steps_per_iteration)

    @property
    def metric_names(self) -> tuple[str, str, str]:
        """The names it publishes: ``<prefix>/mean_return``,
        ``<prefix>/best_mean_return``, ``<prefix>/last_iteration``."""
        p = self.prefix
        return (f"{p}/mean_return", f"{p}/best_mean_return", f"{p}/last_iteration")

    @override
    def reads_training_log(self) -> bool:
        """No: it evaluates the policy."""
        return False

    @override
    def reset(self, ctx: ResetContext[AnyEnv, AnyPolicy], *, key: Key) -> EvalState:
        """No evaluation yet; the evaluation key; with ``keep_best``, the
        policy's parameters before training."""
        for what in ("observation_space", "action_space"):
            mine, theirs = getattr(self.eval_env, what), getattr(ctx.env, what)
            if mine != theirs:
                raise ValueError(
                    f"EvalCallback: eval_env {self.eval_env.name} has "
                    f"{what}={mine}, but the training env {ctx.env.name} has "
                    f"{what}={theirs}; evaluate in an environment with the "
                    "training environment's spaces"
                )
        nan = jnp.full((), jnp.nan, jnp.float32)
        zero = jnp.zeros((), jnp.int32)
        best = eqx.filter(ctx.policy, eqx.is_array) if self.keep_best else None
        return EvalState(key, nan, nan, nan, zero, zero, zero, best)

    @override
    def on_iteration(self, ctx: _IterCtx, *, key: Key) -> EvalState:
        """Evaluate, if due, for the runs that are due."""
        fire = jnp.logical_and(is_due(self.every, ctx), ctx.active)
        return for_runs(
            fire,
            lambda s, i: self._evaluate(s, *i),
            ctx.state,
            (ctx.policy, ctx.iteration_count),
        )

    @override
    def metrics(self, ctx: _IterCtx, *, key: Key) -> Mapping[str, Float[Array, ""]]:
        """The last evaluation's results (NaN before the first)."""
        s = ctx.state
        evaluated = s.evaluations > 0
        last = jnp.where(evaluated, s.last_iteration.astype(jnp.float32), jnp.nan)
        values = (s.mean_return, s.best_mean_return, last)
        return dict(zip(self.metric_names, values, strict=True))

    @override
    def on_training_end(self, ctx: _TrainCtx, *, key: Key) -> EvalState:
        """Evaluate the final policy of a run that stopped early after its
        last evaluation."""
        fire = stopped_after_last_firing(ctx, ctx.state.last_iteration)
        return for_runs(
            fire,
            lambda s, i: self._evaluate(s, *i),
            ctx.state,
            (ctx.policy, ctx.iteration_count),
        )

    def _evaluate(
        self, state: EvalState, policy: AnyPolicy, iteration: Int[Array, ""]
    ) -> EvalState:
        """``state`` after evaluating ``policy`` after iteration ``iteration``."""
        iteration = jnp.asarray(iteration, jnp.int32)
        result = evaluate_policy(
            policy,
            self.eval_env,
            key=jr.fold_in(state.key, iteration),
            num_episodes=self.num_episodes,
            deterministic=self.deterministic,
            max_episode_steps=self.max_episode_steps,
        )
        mean = result.mean_return
        best = state.best_mean_return
        improved: Bool[Array, ""] = jnp.logical_or(jnp.isnan(best), mean > best)
        best_params = state.best_params
        if self.keep_best:
            params = eqx.filter(policy, eqx.is_array)
            best_params = jax.tree.map(
                lambda new, old: jnp.where(improved, new, old), params, best_params
            )
        return dataclasses.replace(
            state,
            mean_return=mean,
            std_return=result.std_return,
            best_mean_return=jnp.where(improved, mean, best),
            last_iteration=iteration,
            best_iteration=jnp.where(improved, iteration, state.best_iteration),
            evaluations=state.evaluations + 1,
            best_params=best_params,
        )
