"""How a run ended: the stop status every training result carries (the
exception an eager call raises for an abnormal stop,
[`TrainingInterrupted`][lerax.errors.TrainingInterrupted], is defined in
[`lerax.errors`][lerax.errors])."""

import enum
from typing import Any, final

import equinox as eqx
import numpy as np
from jaxtyping import Array, Bool, Int

from ..errors import NonFiniteError as NonFiniteError
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
    NON_FINITE = 4
    """A reward, observation, declared loss, a loss or gradient of an update
    that guards itself, or the updated policy parameters were not all finite
    (``TrainStatus.quantity`` says which); the run kept its state from before
    that iteration (see ``train``'s ``check_finite`` for the exceptions)."""


@final
class TrainStatus(eqx.Module):
    """Whether and why a run stopped early. Under vmap every field has the
    batch's leading axes (one status per run).

    Attributes:
        code: a [`StopReason`][lerax.algorithm.StopReason] value.
        iteration: the iterations the run completed: where it stopped, or all
            of them; for ``NON_FINITE``, the iteration (counted from 1) in
            which the non-finite value appeared (the run's state is from the
            end of the iteration before).
        quantity: for ``NON_FINITE``, the index in ``quantities`` of what was
            not finite; -1 otherwise.
        quantities: the names ``quantity`` indexes (static): ``"reward"``,
            ``"observation"``, the algorithm's declared losses
            (``"training_log['loss']"``), ``"loss or gradient"`` (an
            algorithm that guards its own updates met one that its log did
            not name) and ``"policy parameters"``.
    """

    code: Int[Array, "*runs"]
    iteration: Int[Array, "*runs"]
    quantity: Int[Array, "*runs"]
    quantities: tuple[str, ...] = eqx.field(static=True)

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

    def non_finite(self) -> Any:
        """What was not finite in each run that stopped for it (host side: needs
        concrete values), ``None`` for the other runs: one for a single run,
        else a nested list shaped like the batch."""
        codes, quantities = np.asarray(self.code), np.asarray(self.quantity)

        def name(code: int, quantity: int) -> str | None:
            if code != StopReason.NON_FINITE:
                return None
            return self.quantities[quantity]

        if codes.ndim == 0:
            return name(int(codes), int(quantities))
        return np.vectorize(name, otypes=[object])(codes, quantities).tolist()
