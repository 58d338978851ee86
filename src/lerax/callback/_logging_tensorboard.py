"""TensorBoardBackend: scalars and hyperparameters for TensorBoard (tensorboardX)."""

import math
import os
from collections.abc import Mapping
from typing import final

from tensorboardX import SummaryWriter
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
        self._writers: dict[int, SummaryWriter] = {}
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

    def _writer(self, run_index: int) -> SummaryWriter:
        writer = self._writers.get(run_index)
        if writer is None:
            writer = SummaryWriter(logdir=self.run_dir(run_index), flush_secs=10)
            self._writers[run_index] = writer
        return writer

    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        file_writer = self._writer(run_index).file_writer
        if file_writer is None:
            raise RuntimeError("TensorBoardBackend: the event writer is closed")
        metrics = {name: math.nan for name in _HPARAM_METRICS}
        for summary in hparams_summaries(dict(hparams), metrics):
            file_writer.add_summary(summary)

    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        file_writer = self._writer(run_index).file_writer
        if file_writer is None:
            raise RuntimeError("TensorBoardBackend: the event writer is closed")
        # One event per record (not one per scalar): what add_scalar would
        # write, at a fraction of the cost.
        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        file_writer.add_summary(Summary(value=values), step)

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


def _fresh_dir(path: str) -> str:
    if not os.path.exists(path):
        return path
    n = 1
    while os.path.exists(f"{path}_{n}"):
        n += 1
    return f"{path}_{n}"
