"""Policies."""

from ._base import AbstractActorCriticPolicy as AbstractActorCriticPolicy
from ._base import AbstractPolicy as AbstractPolicy
from ._mlp import MLPActorCriticPolicy as MLPActorCriticPolicy
