"""JSONLBackend: one JSON line per logged iteration per run."""

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import IO, final

from typing_extensions import override

from ._backend import (
    AbstractLoggingBackend,
    HParamValue,
    RunInfo,
    check_writable_dir,
)


@final
class JSONLBackend(AbstractLoggingBackend):
    """Write one JSON object per line: one line per logged iteration per run.

    Each line holds ``"run"`` (the run index, 0 for a single run), ``"step"``
    (environment steps) and every logged scalar by name, for example
    ``{"run": 0, "step": 1024, "time/iteration": 2, "train/loss": 0.31, ...}``.
    Lines are flushed when the logger flushes (at most every 0.25 s, see
    [`AbstractLoggingBackend`][lerax.callback.logging.AbstractLoggingBackend]) and at
    the end of ``learn``. NaN and infinities are written as
    ``NaN``/``Infinity``/``-Infinity``, which Python's ``json.loads`` reads back.
    Hyperparameters are not written (the file holds metrics only).

    The file is created (truncated) when the first ``learn`` call starts;
    later ``learn`` calls with the same logger append.

    A ``learn`` call that resumes runs from a saved state
    (``train(resume_from=...)``) appends to the file instead of truncating
    it, with any logger, so a run stopped (or crashed) and resumed has its
    lines in one file. When it opens the file it drops the lines that the
    resumed runs write again: those of each resumed run at a step at or past
    the one its [`RunInfo.resumed_from`][lerax.callback.logging.RunInfo]
    gives, written by a process that went on past the saved state before it
    stopped, and a last line cut short by a killed process. The file then
    holds what an uninterrupted run writes (``time/steps_per_second`` aside).
    The file is rewritten only if there is something to drop, into a
    temporary file renamed over it, so an interruption leaves either file
    whole.

    Args:
        path: the file to write; its directory is created if needed.

    Raises:
        ValueError: if the file's directory cannot be created or written, or
            ``path`` is a directory.
    """

    def __init__(self, path: str | os.PathLike[str]):
        text = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(text))
        check_writable_dir("JSONLBackend", "path's directory", directory)
        if os.path.isdir(text):
            raise ValueError(f"JSONLBackend: path={text!r} is a directory, not a file")
        if os.path.exists(text) and not os.access(text, os.W_OK):
            raise ValueError(f"JSONLBackend: path={text!r} is not writable")
        self.path = text
        self._file: IO[str] | None = None
        self._closed = False

    @override
    def open(self, run: RunInfo) -> None:
        if self._closed:
            raise RuntimeError(f"JSONLBackend({self.path!r}) is closed")
        resumed = {i: s for i, s in enumerate(run.resumed_from) if s is not None}
        if resumed:
            if self._file is not None:
                self._file.close()
                self._file = None
            _drop_superseded(self.path, resumed)
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        elif self._file is None:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115

    @override
    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        """Not recorded: the file holds metrics only."""

    @override
    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        if self._file is None:
            raise RuntimeError("JSONLBackend.log_scalars called before open")
        record: dict[str, float | int] = {"run": run_index, "step": step}
        for key, value in scalars.items():
            record[key] = int(value) if key in _INTEGER_KEYS else value
        self._file.write(json.dumps(record) + "\n")

    @override
    def finish(self, run_index: int) -> None:
        self.flush()

    @override
    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    @override
    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._closed = True


_INTEGER_KEYS = frozenset({"time/timesteps", "time/iteration", "rollout/episodes"})


def _drop_superseded(path: str, resumed: Mapping[int, int]) -> None:
    """Rewrite ``path`` without the lines of run ``i`` at a step at or past
    ``resumed[i]``, and without a last line cut short; leave it untouched if
    there are none (or it does not exist)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    kept: list[str] = []
    for number, line in enumerate(lines):
        try:
            row = json.loads(line)
        except ValueError:
            if number == len(lines) - 1 and not line.endswith("\n"):
                continue  # cut short by a killed process
            kept.append(line)
            continue
        if isinstance(row, dict):
            run, step = row.get("run"), row.get("step")
            if isinstance(run, int) and isinstance(step, int) and run in resumed:
                if step >= resumed[run]:
                    continue
        kept.append(line)
    if len(kept) == len(lines):
        return
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(path, temporary)  # mkstemp's file is private
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
