"""How a run ended: the stop status every training result carries (the
exception an eager call raises for an abnormal stop,
[`TrainingInterrupted`][lerax.errors.TrainingInterrupted], is defined in
[`lerax.errors`][lerax.errors])."""

import enum
from typing import Any, final

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Int

from ..errors import TrainingInterrupted as TrainingInterrupted


class StopReason(enum.IntEnum):
    """Why a run stopped (the values of
    [`TrainStatus.code`][lerax.algorithm.TrainStatus])."""

    COMPLETED = 0
    """It ran every iteration."""
    CALLBACK = 1
    """A callback's ``continue_training`` returned false."""
    INTERRUPTED = 2
    """Ctrl-C (SIGINT) stopped it at an iteration boundary."""
    LOGGING_FAILED = 3
    """A logging backend failed (the logger stopped the run)."""


@final
class TrainStatus(eqx.Module):
    """Whether and why a run stopped early. Under vmap every field has the
    batch's leading axes (one status per run).

    Attributes:
        code: a [`StopReason`][lerax.algorithm.StopReason] value.
        iteration: the iterations the run completed: where it stopped, or all
            of them.
    """

    code: Int[Array, "*runs"]
    iteration: Int[Array, "*runs"]

    @property
    def stopped_early(self) -> Bool[Array, "*runs"]:
        """True for each run that did not complete every iteration."""
        return self.code != StopReason.COMPLETED

    def reasons(self) -> Any:
        """The [`StopReason`][lerax.algorithm.StopReason] of each run (host side: needs
        concrete values): one for a single run, else a nested list shaped like the
        batch."""
        codes = np.asarray(self.code)
        if codes.ndim == 0:
            return StopReason(int(codes))
        return np.vectorize(StopReason, otypes=[object])(codes).tolist()
