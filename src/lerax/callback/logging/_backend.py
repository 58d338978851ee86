"""The logging backend interface: where
[`LoggingCallback`][lerax.callback.logging.LoggingCallback] records go."""

import abc
import dataclasses
import os
from collections.abc import Mapping
from typing import final

from ...errors import LoggingBackendError as LoggingBackendError

HParamValue = bool | int | float | str
"""A hyperparameter value: what every backend can record."""


@final
@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a backend is told when a ``learn`` call starts.

    Attributes:
        name: the experiment name: ``LoggingCallback(name=...)``, else
            ``<algorithm>_<env>_<YYYYmmdd-HHMMSS>``, the time the experiment's
            first ``LoggingCallback`` was created.
        algorithm: the algorithm's name (``"PPO"``).
        env: the environment's name (``"CartPole"``).
        policy: the policy's name.
        num_runs: how many runs train at once: the size of the vmapped axis
            (``eqx.filter_vmap`` over seeds), else 1. Run indices are
            ``0 .. num_runs - 1``.
        total_timesteps: environment steps each run takes in this ``learn`` call
            (whole iterations), counted from its step counter's 0 (a run
            resumed from a saved state starts part of the way).
        step_offsets: per run, the logged step of its step counter's 0 (the
            step a ``learn`` call starts from): 0 in the first call; a later
            call with the same logger continues where the previous one ended;
            a run resumed from a saved state keeps the offset it was saved
            with.
        session: 1 for the first ``learn`` call with this logger, 2 for the
            next, and so on.
        experiment_id: the experiment's identity, ``YYYYmmdd-HHMMSS-xxxxxxxx``
            (when its first ``LoggingCallback`` was created, and 32 random
            bits): the same for the runs of a resumed experiment, in any
            process, so a backend can find what it wrote before (Lerax's
            W&B run ids, TensorBoard's default directory); empty if unknown.
        resumed_from: empty unless this ``learn`` call resumes runs from a
            saved state (``train(resume_from=...)``); then, per run, the
            logged step from which the run writes its records (None for a
            run that does not resume): records of that run at this step or
            later written before are superseded (a process that went on past
            the saved state wrote them; the resumed run writes those
            iterations again).
    """

    name: str
    algorithm: str
    env: str
    policy: str
    num_runs: int
    total_timesteps: int
    step_offsets: tuple[int, ...]
    session: int
    experiment_id: str = ""
    resumed_from: tuple[int | None, ...] = ()


class AbstractLoggingBackend(abc.ABC):
    """Base class of logging backends (console, TensorBoard, JSONL, W&B, yours).

    A backend is an ordinary host-side Python object; it never enters the
    compiled program. [`LoggingCallback`][lerax.callback.logging.LoggingCallback] calls
    it from its writer thread, one call at a time and in program order:

    1. [`open`][lerax.callback.logging.AbstractLoggingBackend.open] once at the start of
       every ``learn`` call;
    2. [`log_hparams`][lerax.callback.logging.AbstractLoggingBackend.log_hparams] once
       per run, at that run's first start;
    3. [`log_scalars`][lerax.callback.logging.AbstractLoggingBackend.log_scalars] once
       per logged iteration per run;
    4. [`finish`][lerax.callback.logging.AbstractLoggingBackend.finish] when a run's
       ``learn`` call ends;
    5. [`close`][lerax.callback.logging.AbstractLoggingBackend.close] from
       ``LoggingCallback.close()`` (after
       [`flush`][lerax.callback.logging.AbstractLoggingBackend.flush]).

    The writer calls [`flush`][lerax.callback.logging.AbstractLoggingBackend.flush] at
    most every 0.25 s, after a backend failure, and at the end of every ``learn`` call
    (which drains everything), so
    [`log_scalars`][lerax.callback.logging.AbstractLoggingBackend.log_scalars] need not
    flush.

    Under ``eqx.filter_vmap`` over seeds, every call that concerns one run
    carries its ``run_index`` (``0 .. num_runs - 1``); a backend must keep runs
    apart (one file, directory or online run each, or a ``run`` field).
    Steps of one run only increase, also across ``learn`` calls, except when
    a run resumes from a saved state (``train(resume_from=...)``): then it
    starts again at the step its
    [`RunInfo.resumed_from`][lerax.callback.logging.RunInfo] gives, and a
    backend decides what becomes of what it wrote from that step on before
    (Lerax's backends say in their docstrings).

    Values are Python floats and may be NaN or infinite; record them as such.

    A backend that raises (any exception, ``KeyboardInterrupt`` and
    ``SystemExit`` included) never stops training: the writer records the
    failure, flushes the other backends, calls the failed one no more (but
    for [`close`][lerax.callback.logging.AbstractLoggingBackend.close] at the end) and
    goes on writing to the others. ``LoggingCallback.close()`` then raises it as a
    [`LoggingBackendError`][lerax.callback.logging.LoggingBackendError]
    (``LoggingCallback.failure`` shows it earlier). A call that does not return within
    the logger's ``drain_timeout`` when ``learn`` ends or at ``close()`` is recorded the
    same way (as stuck), and the logger stops waiting for it.

    Construction should check everything that can be checked early (for
    example that a directory is writable) and raise there, before training.
    """

    @property
    def location(self) -> str | None:
        """Where this backend writes (a file, a directory, an online run), for
        error messages; None if nowhere in particular.

        The default is the backend's ``path`` attribute if it has one that is
        a string ([`JSONLBackend`][lerax.callback.logging.JSONLBackend]), else None; a
        backend that writes somewhere else should override it.
        """
        path = getattr(self, "path", None)
        return path if isinstance(path, str) else None

    def describe(self) -> str:
        """The backend in error messages: its class name and, if known, its
        [`location`][lerax.callback.logging.AbstractLoggingBackend.location]
        (``"JSONLBackend (runs/log.jsonl)"``)."""
        where = self.location
        name = type(self).__name__
        return name if where is None else f"{name} ({where})"

    @abc.abstractmethod
    def open(self, run: RunInfo) -> None:
        """A ``learn`` call starts: the experiment's name and layout."""

    @abc.abstractmethod
    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        """Record the hyperparameters of run ``run_index`` (once per run).

        Keys are ``algorithm/<field>``, ``env/<field>``, ``policy/<field>`` and
        those of ``LoggingCallback(hparams=...)``.
        """

    @abc.abstractmethod
    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        """Record one iteration's scalars of run ``run_index`` at ``step``
        (environment steps so far)."""

    @abc.abstractmethod
    def finish(self, run_index: int) -> None:
        """Run ``run_index``'s ``learn`` call ended (it may continue in the
        next ``learn`` call)."""

    @abc.abstractmethod
    def flush(self) -> None:
        """Make everything recorded so far durable (on disk, sent)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and release every resource; calling it twice is harmless."""


def check_writable_dir(owner: str, argument: str, path: str | os.PathLike[str]) -> str:
    """Create ``path`` as a directory if needed and check it is writable.

    Raises:
        ValueError: naming ``owner``'s ``argument`` and the reason, if not.
    """
    text = os.fspath(path)
    try:
        os.makedirs(text, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"{owner}: {argument}={text!r} cannot be created as a directory: {err}"
        ) from err
    if not os.path.isdir(text) or not os.access(text, os.W_OK | os.X_OK):
        raise ValueError(f"{owner}: {argument}={text!r} is not a writable directory")
    return text


def check_creatable_dir(owner: str, argument: str, path: str | os.PathLike[str]) -> str:
    """Check that directory ``path`` exists writable or could be created,
    without creating anything.

    Raises:
        ValueError: naming ``owner``'s ``argument`` and the reason, if not.
    """
    text = os.fspath(path)
    probe = os.path.abspath(text)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"{owner}: {argument}={text!r} cannot be created: {probe!r} is not a "
            "writable directory"
        )
    return text
