"""Lerax: reinforcement learning on JAX and Equinox with typed callbacks."""

# isort: skip_file
# Import order matters: the callback contexts refer to the algorithm base, which
# imports the callback framework (see the end of lerax/callback/_context.py), so
# lerax.callback must be imported before lerax.algorithm.
from importlib.metadata import version as _version

from . import callback as callback
from . import algorithm as algorithm

__version__ = _version("lerax")
