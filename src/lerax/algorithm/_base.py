"""The abstract algorithm API: what an algorithm supplies to the one training
loop (in ``_loop``), and the ``train``/``learn`` entry points."""

import abc
import os
from typing import Any, ClassVar, Generic, TypeAlias, overload

import equinox as eqx
from jaxtyping import Array, Bool, Float, Int, Shaped
from typing_extensions import TypeVar

from .._custom_types import ArrayTree, Key
from ..callback import AbstractCallback, EmptyCallbackState, EmptyCallbackStepState

# S1..S8, T1..T8: the members of a tuple passed as `callback` (their state
# and step-state types), as CallbackList's constructor types them.
from ..callback._list import (
    S1,
    S2,
    S3,
    S4,
    S5,
    S6,
    S7,
    S8,
    T1,
    T2,
    T3,
    T4,
    T5,
    T6,
    T7,
    T8,
    CallbackLike,
    CallbackSequence,
)
from ..env import AbstractEnv
from ..policy import AbstractPolicy
from . import _loop
from ._hyper import (
    Interval,
    Timesteps,
    as_total_timesteps,
    checked_values,
    counter_dtype,
    counter_limit,
)
from ._rollout import Rollout
from ._train_state import TrainResult, TrainState

Resumable: TypeAlias = TrainState[Any, Any, Any, Any] | str | os.PathLike[str] | None
"""What ``train(resume_from=...)`` accepts: a training state, a checkpoint path
(called directly), or ``None`` (start a new run)."""

PolicyBoundT = TypeVar("PolicyBoundT", bound=AbstractPolicy[Any, Any])
AlgStateT = TypeVar("AlgStateT", default=Any)
P = TypeVar("P", bound=AbstractPolicy[Any, Any])
E = TypeVar("E", bound=AbstractEnv[Any, Any, Any])
S = TypeVar("S")
T = TypeVar("T")
AlgT = TypeVar("AlgT", bound="AbstractAlgorithm[Any, Any]")


class AbstractAlgorithm(eqx.Module, Generic[PolicyBoundT, AlgStateT]):
    """Base class of training algorithms.

    The one training loop ([`train`][lerax.algorithm.AbstractAlgorithm.train] and
    [`learn`][lerax.algorithm.AbstractAlgorithm.learn]) owns every callback hook
    call, automatic environment resets, early stopping and the stop status,
    and carries everything in a [`TrainState`][lerax.algorithm.TrainState]. An
    algorithm supplies only:

    - [`init_state`][lerax.algorithm.AbstractAlgorithm.init_state]: its own state
      (optimizer states, replay buffer, target networks, ...);
    - [`act`][lerax.algorithm.AbstractAlgorithm.act]: what the policy does at one
      step of the rollout;
    - [`update`][lerax.algorithm.AbstractAlgorithm.update]: the update from one
      rollout;
    - [`initial_training_log`][lerax.algorithm.AbstractAlgorithm.initial_training_log]:
      the names of its training statistics.

    Each iteration collects ``num_steps`` steps from each of ``num_envs``
    parallel environments, then updates. Type parameters: the policy kind it
    trains and its state's type.
    """

    num_envs: eqx.AbstractVar[int]
    num_steps: eqx.AbstractVar[int]

    hyperparameter_ranges: ClassVar[dict[str, Interval]] = {}
    """The float hyperparameters (array leaves) and the values each may take:
    a concrete value is checked when the algorithm is built, a traced one
    (built inside ``eqx.filter_vmap``) when training starts
    ([`checked`][lerax.algorithm.AbstractAlgorithm.checked])."""

    def checked(self: "AlgT") -> "AlgT":
        """This algorithm, each float hyperparameter of
        [`hyperparameter_ranges`][lerax.algorithm.AbstractAlgorithm.hyperparameter_ranges]
        checked: a concrete value now, raising ``ValueError`` naming the field
        if it is out of range (it adds nothing to the compiled program); a
        traced one with an ``eqx.error_if``, so that the program stops with an
        error naming the field. ``train`` calls it before compiling.

        Raises:
            ValueError: a concrete value is out of range (possible only if a
                field was replaced after construction, e.g. with
                ``eqx.tree_at``).
        """
        names = tuple(self.hyperparameter_ranges)
        if not names:
            return self
        values = {name: getattr(self, name) for name in names}
        checked = checked_values(self.name, values, self.hyperparameter_ranges)
        out: AlgT = eqx.tree_at(
            lambda a: tuple(getattr(a, name) for name in names),
            self,
            tuple(checked[name] for name in names),
        )
        return out

    @abc.abstractmethod
    def init_state(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: PolicyBoundT,
        num_iterations: int,
        *,
        key: Key,
    ) -> AlgStateT:
        """The algorithm's state training starts from (inside the compiled
        program), given how many iterations training will run (for schedules)."""

    @abc.abstractmethod
    def act(
        self,
        policy: PolicyBoundT,
        state: AlgStateT,
        observation: ArrayTree,
        *,
        timestep: Int[Array, ""],
        key: Key,
    ) -> tuple[ArrayTree, dict[str, Shaped[Array, "..."]]]:
        """Choose an action for one (unbatched) observation.

        ``timestep`` is this run's environment steps before this step, over all
        environments (what schedules and ``learning_starts`` read). Returns the
        action and named per-step arrays to store in the rollout
        ([`Rollout.extras`][lerax.algorithm.Rollout]); callbacks see the latter as
        ``ctx.locals`` in ``on_step``.
        """

    @abc.abstractmethod
    def update(
        self,
        policy: PolicyBoundT,
        state: AlgStateT,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> tuple[PolicyBoundT, AlgStateT, dict[str, Float[Array, ""]]]:
        """Update from one rollout; return the policy, the state and the
        training log (scalar statistics by name, the names of
        [`initial_training_log`][lerax.algorithm.AbstractAlgorithm.initial_training_log]).

        ``need_log`` is static: false when no callback can read the training
        log. The loop then ignores the returned log (an empty dict will do),
        so an algorithm may skip computing it (PPO runs a cheaper program).
        Either way the policy and the state must be updated identically.
        """

    def guarded_update(
        self,
        policy: PolicyBoundT,
        state: AlgStateT,
        rollout: Rollout,
        *,
        key: Key,
        need_log: bool,
    ) -> (
        tuple[PolicyBoundT, AlgStateT, dict[str, Float[Array, ""]], Bool[Array, ""]]
        | None
    ):
        """[`update`][lerax.algorithm.AbstractAlgorithm.update] for a run the
        non-finite guard checks (``train(check_finite=True)``, the default),
        by an algorithm that guards its own updates; ``None`` (the default)
        if it does not, and the loop then calls ``update``.

        It returns ``update``'s policy, state and log, and whether every
        value it checked was finite. From the first value that is not (the
        rollout's rewards and observations, then each optimizer update's loss
        and gradients in turn) on, no update may change the policy or the
        state, except that a replay buffer still takes the rollout; on a run
        that stays finite it must return exactly what ``update`` does. The
        loop then stops the run with the policy and state returned here,
        instead of keeping a copy of those from before the iteration until
        the update is checked: that copy stops XLA from updating parameters
        and optimizer moments in place, a large share of an iteration that
        takes one small gradient step (SAC, TD3, DQN; BENCHMARKS.md).
        """
        return None

    @abc.abstractmethod
    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        """The training log before the first update: every name
        [`update`][lerax.algorithm.AbstractAlgorithm.update] reports, with value
        zero."""

    @property
    def loss_names(self) -> tuple[str, ...]:
        """The training-log entries that are losses, which the training loop
        checks are finite (``train(check_finite=True)``, the default): by
        default every name of
        [`initial_training_log`][lerax.algorithm.AbstractAlgorithm.initial_training_log]
        that is ``loss`` or ends in ``_loss``. Diagnostics that may be NaN by
        design (PPO's ``explained_variance`` when the returns do not vary) are
        not losses."""
        return tuple(
            name
            for name in self.initial_training_log()
            if name == "loss" or name.endswith("_loss")
        )

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

    @property
    def updates_per_iteration(self) -> int:
        """The most optimizer updates any of this algorithm's optimizers takes
        in one iteration (1 by default; e.g. PPO's ``num_epochs *
        num_minibatches``). An algorithm that takes more overrides it, so that
        [`num_iterations`][lerax.algorithm.AbstractAlgorithm.num_iterations]
        refuses a run whose update count would overflow the int32 step
        counters of its optimizers and schedules."""
        return 1

    def num_iterations(self, total_timesteps: Timesteps) -> int:
        """How many iterations ``total_timesteps`` buys (rounded down), checked
        before anything compiles.

        The loop counts iterations and environment steps, and optimizers count
        their updates, in int32 (int64 with ``jax_enable_x64``): a run that
        would overflow a counter is refused rather than wrapping around.

        Raises:
            TypeError: ``total_timesteps`` is not a Python or NumPy integer (a
                bool, a float, a JAX array).
            ValueError: if it buys no iteration; if it reaches ``2**31 -
                steps_per_iteration``; or if the run's optimizer updates,
                ``num_iterations * updates_per_iteration``, reach ``2**31``
                (``2**63`` for both with ``jax_enable_x64``).
        """
        total_timesteps = as_total_timesteps(total_timesteps)
        per_iteration = self.steps_per_iteration
        n = total_timesteps // per_iteration
        if n < 1:
            raise ValueError(
                f"total_timesteps={total_timesteps} is smaller than one iteration: "
                f"{self.name} takes num_envs * num_steps = {self.num_envs} * "
                f"{self.num_steps} = {per_iteration} environment steps "
                f"per iteration, so total_timesteps must be at least "
                f"{per_iteration}"
            )
        limit, shown = counter_limit()
        dtype = counter_dtype()
        if total_timesteps >= limit - per_iteration:
            raise ValueError(
                f"{self.name}: total_timesteps={total_timesteps} is too large: the "
                f"training loop counts environment steps in {dtype}, so "
                f"total_timesteps must be below {shown} - steps_per_iteration = "
                f"{limit - per_iteration} ({per_iteration} steps per iteration); "
                "train for fewer steps"
            )
        per_update = self.updates_per_iteration
        if n * per_update >= limit:
            raise ValueError(
                f"{self.name}: total_timesteps={total_timesteps} makes {n} "
                f"iterations of updates_per_iteration={per_update} optimizer "
                f"updates, {n * per_update} in all, but optimizers count their "
                f"updates in {dtype}, so a run must make fewer than {shown} = "
                f"{limit}; train for fewer steps or with fewer updates per "
                "iteration"
            )
        return n

    # The three overloads give the result the callback's state types.
    @overload
    def train(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: None = None,
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, EmptyCallbackState, EmptyCallbackStepState, AlgStateT]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: AbstractCallback[S, T, E, P],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, S, T, AlgStateT]: ...
    # A tuple of up to eight callbacks is typed member by member, like
    # CallbackList(a, b, ...); a list (or a longer tuple) loses the types.
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[AbstractCallback[S1, T1, E, P],],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, tuple[S1,], tuple[T1,], AlgStateT]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[AbstractCallback[S1, T1, E, P], AbstractCallback[S2, T2, E, P]],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, tuple[S1, S2], tuple[T1, T2], AlgStateT]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[
            AbstractCallback[S1, T1, E, P],
            AbstractCallback[S2, T2, E, P],
            AbstractCallback[S3, T3, E, P],
        ],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, tuple[S1, S2, S3], tuple[T1, T2, T3], AlgStateT]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[
            AbstractCallback[S1, T1, E, P],
            AbstractCallback[S2, T2, E, P],
            AbstractCallback[S3, T3, E, P],
            AbstractCallback[S4, T4, E, P],
        ],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, tuple[S1, S2, S3, S4], tuple[T1, T2, T3, T4], AlgStateT]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[
            AbstractCallback[S1, T1, E, P],
            AbstractCallback[S2, T2, E, P],
            AbstractCallback[S3, T3, E, P],
            AbstractCallback[S4, T4, E, P],
            AbstractCallback[S5, T5, E, P],
        ],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[
        P, tuple[S1, S2, S3, S4, S5], tuple[T1, T2, T3, T4, T5], AlgStateT
    ]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[
            AbstractCallback[S1, T1, E, P],
            AbstractCallback[S2, T2, E, P],
            AbstractCallback[S3, T3, E, P],
            AbstractCallback[S4, T4, E, P],
            AbstractCallback[S5, T5, E, P],
            AbstractCallback[S6, T6, E, P],
        ],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[
        P, tuple[S1, S2, S3, S4, S5, S6], tuple[T1, T2, T3, T4, T5, T6], AlgStateT
    ]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[
            AbstractCallback[S1, T1, E, P],
            AbstractCallback[S2, T2, E, P],
            AbstractCallback[S3, T3, E, P],
            AbstractCallback[S4, T4, E, P],
            AbstractCallback[S5, T5, E, P],
            AbstractCallback[S6, T6, E, P],
            AbstractCallback[S7, T7, E, P],
        ],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[
        P,
        tuple[S1, S2, S3, S4, S5, S6, S7],
        tuple[T1, T2, T3, T4, T5, T6, T7],
        AlgStateT,
    ]: ...
    @overload
    def train(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: tuple[
            AbstractCallback[S1, T1, E, P],
            AbstractCallback[S2, T2, E, P],
            AbstractCallback[S3, T3, E, P],
            AbstractCallback[S4, T4, E, P],
            AbstractCallback[S5, T5, E, P],
            AbstractCallback[S6, T6, E, P],
            AbstractCallback[S7, T7, E, P],
            AbstractCallback[S8, T8, E, P],
        ],
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[
        P,
        tuple[S1, S2, S3, S4, S5, S6, S7, S8],
        tuple[T1, T2, T3, T4, T5, T6, T7, T8],
        AlgStateT,
    ]: ...
    @overload
    def train(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: CallbackSequence,
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, tuple[Any, ...], tuple[Any, ...], AlgStateT]: ...
    def train(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: CallbackLike | None = None,
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> TrainResult[P, Any, Any, AlgStateT]:
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

        Every argument is checked before anything compiles (when ``train`` is
        called inside your own ``jit``/``vmap``: when it is traced), with an
        error naming the argument, the value and what is allowed.

        Args:
            env: the environment, a pure JAX
                [`AbstractEnv`][lerax.env.AbstractEnv] (not a Gymnasium one).
            policy: the policy to train (an
                [`AbstractPolicy`][lerax.policy.AbstractPolicy] built for
                ``env``'s spaces).
            total_timesteps: environment steps over all environments, a Python
                or NumPy integer (static); rounded down to whole iterations.
            key: the PRNG key, ``jax.random.key(seed)`` (or a legacy
                ``jax.random.PRNGKey(seed)``); it may be traced. Callbacks draw
                from a stream of their own, so a callback that does not stop
                training never changes the result.
            callback: a callback, a list of callbacks (run as a
                [`CallbackList`][lerax.callback.CallbackList]) or ``None``.
            interruptible: poll for Ctrl-C (False compiles without the poll;
                a logging failure is then reported as a callback stop, and a
                Ctrl-C raises ``KeyboardInterrupt`` once the run has ended).
            resume_from: continue a run from a
                [`TrainState`][lerax.algorithm.TrainState] (a result's
                ``train_state``, or ``lerax.checkpoint.load(path)``) instead of
                starting one; called directly, also a checkpoint path (the
                directory given to ``CheckpointCallback``, for its latest
                checkpoint, or one checkpoint's own). The policy, algorithm,
                callback and environment states, observations, metrics,
                counters and loop key are the saved ones (``policy`` and
                ``key`` then give only the structure); the algorithm's
                hyperparameter values are this call's (fine-tuning), its
                static configuration and every structure must match the saved
                run's (``ValueError`` naming the first difference). The run
                goes on to ``total_timesteps``: resumed to the same length
                through the same program, the result is bitwise the
                uninterrupted run's; to another length, schedules that depend on
                the length follow the new one from the resume point on. The
                callbacks' ``reset`` results are replaced by the saved states
                and ``on_training_start`` runs again. Under ``eqx.filter_vmap``
                a batch of states resumes as a batch.
            check_finite: check, on device, every iteration's rewards and
                observations, the algorithm's declared losses
                ([`loss_names`][lerax.algorithm.AbstractAlgorithm.loss_names], when
                a callback makes the update compute its log) and the policy's
                parameters after the update. At the first value that is not
                finite the run stops (status ``StopReason.NON_FINITE``, naming
                the iteration and the quantity) with its state from before
                that iteration, except that a replay buffer in the
                algorithm's state keeps the iteration's transitions. An
                algorithm that guards its own updates
                ([`guarded_update`][lerax.algorithm.AbstractAlgorithm.guarded_update]:
                DQN, SAC, TD3) also stops at a non-finite loss or gradient
                (``"loss or gradient"``); its run keeps a critic update that
                came before a non-finite actor update in the same gradient
                step, and parameters that overflowed in an update whose
                gradients were finite. False compiles without the checks.

        Raises:
            TypeError: if ``env`` is not an ``AbstractEnv`` (a Gymnasium
                environment is told apart), ``policy`` not an
                ``AbstractPolicy`` (or not of the kind the algorithm trains),
                ``total_timesteps`` not a Python or NumPy integer, ``key`` not
                a PRNG key, ``callback`` not a callback, a list of them or
                None, or ``interruptible`` or ``check_finite`` not a bool.
            ValueError: if ``total_timesteps`` is below one iteration or would
                overflow a counter (see
                [`num_iterations`][lerax.algorithm.AbstractAlgorithm.num_iterations]),
                or the policy was built for other spaces than ``env``'s.
            TrainingInterrupted: called directly (not under ``jit``/``vmap``),
                when Ctrl-C stopped training; ``result`` holds the result.
            NonFiniteError: called directly, when a run met a non-finite
                value (``check_finite``); ``result`` holds the result. Under a
                transform the runs end with their ``status``.
            LoggingBackendError: called directly, when a logging backend
                failed and stopped training (a backend's ``KeyboardInterrupt``
                or ``SystemExit`` is raised as itself, with a note naming the
                backend); ``result`` holds the result. Under a transform, runs
                end normally with their ``status`` and the logger's
                ``close()`` raises the error.
        """
        return _loop.train(
            self,
            env,
            policy,
            total_timesteps,
            key=key,
            callback=callback,
            interruptible=interruptible,
            check_finite=check_finite,
            resume_from=resume_from,
        )

    @overload
    def learn(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: None = None,
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> P: ...
    @overload
    def learn(
        self,
        env: E,
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: AbstractCallback[Any, Any, E, P] | CallbackSequence,
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> P: ...
    def learn(
        self,
        env: AbstractEnv[Any, Any, Any],
        policy: P,
        total_timesteps: Timesteps,
        *,
        key: Key,
        callback: CallbackLike | None = None,
        interruptible: bool = True,
        check_finite: bool = True,
        resume_from: Resumable = None,
    ) -> P:
        """Like [`train`][lerax.algorithm.AbstractAlgorithm.train], returning only the
        trained policy."""
        result: TrainResult[P, Any, Any, AlgStateT] = self.train(
            env,
            policy,
            total_timesteps,
            key=key,
            callback=callback,
            interruptible=interruptible,
            check_finite=check_finite,
            resume_from=resume_from,
        )
        return result.policy


__all__ = ["AbstractAlgorithm"]
