"""Lerax: reinforcement learning on JAX and Equinox with typed callbacks."""

from importlib.metadata import version as _version

from . import algorithm as algorithm
from . import buffer as buffer
from . import callback as callback
from . import checkpoint as checkpoint
from . import distribution as distribution
from . import env as env
from . import errors as errors
from . import evaluation as evaluation
from . import policy as policy
from . import space as space
from ._serialise import load as load
from ._serialise import save as save

__version__ = _version("lerax")
