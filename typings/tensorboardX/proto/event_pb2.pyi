# Minimal stubs for tensorboardX.proto.event_pb2: only what Lerax calls.
from .summary_pb2 import Summary

class Event:
    """A TensorBoard ``Event`` protocol buffer."""

    wall_time: float
    step: int
    file_version: str
    summary: Summary
    def __init__(
        self,
        *,
        wall_time: float = ...,
        step: int = ...,
        file_version: str = ...,
        summary: Summary = ...,
    ) -> None: ...
    def SerializeToString(self) -> bytes: ...
