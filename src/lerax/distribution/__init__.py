"""Probability distributions for stochastic policies."""

from ._base import AbstractDistribution as AbstractDistribution
from ._categorical import Categorical as Categorical
from ._normal import Normal as Normal
