"""Errors raised by the callback framework (defined in
[`lerax.errors`][lerax.errors]), and how a ``CallbackList`` names its member in
them."""

from ..errors import CallbackStateError as CallbackStateError


def in_member(
    error: CallbackStateError, index: int, member: object
) -> CallbackStateError:
    """``error``, raised by ``member`` at position ``index`` of a
    ``CallbackList``, as that list reports it: with ``index`` prepended to the
    member path (so nested lists give the full path) and, for a member that is
    not itself a list, its class."""
    if error.member_path:
        member_class = error.member_class
    else:
        member_class = type(member).__qualname__
    return CallbackStateError(
        error.detail,
        member_path=(index, *error.member_path),
        member_class=member_class,
    )
