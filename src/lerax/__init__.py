"""Lerax: reinforcement learning on JAX and Equinox with typed callbacks."""

from importlib.metadata import version as _version

from . import algorithm as algorithm
from . import callback as callback

__version__ = _version("lerax")
