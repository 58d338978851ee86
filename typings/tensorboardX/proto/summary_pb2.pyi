# Minimal stubs for tensorboardX.proto.summary_pb2: only what Lerax calls.
from collections.abc import Iterable

class Summary:
    """A TensorBoard ``Summary`` protocol buffer."""

    class Value:
        tag: str
        simple_value: float
        def __init__(self, *, tag: str = ..., simple_value: float = ...) -> None: ...

    value: list[Summary.Value]
    def __init__(self, *, value: Iterable[Summary.Value] = ...) -> None: ...
