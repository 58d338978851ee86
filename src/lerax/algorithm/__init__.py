"""Training algorithms and their one training loop (a module of its own), which
owns every callback hook call; an algorithm supplies its acting, its update and
its state."""

from ..errors import NonFiniteError as NonFiniteError
from ..errors import TrainingInterrupted as TrainingInterrupted
from ._a2c import A2C as A2C
from ._a2c import A2CState as A2CState
from ._base import AbstractAlgorithm as AbstractAlgorithm
from ._dqn import DQN as DQN
from ._dqn import DQNState as DQNState
from ._gae import generalized_advantage_estimate as generalized_advantage_estimate
from ._gae import next_state_values as next_state_values
from ._optim import current_learning_rate as current_learning_rate
from ._ppo import PPO as PPO
from ._ppo import PPOBatch as PPOBatch
from ._ppo import PPOState as PPOState
from ._rollout import Rollout as Rollout
from ._sac import SAC as SAC
from ._sac import SACState as SACState
from ._seeds import shard_seeds as shard_seeds
from ._status import StopReason as StopReason
from ._status import TrainStatus as TrainStatus
from ._td3 import TD3 as TD3
from ._td3 import TD3State as TD3State
from ._train_state import TrainResult as TrainResult
from ._train_state import TrainState as TrainState
