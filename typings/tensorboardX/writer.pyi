# Minimal stubs for tensorboardX.writer: only what Lerax calls.
from types import TracebackType

from .proto.summary_pb2 import Summary

class FileWriter:
    def get_logdir(self) -> str: ...
    def add_summary(
        self,
        summary: Summary,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...

class SummaryWriter:
    logdir: str
    file_writer: FileWriter | None
    def __init__(
        self,
        logdir: str | None = None,
        comment: str | None = "",
        purge_step: int | None = None,
        max_queue: int | None = 10,
        flush_secs: int | None = 120,
        filename_suffix: str | None = "",
        write_to_disk: bool | None = True,
    ) -> None: ...
    def add_scalar(
        self,
        tag: str,
        scalar_value: float,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> SummaryWriter: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None: ...
