# Minimal stubs for orbax.checkpoint: only what lerax.checkpoint calls.
from collections.abc import Sequence
from os import PathLike

from . import args as args

class CheckpointManagerOptions:
    def __init__(
        self,
        *,
        max_to_keep: int | None = None,
        enable_async_checkpointing: bool = True,
        create: bool = True,
        cleanup_tmp_directories: bool = False,
        read_only: bool = False,
    ) -> None: ...

class CheckpointManager:
    def __init__(
        self,
        directory: str | PathLike[str],
        *,
        options: CheckpointManagerOptions | None = None,
        item_names: Sequence[str] | None = None,
    ) -> None: ...
    def save(self, step: int, *, args: args.Composite) -> bool: ...
    def all_steps(self, read: bool = False) -> Sequence[int]: ...
    def latest_step(self) -> int | None: ...
    def wait_until_finished(self) -> None: ...
    def close(self) -> None: ...

class CompositeCheckpointHandler:
    def __init__(self) -> None: ...

class Checkpointer:
    def __init__(self, handler: CompositeCheckpointHandler) -> None: ...
    def restore(
        self, directory: str | PathLike[str], *, args: args.Composite
    ) -> args.Composite: ...
    def close(self) -> None: ...
