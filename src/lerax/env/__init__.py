"""Pure, jittable environments."""

from ._base import AbstractEnv as AbstractEnv
from ._base import TimeStep as TimeStep
