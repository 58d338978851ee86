"""Pure, jittable environments."""

from ._base import AbstractEnv as AbstractEnv
from ._base import TimeStep as TimeStep
from .classic_control import Acrobot as Acrobot
from .classic_control import AcrobotState as AcrobotState
from .classic_control import CartPole as CartPole
from .classic_control import CartPoleState as CartPoleState
from .classic_control import ContinuousMountainCar as ContinuousMountainCar
from .classic_control import MountainCar as MountainCar
from .classic_control import MountainCarState as MountainCarState
from .classic_control import Pendulum as Pendulum
from .classic_control import PendulumState as PendulumState
