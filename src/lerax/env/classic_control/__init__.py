"""The classic-control environments, matching Gymnasium's."""

from ._acrobot import Acrobot as Acrobot
from ._acrobot import AcrobotState as AcrobotState
from ._cartpole import CartPole as CartPole
from ._cartpole import CartPoleState as CartPoleState
from ._mountain_car import ContinuousMountainCar as ContinuousMountainCar
from ._mountain_car import MountainCar as MountainCar
from ._mountain_car import MountainCarState as MountainCarState
from ._pendulum import Pendulum as Pendulum
from ._pendulum import PendulumState as PendulumState
