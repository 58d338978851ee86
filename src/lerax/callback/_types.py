"""Type variables shared by callbacks and their contexts."""

from typing import Any

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
PolicyT_co = TypeVar(
    "PolicyT_co",
    bound=AbstractPolicy[Any, Any],
    default=AbstractPolicy[Any, Any],
    covariant=True,
)
