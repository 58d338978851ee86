# Minimal stubs for tensorboardX.proto.event_pb2: only what Lerax calls.
from .summary_pb2 import Summary

class SessionLog:
    """A TensorBoard ``SessionLog`` protocol buffer (a session's start)."""

    START: int
    status: int
    def __init__(self, *, status: int = ...) -> None: ...

class Event:
    """A TensorBoard ``Event`` protocol buffer."""

    wall_time: float
    step: int
    file_version: str
    summary: Summary
    session_log: SessionLog
    def __init__(
        self,
        *,
        wall_time: float = ...,
        step: int = ...,
        file_version: str = ...,
        summary: Summary = ...,
        session_log: SessionLog = ...,
    ) -> None: ...
    def SerializeToString(self) -> bytes: ...
