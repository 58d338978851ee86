"""The typed, compile-checked callback framework."""

# The contexts module must be imported first: it completes a circular import with
# lerax.algorithm (see the note at the end of _context.py).
from . import _context as _context  # isort: split

from ._base import AbstractCallback as AbstractCallback
from ._base import EmptyCallbackState as EmptyCallbackState
from ._base import EmptyCallbackStepState as EmptyCallbackStepState
from ._context import IterationContext as IterationContext
from ._context import ResetContext as ResetContext
from ._context import StepContext as StepContext
from ._context import TrainingContext as TrainingContext
from ._empty import EmptyCallback as EmptyCallback
from ._errors import CallbackStateError as CallbackStateError
from ._list import CallbackLike as CallbackLike
from ._list import CallbackList as CallbackList
from ._logging import EpisodeStatistics as EpisodeStatistics
from ._logging import LoggingCallback as LoggingCallback
from ._logging_backend import AbstractLoggingBackend as AbstractLoggingBackend
from ._logging_backend import HParamValue as HParamValue
from ._logging_backend import RunInfo as RunInfo
from ._logging_console import ConsoleBackend as ConsoleBackend
from ._logging_jsonl import JSONLBackend as JSONLBackend
from ._logging_tensorboard import TensorBoardBackend as TensorBoardBackend
from ._logging_wandb import WandbBackend as WandbBackend
from ._progress import ProgressBarCallback as ProgressBarCallback
from ._run_index import num_runs as num_runs
from ._run_index import run_index as run_index
