"""Deprecated aliases kept for one release, with warnings that name their
replacement."""

import warnings
from typing import Any


def deprecated_opt_state(owner: str, algorithm_state: object, instead: str) -> Any:
    """``algorithm_state.opt_state``, with a ``DeprecationWarning`` saying that
    ``{owner}.opt_state`` goes and ``instead`` replaces it: ``opt_state`` stays
    one release as a read-only alias for code written when the loop carried
    one optimizer state.

    Raises:
        AttributeError: the algorithm's state has no single ``opt_state``.
    """
    warnings.warn(
        f"{owner}.opt_state is deprecated and will be removed in the next "
        f"release: read {instead} (PPO and A2C: {instead}.opt_state)",
        DeprecationWarning,
        stacklevel=3,
    )
    try:
        return getattr(algorithm_state, "opt_state")  # noqa: B009  # any state type
    except AttributeError:
        raise AttributeError(
            f"{owner}.opt_state is deprecated, and this algorithm's state "
            f"{type(algorithm_state).__name__} has no single optimizer state: "
            f"read {instead}"
        ) from None
