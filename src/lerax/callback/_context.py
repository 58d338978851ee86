"""The contexts passed to callback hooks.

Contexts are final, immutable records. They are generic in the callback's state
types first, then in the environment and policy types, so that inside a hook
``ctx.state`` has the callback's own declared state type and ``ctx.env`` the
environment type the callback was written for; last in the algorithm's state
type (``Any`` unless declared, so a callback need not name it).
"""

from collections.abc import Mapping
from typing import Any, Generic, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._custom_types import ArrayTree, NamedArrays, TrainingLog
from .._deprecation import deprecated_opt_state
from ._types import (
    AlgorithmInfo,
    AlgStateT_co,
    EnvT_co,
    PolicyT_co,
    StateT_co,
    StepStateT_co,
)


class _HasAlgorithmState(eqx.Module):
    """The ``algorithm_state`` every context has, and its deprecated alias."""

    algorithm_state: eqx.AbstractVar[Any]

    @property
    def opt_state(self) -> Any:
        """Deprecated: the optimizer state, now ``algorithm_state.opt_state``
        (warns; raises ``AttributeError`` for algorithms with several)."""
        return deprecated_opt_state(
            type(self).__name__, self.algorithm_state, "ctx.algorithm_state"
        )


@final
class ResetContext(_HasAlgorithmState, Generic[EnvT_co, PolicyT_co, AlgStateT_co]):
    """Context of ``reset`` (once before training) and ``step_reset`` (once per
    parallel environment before its first step).

    Attributes:
        env: the environment being trained on.
        policy: the policy before training.
        algorithm_state: the algorithm's state before training.
        algorithm: the algorithm (its hyperparameters).
        total_timesteps: the number of environment steps asked for.
        num_envs: the number of parallel environments.
        run_index: this run's index when training is vmapped over runs (seeds),
            else 0 (see [`run_index`][lerax.callback.run_index]).
        metric_names: the names of every metric the callbacks publish (see
            [`metrics`][lerax.callback.AbstractCallback.metrics]), sorted: a
            callback that records them (a logger) sizes its state from them.
    """

    env: EnvT_co
    policy: PolicyT_co
    algorithm_state: AlgStateT_co
    algorithm: AlgorithmInfo
    total_timesteps: int = eqx.field(static=True)
    num_envs: int = eqx.field(static=True)
    run_index: Int[Array, ""]
    metric_names: tuple[str, ...] = eqx.field(static=True, default=())


@final
class StepContext(
    _HasAlgorithmState,
    Generic[StepStateT_co, EnvT_co, PolicyT_co, AlgStateT_co],
):
    """Context of ``on_step``: one transition of one environment.

    Attributes:
        state: this environment's callback step state.
        env: the environment.
        policy: the policy acting in this rollout.
        algorithm_state: the algorithm's state (as of the last update).
        training_log: the training log of the last update (zeros before the first).
        observation: the observation the action was chosen on.
        action: the action taken (as the policy produced it, before any clipping).
        next_observation: the observation after the step, before any automatic
            reset (the final observation of an episode when ``done``).
        reward: the raw environment reward (never bootstrapped).
        terminated: the episode reached a terminal state.
        truncated: the episode was cut by its time limit.
        iteration_count: iterations completed before this step.
        num_timesteps: environment steps taken over all envs before this step
            (the ``timestep`` the algorithm acted at).
        locals: named arrays the algorithm exposes (documented per algorithm).
        algorithm: the algorithm (its hyperparameters).
        run_index: this run's index when training is vmapped over runs, else 0.
        active: false only for a run that has already stopped early while other
            runs vmapped with it go on. vmap runs one program for all runs, so the
            loop still evaluates a stopped run's hooks and discards the results;
            gate host-side effects (logging, printing) on this flag.
    """

    state: StepStateT_co
    env: EnvT_co
    policy: PolicyT_co
    algorithm_state: AlgStateT_co
    training_log: TrainingLog
    observation: ArrayTree
    action: ArrayTree
    next_observation: ArrayTree
    reward: Float[Array, ""]
    terminated: Bool[Array, ""]
    truncated: Bool[Array, ""]
    iteration_count: Int[Array, ""]
    num_timesteps: Int[Array, ""]
    locals: NamedArrays
    algorithm: AlgorithmInfo
    run_index: Int[Array, ""]
    active: Bool[Array, ""]

    @property
    def done(self) -> Bool[Array, ""]:
        """``terminated | truncated``: the episode ended at this step."""
        return jnp.logical_or(self.terminated, self.truncated)


@final
class RolloutContext(
    _HasAlgorithmState,
    Generic[StepStateT_co, EnvT_co, PolicyT_co, AlgStateT_co],
):
    """Context of ``on_rollout``: one iteration's whole rollout, every step of
    every environment, after it is collected and before the update.

    The fields of [`StepContext`][lerax.callback.StepContext] for all of the
    rollout's transitions at once, with leading axes ``(num_steps,
    num_envs)``: a hook that needs only the rollout's rewards and episode
    ends computes once per iteration, vectorised, what ``on_step`` computes
    once per step.

    Attributes:
        state: the step states of all environments, leading axis
            ``num_envs`` (after this rollout's ``on_step`` calls).
        env: the environment.
        policy: the policy that acted in this rollout.
        algorithm_state: the algorithm's state (as of the last update).
        training_log: the training log of the last update (zeros before the first).
        observations: the observations the actions were chosen on.
        actions: the actions taken (as the policy produced them).
        next_observations: the observations after each step, before any
            automatic reset (an episode's final observation where ``dones``).
        rewards: the raw environment rewards, ``(num_steps, num_envs)``.
        terminated: where an episode reached a terminal state.
        truncated: where an episode was cut by its time limit.
        iteration_count: iterations completed before this rollout.
        num_timesteps: environment steps taken over all envs before this
            rollout (its first step's ``num_timesteps``).
        locals: the named arrays the algorithm exposes at each step, with
            leading axes ``(num_steps, num_envs)``.
        algorithm: the algorithm (its hyperparameters).
        run_index: this run's index when training is vmapped over runs, else 0.
        active: false only for a run that has already stopped early while other
            runs vmapped with it go on (see
            [`StepContext`][lerax.callback.StepContext]).
    """

    state: StepStateT_co
    env: EnvT_co
    policy: PolicyT_co
    algorithm_state: AlgStateT_co
    training_log: TrainingLog
    observations: ArrayTree
    actions: ArrayTree
    next_observations: ArrayTree
    rewards: Float[Array, "steps envs"]
    terminated: Bool[Array, "steps envs"]
    truncated: Bool[Array, "steps envs"]
    iteration_count: Int[Array, ""]
    num_timesteps: Int[Array, ""]
    locals: NamedArrays
    algorithm: AlgorithmInfo
    run_index: Int[Array, ""]
    active: Bool[Array, ""]

    @property
    def dones(self) -> Bool[Array, "steps envs"]:
        """``terminated | truncated``: where an episode ended."""
        return jnp.logical_or(self.terminated, self.truncated)


@final
class IterationContext(
    _HasAlgorithmState,
    Generic[StateT_co, StepStateT_co, EnvT_co, PolicyT_co, AlgStateT_co],
):
    """Context of ``on_iteration`` and ``continue_training``: after an update.

    Attributes:
        state: the callback state.
        step_state: the step states of all environments, leading axis ``num_envs``.
        env: the environment.
        policy: the policy after the update.
        algorithm_state: the algorithm's state after the update.
        training_log: scalar statistics of the update, by name.
        iteration_count: iterations completed, this one included.
        num_timesteps: environment steps taken so far over all envs.
        total_timesteps: the number of environment steps asked for.
        algorithm: the algorithm (its hyperparameters).
        run_index: this run's index when training is vmapped over runs, else 0.
        active: false only for a run that has already stopped early while other
            runs vmapped with it go on. vmap runs one program for all runs, so the
            loop still evaluates a stopped run's hooks and discards the results;
            gate host-side effects (logging, printing) on this flag.
        metrics: the named scalars callbacks publish (their
            [`metrics`][lerax.callback.AbstractCallback.metrics] hook): in
            ``on_iteration``, ``metrics`` and ``continue_training``, what the
            callbacks before this one (in a ``CallbackList``) published this
            iteration and the others' values from the previous iteration; NaN
            for a name not published yet.
    """

    state: StateT_co
    step_state: StepStateT_co
    env: EnvT_co
    policy: PolicyT_co
    algorithm_state: AlgStateT_co
    training_log: TrainingLog
    iteration_count: Int[Array, ""]
    num_timesteps: Int[Array, ""]
    total_timesteps: int = eqx.field(static=True)
    algorithm: AlgorithmInfo
    run_index: Int[Array, ""]
    active: Bool[Array, ""]
    metrics: Mapping[str, Float[Array, ""]] = eqx.field(default_factory=dict)


@final
class TrainingContext(
    _HasAlgorithmState,
    Generic[StateT_co, StepStateT_co, EnvT_co, PolicyT_co, AlgStateT_co],
):
    """Context of ``on_training_start`` and ``on_training_end``.

    Same fields as [`IterationContext`][lerax.callback.IterationContext]. At the start
    ``iteration_count`` and ``num_timesteps`` are zero, ``training_log`` holds zeros
    and every published metric is NaN; at the end they describe the run as it
    stopped (early stopping included).
    """

    state: StateT_co
    step_state: StepStateT_co
    env: EnvT_co
    policy: PolicyT_co
    algorithm_state: AlgStateT_co
    training_log: TrainingLog
    iteration_count: Int[Array, ""]
    num_timesteps: Int[Array, ""]
    total_timesteps: int = eqx.field(static=True)
    algorithm: AlgorithmInfo
    run_index: Int[Array, ""]
    metrics: Mapping[str, Float[Array, ""]] = eqx.field(default_factory=dict)
