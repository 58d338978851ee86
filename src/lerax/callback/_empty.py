"""EmptyCallback: the no-op callback."""

from typing import final

from typing_extensions import override

from ._base import AbstractCallback, EmptyCallbackState, EmptyCallbackStepState


@final
class EmptyCallback(AbstractCallback[EmptyCallbackState, EmptyCallbackStepState]):
    """A callback that does nothing; its hooks compile away.

    Useful as a placeholder or default. ``continue_training`` is always true.
    """

    @override
    def reads_training_log(self) -> bool:
        """No."""
        return False
