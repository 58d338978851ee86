# Minimal stubs for optax (it ships no py.typed): only what Lerax calls.
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, TypeAlias

from jax import Array
from jaxtyping import ArrayLike

from . import tree_utils as tree_utils

OptState: TypeAlias = Any
Params: TypeAlias = Any
Updates: TypeAlias = Any
Schedule: TypeAlias = Callable[[ArrayLike], ArrayLike]
ScalarOrSchedule: TypeAlias = float | Array | Schedule

class TransformInitFn(Protocol):
    def __call__(self, params: Params) -> OptState: ...

class TransformUpdateFn(Protocol):
    def __call__(
        self, updates: Updates, state: OptState, params: Params | None = None
    ) -> tuple[Updates, OptState]: ...

class GradientTransformation(NamedTuple):
    init: TransformInitFn
    update: TransformUpdateFn

class EmptyState(NamedTuple): ...

# `count` (a field of both) is left out: it would shadow `tuple.count`.
class InjectHyperparamsState(NamedTuple):
    hyperparams: dict[str, Any]
    inner_state: OptState

class InjectStatefulHyperparamsState(NamedTuple):
    hyperparams: dict[str, Any]
    hyperparams_states: dict[str, Any]
    inner_state: OptState

def chain(*args: GradientTransformation) -> GradientTransformation: ...
def clip_by_global_norm(max_norm: ArrayLike) -> GradientTransformation: ...
def identity() -> GradientTransformation: ...
def adam(
    learning_rate: ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
) -> GradientTransformation: ...
def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: ArrayLike = 0.9,
    eps: ArrayLike = 1e-8,
    initial_scale: ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ArrayLike | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation: ...
def sgd(learning_rate: ScalarOrSchedule, momentum: float | None = None) -> GradientTransformation: ...
def inject_hyperparams(
    inner_factory: Callable[..., GradientTransformation],
    static_args: str | tuple[str, ...] = (),
    hyperparam_dtype: Any = None,
) -> Callable[..., GradientTransformation]: ...
def linear_schedule(
    init_value: ArrayLike,
    end_value: ArrayLike,
    transition_steps: int,
    transition_begin: int = 0,
) -> Schedule: ...
def constant_schedule(value: float) -> Schedule: ...
def apply_updates(params: Params, updates: Updates) -> Params: ...
def global_norm(updates: Updates) -> Array: ...
def incremental_update(
    new_tensors: Params, old_tensors: Params, step_size: ArrayLike
) -> Params: ...
def huber_loss(
    predictions: ArrayLike, targets: ArrayLike | None = None, delta: float = 1.0
) -> Array: ...
def l2_loss(predictions: ArrayLike, targets: ArrayLike | None = None) -> Array: ...
