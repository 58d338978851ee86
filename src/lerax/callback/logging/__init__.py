"""Logging callbacks: [`LoggingCallback`][lerax.callback.logging.LoggingCallback] with
its backends (console, TensorBoard, JSONL, Weights & Biases) and
[`ProgressBarCallback`][lerax.callback.logging.ProgressBarCallback].

Also importable from [`lerax.callback`][lerax.callback].
"""

from ...errors import LoggingBackendError as LoggingBackendError
from .._episodes import EpisodeStatistics as EpisodeStatistics
from ._backend import AbstractLoggingBackend as AbstractLoggingBackend
from ._backend import HParamValue as HParamValue
from ._backend import RunInfo as RunInfo
from ._callback import IterationRecord as IterationRecord
from ._callback import LoggingCallback as LoggingCallback
from ._callback import LoggingState as LoggingState
from ._console import ConsoleBackend as ConsoleBackend
from ._jsonl import JSONLBackend as JSONLBackend
from ._progress import ProgressBarCallback as ProgressBarCallback
from ._progress import ProgressState as ProgressState
from ._tensorboard import TensorBoardBackend as TensorBoardBackend
from ._wandb import WandbBackend as WandbBackend
