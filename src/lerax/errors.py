"""Lerax's public exceptions, defined in one place.

Each is also importable where it is raised:
[`CallbackStateError`][lerax.errors.CallbackStateError] from
[`lerax.callback`][lerax.callback],
[`LoggingBackendError`][lerax.errors.LoggingBackendError] from
[`lerax.callback`][lerax.callback] and
[`lerax.callback.logging`][lerax.callback.logging],
[`TrainingInterrupted`][lerax.errors.TrainingInterrupted] and
[`NonFiniteError`][lerax.errors.NonFiniteError] from
[`lerax.algorithm`][lerax.algorithm]; those are the same classes.

This module imports nothing from the rest of Lerax, so every package can
import it.
"""

from typing import Any, final

from typing_extensions import override


class CallbackStateError(TypeError):
    """A callback hook returned a state that breaks its declared contract.

    Raised while tracing (never inside the compiled program): the message names
    the callback class, the hook, the offending leaf path and what was expected.
    For a member of a [`CallbackList`][lerax.callback.CallbackList] the message
    starts with the member's position and class, so two members of one class
    are told apart (``CallbackList member 1 (Counter): Counter.on_iteration
    returned ...``); for a member of a nested list, with the position in each
    list, outermost first (``CallbackList member 2 > member 0 (Counter): ...``).
    Positions count members after Python lists passed to ``CallbackList`` are
    flattened. A ``TypeError``, since the returned value has the wrong type,
    shape or structure.

    Args:
        message: what went wrong, naming the callback, the hook and the field.
        member_path: the callback's position in each enclosing ``CallbackList``,
            outermost first; empty for a callback that is not a list member.
        member_class: the class name of that member (the innermost one), for
            the message; ignored when ``member_path`` is empty.

    Attributes:
        detail: ``message``: the message without the member prefix.
        member_path: as passed.
        member_class: as passed, or None when ``member_path`` is empty.
    """

    def __init__(
        self,
        message: str,
        *,
        member_path: tuple[int, ...] = (),
        member_class: str | None = None,
    ) -> None:
        self.detail = message
        self.member_path = member_path
        self.member_class = member_class if member_path else None
        if member_path:
            path = " > ".join(f"member {i}" for i in member_path)
            suffix = "" if member_class is None else f" ({member_class})"
            message = f"CallbackList {path}{suffix}: {message}"
        super().__init__(message)


@final
class LoggingBackendError(RuntimeError):
    """A logging backend failed: it raised, or a call to it did not return
    within the logger's ``drain_timeout``.

    The other backends keep receiving every record; the runs using the
    logger stop at its next logged iteration (status ``LOGGING_FAILED``).
    ``learn``/``train`` called directly raise the first failure with the
    result attached;
    [`LoggingCallback.close()`][lerax.callback.logging.LoggingCallback.close]
    and leaving its ``with`` block raise it too, and
    [`LoggingCallback.failure`][lerax.callback.logging.LoggingCallback.failure]
    shows it without raising. The
    message names the backend, where it writes, the method and the iteration;
    the backend's own exception is ``__cause__`` (a ``TimeoutError`` for a
    call that did not return). Where that exception is a
    ``KeyboardInterrupt`` or ``SystemExit``, ``close()`` re-raises it as
    itself, with a note naming the backend.

    Attributes:
        backend: the class name of the backend that failed
            (``"TensorBoardBackend"``); ``"LoggingCallback"`` if the logger's
            own writer failed.
        location: where the backend writes (its
            [`location`][lerax.callback.logging.AbstractLoggingBackend.location]), or
            None.
        method: the backend method that failed (``"open"``,
            ``"log_hparams"``, ``"log_scalars"``, ``"finish"``, ``"flush"``,
            ``"close"``).
        run_indices: the runs the failed call concerned: the record's run for
            ``log_hparams``, ``log_scalars`` and ``finish``; every run known
            so far for the others.
        iteration: the iteration (as logged in ``time/iteration``) of the
            record being written, or None if the call wrote no record.
        result: the ``TrainResult`` when ``train``/``learn`` raised this
            error, else None.
    """

    result: Any = None

    def __init__(
        self,
        message: str,
        backend: str,
        location: str | None,
        method: str,
        run_indices: tuple[int, ...],
        iteration: int | None,
    ) -> None:
        super().__init__(message, backend, location, method, run_indices, iteration)
        self.backend = backend
        self.location = location
        self.method = method
        self.run_indices = run_indices
        self.iteration = iteration

    @override
    def __str__(self) -> str:
        return str(self.args[0])


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a training run that was called directly (eagerly).

    A ``KeyboardInterrupt``, so code that does not know Lerax stops as it
    would; ``result`` holds the [`TrainResult`][lerax.algorithm.TrainResult] up to
    the iteration where training stopped.

    Args:
        result: the ``TrainResult`` up to the stop.
        iteration: the iterations completed, for the message.
    """

    def __init__(self, result: Any, iteration: int) -> None:
        super().__init__(
            f"training interrupted by Ctrl-C after {iteration} iteration(s); "
            "the result so far is in this exception's `result`"
        )
        self.result = result


class NonFiniteError(FloatingPointError):
    """A non-finite number (NaN or infinity) stopped a training run that was
    called directly (eagerly).

    The run stopped at the first iteration whose rewards, observations,
    declared losses, the losses and gradients of an algorithm that guards its
    own updates, or updated policy parameters were not all finite, keeping
    its state from before that iteration (see ``train``'s ``check_finite``);
    ``result`` holds the [`TrainResult`][lerax.algorithm.TrainResult], whose
    ``status`` names the iteration and the quantity of every run that stopped.

    Args:
        result: the ``TrainResult``.
        iteration: the iteration (counted from 1) in which the first stopped
            run met the value.
        run_index: that run's index among the vmapped runs (0 for one run).
        quantity: what was not finite (``"reward"``, ``"observation"``, a
            loss's name in the training log, ``"loss or gradient"``,
            ``"policy parameters"``).
    """

    def __init__(
        self, result: Any, iteration: int, run_index: int, quantity: str
    ) -> None:
        super().__init__(
            f"training met a non-finite {quantity} in iteration {iteration} of run "
            f"{run_index} and stopped that run with its state from before the "
            "iteration; the result is in this exception's `result` (its "
            "`status` says which runs stopped, where and why). Pass "
            "check_finite=False to train without the check"
        )
        self.result = result
        self.iteration = iteration
        self.run_index = run_index
        self.quantity = quantity


__all__ = [
    "CallbackStateError",
    "LoggingBackendError",
    "NonFiniteError",
    "TrainingInterrupted",
]
