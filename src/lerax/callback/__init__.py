"""The typed, compile-checked callback framework, and (from
[`lerax.callback.logging`][lerax.callback.logging]) the logging callbacks, (from
[`lerax.callback.history`][lerax.callback.history]) the learning-curve recorder
and (from [`lerax.callback.control`][lerax.callback.control]) the callbacks that
evaluate, run periodically and stop."""

from .._host import num_runs as num_runs
from .._host import run_index as run_index
from ..errors import CallbackStateError as CallbackStateError
from ..errors import LoggingBackendError as LoggingBackendError
from ._base import AbstractCallback as AbstractCallback
from ._base import EmptyCallbackState as EmptyCallbackState
from ._base import EmptyCallbackStepState as EmptyCallbackStepState
from ._context import IterationContext as IterationContext
from ._context import ResetContext as ResetContext
from ._context import RolloutContext as RolloutContext
from ._context import StepContext as StepContext
from ._context import TrainingContext as TrainingContext
from ._empty import EmptyCallback as EmptyCallback
from ._hooks import HOOKS as HOOKS
from ._hooks import not_a_hook as not_a_hook
from ._list import CallbackLike as CallbackLike
from ._list import CallbackList as CallbackList
from ._types import AlgorithmInfo as AlgorithmInfo
from ._types import TrainStateSaver as TrainStateSaver
from .control import EpisodeCount as EpisodeCount
from .control import EvalCallback as EvalCallback
from .control import EvalState as EvalState
from .control import EveryN as EveryN
from .control import EveryNState as EveryNState
from .control import NoImprovementState as NoImprovementState
from .control import StopOnMaxEpisodes as StopOnMaxEpisodes
from .control import StopOnNoImprovement as StopOnNoImprovement
from .control import StopOnRewardThreshold as StopOnRewardThreshold
from .history import HistoryCallback as HistoryCallback
from .history import HistoryState as HistoryState
from .logging import AbstractLoggingBackend as AbstractLoggingBackend
from .logging import ConsoleBackend as ConsoleBackend
from .logging import EpisodeStatistics as EpisodeStatistics
from .logging import HParamValue as HParamValue
from .logging import IterationRecord as IterationRecord
from .logging import JSONLBackend as JSONLBackend
from .logging import LoggingCallback as LoggingCallback
from .logging import LoggingState as LoggingState
from .logging import ProgressBarCallback as ProgressBarCallback
from .logging import ProgressState as ProgressState
from .logging import RunInfo as RunInfo
from .logging import TensorBoardBackend as TensorBoardBackend
from .logging import WandbBackend as WandbBackend
