"""Lerax: reinforcement learning on JAX and Equinox with typed, compile-checked callbacks."""

from importlib.metadata import version as _version

from . import algorithm as algorithm

# Import order matters: the callback contexts refer to the algorithm base, which
# imports the callback framework (see lerax/callback/_context.py).
from . import callback as callback

__version__ = _version("lerax")
