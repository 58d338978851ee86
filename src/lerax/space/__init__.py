"""Spaces: the sets of observations and actions."""

from ._base import AbstractSpace as AbstractSpace
from ._box import Box as Box
from ._discrete import Discrete as Discrete
