"""Lerax: reinforcement learning on JAX and Equinox with typed, compile-checked callbacks."""

from importlib.metadata import version as _version

__version__ = _version("lerax")
