"""Errors raised by the callback framework."""


class CallbackStateError(TypeError):
    """A callback hook returned a state that breaks its declared contract.

    Raised while tracing (never inside the compiled program): the message names
    the callback class, the hook, the offending leaf path and what was expected.
    """
