"""TensorBoardBackend: scalars and hyperparameters for TensorBoard (tensorboardX)."""

import itertools
import math
import os
import socket
import struct
import time
from collections.abc import Mapping
from typing import BinaryIO, final

import google_crc32c
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.summary import hparams as hparams_summaries

from ._logging_backend import (
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
    its metrics. Events are flushed when the logger flushes (at most every
    0.25 s) and at the end of ``learn``.

    Args:
        log_dir: the directory; ``None`` means ``runs/<name>`` under the
            working directory, where ``<name>`` is the experiment name
            (``<algorithm>_<env>_<timestamp>`` unless ``LoggingCallback(name=...)``
            sets it); an existing default directory gets a ``_<n>`` suffix.

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
        self._writers: dict[int, _EventFile] = {}
        self._closed = False

    def run_dir(self, run_index: int) -> str:
        """The directory run ``run_index`` writes to (once training started)."""
        if self._base is None:
            raise RuntimeError("TensorBoardBackend: no training has started yet")
        if self._num_runs == 1:
            return self._base
        return os.path.join(self._base, f"run_{run_index}")

    def open(self, run: RunInfo) -> None:
        if self._closed:
            raise RuntimeError("TensorBoardBackend is closed")
        if self._base is None:
            if self.log_dir is not None:
                self._base = self.log_dir
            else:
                self._base = _fresh_dir(os.path.join("runs", run.name))
            self._num_runs = run.num_runs

    def _writer(self, run_index: int) -> "_EventFile":
        if self._closed:
            raise RuntimeError("TensorBoardBackend is closed")
        writer = self._writers.get(run_index)
        if writer is None:
            writer = _EventFile(self.run_dir(run_index))
            self._writers[run_index] = writer
        return writer

    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        writer = self._writer(run_index)
        metrics = {name: math.nan for name in _HPARAM_METRICS}
        for summary in hparams_summaries(dict(hparams), metrics):
            writer.write(summary, None)

    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        # One event per record (not one per scalar): what add_scalar would
        # write, at a fraction of the cost.
        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        self._writer(run_index).write(Summary(value=values), step)

    def finish(self, run_index: int) -> None:
        writer = self._writers.get(run_index)
        if writer is not None:
            writer.flush()

    def flush(self) -> None:
        for writer in self._writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        self._closed = True


# The metrics the HParams plugin shows next to each run's hyperparameters.
_HPARAM_METRICS = (
    "rollout/ep_return_ema",
    "rollout/ep_return_mean",
    "rollout/ep_length_ema",
    "train/loss",
)


_file_numbers = itertools.count()


@final
class _EventFile:
    """One TensorBoard event file, written synchronously.

    The logger's writer thread already keeps I/O off the training thread;
    tensorboardX's ``SummaryWriter`` would add a thread of its own (one more
    wake-up per record) and check-sum records in pure Python. Records are
    TFRecords (length, masked CRC32C of the length, the serialized ``Event``,
    masked CRC32C of it), the format TensorBoard reads.
    """

    def __init__(self, log_dir: str):
        os.makedirs(log_dir, exist_ok=True)
        name = (
            f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}"
            f".{os.getpid()}.{next(_file_numbers)}"
        )
        self.path = os.path.join(log_dir, name)
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115  # closed in close()
        self._record(Event(wall_time=time.time(), file_version="brain.Event:2"))

    def write(self, summary: Summary, step: int | None) -> None:
        event = Event(wall_time=time.time(), summary=summary)
        if step is not None:
            event.step = step
        self._record(event)

    def _record(self, event: Event) -> None:
        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self._file.write(
            header
            + struct.pack("<I", _masked_crc(header))
            + data
            + struct.pack("<I", _masked_crc(data))
        )

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C."""
    crc = int(google_crc32c.value(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _fresh_dir(path: str) -> str:
    if not os.path.exists(path):
        return path
    n = 1
    while os.path.exists(f"{path}_{n}"):
        n += 1
    return f"{path}_{n}"
