"""Callbacks that control training: [`EveryN`][lerax.callback.control.EveryN]
runs a callback periodically, [`EvalCallback`][lerax.callback.control.EvalCallback]
evaluates the policy inside the compiled program, and the stoppers
([`StopOnRewardThreshold`][lerax.callback.control.StopOnRewardThreshold],
[`StopOnNoImprovement`][lerax.callback.control.StopOnNoImprovement],
[`StopOnMaxEpisodes`][lerax.callback.control.StopOnMaxEpisodes]) end each
vmapped run on its own.

Also importable from [`lerax.callback`][lerax.callback].
"""

from ._eval import EvalCallback as EvalCallback
from ._eval import EvalState as EvalState
from ._every import EveryN as EveryN
from ._every import EveryNState as EveryNState
from ._stop import TRAINING_STATISTICS as TRAINING_STATISTICS
from ._stop import EpisodeCount as EpisodeCount
from ._stop import NoImprovementState as NoImprovementState
from ._stop import StopOnMaxEpisodes as StopOnMaxEpisodes
from ._stop import StopOnNoImprovement as StopOnNoImprovement
from ._stop import StopOnRewardThreshold as StopOnRewardThreshold
