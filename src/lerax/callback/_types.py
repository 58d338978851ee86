"""Type variables shared by callbacks and their contexts."""

from typing import Any, Protocol, runtime_checkable

from jaxtyping import Array, Bool, Float, Int
from typing_extensions import TypeVar

from ..env import AbstractEnv
from ..policy import AbstractPolicy

StateT = TypeVar("StateT")
"""A callback's iteration-level state type."""
StepStateT = TypeVar("StepStateT")
"""A callback's per-environment step state type."""

EnvT = TypeVar(
    "EnvT",
    bound=AbstractEnv[Any, Any, Any],
    default=AbstractEnv[Any, Any, Any],
    contravariant=True,
)
"""The environment type a callback accepts (contravariant: a callback written for
any environment accepts contexts of a specific one)."""
PolicyT = TypeVar(
    "PolicyT",
    bound=AbstractPolicy[Any, Any],
    default=AbstractPolicy[Any, Any],
    contravariant=True,
)
"""The policy type a callback accepts (contravariant, like ``EnvT``)."""

StateT_co = TypeVar("StateT_co", covariant=True)
StepStateT_co = TypeVar("StepStateT_co", covariant=True)
EnvT_co = TypeVar(
    "EnvT_co",
    bound=AbstractEnv[Any, Any, Any],
    default=AbstractEnv[Any, Any, Any],
    covariant=True,
)
AlgStateT_co = TypeVar("AlgStateT_co", covariant=True, default=Any)
"""The algorithm's state type in a context (``Any`` unless a callback declares it)."""
PolicyT_co = TypeVar(
    "PolicyT_co",
    bound=AbstractPolicy[Any, Any],
    default=AbstractPolicy[Any, Any],
    covariant=True,
)


@runtime_checkable
class AlgorithmInfo(Protocol):
    """What a callback may read of the algorithm that trains (``ctx.algorithm``).

    Every [`AbstractAlgorithm`][lerax.algorithm.AbstractAlgorithm] provides it; the
    framework names only this protocol, so it does not depend on the
    algorithm layer. Its hyperparameters are its fields.
    """

    @property
    def name(self) -> str:
        """A short name for logs."""
        ...

    @property
    def num_envs(self) -> int:
        """Parallel environments."""
        ...

    @property
    def num_steps(self) -> int:
        """Steps per environment per iteration."""
        ...

    @property
    def steps_per_iteration(self) -> int:
        """Environment steps per iteration, over all environments."""
        ...

    @property
    def host_call_every(self) -> int:
        """Iterations between periodic host calls (logging sends its
        records this often)."""
        ...

    def num_iterations(self, total_timesteps: int) -> int:
        """How many iterations ``total_timesteps`` buys."""
        ...

    def initial_training_log(self) -> dict[str, Float[Array, ""]]:
        """The training log before the first update: every name the
        algorithm reports, with value zero."""
        ...


@runtime_checkable
class TrainStateSaver(Protocol):
    """What saves the training loop's whole state from inside the compiled
    program (a checkpoint callback: ``lerax.checkpoint.CheckpointCallback``).

    A callback names its savers in
    [`train_state_savers`][lerax.callback.AbstractCallback.train_state_savers];
    the loop calls each after every iteration, with the state the next
    iteration starts from (the algorithm's ``TrainState``, every callback's
    state included), and once more after the loop with the final state;
    called directly, ``train`` then waits for each before it returns. The
    framework names only this protocol, so it does not depend on the
    algorithm layer.
    """

    def save_train_state(
        self,
        state: Any,
        *,
        run_index: Int[Array, ""],
        stepped: Bool[Array, ""],
        final: bool,
    ) -> None:
        """Save ``state`` if due (a host call inside the program).
        ``stepped``: this run took the iteration (under vmap, a run that had
        stopped did not; always true when ``final``). ``final``: the call
        after the loop (the run has ended, completed or stopped)."""
        ...

    def wait(self) -> None:
        """Block until everything saved so far is written (host side: an
        eager ``train`` calls it before returning)."""
        ...
