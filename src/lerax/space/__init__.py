"""Spaces: the sets of observations and actions."""

from ._base import AbstractSpace as AbstractSpace
from ._box import Box as Box
from ._composite import Dict as Dict
from ._composite import Tuple as Tuple
from ._discrete import Discrete as Discrete
from ._multi_binary import MultiBinary as MultiBinary
from ._multi_discrete import MultiDiscrete as MultiDiscrete
