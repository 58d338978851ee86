"""The training loop's state, public as ``TrainState``, and what ``train`` returns."""

from typing import Any, Generic, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PyTree
from typing_extensions import TypeVar

from .._custom_types import ArrayTree, Key, TrainingLog
from .._deprecation import deprecated_opt_state
from ..callback import AlgorithmInfo
from ._status import StopReason, TrainStatus

P = TypeVar("P")
S = TypeVar("S")
T = TypeVar("T")
A = TypeVar("A", default=Any)


@final
class TrainState(eqx.Module, Generic[P, S, T, A]):
    """Everything the training loop carries from one iteration to the next.

    The loop's carry is this module (its array leaves; the static parts stay
    outside the compiled loop). Under ``eqx.filter_vmap`` over runs every array
    leaf gains the batch's leading axes. A checkpoint holds it; its static
    fields say which run it belongs to.

    Attributes:
        policy: the policy (parameters as array leaves).
        algorithm_state: the algorithm's own state (optimizer states, replay
            buffer, target networks, ...; see each algorithm).
        callback_state: the callback's iteration-level state.
        callback_step_state: the callback's step states, leading axis ``num_envs``.
        env_state: the environments' states, leading axis ``num_envs``.
        observation: the observations the next step acts on, leading axis
            ``num_envs``.
        training_log: the last update's training log (zeros before the first,
            and when no callback can read it).
        metrics: the latest value of each metric the callbacks publish (NaN
            before the first; see
            [`AbstractCallback.metrics`][lerax.callback.AbstractCallback.metrics]).
        iteration: iterations completed.
        timesteps: environment steps taken, over all environments.
        status: the stop status: ``StopReason.COMPLETED`` while the run goes on
            (and when it ran every iteration), else why it stopped.
        key: the loop's PRNG key (the next iteration draws from it).
        algorithm: the algorithm, its hyperparameters (array leaves for those
            that may be swept).
        total_timesteps: the environment steps asked for.
        num_iterations: the iterations ``total_timesteps`` buys.
    """

    policy: P
    algorithm_state: A
    callback_state: S
    callback_step_state: T
    env_state: PyTree
    observation: ArrayTree
    training_log: TrainingLog
    metrics: dict[str, Float[Array, ""]]
    iteration: Int[Array, ""]
    timesteps: Int[Array, ""]
    status: TrainStatus
    key: Key
    algorithm: AlgorithmInfo
    total_timesteps: int = eqx.field(static=True)
    num_iterations: int = eqx.field(static=True)

    @property
    def running(self) -> Bool[Array, "*runs"]:
        """The run has not stopped and has iterations left (per run)."""
        return jnp.logical_and(
            self.status.code == StopReason.COMPLETED,
            self.iteration < self.num_iterations,
        )


@final
class TrainResult(eqx.Module, Generic[P, S, T, A]):
    """Everything a training run ends with.

    Under ``eqx.filter_vmap`` over seeds every leaf gains a leading seed axis.

    Attributes:
        train_state: the loop's state at the end (everything below, and the
            environments, observations and key a run would continue from).
    """

    train_state: TrainState[P, S, T, A]

    @property
    def policy(self) -> P:
        """The trained policy."""
        return self.train_state.policy

    @property
    def algorithm_state(self) -> A:
        """The algorithm's state at the end (e.g. PPO's optimizer state)."""
        return self.train_state.algorithm_state

    @property
    def callback_state(self) -> S:
        """The callback's iteration-level state at the end."""
        return self.train_state.callback_state

    @property
    def callback_step_state(self) -> T:
        """The callback's step states, leading axis ``num_envs``."""
        return self.train_state.callback_step_state

    @property
    def metrics(self) -> dict[str, Float[Array, "*runs"]]:
        """The latest value of each metric the callbacks published (see
        [`AbstractCallback.metrics`][lerax.callback.AbstractCallback.metrics])."""
        return self.train_state.metrics

    @property
    def iterations(self) -> Int[Array, "*runs"]:
        """Iterations actually run (fewer than planned on early stop)."""
        return self.train_state.iteration

    @property
    def timesteps(self) -> Int[Array, "*runs"]:
        """Environment steps actually taken, over all environments."""
        return self.train_state.timesteps

    @property
    def status(self) -> TrainStatus:
        """Whether and why the run stopped early, and at which iteration."""
        return self.train_state.status

    @property
    def opt_state(self) -> Any:
        """Deprecated: the optimizer state, now ``algorithm_state.opt_state``
        (warns; raises ``AttributeError`` for algorithms with several)."""
        return deprecated_opt_state(
            "TrainResult", self.algorithm_state, "TrainResult.algorithm_state"
        )
