"""TensorBoardBackend: scalars and hyperparameters for TensorBoard (tensorboardX)."""

import contextlib
import itertools
import math
import os
import re
import time
from collections.abc import Mapping
from typing import final

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import hparams as hparams_summaries
from typing_extensions import override

from ._backend import (
    AbstractLoggingBackend,
    HParamValue,
    RunInfo,
    check_creatable_dir,
    check_writable_dir,
)


@final
class TensorBoardBackend(AbstractLoggingBackend):
    """Write TensorBoard event files with tensorboardX.

    Directory layout: a single run writes directly into ``log_dir``; under
    ``eqx.filter_vmap`` over seeds, run ``i`` writes into ``log_dir/run_<i>``
    (``i`` is the index along the vmapped axis), so TensorBoard shows one
    curve per seed and nothing is mixed. A later ``learn`` call with the same
    logger continues the same runs (steps go on from where they ended).

    Every scalar is written under its name (``train/loss``,
    ``rollout/ep_return_ema``, ...) at the step given (environment steps).
    Hyperparameters go through TensorBoard's HParams plugin, into the run's
    own directory, with the logged ``rollout/*`` and ``train/*`` scalars as
    its metrics. Event files are written by tensorboardX's ``EventsWriter``
    (synchronously, on the logger's writer thread) and flushed when the
    logger flushes: at most every 0.25 s, after a backend failure and at the
    end of ``learn``. Their check sums use the ``crc32c`` package if it is
    installed (``pip install 'lerax[crc32c]'``; LGPL-2.1-or-later, native),
    else tensorboardX's pure-Python CRC, which costs more CPU per record.

    Resuming (``train(resume_from=...)``, with this logger or a new one
    built the same way, in any process): the runs write into the same
    directory, steps continuing from the saved counters. With ``log_dir``
    given, that is ``log_dir``; the default directory is found by the
    experiment's identity, which a fresh default directory keeps in a file
    ``.lerax-experiment`` (TensorBoard ignores it): ``runs/<name>`` or the
    ``runs/<name>_<n>`` holding it (if none does, a fresh one is made). A
    resumed run's event file (a new one, in a new logger) starts with a
    ``SessionLog.START`` event at the step from which the run writes again
    ([`RunInfo.resumed_from`][lerax.callback.logging.RunInfo]; written twice,
    as TensorBoard's server takes the first ``START`` of a run for its start,
    not a restart). TensorBoard then drops, by its ``purge_orphaned_data``
    (on by default), the run's events at that step or later read before it:
    those a process that went on past the saved state wrote before it
    stopped, which the resumed run writes again. The event files keep them;
    a reader that does not purge sees those steps twice.

    Args:
        log_dir: the directory; ``None`` means ``runs/<name>`` under the
            working directory, where ``<name>`` is the experiment name
            (``<algorithm>_<env>_<timestamp>`` unless ``LoggingCallback(name=...)``
            sets it); an existing default directory gets a ``_<n>`` suffix
            (unless a resumed run finds its own, see above).

    Raises:
        ValueError: if ``log_dir`` cannot be created or written (for
            ``None``: if ``runs/`` cannot be created in the working directory).
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None = None):
        self.log_dir: str | None
        if log_dir is None:
            check_creatable_dir("TensorBoardBackend", "log_dir (default)", "runs")
            self.log_dir = None
        else:
            self.log_dir = check_writable_dir("TensorBoardBackend", "log_dir", log_dir)
        self._base: str | None = None
        self._num_runs = 1
        self._writers: dict[int, EventsWriter] = {}
        self._closed = False

    @property
    @override
    def location(self) -> str:
        """The log directory: ``log_dir``, or ``runs/<name>`` once chosen."""
        if self._base is not None:
            return self._base
        return self.log_dir if self.log_dir is not None else "runs/<name>"

    def run_dir(self, run_index: int) -> str:
        """The directory run ``run_index`` writes to (once training started)."""
        if self._base is None:
            raise RuntimeError("TensorBoardBackend: no training has started yet")
        if self._num_runs == 1:
            return self._base
        return os.path.join(self._base, f"run_{run_index}")

    @override
    def open(self, run: RunInfo) -> None:
        if self._closed:
            raise RuntimeError("TensorBoardBackend is closed")
        if self._base is None:
            if self.log_dir is not None:
                self._base = self.log_dir
            else:
                self._base = _experiment_dir(
                    os.path.join("runs", run.name), run.experiment_id
                )
            self._num_runs = run.num_runs
        for run_index, step in enumerate(run.resumed_from):
            if step is not None:
                start = SessionLog(status=SessionLog.START)
                event = Event(wall_time=time.time(), step=step, session_log=start)
                writer = self._writer(run_index)
                writer.write_event(event)
                writer.write_event(event)

    def _writer(self, run_index: int) -> EventsWriter:
        if self._closed:
            raise RuntimeError("TensorBoardBackend is closed")
        writer = self._writers.get(run_index)
        if writer is None:
            run_dir = self.run_dir(run_index)
            os.makedirs(run_dir, exist_ok=True)
            # EventsWriter names the file events.out.tfevents.<time>.<host>;
            # the suffix keeps two files of one second and directory apart,
            # in the order they were opened: TensorBoard reads a directory's
            # files in name order (zero-padded, so file 10 sorts after 9; a
            # resumed run's file read first would be purged by the old one).
            suffix = f".{os.getpid()}.{next(_file_numbers):08d}"
            writer = EventsWriter(os.path.join(run_dir, "events"), suffix)
            self._writers[run_index] = writer
        return writer

    @override
    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        writer = self._writer(run_index)
        metrics = {name: math.nan for name in _HPARAM_METRICS}
        for summary in hparams_summaries(dict(hparams), metrics):
            writer.write_event(Event(wall_time=time.time(), summary=summary))

    @override
    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        # One event per record (not one per scalar): what add_scalar would
        # write, at a fraction of the cost.
        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        event = Event(wall_time=time.time(), step=step, summary=Summary(value=values))
        self._writer(run_index).write_event(event)

    @override
    def finish(self, run_index: int) -> None:
        """Nothing: the logger flushes at the end of every ``learn`` call."""

    @override
    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    @override
    def close(self) -> None:
        """Close every event file (all of them, even after one fails; the
        first error is raised)."""
        self._closed = True
        first: Exception | None = None
        for writer in self._writers.values():
            try:
                writer.close()
            except Exception as err:  # noqa: BLE001  # close the others first
                first = first if first is not None else err
        self._writers.clear()
        if first is not None:
            raise first


# The metrics the HParams plugin shows next to each run's hyperparameters.
_HPARAM_METRICS = (
    "rollout/ep_return_ema",
    "rollout/ep_return_mean",
    "rollout/ep_length_ema",
    "train/loss",
)


_file_numbers = itertools.count()


_MARKER = ".lerax-experiment"
"""The file in a default directory that names the experiment writing it."""


def _experiment_dir(path: str, experiment_id: str) -> str:
    """The default directory of the experiment ``experiment_id``: ``path`` or
    ``path_<n>`` if one holds its marker (a resumed run), else a fresh one,
    created with the marker (none without an identity)."""
    if experiment_id:
        parent, base = os.path.split(path)
        pattern = re.compile(re.escape(base) + r"(_\d+)?")
        with contextlib.suppress(OSError):
            for entry in sorted(os.listdir(parent or ".")):
                candidate = os.path.join(parent, entry)
                if pattern.fullmatch(entry) and _marked(candidate, experiment_id):
                    return candidate
    fresh = _fresh_dir(path)
    if experiment_id:
        os.makedirs(fresh, exist_ok=True)
        with open(os.path.join(fresh, _MARKER), "w", encoding="utf-8") as f:
            f.write(experiment_id + "\n")
    return fresh


def _marked(directory: str, experiment_id: str) -> bool:
    try:
        with open(os.path.join(directory, _MARKER), encoding="utf-8") as f:
            return f.read().strip() == experiment_id
    except OSError:
        return False


def _fresh_dir(path: str) -> str:
    if not os.path.exists(path):
        return path
    n = 1
    while os.path.exists(f"{path}_{n}"):
        n += 1
    return f"{path}_{n}"
