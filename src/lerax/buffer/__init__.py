"""Replay buffers for off-policy algorithms: pure, jittable and vmappable, so
they live in an algorithm's state inside the compiled training program."""

from ._replay import ReplayBuffer as ReplayBuffer
from ._replay import Transition as Transition
