"""Policies."""

from ._base import AbstractActorCriticPolicy as AbstractActorCriticPolicy
from ._base import AbstractPolicy as AbstractPolicy
from ._base import AbstractQPolicy as AbstractQPolicy
from ._base import AbstractSACPolicy as AbstractSACPolicy
from ._base import AbstractTD3Policy as AbstractTD3Policy
from ._base import AbstractTwinQCritic as AbstractTwinQCritic
from ._mlp import MLPActorCriticPolicy as MLPActorCriticPolicy
from ._q import MLPQPolicy as MLPQPolicy
from ._sac import MLPSACPolicy as MLPSACPolicy
from ._td3 import MLPDeterministicPolicy as MLPDeterministicPolicy
